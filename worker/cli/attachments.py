"""``leadmail attachments``: list a lead's files, write one out to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from worker.cli.context import ROW_ID, Context, pass_ctx, ready_app
from worker.cli.output import echo, emit, format_option, to_json
from worker.services import attachments as service

LIST_COLUMNS = ["id", "filename", "size", "content_type", "from"]


@click.group()
def attachments() -> None:
    """Files of a lead and of its messages: list them, save one."""


@attachments.command("list")
@click.argument("lead_id", type=ROW_ID, metavar="LEAD")
@format_option
@pass_ctx
def list_command(ctx: Context, lead_id: int, fmt: str) -> None:
    """The lead's own attachments (leads attach) and those of its messages."""
    rows = service.list_for_lead(ready_app(ctx), lead_id)
    if fmt != "json":
        rows = [{**row, "from": _origin(row)} for row in rows]
    emit(rows, LIST_COLUMNS, fmt, title=f"attachments of lead {lead_id}")


def _origin(row: dict[str, Any]) -> str:
    if row["on_lead"]:
        return "on the lead"
    return f"message {row['message']}: {row['subject'] or '(no subject)'}"


@attachments.command("save")
@click.argument("attachment_id", type=ROW_ID, metavar="ID")
@click.option(
    "--to",
    "to",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default="the current directory",
    help="The folder to write into; the file is never written outside it.",
)
@click.option("--force", is_flag=True, help="Overwrite a file of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print the attachment and path as JSON.")
@pass_ctx
def save_command(ctx: Context, attachment_id: int, to: Path, force: bool, as_json: bool) -> None:
    """Write attachment ID into a folder under its sanitised name (checked against its hash)."""
    row = service.save(ready_app(ctx), attachment_id, to, force=force)
    if as_json:
        click.echo(to_json(row))
    else:
        echo(f"saved {row['path']} ({row['size']} bytes)")
