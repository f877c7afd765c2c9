"""Finding leads and reading messages from the CLI, on each backend.

``leads list`` filters, sorts and widens a seeded set of leads (made by mail, then given
fields straight in the database); ``messages show`` / ``messages list`` read what intake
stored, raw bytes included, and print nothing a message could use to drive a terminal.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from tests.integration.helpers import make_mail
from tests.integration.test_cli import LEAD_KEYS, Leadmail, assert_user_error, write_files
from tests.integration.test_cli_output import EVIL_SUBJECT, HOSTILE, assert_safe
from worker.store.db import normalize_url
from worker.store.models import Lead, Message

# Four enquiries, then each lead's fields as a person (or an import) would have set them.
MAILS = {
    "alice": make_mail(
        sender="Alice Adams <alice@acme-industrial.example>",
        subject="Quote for 200 office chairs",
        message_id="<a-1@acme-industrial.example>",
    ),
    "bob": make_mail(
        sender="Bob Brown <bob@globex-trading.example>",
        subject="Standing desks for Leeds",
        message_id="<b-1@globex-trading.example>",
    ),
    "carol": make_mail(
        sender="Carol Chen <carol@initech-systems.example>",
        subject="100% cotton_shirts in bulk",
        message_id="<c-1@initech-systems.example>",
    ),
    "dave": make_mail(
        sender="Dave Diaz <dave.diaz@gmail.com>",
        subject="Pricing for WIDGETS",
        message_id="<d-1@gmail.com>",
    ),
}
MESSAGE_IDS = {
    "alice": "<a-1@acme-industrial.example>",
    "bob": "<b-1@globex-trading.example>",
    "carol": "<c-1@initech-systems.example>",
    "dave": "<d-1@gmail.com>",
}
FIELDS: dict[str, dict[str, Any]] = {
    "alice": {
        "assigned_to": "Sam",
        "source": "Email",
        "company_name": "Acme Industrial",
        "created_at": datetime(2026, 10, 1, 8, 0, tzinfo=UTC),
        "status": "Open",
        "phone": "+44 20 7946 0001",
        "lead_type": "Client",
        "industry": "Furniture",
        "custom_fields": {"budget": 5000, "tier": "gold"},
    },
    "bob": {
        "assigned_to": "kim",
        "source": "Web Form",
        "company_name": "Globex Trading",
        "created_at": datetime(2026, 10, 15, 12, 0, tzinfo=UTC),
        "status": "Replied",
        "phone": None,
        "lead_type": "Channel Partner",
        "industry": "Retail",
        "custom_fields": {"tier": "silver"},
    },
    "carol": {
        "assigned_to": None,
        "source": "Referral",
        "company_name": "Initech 50%_off",
        "created_at": datetime(2026, 11, 1, 0, 0, tzinfo=UTC),
        "status": "Lead",
        "phone": "555-0100",
        "lead_type": None,
        "industry": None,
        "custom_fields": {},
    },
    "dave": {
        "assigned_to": "SAM",
        "source": "email",
        "company_name": None,
        "created_at": datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC),
        "status": "Interested",
        "phone": None,
        "lead_type": "Client",
        "industry": "Retail",
        "custom_fields": {},
    },
}


@pytest.fixture
def seeded(leadmail: Leadmail, tmp_path: Path) -> dict[str, int]:
    """The four leads with their fields set; lead id by first name."""
    paths = write_files(tmp_path / "in", {f"{name}.eml": raw for name, raw in MAILS.items()})
    results = leadmail.jsonl("ingest", "--json", *map(str, paths))
    ids = {Path(r["source"]).stem: int(r["lead_id"]) for r in results}
    assert sorted(ids) == sorted(MAILS) and len(set(ids.values())) == 4
    with direct_session(leadmail.db_url) as session:
        for name, values in FIELDS.items():
            session.execute(update(Lead).where(Lead.id == ids[name]).values(**values))
    return ids


@pytest.fixture
def ingested_paths(leadmail: Leadmail, seeded: dict[str, int], tmp_path: Path) -> dict[str, Path]:
    return {name: tmp_path / "in" / f"{name}.eml" for name in MAILS}


@contextmanager
def direct_session(db_url: str) -> Iterator[Session]:
    """A committing session on the test's database, for fields the CLI cannot set (yet)."""
    engine = create_engine(normalize_url(db_url))
    try:
        with Session(engine) as session, session.begin():
            yield session
    finally:
        engine.dispose()


def names(leadmail: Leadmail, ids: dict[str, int], *args: str) -> list[str]:
    """The first names of the leads ``leads list ARGS`` prints, in its order."""
    by_id = {lead_id: name for name, lead_id in ids.items()}
    rows = leadmail.json("leads", "list", "--format", "json", *args)
    return [by_id[row["id"]] for row in rows]


