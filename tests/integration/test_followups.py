"""The follow-up rules on each backend, with a clock the test controls.

Leads come through intake and our mail through ``queue_mail``; then the test sets the rows'
times to the instants it wants (intake stamps the real clock) and runs the tick at chosen
``now``s. Working hours: mon-fri 09:00-18:00 Europe/Berlin.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from tests.integration.helpers import make_mail
from worker.config import load_settings
from worker.jobs.actors import JobKind
from worker.jobs.dispatcher import Dispatcher
from worker.mail.message import RawMessage
from worker.services import followups
from worker.services.context import App
from worker.services.intake import Intake
from worker.services.outbound import SendRequest, queue_mail
from worker.store import inbound, schema
from worker.store import reminders as reminder_store
from worker.store.models import Lead, Message, Reminder, table_of

BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)
M = timedelta(minutes=1)
RULES = """
executives:
  - {id: anna, name: Anna Berg, email: anna@northwind.example}
  - {id: boss, name: Sales Manager, email: boss@northwind.example}
rules:
  - name: everyone
    assign: {strategy: round_robin, to: [anna]}
"""
_leads, _messages, _reminders = table_of(Lead), table_of(Message), table_of(Reminder)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def make_app(db_url: str, tmp_path: Path, **extra: str) -> App:
    (tmp_path / "rules.yaml").write_text(RULES)
    env = {
        "LEADMAIL_DATABASE__URL": db_url,
        "LEADMAIL_STORAGE__PATH": str(tmp_path / "data"),
        "LEADMAIL_RULES__PATH": str(tmp_path / "rules.yaml"),
        "LEADMAIL_LEADS__OWN_ADDRESSES": '["sales@northwind.example"]',
        "LEADMAIL_SMTP__FROM_ADDRESS": '"sales@northwind.example"',
        "LEADMAIL_FOLLOWUPS__FIRST_RESPONSE_HOURS": "1",
        "LEADMAIL_FOLLOWUPS__ESCALATE_AFTER_HOURS": "2",
        "LEADMAIL_FOLLOWUPS__ESCALATE_TO": '"boss"',
        "LEADMAIL_FOLLOWUPS__NO_REPLY_DAYS": "3",
        "LEADMAIL_FOLLOWUPS__WORKING_TIMEZONE": '"Europe/Berlin"',
        **extra,
    }
    application = App.from_settings(load_settings(environ=env))
    schema.upgrade(application.db.engine)
    return application


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    application = make_app(db_url, tmp_path)
    yield application
    application.close()


# -- a world the test controls ----------------------------------------------------------------


def arrive(app: App, n: int, at: datetime) -> int:
    """Lead ``n`` writes to us for the first time and reaches us at ``at``."""
    data = make_mail(
        sender=f"Buyer {n} <buyer{n}@firm{n}.example>",
        message_id=f"<enquiry-{n}@firm{n}.example>",
        subject=f"Quote request {n}",
    )
    result = Intake(app).process(RawMessage(data=data, source=f"{n}.eml", account="local"))
    assert result.lead_id is not None
    with app.db.begin() as conn:
        conn.execute(update(_leads).where(_leads.c.id == result.lead_id).values(created_at=at))
        conn.execute(
            update(_messages)
            .where(_messages.c.lead_id == result.lead_id)
            .values(created_at=at, sent_at=at)
        )
    return result.lead_id


def we_write(app: App, lead_id: int, at: datetime, actor: str = "anna") -> str:
    queued = queue_mail(
        app, SendRequest(subject="Your quote", body="Here it is.", lead_id=lead_id, actor=actor), at
    )
    return queued.message_id


def lead_replies(app: App, lead_id: int, n: int, at: datetime, parent: str) -> None:
    data = make_mail(
        sender=f"Buyer {n} <buyer{n}@firm{n}.example>",
        message_id=f"<reply-{n}-{at.timestamp():.0f}@firm{n}.example>",
        subject=f"Re: Quote request {n}",
        in_reply_to=f"<{parent}>",
        references=f"<{parent}>",
    )
    result = Intake(app).process(RawMessage(data=data, source="r.eml", account="local"))
    assert result.lead_id == lead_id, result.reasons
    with app.db.begin() as conn:
        conn.execute(
            update(_messages)
            .where(_messages.c.message_id == f"reply-{n}-{at.timestamp():.0f}@firm{n}.example")
            .values(created_at=at, sent_at=at)
        )


def tick(app: App, now: datetime, **kwargs: Any) -> followups.TickResult:
    return followups.run_once(app, now.astimezone(BERLIN), **kwargs)


def reminders(app: App, lead_id: int | None = None) -> list[dict[str, Any]]:
    query = select(_reminders).order_by(_reminders.c.id)
    if lead_id is not None:
        query = query.where(_reminders.c.lead_id == lead_id)
    with app.db.begin() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def summary(app: App, lead_id: int) -> list[tuple[str, str, str | None, str | None, datetime]]:
    return [
        (r["kind"], r["status"], r["executive"], r["recipient"], r["due_at"].astimezone(BERLIN))
        for r in reminders(app, lead_id)
    ]


def deliver_due(app: App, now: datetime) -> list[int]:
    """What the dispatcher and a worker would do with the due reminders: mark them sent."""
    ids = reminder_store.claim_due(app.db.engine, now, 600, 100)
    for reminder_id in ids:
        with app.db.begin() as conn:
            row = reminder_store.take(conn, reminder_id, now, "<reminder-{id}-{sequence}@t>")
            assert row is not None
            assert reminder_store.mark_sent(
                conn, reminder_id, row["sequence"], row["method"], None, {"code": 250}, now
            )
    return ids


# -- first response and escalation ------------------------------------------------------------

WEDNESDAY = berlin(2026, 6, 10, 10)


def test_an_unanswered_lead_gets_exactly_one_reminder_and_one_escalation(app: App) -> None:
    lead = arrive(app, 1, WEDNESDAY)
    assert not tick(app, WEDNESDAY + 30 * M).scheduled  # not yet an hour
    assert [kind for _, kind, _ in tick(app, WEDNESDAY + H + M).scheduled] == ["first_response"]
    assert not tick(app, WEDNESDAY + H + 30 * M).scheduled
    assert [kind for _, kind, _ in tick(app, WEDNESDAY + 2 * H + M).scheduled] == ["escalation"]
    expected = [
        ("first_response", "pending", "anna", None, berlin(2026, 6, 10, 11)),
        ("escalation", "pending", "boss", None, berlin(2026, 6, 10, 12)),
    ]
    assert summary(app, lead) == expected
    # Tick after tick, delivered or not: never another one.
    now = WEDNESDAY + 2 * H + M
    for step in range(40):
        now += 7 * M if step < 20 else 5 * H
        if step == 10:
            assert len(deliver_due(app, now)) == 2
        result = tick(app, now)
        assert not result.scheduled and not result.cancelled, (step, result)
    assert [(k, s) for k, s, *_ in summary(app, lead)] == [
        ("first_response", "sent"),
        ("escalation", "sent"),
    ]
    first = reminders(app, lead)[0]
    assert first["cause"] == "no mail from us since the lead came"
    assert "Lead 1 came Wed 2026-06-10 10:00 Europe/Berlin" in first["note"]
    assert first["created_by"] == "followups"


def test_a_lead_that_got_our_reply_gets_none(app: App) -> None:
    lead = arrive(app, 1, WEDNESDAY)
    we_write(app, lead, WEDNESDAY + 20 * M)
    for hours in (1, 2, 3, 30):
        assert not tick(app, WEDNESDAY + hours * H + M).scheduled
    # Days later, only our unanswered mail has a reminder.
    assert [k for _, k, _ in tick(app, WEDNESDAY + 100 * H).scheduled] == ["no_reply"]
    # An answer that comes late, after the reminder was made but before it went out,
    # cancels it.
    late = arrive(app, 2, WEDNESDAY)
    assert len(tick(app, WEDNESDAY + 2 * H + M).scheduled) == 2
    we_write(app, late, WEDNESDAY + 2 * H + 2 * M)
    result = tick(app, WEDNESDAY + 2 * H + 3 * M)
    assert sorted(kind for _, kind, _ in result.cancelled) == ["escalation", "first_response"]
    assert {status for _, status, *_ in summary(app, late)} == {"cancelled"}, summary(app, late)
    assert not deliver_due(app, WEDNESDAY + 3 * H)


def test_an_acknowledgement_is_no_answer_and_old_leads_are_not_caught_up(app: App) -> None:
    acknowledged = arrive(app, 1, WEDNESDAY)
    we_write(app, acknowledged, WEDNESDAY + M, actor=inbound.AUTOREPLY_ACTOR)
    old = arrive(app, 2, WEDNESDAY - timedelta(days=30))  # an ingested backlog, say
    result = tick(app, WEDNESDAY + 2 * H + M)
    assert {lead for lead, _, _ in result.scheduled} == {acknowledged}
    assert len(result.scheduled) == 2
    assert reminders(app, old) == []


def test_friday_evening_lead_is_due_monday_and_a_weekend_answer_cancels_it(app: App) -> None:
    friday = berlin(2026, 6, 12, 17, 30)
    lead = arrive(app, 1, friday)
    tick(app, friday + 2 * H + M)
    assert summary(app, lead) == [
        ("first_response", "pending", "anna", None, berlin(2026, 6, 15, 9, 30)),
        ("escalation", "pending", "boss", None, berlin(2026, 6, 15, 10, 30)),
    ]
    assert not deliver_due(app, berlin(2026, 6, 14, 12))  # Sunday: nothing is due
    we_write(app, lead, berlin(2026, 6, 13, 11))  # Saturday
    result = tick(app, berlin(2026, 6, 14, 12))
    assert len(result.cancelled) == 2
    assert not deliver_due(app, berlin(2026, 6, 15, 12))


def test_a_new_executive_takes_the_pending_reminder(app: App) -> None:
    lead = arrive(app, 1, WEDNESDAY)
    tick(app, WEDNESDAY + H + M)
    with app.db.begin() as conn:
        conn.execute(update(_leads).where(_leads.c.id == lead).values(assigned_to="boss"))
    (moved,) = tick(app, WEDNESDAY + H + 2 * M).scheduled
    assert moved[1] == "first_response"
    assert summary(app, lead)[0][:3] == ("first_response", "pending", "boss")


def test_do_not_contact_and_converted_leads_get_none(app: App) -> None:
    quiet = arrive(app, 1, WEDNESDAY)
    pending = arrive(app, 2, WEDNESDAY)
    tick(app, WEDNESDAY + 2 * H + M)
    with app.db.begin() as conn:
        conn.execute(update(_leads).where(_leads.c.id == pending).values(status="Converted"))
        conn.execute(update(_leads).where(_leads.c.id == quiet).values(status="Do Not Contact"))
    result = tick(app, WEDNESDAY + 2 * H + 2 * M)
    assert {(lead, kind) for lead, kind, _ in result.cancelled} == {
        (lead, kind) for lead in (quiet, pending) for kind in ("first_response", "escalation")
    }
    late = arrive(app, 3, WEDNESDAY)
    with app.db.begin() as conn:
        conn.execute(update(_leads).where(_leads.c.id == late).values(status="Do Not Contact"))
    assert not tick(app, WEDNESDAY + 3 * H).scheduled
    assert reminders(app, late) == []


def test_each_tick_does_bounded_work_and_the_cursor_gets_to_every_lead(app: App) -> None:
    leads = [arrive(app, n, WEDNESDAY) for n in range(1, 8)]
    now = WEDNESDAY + H + M
    cursor = followups.Cursor()
    seen: list[int] = []
    for _ in range(3):
        result = tick(app, now, cursor=cursor, limit=3)
        assert result.examined <= 3 * 4  # four scans of at most three leads
        seen += [lead for lead, kind, _ in result.scheduled]
        now += M
    assert sorted(seen) == leads
    assert not tick(app, now).scheduled
    # A complete run (dispatch --once) goes through in one call.
    more = [arrive(app, n, WEDNESDAY) for n in range(8, 15)]
    result = tick(app, now, cursor=followups.Cursor(), limit=3, complete=True)
    assert sorted(lead for lead, _, _ in result.scheduled) == more


def test_escalation_to_an_address(db_url: str, tmp_path: Path) -> None:
    director = '"director@northwind.example"'
    app = make_app(db_url, tmp_path, LEADMAIL_FOLLOWUPS__ESCALATE_TO=director)
    try:
        lead = arrive(app, 1, WEDNESDAY)
        tick(app, WEDNESDAY + 2 * H + M)
        assert summary(app, lead)[1][:4] == (
            "escalation",
            "pending",
            None,
            "director@northwind.example",
        )
    finally:
        app.close()


# -- no reply ---------------------------------------------------------------------------------

MONDAY = berlin(2026, 6, 8, 11)


def test_our_unanswered_mail_makes_one_no_reply_reminder(app: App) -> None:
    lead = arrive(app, 1, MONDAY - H)
    mail = we_write(app, lead, MONDAY)
    assert not tick(app, MONDAY + timedelta(days=2)).scheduled
    (made,) = tick(app, MONDAY + timedelta(days=3) + M).scheduled
    assert made[1] == "no_reply"
    (row,) = reminders(app, lead)
    assert (row["executive"], row["cause"]) == ("anna", f"no reply to <{mail}>")
    assert row["due_at"] == berlin(2026, 6, 11, 11)
    for step in range(1, 30):
        assert not tick(app, MONDAY + timedelta(days=3, hours=step)).scheduled


def test_the_lead_replying_cancels_a_no_reply_reminder(app: App) -> None:
    thursday = berlin(2026, 6, 11, 15)
    lead = arrive(app, 1, thursday - H)
    mail = we_write(app, lead, thursday)
    # Three days on is Sunday: the reminder waits for Monday 09:00.
    tick(app, thursday + timedelta(days=3) + M)
    assert summary(app, lead) == [("no_reply", "pending", "anna", None, berlin(2026, 6, 15, 9))]
    lead_replies(app, lead, 1, berlin(2026, 6, 14, 20), mail)
    (cancelled,) = tick(app, berlin(2026, 6, 14, 21)).cancelled
    assert cancelled[1] == "no_reply"
    assert not deliver_due(app, berlin(2026, 6, 15, 10))
    # Our next mail, unanswered, is a new cause: the same row is made due again.
    second = we_write(app, lead, berlin(2026, 6, 15, 10))
    (made,) = tick(app, berlin(2026, 6, 18, 10, 1)).scheduled
    assert made[1] == "no_reply"
    (row,) = reminders(app, lead)
    assert (row["status"], row["cause"]) == ("pending", f"no reply to <{second}>")


def test_a_reply_already_there_means_no_no_reply(app: App) -> None:
    lead = arrive(app, 1, MONDAY - H)
    mail = we_write(app, lead, MONDAY)
    lead_replies(app, lead, 1, MONDAY + H, mail)
    assert not tick(app, MONDAY + timedelta(days=4)).scheduled


# -- the dispatcher ---------------------------------------------------------------------------


def test_the_dispatcher_applies_the_rules_before_each_claim(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [WEDNESDAY + 30 * M]
    seen: list[int] = []

    def claim(app_: App, at: datetime) -> list[int]:
        """A job kind that only records how many reminders existed when it claimed."""
        seen.append(len(reminders(app_)))
        return []

    probe = JobKind("probe", "probe_actor", "probe", claim, lambda *a: None, lambda *a: 0)
    dispatcher = Dispatcher(app, [probe], {"probe": None}, clock=lambda: now[0])  # type: ignore[dict-item]
    lead = arrive(app, 1, WEDNESDAY)
    report = dispatcher.run_once()
    assert report.followups is not None and not report.followups.scheduled and seen == [0]
    now[0] = WEDNESDAY + H + M
    report = dispatcher.run_once()
    assert report.followups is not None and len(report.followups.scheduled) == 1
    assert seen == [0, 1]  # made before the claim of the same round
    for _ in range(30):
        now[0] += 10 * M
        dispatcher.run_once()
    assert [kind for kind, *_ in summary(app, lead)] == ["first_response", "escalation"]

    # A failing check is reported and the claims still run.
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away\nmore")

    monkeypatch.setattr("worker.services.followups.run_once", broken)
    report = dispatcher.run_once()
    assert report.failed == {"followups": "RuntimeError: database went away"}
    assert len(seen) == 33
