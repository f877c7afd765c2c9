"""Printing listings as a table, JSON or CSV: every listing offers all three.

Everything here goes through the one sanitiser (worker.cli.sanitize): table cells and lines
are shown with control characters escaped and never parsed as rich markup, JSON is exact
with those characters written as escapes, CSV cells drop them.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.style import Style
from rich.table import Table
from rich.text import Text

from worker.cli.sanitize import csv_cell, json_text, printable, printable_block

FORMATS = ("table", "json", "csv")
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)


class SafeConsole(Console):
    """A rich console that sanitises every string it is given, markup strings included.

    Data should still be passed as :func:`text` (never parsed as markup: a subject
    ``[link=…]`` must print literally); this catches a string that was not.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(printable_block(text), **kwargs)


def console() -> Console:
    # Piped output (make run, a pager, a log) has no terminal width; rich would assume 80
    # columns and fold every address, so give it room. No emoji codes: ":smile:" in a
    # subject is text.
    width = None if sys.stdout.isatty() else 200
    return SafeConsole(highlight=False, soft_wrap=False, width=width, emoji=False)


def text(value: Any, style: str | Style = "") -> Text:
    """A value from data as rich text: one sanitised line, no markup, no emoji codes."""
    return Text(printable(_cell(value)), style=style)


def to_json(data: Any) -> str:
    """JSON for stdout: exact (``json.loads`` gives the data back) and terminal-safe."""
    return json_text(data)


def echo(line: Any, err: bool = False) -> None:
    """Print one line of ours that carries data (a source path, a reason): sanitised."""
    click.echo(printable(line), err=err)


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
            writer.writerow([csv_cell(_cell(row.get(c))) for c in columns])
        return
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[text(row.get(c)) for c in columns])
    console().print(table)
