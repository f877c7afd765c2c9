"""Notes, activities, contacts and postal addresses from the CLI, on each backend."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import make_mail
from tests.integration.test_cli import Leadmail, assert_user_error, invoke, write_files

ENQUIRY = make_mail(
    cc="Tom Field <tom@acme-industrial.example>, Sara Lind <sara@partner-co.example>",
)
# Jane's follow-up in the thread, copying Sara again and Ola for the first time.
FOLLOW_UP = make_mail(
    to="sales@northwind.example",
    cc="sara@partner-co.example, Ola Berg <ola@logistics.example>",
    subject="Re: Quote for 200 office chairs",
    message_id="<follow-1@acme-industrial.example>",
    in_reply_to="<enquiry-1@acme-industrial.example>",
    references="<enquiry-1@acme-industrial.example>",
)


@pytest.fixture
def lead_id(leadmail: Leadmail, tmp_path: Path) -> int:
    """Jane's enquiry (Tom and Sara in Cc) and her follow-up: one lead."""
    paths = write_files(tmp_path / "in", {"1.eml": ENQUIRY, "2.eml": FOLLOW_UP})
    rows = leadmail.jsonl("ingest", "--json", *map(str, paths))
    assert [r["outcome"] for r in rows] == ["created", "threaded"]
    return int(rows[0]["lead_id"])


def show(leadmail: Leadmail, lead: int) -> dict[str, Any]:
    detail: dict[str, Any] = leadmail.json("leads", "show", str(lead), "--format", "json")
    return detail


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- notes ----------------------------------------------------------------------------------


def test_note_json_and_timeline(leadmail: Leadmail, lead_id: int) -> None:
    row = leadmail.json(
        "leads", "note", str(lead_id), "Called back, wants samples", "--by", "ann", "--json"
    )
    assert row["id"] > 0 and row["lead_id"] == lead_id
    assert (row["author"], row["text"]) == ("ann", "Called back, wants samples")
    result = leadmail.run(
        "leads", "note", str(lead_id), "second note", env={"LEADMAIL_USER": "bea"}
    )
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "note" in out and str(lead_id) in out
    timeline = show(leadmail, lead_id)["timeline"]
    notes = [e for e in timeline if e["type"] == "comment"]
    assert [(n["author"], n["text"]) for n in notes] == [
        ("ann", "Called back, wants samples"),
        ("bea", "second note"),
    ]
    # Written after the mail was stored: the notes come last.
    assert timeline[-2:] == notes
    table = leadmail.ok("leads", "show", str(lead_id)).stdout
    assert "ann: Called back, wants samples" in table


def test_note_from_a_file_and_from_stdin(leadmail: Leadmail, lead_id: int, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Met at the fair.\nWants a catalogue.\n", encoding="utf-8")
    from_file = leadmail.json("leads", "note", str(lead_id), "--file", str(note), "--json")
    assert from_file["text"] == "Met at the fair.\nWants a catalogue."
    result = invoke(
        ["--config", str(leadmail.config), "leads", "note", str(lead_id), "--file", "-", "--json"],
    )
    # CliRunner's stdin is empty here: an empty note is refused.
    assert_user_error(result, "empty")
    from click.testing import CliRunner

    from worker.cli.main import cli

    piped = CliRunner().invoke(
        cli,
        ["--config", str(leadmail.config), "leads", "note", str(lead_id), "--file", "-", "--json"],
        input="from a pipe\n",
    )
    assert piped.exit_code == 0, piped.stderr
    assert '"from a pipe"' in piped.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["   "], "empty"),
        ([], "TEXT or with --file"),
        (["text", "--file", "-"], "TEXT or with --file"),
    ],
)
def test_note_refusals(leadmail: Leadmail, lead_id: int, args: list[str], expected: str) -> None:
    result = leadmail.run("leads", "note", str(lead_id), *args)
    assert_user_error(result, expected)
    assert result.exit_code == 1
    assert not [e for e in show(leadmail, lead_id)["timeline"] if e["type"] == "comment"]


