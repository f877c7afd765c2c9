"""The checks of a lead typed in by a person (services/lead_fields.py): pure, no database."""

from __future__ import annotations

from typing import Any

import pytest

from worker.config import DEFAULT_GENDERS, CustomFieldSettings, LeadSettings
from worker.errors import LeadmailError, ValidationError
from worker.services.lead_fields import (
    MANUAL_STATUSES,
    LeadEdit,
    check_company,
    check_email,
    check_gender,
    check_phone,
    check_text,
    checked_fields,
    custom_value,
    custom_values,
    missing_required,
    parse_field_args,
    status_by_hand,
)
from worker.store.models import LeadStatus

SETTINGS = LeadSettings(
    custom_fields=(
        CustomFieldSettings(name="budget", type="decimal", label="Budget (EUR)"),
        CustomFieldSettings(name="employees", type="int"),
        CustomFieldSettings(name="tier", type="choice", choices=("Gold", "Silver"), required=True),
        CustomFieldSettings(name="since", type="date"),
        CustomFieldSettings(name="partner", type="bool"),
        CustomFieldSettings(name="region"),
    )
)


def _field(name: str) -> CustomFieldSettings:
    declared = SETTINGS.custom_field(name)
    assert declared is not None
    return declared


def test_validation_errors_are_leadmail_errors_with_exit_1() -> None:
    assert issubclass(ValidationError, LeadmailError)
    assert ValidationError("x").exit_code == 1


@pytest.mark.parametrize(
    "address",
    [
        "jane@acme.example",
        "Jane.Doe+sales@Acme-Industrial.co.uk",
        "o'brien@example.ie",
        "  padded@example.com  ",
        "jürgen@bücher.example",
        "x@sub.domain.example",
    ],
)
def test_good_addresses_are_kept_as_typed(address: str) -> None:
    assert check_email(address) == address.strip()


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("", "required"),
        ("   ", "required"),
        ("jane", "exactly one @"),
        ("jane@@acme.example", "exactly one @"),
        ("a@b@acme.example", "exactly one @"),
        ("@acme.example", "before @"),
        ("jane@", "needs a dot"),
        ("jane@acme", "needs a dot"),
        ("jane@.example", "needs a dot"),
        ("jane@acme.example.", "needs a dot"),
        ("jane@acme..example", "bad domain"),
        ("jane@-acme.example", "bad domain"),
        ("jane@acme_x.example", "bad domain"),
        ("jane@acme.example?subject=hi", "bad domain"),
        ("jane doe@acme.example", "spaces"),
        ("jane@acme.example\r\nBcc: all@x.example", "spaces"),
        ("jane@acme.example\x00", "spaces"),
        ("Jane <jane@acme.example>", "spaces"),
        ("<jane@acme.example>", "before @"),
        ("mailto:jane@acme.example", "before @"),
        ("jane..doe@acme.example", "before @"),
        ("x" * 320 + "@acme.example", "longer than 320"),
    ],
)
def test_bad_addresses_are_refused_saying_why(address: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        check_email(address)


def test_gender_from_the_list_in_any_case() -> None:
    assert check_gender("prefer NOT to say", DEFAULT_GENDERS) == "Prefer not to say"
    assert check_gender("  ", DEFAULT_GENDERS) is None
    assert "Genderqueer" in DEFAULT_GENDERS and len(DEFAULT_GENDERS) == 7
    with pytest.raises(ValidationError, match="unknown gender 'M'; one of: Male, Female"):
        check_gender("M", DEFAULT_GENDERS)
    with pytest.raises(ValidationError, match="none are configured"):
        check_gender("Male", ())


@pytest.mark.parametrize("number", ["+44 20 7946 0958", "(555) 010-0199", "030/12345", "12#3"])
def test_phone_numbers(number: str) -> None:
    assert check_phone("phone", number) == number


@pytest.mark.parametrize("number", ["call me", "+", "555 0100 ext. 3", "12\n34"])
def test_not_phone_numbers(number: str) -> None:
    with pytest.raises(ValidationError):
        check_phone("mobile", number)


def test_text_is_one_trimmed_line_within_the_column() -> None:
    assert check_text("name", "  Jane  ") == "Jane"
    assert check_text("name", "") is None
    assert check_text("notes", "line one\n\tline two") == "line one\n\tline two"
    for bad in ("a\nb", "a\x1b[2Jb", "a\x00b", "a\u2028b"):
        with pytest.raises(ValidationError, match="control characters"):
            check_text("company", bad)
    with pytest.raises(ValidationError, match="control characters"):
        check_text("notes", "a\x00b")
    with pytest.raises(ValidationError, match="gender is longer than 32"):
        check_text("gender", "x" * 33)
    assert check_text("name", "x" * 255) == "x" * 255


def test_an_organisation_needs_a_company() -> None:
    check_company(False, None)
    check_company(True, "Acme")
    with pytest.raises(ValidationError, match="organisation needs its company name"):
        check_company(True, None)


def test_statuses_set_by_hand_and_derived_ones_refused_with_how() -> None:
    assert [s.value for s in MANUAL_STATUSES] == [
        "Lead",
        "Open",
        "Replied",
        "Interested",
        "Do Not Contact",
    ]
    assert status_by_hand("do not contact") == "Do Not Contact"
    derived = set(LeadStatus) - set(MANUAL_STATUSES)
    assert {s.value for s in derived} == {"Opportunity", "Quotation", "Lost Quotation", "Converted"}
    for status in derived:
        with pytest.raises(ValidationError) as refused:
            status_by_hand(status.value.upper(), 12)
        message = str(refused.value)
        assert message.startswith(f"{status.value} is not set by hand; it comes from ")
        assert "leadmail " in message and "\n" not in message
    with pytest.raises(ValidationError, match="leads make customer 12"):
        status_by_hand("Converted", 12)
    with pytest.raises(ValidationError, match="unknown status 'Won'"):
        status_by_hand("Won")


@pytest.mark.parametrize(
    ("name", "raw", "stored"),
    [
        ("budget", "25000.50", "25000.50"),
        ("budget", "-3", "-3"),
        ("budget", ".5", "0.5"),
        ("budget", "1.", "1"),
        ("employees", "+120", 120),
        ("employees", "0", 0),
        ("tier", "silver", "Silver"),
        ("since", "2026-02-28", "2026-02-28"),
        ("partner", "Yes", True),
        ("partner", "0", False),
        ("partner", "FALSE", False),
        ("region", "  North  ", "North"),
        ("budget", "", None),
        ("tier", "  ", None),
    ],
)
def test_custom_values_are_typed(name: str, raw: str, stored: Any) -> None:
    value = custom_value(_field(name), raw)
    assert value == stored and type(value) is type(stored)


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("budget", "1e5", "budget is a decimal field: '1e5' is not a number"),
        ("budget", "NaN", "budget is a decimal field"),
        ("budget", "1,000", "budget is a decimal field"),
        ("employees", "1.5", "employees is an int field: '1.5' is not a whole number"),
        ("employees", "1_000", "employees is an int field"),
        ("employees", "9" * 19, "employees is an int field"),
        ("tier", "Platinum", "tier is a choice field: 'Platinum' is not one of Gold, Silver"),
        ("since", "2026-02-30", "since is a date field"),
        ("since", "20260201", "since is a date field"),
        ("since", "01/02/2026", "since is a date field"),
        ("partner", "maybe", "partner is a bool field"),
        ("region", "x" * 2001, "region is longer than 2000"),
        ("region", "a\nb", "control characters"),
    ],
)
def test_custom_values_of_the_wrong_type_are_refused(name: str, raw: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace(".", r"\.")):
        custom_value(_field(name), raw)


