"""Leads for people: the list, one lead with its timeline, and leads made and edited by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from worker.errors import LeadmailError, NotFoundError, ValidationError
from worker.services.lead_fields import (
    COLUMNS,
    LeadEdit,
    check_company,
    checked_fields,
    custom_values,
    missing_required,
    status_by_hand,
)
from worker.services.notes import live_lead
from worker.store import leads as store
from worker.store.tables import LeadStatus, utcnow

if TYPE_CHECKING:
    from worker.routing.schema import RuleSet
    from worker.services.context import App
    from worker.services.reminders import NextContact

# `leads list` imports this module: what only `leads show` reads (records, attachments,
# the outbox, reminders) and what only making and editing leads needs (address rules, the
# intake statements, the rule engine) is imported inside those functions, to keep the
# listing's start-up short (bench/startup.py).

STATUSES = [s.value for s in LeadStatus]


def check_status(status: str) -> str:
    """Accept a status in any case ('do not contact'); refuse an unknown one by name."""
    for known in STATUSES:
        if known.lower() == status.strip().lower():
            return known
    raise LeadmailError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}", status)


# `--field` names people use besides the columns' own (ERPNext's form labels, `leads add`'s
# option names).
FIELD_ALIASES = {
    "type": "lead_type",
    "segment": "market_segment",
    "person_name": "name",
    "lead_name": "name",
    "company_name": "company",
    "domain": "organization_domain",
}
SORT_FIELDS = list(store.SORT_COLUMNS)
FIELD_NAMES = list(store.FIELD_ATTRIBUTES)
UNASSIGNED = "none"


def list_leads(
    app: App,
    status: str | Sequence[str] | None = None,
    limit: int | None = None,
    *,
    assigned_to: str | Sequence[str] = (),
    source: str | Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    search: str | None = None,
    company: str | None = None,
    sort: str | None = None,
    fields: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The leads a person asked for, as summaries (plus the ``fields`` asked for).

    Every value is what a person typed: checked here, refused with one line naming it
    (a date that is no date, a field or sort key that does not exist).
    """
    executives = [name.strip() for name in _many(assigned_to)]
    if any(not name for name in executives):
        raise ValidationError("--assigned-to needs an executive's name, or 'none'", "")
    sources = [name.strip() for name in _many(source)]
    if any(not name for name in sources):
        raise ValidationError("--source needs a source's name (e.g. Email)", "")
    start = parse_when(since, "since") if since is not None else None
    end = parse_when(until, "until", end_of_day=True) if until is not None else None
    if start is not None and end is not None and start > end:
        raise ValidationError(f"--since {since} is after --until {until}", since)
    sort_field, descending = check_sort(sort or "id")
    wanted = store.LeadFilter(
        statuses=tuple(dict.fromkeys(check_status(s) for s in _many(status))),
        assigned_to=tuple(n.lower() for n in executives if n.lower() != UNASSIGNED),
        unassigned=any(n.lower() == UNASSIGNED for n in executives),
        sources=tuple(name.lower() for name in sources),
        since=start,
        until=end,
        search=(search or "").strip() or None,
        company=(company or "").strip() or None,
        sort=sort_field,
        descending=descending,
        limit=limit,
        fields=check_fields(fields, _declared_custom_fields(app)),
    )
    with app.db.read() as conn:
        return store.summaries(conn, wanted)


