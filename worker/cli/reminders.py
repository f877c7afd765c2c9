"""``leadmail reminders``: Next Contact Date and follow-up reminders, what became of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import click

from worker.cli.context import ROW_ID, Context, actor_name, by_option, pass_ctx, ready_app
from worker.cli.output import echo, emit, format_option, to_json

LIST_COLUMNS = [
    "id",
    "lead_id",
    "kind",
    "executive",
    "due_at",
    "status",
    "method",
    "sequence",
    "attempts",
    "last_error",
]
JSON_COLUMNS = [
    *LIST_COLUMNS,
    "recipient",
    "ical_uid",
    "method_sent",
    "sequence_sent",
    "message_id",
    "note",
    "cause",
    "sent_at",
    "created_by",
    "created_at",
]
STATUSES = ("pending", "claimed", "sending", "sent", "failed", "cancelled", "all")


@click.group()
def reminders() -> None:
    """Reminders: set with 'leads set --next-contact-date', sent by 'run' or 'dispatch'."""


def _local(ctx: Context, iso: str | None) -> str:
    """A stored UTC time as wall-clock time in [leads] timezone."""
    if not iso:
        return ""
    zone = ZoneInfo(ctx.settings.leads.zone_name)
    return datetime.fromisoformat(iso).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


@reminders.command("list")
@click.option("--due", is_flag=True, help="Only reminders whose time has come (not yet sent).")
@click.option("--executive", metavar="ID", help="Only reminders for this executive.")
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    help="Only reminders in this state (default: the ones still to go; all: every one).",
)
@click.option("--lead", "lead_id", type=ROW_ID, help="Only this lead's reminders.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many, soonest first.")
@format_option
@pass_ctx
def list_command(
    ctx: Context,
    due: bool,
    executive: str | None,
    status: str | None,
    lead_id: int | None,
    limit: int | None,
    fmt: str,
) -> None:
    """List reminders, soonest first: by default the ones still to go (pending, claimed,
    sending, failed). Times are UTC in json and csv, [leads] timezone in the table."""
    from worker.services.reminders import list_reminders

    rows = list_reminders(
        ready_app(ctx),
        due=due,
        executive=executive,
        status=status,
        lead_id=lead_id,
        limit=limit,
    )
    if fmt == "table":
        shown = [{**row, "due_at": _local(ctx, row["due_at"])} for row in rows]
        emit(shown, LIST_COLUMNS, fmt, title=f"{len(rows)} reminders")
        return
    emit([{k: row[k] for k in JSON_COLUMNS} for row in rows], JSON_COLUMNS, fmt)


@reminders.command("show")
@click.argument("reminder_id", type=ROW_ID, metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON object.")
@pass_ctx
def show_command(ctx: Context, reminder_id: int, as_json: bool) -> None:
    """One reminder: whom, when, its calendar entry (UID, SEQUENCE) and every attempt."""
    from worker.services.reminders import show_reminder

    row = show_reminder(ready_app(ctx), reminder_id)
    if as_json:
        click.echo(to_json(row))
        return
    for label, key in (
        ("Reminder", "id"),
        ("Lead", "lead_id"),
        ("Kind", "kind"),
        ("Executive", "executive"),
        ("Recipient", "recipient"),
        ("Due", "due_at"),
        ("Status", "status"),
        ("Next send", "method"),
        ("Calendar UID", "ical_uid"),
        ("Sequence", "sequence"),
        ("Last sent", "method_sent"),
        ("Message-ID", "message_id"),
        ("Note", "note"),
        ("Cause", "cause"),
        ("Attempts", "attempts"),
        ("Last error", "last_error"),
        ("Sent", "sent_at"),
        ("Set by", "created_by"),
    ):
        value: Any = row.get(key)
        if value is None or value == "":
            continue
        if key in ("due_at", "sent_at"):
            value = f"{_local(ctx, value)} ({value})"
        if key == "method_sent":
            value = f"{value} (SEQUENCE {row['sequence_sent']})"
        echo(f"{label + ':':<14} {value}")
    for entry in row["log"]:
        details = ", ".join(
            f"{k}={v}" for k, v in entry.items() if k not in ("at", "event") and v not in (None, "")
        )
        echo(f"{'Log:':<14} {entry.get('at', '')} {entry.get('event') or 'attempt'} {details}")
    echo(f"{'Lead:':<14} leadmail leads show {row['lead_id']}")


@reminders.command("cancel")
@click.argument("reminder_id", type=ROW_ID, metavar="ID")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the reminder as one JSON object.")
@pass_ctx
def cancel_command(ctx: Context, reminder_id: int, actor: str | None, as_json: bool) -> None:
    """Cancel a reminder; one already in the executive's calendar gets a cancellation
    (METHOD:CANCEL, same UID). A manual one clears the lead's Next Contact Date."""
    from worker.services.reminders import cancel_reminder

    row = cancel_reminder(ready_app(ctx), reminder_id, actor_name(actor))
    if as_json:
        click.echo(to_json(row))
        return
    if row["method"] == "CANCEL" and row["status"] != "cancelled":
        echo(f"reminder {reminder_id}: cancelled; the calendar cancellation is queued")
    else:
        echo(f"reminder {reminder_id}: cancelled")
