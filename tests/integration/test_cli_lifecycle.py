"""``leads merge`` and ``leads erase`` through the CLI on each backend."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from tests.integration.helpers import make_mail
from tests.integration.test_cli import (
    Leadmail,
    assert_user_error,
    pack_bytes,
    stored_blobs,
    write_files,
)
from worker.store.models import Lead, LeadLoad, Message, table_of
from worker.store.routing_state import OPEN_STATUSES

SHARED = b"%PDF-1.4 the same price list sent by both\n"


def with_attachment(raw: bytes, name: str, data: bytes) -> bytes:
    from email import message_from_bytes, policy

    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg.as_bytes()


JANE = make_mail()
JANE_REPLY = make_mail(
    subject="Re: Quote for 200 office chairs",
    body="And 20 desks.\n",
    message_id="<r1@acme-industrial.example>",
    in_reply_to="<enquiry-1@acme-industrial.example>",
    references="<enquiry-1@acme-industrial.example>",
    cc="Tom Colleague <tom@acme-industrial.example>",
)
JANE_HOME = with_attachment(
    make_mail(
        sender="Jane Buyer <jane.buyer@home-mail.example>",
        subject="Chairs again, from home",
        message_id="<home-1@home-mail.example>",
        cc="Tom Colleague <tom@acme-industrial.example>",
    ),
    "prices.pdf",
    SHARED,
)
BOB = with_attachment(
    make_mail(
        sender="Bob Stone <bob@globex-trading.example>",
        subject="Standing desks",
        message_id="<desks-1@globex-trading.example>",
    ),
    "prices.pdf",
    SHARED,
)


def leads_by_email(leadmail: Leadmail) -> dict[str, dict[str, Any]]:
    return {row["email"]: row for row in leadmail.json("leads", "list", "--format", "json")}


def message_count(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(table_of(Message))) or 0)
    finally:
        engine.dispose()


def load_is_right(db_url: str) -> dict[str, int]:
    """lead_load equals a count of the open assigned leads that are not merged pointers."""
    leads, load = table_of(Lead), table_of(LeadLoad)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(leads.c.assigned_to, func.count())
                .where(
                    leads.c.assigned_to.is_not(None),
                    leads.c.status.in_(OPEN_STATUSES),
                    leads.c.merged_into_id.is_(None),
                )
                .group_by(leads.c.assigned_to)
            )
            counted = {e: int(n) for e, n in rows}
            kept = {e: n for e, n in conn.execute(select(load.c.executive, load.c.open_leads)) if n}
    finally:
        engine.dispose()
    assert kept == counted
    return kept


@pytest.fixture
def two_leads(leadmail: Leadmail, tmp_path: Path) -> tuple[int, int, int]:
    """Jane at work (with a reply), Jane from home (same person, second lead), Bob."""
    files = write_files(
        tmp_path / "inbox",
        {"1.eml": JANE, "2.eml": JANE_REPLY, "3.eml": JANE_HOME, "4.eml": BOB},
    )
    rows = leadmail.jsonl("ingest", "--json", *map(str, files))
    assert [r["outcome"] for r in rows] == ["created", "threaded", "created", "created"]
    leads = leads_by_email(leadmail)
    return (
        leads["jane@acme-industrial.example"]["id"],
        leads["jane.buyer@home-mail.example"]["id"],
        leads["bob@globex-trading.example"]["id"],
    )


def test_merge_moves_everything_and_leaves_a_pointer(
    leadmail: Leadmail, db_url: str, two_leads: tuple[int, int, int], tmp_path: Path
) -> None:
    keep, other, _ = two_leads
    leadmail.ok("leads", "assign", str(keep), "alice")
    leadmail.ok("leads", "assign", str(other), "bob")
    leadmail.ok("leads", "note", str(other), "prefers email at home")
    leadmail.ok(
        "leads",
        "activity",
        str(other),
        "--kind",
        "call",
        "--at",
        "2026-11-30T10:00",
        "--summary",
        "called her",
    )
    leadmail.ok("leads", "make", "opportunity", str(other), "--json")
    before = message_count(db_url)
    kept_messages = leadmail.json("leads", "show", str(keep), "--format", "json")["messages"]
    other_messages = leadmail.json("leads", "show", str(other), "--format", "json")["messages"]
    assert load_is_right(db_url) == {"alice": 1, "bob": 1}

    done = leadmail.json("leads", "merge", str(keep), str(other), "--by", "carol", "--json")

    assert done["id"] == keep and done["merged_lead_id"] == other
    assert done["moved"]["messages"] == other_messages == 1
    assert message_count(db_url) == before
    shown = leadmail.json("leads", "show", str(keep), "--format", "json")
    assert shown["messages"] == kept_messages + other_messages
    assert "jane.buyer@home-mail.example" in {c["email"] for c in shown["contacts"]}
    assert shown["records"]["opportunities"]
    # OTHER's open opportunity now decides KEEP's status too, logged with its cause.
    assert done["status"] == shown["status"] == "Opportunity"
    assert any("merged by carol" in str(e) for e in shown["timeline"] if e["type"] == "status")
    kinds = [e["type"] for e in shown["timeline"]]
    assert "comment" in kinds
    merge_entries = [e for e in shown["timeline"] if "merged into this lead" in str(e)]
    assert merge_entries and "carol" in str(merge_entries[0])
    # The old id resolves to KEEP, and the listing shows KEEP only.
    pointer = leadmail.json("leads", "show", str(other), "--format", "json")
    assert pointer["id"] == keep and pointer["merged_from"] == other
    assert f"lead {other} was merged into {keep}" in leadmail.ok("leads", "show", str(other)).stdout
    assert set(leads_by_email(leadmail)) == {
        "jane@acme-industrial.example",
        "bob@globex-trading.example",
    }
    assert load_is_right(db_url) == {"alice": 1}
    # Later mail from OTHER's address threads onto KEEP (it is KEEP's contact now).
    later = make_mail(
        sender="Jane Buyer <jane.buyer@home-mail.example>",
        subject="One more question",
        message_id="<home-2@home-mail.example>",
    )
    (path,) = write_files(tmp_path / "later", {"5.eml": later})
    (row,) = leadmail.jsonl("ingest", "--json", str(path))
    assert row["outcome"] == "threaded" and row["lead_id"] == keep


def test_merge_refusals(leadmail: Leadmail, two_leads: tuple[int, int, int]) -> None:
    keep, other, bob = two_leads
    assert_user_error(leadmail.run("leads", "merge", str(keep), str(keep)), "itself")
    assert_user_error(leadmail.run("leads", "merge", str(keep), "999"), "no lead 999")
    assert_user_error(leadmail.run("leads", "merge", "999", str(keep)), "no lead 999")
    leadmail.ok("leads", "merge", str(keep), str(other))
    assert_user_error(leadmail.run("leads", "merge", str(bob), str(other)), "already merged")
    assert_user_error(leadmail.run("leads", "merge", str(other), str(bob)), "merged into")


def test_erase_removes_the_lead_and_its_unshared_blobs(
    leadmail: Leadmail, db_url: str, two_leads: tuple[int, int, int], tmp_path: Path
) -> None:
    jane, home, bob = two_leads
    leadmail.ok("leads", "assign", str(jane), "alice")
    leadmail.ok("leads", "note", str(jane), "wants chairs")
    leadmail.ok("leads", "merge", str(jane), str(home))
    # Her out-of-office note is on no lead (ignored), but it is her mail and goes too.
    away = make_mail(
        subject="Out of office: back on Monday",
        message_id="<away-1@acme-industrial.example>",
        headers={"Auto-Submitted": "auto-replied"},
    )
    (away_path,) = write_files(tmp_path / "away", {"a.eml": away})
    (away_row,) = leadmail.jsonl("ingest", "--json", str(away_path))
    assert away_row["outcome"] == "ignored" and away_row["lead_id"] is None
    extra = tmp_path / "floorplan.txt"
    extra.write_bytes(b"only jane's floor plan\n")
    leadmail.ok("leads", "attach", str(jane), str(extra))
    blobs_before = set(stored_blobs(leadmail.storage))
    bob_show = leadmail.json("leads", "show", str(bob), "--format", "json")

    assert_user_error(leadmail.run("leads", "erase", str(jane)), "--yes")
    assert_user_error(leadmail.run("leads", "erase", "999", "--yes"), "no lead 999")
    done = leadmail.json("leads", "erase", str(jane), "--yes", "--json")

    assert done["messages"] == 4 and done["leads"] == 2 and done["notes"] == 1
    assert done["blobs"] == 5  # four raw messages and the floor plan; the shared PDF stays
    blobs_after = set(stored_blobs(leadmail.storage))
    assert len(blobs_before - blobs_after) == 5
    assert blobs_after < blobs_before
    # Zeroed in place right away: the floor plan's bytes are in no pack any more.
    assert b"only jane's floor plan" not in pack_bytes(leadmail.storage)
    assert leadmail.ok("store", "verify").stderr.endswith(" 0 problems\n")
    assert set(leads_by_email(leadmail)) == {"bob@globex-trading.example"}
    assert message_count(db_url) == 1
    assert_user_error(leadmail.run("leads", "show", str(jane)), "no lead")
    assert_user_error(leadmail.run("leads", "show", str(home)), "no lead")
    # Bob's lead and his copy of the shared PDF are untouched.
    assert leadmail.json("leads", "show", str(bob), "--format", "json") == bob_show
    (pdf,) = [a for a in bob_show["attachments"] if a["filename"] == "prices.pdf"]
    assert leadmail.ok("attachments", "save", str(pdf["id"]), "--to", str(tmp_path))
    assert load_is_right(db_url) == {}

    # A resync of the mailbox makes no lead and stores nothing of the erased mail.
    files = write_files(
        tmp_path / "resync", {"1.eml": JANE, "2.eml": JANE_REPLY, "3.eml": JANE_HOME}
    )
    rows = leadmail.jsonl("ingest", "--json", *map(str, files))
    assert [(r["outcome"], r["reasons"], r["lead_id"]) for r in rows] == [
        ("ignored", ["erased"], None)
    ] * 3
    assert set(leads_by_email(leadmail)) == {"bob@globex-trading.example"}
    assert message_count(db_url) == 1
    assert set(stored_blobs(leadmail.storage)) == blobs_after
    gc = leadmail.json("store", "gc", "--json")
    assert gc["packs_compacted"] >= 1 and gc["bytes_reclaimed"] > 0
    assert set(stored_blobs(leadmail.storage)) == blobs_after
    assert leadmail.ok("store", "verify").stderr.endswith(" 0 problems\n")
    # New mail from an erased address is ignored too.
    again = make_mail(message_id="<new-1@acme-industrial.example>", subject="Hello again")
    (path,) = write_files(tmp_path / "again", {"n.eml": again})
    (row,) = leadmail.jsonl("ingest", "--json", str(path))
    assert row["outcome"] == "ignored" and row["reasons"] == ["erased"]


def test_erase_text_output_names_the_counts(
    leadmail: Leadmail, two_leads: tuple[int, int, int]
) -> None:
    _, _, bob = two_leads
    out = leadmail.ok("leads", "erase", str(bob), "--yes").stdout
    assert out.startswith(f"lead {bob} erased: removed 1 leads, 1 messages")
    assert "blobs" in out


def test_migration_0007_keeps_the_lead_load_triggers(db_url: str) -> None:
    """0007 alters ``leads``; on SQLite a batch copy of the table would drop 0004's triggers."""
    from sqlalchemy import insert

    from worker.config import DatabaseSettings
    from worker.store import schema
    from worker.store.db import Database

    leads = table_of(Lead)
    db = Database(DatabaseSettings(url=db_url))
    try:
        schema.upgrade(db.engine, "0006")
        schema.upgrade(db.engine)
        with db.engine.begin() as conn:
            conn.execute(
                insert(leads).values(
                    email="x@example.com",
                    email_key="x@example.com",
                    status="Lead",
                    assigned_to="dana",
                    is_organization=False,
                    custom_fields={},
                    email_bouncing=False,
                )
            )
    finally:
        db.dispose()
    assert load_is_right(db_url) == {"dana": 1}