def test_note_and_activity_on_a_missing_lead(leadmail: Leadmail, lead_id: int) -> None:
    missing = str(lead_id + 100)
    for args in (
        ["leads", "note", missing, "hello"],
        [
            "leads",
            "activity",
            missing,
            "--kind",
            "call",
            "--at",
            "2026-11-30T10:00",
            "--summary",
            "x",
        ],
    ):
        result = leadmail.run(*args)
        assert_user_error(result, f"no lead {missing}")
        assert result.exit_code == 1  # NotFoundError, as `leads show` of a missing lead


# -- activities -----------------------------------------------------------------------------


def test_activity_json_timeline_place_and_details(leadmail: Leadmail, lead_id: int) -> None:
    call = leadmail.json(
        "leads",
        "activity",
        str(lead_id),
        "--kind",
        "call",
        "--at",
        "2020-01-02T10:00:00+01:00",
        "--duration",
        "15",
        "--summary",
        "Intro call",
        "--outcome",
        "send quote",
        "--by",
        "ann",
        "--json",
    )
    assert call["id"] > 0 and call["kind"] == "call" and call["actor"] == "ann"
    assert call["at"] == "2020-01-02T09:00:00+00:00"
    assert call["details"]["duration_minutes"] == 15
    assert call["details"]["outcome"] == "send quote"
    later = leadmail.json(
        "leads",
        "activity",
        str(lead_id),
        "--kind",
        "Meeting",
        "--at",
        "2099-05-01T09:30Z",
        "--summary",
        "Visit",
        "--json",
    )
    assert later["kind"] == "meeting" and "duration_minutes" not in later["details"]
    timeline = show(leadmail, lead_id)["timeline"]
    # An activity sits at its --at: the 2020 call before all the mail, the 2099 visit last.
    assert timeline[0]["type"] == "activity" and timeline[0]["summary"] == "Intro call"
    assert timeline[0]["actor"] == "ann"
    assert timeline[0]["details"]["outcome"] == "send quote"
    assert timeline[-1]["type"] == "activity" and timeline[-1]["summary"] == "Visit"
    ats = [e["at"] for e in timeline]
    assert ats == sorted(ats, key=datetime.fromisoformat)
    table = leadmail.ok("leads", "show", str(lead_id)).stdout
    assert "ann: call: Intro call (15 min; outcome: send quote)" in table


def test_activity_without_offset_is_local_time(leadmail: Leadmail, lead_id: int) -> None:
    row = leadmail.json(
        "leads",
        "activity",
        str(lead_id),
        "--kind",
        "task",
        "--at",
        "2026-07-01T08:00",
        "--summary",
        "Send samples",
        "--json",
    )
    expected = datetime(2026, 7, 1, 8, 0).astimezone().astimezone(UTC)
    assert datetime.fromisoformat(row["at"]) == expected


@pytest.mark.parametrize(
    "change, expected",
    [
        (["--at", "tomorrow"], "not an ISO 8601 time"),
        (["--at", "2026-13-01T10:00"], "not an ISO 8601 time"),
        (["--kind", "lunch"], "unknown activity kind"),
        (["--duration", "ten"], "--duration"),
        (["--duration", "0"], "--duration"),
        (["--duration", "-5"], "--duration"),
        (["--summary", "  "], "--summary is empty"),
    ],
)
def test_activity_refusals(
    leadmail: Leadmail, lead_id: int, change: list[str], expected: str
) -> None:
    options = {"--kind": "call", "--at": "2026-11-30T10:00", "--summary": "call"}
    extra: list[str] = []
    for name, value in zip(change[::2], change[1::2], strict=True):
        if name in options:
            options[name] = value
        else:
            extra += [name, value]
    args = [x for pair in options.items() for x in pair] + extra
    result = leadmail.run("leads", "activity", str(lead_id), *args)
    assert_user_error(result, expected)
    assert result.exit_code == 1
    assert not [e for e in show(leadmail, lead_id)["timeline"] if e["type"] == "activity"]


# -- contacts -------------------------------------------------------------------------------