# -- filters --------------------------------------------------------------------------------


def test_each_filter_narrows_the_list(leadmail: Leadmail, seeded: dict[str, int]) -> None:
    assert names(leadmail, seeded) == ["alice", "bob", "carol", "dave"]
    # Executives: any case; 'none' is unassigned; repeatable.
    assert names(leadmail, seeded, "--assigned-to", "sam") == ["alice", "dave"]
    assert names(leadmail, seeded, "--assigned-to", "none") == ["carol"]
    assert names(leadmail, seeded, "--assigned-to", "kim", "--assigned-to", "NONE") == [
        "bob",
        "carol",
    ]
    assert names(leadmail, seeded, "--assigned-to", "nobody") == []
    # Source: exact, any case.
    assert names(leadmail, seeded, "--source", "Email") == ["alice", "dave"]
    assert names(leadmail, seeded, "--source", "web form") == ["bob"]
    assert names(leadmail, seeded, "--source", "Web") == []
    # Status: repeatable.
    assert names(leadmail, seeded, "--status", "Open", "--status", "replied") == ["alice", "bob"]
    # Company: a substring, any case; % and _ are plain characters.
    assert names(leadmail, seeded, "--company", "TRADING") == ["bob"]
    assert names(leadmail, seeded, "--company", "50%_") == ["carol"]
    assert names(leadmail, seeded, "--company", "%") == ["carol"]
    # Filters combine.
    assert names(leadmail, seeded, "--assigned-to", "sam", "--source", "email") == [
        "alice",
        "dave",
    ]
    assert names(leadmail, seeded, "--assigned-to", "sam", "--status", "Interested") == ["dave"]


def test_since_and_until_bound_created_at(leadmail: Leadmail, seeded: dict[str, int]) -> None:
    # A date is a whole day: --until includes it, --since starts at its first moment.
    assert names(leadmail, seeded, "--since", "2026-11-01") == ["carol", "dave"]
    assert names(leadmail, seeded, "--until", "2026-11-01") == ["alice", "bob", "carol"]
    assert names(leadmail, seeded, "--until", "2026-11-20") == ["alice", "bob", "carol", "dave"]
    assert names(leadmail, seeded, "--since", "2026-10-02", "--until", "2026-10-31") == ["bob"]
    # Date-times, with or without an offset (none: UTC).
    assert names(leadmail, seeded, "--since", "2026-10-15T12:00") == ["bob", "carol", "dave"]
    assert names(leadmail, seeded, "--since", "2026-10-15T12:00:01") == ["carol", "dave"]
    assert names(leadmail, seeded, "--until", "2026-10-15 13:00+02:00") == ["alice"]
    assert names(leadmail, seeded, "--until", "2026-10-15T14:00+02:00") == ["alice", "bob"]


def test_search_covers_name_email_company_and_subjects(
    leadmail: Leadmail, seeded: dict[str, int]
) -> None:
    assert names(leadmail, seeded, "--search", "alice ADAMS") == ["alice"]  # name
    assert names(leadmail, seeded, "--search", "GMAIL.com") == ["dave"]  # email
    assert names(leadmail, seeded, "--search", "globex trad") == ["bob"]  # company
    assert names(leadmail, seeded, "--search", "widgets") == ["dave"]  # a subject
    assert names(leadmail, seeded, "--search", "office chairs") == ["alice"]
    # LIKE's wildcards are literal: only Carol's subject and company hold % or _.
    assert names(leadmail, seeded, "--search", "%") == ["carol"]
    assert names(leadmail, seeded, "--search", "_") == ["carol"]
    assert names(leadmail, seeded, "--search", "100%") == ["carol"]
    assert names(leadmail, seeded, "--search", "no such thing") == []
    # One lead with several matching messages is listed once.
    assert names(leadmail, seeded, "--search", "e") == ["alice", "bob", "carol", "dave"]


def test_search_finds_a_later_subject_of_the_thread(
    leadmail: Leadmail, seeded: dict[str, int], tmp_path: Path
) -> None:
    reply = make_mail(
        sender="Bob Brown <bob@globex-trading.example>",
        subject="Also: ergonomic footrests",
        message_id="<b-2@globex-trading.example>",
    )
    (path,) = write_files(tmp_path / "later", {"reply.eml": reply})
    (row,) = leadmail.jsonl("ingest", "--json", str(path))
    assert row["lead_id"] == seeded["bob"]
    assert names(leadmail, seeded, "--search", "FOOTREST") == ["bob"]
    (bob,) = leadmail.json("leads", "list", "--format", "json", "--search", "footrest")
    assert bob["messages"] == 2


