"""Sending outbox rows: one attempt per take, outcomes recorded on the row, retries in the DB.

The outcome rules are the same on both backends (the store's transitions are tested on each
in test_outbox_store.py), so most tests here run on SQLite; the dispatch ones run on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.outbound_helpers import (
    delivery_settings,
    make_app,
    queue_mails,
    row,
    smtp_section,
    statuses,
)
from tests.servers.smtp import DROP_AFTER_DATA, SmtpServer
from worker.jobs.runtime import Jobs
from worker.services import delivery
from worker.services.context import App
from worker.services.delivery import Sender
from worker.transport.file import file_name

FUTURE = timedelta(days=2)


@pytest.fixture
def smtp_app(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[App]:
    db_url = f"sqlite:///{tmp_path}/leadmail.db"
    app = make_app(delivery_settings(db_url, tmp_path, smtp_section(smtp_server, max_attempts=3)))
    yield app
    app.close()


@pytest.fixture
def sender(smtp_app: App) -> Iterator[Sender]:
    made = delivery.open_sender(smtp_app)
    yield made
    made.close()


def claim(app: App, after: timedelta = timedelta(0)) -> list[int]:
    return delivery.claim_outbox(app, datetime.now(UTC) + after)


def test_a_claimed_row_is_sent_once(smtp_app: App, sender: Sender, smtp_server: SmtpServer) -> None:
    (mail,) = queue_mails(smtp_app, 1)
    assert claim(smtp_app) == [mail["id"]]
    attempt = delivery.send_outbound(smtp_app, mail["id"], sender)
    assert attempt is not None and (attempt.status, attempt.outcome) == ("sent", "delivered")
    # The same id again (a duplicate queue message): nothing happens.
    assert delivery.send_outbound(smtp_app, mail["id"], sender) is None
    assert smtp_server.sink.by_message_id() == {mail["message_id"]: 1}
    sent = row(smtp_app, mail["id"])
    assert sent["status"] == "sent" and sent["attempts"] == 1 and sent["sent_at"]
    assert sent["results"] == {
        mail["recipients"][0]: {"state": "accepted", "code": 250, "reply": "OK"}
    }
    (entry,) = sent["log"]
    assert entry["outcome"] == "delivered" and entry["code"] == 250 and entry["attempt"] == 1


def test_only_claimed_rows_are_sent(smtp_app: App, sender: Sender, smtp_server: SmtpServer) -> None:
    (mail,) = queue_mails(smtp_app, 1)
    assert delivery.send_outbound(smtp_app, mail["id"], sender) is None  # still pending
    assert len(smtp_server.sink) == 0


def test_4xx_goes_back_to_pending_with_backoff_then_sends(
    smtp_app: App, sender: Sender, smtp_server: SmtpServer
) -> None:
    (mail,) = queue_mails(smtp_app, 1)
    smtp_server.script.add("data", "451 4.3.0 Try again later")
    claim(smtp_app)
    before = datetime.now(UTC)
    attempt = delivery.send_outbound(smtp_app, mail["id"], sender)
    assert attempt is not None and attempt.status == "pending"
    waiting = row(smtp_app, mail["id"])
    assert waiting["last_error"] == "DATA: 451 4.3.0 Try again later"
    assert waiting["attempts"] == 1 and waiting["claimed_at"] is None
    # First retry: 15 to 30 s later (backoff_min 30 s, jitter from the upper half, floor 30).
    due = datetime.fromisoformat(waiting["due_at"])
    assert before + timedelta(seconds=29) <= due <= before + timedelta(seconds=31)
    assert claim(smtp_app) == []  # not due yet
    assert claim(smtp_app, timedelta(seconds=31)) == [mail["id"]]
    again = delivery.send_outbound(smtp_app, mail["id"], sender)
    assert again is not None and again.status == "sent"
    assert [e["outcome"] for e in row(smtp_app, mail["id"])["log"]] == ["temporary", "delivered"]
    assert smtp_server.sink.by_message_id() == {mail["message_id"]: 1}


def test_5xx_fails_for_good(smtp_app: App, sender: Sender, smtp_server: SmtpServer) -> None:
    (mail,) = queue_mails(smtp_app, 1)
    smtp_server.script.add("data", "550 5.7.1 Message refused as spam")
    claim(smtp_app)
    attempt = delivery.send_outbound(smtp_app, mail["id"], sender)
    assert attempt is not None and (attempt.status, attempt.outcome) == ("failed", "permanent")
    failed = row(smtp_app, mail["id"])
    assert failed["last_error"] == "DATA: 550 5.7.1 Message refused as spam"
    assert failed["results"][mail["recipients"][0]]["state"] == "refused_perm"
    assert claim(smtp_app, FUTURE) == []
    assert len(smtp_server.sink) == 0


def test_421_and_dropped_connections_retry_until_max_attempts(
    smtp_app: App, sender: Sender, smtp_server: SmtpServer
) -> None:
    (mail,) = queue_mails(smtp_app, 1)
    smtp_server.script.add("mail", "421 4.3.2 Shutting down", times=None)
    outcomes = []
    for n in range(3):
        assert claim(smtp_app, FUTURE * n) == [mail["id"]]
        attempt = delivery.send_outbound(smtp_app, mail["id"], sender)
        assert attempt is not None
        outcomes.append(attempt.status)
    assert outcomes == ["pending", "pending", "failed"]  # max_attempts = 3
    failed = row(smtp_app, mail["id"])
    assert failed["last_error"] == "MAIL: 421 4.3.2 Shutting down (gave up after 3 attempts)"
    assert [e["attempt"] for e in failed["log"]] == [1, 2, 3]
    assert claim(smtp_app, FUTURE * 10) == []


def test_partial_refusal_retries_only_the_4xx_recipients(
    smtp_app: App, sender: Sender, smtp_server: SmtpServer
) -> None:
    jane, bob, carol = (f"{n}@acme-industrial.example" for n in ("jane", "bob", "carol"))
    (mail,) = queue_mails(smtp_app, 1, recipients=[jane, bob, carol])
    smtp_server.script.add("rcpt", "452 4.2.2 Mailbox full", match=bob)
    smtp_server.script.add("rcpt", "550 5.1.1 No such user", match=carol)
    claim(smtp_app)
    first = delivery.send_outbound(smtp_app, mail["id"], sender)
    assert first is not None and (first.status, first.outcome) == ("pending", "partial")
    results = row(smtp_app, mail["id"])["results"]
    assert {a: r["state"] for a, r in results.items()} == {
        jane: "accepted",
        bob: "refused_temp",
        carol: "refused_perm",
    }
    claim(smtp_app, FUTURE)
    second = delivery.send_outbound(smtp_app, mail["id"], sender)
    assert second is not None and (second.status, second.outcome) == ("sent", "delivered")
    assert [d.rcpt_tos for d in smtp_server.sink.deliveries] == [(jane,), (bob,)]
    final = row(smtp_app, mail["id"])
    assert final["results"][bob]["state"] == "accepted"
    assert final["results"][carol]["state"] == "refused_perm"
    assert final["log"][1]["recipients"] == [bob]


def test_unknown_outcome_is_retried_and_may_duplicate(
    smtp_app: App, sender: Sender, smtp_server: SmtpServer
) -> None:
    (mail,) = queue_mails(smtp_app, 1)
    smtp_server.script.add("data", DROP_AFTER_DATA)
    claim(smtp_app)
    first = delivery.send_outbound(smtp_app, mail["id"], sender)
    assert first is not None and (first.status, first.outcome) == ("pending", "unknown")
    claim(smtp_app, FUTURE)
    second = delivery.send_outbound(smtp_app, mail["id"], sender)
    assert second is not None and second.status == "sent"
    # The documented duplicate: the server had the first copy when the connection dropped.
    assert smtp_server.sink.by_message_id() == {mail["message_id"]: 2}


def test_file_transport_writes_one_eml_per_message_id(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/leadmail.db"
    outbox_dir = tmp_path / "outbox"
    app = make_app(
        delivery_settings(db_url, tmp_path, {"transport": "file", "file_path": str(outbox_dir)})
    )
    try:
        mails = queue_mails(app, 2)
        claim(app)
        sender = delivery.open_sender(app)
        for mail in mails:
            attempt = delivery.send_outbound(app, mail["id"], sender)
            assert attempt is not None and attempt.status == "sent"
        files = sorted(p.name for p in outbox_dir.iterdir())
        assert files == sorted(file_name(m["message_id"]) for m in mails)
        first = outbox_dir / file_name(mails[0]["message_id"])
        assert f"Message-ID: <{mails[0]['message_id']}>".encode() in first.read_bytes()
        # A second send of the same message replaces the file.
        again = sender.send("x@y.example", ["a@b.example"], b"Subject: v2\r\n\r\n", "<x>")
        assert again.outcome.value == "delivered"
        sender.send("x@y.example", ["a@b.example"], b"Subject: v3\r\n\r\n", "x")
        assert (outbox_dir / file_name("x")).read_bytes() == b"Subject: v3\r\n\r\n"
        assert len(list(outbox_dir.iterdir())) == 3
    finally:
        app.close()


def test_missing_password_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.errors import ConfigError

    db_url = f"sqlite:///{tmp_path}/leadmail.db"
    monkeypatch.delenv("LEADMAIL_TEST_SMTP_PW", raising=False)
    smtp: dict[str, Any] = {
        "transport": "smtp",
        "username": "me@northwind.example",
        "password_env": "LEADMAIL_TEST_SMTP_PW",
    }
    app = make_app(delivery_settings(db_url, tmp_path, smtp))
    try:
        with pytest.raises(ConfigError, match=r"LEADMAIL_TEST_SMTP_PW \(password_env\) is not set"):
            Jobs(app)
    finally:
        app.close()


def test_dispatch_once_in_process_sends_everything_due(
    db_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    app = make_app(delivery_settings(db_url, tmp_path, smtp_section(smtp_server)))
    try:
        mails = queue_mails(app, 25)
        later = queue_mails(app, 2, due_at=datetime.now(UTC) + timedelta(hours=1))
        jobs = Jobs(app, threads=3, keep_outcomes=True)
        try:
            report = jobs.dispatch_once()
        finally:
            jobs.stop()
        assert sorted(report.round.enqueued["outbox"]) == sorted(m["id"] for m in mails)
        assert {a.status for a in report.attempts} == {"sent"} and len(report.attempts) == 25
        assert smtp_server.sink.by_message_id() == {m["message_id"]: 1 for m in mails}
        assert statuses(app) == {"sent": 25, "pending": 2}
        assert all(row(app, m["id"])["status"] == "pending" for m in later)
    finally:
        app.close()


def test_stopping_run_hands_unstarted_mail_back(smtp_app: App, smtp_server: SmtpServer) -> None:
    """`leadmail run` on the memory broker stopped mid-way: what it claimed and never started
    is pending again at once (not after stuck_seconds), and is sent once by the next run."""
    import threading

    mails = queue_mails(smtp_app, 300)
    stop = threading.Event()
    jobs = Jobs(smtp_app, threads=1)
    jobs.start(stop)
    try:
        assert smtp_server.sink.wait_for(5, timeout=60)
    finally:
        stop.set()
        jobs.stop()
    after_stop = statuses(smtp_app)
    assert set(after_stop) == {"sent", "pending"}, after_stop
    assert after_stop["sent"] == len(smtp_server.sink) < 300
    again = Jobs(smtp_app, threads=2, keep_outcomes=True)
    try:
        again.dispatch_once()
    finally:
        again.stop()
    assert statuses(smtp_app) == {"sent": 300}
    assert smtp_server.sink.by_message_id() == {m["message_id"]: 1 for m in mails}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_outcome_recorded_after_a_reclaim_changes_nothing(
    backend: str, tmp_path: Path, pg_database: Any
) -> None:
    """A worker slower than stuck_seconds: the dispatcher gave its row to another worker, so
    the first one's late outcome must not overwrite the second one's (the claimed_at fence)."""
    from contextlib import ExitStack

    from worker.store import outbox as store

    with ExitStack() as stack:
        db_url = (
            stack.enter_context(pg_database())
            if backend == "postgresql"
            else f"sqlite:///{tmp_path}/leadmail.db"
        )
        app = make_app(delivery_settings(db_url, tmp_path, {}))
        stack.callback(app.close)
        (mail,) = queue_mails(app, 1)
        now = datetime.now(UTC)
        claim(app)
        with app.db.autocommit() as conn:
            first = store.take(conn, mail["id"], now)
        assert first is not None
        later = now + timedelta(seconds=app.settings.queue.stuck_seconds + 1)
        assert delivery.claim_outbox(app, later) == [mail["id"]]
        with app.db.autocommit() as conn:
            second = store.take(conn, mail["id"], later)
        assert second is not None
        entry = {"outcome": "delivered", "code": 250, "reply": "250 OK"}
        with app.db.begin() as conn:
            assert not store.mark_sent(conn, mail["id"], {}, entry, later, taken=first)
        with app.db.begin() as conn:
            assert store.mark_sent(conn, mail["id"], {}, entry, later, taken=second)
        final = row(app, mail["id"])
        assert final["status"] == "sent" and final["attempts"] == 1 and len(final["log"]) == 1