def _many(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def parse_when(value: str, option: str, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time as aware UTC; a bare date is its first moment (its last,
    for the end of a range: ``--until 2026-11-30`` includes that day). A time without an
    offset is UTC, as every time leadmail stores."""
    text = value.strip()
    try:
        if len(text) <= 10:  # 2026-11-30 (or 20261130): a whole day
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max if end_of_day else time.min)
        else:
            moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise ValidationError(
            f"--{option}: not a date or date-time: {value!r} (give 2026-11-30 or "
            "2026-11-30T09:30, optionally with +02:00)",
            value,
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def check_sort(value: str) -> tuple[str, bool]:
    """``name`` ascending, ``-name`` descending; an unknown field refused naming the known."""
    text = value.strip().lower()
    descending = text.startswith("-")
    field = text.lstrip("+-")
    if field not in store.SORT_COLUMNS:
        raise ValidationError(
            f"unknown sort field {value!r}; one of: {', '.join(SORT_FIELDS)} "
            "(prefix - for descending, e.g. -created_at)",
            value,
        )
    return field, descending


def check_fields(names: Sequence[str], declared: set[str] | None = None) -> tuple[str, ...]:
    """Each ``--field`` as its public name, duplicates dropped, or ``custom.KEY``.

    ``declared`` holds the custom fields the config declares; when it is None (nothing
    declared) any ``custom.KEY`` is accepted and shows what the leads hold under KEY.
    """
    checked: list[str] = []
    for given in names:
        text = given.strip()
        if text.lower().startswith(store.CUSTOM_PREFIX):
            key = text[len(store.CUSTOM_PREFIX) :].strip()
            if not key or (declared is not None and key not in declared):
                known = ", ".join(sorted(declared or ())) or "none declared"
                raise ValidationError(f"unknown custom field {given!r} (declared: {known})", given)
            checked.append(store.CUSTOM_PREFIX + key)
            continue
        name = FIELD_ALIASES.get(text.lower(), text.lower())
        if name not in store.FIELD_ATTRIBUTES:
            raise ValidationError(
                f"unknown field {given!r}; one of: {', '.join(FIELD_NAMES)}, "
                f"{', '.join(FIELD_ALIASES)} or custom.KEY",
                given,
            )
        checked.append(name)
    return tuple(dict.fromkeys(checked))


def _declared_custom_fields(app: App) -> set[str] | None:
    """The names of the custom fields ``[[leads.custom_fields]]`` declares; None if none."""
    declared = getattr(app.settings.leads, "custom_fields", None) or []
    names = {
        str(getattr(d, "name", None) or (d.get("name") if isinstance(d, dict) else ""))
        for d in declared
    }
    names.discard("")
    return names or None


def lead_detail(app: App, lead_id: int) -> dict[str, Any]:
    """A lead with its timeline; a merged lead's id shows the lead it went into, with
    ``merged_from`` naming the id asked for."""
    from worker.services import reminders
    from worker.store import attachments as attachment_store
    from worker.store import outbox as outbox_store
    from worker.store import records as records_store

    asked = lead_id
    with app.db.read() as session:
        lead_id = live_lead(session, lead_id)
        messages = store.messages(session, lead_id)
        # Mail we sent carries what became of it: queued, sent, failed, bounced; to whom.
        sent = outbox_store.for_lead(session, lead_id)
        for message in messages:
            if message["id"] in sent:
                message.update(sent[message["id"]])
        detail = store.detail(session, lead_id, len(messages))
        if detail is None:
            raise NotFoundError(f"no lead {lead_id}", lead_id)
        detail["timeline"] = _timeline(
            messages,
            store.status_changes(session, lead_id),
            store.comments(session, lead_id),
            store.activities(session, lead_id),
        )
        # The lead's own files (leads attach) and its messages', in the order they came.
        detail["attachments"] = attachment_store.for_lead(session, lead_id)
        detail["records"] = records_store.records_of(session, lead_id)
        detail["reminders"] = reminders.pending_for_lead(session, lead_id)
        if asked != lead_id:
            detail["merged_from"] = asked
        return detail


# Entries recorded at the same moment (one message's transaction) read in cause order: the
# message, the status it set, the assignment it got.
_TYPE_ORDER = {"message": 0, "status": 1, "assignment": 2, "activity": 3, "comment": 4}


def _timeline(
    messages: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    comments: list[dict[str, Any]],
    activities: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """What happened to the lead, in the order it happened.

    ``at`` is when leadmail recorded each entry (a message: when it was received and
    stored). A message's own Date header is ``date``, shown beside it and never the sort
    key: a sender can write any Date (1999, 2099), and the timeline must not reorder on it.
    """
    keyed: list[tuple[tuple[datetime, int, int], dict[str, Any]]] = []

    def add(kind: str, row: dict[str, Any]) -> None:
        at, row_id = row["at"], row["id"]
        fields = {k: v for k, v in row.items() if k not in ("id", "at")}
        entry = {"at": at.isoformat(), "type": kind, **fields}
        keyed.append(((at, _TYPE_ORDER[kind], row_id), entry))

    for m in messages:
        add("message", m)
    for change in changes:
        add("status", change)
    for comment in comments:
        add("comment", comment)
    for act in activities:
        add("assignment" if act["kind"] == "assignment" else "activity", act)
    keyed.sort(key=lambda pair: pair[0])
    return [entry for _, entry in keyed]


# -- made and edited by hand -------------------------------------------------------------------

MANUAL_SOURCE = "Manual"
"""The source of a lead made with ``leads add`` when none is given."""


def add_lead(app: App, edit: LeadEdit, actor: str, allow_duplicate: bool = False) -> dict[str, Any]:
    """``leads add``: a lead typed in by a person, routed by the rules like one from mail.

    Checked first (one ValidationError per refusal), then one transaction: refuse an address
    that already has a lead (its own or a contact's) unless ``allow_duplicate``, insert the
    lead as intake does, log its first status with who made it, and route it. Returns the
    new lead as ``lead_detail`` shows it, without the timeline.
    """
    settings = app.settings.leads
    values = checked_fields(edit, settings)
    email = values.get("email")
    if not email:
        raise ValidationError("an email address is required (--email)", None)
    is_organization = bool(edit.is_organization)
    check_company(is_organization, values.get("company"))
    custom = {k: v for k, v in custom_values(settings, edit.custom).items() if v is not None}
    missing_required(settings, custom)
    from worker.mail.addresses import email_key
    from worker.services.assignment import rule_book  # the rule engine: only here
    from worker.store import inbound
    from worker.store.lookups import StoreLookups

    key = email_key(email)

    rules = rule_book(app).load()  # a broken rule file is refused here, before anything
    now = utcnow()
    with app.db.begin() as conn:
        inbound.lock_sender(conn, key)  # against intake making a lead of the same address
        existing = StoreLookups(conn).leads_by_address(key)
        if existing and not allow_duplicate:
            raise ValidationError(
                f"{email} already has lead {existing[0]}; --allow-duplicate to add another",
                email,
            )
        extra = {
            COLUMNS[name]: value
            for name, value in values.items()
            if name in COLUMNS and name not in ("name", "company", "source")
        }
        lead_id = insert_new_lead(
            app,
            conn,
            rules,
            email=email,
            person_name=values.get("name"),
            company=values.get("company"),
            source=values.get("source") or MANUAL_SOURCE,
            cause=f"created by hand by {actor}",
            related_lead_id=existing[0] if existing else None,
            now=now,
            columns={**extra, "is_organization": is_organization, "custom_fields": custom},
        )
    return _record(app, lead_id)


def insert_new_lead(
    app: App,
    conn: Connection,
    rules: RuleSet | None,
    *,
    email: str,
    person_name: str | None,
    company: str | None,
    source: str,
    cause: str,
    now: datetime,
    related_lead_id: int | None = None,
    columns: dict[str, Any] | None = None,
) -> int:
    """A lead a person made (``leads add``, ``send --to`` a new address), inside the caller's
    transaction: inserted as intake inserts one, its first status logged with ``cause``,
    routed by the rules. The caller holds ``inbound.lock_sender`` on the address and has
    checked that no lead has it."""
    from worker.mail.addresses import email_key, organization_domain
    from worker.services.assignment import route  # the rule engine: only here
    from worker.store import inbound

    row = inbound.new_lead_columns(
        person_name=person_name,
        email=email,
        email_key=email_key(email),
        organization_domain=organization_domain(email, app.sender_policy),
        company_name=company,
        status=LeadStatus.LEAD.value,
        source=source,
        related_lead_id=related_lead_id,
        now=now,
    )
    row.update(columns or {})
    row["assigned_to"] = None
    lead_id = inbound.insert_lead(conn, row)
    inbound.log_status_change(
        conn,
        lead_id,
        before=None,
        to=LeadStatus.LEAD.value,
        cause=cause,
        message_row_id=None,
        now=now,
    )
    if rules is not None:
        route(conn, rules, lead_id, None, now)
    return lead_id


def set_lead(
    app: App,
    lead_id: int,
    edit: LeadEdit,
    status: str | None,
    actor: str,
    allow_duplicate: bool = False,
    next_contact: NextContact | None = None,
) -> dict[str, Any]:
    """``leads set``: change only the given fields; each change logged with who and when.

    Field changes are one ``edit`` activity whose details are ``{field: [old, new]}``; a
    status change is a status_changes row ("set by hand by NAME"). Derived statuses are
    refused with the command that makes them. Returns the lead (``lead_detail`` without
    the timeline) with ``changes``: what this edit changed, status included.

    ``next_contact`` sets, moves or clears the lead's manual reminder in the same
    transaction (services/reminders.py); the reminder's own timeline entry says so. A lead
    this edit makes Do Not Contact loses its reminders.
    """
    settings = app.settings.leads
    values = checked_fields(edit, settings)
    custom = custom_values(settings, edit.custom)
    for name, value in custom.items():
        declared = settings.custom_field(name)
        if value is None and declared is not None and declared.required:
            raise ValidationError(f"custom field {name!r} is required: it cannot be cleared", name)
    wanted = status_by_hand(status, lead_id) if status is not None else None
    contact = next_contact if next_contact is not None and next_contact.given else None
    if (
        not values
        and not custom
        and edit.is_organization is None
        and wanted is None
        and contact is None
    ):
        raise ValidationError(
            "nothing to change: give a field option, --field NAME=VALUE, --status or "
            "--next-contact-date",
            lead_id,
        )
    from worker.services import reminders
    from worker.store import inbound

    now = utcnow()
    parsed = reminders.check_next_contact(app, contact, now) if contact is not None else None
    rules = None
    if contact is not None and not contact.clear:
        from worker.services.assignment import rule_book  # the rule engine: only here

        rules = rule_book(app).load()  # the executives; a broken rule file is refused here
    with app.db.begin() as conn:
        lead_id = live_lead(conn, lead_id)
        lead = store.editable(conn, lead_id)
        if lead is None:
            raise NotFoundError(f"no lead {lead_id}", lead_id)
        changes: dict[str, list[Any]] = {}
        columns: dict[str, Any] = {}

        def change(name: str, column: str, value: Any) -> None:
            if lead[column] != value:
                changes[name] = [lead[column], value]
                columns[column] = value

        if edit.is_organization is not None:
            change("is_organization", "is_organization", edit.is_organization)
        for name, value in values.items():
            change(name, "email" if name == "email" else COLUMNS[name], value)
        if edit.is_organization is not None or "company" in values:
            check_company(
                columns.get("is_organization", lead["is_organization"]),
                columns.get("company_name", lead["company_name"]),
            )
        if "email" in columns:
            _new_address(app, conn, lead_id, columns, allow_duplicate)
        stored = dict(lead["custom_fields"])
        for name, value in custom.items():
            old = stored.get(name)
            if value is None:
                stored.pop(name, None)
            else:
                stored[name] = value
            if old != value or type(old) is not type(value):
                changes[f"custom.{name}"] = [old, value]
        if stored != lead["custom_fields"]:
            columns["custom_fields"] = stored
        if columns:
            store.update_lead(conn, lead_id, columns, now)
        if changes:
            store.record_activity(
                conn,
                lead_id,
                kind="edit",
                summary=_edit_summary(actor, changes),
                actor=actor,
                details=changes,
                now=now,
            )
        if wanted is not None and wanted != lead["status"]:
            inbound.set_lead_status(conn, lead_id, wanted, now)
            inbound.log_status_change(
                conn,
                lead_id,
                before=lead["status"],
                to=wanted,
                cause=f"set by hand by {actor}",
                message_row_id=None,
                now=now,
            )
            changes["status"] = [lead["status"], wanted]
            reminders.cancel_on_status(
                conn, lead_id, wanted, f"lead set {wanted} by {actor}", now=now
            )
        if contact is not None:
            status_after = wanted or str(lead["status"])
            changes.update(
                reminders.apply_next_contact(
                    conn, lead, contact, parsed, rules, actor, now, status_after
                )
            )
    return {**_record(app, lead_id), "changes": changes}


def _new_address(
    app: App, conn: Connection, lead_id: int, columns: dict[str, Any], allow_duplicate: bool
) -> None:
    """A changed email: its key and organisation domain follow; refused if another lead has it."""
    from worker.mail.addresses import email_key, organization_domain
    from worker.store import inbound
    from worker.store.lookups import StoreLookups

    email = columns["email"]
    key = email_key(email)
    inbound.lock_sender(conn, key)
    others = [found for found in StoreLookups(conn).leads_by_address(key) if found != lead_id]
    if others and not allow_duplicate:
        raise ValidationError(
            f"{email} already has lead {others[0]}; --allow-duplicate to use it here too", email
        )
    columns["email_key"] = key
    columns["organization_domain"] = organization_domain(email, app.sender_policy)


def _record(app: App, lead_id: int) -> dict[str, Any]:
    detail = lead_detail(app, lead_id)
    detail.pop("timeline", None)
    return detail


def _edit_summary(actor: str, changes: dict[str, list[Any]]) -> str:
    """``by alice: phone ∅ → +44 20 7946 0958; company Acme → Acme Ltd`` for the timeline."""

    def short(value: Any) -> str:
        if value is None or value == "":
            return "∅"
        text = str(value) if not isinstance(value, bool) else ("yes" if value else "no")
        text = " ".join(text.split())
        return text if len(text) <= 40 else text[:39] + "…"

    parts = [
        f"{name} changed" if name == "notes" else f"{name} {short(old)} → {short(new)}"
        for name, (old, new) in changes.items()
    ]
    return f"by {actor}: " + "; ".join(parts)