# -- sorting --------------------------------------------------------------------------------


def test_sort_both_ways(leadmail: Leadmail, seeded: dict[str, int]) -> None:
    everyone = ["alice", "bob", "carol", "dave"]
    assert names(leadmail, seeded, "--sort", "id") == everyone
    assert names(leadmail, seeded, "--sort", "-id") == everyone[::-1]
    assert names(leadmail, seeded, "--sort", "-created_at") == everyone[::-1]
    assert names(leadmail, seeded, "--sort", "name") == everyone
    assert names(leadmail, seeded, "--sort", "-name") == everyone[::-1]
    assert names(leadmail, seeded, "--sort", "email") == everyone
    # Status by name: Interested, Lead, Open, Replied.
    assert names(leadmail, seeded, "--sort", "status") == ["dave", "carol", "alice", "bob"]
    # Unset values last both ways; case does not order (SAM = Sam); ties by id.
    assert names(leadmail, seeded, "--sort", "company") == ["alice", "bob", "carol", "dave"]
    assert names(leadmail, seeded, "--sort", "-company") == ["carol", "bob", "alice", "dave"]
    assert names(leadmail, seeded, "--sort", "assigned_to") == ["bob", "alice", "dave", "carol"]
    assert names(leadmail, seeded, "--sort", "-assigned_to") == ["dave", "alice", "bob", "carol"]
    # --limit applies after sorting.
    assert names(leadmail, seeded, "--sort", "-created_at", "--limit", "2") == ["dave", "carol"]


def test_sort_by_updated_at_follows_the_last_change(
    leadmail: Leadmail, seeded: dict[str, int]
) -> None:
    stamps = {
        "alice": datetime(2026, 11, 25, tzinfo=UTC),
        "bob": datetime(2026, 11, 21, tzinfo=UTC),
        "carol": datetime(2026, 11, 23, tzinfo=UTC),
        "dave": datetime(2026, 11, 22, tzinfo=UTC),
    }
    with direct_session(leadmail.db_url) as session:
        for name, at in stamps.items():
            session.execute(update(Lead).where(Lead.id == seeded[name]).values(updated_at=at))
    assert names(leadmail, seeded, "--sort", "updated_at") == ["bob", "dave", "carol", "alice"]
    assert names(leadmail, seeded, "--sort", "-updated_at") == ["alice", "carol", "dave", "bob"]


# -- extra columns --------------------------------------------------------------------------


def test_field_columns_in_json(leadmail: Leadmail, seeded: dict[str, int]) -> None:
    rows = leadmail.json(
        "leads",
        "list",
        "--format",
        "json",
        "--field",
        "phone",
        "--field",
        "type",
        "--field",
        "Industry",
        "--field",
        "custom.budget",
        "--field",
        "custom.tier",
        "--field",
        "updated_at",
    )
    extra = {"phone", "lead_type", "industry", "custom.budget", "custom.tier", "updated_at"}
    for row in rows:
        assert set(row) == LEAD_KEYS | extra
    alice, bob, carol, _dave = rows
    assert (alice["phone"], alice["lead_type"], alice["industry"]) == (
        "+44 20 7946 0001",
        "Client",
        "Furniture",
    )
    assert (alice["custom.budget"], alice["custom.tier"]) == (5000, "gold")
    assert (bob["phone"], bob["custom.budget"], bob["custom.tier"]) == (None, None, "silver")
    assert carol["lead_type"] is None and carol["custom.tier"] is None
    assert isinstance(alice["updated_at"], str) and alice["updated_at"][:4].isdigit()
    # Without --field the JSON is exactly what it was.
    plain = leadmail.json("leads", "list", "--format", "json")
    assert all(set(row) == LEAD_KEYS for row in plain)


