"""Opportunities, quotations and customers made from a lead, and the status they give it,
as a user runs them on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import make_mail
from tests.integration.test_cli import Leadmail, assert_user_error, write_files


@pytest.fixture
def lm(db_url: str, tmp_path: Path) -> Leadmail:
    return Leadmail(tmp_path, db_url)


def made(lm: Leadmail, *args: str) -> dict[str, Any]:
    row = lm.json("leads", "make", *args, "--json")
    assert isinstance(row, dict) and isinstance(row["id"], int)
    return row


def status_set(lm: Leadmail, group: str, record_id: int, status: str) -> dict[str, Any]:
    row = lm.json(group, "set", str(record_id), "--status", status, "--by", "alice", "--json")
    assert isinstance(row, dict)
    return row


def show(lm: Leadmail, lead_id: int) -> dict[str, Any]:
    lead = lm.json("leads", "show", str(lead_id), "--format", "json")
    assert isinstance(lead, dict)
    return lead


def status_log(lead: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    return [
        (e["from_status"], e["to_status"], e["cause"])
        for e in lead["timeline"]
        if e["type"] == "status"
    ]


def test_the_life_of_a_lead_from_mail_to_converted(lm: Leadmail, tmp_path: Path) -> None:
    inbox = write_files(tmp_path / "inbox", {"enquiry.eml": make_mail()})[0].parent
    lm.ok("ingest", str(inbox))
    lm.ok("leads", "note", "1", "Wants 200 chairs by March", "--by", "alice")
    lm.ok(
        "leads", "activity", "1", "--kind", "call", "--at", "2026-11-03T10:00Z",
        "--summary", "Discussed the quote", "--by", "alice",
    )  # fmt: skip
    opportunity = made(
        lm, "opportunity", "1", "--amount", "24000", "--currency", "eur",
        "--expected-close", "2027-03-01", "--by", "alice",
    )  # fmt: skip
    assert opportunity["lead_status"] == "Opportunity"
    assert opportunity["currency"] == "EUR" and opportunity["amount"] == "24000"
    assert opportunity["email"] == "jane@acme-industrial.example"
    assert opportunity["source"] == "Email" and opportunity["actor"] == "alice"
    first = made(lm, "quotation", "1", "--amount", "23500.00", "--currency", "EUR", "--by", "bob")
    assert first["lead_status"] == "Quotation"
    assert status_set(lm, "quotations", first["id"], "lost")["lead_status"] == "Opportunity"
    lost = status_set(lm, "opportunities", opportunity["id"], "lost")
    assert lost["status"] == "lost" and lost["lead_status"] == "Lost Quotation"
    second = made(lm, "quotation", "1", "--valid-until", "2026-12-31", "--by", "bob")
    assert second["lead_status"] == "Quotation" and second["valid_until"] == "2026-12-31"
    assert status_set(lm, "quotations", second["id"], "ordered")["lead_status"] == "Converted"

    # Mail from the lead afterwards threads onto it and leaves Converted alone.
    reply = make_mail(
        subject="Re: Quote for 200 office chairs",
        message_id="<enquiry-2@acme-industrial.example>",
        in_reply_to="<enquiry-1@acme-industrial.example>",
    )
    later = write_files(tmp_path / "later", {"reply.eml": reply})[0].parent
    [row] = lm.jsonl("ingest", "--json", str(later))
    assert row["lead_id"] == 1
    lead = show(lm, 1)
    assert lead["status"] == "Converted"
    assert status_log(lead) == [
        (None, "Lead", "created from message enquiry-1@acme-industrial.example"),
        ("Lead", "Opportunity", f"opportunity {opportunity['id']} made by alice"),
        ("Opportunity", "Quotation", f"quotation {first['id']} made by bob"),
        ("Quotation", "Opportunity", f"quotation {first['id']} lost (was open) by alice"),
        (
            "Opportunity",
            "Lost Quotation",
            f"opportunity {opportunity['id']} lost (was open) by alice",
        ),
        ("Lost Quotation", "Quotation", f"quotation {second['id']} made by bob"),
        ("Quotation", "Converted", f"quotation {second['id']} ordered (was open) by alice"),
    ]
    kinds = [e["type"] for e in lead["timeline"]]
    assert "comment" in kinds and "activity" in kinds
    records = lead["records"]
    assert [o["status"] for o in records["opportunities"]] == ["lost"]
    assert [q["status"] for q in records["quotations"]] == ["lost", "ordered"]
    assert records["customers"] == []
    table = lm.ok("leads", "show", "1").stdout
    assert "records" in table and f"quotation {second['id']} [ordered]" in table


def test_records_copy_the_lead_and_a_customer_converts_it(lm: Leadmail) -> None:
    lead = lm.json(
        "leads", "add", "--email", "ops@initrode.example", "--name", "Bill Lumbergh",
        "--organization", "--company", "Initrode", "--source", "Trade fair", "--json",
    )  # fmt: skip
    lm.ok("contacts", "add", str(lead["id"]), "--email", "anne@initrode.example",
          "--name", "Anne", "--designation", "Buyer", "--primary")  # fmt: skip
    lm.ok("addresses", "add", str(lead["id"]), "--type", "billing", "--line1", "1 Loop Rd",
          "--city", "Austin", "--country", "US")  # fmt: skip
    opportunity = made(lm, "opportunity", str(lead["id"]))
    assert opportunity["title"] == "Initrode" and opportunity["party_name"] == "Initrode"
    copied = {"name": "Anne", "email": "anne@initrode.example", "phone": None,
              "designation": "Buyer", "is_primary": True}  # fmt: skip
    assert opportunity["contacts"] == [copied]
    assert [a["city"] for a in opportunity["addresses"]] == ["Austin"]
    assert opportunity["addresses"][0]["type"] == "billing"
    # The record keeps what it copied when the lead's people change later.
    (contact,) = lm.json("contacts", "list", str(lead["id"]), "--format", "json")
    lm.ok("contacts", "remove", str(contact["id"]))
    shown_records = show(lm, lead["id"])["records"]["opportunities"]
    assert shown_records[0]["contacts"] == [copied]
    assert opportunity["source"] == "Trade fair" and opportunity["amount"] is None
    customer = made(lm, "customer", str(lead["id"]), "--by", "carol")
    assert customer["name"] == "Initrode" and customer["email"] == "ops@initrode.example"
    assert customer["lead_status"] == "Converted"
    # A second customer is refused; a won opportunity keeps Converted.
    assert_user_error(
        lm.run("leads", "make", "customer", str(lead["id"])),
        f"lead {lead['id']} already has customer {customer['id']}",
    )
    won = status_set(lm, "opportunities", opportunity["id"], "won")
    assert won["changed"] and won["lead_status"] == "Converted"
    again = status_set(lm, "opportunities", opportunity["id"], "won")
    assert not again["changed"]
    shown = show(lm, lead["id"])
    assert [c["name"] for c in shown["records"]["customers"]] == ["Initrode"]
    # A record change that moves no status is still in the timeline, with who made it.
    summaries = [e["summary"] for e in shown["timeline"] if e.get("kind") == "record"]
    assert f"opportunity {opportunity['id']} won (was open) by alice" in summaries


def test_do_not_contact_stays_whatever_the_records_say(lm: Leadmail) -> None:
    lead = lm.json("leads", "add", "--email", "no@globex.example", "--json")
    lm.ok("leads", "set", str(lead["id"]), "--status", "Do Not Contact")
    quotation = made(lm, "quotation", str(lead["id"]))
    assert quotation["lead_status"] == "Do Not Contact"
    assert status_set(lm, "quotations", quotation["id"], "ordered")["lead_status"] == (
        "Do Not Contact"
    )
    assert show(lm, lead["id"])["status"] == "Do Not Contact"
    # A person lifts it; the next record change derives the status again.
    lm.ok("leads", "set", str(lead["id"]), "--status", "Open")
    made(lm, "opportunity", str(lead["id"]))
    assert show(lm, lead["id"])["status"] == "Converted"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["leads", "make", "opportunity", "1", "--amount", "-10", "--currency", "EUR"], "negative"),
        (["leads", "make", "quotation", "1", "--amount", "ten", "--currency", "EUR"], "decimal"),
        (["leads", "make", "quotation", "1", "--amount", "10", "--currency", "EURO"], "ISO 4217"),
        (["leads", "make", "quotation", "1", "--amount", "10"], "--currency is missing"),
        (["leads", "make", "opportunity", "1", "--expected-close", "soon"], "not a date"),
        (["leads", "make", "quotation", "1", "--valid-until", "2026-13-01"], "not a date"),
        (["leads", "make", "customer", "1", "--by", "x" * 200], "--by is longer than 128"),
        (["leads", "make", "customer", "99"], "no lead 99"),
        (["quotations", "set", "1", "--status", "won"], "unknown quotation status 'won'"),
        (["opportunities", "set", "1", "--status", "ordered"], "unknown opportunity status"),
        (["opportunities", "set", "42", "--status", "lost"], "no opportunity 42"),
        (["quotations", "set", "42", "--status", "lost"], "no quotation 42"),
    ],
)
def test_refusals_are_one_line(lm: Leadmail, args: list[str], says: str) -> None:
    lm.json("leads", "add", "--email", "jane@acme.example", "--json")
    made(lm, "quotation", "1")
    made(lm, "opportunity", "1")
    before = show(lm, 1)
    assert_user_error(lm.run(*args), says)
    after = show(lm, 1)
    assert after["records"] == before["records"] and after["status"] == before["status"]


def test_setting_a_derived_status_by_hand_names_the_command(lm: Leadmail) -> None:
    lm.json("leads", "add", "--email", "jane@acme.example", "--json")
    result = lm.run("leads", "set", "1", "--status", "Converted")
    assert result.exit_code == 1
    assert_user_error(result, "leads make customer 1")
