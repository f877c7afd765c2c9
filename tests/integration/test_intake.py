"""Intake on a real database: outcomes, threading, statuses, dedup, quarantine."""

from __future__ import annotations

import codecs
import logging

import pytest
from sqlalchemy import func, select, text

from tests.integration.helpers import make_mail
from worker.errors import ParseError
from worker.mail.message import RawMessage
from worker.services import preparation
from worker.services.context import App
from worker.services.intake import Intake
from worker.services.leads import lead_detail
from worker.store.models import (
    Attachment,
    Lead,
    LeadStatus,
    Message,
    Outcome,
    QuarantineEntry,
    StatusChange,
)


def raw(data: bytes, source: str = "test.eml", account: str = "local") -> RawMessage:
    return RawMessage(data=data, source=source, account=account)


def count(app: App, model: type) -> int:
    with app.db.transaction(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_new_enquiry_creates_a_lead_with_status_log(app: App) -> None:
    result = Intake(app).process(raw(make_mail()))
    assert result.outcome is Outcome.CREATED and result.kind == "human"
    with app.db.transaction(write=False) as s:
        lead = s.get(Lead, result.lead_id)
        assert lead is not None
        assert (lead.email, lead.person_name, lead.status) == (
            "jane@acme-industrial.example",
            "Jane Buyer",
            "Lead",
        )
        assert lead.organization_domain == "acme-industrial.example"
        assert lead.company_name
        changes = s.scalars(select(StatusChange).where(StatusChange.lead_id == lead.id)).all()
        assert [(c.from_status, c.to_status) for c in changes] == [(None, "Lead")]


def test_reply_threads_and_opens_the_lead(app: App) -> None:
    intake = Intake(app)
    first = intake.process(raw(make_mail()))
    reply = intake.process(
        raw(
            make_mail(
                subject="Re: Quote for 200 office chairs",
                message_id="<r1@acme-industrial.example>",
                in_reply_to="<enquiry-1@acme-industrial.example>",
            )
        )
    )
    assert reply.outcome is Outcome.THREADED and reply.lead_id == first.lead_id
    detail = lead_detail(app, first.lead_id or 0)
    assert detail["status"] == "Open"
    assert [e["type"] for e in detail["timeline"]].count("message") == 2
    assert any(e["type"] == "status" and e["to_status"] == "Open" for e in detail["timeline"])


def test_do_not_contact_is_never_changed_by_mail(app: App) -> None:
    intake = Intake(app)
    first = intake.process(raw(make_mail()))
    with app.db.transaction() as s:
        lead = s.get(Lead, first.lead_id)
        assert lead is not None
        lead.status = LeadStatus.DO_NOT_CONTACT.value
    intake.process(
        raw(
            make_mail(
                message_id="<r2@acme-industrial.example>",
                in_reply_to="<enquiry-1@acme-industrial.example>",
            )
        )
    )
    assert lead_detail(app, first.lead_id or 0)["status"] == "Do Not Contact"


def test_stranger_quoting_our_ids_gets_a_linked_new_lead(app: App) -> None:
    intake = Intake(app)
    first = intake.process(raw(make_mail()))
    other = intake.process(
        raw(
            make_mail(
                sender="Mallory <mallory@evil.example>",
                message_id="<m@evil.example>",
                in_reply_to="<enquiry-1@acme-industrial.example>",
            )
        )
    )
    assert other.outcome is Outcome.CREATED and other.lead_id != first.lead_id
    assert lead_detail(app, other.lead_id or 0)["related_lead_id"] == first.lead_id


def test_colleague_from_same_company_joins_the_thread(app: App) -> None:
    intake = Intake(app)
    first = intake.process(raw(make_mail()))
    colleague = intake.process(
        raw(
            make_mail(
                sender="Bob <bob@acme-industrial.example>",
                message_id="<b@acme-industrial.example>",
                references="<enquiry-1@acme-industrial.example>",
            )
        )
    )
    assert colleague.outcome is Outcome.THREADED and colleague.lead_id == first.lead_id
    emails = {c["email"] for c in lead_detail(app, first.lead_id or 0)["contacts"]}
    assert "bob@acme-industrial.example" in emails


def test_same_sender_new_subject_is_a_new_conversation_on_the_same_lead(app: App) -> None:
    intake = Intake(app)
    first = intake.process(raw(make_mail()))
    again = intake.process(
        raw(make_mail(subject="Also: desks?", message_id="<d@acme-industrial.example>"))
    )
    assert again.outcome is Outcome.THREADED and again.lead_id == first.lead_id
    assert any("sender" in r for r in again.reasons)


def test_duplicates_by_message_id_and_by_bytes(app: App) -> None:
    intake = Intake(app)
    data = make_mail()
    assert intake.process(raw(data)).outcome is Outcome.CREATED
    assert intake.process(raw(data)).outcome is Outcome.DUPLICATE
    assert intake.process(raw(codecs.BOM_UTF8 + data)).outcome is Outcome.DUPLICATE
    assert intake.process(raw(data.replace(b"\n", b"\r\n"))).outcome is Outcome.DUPLICATE
    # Same bytes under another account are the same message too.
    assert intake.process(raw(data, account="other")).outcome is Outcome.DUPLICATE
    no_id = make_mail(message_id=None)
    first = intake.process(raw(no_id))
    assert first.outcome is Outcome.THREADED and first.message_id
    assert intake.process(raw(no_id)).outcome is Outcome.DUPLICATE
    assert count(app, Message) == 2


def test_machine_mail_never_creates_a_lead(app: App) -> None:
    intake = Intake(app)
    cases = [
        make_mail(
            sender="MAILER-DAEMON@mx.example",
            subject="Undelivered Mail Returned to Sender",
            body="This is the mail system at host mx.example.\n\nI'm sorry to have to "
            "inform you that your message could not be delivered.\n",
            message_id="<b1@mx.example>",
            headers={"Auto-Submitted": "auto-replied"},
        ),
        make_mail(
            sender="Jane <jane@other.example>",
            subject="Automatic reply: Quote",
            message_id="<a1@other.example>",
            headers={"Auto-Submitted": "auto-replied"},
        ),
        make_mail(
            sender="News <news@list.example>",
            subject="Weekly digest",
            message_id="<l1@list.example>",
            headers={"List-Id": "<news.list.example>", "List-Unsubscribe": "<mailto:u@x>"},
        ),
        make_mail(
            sender="Sales <sales@northwind.example>",
            subject="Our own",
            message_id="<o1@northwind.example>",
        ),
    ]
    kinds = [intake.process(raw(c, source=f"c{i}")) for i, c in enumerate(cases)]
    assert [r.outcome for r in kinds] == [Outcome.IGNORED] * 4
    assert [r.kind for r in kinds] == ["bounce", "auto_reply", "list", "own"]
    assert count(app, Lead) == 0
    assert count(app, Message) == 4  # recorded with their outcome, for "why not a lead"


def test_web_form_relay_uses_reply_to(app: App) -> None:
    data = make_mail(
        sender="Website <no-reply@forms.northwind.example>",
        subject="New contact form submission",
        message_id="<f1@forms.example>",
        headers={"Reply-To": "Somchai <somchai@siam-trading.example>"},
    )
    result = Intake(app).process(raw(data))
    assert result.outcome is Outcome.CREATED
    assert lead_detail(app, result.lead_id or 0)["email"] == "somchai@siam-trading.example"


def test_unparsable_message_is_quarantined_and_replayable(app: App) -> None:
    intake = Intake(app)
    result = intake.process(raw(b"\x00\x01 this is not mail", source="junk.bin"))
    assert result.outcome is Outcome.QUARANTINED and result.quarantine_id
    again = intake.process(raw(b"\x00\x01 this is not mail", source="junk.bin"))
    assert again.quarantine_id == result.quarantine_id
    with app.db.transaction(write=False) as s:
        entry = s.get(QuarantineEntry, result.quarantine_id)
        assert entry is not None and entry.attempts == 2
        assert app.blobs.get(entry.raw_sha256) == b"\x00\x01 this is not mail"
    replayed = intake.replay(result.quarantine_id or 0)
    assert replayed.outcome is Outcome.QUARANTINED


def test_oversize_message_is_quarantined_not_dropped(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.conftest import settings_for
    from worker.store import schema

    small = App.from_settings(settings_for(db_url, tmp_path, max_message_bytes=2048))
    schema.upgrade(small.db.engine)
    try:
        result = Intake(small).process(raw(make_mail(body="x" * 5000)))
        assert result.outcome is Outcome.QUARANTINED
        assert "max_message_bytes" in result.reasons[0]
    finally:
        small.close()


def test_attachments_are_stored_by_hash_with_safe_names(app: App) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "x@client.example"
    msg["To"] = "sales@northwind.example"
    msg["Subject"] = "RFQ"
    msg["Message-ID"] = "<att@client.example>"
    msg.set_content("see attached")
    msg.add_attachment(
        b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="../../etc/rfq.pdf"
    )
    result = Intake(app).process(raw(msg.as_bytes()))
    with app.db.transaction(write=False) as s:
        att = s.scalars(select(Attachment)).one()
        assert att.filename == "rfq.pdf"
        assert app.blobs.get(att.sha256) == b"%PDF-1.4 fake"
    assert result.outcome is Outcome.CREATED


def test_dry_run_stores_nothing(app: App) -> None:
    result = Intake(app, dry_run=True).process(raw(make_mail()))
    assert result.outcome is Outcome.CREATED
    assert count(app, Lead) == 0 and count(app, Message) == 0


def test_relay_without_a_real_sender_is_ignored_not_a_lead(app: App) -> None:
    data = make_mail(
        sender="Notifier <no-reply@saas.example>",
        subject="Your weekly report",
        message_id="<n1@saas.example>",
        body="Nothing to see.\n",
    )
    result = Intake(app).process(raw(data))
    assert result.outcome is Outcome.IGNORED and result.kind == "human"
    assert "no-reply" in result.reasons[-1]
    assert count(app, Lead) == 0


def test_form_on_our_own_site_is_a_lead_not_our_own_mail(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.conftest import settings_for
    from worker.store import schema

    ours = App.from_settings(settings_for(db_url, tmp_path, own_domains=["northwind.example"]))
    schema.upgrade(ours.db.engine)
    try:
        data = make_mail(
            sender="Website <no-reply@northwind.example>",
            subject="Contact form",
            message_id="<form-1@northwind.example>",
            headers={"Reply-To": "Ana <ana@client-co.example>"},
        )
        result = Intake(ours).process(raw(data))
        assert result.outcome is Outcome.CREATED and result.kind == "human"
        assert "relay for an outside sender" in result.reasons
        own = make_mail(sender="Bob <bob@northwind.example>", message_id="<o2@northwind.example>")
        assert Intake(ours).process(raw(own)).kind == "own"
    finally:
        ours.close()


class _FailingAssigner:
    """An assigner that breaks inside the transaction, as a bug or a lost database would."""

    def decide_new(self, conn: object, msg: object, lead: object, facts: object = None) -> None:
        raise RuntimeError("routing exploded\nsecond line of detail")

    def record_new(self, conn: object, lead_id: int, pending: object) -> None:
        raise AssertionError("not reached")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("debug", [False, True], ids=["default", "debug"])
def test_a_failing_message_is_quarantined_with_one_line_naming_the_reason(
    app: App, caplog: pytest.LogCaptureFixture, debug: bool
) -> None:
    caplog.set_level(logging.DEBUG if debug else logging.WARNING)
    intake = Intake(app, assigner=_FailingAssigner())
    result = intake.process(raw(make_mail(), source="x.eml"))
    assert result.outcome is Outcome.QUARANTINED
    assert result.reasons[0].endswith("RuntimeError: routing exploded")
    [record] = _warnings(caplog)
    assert record.getMessage() == "quarantined x.eml: RuntimeError: routing exploded"
    # The traceback only when debugging.
    assert bool(record.exc_info) is debug
    assert count(app, Lead) == 0


@pytest.mark.parametrize("debug", [False, True], ids=["default", "debug"])
def test_a_parser_failure_is_one_line_too(
    app: App, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    def broken(data: bytes) -> object:
        raise ValueError("parser bug")

    monkeypatch.setattr(preparation, "parse", broken)
    caplog.set_level(logging.DEBUG if debug else logging.WARNING)
    result = Intake(app).process(raw(make_mail(), source="y.eml"))
    assert result.outcome is Outcome.QUARANTINED
    assert "parser failed: ValueError: parser bug" in result.reasons[0]
    [record] = _warnings(caplog)
    assert record.getMessage() == "quarantined y.eml: parser failed: ValueError: parser bug"
    assert not record.exc_info
    # The parser's traceback only when debugging, on a DEBUG line of its own.
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert [r.levelno for r in tracebacks] == ([logging.DEBUG] if debug else [])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"x" * 5000, "exceeds max_message_bytes (4096)"),
        (b"\x00\x01 not mail at all", "no header"),
    ],
    ids=["too-large", "not-mail"],
)
def test_every_quarantine_is_one_warning_line(
    app: App, caplog: pytest.LogCaptureFixture, data: bytes, reason: str
) -> None:
    caplog.set_level(logging.WARNING)
    result = Intake(app, max_bytes=4096).process(raw(data, source="z.eml"))
    assert result.outcome is Outcome.QUARANTINED
    [record] = _warnings(caplog)
    assert record.getMessage().startswith("quarantined z.eml: ")
    assert reason in record.getMessage(), record.getMessage()
    assert not record.exc_info


NUL_LADEN = (
    b'From: "Ja\x00ne" <jane@acme-industrial.example>\n'
    b'To: sales@northwind.example, "B\x00ob" <bob@northwind.example>\n'
    b"Subject: Quote\x00 for chairs \xed\xa0\x80\n"
    b"Date: Mon, 02 Nov 2026 09:30:00 +0000\n"
    b"Message-ID: <nul\x00id@acme-industrial.example>\n"
    b"References: <a\x00b@acme-industrial.example>\n"
    b"X-Note: \x00\x00\x00\n"
    b'Content-Type: multipart/mixed; boundary="b"\n'
    b"\n--b\nContent-Type: text/plain; charset=utf-8\n\nHello\x00, a quote please?\n"
    b"--b\nContent-Type: text/html; charset=utf-8\n\n<p>Hi\x00</p>\n"
    b"--b\nContent-Type: application/octet-stream\n"
    b'Content-Disposition: attachment; filename="a\x00b.bin"\n\n\x00\x01\x02\n--b--\n'
)


def test_nul_bytes_give_the_same_outcome_on_both_backends(app: App) -> None:
    # PostgreSQL refuses U+0000 in text and psycopg cannot encode lone surrogates: parse cleans
    # both, so this message is a lead on PostgreSQL exactly as on SQLite, not quarantined.
    result = Intake(app).process(raw(NUL_LADEN))
    assert result.outcome is Outcome.CREATED, result.reasons
    with app.db.transaction(write=False) as s:
        lead = s.get(Lead, result.lead_id)
        assert lead is not None and lead.email == "jane@acme-industrial.example"
        stored = s.scalars(select(Message)).one()
        assert "\x00" not in stored.message_id and "\x00" not in (stored.subject or "")
        assert "\x00" not in (stored.body_text or "")
    assert count(app, QuarantineEntry) == 0
    # The same bytes again are recognised as a duplicate (the cleaned Message-ID is stable).
    assert Intake(app).process(raw(NUL_LADEN)).outcome is Outcome.DUPLICATE


def test_hostile_address_headers_still_make_a_lead_from_the_sane_from(app: App) -> None:
    # Deep comments and groups made the stdlib address parser hit the recursion limit, and the
    # message went to quarantine with a traceback.
    fields = (
        b"Cc: " + b"(" * 5000 + b")" * 5000 + b" <cc@example.org>\n"
        b"Reply-To: " + b"g:" * 5000 + b"reply@example.org" + b";" * 5000 + b"\n"
    )
    hostile = make_mail().replace(b"\nSubject: ", b"\n" + fields + b"Subject: ", 1)
    result = Intake(app).process(raw(hostile))
    assert result.outcome is Outcome.CREATED, result.reasons
    with app.db.transaction(write=False) as s:
        lead = s.get(Lead, result.lead_id)
        assert lead is not None and lead.email == "jane@acme-industrial.example"


def test_a_reason_quoting_nul_bytes_is_held_on_both_backends(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parse error that quotes the message (NUL, a broken surrogate) still quarantines it."""

    def refuses(data: bytes) -> object:
        raise ParseError("bad header: a\x00b \udcff", None)

    monkeypatch.setattr(preparation, "parse", refuses)
    result = Intake(app).process(raw(make_mail(), source="n\x00ul.eml"))
    assert result.outcome is Outcome.QUARANTINED
    with app.db.engine.connect() as conn:
        reason, source = conn.execute(text("SELECT reason, source FROM quarantine")).one()
    assert reason == "bad header: a\ufffdb \ufffd"
    assert source == "n\ufffdul.eml"


def test_a_bulk_intake_commits_without_waiting_for_the_wal_only_on_its_own_connection(
    app: App,
) -> None:
    """PostgreSQL: the intake's own connection runs with synchronous_commit off (SQLite's
    NORMAL); the connection goes back to the pool as it came, and ``sync()`` flushes."""
    postgres = app.db.engine.dialect.name == "postgresql"
    seen: list[str] = []

    def inside(conn, _raw: RawMessage) -> None:  # type: ignore[no-untyped-def]
        if postgres:
            seen.append(conn.exec_driver_sql("SHOW synchronous_commit").scalar_one())

    mails = [
        raw(make_mail(sender=f"buyer{n}@firm{n}.example", message_id=f"<m{n}@firm.example>"))
        for n in range(3)
    ]
    results = list(Intake(app).process_many(mails, workers=0, in_transaction=inside))
    assert [r.outcome.value for r in results] == ["created"] * 3
    assert seen == (["off"] * 3 if postgres else [])
    if postgres:
        for _ in range(3):  # every pooled connection is back to the server's default
            with app.db.engine.connect() as conn:
                assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "on"
    app.db.sync()
    assert count(app, Lead) == 3
