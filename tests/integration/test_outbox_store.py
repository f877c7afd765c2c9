"""store/outbox.py on each backend: claims are atomic, re-claim stuck rows, states move once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from worker.services.context import App
from worker.store import outbox
from worker.store.models import Lead

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _lead(app: App) -> int:
    with app.db.transaction() as session:
        lead = Lead(email="jane@acme.example", email_key="jane@acme.example", status="Lead")
        session.add(lead)
        session.flush()
        return lead.id


def _queue(app: App, lead_id: int, n: int, due_at: datetime = T0) -> list[int]:
    with app.db.transaction() as session:
        return [
            outbox.insert(
                session,
                lead_id=lead_id,
                message_id=f"L{lead_id}-x.{i}.{due_at.timestamp()}@northwind.example",
                envelope_from="sales@northwind.example",
                recipients=["jane@acme.example"],
                subject=f"Quote {i}",
                raw_sha256="0" * 64,
                due_at=due_at + timedelta(seconds=i),
            )
            for i in range(n)
        ]


def test_claim_takes_due_rows_once_then_reclaims_stuck_ones(app: App) -> None:
    lead = _lead(app)
    ids = _queue(app, lead, 3)
    later = _queue(app, lead, 1, due_at=T0 + timedelta(hours=1))
    now = T0 + timedelta(minutes=1)
    assert outbox.claim_due(app.db.engine, now, 600, 2) == ids[:2]
    assert outbox.claim_due(app.db.engine, now, 600, 10) == ids[2:]
    assert outbox.claim_due(app.db.engine, now, 600, 10) == []
    with app.db.transaction() as session:
        row = outbox.get(session, ids[0])
        assert row is not None
        assert (row["status"], row["claimed_at"]) == ("claimed", now.isoformat())
        assert outbox.get(session, later[0])["status"] == "pending"  # type: ignore[index]
    # A worker took one and died; nobody finished the others. After stuck_seconds all return.
    with app.db.transaction() as session:
        assert outbox.take(session, ids[0], now) is not None
    stuck = now + timedelta(seconds=601)
    assert outbox.claim_due(app.db.engine, stuck, 600, 10) == ids
    assert outbox.claim_due(app.db.engine, stuck + timedelta(hours=1), 7200, 10) == later


def test_take_gives_a_row_to_one_worker_only(app: App) -> None:
    lead = _lead(app)
    (row_id,) = _queue(app, lead, 1)
    assert outbox.claim_due(app.db.engine, T0, 600, 10) == [row_id]
    with app.db.transaction() as session:
        taken = outbox.take(session, row_id, T0)
    assert taken is not None and taken["status"] == "sending"
    with app.db.transaction() as session:
        assert outbox.take(session, row_id, T0) is None
        # Too late to cancel: the server may have it already.
        assert not outbox.cancel(session, row_id, T0)


def test_two_dispatchers_never_claim_the_same_row(app: App) -> None:
    lead = _lead(app)
    ids = _queue(app, lead, 200)
    got: list[list[int]] = [[], [], [], []]

    def dispatch(slot: int) -> None:
        while batch := outbox.claim_due(app.db.engine, T0 + timedelta(hours=1), 600, 7):
            got[slot].extend(batch)

    threads = [threading.Thread(target=dispatch, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [i for batch in got for i in batch]
    assert sorted(claimed) == ids


def test_results_log_and_state_moves(app: App) -> None:
    lead = _lead(app)
    a, b, c = _queue(app, lead, 3)
    outbox.claim_due(app.db.engine, T0 + timedelta(minutes=1), 600, 10)
    later = T0 + timedelta(minutes=5)
    accepted = {"jane@acme.example": {"state": "accepted", "code": 250, "reply": "OK"}}
    with app.db.transaction() as session:
        assert outbox.take(session, a, T0) is not None
        assert outbox.mark_retry(
            session, a, later, "451 try later", {}, {"code": 451, "reply": "try later"}
        )
        assert outbox.mark_sent(session, b, accepted, {"code": 250, "reply": "OK"}, later)
        assert outbox.mark_failed(session, c, "550 no such user", {}, {"code": 550})
        # Already finished: a second report changes nothing.
        assert not outbox.mark_failed(session, b, "late", {}, {})
    with app.db.transaction() as session:
        ra, rb, rc = (outbox.get(session, i) for i in (a, b, c))
        assert ra and rb and rc
        assert (ra["status"], ra["attempts"], ra["due_at"]) == ("pending", 1, later.isoformat())
        assert ra["last_error"] == "451 try later" and ra["claimed_at"] is None
        assert ra["log"][0]["attempt"] == 1 and ra["log"][0]["code"] == 451
        assert (rb["status"], rb["results"], rb["last_error"]) == ("sent", accepted, None)
        assert (rc["status"], rc["last_error"]) == ("failed", "550 no such user")
        assert not outbox.requeue(session, b, later)
        assert outbox.requeue(session, c, later)
        assert outbox.cancel(session, c, later)
        assert not outbox.cancel(session, c, later)
        assert outbox.mark_bounced(session, rb["message_id"], "5.1.1", later)["status"] == (  # type: ignore[index]
            "bounced"
        )
        assert outbox.mark_bounced(session, "nobody@example", "x", later) is None
    with app.db.transaction() as session:
        statuses = {r["id"]: r["status"] for r in outbox.rows(session, lead_id=lead)}
        assert statuses == {a: "pending", b: "bounced", c: "cancelled"}
        assert [r["id"] for r in outbox.rows(session, status="pending")] == [a]


def test_migration_0008_downgrade_drops_only_the_outbox(app: App) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from worker.store import schema

    _queue(app, _lead(app), 1)
    cfg = schema._alembic_config()
    with app.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
    with app.db.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert "outbox" not in tables and {"leads", "messages"} <= tables
    assert schema.upgrade(app.db.engine) == ("0007", schema.HEAD)
