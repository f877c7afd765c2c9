"""store/reminders.py and services/reminders.py on each backend: one reminder per lead and
kind, moves and cancels that follow what reached the calendar, claims taken once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from worker.services import reminders as service
from worker.services.context import App
from worker.store import reminders as store
from worker.store.models import Lead

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _lead(app: App, email: str = "jane@acme.example") -> int:
    with app.db.transaction() as session:
        lead = Lead(email=email, email_key=email, status="Lead")
        session.add(lead)
        session.flush()
        return lead.id


def _schedule(app: App, lead: int, due: datetime, kind: str = "manual", who: str = "anna") -> int:
    with app.db.begin() as conn:
        return service.schedule(conn, lead, kind, due, who, "test", "call her", created_by="bob")


def _row(app: App, reminder_id: int) -> dict[str, object]:
    with app.db.begin() as conn:
        row = store.get(conn, reminder_id)
    assert row is not None
    return row


def _send(app: App, reminder_id: int, now: datetime, ok: bool = True) -> dict[str, object]:
    """What a worker does: take, then record the outcome."""
    with app.db.begin() as conn:
        taken = store.take(conn, reminder_id, now, "northwind.example")
    assert taken is not None
    with app.db.begin() as conn:
        if ok:
            assert store.mark_sent(
                conn, reminder_id, taken["sequence"], taken["method"], "anna@x.example", {}, now
            )
        else:
            assert store.mark_failed(conn, reminder_id, taken["sequence"], "550 no", {})
    return taken


def test_one_reminder_per_lead_and_kind_moving_keeps_the_row(app: App) -> None:
    lead = _lead(app)
    first = _schedule(app, lead, T0)
    assert _schedule(app, lead, T0 + timedelta(hours=1)) == first
    other_kind = _schedule(app, lead, T0, kind="no_reply")
    assert other_kind != first
    row = _row(app, first)
    assert row["due_at"] == (T0 + timedelta(hours=1)).isoformat()
    assert (row["status"], row["sequence"], row["method"]) == ("pending", 0, "REQUEST")
    with app.db.transaction() as session:
        assert len(store.for_lead(session, lead)) == 2
        assert [r["id"] for r in service.pending_for_lead(session, lead)] == [other_kind, first]
    # Both changes are in the lead's timeline.
    with app.db.transaction() as session:
        from worker.store import leads

        kinds = [a["kind"] for a in leads.activities(session, lead)]
    assert kinds.count("reminder") == 3


def test_claim_take_sent_then_move_sends_an_update_with_the_same_uid(app: App) -> None:
    lead = _lead(app)
    rid = _schedule(app, lead, T0)
    assert store.claim_due(app.db.engine, T0 - timedelta(seconds=1), 600, 10) == []
    assert store.claim_due(app.db.engine, T0, 600, 10) == [rid]
    assert store.claim_due(app.db.engine, T0, 600, 10) == []
    taken = _send(app, rid, T0)
    assert taken["message_id"] == f"reminder-{rid}-0@northwind.example"
    sent = _row(app, rid)
    assert (sent["status"], sent["sequence_sent"], sent["method_sent"]) == ("sent", 0, "REQUEST")
    uid = sent["ical_uid"]
    # Moved after delivery: an update, SEQUENCE 1, same UID, due at the new time.
    _schedule(app, lead, T0 + timedelta(days=1))
    moved = _row(app, rid)
    assert (moved["status"], moved["sequence"], moved["ical_uid"]) == ("pending", 1, uid)
    # Moved again before the update went: still SEQUENCE 1 (nobody saw 1 yet).
    _schedule(app, lead, T0 + timedelta(days=2))
    assert _row(app, rid)["sequence"] == 1
    assert store.claim_due(app.db.engine, T0 + timedelta(days=2), 600, 10) == [rid]
    taken = _send(app, rid, T0 + timedelta(days=2))
    assert taken["message_id"] == f"reminder-{rid}-1@northwind.example"
    assert _row(app, rid)["status"] == "sent"


def test_cancel_before_delivery_stops_after_delivery_sends_cancel(app: App) -> None:
    lead = _lead(app)
    rid = _schedule(app, lead, T0)
    with app.db.begin() as conn:
        assert service.cancel_for(conn, lead, reason="no need") == [rid]
        assert service.cancel_for(conn, lead, reason="again") == []
    assert _row(app, rid)["status"] == "cancelled"
    assert store.claim_due(app.db.engine, T0 + timedelta(days=1), 600, 10) == []
    # Set again: the same row comes back (never delivered: same UID).
    uid = _row(app, rid)["ical_uid"]
    assert _schedule(app, lead, T0) == rid
    assert (_row(app, rid)["status"], _row(app, rid)["ical_uid"]) == ("pending", uid)
    store.claim_due(app.db.engine, T0, 600, 10)
    _send(app, rid, T0)
    with app.db.begin() as conn:
        assert service.cancel_for(conn, lead, "manual", reason="Do Not Contact") == [rid]
    row = _row(app, rid)
    assert (row["status"], row["method"], row["sequence"]) == ("pending", "CANCEL", 1)
    assert store.claim_due(app.db.engine, T0 + timedelta(seconds=1), 600, 10) == [rid]
    _send(app, rid, T0 + timedelta(seconds=1))
    row = _row(app, rid)
    assert (row["status"], row["method_sent"], row["sequence_sent"]) == ("cancelled", "CANCEL", 1)
    # A date set after a delivered CANCEL is a new calendar entry: a new UID.
    _schedule(app, lead, T0 + timedelta(days=3))
    row = _row(app, rid)
    assert row["ical_uid"] != uid and (row["status"], row["method"]) == ("pending", "REQUEST")


def test_a_change_while_sending_leaves_the_newer_version_due(app: App) -> None:
    lead = _lead(app)
    rid = _schedule(app, lead, T0)
    store.claim_due(app.db.engine, T0, 600, 10)
    with app.db.begin() as conn:
        taken = store.take(conn, rid, T0)
    assert taken is not None
    # A person moves it while the worker talks to the server.
    later = T0 + timedelta(hours=2)
    _schedule(app, lead, later)
    with app.db.begin() as conn:
        assert store.take(conn, rid, T0) is None
        assert store.mark_sent(conn, rid, 0, "REQUEST", "anna@x.example", {}, T0)
    row = _row(app, rid)
    assert (row["status"], row["sequence"], row["sequence_sent"]) == ("pending", 1, 0)
    assert row["due_at"] == later.isoformat()
    # Cancelled while sending its first version, which then failed for good: nothing to undo.
    lead2 = _lead(app, "joe@acme.example")
    rid2 = _schedule(app, lead2, T0)
    store.claim_due(app.db.engine, T0, 600, 10)
    with app.db.begin() as conn:
        taken = store.take(conn, rid2, T0)
        assert taken is not None
        assert service.cancel_for(conn, lead2, reason="x") == [rid2]
        assert store.mark_failed(conn, rid2, 0, "550 no", {})
    assert _row(app, rid2)["status"] == "cancelled"


def test_retry_and_stuck_rows_come_back(app: App) -> None:
    lead = _lead(app)
    rid = _schedule(app, lead, T0)
    store.claim_due(app.db.engine, T0, 600, 10)
    with app.db.begin() as conn:
        taken = store.take(conn, rid, T0)
        assert taken is not None
        assert store.mark_retry(conn, rid, 0, T0 + timedelta(minutes=5), "421 busy", {})
    row = _row(app, rid)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "421 busy")
    assert store.claim_due(app.db.engine, T0 + timedelta(minutes=4), 600, 10) == []
    assert store.claim_due(app.db.engine, T0 + timedelta(minutes=5), 600, 10) == [rid]
    with app.db.begin() as conn:
        assert store.take(conn, rid, T0 + timedelta(minutes=5)) is not None
    # The worker died: claimed again after stuck_seconds.
    assert store.claim_due(app.db.engine, T0 + timedelta(minutes=6), 600, 10) == []
    assert store.claim_due(app.db.engine, T0 + timedelta(minutes=16), 600, 10) == [rid]
    with app.db.begin() as conn:
        assert store.release(conn, [rid], T0) == 1
    assert _row(app, rid)["status"] == "pending"


def test_two_dispatchers_and_racing_schedules(app: App) -> None:
    leads = [_lead(app, f"p{i}@acme.example") for i in range(60)]
    ids = [_schedule(app, lead, T0) for lead in leads]
    got: list[list[int]] = [[], [], []]

    def dispatch(slot: int) -> None:
        while batch := store.claim_due(app.db.engine, T0, 600, 7):
            got[slot] += batch

    threads = [threading.Thread(target=dispatch, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [i for batch in got for i in batch]
    assert sorted(claimed) == sorted(ids)
    # Four people set the same new lead's date at once: one row.
    lead = _lead(app, "race@acme.example")
    made: list[int] = []
    errors: list[BaseException] = []

    def set_date(n: int) -> None:
        try:
            made.append(_schedule(app, lead, T0 + timedelta(minutes=n)))
        except BaseException as exc:  # pragma: no cover (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=set_date, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(made)) == 1
    with app.db.transaction() as session:
        assert len(store.for_lead(session, lead)) == 1


def test_status_and_reply_cancellations(app: App) -> None:
    lead = _lead(app)
    manual = _schedule(app, lead, T0)
    follow = _schedule(app, lead, T0, kind="no_reply")
    with app.db.begin() as conn:
        assert service.cancel_on_status(conn, lead, "Interested", "") == []
        assert service.cancel_on_reply(app.settings, conn, lead) == []  # cancel_on_reply off
        assert sorted(service.cancel_on_status(conn, lead, "Do Not Contact", "")) == sorted(
            [manual, follow]
        )


def test_the_workers_fast_outcome_and_its_fallback(app: App) -> None:
    lead = _lead(app)
    rid = _schedule(app, lead, T0)
    store.claim_due(app.db.engine, T0, 600, 10)
    with app.db.autocommit() as conn:
        taken = store.take(conn, rid, T0, "northwind.example")
        assert taken is not None
        assert taken["message_id"] == f"reminder-{rid}-0@northwind.example"
        claimed = datetime.fromisoformat(taken["claimed_at"])
        assert store.mark_sent(
            conn, rid, 0, "REQUEST", "a@x.example", {}, T0, taken_at=claimed, taken=taken
        )
    row = _row(app, rid)
    assert (row["status"], row["attempts"], row["recipient"]) == ("sent", 1, "a@x.example")
    assert row["log"][-1]["method"] == "REQUEST"
    # Moved while sending: the fast path finds nothing, the transaction decides.
    _schedule(app, lead, T0 + timedelta(hours=1))
    store.claim_due(app.db.engine, T0 + timedelta(hours=1), 600, 10)
    with app.db.autocommit() as conn:
        taken = store.take(conn, rid, T0 + timedelta(hours=1), "northwind.example")
    assert taken is not None and taken["sequence"] == 1
    _schedule(app, lead, T0 + timedelta(hours=2))
    claimed = datetime.fromisoformat(taken["claimed_at"])
    with app.db.autocommit() as conn:
        assert not store.mark_retry(
            conn, rid, 1, T0, "421", {"method": "REQUEST"}, taken_at=claimed, taken=taken
        )
    with app.db.begin() as conn:
        assert store.mark_retry(conn, rid, 1, T0, "421", {"method": "REQUEST"}, taken_at=claimed)
    row = _row(app, rid)
    assert (row["status"], row["sequence"], row["attempts"]) == ("pending", 2, 0)
    assert row["due_at"] == (T0 + timedelta(hours=2)).isoformat()
    # A later take owns the outcome: the first worker's record is fenced out.
    store.claim_due(app.db.engine, T0 + timedelta(hours=2), 600, 10)
    with app.db.autocommit() as conn:
        first = store.take(conn, rid, T0 + timedelta(hours=2), "northwind.example")
    assert first is not None
    store.claim_due(app.db.engine, T0 + timedelta(hours=3), 600, 10)  # stuck: claimed again
    with app.db.autocommit() as conn:
        second = store.take(conn, rid, T0 + timedelta(hours=3), "northwind.example")
        assert second is not None
        late = datetime.fromisoformat(first["claimed_at"])
        assert not store.mark_sent(
            conn, rid, 2, "REQUEST", None, {}, T0, taken_at=late, taken=first
        )
    with app.db.begin() as conn:
        assert not store.mark_sent(conn, rid, 2, "REQUEST", None, {}, T0, taken_at=late)
    assert _row(app, rid)["status"] == "sending"
