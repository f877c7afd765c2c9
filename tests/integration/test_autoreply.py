"""[autoreply]: a new lead from a person gets one acknowledgement through the outbox, in the
transaction that makes the lead; machines, lists and repeat senders get none (RFC 3834)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.integration.helpers import make_mail
from worker.config import load_settings
from worker.mail.message import RawMessage
from worker.services import outbound
from worker.services.context import App
from worker.services.intake import Intake
from worker.services.leads import lead_detail
from worker.services.lifecycle import erase_lead
from worker.store import inbound, schema
from worker.store import outbox as outbox_store
from worker.store.models import Autoreply, Lead, Outcome, utcnow

TEMPLATE = "Dear {{ name }},\n\nthank you for your message; we answer within a working day.\n"


def _app(db_url: str, tmp_path: Path, **extra: str) -> App:
    templates = tmp_path / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "autoreply.txt").write_text(TEMPLATE)
    env = {
        "LEADMAIL_DATABASE__URL": db_url,
        "LEADMAIL_STORAGE__PATH": str(tmp_path / "data"),
        "LEADMAIL_RULES__PATH": str(tmp_path / "rules.yaml"),
        "LEADMAIL_LEADS__OWN_ADDRESSES": '["sales@northwind.example"]',
        "LEADMAIL_LEADS__OWN_DOMAINS": '["mail.northwind.example"]',
        "LEADMAIL_SMTP__FROM_ADDRESS": '"sales@northwind.example"',
        "LEADMAIL_SMTP__FROM_NAME": '"Northwind Sales"',
        "LEADMAIL_SMTP__TEMPLATES_PATH": str(templates),
        "LEADMAIL_AUTOREPLY__ENABLED": "true",
        "LEADMAIL_AUTOREPLY__MIN_INTERVAL_HOURS": "24",
        **extra,
    }
    application = App.from_settings(load_settings(environ=env))
    schema.upgrade(application.db.engine)
    return application


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    application = _app(db_url, tmp_path)
    yield application
    application.close()


def raw(data: bytes, source: str = "test.eml") -> RawMessage:
    return RawMessage(data=data, source=source, account="local")


def queued(app: App) -> list[dict[str, object]]:
    with app.db.transaction(write=False) as session:
        return outbox_store.rows(session)


def sent_bytes(app: App, row: dict[str, object]) -> EmailMessage:
    data = app.blobs.get(str(row["raw_sha256"]))
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_a_new_lead_from_a_person_gets_one_acknowledgement(app: App) -> None:
    result = Intake(app).process(raw(make_mail()))
    assert result.outcome is Outcome.CREATED and result.lead_id is not None
    [row] = queued(app)
    assert (row["lead_id"], row["status"], row["created_by"]) == (
        result.lead_id,
        "pending",
        "autoreply",
    )
    assert row["recipients"] == ["jane@acme-industrial.example"]
    assert f"acknowledgement queued: outbox #{row['id']} <{row['message_id']}>" in (result.reasons)
    msg = sent_bytes(app, row)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["In-Reply-To"] == "<enquiry-1@acme-industrial.example>"
    # RFC 3834's "Auto:" prefix; the lead's tag follows when [smtp] subject_tag is on.
    assert msg["Subject"].startswith("Auto: Quote for 200 office chairs")
    assert str(msg["To"]) == "Jane Buyer <jane@acme-industrial.example>"
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().startswith("Dear Jane Buyer,")
    # The stored reasons say so too, and the lead's timeline shows the queued mail.
    detail = lead_detail(app, result.lead_id)
    [first] = [e for e in detail["timeline"] if e["type"] == "message" and e["direction"] == "in"]
    assert any(r.startswith("acknowledgement queued") for r in first["reasons"])
    assert [e["direction"] for e in detail["timeline"] if e["type"] == "message"] == ["in", "out"]


def test_delivering_the_acknowledgement_leaves_the_lead_waiting_for_a_person(app: App) -> None:
    result = Intake(app).process(raw(make_mail()))
    [row] = queued(app)
    assert outbox_store.claim_due(app.db.engine, utcnow(), 300, 10) == [row["id"]]
    with app.db.begin() as conn:
        assert outbox_store.take(conn, int(str(row["id"])), utcnow()) is not None
    assert outbound.delivered(app, int(str(row["id"])), {}, {"code": 250, "reply": "ok"})
    assert lead_detail(app, result.lead_id or 0)["status"] == "Lead"


def test_the_leads_next_messages_get_no_second_acknowledgement(app: App) -> None:
    intake = Intake(app)
    intake.process(raw(make_mail()))
    again = intake.process(
        raw(make_mail(subject="Also desks?", message_id="<enquiry-2@acme-industrial.example>"))
    )
    assert again.outcome is Outcome.THREADED
    assert len(queued(app)) == 1


@pytest.mark.parametrize(
    ("headers", "outcome"),
    [
        ({"Auto-Submitted": "auto-replied"}, Outcome.IGNORED),
        ({"Precedence": "bulk"}, Outcome.IGNORED),
        ({"List-Id": "<offers.acme-industrial.example>"}, Outcome.IGNORED),
        ({"X-Auto-Response-Suppress": "OOF, AutoReply"}, Outcome.CREATED),
        ({"Return-Path": "<>"}, Outcome.CREATED),
    ],
)
def test_machines_lists_and_suppressing_senders_get_none(
    app: App, headers: dict[str, str], outcome: Outcome
) -> None:
    result = Intake(app).process(raw(make_mail(headers=headers)))
    assert result.outcome is outcome
    assert queued(app) == []
    if outcome is Outcome.CREATED:
        assert any(r.startswith("no acknowledgement: ") for r in result.reasons)


def test_bounce_and_no_reply_senders_get_none(app: App) -> None:
    intake = Intake(app)
    intake.process(
        raw(
            make_mail(
                sender="MAILER-DAEMON@mx.example",
                subject="Undelivered Mail Returned to Sender",
                message_id="<b1@mx.example>",
                body="This is the mail system at host mx.example.\n",
            )
        )
    )
    intake.process(
        raw(make_mail(sender="Shop <no-reply@shop.example>", message_id="<n1@shop.example>"))
    )
    assert queued(app) == []


def test_at_most_one_per_address_per_interval(app: App) -> None:
    intake = Intake(app)
    first = intake.process(raw(make_mail()))
    # The lead's address is edited; the old address writes again and makes a new lead.
    with app.db.transaction() as session:
        lead = session.get(Lead, first.lead_id)
        assert lead is not None
        lead.email = lead.email_key = "j.buyer@acme-industrial.example"
    second = intake.process(
        raw(make_mail(subject="New enquiry", message_id="<enquiry-3@acme-industrial.example>"))
    )
    assert second.outcome is Outcome.CREATED and second.lead_id != first.lead_id
    assert len(queued(app)) == 1
    [why] = [r for r in second.reasons if "acknowledg" in r]
    assert "jane@acme-industrial.example was acknowledged at" in why
    assert "less than 24 h ago" in why
    # Once the interval has passed, the address may be acknowledged again.
    with app.db.transaction() as session:
        for row in session.scalars(select(Autoreply)):
            row.at = utcnow() - timedelta(hours=25)
        lead = session.get(Lead, second.lead_id)
        assert lead is not None
        lead.email = lead.email_key = "j.b2@acme-industrial.example"
    third = intake.process(
        raw(make_mail(subject="Third", message_id="<enquiry-4@acme-industrial.example>"))
    )
    assert third.outcome is Outcome.CREATED
    assert len(queued(app)) == 2


def test_a_refused_acknowledgement_costs_the_acknowledgement_not_the_lead(
    db_url: str, tmp_path: Path
) -> None:
    broken = _app(db_url, tmp_path, LEADMAIL_AUTOREPLY__TEMPLATE='"missing.txt"')
    try:
        result = Intake(broken).process(raw(make_mail()))
        assert result.outcome is Outcome.CREATED
        assert any("no acknowledgement: no template 'missing.txt'" in r for r in result.reasons)
        assert queued(broken) == []
        with broken.db.engine.connect() as conn:
            assert inbound.recent_autoreply(conn, "jane@acme-industrial.example", utcnow()) is None
        assert lead_detail(broken, result.lead_id or 0)["status"] == "Lead"
    finally:
        broken.close()


def test_off_by_default_and_nothing_in_a_dry_run(db_url: str, tmp_path: Path) -> None:
    off = _app(db_url, tmp_path, LEADMAIL_AUTOREPLY__ENABLED="false")
    try:
        result = Intake(off).process(raw(make_mail()))
        assert not any("acknowledg" in r for r in result.reasons)
        assert queued(off) == []
    finally:
        off.close()


def test_dry_run_says_it_would_acknowledge(app: App) -> None:
    result = Intake(app, dry_run=True).process(raw(make_mail()))
    assert "acknowledgement: one would be queued" in result.reasons
    assert queued(app) == []


def test_a_person_writing_to_us_with_auto_submitted_no_is_acknowledged(app: App) -> None:
    Intake(app).process(raw(make_mail(headers={"Auto-Submitted": "no"})))
    assert len(queued(app)) == 1


def test_erasing_the_lead_forgets_its_acknowledgement(app: App) -> None:
    result = Intake(app).process(raw(make_mail()))
    erase_lead(app, result.lead_id or 0)
    with app.db.transaction(write=False) as session:
        assert session.scalars(select(Autoreply)).all() == []
