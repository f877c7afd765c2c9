"""``leadmail leads``: list leads, show one with its timeline, add and edit them by hand."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from worker.cli.context import ROW_ID, Context, actor_name, by_option, pass_ctx, ready_app
from worker.cli.output import console, echo, emit, format_option, text, to_json
from worker.services.lead_fields import COLUMNS, LeadEdit
from worker.services.leads import (
    SORT_FIELDS,
    STATUSES,
    add_lead,
    check_fields,
    lead_detail,
    list_leads,
    set_lead,
)

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
    "gender",
    "phone",
    "mobile",
    "website",
    "organization_domain",
    "source",
    "lead_type",
    "market_segment",
    "industry",
    "territory",
    "assigned_to",
    "next_contact_date",
    "next_contact_by",
    "email_bouncing",
    "related_lead_id",
    "notes",
    "custom_fields",  # each field on its own row, under its label (see _custom_rows)
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
    if detail.get("merged_from") is not None:
        echo(f"lead {detail['merged_from']} was merged into {detail['id']}")
    out = console()
    fields = Table(show_header=False, box=None)
    for key in SHOW_FIELDS:
        rows = (
            _custom_rows(ctx, detail.get(key) or {})
            if key == "custom_fields"
            else [(key, detail.get(key))]
        )
        for label, value in rows:
            if value not in (None, "", {}, []):
                fields.add_row(text(label, "bold"), text(_text(value)))
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
    if detail.get("attachments"):
        out.print(text("attachments", "bold"))
        for f in detail["attachments"]:
            what = f"{f['content_type']}, {f['size']} bytes, {_origin(f)}"
            out.print(text(f"  {f['id']}: {f['filename']} ({what})"))
    _print_records(detail.get("records") or {})
    if detail.get("reminders"):
        out.print(text("reminders", "bold"))
        for r in detail["reminders"]:
            what = f"  {r['id']}: {r['kind']} for {r['executive'] or r['recipient']} at "
            what += f"{_local(ctx, r['due_at'])} ({r['status']})"
            out.print(text(what + (f": {r['note']}" if r.get("note") else "")))
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


_F = TypeVar("_F", bound=Callable[..., object])

# --option → the field name services/lead_fields.py checks (the name `leads show` prints):
# the email and every text field it stores, each option named as its field.
FIELD_OPTIONS = {name: name for name in ("email", *COLUMNS)}


def lead_field_options(command: _F) -> _F:
    """The fields of ERPNext's Lead form, shared by ``leads add`` and ``leads set``."""
    options = [
        click.option("--email", metavar="ADDRESS", help="The lead's email address."),
        click.option("--name", metavar="NAME", help="The person's name."),
        click.option(
            "--organization/--no-organization",
            "is_organization",
            default=None,
            help="The lead is an organisation, not a person (needs --company).",
        ),
        click.option("--company", metavar="NAME", help="The organisation's name."),
        click.option("--gender", help="One of [leads] genders (default: ERPNext's list)."),
        click.option("--phone", metavar="NUMBER", help="Phone number."),
        click.option("--mobile", metavar="NUMBER", help="Mobile number."),
        click.option("--website", metavar="URL", help="Website."),
        click.option("--source", help="Where the lead came from (add: default Manual)."),
        click.option(
            "--type", "lead_type", help="Lead type (ERPNext: Client, Channel Partner, ...)."
        ),
        click.option("--segment", "market_segment", help="Market segment."),
        click.option("--industry", help="Industry."),
        click.option("--territory", help="Territory."),
        click.option("--notes", metavar="TEXT", help="Notes kept on the lead."),
        click.option(
            "--field",
            "custom",
            multiple=True,
            metavar="NAME=VALUE",
            help="A custom field declared in [[leads.custom_fields]]; repeat for several. "
            "An empty VALUE clears it.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _edit(given: dict[str, Any]) -> LeadEdit:
    """The options a person gave (None = not given; '' = clear) as one LeadEdit."""
    return LeadEdit(
        fields={
            field: given[option]
            for option, field in FIELD_OPTIONS.items()
            if given.get(option) is not None
        },
        is_organization=given.get("is_organization"),
        custom=tuple(given.get("custom") or ()),
    )


@leads.command("add")
@lead_field_options
@click.option(
    "--allow-duplicate",
    is_flag=True,
    help="Add the lead even when its address already has one (linked to it).",
)
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the new lead as one JSON object.")
@pass_ctx
def add_command(
    ctx: Context, /, allow_duplicate: bool, actor: str | None, as_json: bool, **given: Any
) -> None:
    """Create a lead by hand (--email required); the rules route it like one from mail.

    Its status starts as Lead, logged with who made it (--by). An address that already has
    a lead is refused, naming that lead, unless --allow-duplicate.
    """
    lead = add_lead(ready_app(ctx), _edit(given), actor_name(actor), allow_duplicate)
    if as_json:
        click.echo(to_json(lead))
        return
    who = f"assigned to {lead['assigned_to']}" if lead["assigned_to"] else "unassigned"
    echo(f"lead {lead['id']} created: {lead['email']} ({lead['status']}, {who})")


@leads.command("set")
@click.argument("lead_id", type=ROW_ID)
@lead_field_options
@click.option(
    "--status",
    metavar="STATUS",
    help="Lead, Open, Replied, Interested or Do Not Contact (the others follow from the "
    "lead's opportunities, quotations and customer).",
)
@click.option(
    "--allow-duplicate",
    is_flag=True,
    help="With --email: allow an address another lead already has.",
)
@click.option(
    "--next-contact-date",
    "next_when",
    metavar="WHEN",
    help="Remind --next-contact-by then, by mail with a calendar invitation: "
    "2026-12-01T10:00, '2026-12-01 10:00+07:00', 'tomorrow 10:00', 'monday 9:00', +3d, +2h "
    "(no offset: [leads] timezone). Setting it again moves the reminder.",
)
@click.option(
    "--next-contact-by",
    "next_by",
    metavar="EXEC",
    help="The executive (rule file id) to remind; default: the lead's owner.",
)
@click.option("--note", "next_note", metavar="TEXT", help="A note for the reminder.")
@click.option(
    "--clear-next-contact",
    is_flag=True,
    help="Cancel the reminder (a calendar entry already sent gets a cancellation).",
)
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the lead as one JSON object.")
@pass_ctx
def set_command(
    ctx: Context,
    /,
    lead_id: int,
    status: str | None,
    allow_duplicate: bool,
    next_when: str | None,
    next_by: str | None,
    next_note: str | None,
    clear_next_contact: bool,
    actor: str | None,
    as_json: bool,
    **given: Any,
) -> None:
    """Change the given fields of a lead (an empty value clears one); the rest stay.

    Every change goes into the lead's timeline with who made it (--by) and when.
    """
    from worker.services.reminders import NextContact

    next_contact = NextContact(next_when, next_by, next_note, clear_next_contact)
    lead = set_lead(
        ready_app(ctx),
        lead_id,
        _edit(given),
        status,
        actor_name(actor),
        allow_duplicate,
        next_contact,
    )
    if as_json:
        click.echo(to_json(lead))
        return
    changes = lead["changes"]
    if not changes:
        echo(f"lead {lead_id}: nothing changed (it has these values already)")
        return
    echo(f"lead {lead_id}: changed {', '.join(changes)}")
    for reminder in lead.get("reminders") or []:
        if reminder["kind"] == "manual" and "next_contact_date" in changes:
            echo(
                f"reminder {reminder['id']}: {reminder['executive']} at "
                f"{_local(ctx, reminder['due_at'])}"
            )


def _custom_rows(ctx: Context, values: dict[str, Any]) -> list[tuple[str, Any]]:
    """Declared custom fields under their labels, in the config's order; then any others."""
    declared = ctx.settings.leads.custom_fields
    rows = [(f.title, values.get(f.name)) for f in declared]
    names = {f.name for f in declared}
    rows += [(f"custom.{k}", v) for k, v in values.items() if k not in names]
    return rows


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return to_json(value)
    return str(value)


def _local(ctx: Context, iso: str) -> str:
    """A stored UTC time as wall-clock time in [leads] timezone, with the zone's name."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(ctx.settings.leads.zone_name)
    return datetime.fromisoformat(iso).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ")


def _what(entry: dict[str, Any]) -> str:
    if entry["type"] == "message" and entry.get("outbox_status"):
        to = ", ".join(entry.get("recipients") or [])
        return (
            f"→ {entry['subject'] or '(no subject)'}  [outbound, {entry['outbox_status']}] "
            f"from {entry.get('from') or '?'} to {to}"
        )
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


def _origin(attachment: dict[str, Any]) -> str:
    if attachment["on_lead"]:
        return "on the lead"
    return f"message {attachment['message']}: {attachment['subject'] or '(no subject)'}"


@leads.command("attach")
@click.argument("lead_id", type=ROW_ID)
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="FILE..."
)
@by_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print each new attachment as one JSON object a line."
)
@pass_ctx
def attach_command(
    ctx: Context, lead_id: int, files: tuple[Path, ...], actor: str | None, as_json: bool
) -> None:
    """Store files on a lead (all or none); each is logged in its timeline.

    Names are sanitised (no folders, no control characters); a file larger than
    leads.max_message_bytes is refused. `attachments save ID` writes one back out.
    """
    from worker.services.attachments import attach

    for row in attach(ready_app(ctx), lead_id, list(files), actor_name(actor)):
        if as_json:
            click.echo(to_json(row))
        else:
            echo(
                f"attachment {row['id']} {row['filename']} ({row['content_type']}, "
                f"{row['size']} bytes) on lead {lead_id}"
            )


# -- export and import (services/transfer.py) -------------------------------------------------


@leads.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["erpnext-csv", "csv", "json"]),
    default="erpnext-csv",
    show_default=True,
    help="erpnext-csv: ERPNext Lead fieldnames, loads through its Data Import; csv/json: "
    "leadmail's own names, custom fields as custom.NAME.",
)
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
@click.option("--source", "sources", multiple=True, help="Only leads from this source.")
@click.option("--since", metavar="DATE", help="Only leads created on or after (ISO date/time).")
@click.option("--until", metavar="DATE", help="Only leads created on or before (ISO date/time).")
@click.option("--search", metavar="TEXT", help="Name, email, company or a subject contains TEXT.")
@click.option("--company", metavar="TEXT", help="Only leads whose company name contains TEXT.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of standard output.",
)
@pass_ctx
def export_command(
    ctx: Context,
    fmt: str,
    statuses: tuple[str, ...],
    executives: tuple[str, ...],
    sources: tuple[str, ...],
    since: str | None,
    until: str | None,
    search: str | None,
    company: str | None,
    output: str | None,
) -> None:
    """Write leads to a file: the same filters as leads list, oldest first.

    Cells a spreadsheet would run as a formula (starting with = + - @) get a leading
    apostrophe; leads import takes it off again.
    """
    from worker.services.transfer import export_leads

    data = export_leads(
        ready_app(ctx),
        fmt,
        status=statuses,
        assigned_to=executives,
        source=sources,
        since=since,
        until=until,
        search=search,
        company=company,
    )
    if fmt == "json":  # the same JSON, with what a terminal would act on escaped (exact)
        data = to_json(json.loads(data))
    if output is None:
        click.echo(data, nl=fmt == "json")
        return
    try:
        with open(output, "w", encoding="utf-8", newline="") as out:
            out.write(data)
    except OSError as exc:
        from worker.errors import ValidationError

        raise ValidationError(f"cannot write {output}: {exc.strerror}", output) from None
    echo(f"exported to {output}")


@leads.command("import")
@click.argument("file", type=click.File("rb"))
@by_option
@click.option("--dry-run", is_flag=True, help="Check every row, import nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts and new ids as JSON.")
@pass_ctx
def import_command(
    ctx: Context, file: Any, actor: str | None, dry_run: bool, as_json: bool
) -> None:
    """Import leads from a CSV: ERPNext's layout (leads export) or leadmail's own csv.

    Every row is checked first; one bad row (bad email, organisation without company,
    unknown gender or status, a wrong custom field, an address already known) and nothing
    is imported: each bad row is reported with its line. A status is kept as the file says,
    Converted and Quotation included (an export re-imports to the same leads).
    """
    from worker.services.transfer import ImportRefused, import_leads

    name = getattr(file, "name", "-")
    try:
        done = import_leads(
            ready_app(ctx), file.read(), actor_name(actor), name=name, dry_run=dry_run
        )
    except ImportRefused as exc:
        for problem in exc.problems:
            echo(problem, err=True)
        raise
    if as_json:
        click.echo(to_json(done))
    elif dry_run:
        echo(f"{name}: {done['checked']} leads would be imported (dry run)")
    else:
        echo(f"{name}: {done['imported']} leads imported")


# -- records made from a lead: opportunity, quotation, customer ------------------------------


@leads.group("make")
def make() -> None:
    """Make an opportunity, quotation or customer from a lead (its status follows).

    Each copies the lead's name (the organisation's, else the person's), email, source,
    contacts and postal addresses as they are now; later edits of the lead leave the record
    as it was made (as ERPNext does).
    """


def _made(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(to_json(row))
        return
    echo(
        f"{row['kind']} {row['id']} made from lead {row['lead_id']} "
        f"(lead status: {row['lead_status']})"
    )


def _money_options(command: _F) -> _F:
    command = click.option(
        "--currency", metavar="CODE", help="ISO 4217 currency code (EUR, USD ...); with --amount."
    )(command)
    return click.option(
        "--amount", metavar="X", help="A decimal amount, e.g. 1250.50; with --currency."
    )(command)


@make.command("opportunity")
@click.argument("lead_id", type=ROW_ID)
@click.option("--title", metavar="T", help="Its title (default: the lead's name).")
@_money_options
@click.option("--expected-close", metavar="DATE", help="Expected closing date (YYYY-MM-DD).")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the opportunity as one JSON object.")
@pass_ctx
def make_opportunity_command(
    ctx: Context,
    lead_id: int,
    title: str | None,
    amount: str | None,
    currency: str | None,
    expected_close: str | None,
    actor: str | None,
    as_json: bool,
) -> None:
    """Make an open opportunity from a lead: the lead becomes Opportunity (unless a
    quotation or customer ranks higher, or it is Do Not Contact)."""
    from worker.services.records import make_opportunity

    row = make_opportunity(
        ready_app(ctx),
        lead_id,
        actor=actor_name(actor),
        title=title,
        amount=amount,
        currency=currency,
        expected_close=expected_close,
    )
    _made(row, as_json)


@make.command("quotation")
@click.argument("lead_id", type=ROW_ID)
@_money_options
@click.option("--valid-until", metavar="DATE", help="Valid until (YYYY-MM-DD).")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the quotation as one JSON object.")
@pass_ctx
def make_quotation_command(
    ctx: Context,
    lead_id: int,
    amount: str | None,
    currency: str | None,
    valid_until: str | None,
    actor: str | None,
    as_json: bool,
) -> None:
    """Make an open quotation from a lead: the lead becomes Quotation (unless it is
    Converted or Do Not Contact). Mark it with 'leadmail quotations set ID --status'."""
    from worker.services.records import make_quotation

    row = make_quotation(
        ready_app(ctx),
        lead_id,
        actor=actor_name(actor),
        amount=amount,
        currency=currency,
        valid_until=valid_until,
    )
    _made(row, as_json)


@make.command("customer")
@click.argument("lead_id", type=ROW_ID)
@click.option("--name", metavar="N", help="The customer's name (default: the lead's name).")
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print the customer as one JSON object.")
@pass_ctx
def make_customer_command(
    ctx: Context, lead_id: int, name: str | None, actor: str | None, as_json: bool
) -> None:
    """Make the customer a lead became: the lead is Converted (unless Do Not Contact)."""
    from worker.services.records import make_customer

    _made(make_customer(ready_app(ctx), lead_id, actor=actor_name(actor), name=name), as_json)


def _print_records(records: dict[str, list[dict[str, Any]]]) -> None:
    """The lead's opportunities, quotations and customer, one line each."""
    lines = []
    for key, kind in (
        ("customers", "customer"),
        ("quotations", "quotation"),
        ("opportunities", "opportunity"),
    ):
        for r in records.get(key, []):
            money = f" {r['amount']} {r['currency']}" if r.get("amount") else ""
            what = r.get("name") or r.get("title") or r.get("party_name") or ""
            state = f" [{r['status']}]" if "status" in r else ""
            when = r.get("valid_until") or r.get("expected_close")
            until = f" until {when}" if r.get("valid_until") else (f" close {when}" if when else "")
            lines.append(f"  {kind} {r['id']}{state}: {what}{money}{until}")
    if lines:
        out = console()
        out.print(text("records", "bold"))
        for line in lines:
            out.print(text(line))


@leads.command("merge")
@click.argument("keep", type=ROW_ID)
@click.argument("other", type=ROW_ID)
@by_option
@click.option("--json", "as_json", is_flag=True, help="Print what moved as one JSON object.")
@pass_ctx
def merge_command(ctx: Context, keep: int, other: int, actor: str | None, as_json: bool) -> None:
    """Merge lead OTHER into lead KEEP: its messages, contacts, addresses, notes, activities,
    records, attachments and participants move to KEEP, its address becomes one of KEEP's
    contacts, and OTHER's id shows KEEP from then on (leads list hides it)."""
    from worker.services.lifecycle import merge_leads

    done = merge_leads(ready_app(ctx), keep, other, actor_name(actor))
    if as_json:
        click.echo(to_json(done))
        return
    moved = ", ".join(f"{n} {name}" for name, n in done["moved"].items() if n)
    echo(f"lead {other} merged into lead {keep}: moved {moved or 'nothing'}")


@leads.command("erase")
@click.argument("lead_id", type=ROW_ID)
@click.option("--yes", is_flag=True, help="Really erase: this cannot be undone.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as one JSON object.")
@pass_ctx
def erase_command(ctx: Context, lead_id: int, yes: bool, as_json: bool) -> None:
    """Erase a lead for a privacy request: the lead, its messages (and mail from its
    addresses that is on no lead, such as out-of-office notes), contacts, addresses, notes,
    activities, status changes, records, attachments and the stored files nothing else uses.
    Only salted digests of its addresses and Message-IDs stay, so that mail of it fetched
    again is ignored (reason "erased") instead of making the lead again. Quarantined mail
    is not searched: see 'leadmail quarantine list'."""
    from worker.errors import ValidationError
    from worker.services.lifecycle import erase_lead

    if not yes:
        raise ValidationError(f"erasing lead {lead_id} cannot be undone: add --yes", lead_id)
    done = erase_lead(ready_app(ctx), lead_id)
    if as_json:
        click.echo(to_json(done))
        return
    names = ("leads", "messages", "contacts", "addresses", "notes", "activities")
    more = ("status_changes", "opportunities", "quotations", "customers", "attachments")
    parts = [f"{done[name]} {name.replace('_', ' ')}" for name in (*names, *more, "participants")]
    echo(f"lead {lead_id} erased: removed {', '.join(parts)}, {done['blobs']} blobs")
