"""Every due reminder reaches the executive exactly once, whatever happens to Redis or the workers.

The outbox's exactly-once rig (test_exactly_once.py) with reminders instead of mail: real
`leadmail worker` processes on a real redis-server, a real aiosmtpd sink counting deliveries by
Message-ID, the dispatcher ticking in this process. Mid-way Redis is flushed, or every worker
process is SIGKILLed; after the restart every reminder has arrived once. As for mail, the one
permitted duplicate is a reminder a killed worker was sending (its outcome unknown), and only
those, at most twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.outbound_helpers import make_app
from tests.integration.test_exactly_once import (
    STUCK_SECONDS,
    Workers,
    dispatching,
    sigkill_every_worker_mid_send,
    wait_until,
    write_config,
)
from tests.servers.redis import RedisServer
from tests.servers.smtp import SmtpServer
from worker.config import load_settings
from worker.services import reminders as service
from worker.services.context import App
from worker.store import reminders as store
from worker.store.models import Lead, table_of

REMINDERS = 400
STUCK = 10
RULES = """
executives:
  - {id: alice, name: Alice Chan, email: alice@northwind.example}
  - {id: bob, name: Bob Okafor, email: bob@northwind.example}
rules: []
"""


def schedule_many(app: App, count: int) -> list[int]:
    """`count` leads, each with a manual reminder due within the last minute."""
    leads = table_of(Lead)
    now = datetime.now(UTC)
    made: list[int] = []
    with app.db.begin() as conn:
        for n in range(count):
            email = f"buyer{n}@firm{n}.example"
            lead_id = conn.execute(
                leads.insert().returning(leads.c.id),
                {
                    "email": email,
                    "email_key": email,
                    "person_name": f"Buyer {n}",
                    "status": "Open",
                    "custom_fields": {},
                    "created_at": now,
                    "updated_at": now,
                },
            ).scalar_one()
            due = now - timedelta(seconds=n % 60)
            executive = "alice" if n % 2 else "bob"
            made.append(service.schedule(conn, lead_id, "manual", due, executive, "test"))
    return made


def statuses(app: App) -> dict[str, int]:
    with app.db.transaction(write=False) as session:
        rows = store.rows(session)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


class ReminderRig:
    def __init__(
        self,
        tmp_path: Path,
        db_url: str,
        smtp: SmtpServer,
        redis: RedisServer,
        count: int = REMINDERS,
        processes: int = 1,
    ) -> None:
        self.config = write_config(tmp_path, db_url, smtp, redis)
        # A send that outlasts stuck_seconds is claimed again and sent twice, by design; the
        # outbox rig's 3 s is too short for a loaded machine composing invitations.
        text = self.config.read_text(encoding="utf-8")
        self.config.write_text(
            text.replace(f"stuck_seconds = {STUCK_SECONDS}", f"stuck_seconds = {STUCK}"),
            encoding="utf-8",
        )
        (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
        self.app = make_app(load_settings(self.config))
        self.smtp = smtp
        self.count = count
        self.workers = Workers(self.config, tmp_path / "workers.log", processes=processes)
        self.ids = schedule_many(self.app, count)

    def all_sent(self, timeout: float = 180) -> None:
        try:
            wait_until(
                lambda: statuses(self.app).get("sent", 0) == self.count,
                timeout,
                f"all {self.count} reminders sent",
            )
        except AssertionError:
            raise AssertionError(
                f"{statuses(self.app)}; worker log:\n{self.workers.log.read_text()[-3000:]}"
            ) from None

    def in_flight(self) -> set[str]:
        with self.app.db.transaction(write=False) as session:
            return {r["message_id"] for r in store.rows(session, status="sending")}

    def expected(self) -> set[str]:
        return {f"reminder-{i}-0@northwind.example" for i in self.ids}

    def close(self) -> None:
        self.workers.stop()
        self.app.close()


RigFactory = Callable[..., ReminderRig]


@pytest.fixture
def rig_factory(
    tmp_path: Path, db_url: str, smtp_factory: Any, redis_server: RedisServer
) -> Iterator[RigFactory]:
    made: list[ReminderRig] = []

    def make(**kwargs: Any) -> ReminderRig:
        rig = ReminderRig(
            tmp_path, db_url, smtp_factory("plain", keep_raw=False), redis_server, **kwargs
        )
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()


def test_flushall_mid_send_loses_and_duplicates_no_reminder(
    rig_factory: RigFactory, redis_server: RedisServer
) -> None:
    rig = rig_factory()
    rig.workers.start()
    with dispatching(rig.app):
        wait_until(lambda: len(rig.smtp.sink) >= 80, 120, "the first 80 reminders")
        redis_server.flushall()
        flushed_at = len(rig.smtp.sink)
        rig.all_sent()
    counts = rig.smtp.sink.by_message_id()
    assert flushed_at < REMINDERS, "the flush came too late to test anything"
    assert set(counts) == rig.expected()
    assert max(counts.values()) == 1, [m for m, c in counts.items() if c > 1]
    with rig.app.db.transaction(write=False) as session:
        rows = store.rows(session)
    assert {r["attempts"] for r in rows} == {1}
    assert {r["method_sent"] for r in rows} == {"REQUEST"}
    # Each went to its executive.
    by_rcpt = {d.message_id: d.rcpt_tos for d in rig.smtp.sink.deliveries}
    row = rows[0]
    expected_to = f"{row['executive']}@northwind.example"
    assert by_rcpt[f"reminder-{row['id']}-0@northwind.example"] == (expected_to,)


def test_sigkill_of_every_worker_mid_send_then_restart(rig_factory: RigFactory) -> None:
    rig = rig_factory(processes=2)
    sigkill_every_worker_mid_send(rig, first=100, total=REMINDERS, timeout=120, what="reminders")


def test_two_dispatchers_on_postgresql_send_each_reminder_once(
    tmp_path: Path, pg_database: Any, smtp_factory: Any, redis_server: RedisServer
) -> None:
    with pg_database() as db_url:
        smtp = smtp_factory("plain", keep_raw=False)
        rig = ReminderRig(tmp_path, db_url, smtp, redis_server, count=300)
        second = make_app(load_settings(rig.config))
        try:
            rig.workers.start()
            with dispatching(rig.app), dispatching(second):
                rig.all_sent()
        finally:
            second.close()
            rig.close()
        counts = rig.smtp.sink.by_message_id()
        assert set(counts) == rig.expected()
        assert max(counts.values()) == 1
