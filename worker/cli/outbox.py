"""``leadmail outbox``: the mail queued by ``send``, what became of it, retry and cancel."""

from __future__ import annotations

from typing import Any

import click

from worker.cli.context import ROW_ID, Context, actor_name, by_option, pass_ctx, ready_app
from worker.cli.output import echo, emit, format_option, to_json
from worker.cli.sanitize import printable_block

LIST_COLUMNS = [
    "id",
    "status",
    "lead_id",
    "executive",
    "recipients",
    "subject",
    "attempts",
    "due_at",
    "sent_at",
    "last_error",
]
STATUSES = ("pending", "claimed", "sending", "sent", "failed", "cancelled", "bounced")


@click.group()
def outbox() -> None:
    """Outbound mail: queued by 'leadmail send', sent by 'leadmail run' or 'dispatch'."""


@outbox.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only mail in this state.")
@click.option("--lead", "lead_id", type=ROW_ID, help="Only mail to this lead.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many, newest first.")
@format_option
@pass_ctx
def list_command(
    ctx: Context, status: str | None, lead_id: int | None, limit: int | None, fmt: str
) -> None:
    """List outbound mail, newest first."""
    from worker.services.outbound import list_outbox

    rows = list_outbox(ready_app(ctx), status=status, lead_id=lead_id, limit=limit)
    if fmt == "table":
        rows = [_short(row) for row in rows]
    else:
        rows = [{k: row[k] for k in (*LIST_COLUMNS, "message_id", "created_by")} for row in rows]
    emit(rows, LIST_COLUMNS, fmt, title=f"{len(rows)} outbound mails" if fmt == "table" else None)


def _short(row: dict[str, Any]) -> dict[str, Any]:
    shown = dict(row)
    shown["recipients"] = ", ".join(row["recipients"])
    for key in ("due_at", "sent_at"):
        shown[key] = (row[key] or "")[:16].replace("T", " ")
    return shown


@outbox.command("show")
@click.argument("outbox_id", type=ROW_ID, metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON object.")
@pass_ctx
def show_command(ctx: Context, outbox_id: int, as_json: bool) -> None:
    """One outbound mail: its headers, body, attempts and every SMTP reply."""
    from worker.services.outbound import show_outbox

    row = show_outbox(ready_app(ctx), outbox_id)
    if as_json:
        click.echo(to_json(row))
        return
    for label, key in (
        ("Outbox", "id"),
        ("Status", "status"),
        ("Lead", "lead_id"),
        ("Executive", "executive"),
        ("Envelope from", "envelope_from"),
        ("Recipients", "recipients"),
        ("Attempts", "attempts"),
        ("Due", "due_at"),
        ("Sent", "sent_at"),
        ("Last error", "last_error"),
        ("Forced because", "reason"),
        ("Queued by", "created_by"),
        ("Queued at", "created_at"),
    ):
        value = row.get(key)
        if value is None or value == "":
            continue
        echo(f"{label + ':':<15} {', '.join(value) if isinstance(value, list) else value}")
    for address, result in sorted(row["results"].items()):
        echo(f"{'Recipient:':<15} {address}: {result.get('state')} {_reply(result)}")
    for entry in row["log"]:
        echo(
            f"{'Attempt ' + str(entry.get('attempt', '?')) + ':':<15} {entry.get('at', '')} "
            f"{entry.get('outcome', '')} {_reply(entry)}"
        )
    if row.get("blob_error"):
        echo(f"(raw message unreadable: {row['blob_error']})")
        return
    click.echo("")
    for name, value in row["headers"]:
        echo(f"{name}: {value}")
    click.echo("")
    block = printable_block(row.get("body") or "")
    if block:
        click.echo(block, nl=not block.endswith("\n"))
    for item in row.get("attachments", []):
        echo(f"[attachment: {item['filename']} ({item['content_type']})]")


def _reply(entry: dict[str, Any]) -> str:
    code, reply = entry.get("code"), entry.get("reply")
    return " ".join(str(part) for part in (code, reply) if part not in (None, ""))


@outbox.command("retry")
@click.argument("outbox_id", type=ROW_ID, metavar="ID")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the mail as one JSON object.")
@pass_ctx
def retry_command(ctx: Context, outbox_id: int, actor: str | None, as_json: bool) -> None:
    """Send a failed mail again (the same message, with the same Message-ID)."""
    from worker.services.outbound import retry

    row = retry(ready_app(ctx), outbox_id, actor_name(actor))
    if as_json:
        click.echo(to_json(row))
        return
    echo(f"outbox {outbox_id}: pending again <{row['message_id']}>")


@outbox.command("cancel")
@click.argument("outbox_id", type=ROW_ID, metavar="ID")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the mail as one JSON object.")
@pass_ctx
def cancel_command(ctx: Context, outbox_id: int, actor: str | None, as_json: bool) -> None:
    """Cancel a mail that has not been handed to a server yet."""
    from worker.services.outbound import cancel

    row = cancel(ready_app(ctx), outbox_id, actor_name(actor))
    if as_json:
        click.echo(to_json(row))
        return
    echo(f"outbox {outbox_id}: cancelled <{row['message_id']}>")