def contact_args(lead: int, email: str, *more: str) -> list[str]:
    return ["contacts", "add", str(lead), "--email", email, *more]


def test_contacts_add_list_remove(leadmail: Leadmail, lead_id: int) -> None:
    first = leadmail.json(
        *contact_args(
            lead_id,
            "kim@acme-industrial.example",
            "--name",
            "Kim Lo",
            "--phone",
            "+44 20 1234",
            "--designation",
            "Buyer",
            "--primary",
            "--by",
            "ann",
            "--json",
        ),
    )
    assert first["id"] > 0 and first["lead_id"] == lead_id
    assert (first["email"], first["name"], first["phone"], first["designation"]) == (
        "kim@acme-industrial.example",
        "Kim Lo",
        "+44 20 1234",
        "Buyer",
    )
    assert first["is_primary"] is True
    second = leadmail.json(
        *contact_args(lead_id, "lee@acme-industrial.example", "--primary", "--json")
    )
    listed = leadmail.json("contacts", "list", str(lead_id), "--format", "json")
    by_email = {c["email"]: c for c in listed}
    # One primary per lead: the newer one took it.
    assert by_email["kim@acme-industrial.example"]["is_primary"] is False
    assert by_email["lee@acme-industrial.example"]["is_primary"] is True
    rows = csv_rows(leadmail.ok("contacts", "list", str(lead_id), "--format", "csv").stdout)
    assert {r["email"] for r in rows} >= {
        "kim@acme-industrial.example",
        "lee@acme-industrial.example",
    }
    assert "Kim Lo" in leadmail.ok("contacts", "list", str(lead_id)).stdout

    removed = leadmail.ok("contacts", "remove", str(second["id"]), "--by", "bea").stdout
    assert f"contact {second['id']} removed" in removed
    left = {c["email"] for c in leadmail.json("contacts", "list", str(lead_id), "--format", "json")}
    assert "lee@acme-industrial.example" not in left and "kim@acme-industrial.example" in left

    detail = show(leadmail, lead_id)
    shown = {c["email"]: c for c in detail["contacts"]}
    assert shown["kim@acme-industrial.example"]["designation"] == "Buyer"
    assert shown["kim@acme-industrial.example"]["id"] == first["id"]
    logged = [
        (e["actor"], e["summary"])
        for e in detail["timeline"]
        if e["type"] == "activity" and e["kind"] == "contact"
    ]
    assert [a for a, _ in logged] == ["ann", leadmail_user(), "bea"]
    assert "Kim Lo <kim@acme-industrial.example>" in logged[0][1]
    assert "removed" in logged[2][1]
    table = leadmail.ok("leads", "show", str(lead_id)).stdout
    assert "Kim Lo <kim@acme-industrial.example> (Buyer, +44 20 1234)" in table


def leadmail_user() -> str:
    from worker.cli.context import actor_name

    return actor_name(None)


@pytest.mark.parametrize(
    "email, expected",
    [
        ("not-an-address", "not an email address"),
        ("Kim <kim@acme-industrial.example>", "not an email address"),
        ("kim@localhost", "not an email address"),
        ("a b@acme.example", "not an email address"),
        ("KIM@ACME-industrial.example", "already a contact of lead"),
    ],
)
def test_contacts_add_refusals(leadmail: Leadmail, lead_id: int, email: str, expected: str) -> None:
    leadmail.ok(*contact_args(lead_id, "kim@acme-industrial.example"))
    result = leadmail.run(*contact_args(lead_id, email))
    assert_user_error(result, expected)
    assert result.exit_code == 1
    assert len(leadmail.json("contacts", "list", str(lead_id), "--format", "json")) == 1


def test_contacts_on_a_missing_lead_or_contact(leadmail: Leadmail, lead_id: int) -> None:
    missing = str(lead_id + 100)
    for args in (
        contact_args(lead_id + 100, "kim@acme-industrial.example"),
        ["contacts", "list", missing],
        ["contacts", "suggest", missing],
        ["contacts", "accept", missing, "--all"],
    ):
        assert_user_error(leadmail.run(*args), f"no lead {missing}")
    assert_user_error(leadmail.run("contacts", "remove", "999"), "no contact 999")


