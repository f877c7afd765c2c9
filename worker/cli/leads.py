"""``leadmail leads``: list leads and show one with its timeline."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from worker.cli.context import ROW_ID, Context, actor_name, by_option, pass_ctx, ready_app
from worker.cli.output import console, echo, emit, format_option, text, to_json
from worker.services.leads import SORT_FIELDS, STATUSES, check_fields, lead_detail, list_leads

LIST_COLUMNS = ["id", "status", "name", "email", "company", "assigned_to", "messages", "created_at"]
CSV_COLUMNS = [
    "id",
    "email",
    "name",
    "company",
    "is_organization",
    "status",
    "source",
    "assigned_to",
    "next_contact_date",
    "next_contact_by",
    "created_at",
    "messages",
]
SHOW_FIELDS = [
    "id",
    "status",
    "name",
    "company",
    "is_organization",
    "email",
    "phone",
    "organization_domain",
    "source",
    "lead_type",
    "market_segment",
    "industry",
    "assigned_to",
    "next_contact_date",
    "next_contact_by",
    "email_bouncing",
    "related_lead_id",
    "notes",
    "custom_fields",
    "created_at",
    "updated_at",
]


@click.group()
def leads() -> None:
    """Leads made from mail."""


@leads.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES, case_sensitive=False),
    help="Only leads with this status (repeat for several).",
)
@click.option(
    "--assigned-to",
    "executives",
    multiple=True,
    metavar="EXEC",
    help="Only leads of this executive ('none': unassigned; repeat for several).",
)
@click.option(
    "--source", "sources", multiple=True, help="Only leads from this source (e.g. Email)."
)
@click.option("--since", metavar="DATE", help="Only leads created on or after (ISO date/time).")
@click.option("--until", metavar="DATE", help="Only leads created on or before (ISO date/time).")
@click.option(
    "--search",
    metavar="TEXT",
    help="Only leads whose name, email, company or a message subject contains TEXT (any case).",
)
@click.option("--company", metavar="TEXT", help="Only leads whose company name contains TEXT.")
@click.option(
    "--sort",
    metavar="FIELD",
    help=f"Order by {', '.join(SORT_FIELDS)}; -FIELD for descending (default: id).",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many leads.")
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="NAME",
    help="Add a column: a lead field (phone, industry, lead_type, territory, updated_at …) "
    "or custom.KEY; repeatable.",
)
@format_option
@pass_ctx
def list_command(
    ctx: Context,
    statuses: tuple[str, ...],
    executives: tuple[str, ...],
    sources: tuple[str, ...],
    since: str | None,
    until: str | None,
    search: str | None,
    company: str | None,
    sort: str | None,
    limit: int | None,
    fields: tuple[str, ...],
    fmt: str,
) -> None:
    """List leads, oldest first unless --sort says otherwise."""
    rows = list_leads(
        ready_app(ctx),
        status=statuses,
        limit=limit,
        assigned_to=executives,
        source=sources,
        since=since,
        until=until,
        search=search,
        company=company,
        sort=sort,
        fields=fields,
    )
    if fmt == "table":
        for row in rows:
            for key in ("created_at", "updated_at", "next_contact_date"):
                if key in row:
                    row[key] = (row[key] or "")[:16].replace("T", " ")
    base = CSV_COLUMNS if fmt == "csv" else LIST_COLUMNS
    # The service checked the names; here they only become columns, in the order given.
    columns = [*base, *(name for name in check_fields(fields) if name not in base)]
    emit(rows, columns, fmt, title=None if fmt != "table" else f"{len(rows)} leads")


@leads.command("show")
@click.argument("lead_id", type=ROW_ID)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@pass_ctx
def show_command(ctx: Context, lead_id: int, fmt: str) -> None:
    """Show one lead: its fields, contacts and a timeline of messages and status changes."""
    detail = lead_detail(ready_app(ctx), lead_id)
    if fmt == "json":
        click.echo(to_json(detail))
        return
    out = console()
    fields = Table(show_header=False, box=None)
    for key in SHOW_FIELDS:
        value = detail.get(key)
        if value not in (None, "", {}, []):
            fields.add_row(text(key, "bold"), text(_text(value)))
    out.print(fields)
    if detail["contacts"]:
        out.print(text("contacts", "bold"))
        for c in detail["contacts"]:
            extra = [c.get("designation"), c.get("phone"), "primary" if c["is_primary"] else None]
            more = ", ".join(x for x in extra if x)
            out.print(text(f"  {c['name'] or ''} <{c['email']}>" + (f" ({more})" if more else "")))
    if detail.get("addresses"):
        out.print(text("addresses", "bold"))
        for a in detail["addresses"]:
            parts = [a[k] for k in ("line1", "line2", "city", "state", "postcode", "country")]
            out.print(text(f"  {a['type']}: {', '.join(p for p in parts if p)}"))
    # "at" is when leadmail recorded it (the order); "date" the message's own Date header.
    timeline = Table(title="timeline")
    for column in ("at", "type", "what", "date"):
        timeline.add_column(column, overflow="fold")
    for entry in detail["timeline"]:
        timeline.add_row(
            text(_when(entry["at"])),
            text(entry["type"]),
            text(_what(entry)),
            text(_when(entry.get("date"))),
        )
    out.print(timeline)


@leads.command("assign")
@click.argument("lead_id", type=ROW_ID)
@click.argument("executive")
@by_option
@pass_ctx
def assign_command(ctx: Context, lead_id: int, executive: str, actor: str | None) -> None:
    """Assign a lead to an executive by hand, overriding the rules (logged)."""
    from worker.services.assignment import assign_manually  # the rule engine: only here

    done = assign_manually(ready_app(ctx), lead_id, executive.strip(), actor_name(actor))
    was = done["previous"] or "unassigned"
    echo(f"lead {lead_id}: assigned to {done['executive']} (was {was})")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return to_json(value)
    return str(value)


def _when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ")


def _what(entry: dict[str, Any]) -> str:
    if entry["type"] == "message":
        arrow = "→" if entry["direction"] == "out" else "←"
        return (
            f"{arrow} {entry['subject'] or '(no subject)'}  [{entry['kind']}, "
            f"{entry['outcome']}] from {entry.get('from') or '?'}"
        )
    if entry["type"] == "status":
        return f"{entry['from_status'] or '∅'} → {entry['to_status']}: {entry['cause']}"
    if entry["type"] == "comment":
        return f"{entry['author'] or ''}: {entry['text']}"
    if entry["type"] == "activity":
        details = entry.get("details") or {}
        extra = [f"{details['duration_minutes']} min"] if details.get("duration_minutes") else []
        extra += [f"outcome: {details['outcome']}"] if details.get("outcome") else []
        tail = f" ({'; '.join(extra)})" if extra else ""
        return f"{entry.get('actor') or ''}: {entry.get('kind', '')}: {entry['summary']}{tail}"
    return f"{entry.get('kind', '')}: {entry.get('summary', '')}"


@leads.command("note")
@click.argument("lead_id", type=ROW_ID)
@click.argument("note", required=False, metavar="[TEXT]")
@click.option(
    "--file",
    "note_file",
    type=click.File("rb"),
    help="Read the note from this file ('-': standard input) instead of TEXT.",
)
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the new note as JSON.")
@pass_ctx
def note_command(
    ctx: Context,
    lead_id: int,
    note: str | None,
    note_file: Any,
    actor: str | None,
    as_json: bool,
) -> None:
    """Add a note (a comment) to a lead's timeline."""
    from worker.errors import ValidationError
    from worker.services.notes import add_note

    if (note is None) == (note_file is None):
        raise ValidationError("give the note as TEXT or with --file (one of them)", note)
    if note is None:
        try:
            note = note_file.read().decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(f"--file {note_file.name} is not UTF-8 text", None) from None
    row = add_note(ready_app(ctx), lead_id, note, actor_name(actor))
    if as_json:
        click.echo(to_json(row))
    else:
        echo(f"note {row['id']} added to lead {lead_id}")