def test_field_arguments() -> None:
    assert parse_field_args(["a=1", " b = x=y ", "c="]) == [("a", "1"), ("b", " x=y "), ("c", "")]
    for bad in ("a", "=1", ""):
        with pytest.raises(ValidationError, match="--field takes NAME=VALUE"):
            parse_field_args([bad])


def test_custom_values_by_declared_name() -> None:
    assert custom_values(SETTINGS, ["Budget=10", "tier=gold", "region="]) == {
        "budget": "10",
        "tier": "Gold",
        "region": None,
    }
    with pytest.raises(ValidationError, match="unknown custom field 'budgte'; declared: budget"):
        custom_values(SETTINGS, ["budgte=1"])
    with pytest.raises(ValidationError, match="none are declared"):
        custom_values(LeadSettings(), ["x=1"])


def test_required_custom_fields() -> None:
    missing_required(SETTINGS, {"tier": "Gold"})
    for values in ({}, {"tier": None}, {"budget": "1"}):
        with pytest.raises(ValidationError, match="custom field 'tier' is required"):
            missing_required(SETTINGS, values)


def test_checked_fields_checks_each_by_its_kind() -> None:
    edit = LeadEdit(fields={"email": " j@x.example ", "gender": "male", "phone": "", "name": "J"})
    assert checked_fields(edit, SETTINGS) == {
        "email": "j@x.example",
        "gender": "Male",
        "phone": None,
        "name": "J",
    }
    with pytest.raises(ValidationError, match="unknown gender"):
        checked_fields(LeadEdit(fields={"gender": "Male"}), LeadSettings(genders=("Woman",)))
