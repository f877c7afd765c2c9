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
            primary = " (primary)" if c["is_primary"] else ""
            out.print(text(f"  {c['name'] or ''} <{c['email']}>{primary}"))
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
    return f"{entry.get('kind', '')}: {entry.get('summary', '')}"
