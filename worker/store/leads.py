"""Leads for people: the list, one lead's fields, contacts, addresses and history, and the
edits a person makes (``leads set``).

Plain dicts out, one per row, so the service that orders and shapes them never touches a
session or an ORM object. Not the intake hot path (that is store/inbound.py, which also
inserts the leads made by hand, so both ways of making a lead write the same row).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, exists, func, insert, or_, select, update

from worker.store import tables

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# Core statements over the tables only: `leads list` and `leads show` read through here
# without importing the ORM (bench/startup.py); a Session runs them as well as a Connection.
# The tables a listing does not read are named where used: each is built on first use.
_leads = tables.leads
_messages = tables.messages

EDITABLE_COLUMNS = (
    "id",
    "is_organization",
    "person_name",
    "company_name",
    "gender",
    "email",
    "email_key",
    "phone",
    "mobile",
    "website",
    "organization_domain",
    "source",
    "lead_type",
    "market_segment",
    "industry",
    "territory",
    "notes",
    "custom_fields",
    "status",
    "assigned_to",
    "next_contact_date",
    "next_contact_by",
)
"""What ``leads set`` reads of a lead before changing it."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _summary(lead: Any, messages: int) -> dict[str, Any]:
    return {
        "id": lead.id,
        "email": lead.email,
        "name": lead.person_name,
        "company": lead.company_name,
        "is_organization": lead.is_organization,
        "status": lead.status,
        "source": lead.source,
        "assigned_to": lead.assigned_to,
        "next_contact_date": _iso(lead.next_contact_date),
        "next_contact_by": lead.next_contact_by,
        "created_at": _iso(lead.created_at),
        "messages": messages,
    }


# `leads list --sort`: the public name of each column a list may be ordered by.
SORT_COLUMNS: dict[str, Any] = {
    "id": _leads.c.id,
    "created_at": _leads.c.created_at,
    "updated_at": _leads.c.updated_at,
    "name": _leads.c.person_name,
    "email": _leads.c.email,
    "company": _leads.c.company_name,
    "status": _leads.c.status,
    "assigned_to": _leads.c.assigned_to,
}
_TEXT_SORTS = frozenset({"name", "email", "company", "status", "assigned_to"})

# `leads list --field`: a lead column by its public name (the key of ``leads show --format
# json``), as the attribute that holds it.
FIELD_ATTRIBUTES: dict[str, str] = {
    "id": "id",
    "email": "email",
    "name": "person_name",
    "company": "company_name",
    "is_organization": "is_organization",
    "status": "status",
    "source": "source",
    "assigned_to": "assigned_to",
    "next_contact_date": "next_contact_date",
    "next_contact_by": "next_contact_by",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "gender": "gender",
    "phone": "phone",
    "mobile": "mobile",
    "website": "website",
    "organization_domain": "organization_domain",
    "lead_type": "lead_type",
    "market_segment": "market_segment",
    "industry": "industry",
    "territory": "territory",
    "notes": "notes",
    "email_bouncing": "email_bouncing",
    "related_lead_id": "related_lead_id",
    "custom_fields": "custom_fields",
}
CUSTOM_PREFIX = "custom."


@dataclass(frozen=True)
class LeadFilter:
    """What ``leads list`` narrows, orders and widens by; every value checked by the service.

    ``assigned_to`` and ``sources`` are compared case-insensitively (give them lower-cased);
    ``since``/``until`` bound ``created_at`` inclusively; ``search`` and ``company`` are
    substrings, matched case-insensitively with LIKE's own ``%`` and ``_`` taken literally.
    ``fields`` are FIELD_ATTRIBUTES names or ``custom.KEY``.
    """

    statuses: tuple[str, ...] = ()
    assigned_to: tuple[str, ...] = ()
    unassigned: bool = False
    sources: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None
    company: str | None = None
    sort: str = "id"
    descending: bool = False
    limit: int | None = None
    fields: tuple[str, ...] = ()