def test_contacts_suggest_and_accept(leadmail: Leadmail, lead_id: int) -> None:
    suggested = leadmail.json("contacts", "suggest", str(lead_id), "--format", "json")
    # Jane is the lead itself and sales@ is us; the most frequent first, then by address.
    assert suggested == [
        {"email": "sara@partner-co.example", "name": "Sara Lind", "messages": 2},
        {"email": "ola@logistics.example", "name": "Ola Berg", "messages": 1},
        {"email": "tom@acme-industrial.example", "name": "Tom Field", "messages": 1},
    ]
    by_email = {s["email"]: s for s in suggested}
    csv_out = csv_rows(leadmail.ok("contacts", "suggest", str(lead_id), "--format", "csv").stdout)
    assert {r["email"] for r in csv_out} == set(by_email)

    accepted = leadmail.json(
        "contacts",
        "accept",
        str(lead_id),
        "Sara@Partner-Co.example",
        "--by",
        "ann",
        "--format",
        "json",
    )
    assert [(c["email"], c["name"]) for c in accepted] == [("sara@partner-co.example", "Sara Lind")]
    assert accepted[0]["id"] > 0
    remaining = leadmail.json("contacts", "suggest", str(lead_id), "--format", "json")
    assert [s["email"] for s in remaining] == [
        "ola@logistics.example",
        "tom@acme-industrial.example",
    ]

    everyone = leadmail.json("contacts", "accept", str(lead_id), "--all", "--format", "json")
    assert [(c["email"], c["name"]) for c in everyone] == [
        ("ola@logistics.example", "Ola Berg"),
        ("tom@acme-industrial.example", "Tom Field"),
    ]
    assert leadmail.json("contacts", "suggest", str(lead_id), "--format", "json") == []
    assert leadmail.json("contacts", "accept", str(lead_id), "--all", "--format", "json") == []
    logged = [
        e
        for e in show(leadmail, lead_id)["timeline"]
        if e["type"] == "activity" and e["kind"] == "contact"
    ]
    assert logged[0]["actor"] == "ann"
    assert len(logged) == 3


def test_suggest_leaves_out_form_relays_and_no_reply_mailboxes(
    leadmail: Leadmail, tmp_path: Path
) -> None:
    """A web form's lead: From is the site's relay (Reply-To the person); nobody reads it."""
    form = make_mail(
        sender="Our Website <wordpress@northwind-shop.example>",
        to="sales@northwind.example",
        cc="Alerts <no-reply@crm-tool.example>, Pat Ruiz <pat@ruiz-design.example>",
        subject="New enquiry from the contact form",
        message_id="<form-1@northwind-shop.example>",
        headers={"Reply-To": "Lena Park <lena@park-studio.example>"},
    )
    [path] = write_files(tmp_path / "form", {"form.eml": form})
    [row] = leadmail.jsonl("ingest", "--json", str(path))
    lead = leadmail.json("leads", "show", str(row["lead_id"]), "--format", "json")
    assert lead["email"] == "lena@park-studio.example"
    suggested = leadmail.json("contacts", "suggest", str(row["lead_id"]), "--format", "json")
    assert [s["email"] for s in suggested] == ["pat@ruiz-design.example"]


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], "or give --all"),
        (["--all", "tom@acme-industrial.example"], "or give --all"),
        (["nobody@elsewhere.example"], "not among lead"),
        (["jane@acme-industrial.example"], "not among lead"),  # the lead's own address
        (["sales@northwind.example"], "not among lead"),  # ours
        (["garbage"], "not an email address"),
    ],
)
def test_contacts_accept_refusals(
    leadmail: Leadmail, lead_id: int, args: list[str], expected: str
) -> None:
    result = leadmail.run("contacts", "accept", str(lead_id), *args)
    assert_user_error(result, expected)
    assert result.exit_code == 1
    assert leadmail.json("contacts", "list", str(lead_id), "--format", "json") == []


