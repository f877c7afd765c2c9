"""Leads for people: the list, one lead with its timeline, and leads made and edited by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from worker.errors import LeadmailError, NotFoundError, ValidationError
from worker.mail.addresses import email_key, organization_domain
from worker.services.context import App
from worker.services.lead_fields import (
    COLUMNS,
    LeadEdit,
    check_company,
    checked_fields,
    custom_values,
    missing_required,
    status_by_hand,
)
from worker.store import inbound
from worker.store import leads as store
from worker.store.lookups import StoreLookups
from worker.store.models import LeadStatus, utcnow

STATUSES = [s.value for s in LeadStatus]


def check_status(status: str) -> str:
    """Accept a status in any case ('do not contact'); refuse an unknown one by name."""
    for known in STATUSES:
        if known.lower() == status.strip().lower():
            return known
    raise LeadmailError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}", status)


def list_leads(
    app: App, status: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    checked = check_status(status) if status else None
    with app.db.transaction(write=False) as session:
        return store.summaries(session, checked, limit)


def lead_detail(app: App, lead_id: int) -> dict[str, Any]:
    with app.db.transaction(write=False) as session:
        messages = store.messages(session, lead_id)
        detail = store.detail(session, lead_id, len(messages))
        if detail is None:
            raise NotFoundError(f"no lead {lead_id}", lead_id)
        detail["timeline"] = _timeline(
            messages,
            store.status_changes(session, lead_id),
            store.comments(session, lead_id),
            store.activities(session, lead_id),
        )
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
    key = email_key(email)
    from worker.services.assignment import route, rule_book  # the rule engine: only here

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
        columns = inbound.new_lead_columns(
            person_name=values.get("name"),
            email=email,
            email_key=key,
            organization_domain=organization_domain(email, app.sender_policy),
            company_name=values.get("company"),
            status=LeadStatus.LEAD.value,
            source=values.get("source") or MANUAL_SOURCE,
            related_lead_id=existing[0] if existing else None,
            now=now,
        )
        for name, value in values.items():
            if name in COLUMNS and name not in ("name", "company", "source"):
                columns[COLUMNS[name]] = value
        columns.update(is_organization=is_organization, custom_fields=custom, assigned_to=None)
        lead_id = inbound.insert_lead(conn, columns)
        inbound.log_status_change(
            conn,
            lead_id,
            before=None,
            to=LeadStatus.LEAD.value,
            cause=f"created by hand by {actor}",
            message_row_id=None,
            now=now,
        )
        if rules is not None:
            route(conn, rules, lead_id, None, now)
    return _record(app, lead_id)


def set_lead(
    app: App,
    lead_id: int,
    edit: LeadEdit,
    status: str | None,
    actor: str,
    allow_duplicate: bool = False,
) -> dict[str, Any]:
    """``leads set``: change only the given fields; each change logged with who and when.

    Field changes are one ``edit`` activity whose details are ``{field: [old, new]}``; a
    status change is a status_changes row ("set by hand by NAME"). Derived statuses are
    refused with the command that makes them. Returns the lead (``lead_detail`` without
    the timeline) with ``changes``: what this edit changed, status included.
    """
    settings = app.settings.leads
    values = checked_fields(edit, settings)
    custom = custom_values(settings, edit.custom)
    for name, value in custom.items():
        declared = settings.custom_field(name)
        if value is None and declared is not None and declared.required:
            raise ValidationError(f"custom field {name!r} is required: it cannot be cleared", name)
    wanted = status_by_hand(status, lead_id) if status is not None else None
    if not values and not custom and edit.is_organization is None and wanted is None:
        raise ValidationError(
            "nothing to change: give a field option, --field NAME=VALUE or --status", lead_id
        )
    now = utcnow()
    with app.db.begin() as conn:
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
    return {**_record(app, lead_id), "changes": changes}


def _new_address(
    app: App, conn: Connection, lead_id: int, columns: dict[str, Any], allow_duplicate: bool
) -> None:
    """A changed email: its key and organisation domain follow; refused if another lead has it."""
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