def summaries(
    session: Session | Connection, wanted: LeadFilter | None = None
) -> list[dict[str, Any]]:
    """One summary per lead that ``wanted`` selects, with its message count, in its order.

    One statement whatever the filter: the counts come from one grouped subquery and a
    search of subjects is an EXISTS over the lead's messages, so a listing never costs a
    query per lead. lower(...) LIKE (SQLAlchemy's ``icontains``) reads the same on SQLite
    and PostgreSQL, where ILIKE would not exist on one and ``LIKE`` differ in case on the
    other.
    """
    wanted = wanted or LeadFilter()
    counts = (
        select(_messages.c.lead_id, func.count(_messages.c.id).label("n"))
        .where(_messages.c.lead_id.is_not(None))
        .group_by(_messages.c.lead_id)
        .subquery()
    )
    query = select(_leads, func.coalesce(counts.c.n, 0).label("message_count")).outerjoin(
        counts, counts.c.lead_id == _leads.c.id
    )
    query = query.where(*_conditions(wanted)).order_by(*_order(wanted))
    if wanted.limit:
        query = query.limit(wanted.limit)
    return [
        _summary(lead, int(lead.message_count)) | _fields(lead, wanted.fields)
        for lead in session.execute(query).all()
    ]


def _conditions(wanted: LeadFilter) -> list[ColumnElement[bool]]:
    # A merged lead is only a pointer to the lead it went into (leads merge).
    where: list[ColumnElement[bool]] = [_leads.c.merged_into_id.is_(None)]
    if wanted.statuses:
        where.append(_leads.c.status.in_(wanted.statuses))
    executives: list[ColumnElement[bool]] = []
    if wanted.assigned_to:
        executives.append(func.lower(_leads.c.assigned_to).in_(wanted.assigned_to))
    if wanted.unassigned:
        executives.append(or_(_leads.c.assigned_to.is_(None), _leads.c.assigned_to == ""))
    if executives:
        where.append(or_(*executives))
    if wanted.sources:
        where.append(func.lower(_leads.c.source).in_(wanted.sources))
    if wanted.since is not None:
        where.append(_leads.c.created_at >= wanted.since)
    if wanted.until is not None:
        where.append(_leads.c.created_at <= wanted.until)
    if wanted.company:
        where.append(_leads.c.company_name.icontains(wanted.company, autoescape=True))
    if wanted.search:
        text = wanted.search
        subjects = exists().where(
            _messages.c.lead_id == _leads.c.id, _messages.c.subject.icontains(text, autoescape=True)
        )
        where.append(
            or_(
                _leads.c.person_name.icontains(text, autoescape=True),
                _leads.c.email.icontains(text, autoescape=True),
                _leads.c.company_name.icontains(text, autoescape=True),
                subjects,
            )
        )
    return where


def _order(wanted: LeadFilter) -> list[ColumnElement[Any]]:
    """The sort column with NULLs last either way (the backends differ there by default),
    text without regard to case, and the id to break ties the same way on both."""
    if wanted.sort == "id":
        return [_leads.c.id.desc() if wanted.descending else _leads.c.id.asc()]
    column = SORT_COLUMNS[wanted.sort]
    key = func.lower(column) if wanted.sort in _TEXT_SORTS else column
    if wanted.descending:
        return [column.is_(None).asc(), key.desc(), _leads.c.id.desc()]
    return [column.is_(None).asc(), key.asc(), _leads.c.id.asc()]