def test_field_columns_in_csv_and_table(leadmail: Leadmail, seeded: dict[str, int]) -> None:
    out = leadmail.ok(
        "leads", "list", "--format", "csv", "--field", "segment", "--field", "phone",
        "--field", "custom.tier", "--field", "email",
    ).stdout  # fmt: skip
    reader = csv.DictReader(io.StringIO(out))
    assert reader.fieldnames is not None
    # The usual columns, then the asked ones in order (email is one already).
    assert reader.fieldnames[-3:] == ["market_segment", "phone", "custom.tier"]
    assert reader.fieldnames.count("email") == 1
    rows = list(reader)
    assert [(r["phone"], r["custom.tier"]) for r in rows] == [
        ("+44 20 7946 0001", "gold"),
        ("", "silver"),
        ("555-0100", ""),
        ("", ""),
    ]
    table = leadmail.ok("leads", "list", "--field", "industry", "--field", "custom.tier").stdout
    for text in ("industry", "custom.tier", "Furniture", "silver", "4 leads"):
        assert text in table


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--since", "yesterday"], ["--since", "yesterday"]),
        (["--until", "2026-13-01"], ["--until", "2026-13-01"]),
        (["--since", ""], ["--since"]),
        (["--since", "2026-11-02", "--until", "2026-11-01"], ["after"]),
        (["--sort", "colour"], ["colour", "created_at", "assigned_to"]),
        (["--sort", "-messages"], ["-messages"]),
        (["--field", "shoe_size"], ["shoe_size", "territory", "custom.KEY"]),
        (["--field", "custom."], ["custom."]),
        (["--assigned-to", " "], ["--assigned-to"]),
        (["--source", ""], ["--source"]),
    ],
)
def test_bad_input_is_refused_in_one_line(
    leadmail: Leadmail, args: list[str], expected: list[str]
) -> None:
    result = leadmail.run("leads", "list", *args)
    assert result.exit_code == 1
    assert_user_error(result, *expected)


# -- messages show / list -------------------------------------------------------------------


def test_messages_show_by_row_id_and_by_message_id(
    leadmail: Leadmail, seeded: dict[str, int]
) -> None:
    (listed,) = leadmail.json("messages", "list", "--lead", str(seeded["bob"]), "--format", "json")
    row_id = listed["id"]
    by_row = leadmail.json("messages", "show", str(row_id), "--format", "json")
    for ref in (
        "b-1@globex-trading.example",
        "<b-1@globex-trading.example>",
        " <b-1@globex-trading.example> ",
    ):
        assert leadmail.json("messages", "show", ref, "--format", "json") == by_row
    assert by_row["id"] == row_id
    assert by_row["message_id"] == "b-1@globex-trading.example"
    assert by_row["lead_id"] == seeded["bob"]
    assert (by_row["from"], by_row["from_name"]) == ("bob@globex-trading.example", "Bob Brown")
    assert by_row["to"] == ["sales@northwind.example"]
    assert by_row["subject"] == "Standing desks for Leeds"
    assert (by_row["kind"], by_row["outcome"], by_row["direction"]) == ("human", "created", "in")
    assert by_row["reasons"] and all(isinstance(r, str) for r in by_row["reasons"])
    assert "could you send a quote" in by_row["text"]
    # The default view: the headers we keep, then the text.
    out = leadmail.ok("messages", "show", str(row_id)).stdout
    lines = out.splitlines()
    assert lines[0] == "from:       Bob Brown <bob@globex-trading.example>"
    for line in (
        "to:         sales@northwind.example",
        "subject:    Standing desks for Leeds",
        "message-id: <b-1@globex-trading.example>",
        f"lead:       {seeded['bob']}",
        "kind:       human",
        "outcome:    created",
    ):
        assert line in lines
    assert lines[-1] == "Hello, could you send a quote for 200 chairs?"
    assert leadmail.ok("messages", "show", str(row_id), "--text").stdout == (
        "Hello, could you send a quote for 200 chairs?\n"
    )


def test_messages_show_raw_is_the_ingested_file(
    leadmail: Leadmail, ingested_paths: dict[str, Path]
) -> None:
    for name, path in ingested_paths.items():
        result = leadmail.ok("messages", "show", MESSAGE_IDS[name], "--raw")
        assert result.stdout_bytes == path.read_bytes()


def test_messages_show_raw_keeps_bytes_no_text_codec_could(
    leadmail: Leadmail, tmp_path: Path
) -> None:
    raw = (
        b"From: Zo\xeb <zoe@bytes.example>\r\nTo: sales@northwind.example\r\n"
        b"Subject: =?iso-8859-1?q?Caf=E9?=\r\nMessage-ID: <z-1@bytes.example>\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nCaf\xe9 \x00\x1b[2J\xff\r\n"
    )
    (path,) = write_files(tmp_path / "bytes", {"z.eml": raw})
    leadmail.ok("ingest", str(path))
    assert leadmail.ok("messages", "show", "z-1@bytes.example", "--raw").stdout_bytes == raw
    text = leadmail.ok("messages", "show", "z-1@bytes.example", "--text").stdout
    assert "Café" in text and "\x1b" not in text and "\x00" not in text