def test_a_contact_added_by_hand_threads_its_mail_onto_the_lead(
    leadmail: Leadmail, lead_id: int, tmp_path: Path
) -> None:
    """A new subject from an address of another domain: only the contact links it to the lead."""
    leadmail.ok(*contact_args(lead_id, "ceo@acme-holdings.example", "--name", "Max"))
    mail = make_mail(
        sender="Max <CEO@acme-holdings.example>",
        subject="Budget for the chairs",
        message_id="<max-1@acme-holdings.example>",
    )
    [path] = write_files(tmp_path / "later", {"max.eml": mail})
    [row] = leadmail.jsonl("ingest", "--json", str(path))
    assert (row["outcome"], row["lead_id"]) == ("threaded", lead_id)
    assert len(leadmail.json("leads", "list", "--format", "json")) == 1


def test_without_the_contact_the_same_mail_makes_a_new_lead(
    leadmail: Leadmail, lead_id: int, tmp_path: Path
) -> None:
    mail = make_mail(
        sender="Max <ceo@acme-holdings.example>",
        subject="Budget for the chairs",
        message_id="<max-1@acme-holdings.example>",
    )
    [path] = write_files(tmp_path / "later", {"max.eml": mail})
    [row] = leadmail.jsonl("ingest", "--json", str(path))
    assert row["outcome"] == "created" and row["lead_id"] != lead_id


# -- postal addresses -----------------------------------------------------------------------


def address_args(lead: int, *more: str) -> list[str]:
    return [
        "addresses",
        "add",
        str(lead),
        "--type",
        "billing",
        "--line1",
        "1 High Street",
        "--city",
        "Leeds",
        "--country",
        "gb",
        *more,
    ]


def test_addresses_add_list_remove(leadmail: Leadmail, lead_id: int) -> None:
    billing = leadmail.json(
        *address_args(
            lead_id,
            "--line2",
            "Unit 4",
            "--state",
            "West Yorkshire",
            "--postcode",
            "LS1 1AA",
            "--by",
            "ann",
            "--json",
        ),
    )
    assert billing["id"] > 0 and billing["lead_id"] == lead_id
    assert (billing["type"], billing["country"], billing["postcode"]) == (
        "billing",
        "GB",
        "LS1 1AA",
    )
    shipping = leadmail.json(
        "addresses",
        "add",
        str(lead_id),
        "--type",
        "Shipping",
        "--line1",
        "Dock 9",
        "--city",
        "Hamburg",
        "--country",
        "DE",
        "--json",
    )
    listed = leadmail.json("addresses", "list", str(lead_id), "--format", "json")
    assert [a["id"] for a in listed] == [billing["id"], shipping["id"]]
    assert listed[1]["type"] == "shipping" and listed[1]["line2"] is None
    rows = csv_rows(leadmail.ok("addresses", "list", str(lead_id), "--format", "csv").stdout)
    assert [r["city"] for r in rows] == ["Leeds", "Hamburg"]
    assert "Hamburg" in leadmail.ok("addresses", "list", str(lead_id)).stdout

    detail = show(leadmail, lead_id)
    assert [a["id"] for a in detail["addresses"]] == [billing["id"], shipping["id"]]
    table = leadmail.ok("leads", "show", str(lead_id)).stdout
    assert "billing: 1 High Street, Unit 4, Leeds, West Yorkshire, LS1 1AA, GB" in table

    out = leadmail.ok("addresses", "remove", str(shipping["id"]), "--by", "bea").stdout
    assert f"address {shipping['id']} removed" in out
    assert [
        a["id"] for a in leadmail.json("addresses", "list", str(lead_id), "--format", "json")
    ] == [billing["id"]]
    logged = [
        (e["actor"], e["summary"])
        for e in show(leadmail, lead_id)["timeline"]
        if e["type"] == "activity" and e["kind"] == "address"
    ]
    assert [a for a, _ in logged] == ["ann", leadmail_user(), "bea"]
    assert "Hamburg" in logged[2][1] and "removed" in logged[2][1]


