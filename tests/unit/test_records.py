"""The status a lead's records give it (a pure rule) and the checks of amounts, currencies
and dates a person types for them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import ValidationError
from worker.services.records import (
    OPPORTUNITY_STATUSES,
    QUOTATION_STATUSES,
    check_amount,
    check_date,
    check_record_status,
    derived_status,
)
from worker.store.models import LeadStatus

MANUAL = ["Lead", "Open", "Replied", "Interested", "Do Not Contact"]


@dataclass
class Records:
    opportunities: list[str] = field(default_factory=list)
    quotations: list[str] = field(default_factory=list)
    customers: int = 0


def precedence(records: Records) -> str | None:
    """The issue's rule, written as the issue states it, apart from the code under test."""
    if records.customers or any(q == "ordered" for q in records.quotations):
        return "Converted"
    if any(q == "open" for q in records.quotations):
        return "Quotation"
    if any(o == "open" for o in records.opportunities):
        return "Opportunity"
    if records.quotations and set(records.quotations) == {"lost"}:
        return "Lost Quotation"
    return None


# One change a person can make: a new record, or a record's new status.
change = st.one_of(
    st.tuples(st.just("make"), st.sampled_from(["opportunity", "quotation", "customer"])),
    st.tuples(st.just("opportunity"), st.integers(0, 5), st.sampled_from(OPPORTUNITY_STATUSES)),
    st.tuples(st.just("quotation"), st.integers(0, 5), st.sampled_from(QUOTATION_STATUSES)),
)


def apply(records: Records, step: tuple[object, ...]) -> None:
    if step[0] == "make":
        if step[1] == "opportunity":
            records.opportunities.append("open")
        elif step[1] == "quotation":
            records.quotations.append("open")
        else:
            records.customers += 1
        return
    _, index, status = step
    assert isinstance(index, int) and isinstance(status, str)
    target = records.opportunities if step[0] == "opportunity" else records.quotations
    if target:
        target[index % len(target)] = status


@given(st.sampled_from(MANUAL), st.lists(change, max_size=25))
def test_the_status_after_any_sequence_of_changes_is_the_precedence_rule(
    start: str, steps: list[tuple[object, ...]]
) -> None:
    records = Records()
    status = start
    last_decided = start
    for step in steps:
        apply(records, step)
        derived = derived_status(
            status, list(records.opportunities), list(records.quotations), records.customers
        )
        if derived is not None:
            status = derived
        # What the rule says now, or the last status something decided when it says nothing.
        expected = precedence(records)
        if start == "Do Not Contact":
            assert status == "Do Not Contact"
            assert derived is None
        else:
            if expected is not None:
                last_decided = expected
            assert status == last_decided
            assert derived == expected


@given(
    st.sampled_from([s.value for s in LeadStatus]),
    st.lists(st.sampled_from(OPPORTUNITY_STATUSES), max_size=4),
    st.lists(st.sampled_from(QUOTATION_STATUSES), max_size=4),
    st.integers(0, 2),
)
def test_derived_status_is_the_rule_for_any_records(
    current: str, opportunities: list[str], quotations: list[str], customers: int
) -> None:
    derived = derived_status(current, opportunities, quotations, customers)
    if current == "Do Not Contact":
        assert derived is None
    else:
        assert derived == precedence(Records(opportunities, quotations, customers))


def test_the_walk_through_of_the_issue() -> None:
    assert derived_status("Open", ["open"], [], 0) == "Opportunity"
    assert derived_status("Opportunity", ["open"], ["open"], 0) == "Quotation"
    assert derived_status("Quotation", ["open"], ["lost"], 0) == "Opportunity"
    assert derived_status("Opportunity", ["lost"], ["lost"], 0) == "Lost Quotation"
    assert derived_status("Lost Quotation", ["lost"], ["lost", "ordered"], 0) == "Converted"
    # A won opportunity alone decides nothing; a customer converts whatever else is open.
    assert derived_status("Open", ["won"], [], 0) is None
    assert derived_status("Quotation", ["open"], ["open"], 1) == "Converted"


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("1250.50", "eur", ("1250.50", "EUR")),
        (" 12 ", "USD", ("12", "USD")),
        ("0", "GBP", ("0", "GBP")),
        ("007.5", "chf", ("7.5", "CHF")),
        (None, None, (None, None)),
    ],
)
def test_amounts_and_currencies_accepted(
    amount: str | None, currency: str | None, expected: tuple[str | None, str | None]
) -> None:
    assert check_amount(amount, currency) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "says"),
    [
        ("-5", "EUR", "negative"),
        ("abc", "EUR", "not a decimal"),
        ("1e3", "EUR", "not a decimal"),
        ("NaN", "EUR", "not a decimal"),
        ("Infinity", "EUR", "not a decimal"),
        ("1,000", "EUR", "not a decimal"),
        ("١٢", "EUR", "not a decimal"),  # Arabic-Indic digits
        ("1" * 19, "EUR", "not a decimal"),
        ("1.1234567", "EUR", "not a decimal"),
        ("10", "EU", "ISO 4217"),
        ("10", "EURO", "ISO 4217"),
        ("10", "€", "ISO 4217"),
        ("10", None, "--currency is missing"),
        (None, "EUR", "--amount is missing"),
    ],
)
def test_bad_amounts_and_currencies_refused(
    amount: str | None, currency: str | None, says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        check_amount(amount, currency)


def test_dates_and_record_statuses() -> None:
    assert str(check_date("2026-12-31", "--valid-until")) == "2026-12-31"
    with pytest.raises(ValidationError, match="--valid-until '31/12/2026' is not a date"):
        check_date("31/12/2026", "--valid-until")
    assert check_record_status(" Ordered ", QUOTATION_STATUSES, "quotation") == "ordered"
    with pytest.raises(ValidationError, match="unknown opportunity status 'ordered'"):
        check_record_status("ordered", OPPORTUNITY_STATUSES, "opportunity")
