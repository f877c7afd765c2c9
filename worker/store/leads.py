"""Reads of leads for people: the list, one lead's fields, contacts, addresses and history.

Plain dicts out, one per row, so the service that orders and shapes them never touches a
session or an ORM object. Not the intake hot path (that is store/inbound.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.store.models import (
    Activity,
    Comment,
    Contact,
    Lead,
    Message,
    PostalAddress,
    StatusChange,
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


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


def summaries(session: Session, status: str | None, limit: int | None) -> list[dict[str, Any]]:
    """One summary per lead (with its message count), by id; ``status`` already checked."""
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
        query = query.where(Lead.status == status)
    if limit:
        query = query.limit(limit)
    return [_summary(lead, int(n)) for lead, n in session.execute(query).all()]


def detail(session: Session, lead_id: int, messages: int) -> dict[str, Any] | None:
    """Every field of one lead, its contacts and postal addresses; None when there is none."""
    lead = session.get(Lead, lead_id)
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
            for c in session.scalars(
                select(Contact).where(Contact.lead_id == lead_id).order_by(Contact.id)
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
            for a in session.scalars(
                select(PostalAddress)
                .where(PostalAddress.lead_id == lead_id)
                .order_by(PostalAddress.id)
            )
        ],
    )
    return row


def messages(session: Session, lead_id: int) -> list[dict[str, Any]]:
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
        for m in session.scalars(
            select(Message).where(Message.lead_id == lead_id).order_by(Message.id)
        )
    ]


def status_changes(session: Session, lead_id: int) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "at": c.at,
            "from_status": c.from_status,
            "to_status": c.to_status,
            "cause": c.cause,
        }
        for c in session.scalars(select(StatusChange).where(StatusChange.lead_id == lead_id))
    ]


def comments(session: Session, lead_id: int) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "at": c.at, "author": c.author, "text": c.text}
        for c in session.scalars(select(Comment).where(Comment.lead_id == lead_id))
    ]


def activities(session: Session, lead_id: int) -> list[dict[str, Any]]:
    return [
        {
            "id": a.id,
            "at": a.at,
            "kind": a.kind,
            "summary": a.summary,
            "actor": a.actor,
            "details": a.details,
        }
        for a in session.scalars(select(Activity).where(Activity.lead_id == lead_id))
    ]
