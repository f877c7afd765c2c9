"""services/outbound.py on each backend: what delivery reports moves the row and the lead."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from worker.config import load_settings
from worker.services import outbound
from worker.services.context import App
from worker.services.lifecycle import erase_lead, merge_leads
from worker.services.outbound import SendRequest, queue_mail
from worker.store import outbox as store
from worker.store import schema
from worker.store.models import Lead, Message, StatusChange, table_of, utcnow

JANE = "jane@acme-industrial.example"


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    settings = load_settings(
        environ={
            "LEADMAIL_DATABASE__URL": db_url,
            "LEADMAIL_STORAGE__PATH": str(tmp_path / "data"),
            "LEADMAIL_RULES__PATH": str(tmp_path / "rules.yaml"),
            "LEADMAIL_SMTP__FROM_ADDRESS": '"sales@northwind.example"',
            "LEADMAIL_LEADS__OWN_DOMAINS": '["mail.northwind.example"]',
        }
    )
    application = App.from_settings(settings)
    schema.upgrade(application.db.engine)
    yield application
    application.close()


def queue(app: App, to: str = JANE, **fields: Any) -> outbound.QueuedMail:
    return queue_mail(app, SendRequest(subject="Quote", body="Hello", to=to, actor="t", **fields))


def in_flight(app: App, outbox_id: int) -> None:
    """What the dispatcher and a worker do before SMTP."""
    assert outbox_id in store.claim_due(app.db.engine, utcnow() + timedelta(seconds=1), 600, 100)
    with app.db.begin() as conn:
        assert store.take(conn, outbox_id, utcnow()) is not None


def lead_row(app: App, lead_id: int) -> Any:
    with app.db.begin() as conn:
        return conn.execute(select(table_of(Lead)).where(table_of(Lead).c.id == lead_id)).one()


def status_log(app: App, lead_id: int) -> list[tuple[str | None, str, str]]:
    changes = table_of(StatusChange)
    with app.db.begin() as conn:
        rows = conn.execute(
            select(changes.c.from_status, changes.c.to_status, changes.c.cause)
            .where(changes.c.lead_id == lead_id)
            .order_by(changes.c.id)
        )
        return [tuple(r) for r in rows]


def set_status(app: App, lead_id: int, status: str) -> None:
    with app.db.begin() as conn:
        conn.execute(
            update(table_of(Lead)).where(table_of(Lead).c.id == lead_id).values(status=status)
        )


def test_queue_records_the_message_row_and_our_id_domain(app: App) -> None:
    queued = queue(app)
    assert queued.lead_created and queued.status == "pending"
    assert queued.message_id.endswith("@mail.northwind.example")  # leads.own_domains first
    with app.db.begin() as conn:
        row = store.get(conn, queued.outbox_id)
        assert row is not None
        message = conn.execute(
            select(table_of(Message)).where(table_of(Message).c.id == row["message_row_id"])
        ).one()
    assert (message.direction, message.account, message.kind, message.outcome) == (
        "out",
        "outbox",
        "own",
        "outbound",
    )
    assert (message.message_id, message.lead_id) == (queued.message_id, queued.lead_id)
    assert message.raw_sha256 == row["raw_sha256"] and app.blobs.has(row["raw_sha256"])
    assert message.sender == "sales@northwind.example"
    assert message.recipients == {"to": [JANE], "cc": []}
    assert row["envelope_from"] == "sales@northwind.example" and row["executive"] is None
    assert status_log(app, queued.lead_id) == [(None, "Lead", "created by outbound mail from t")]


def test_delivered_moves_lead_and_open_to_replied_once(app: App) -> None:
    first = queue(app)
    in_flight(app, first.outbox_id)
    ok = {JANE: {"state": "accepted", "code": 250, "reply": "2.0.0 OK"}}
    assert outbound.delivered(app, first.outbox_id, ok, {"code": 250, "outcome": "sent"})
    assert not outbound.delivered(app, first.outbox_id, ok, {"code": 250, "outcome": "sent"})
    assert lead_row(app, first.lead_id).status == "Replied"
    cause = f"outbound mail {first.message_id} sent"
    assert status_log(app, first.lead_id)[-1] == ("Lead", "Replied", cause)
    with app.db.begin() as conn:
        row = store.get(conn, first.outbox_id)
    assert row is not None and (row["status"], row["attempts"], row["results"]) == ("sent", 1, ok)

    # Open (the lead wrote back) → Replied again; Interested is a person's call: kept.
    for before, after in (("Open", "Replied"), ("Interested", "Interested")):
        set_status(app, first.lead_id, before)
        again = queue_mail(
            app, SendRequest(subject="s", body="b", lead_id=first.lead_id, actor="t")
        )
        in_flight(app, again.outbox_id)
        assert outbound.delivered(app, again.outbox_id, ok, {"code": 250})
        assert lead_row(app, first.lead_id).status == after


def test_retry_later_then_failed(app: App) -> None:
    queued = queue(app)
    in_flight(app, queued.outbox_id)
    later = utcnow() + timedelta(minutes=5)
    assert outbound.retry_later(app, queued.outbox_id, later, "451 4.7.1\nTry later", {}, {})
    assert store.claim_due(app.db.engine, utcnow() + timedelta(minutes=1), 600, 10) == []
    assert store.claim_due(app.db.engine, later, 600, 10) == [queued.outbox_id]
    with app.db.begin() as conn:
        assert store.take(conn, queued.outbox_id, later) is not None
    assert outbound.failed(app, queued.outbox_id, "550 no\nsuch user", {}, {"code": 550})
    with app.db.begin() as conn:
        row = store.get(conn, queued.outbox_id)
    assert row is not None
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 2, "550 no such user")
    assert [(e["attempt"], e.get("code")) for e in row["log"]] == [(1, None), (2, 550)]
    assert lead_row(app, queued.lead_id).status == "Lead"  # nothing was sent


def test_two_sends_to_one_new_address_make_one_lead(app: App) -> None:
    results: list[outbound.QueuedMail] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            results.append(queue(app, to="new.buyer@globex.example"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r.lead_id for r in results}) == 1
    assert sum(r.lead_created for r in results) == 1
    assert len({r.message_id for r in results}) == 4


def test_merge_moves_and_erase_removes_queued_mail(app: App) -> None:
    keep = queue(app)
    other = queue(app, to="jane@home-mail.example")
    assert merge_leads(app, keep.lead_id, other.lead_id, "t")["moved"]["outbox"] == 1
    with app.db.begin() as conn:
        rows = store.rows(conn)
    assert {r["lead_id"] for r in rows} == {keep.lead_id}
    digests = {r["raw_sha256"] for r in rows}
    done = erase_lead(app, keep.lead_id)
    assert done["outbox"] == 2
    with app.db.begin() as conn:
        assert store.rows(conn) == []
    assert not any(app.blobs.has(d) for d in digests)  # the mail is gone with the lead