@leads.command("activity")
@click.argument("lead_id", type=ROW_ID)
@click.option("--kind", required=True, metavar="call|meeting|task", help="What it was.")
@click.option(
    "--at",
    "when",
    required=True,
    metavar="WHEN",
    help="When, ISO 8601 (2026-11-30T14:00, or with an offset: +01:00, Z); without an "
    "offset it is this machine's local time.",
)
@click.option("--duration", metavar="MIN", help="How long, in minutes.")
@click.option("--summary", required=True, help="What it was about.")
@click.option("--outcome", help="What came of it.")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the new activity as JSON.")
@pass_ctx
def activity_command(
    ctx: Context,
    lead_id: int,
    kind: str,
    when: str,
    duration: str | None,
    summary: str,
    outcome: str | None,
    actor: str | None,
    as_json: bool,
) -> None:
    """Log a call, meeting or task on a lead; the timeline places it at --at."""
    from worker.services.notes import add_activity

    row = add_activity(
        ready_app(ctx),
        lead_id,
        kind=kind,
        at=when,
        summary=summary,
        actor=actor_name(actor),
        duration=duration,
        outcome=outcome,
    )
    if as_json:
        click.echo(to_json(row))
    else:
        echo(f"{row['kind']} {row['id']} logged on lead {lead_id} at {_when(row['at'])}")