@pytest.mark.parametrize(
    "change, expected",
    [
        (["--country", "XX"], "unknown country 'XX'"),
        (["--country", "United Kingdom"], "unknown country"),
        (["--country", "UK"], "unknown country"),  # GB is the code
        (["--type", "home"], "unknown address type 'home'"),
        (["--line1", " "], "--line1 is empty"),
        (["--city", ""], "--city is empty"),
    ],
)
def test_addresses_add_refusals(
    leadmail: Leadmail, lead_id: int, change: list[str], expected: str
) -> None:
    result = leadmail.run(*address_args(lead_id, *change))  # the later option wins in click
    assert_user_error(result, expected)
    assert result.exit_code == 1
    assert leadmail.json("addresses", "list", str(lead_id), "--format", "json") == []


def test_addresses_on_a_missing_lead_or_address(leadmail: Leadmail, lead_id: int) -> None:
    missing = str(lead_id + 100)
    assert_user_error(leadmail.run(*address_args(lead_id + 100)), f"no lead {missing}")
    assert_user_error(leadmail.run("addresses", "list", missing), f"no lead {missing}")
    assert_user_error(leadmail.run("addresses", "remove", "999"), "no address 999")


def test_help_of_every_new_command(leadmail: Leadmail) -> None:
    for args in (
        ["leads", "note"],
        ["leads", "activity"],
        ["contacts"],
        ["contacts", "add"],
        ["contacts", "list"],
        ["contacts", "remove"],
        ["contacts", "suggest"],
        ["contacts", "accept"],
        ["addresses"],
        ["addresses", "add"],
        ["addresses", "list"],
        ["addresses", "remove"],
    ):
        result = leadmail.ok(*args, "--help")
        assert "Usage:" in result.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["leads", "note", "{lead}", "a\x00b"], "the note contains a NUL character"),
        (["leads", "note", "{lead}", "hi", "--by", "x" * 129], "--by is longer than 128"),
        (
            [
                "leads",
                "activity",
                "{lead}",
                "--kind",
                "call",
                "--at",
                "2026-11-30T10:00",
                "--summary",
                "call",
                "--by",
                "x" * 129,
            ],
            "--by is longer than 128",
        ),
        (
            ["contacts", "add", "{lead}", "--email", "kim@acme.example", "--name", "n" * 256],
            "--name is longer than 255",
        ),
        (
            ["contacts", "add", "{lead}", "--email", "kim@acme.example", "--by", "x" * 129],
            "--by is longer than 128",
        ),
        (["contacts", "add", "{lead}", "--email", "k" * 320 + "@acme.example"], "not an email"),
        (["contacts", "add", "{lead}", "--email", "k\x00m@acme.example"], "not an email"),
        (
            [
                "addresses",
                "add",
                "{lead}",
                "--type",
                "office",
                "--line1",
                "1 Road",
                "--city",
                "Leeds",
                "--country",
                "GB",
                "--postcode",
                "9" * 33,
            ],
            "--postcode is longer than 32",
        ),
    ],
)
def test_input_that_does_not_fit_is_refused_in_one_line(
    leadmail: Leadmail, lead_id: int, args: list[str], expected: str
) -> None:
    """On PostgreSQL these would fail inside the driver (a NUL, a value too long)."""
    before = show(leadmail, lead_id)
    result = leadmail.run(*[a.replace("{lead}", str(lead_id)) for a in args])
    assert_user_error(result, expected)
    assert result.exit_code == 1
    after = show(leadmail, lead_id)
    assert (after["timeline"], after["contacts"], after["addresses"]) == (
        before["timeline"],
        before["contacts"],
        before["addresses"],
    )


def test_a_note_file_that_is_not_utf8_is_refused(
    leadmail: Leadmail, lead_id: int, tmp_path: Path
) -> None:
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("Caf\u00e9 meeting".encode("latin-1"))
    assert_user_error(
        leadmail.run("leads", "note", str(lead_id), "--file", str(latin)), "is not UTF-8 text"
    )
