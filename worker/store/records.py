"""Opportunities, quotations and customers made from a lead, and the status they give it.

Plain dicts out, like store/leads.py and store/notes.py, so services never hold an ORM object.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.store.models import Customer, Lead, Opportunity, Quotation, StatusChange

Record = Opportunity | Quotation | Customer
KINDS: dict[str, type[Record]] = {
    "opportunity": Opportunity,
    "quotation": Quotation,
    "customer": Customer,
}


def lead_for_record(session: Session, lead_id: int) -> dict[str, Any] | None:
    """The lead's fields a record copies, and its status; the row stays locked (PostgreSQL)
    until the transaction ends, so two records made at once derive the status one by one."""
    lead = session.scalars(select(Lead).where(Lead.id == lead_id).with_for_update()).first()
    if lead is None:
        return None
    return {
        "id": lead.id,
        "status": lead.status,
        "is_organization": lead.is_organization,
        "company_name": lead.company_name,
        "person_name": lead.person_name,
        "email": lead.email,
        "source": lead.source,
    }


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def as_dict(kind: str, row: Opportunity | Quotation | Customer) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row.id, "kind": kind, "lead_id": row.lead_id}
    if isinstance(row, Customer):
        out["name"] = row.name
    else:
        out["status"] = row.status
        if isinstance(row, Opportunity):
            out["title"] = row.title
        out["amount"] = row.amount
        out["currency"] = row.currency
        if isinstance(row, Opportunity):
            out["expected_close"] = _iso(row.expected_close)
        else:
            out["valid_until"] = _iso(row.valid_until)
    out.update(
        party_name=row.party_name,
        email=row.email,
        source=row.source,
        contacts=row.contacts,
        addresses=row.addresses,
        actor=row.actor,
        created_at=_iso(row.created_at),
    )
    return out


def add_record(session: Session, kind: str, values: dict[str, Any]) -> dict[str, Any]:
    row = KINDS[kind](**values)
    session.add(row)
    session.flush()
    return as_dict(kind, row)


def record(
    session: Session, kind: str, record_id: int, lock: bool = False
) -> dict[str, Any] | None:
    model = KINDS[kind]
    query = select(model).where(model.id == record_id)
    row = session.scalars(query.with_for_update() if lock else query).first()
    return None if row is None else as_dict(kind, cast(Record, row))


def set_record_status(
    session: Session, kind: str, record_id: int, status: str, now: datetime
) -> None:
    model = KINDS[kind]
    assert model is not Customer
    session.execute(
        update(model).where(model.id == record_id).values(status=status, updated_at=now)
    )


def records_of(session: Session, lead_id: int) -> dict[str, list[dict[str, Any]]]:
    """The lead's records by kind ("opportunities", "quotations", "customers"), oldest first."""
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, key in (
        ("opportunity", "opportunities"),
        ("quotation", "quotations"),
        ("customer", "customers"),
    ):
        model = KINDS[kind]
        rows = session.scalars(select(model).where(model.lead_id == lead_id).order_by(model.id))
        out[key] = [as_dict(kind, cast(Record, row)) for row in rows]
    return out


def set_lead_status(
    session: Session, lead_id: int, *, before: str, to: str, cause: str, now: datetime
) -> None:
    """The lead's new status and its line in the status log, in one go."""
    session.execute(update(Lead).where(Lead.id == lead_id).values(status=to, updated_at=now))
    session.add(
        StatusChange(lead_id=lead_id, from_status=before, to_status=to, cause=cause, at=now)
    )
    session.flush()
