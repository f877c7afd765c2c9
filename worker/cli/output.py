"""Printing listings as a table, JSON or CSV: every listing offers all three."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

FORMATS = ("table", "json", "csv")
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)


def console() -> Console:
    # Piped output (make run, a pager, a log) has no terminal width; rich would assume 80
    # columns and fold every address, so give it room.
    width = None if sys.stdout.isatty() else 200
    return Console(highlight=False, soft_wrap=False, width=width)


def to_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return to_json(value)
    return str(value)


def emit(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str, title: str | None = None
) -> None:
    if fmt == "json":
        click.echo(to_json(list(rows)))
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
        return
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[escape(_cell(row.get(c))) for c in columns])
    console().print(table)
