"""Reading leads for people: the list, one lead with its timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from worker.errors import LeadmailError, NotFoundError
from worker.services.context import App
from worker.store.models import (
    Activity,
    Comment,
    Contact,
    Lead,
    LeadStatus,
    Message,
    PostalAddress,
    StatusChange,
)

STATUSES = [s.value for s in LeadStatus]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def check_status(status: str) -> str:
    """Accept a status in any case ('do not contact'); refuse an unknown one by name."""
    for known in STATUSES:
        if known.lower() == status.strip().lower():
            return known
    raise LeadmailError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}", status)


def list_leads(
    app: App, status: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    counts = (
        select(Message.lead_id, func.count(Message.id).label("n"))
        .where(Message.lead_id.is_not(None))
        .group_by(Message.lead_id)
        .subquery()
    )
    query = (
        select(Lead, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.lead_id == Lead.id)
        .order_by(Lead.id)
    )
    if status:
        query = query.where(Lead.status == check_status(status))
    if limit:
        query = query.limit(limit)
    with app.db.transaction(write=False) as session:
        return [_summary(lead, int(n)) for lead, n in session.execute(query).all()]


def _summary(lead: Lead, messages: int) -> dict[str, Any]:
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


def lead_detail(app: App, lead_id: int) -> dict[str, Any]:
    with app.db.transaction(write=False) as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            raise NotFoundError(f"no lead {lead_id}", lead_id)
        messages = session.scalars(
            select(Message).where(Message.lead_id == lead_id).order_by(Message.id)
        ).all()
        detail = _summary(lead, len(messages))
        detail.update(
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
                {"name": c.name, "email": c.email, "phone": c.phone, "is_primary": c.is_primary}
                for c in session.scalars(
                    select(Contact).where(Contact.lead_id == lead_id).order_by(Contact.id)
                )
            ],
            addresses=[
                {
                    "type": a.address_type,
                    "line1": a.line1,
                    "line2": a.line2,
                    "city": a.city,
                    "state": a.state,
                    "postcode": a.postcode,
                    "country": a.country,
                }
                for a in session.scalars(
                    select(PostalAddress).where(PostalAddress.lead_id == lead_id)
                )
            ],
        )
        detail["timeline"] = _timeline(session, lead_id, messages)
        return detail


# Entries recorded at the same moment (one message's transaction) read in cause order: the
# message, the status it set, the assignment it got.
_TYPE_ORDER = {"message": 0, "status": 1, "assignment": 2, "activity": 3, "comment": 4}


def _timeline(session: Any, lead_id: int, messages: Any) -> list[dict[str, Any]]:
    """What happened to the lead, in the order it happened.

    ``at`` is when leadmail recorded each entry (a message: when it was received and
    stored). A message's own Date header is ``date``, shown beside it and never the sort
    key: a sender can write any Date (1999, 2099), and the timeline must not reorder on it.
    """
    keyed: list[tuple[tuple[datetime, int, int], dict[str, Any]]] = []

    def add(at: datetime, row_id: int, entry: dict[str, Any]) -> None:
        keyed.append(((at, _TYPE_ORDER[entry["type"]], row_id), {"at": _iso(at), **entry}))

    for m in messages:
        add(
            m.created_at,
            m.id,
            {
                "type": "message",
                "date": _iso(m.sent_at),
                "direction": m.direction,
                "message_id": m.message_id,
                "subject": m.subject,
                "from": m.sender,
                "kind": m.kind,
                "outcome": m.outcome,
                "reasons": m.reasons,
            },
        )
    for change in session.scalars(select(StatusChange).where(StatusChange.lead_id == lead_id)):
        add(
            change.at,
            change.id,
            {
                "type": "status",
                "from_status": change.from_status,
                "to_status": change.to_status,
                "cause": change.cause,
            },
        )
    for comment in session.scalars(select(Comment).where(Comment.lead_id == lead_id)):
        add(
            comment.at,
            comment.id,
            {"type": "comment", "author": comment.author, "text": comment.text},
        )
    for act in session.scalars(select(Activity).where(Activity.lead_id == lead_id)):
        add(
            act.at,
            act.id,
            {
                "type": "assignment" if act.kind == "assignment" else "activity",
                "kind": act.kind,
                "summary": act.summary,
                "actor": act.actor,
                "details": act.details,
            },
        )
    keyed.sort(key=lambda pair: pair[0])
    return [entry for _, entry in keyed]