def test_messages_show_html_is_the_sanitised_part(leadmail: Leadmail, tmp_path: Path) -> None:
    raw = (
        b"From: Hal <hal@markup.example>\r\nTo: sales@northwind.example\r\n"
        b"Subject: Brochure\r\nMessage-ID: <h-1@markup.example>\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<p>We need <b>40 desks</b></p><script>alert(1)</script>\r\n"
    )
    (path,) = write_files(tmp_path / "html", {"h.eml": raw})
    leadmail.ok("ingest", str(path))
    html = leadmail.ok("messages", "show", "h-1@markup.example", "--html").stdout
    assert "<b>40 desks</b>" in html and "<script>" not in html
    shown = leadmail.ok("messages", "show", "h-1@markup.example").stdout
    assert "40 desks" in shown


def test_messages_show_a_hostile_message_is_escaped(leadmail: Leadmail, tmp_path: Path) -> None:
    (path,) = write_files(tmp_path / "evil", {"evil.eml": HOSTILE})
    leadmail.ok("ingest", str(path))
    (lead,) = leadmail.json("leads", "list", "--format", "json")
    (message,) = leadmail.json("messages", "list", "--lead", str(lead["id"]), "--format", "json")
    assert message["subject"] == EVIL_SUBJECT  # JSON stays exact
    shown = leadmail.ok("messages", "show", str(message["id"]))
    listed = leadmail.ok("messages", "list", "--lead", str(lead["id"]))
    as_csv = leadmail.ok("messages", "list", "--lead", str(lead["id"]), "--format", "csv")
    found = leadmail.ok("leads", "list", "--search", "evil", "--field", "notes")
    assert_safe(shown.stdout, shown.stderr, listed.stdout, as_csv.stdout, found.stdout)
    assert "\\x1b[2J" in shown.stdout and "[link=https://evil.example]" in shown.stdout


def test_messages_list_for_a_lead(leadmail: Leadmail, seeded: dict[str, int]) -> None:
    rows = leadmail.json("messages", "list", "--lead", str(seeded["alice"]), "--format", "json")
    assert [(r["subject"], r["direction"], r["outcome"]) for r in rows] == [
        ("Quote for 200 office chairs", "in", "created")
    ]
    assert {"id", "date", "direction", "from", "subject", "outcome"} <= set(rows[0])
    out = leadmail.ok("messages", "list", "--lead", str(seeded["alice"]), "--format", "csv")
    reader = csv.DictReader(io.StringIO(out.stdout))
    assert reader.fieldnames == ["id", "date", "direction", "from", "subject", "outcome"]
    (row,) = list(reader)
    assert (row["from"], row["subject"]) == ("alice@acme-industrial.example", rows[0]["subject"])
    assert row["date"].startswith("2026-11-02T09:30")
    table = leadmail.ok("messages", "list", "--lead", str(seeded["alice"])).stdout
    assert "Quote for 200 office chairs" in table and "1 messages" in table


def test_a_message_id_stored_twice_is_refused_naming_the_rows(
    leadmail: Leadmail, seeded: dict[str, int]
) -> None:
    # The same mail fetched by a second account is a second row (one per account and
    # direction); intake deduplicates that today, so the copy is made here.
    with direct_session(leadmail.db_url) as session:
        original = session.scalars(
            select(Message).where(Message.message_id == "b-1@globex-trading.example")
        ).one()
        columns = {c.key: getattr(original, c.key) for c in Message.__table__.columns}
        copy = Message(**{**columns, "id": None, "account": "support"})
        session.add(copy)
        session.flush()
        rows = sorted([original.id, copy.id])
    result = leadmail.run("messages", "show", "<b-1@globex-trading.example>")
    assert result.exit_code == 1
    assert_user_error(result, "b-1@globex-trading.example", f"rows {rows[0]}, {rows[1]}", "row id")
    # Either row by its id.
    for row_id in rows:
        shown = leadmail.json("messages", "show", str(row_id), "--format", "json")
        assert shown["id"] == row_id


@pytest.mark.parametrize(
    ("args", "expected", "code"),
    [
        # Not found is a refusal like any other: one line, exit 1.
        (["show", "999"], ["999"], 1),
        (["show", "<nobody@nowhere.example>"], ["nobody@nowhere.example"], 1),
        (["show", "<>"], ["Message-ID"], 1),
        (["show", "1", "--raw", "--text"], ["--raw", "--text"], 1),
        (["show", "1", "--html", "--format", "json"], ["--html", "--format json"], 1),
        (["list", "--lead", "999"], ["no lead 999"], 1),
    ],
)
def test_messages_refusals(
    leadmail: Leadmail, seeded: dict[str, int], args: list[str], expected: list[str], code: int
) -> None:
    result = leadmail.run("messages", *args)
    assert result.exit_code == code
    assert_user_error(result, *expected)
