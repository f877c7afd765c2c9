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


def _timeline(session: Any, lead_id: int, messages: Any) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for m in messages:
        entries.append(
            {
                "at": _iso(m.sent_at or m.created_at),
                "type": "message",
                "direction": m.direction,
                "message_id": m.message_id,
                "subject": m.subject,
                "from": m.sender,
                "kind": m.kind,
                "outcome": m.outcome,
                "reasons": m.reasons,
                "_order": _iso(m.created_at),
            }
        )
    for change in session.scalars(select(StatusChange).where(StatusChange.lead_id == lead_id)):
        entries.append(
            {
                "at": _iso(change.at),
                "type": "status",
                "from_status": change.from_status,
                "to_status": change.to_status,
                "cause": change.cause,
                "_order": _iso(change.at),
            }
        )
    for comment in session.scalars(select(Comment).where(Comment.lead_id == lead_id)):
        entries.append(
            {
                "at": _iso(comment.at),
                "type": "comment",
                "author": comment.author,
                "text": comment.text,
                "_order": _iso(comment.at),
            }
        )
    for act in session.scalars(select(Activity).where(Activity.lead_id == lead_id)):
        kind = "assignment" if act.kind == "assignment" else "activity"
        entries.append(
            {
                "at": _iso(act.at),
                "type": kind,
                "kind": act.kind,
                "summary": act.summary,
                "actor": act.actor,
                "details": act.details,
                "_order": _iso(act.at),
            }
        )
    # Order by when leadmail recorded each entry: a message's Date header can lie.
    entries.sort(key=lambda e: (e["_order"] or "", 0 if e["type"] == "message" else 1))
    for entry in entries:
        del entry["_order"]
    return entries