def test_a_merged_leads_old_id_keeps_working_for_changes(
    leadmail: Leadmail, two_leads: tuple[int, int, int], tmp_path: Path
) -> None:
    """After a merge, a note, call, contact, address, record, edit or file given OTHER's id
    lands on KEEP: the old id still resolves, nothing is written to the hidden pointer."""
    keep, other, _ = two_leads
    leadmail.ok("leads", "merge", str(keep), str(other), "--by", "alice")
    leadmail.ok("leads", "note", str(other), "Called back on the home number")
    leadmail.ok(
        "leads",
        "activity",
        str(other),
        "--kind",
        "call",
        "--at",
        "2026-11-30T10:00",
        "--summary",
        "Follow-up",
    )
    leadmail.ok("contacts", "add", str(other), "--email", "sam@acme-industrial.example")
    leadmail.ok(
        "addresses",
        "add",
        str(other),
        "--type",
        "office",
        "--line1",
        "1 Main St",
        "--city",
        "Leeds",
        "--country",
        "GB",
    )
    leadmail.ok("leads", "set", str(other), "--industry", "Furniture")
    made = leadmail.json("leads", "make", "opportunity", str(other), "--json")
    (doc,) = write_files(tmp_path / "files", {"spec.txt": b"spec"})
    leadmail.ok("leads", "attach", str(other), str(doc))

    detail = leadmail.json("leads", "show", str(keep), "--format", "json")
    assert detail["industry"] == "Furniture"
    assert made["lead_id"] == keep
    assert "sam@acme-industrial.example" in {c["email"] for c in detail["contacts"]}
    assert [a["city"] for a in detail["addresses"]] == ["Leeds"]
    assert any(a["filename"] == "spec.txt" for a in detail["attachments"])
    texts = [e.get("text") for e in detail["timeline"] if e["type"] == "comment"]
    assert "Called back on the home number" in texts
    assert any(e.get("summary") == "Follow-up" for e in detail["timeline"])
    listed = leadmail.json("messages", "list", "--lead", str(other), "--format", "json")
    assert listed == leadmail.json("messages", "list", "--lead", str(keep), "--format", "json")


