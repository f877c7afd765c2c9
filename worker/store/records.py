"""Opportunities, quotations and customers made from a lead, and the status they give it.

Plain dicts out, like store/leads.py and store/notes.py, so services never hold an ORM object.
Reads are Core statements over the tables: `leads show` lists a lead's records without
importing the ORM; the writes that add rows import the models where they run.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, select, update

from worker.store import tables

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

TABLES: dict[str, Table] = {
    "opportunity": tables.opportunities,
    "quotation": tables.quotations,
    "customer": tables.customers,
}
_leads = tables.leads


def lead_for_record(session: Session | Connection, lead_id: int) -> dict[str, Any] | None:
    """The lead's fields a record copies, and its status; the row stays locked (PostgreSQL)
    until the transaction ends, so two records made at once derive the status one by one."""
    lead = session.execute(select(_leads).where(_leads.c.id == lead_id).with_for_update()).first()
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


def as_dict(kind: str, row: Any) -> dict[str, Any]:
    """A record of ``kind`` (a row or a model object: the same attributes) as plain values."""
    out: dict[str, Any] = {"id": row.id, "kind": kind, "lead_id": row.lead_id}
    if kind == "customer":
        out["name"] = row.name
    else:
        out["status"] = row.status
        if kind == "opportunity":
            out["title"] = row.title
        out["amount"] = row.amount
        out["currency"] = row.currency
        if kind == "opportunity":
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
    from worker.store.models import Customer, Opportunity, Quotation

    models = {"opportunity": Opportunity, "quotation": Quotation, "customer": Customer}
    row = models[kind](**values)
    session.add(row)
    session.flush()
    return as_dict(kind, row)


def record(
    session: Session | Connection, kind: str, record_id: int, lock: bool = False
) -> dict[str, Any] | None:
    table = TABLES[kind]
    query = select(table).where(table.c.id == record_id)
    row = session.execute(query.with_for_update() if lock else query).first()
    return None if row is None else as_dict(kind, row)


def set_record_status(
    session: Session, kind: str, record_id: int, status: str, now: datetime
) -> None:
    assert kind != "customer"
    table = TABLES[kind]
    session.execute(
        update(table).where(table.c.id == record_id).values(status=status, updated_at=now)
    )


def records_of(session: Session | Connection, lead_id: int) -> dict[str, list[dict[str, Any]]]:
    """The lead's records by kind ("opportunities", "quotations", "customers"), oldest first."""
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, key in (
        ("opportunity", "opportunities"),
        ("quotation", "quotations"),
        ("customer", "customers"),
    ):
        table = TABLES[kind]
        rows = session.execute(select(table).where(table.c.lead_id == lead_id).order_by(table.c.id))
        out[key] = [as_dict(kind, row) for row in rows]
    return out


def set_lead_status(
    session: Session, lead_id: int, *, before: str, to: str, cause: str, now: datetime
) -> None:
    """The lead's new status and its line in the status log, in one go."""
    from worker.store.models import Lead, StatusChange

    session.execute(update(Lead).where(Lead.id == lead_id).values(status=to, updated_at=now))
    session.add(
        StatusChange(lead_id=lead_id, from_status=before, to_status=to, cause=cause, at=now)
    )
    session.flush()
