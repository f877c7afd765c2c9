"""``leadmail messages``: read one stored message, list a lead's messages."""

from __future__ import annotations

from typing import Any

import click

from worker.cli.context import ROW_ID, Context, pass_ctx, ready_app
from worker.cli.output import echo, emit, format_option, to_json
from worker.cli.sanitize import printable_block
from worker.errors import ValidationError
from worker.services import messages as service

LIST_COLUMNS = ["id", "date", "direction", "from", "subject", "outcome"]
# `messages show`: the headers we keep, in the order a mail client shows them.
HEADER_LINES = [
    ("from", "from"),
    ("to", "to"),
    ("cc", "cc"),
    ("subject", "subject"),
    ("date", "date"),
    ("message-id", "message_id"),
    ("lead", "lead_id"),
    ("kind", "kind"),
    ("outcome", "outcome"),
    ("reasons", "reasons"),
]


@click.group()
def messages() -> None:
    """Stored messages: read one, list a lead's."""


@messages.command("show")
@click.argument("ref", metavar="MESSAGE_ID|ROWID")
@click.option("--raw", is_flag=True, help="The raw bytes as fetched, unchanged (binary).")
@click.option("--text", "text_only", is_flag=True, help="Only the cleaned text body.")
@click.option("--html", "html_only", is_flag=True, help="Only the sanitised HTML body.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@pass_ctx
def show_command(
    ctx: Context, ref: str, raw: bool, text_only: bool, html_only: bool, fmt: str
) -> None:
    """Show one message by its row id (as `messages list` prints it) or its Message-ID.

    By default the headers we keep and the cleaned text; --raw writes the stored bytes to
    stdout as they are (redirect them to a file, like `git cat-file`).
    """
    picked = (("--raw", raw), ("--text", text_only), ("--html", html_only))
    chosen = [name for name, on in picked if on]
    if fmt == "json":
        chosen.append("--format json")
    if len(chosen) > 1:
        raise ValidationError(f"{' and '.join(chosen)} do not go together", chosen)
    app = ready_app(ctx)
    if raw:
        # click.echo writes bytes to the binary stream as they are: no decoding, no newline.
        click.echo(service.raw_bytes(app, ref), nl=False)
        return
    message = service.show(app, ref)
    if fmt == "json":
        click.echo(to_json(message))
        return
    if text_only or html_only:
        _body(message["text"] if text_only else message["html"])
        return
    width = max(len(label) for label, _ in HEADER_LINES)
    for label, key in HEADER_LINES:
        echo(f"{label + ':':<{width + 1}} {_header(key, message)}")
    for a in message["attachments"]:
        echo(
            f"{'attachment:':<{width + 1}} {a['filename']} ({a['content_type']}, "
            f"{a['size']} bytes, id {a['id']})"
        )
    click.echo("")
    if message["text"]:
        _body(message["text"])
    elif message["html"]:
        echo("(no text part; --html shows the HTML)")


@messages.command("list")
@click.option("--lead", "lead_id", type=ROW_ID, required=True, help="The lead's id.")
@format_option
@pass_ctx
def list_command(ctx: Context, lead_id: int, fmt: str) -> None:
    """List a lead's messages in the order they were stored."""
    rows = service.for_lead(ready_app(ctx), lead_id)
    if fmt == "table":
        for row in rows:
            row["date"] = (row["date"] or "")[:16].replace("T", " ")
    title = f"{len(rows)} messages of lead {lead_id}" if fmt == "table" else None
    emit(rows, LIST_COLUMNS, fmt, title=title)


def _header(key: str, message: dict[str, Any]) -> str:
    value = message.get(key)
    if key == "from":
        name = message.get("from_name")
        return f"{name} <{value}>" if name and value else value or name or ""
    if key == "message_id":
        return f"<{value}>"
    if key == "date":
        return (value or "").replace("T", " ")
    if key == "reasons":
        return "; ".join(value or [])
    if isinstance(value, list):
        return ", ".join(value)
    return "" if value is None else str(value)


def _body(body: str | None) -> None:
    """A body for a terminal: its lines kept, every control character shown escaped."""
    block = printable_block(body or "")
    if block:
        click.echo(block, nl=not block.endswith("\n"))