def _fields(lead: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The extra columns asked for: lead columns by public name, ``custom.KEY`` from the
    lead's custom fields (None where the lead has no such key)."""
    row: dict[str, Any] = {}
    for name in names:
        if name.startswith(CUSTOM_PREFIX):
            row[name] = (lead.custom_fields or {}).get(name[len(CUSTOM_PREFIX) :])
            continue
        value = getattr(lead, FIELD_ATTRIBUTES[name])
        row[name] = _iso(value) if isinstance(value, datetime) else value
    return row


def detail(session: Session | Connection, lead_id: int, messages: int) -> dict[str, Any] | None:
    """Every field of one lead, its contacts and postal addresses; None when there is none."""
    lead = session.execute(select(_leads).where(_leads.c.id == lead_id)).first()
    if lead is None:
        return None
    row = _summary(lead, messages)
    row.update(
        gender=lead.gender,
        phone=lead.phone,
        mobile=lead.mobile,
        website=lead.website,
        organization_domain=lead.organization_domain,
        lead_type=lead.lead_type,
        market_segment=lead.market_segment,
        industry=lead.industry,
        territory=lead.territory,
        notes=lead.notes,
        custom_fields=lead.custom_fields,
        email_bouncing=lead.email_bouncing,
        related_lead_id=lead.related_lead_id,
        updated_at=_iso(lead.updated_at),
        contacts=[
            {
                "id": c.id,
                "name": c.name,
                "email": c.email,
                "phone": c.phone,
                "designation": c.designation,
                "is_primary": c.is_primary,
            }
            for c in session.execute(
                select(tables.contacts)
                .where(tables.contacts.c.lead_id == lead_id)
                .order_by(tables.contacts.c.id)
            )
        ],
        addresses=[
            {
                "id": a.id,
                "type": a.address_type,
                "line1": a.line1,
                "line2": a.line2,
                "city": a.city,
                "state": a.state,
                "postcode": a.postcode,
                "country": a.country,
            }
            for a in session.execute(
                select(tables.addresses)
                .where(tables.addresses.c.lead_id == lead_id)
                .order_by(tables.addresses.c.id)
            )
        ],
    )
    return row


def messages(session: Session | Connection, lead_id: int) -> list[dict[str, Any]]:
    """The lead's messages, each with ``id`` and ``at`` (when we stored it) for the timeline."""
    return [
        {
            "id": m.id,
            "at": m.created_at,
            "date": _iso(m.sent_at),
            "direction": m.direction,
            "message_id": m.message_id,
            "subject": m.subject,
            "from": m.sender,
            "kind": m.kind,
            "outcome": m.outcome,
            "reasons": m.reasons,
        }
        for m in session.execute(
            select(_messages).where(_messages.c.lead_id == lead_id).order_by(_messages.c.id)
        )
    ]


def status_changes(session: Session | Connection, lead_id: int) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "at": c.at,
            "from_status": c.from_status,
            "to_status": c.to_status,
            "cause": c.cause,
        }
        for c in session.execute(
            select(tables.status_changes).where(tables.status_changes.c.lead_id == lead_id)
        )
    ]


def comments(session: Session | Connection, lead_id: int) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "at": c.at, "author": c.author, "text": c.text}
        for c in session.execute(
            select(tables.comments).where(tables.comments.c.lead_id == lead_id)
        )
    ]


def activities(session: Session | Connection, lead_id: int) -> list[dict[str, Any]]:
    return [
        {
            "id": a.id,
            "at": a.at,
            "kind": a.kind,
            "summary": a.summary,
            "actor": a.actor,
            "details": a.details,
        }
        for a in session.execute(
            select(tables.activities).where(tables.activities.c.lead_id == lead_id)
        )
    ]


# -- edits by a person ---------------------------------------------------------------------


def editable(conn: Connection, lead_id: int) -> dict[str, Any] | None:
    """The lead's EDITABLE_COLUMNS, locked until the transaction ends; None if there is none.

    FOR UPDATE (PostgreSQL): an edit and a reply moving the status at the same moment must
    not both read the old row. SQLite's writing transactions are serialised already.
    """
    row = (
        conn.execute(
            select(*(_leads.c[name] for name in EDITABLE_COLUMNS))
            .where(_leads.c.id == lead_id)
            .with_for_update()
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    found = dict(row)
    found["custom_fields"] = dict(found["custom_fields"] or {})
    return found


def update_lead(conn: Connection, lead_id: int, values: Mapping[str, Any], now: datetime) -> None:
    """Write the given columns of a lead (and its updated_at)."""
    conn.execute(update(_leads).where(_leads.c.id == lead_id).values(**values, updated_at=now))


def record_activity(
    conn: Connection,
    lead_id: int,
    *,
    kind: str,
    summary: str,
    actor: str | None,
    details: Mapping[str, Any],
    now: datetime,
) -> int:
    """One entry in the lead's timeline (an edit, a note ...); its id."""
    activity_id = conn.scalar(
        insert(tables.activities).returning(tables.activities.c.id),
        {
            "lead_id": lead_id,
            "kind": kind,
            "summary": summary,
            "actor": actor,
            "details": dict(details),
            "due_date": None,
            "at": now,
        },
    )
    assert activity_id is not None
    return int(activity_id)


def current_id(session: Session | Connection, lead_id: int) -> int | None:
    """The lead an id stands for now: a merged lead's id stands for the lead it went into
    (followed to the end of the chain); None when there is no such lead."""
    seen: set[int] = set()
    current = lead_id
    while current not in seen:
        seen.add(current)
        row = session.execute(
            select(_leads.c.id, _leads.c.merged_into_id).where(_leads.c.id == current)
        ).first()
        if row is None:
            return None
        if row.merged_into_id is None:
            return int(row.id)
        current = int(row.merged_into_id)
    return current
