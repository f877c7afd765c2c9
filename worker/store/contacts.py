"""SQL for a lead's contacts (the people at a B2B customer) and its postal addresses, and the
reads ``contacts suggest`` needs: who appeared on the lead's mail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.store.models import Contact, Message, Participant, PostalAddress

_ADDRESS_MAX = 320


def _contact(c: Contact) -> dict[str, Any]:
    return {
        "id": c.id,
        "lead_id": c.lead_id,
        "name": c.name,
        "email": c.email,
        "phone": c.phone,
        "designation": c.designation,
        "is_primary": c.is_primary,
        "created_at": c.created_at.isoformat() if c.created_at else None,
    }


def _address(a: PostalAddress) -> dict[str, Any]:
    return {
        "id": a.id,
        "lead_id": a.lead_id,
        "type": a.address_type,
        "line1": a.line1,
        "line2": a.line2,
        "city": a.city,
        "state": a.state,
        "postcode": a.postcode,
        "country": a.country,
    }


def contacts(session: Session, lead_id: int) -> list[dict[str, Any]]:
    query = select(Contact).where(Contact.lead_id == lead_id).order_by(Contact.id)
    return [_contact(c) for c in session.scalars(query)]


def contact_keys(session: Session, lead_id: int) -> set[str]:
    query = select(Contact.email_key).where(Contact.lead_id == lead_id)
    return {key for key in session.scalars(query) if key}


def contact(session: Session, contact_id: int) -> dict[str, Any] | None:
    found = session.get(Contact, contact_id)
    return _contact(found) if found is not None else None


def add_contact(
    session: Session,
    lead_id: int,
    *,
    name: str | None,
    email: str,
    email_key: str,
    phone: str | None,
    designation: str | None,
    primary: bool,
    now: datetime,
) -> dict[str, Any]:
    """Insert a contact; a primary one first makes every other contact of the lead not primary."""
    if primary:
        session.execute(
            update(Contact)
            .where(Contact.lead_id == lead_id, Contact.is_primary.is_(True))
            .values(is_primary=False)
        )
    row = Contact(
        lead_id=lead_id,
        name=name,
        email=email[:_ADDRESS_MAX],
        email_key=email_key[:_ADDRESS_MAX],
        phone=phone,
        designation=designation,
        is_primary=primary,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return _contact(row)


def remove_contact(session: Session, contact_id: int) -> None:
    found = session.get(Contact, contact_id)
    if found is not None:
        session.delete(found)
        session.flush()


def addresses(session: Session, lead_id: int) -> list[dict[str, Any]]:
    query = select(PostalAddress).where(PostalAddress.lead_id == lead_id).order_by(PostalAddress.id)
    return [_address(a) for a in session.scalars(query)]


def address(session: Session, address_id: int) -> dict[str, Any] | None:
    found = session.get(PostalAddress, address_id)
    return _address(found) if found is not None else None


def add_address(session: Session, lead_id: int, fields: dict[str, str | None]) -> dict[str, Any]:
    """``fields``: type, line1, line2, city, state, postcode, country (already checked)."""
    row = PostalAddress(
        lead_id=lead_id,
        address_type=fields["type"],
        line1=fields["line1"],
        line2=fields["line2"],
        city=fields["city"],
        state=fields["state"],
        postcode=fields["postcode"],
        country=fields["country"],
    )
    session.add(row)
    session.flush()
    return _address(row)


def remove_address(session: Session, address_id: int) -> None:
    found = session.get(PostalAddress, address_id)
    if found is not None:
        session.delete(found)
        session.flush()


def message_people(session: Session, lead_id: int) -> list[dict[str, Any]]:
    """Sender and recipients of each of the lead's messages, with its kind and direction."""
    query = (
        select(Message.sender, Message.sender_name, Message.recipients, Message.kind)
        .where(Message.lead_id == lead_id)
        .order_by(Message.id)
    )
    return [
        {"sender": s, "sender_name": n, "recipients": r or {}, "kind": k}
        for s, n, r, k in session.execute(query).all()
    ]


def participant_keys(session: Session, lead_id: int) -> list[str]:
    query = (
        select(Participant.email_key).where(Participant.lead_id == lead_id).order_by(Participant.id)
    )
    return list(session.scalars(query))