def test_erase_of_a_merged_id_names_the_lead_that_holds_its_mail(
    leadmail: Leadmail, db_url: str, two_leads: tuple[int, int, int]
) -> None:
    keep, other, _ = two_leads
    leadmail.ok("leads", "merge", str(keep), str(other))
    before = message_count(db_url)
    result = leadmail.run("leads", "erase", str(other), "--yes")
    assert_user_error(result, f"merged into lead {keep}")
    assert f"leads erase {keep} --yes" in result.stderr
    assert message_count(db_url) == before
    assert leadmail.json("leads", "show", str(other), "--format", "json")["id"] == keep


def test_merge_keeps_one_contact_per_address_and_one_primary(
    leadmail: Leadmail, two_leads: tuple[int, int, int]
) -> None:
    keep, other, _ = two_leads
    for lead in (keep, other):
        leadmail.ok("contacts", "add", str(lead), "--email", "Sam@Acme-Industrial.example")
        leadmail.ok(
            "contacts", "add", str(lead), "--email", f"boss{lead}@acme-industrial.example",
            "--primary",
        )  # fmt: skip
    leadmail.ok("leads", "merge", str(keep), str(other))
    contacts = leadmail.json("contacts", "list", str(keep), "--format", "json")
    emails = [c["email"].lower() for c in contacts]
    assert emails.count("sam@acme-industrial.example") == 1
    assert [c["email"] for c in contacts if c["is_primary"]] == [
        f"boss{keep}@acme-industrial.example"
    ]
    assert f"boss{other}@acme-industrial.example" in emails


def test_migration_0009_folds_duplicate_contacts(db_url: str) -> None:
    """Contacts stored twice for one lead before 0009's unique key: the oldest stays."""
    from sqlalchemy import insert, select

    from worker.config import DatabaseSettings
    from worker.store import schema
    from worker.store.db import Database
    from worker.store.models import Contact

    leads, contacts = table_of(Lead), table_of(Contact)
    db = Database(DatabaseSettings(url=db_url))
    try:
        schema.upgrade(db.engine, "0008")
        with db.engine.begin() as conn:
            lead_id = conn.execute(
                insert(leads)
                .values(
                    email="x@example.com",
                    email_key="x@example.com",
                    status="Lead",
                    is_organization=False,
                    custom_fields={},
                    email_bouncing=False,
                )
                .returning(leads.c.id)
            ).scalar_one()
            for name in ("first", "second"):
                conn.execute(
                    insert(contacts).values(
                        lead_id=lead_id, name=name, email="s@example.com", email_key="s@example.com"
                    )
                )
        schema.upgrade(db.engine)
        with db.engine.connect() as conn:
            names = conn.scalars(select(contacts.c.name).where(contacts.c.lead_id == lead_id))
            assert list(names) == ["first"]
    finally:
        db.dispose()
