"""Opportunities, quotations and customers made from a lead, and the status they give it.

ERPNext's Lead follows its records: Converted (a customer, or an ordered quotation) >
Quotation (an open quotation) > Opportunity (an open opportunity) > Lost Quotation (there
are quotations and every one is lost). ``derived_status`` is that rule as a pure function;
every record change runs it in the same transaction and logs a change with its cause.
Do Not Contact is a person's decision and no record overrides it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from worker.errors import NotFoundError, ValidationError
from worker.services import reminders
from worker.services.context import App
from worker.services.notes import check_actor, live_lead, optional_text
from worker.store import contacts as people
from worker.store import notes as timeline
from worker.store import records as store
from worker.store.models import LeadStatus, utcnow

OPPORTUNITY_STATUSES = ("open", "lost", "won")
QUOTATION_STATUSES = ("open", "lost", "ordered")
NAME_MAX = 255
AMOUNT_DIGITS = 18  # digits before the point: more is a typo, and the column is text(40)
AMOUNT_PLACES = 6
CURRENCY = re.compile(r"[A-Za-z]{3}")
# Plain decimal notation only: no exponent, sign, grouping, NaN or Infinity.
AMOUNT = re.compile(rf"[0-9]{{1,{AMOUNT_DIGITS}}}(?:\.[0-9]{{1,{AMOUNT_PLACES}}})?")


def derived_status(
    current: str,
    opportunities: Collection[str],
    quotations: Collection[str],
    customers: int,
) -> str | None:
    """The status a lead's records give it, or None when they decide nothing.

    ``opportunities`` and ``quotations`` are the records' statuses, ``customers`` how many
    customers the lead has. None also for a Do Not Contact lead: only a person lifts that.
    A caller keeps the current status on None.
    """
    if current == LeadStatus.DO_NOT_CONTACT:
        return None
    if customers > 0 or "ordered" in quotations:
        return LeadStatus.CONVERTED.value
    if "open" in quotations:
        return LeadStatus.QUOTATION.value
    if "open" in opportunities:
        return LeadStatus.OPPORTUNITY.value
    if quotations and all(q == "lost" for q in quotations):
        return LeadStatus.LOST_QUOTATION.value
    return None


# -- checks of what a person typed --------------------------------------------------------


def check_amount(amount: str | None, currency: str | None) -> tuple[str | None, str | None]:
    """``--amount`` as exact decimal text and ``--currency`` as ISO 4217 letters; both or none."""
    if amount is None and currency is None:
        return None, None
    if amount is None or currency is None:
        missing = "--currency" if currency is None else "--amount"
        raise ValidationError(f"--amount and --currency go together: {missing} is missing", None)
    text = amount.strip()
    if not AMOUNT.fullmatch(text):
        if text.startswith("-") and AMOUNT.fullmatch(text[1:]):
            raise ValidationError(f"--amount {amount!r} is negative", amount)
        raise ValidationError(
            f"--amount {amount!r} is not a decimal number like 1250 or 1250.50 (at most "
            f"{AMOUNT_DIGITS} digits before the point and {AMOUNT_PLACES} after)",
            amount,
        )
    code = currency.strip()
    if not CURRENCY.fullmatch(code):
        raise ValidationError(
            f"--currency {currency!r} is not an ISO 4217 code (three letters, e.g. EUR)", currency
        )
    return format(Decimal(text), "f"), code.upper()


def check_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(
            f"{option} {value!r} is not a date (YYYY-MM-DD, e.g. 2026-12-31)", value
        ) from None


def check_record_status(status: str, allowed: tuple[str, ...], kind: str) -> str:
    wanted = status.strip().lower()
    if wanted not in allowed:
        raise ValidationError(
            f"unknown {kind} status {status!r}; one of: {', '.join(allowed)}", status
        )
    return wanted


# -- making records ------------------------------------------------------------------------


def party_name(lead: dict[str, Any]) -> str | None:
    """The name a record copies: the organisation's for an organisation, else the person's."""
    if lead["is_organization"] and lead["company_name"]:
        return str(lead["company_name"])
    name = lead["person_name"] or lead["company_name"] or lead["email"]
    return str(name) if name else None


def make_opportunity(
    app: App,
    lead_id: int,
    *,
    actor: str,
    title: str | None = None,
    amount: str | None = None,
    currency: str | None = None,
    expected_close: str | None = None,
) -> dict[str, Any]:
    given_title = optional_text(title, "--title", NAME_MAX)
    money, code = check_amount(amount, currency)
    close = check_date(expected_close, "--expected-close")
    return _make(
        app,
        lead_id,
        "opportunity",
        actor,
        lambda lead: {
            "status": "open",
            "title": given_title or party_name(lead),
            "amount": money,
            "currency": code,
            "expected_close": close,
        },
    )


def make_quotation(
    app: App,
    lead_id: int,
    *,
    actor: str,
    amount: str | None = None,
    currency: str | None = None,
    valid_until: str | None = None,
) -> dict[str, Any]:
    money, code = check_amount(amount, currency)
    until = check_date(valid_until, "--valid-until")
    return _make(
        app,
        lead_id,
        "quotation",
        actor,
        lambda lead: {"status": "open", "amount": money, "currency": code, "valid_until": until},
    )


def make_customer(app: App, lead_id: int, *, actor: str, name: str | None = None) -> dict[str, Any]:
    given = optional_text(name, "--name", NAME_MAX)

    def values(lead: dict[str, Any]) -> dict[str, Any]:
        return {"name": given or party_name(lead) or f"Lead {lead['id']}"}

    return _make(app, lead_id, "customer", actor, values)


# What a record copies of each contact and address: the values, not the lead's row ids,
# which a later `contacts remove` or merge would leave pointing nowhere.
CONTACT_COPY = ("name", "email", "phone", "designation", "is_primary")
ADDRESS_COPY = ("type", "line1", "line2", "city", "state", "postcode", "country")


def _copies(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{key: row[key] for key in keys} for row in rows]


def _make(app: App, lead_id: int, kind: str, actor: str, values: Any) -> dict[str, Any]:
    who = check_actor(actor)
    now = utcnow()
    with app.db.transaction() as session:
        lead_id = live_lead(session, lead_id)
        lead = store.lead_for_record(session, lead_id)
        if lead is None:
            raise NotFoundError(f"no lead {lead_id}", lead_id)
        if kind == "customer":
            existing = store.records_of(session, lead_id)["customers"]
            if existing:
                raise ValidationError(
                    f"lead {lead_id} already has customer {existing[0]['id']} "
                    f"({existing[0]['name']})",
                    lead_id,
                )
        row = store.add_record(
            session,
            kind,
            {
                "lead_id": lead_id,
                "party_name": party_name(lead),
                "email": lead["email"],
                "source": lead["source"],
                "contacts": _copies(people.contacts(session, lead_id), CONTACT_COPY),
                "addresses": _copies(people.addresses(session, lead_id), ADDRESS_COPY),
                "actor": who,
                "created_at": now,
                **values(lead),
            },
        )
        cause = f"{kind} {row['id']} made by {who}"
        row["lead_status"] = _derive(session, lead, cause, who, {kind: row["id"]}, now)
        return row


def set_opportunity_status(app: App, record_id: int, status: str, actor: str) -> dict[str, Any]:
    return _set(app, "opportunity", record_id, status, OPPORTUNITY_STATUSES, actor)


def set_quotation_status(app: App, record_id: int, status: str, actor: str) -> dict[str, Any]:
    return _set(app, "quotation", record_id, status, QUOTATION_STATUSES, actor)


def _set(
    app: App, kind: str, record_id: int, status: str, allowed: tuple[str, ...], actor: str
) -> dict[str, Any]:
    wanted = check_record_status(status, allowed, kind)
    who = check_actor(actor)
    now = utcnow()
    with app.db.transaction() as session:
        row = store.record(session, kind, record_id)
        if row is None:
            raise NotFoundError(f"no {kind} {record_id}", record_id)
        lead = store.lead_for_record(session, row["lead_id"])  # lock the lead first
        assert lead is not None  # the foreign key cascades deletes
        row = store.record(session, kind, record_id, lock=True)
        assert row is not None
        before = row["status"]
        changed = before != wanted
        if changed:
            store.set_record_status(session, kind, record_id, wanted, now)
            cause = f"{kind} {record_id} {wanted} (was {before}) by {who}"
            details = {kind: record_id, "status": [before, wanted]}
            lead["status"] = _derive(session, lead, cause, who, details, now)
        result = store.record(session, kind, record_id)
        assert result is not None
        result["changed"] = changed
        result["lead_status"] = lead["status"]
        return result


def _derive(
    session: Session,
    lead: dict[str, Any],
    cause: str,
    actor: str,
    details: dict[str, Any],
    now: datetime,
) -> str:
    """Apply ``derived_status`` to the lead's records after a change (``cause``).

    A status that moves is a status_changes row with the cause; a change that leaves the
    status as it was (a second opportunity, a won one, a Do Not Contact lead) is a
    ``record`` activity instead, so the timeline shows every record change once.
    """
    records = store.records_of(session, lead["id"])
    status = derived_status(
        lead["status"],
        [o["status"] for o in records["opportunities"]],
        [q["status"] for q in records["quotations"]],
        len(records["customers"]),
    )
    if status is None or status == lead["status"]:
        timeline.add_activity(
            session, lead["id"], kind="record", summary=cause, actor=actor, details=details, at=now
        )
        return str(lead["status"])
    store.set_lead_status(
        session, lead["id"], before=lead["status"], to=status, cause=cause, now=now
    )
    # Converted: nobody is to be reminded to contact a customer about the lead.
    reminders.cancel_on_status(session, lead["id"], status, cause, now=now)
    return status
