"""Every queued mail reaches the server exactly once, whatever happens to Redis or the workers.

Real parts only: `leadmail worker` processes (2 x 2 threads) on a real redis-server, a real
aiosmtpd sink counting deliveries per Message-ID, and the dispatcher ticking in this process.
Mid-way we flush Redis, or SIGKILL every worker process; the database still knows what is left
(principle 1), and after the restart every Message-ID has arrived once.

The one permitted duplicate is a message whose outcome the worker never learned: killed after
the server had it and before the row said so (for the server, a connection dropped after the end
of DATA). Such rows are ``sending`` at the moment of the kill; the SIGKILL test records them,
and allows a second copy of those only, and counts it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.outbound_helpers import make_app, queue_mails, statuses
from tests.servers.dovecot import _group_members
from tests.servers.redis import RedisServer
from tests.servers.smtp import SmtpServer
from worker.config import load_settings
from worker.jobs.runtime import Jobs
from worker.services.context import App
from worker.store import outbox

MAILS = 500
STUCK_SECONDS = 3
LEADMAIL = str(Path(sys.executable).with_name("leadmail"))


def write_config(tmp_path: Path, db_url: str, smtp: SmtpServer, redis: RedisServer) -> Path:
    config = tmp_path / "leadmail.toml"
    config.write_text(
        f"""
[database]
url = {json.dumps(db_url)}
[storage]
path = {json.dumps(str(tmp_path / "data"))}
[rules]
path = {json.dumps(str(tmp_path / "rules.yaml"))}
[logging]
level = "warning"
[smtp]
transport = "smtp"
host = "{smtp.host}"
port = {smtp.port}
security = "none"
timeout = 10
from_address = "sales@northwind.example"
backoff_min_seconds = 0.05
backoff_max_seconds = 0.1
[queue]
broker = "{redis.url}"
dispatch_seconds = 0.2
stuck_seconds = {STUCK_SECONDS}
batch = 200
""",
        encoding="utf-8",
    )
    return config


class Workers:
    """`leadmail worker --processes P --threads T` in its own process group."""

    def __init__(self, config: Path, log: Path, processes: int = 1, threads: int = 4) -> None:
        self.config = config
        self.log = log
        self.options = ("--processes", str(processes), "--threads", str(threads))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [LEADMAIL, "--config", str(self.config), "worker", *self.options],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def members(self) -> list[int]:
        return _group_members(self.proc.pid) if self.proc is not None else []

    def wait_for_children(self, count: int = 3, timeout: float = 60) -> None:
        """The supervisor and its two workers (spawn adds a resource tracker at most)."""
        wait_until(lambda: len(self.members()) >= count, timeout, "worker processes")

    def kill(self) -> int:
        """SIGKILL every process of the group at once; how many there were."""
        assert self.proc is not None
        members = self.members()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        wait_until(lambda: not self.members(), 10, "killed workers to vanish")
        self.proc = None
        return len(members)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything the supervisor left behind
        self.proc = None


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def dispatching(app: App) -> Iterator[Jobs]:
    """The dispatcher of `leadmail run` (Redis broker: no in-process worker), in a thread."""
    stop = threading.Event()
    jobs = Jobs(app)
    jobs.start(stop)
    try:
        yield jobs
    finally:
        stop.set()
        jobs.stop()


class Rig:
    """A config, an app on it, `count` queued mails, and the workers to send them."""

    def __init__(
        self,
        tmp_path: Path,
        db_url: str,
        smtp: SmtpServer,
        redis: RedisServer,
        count: int = MAILS,
        processes: int = 1,
    ) -> None:
        self.config = write_config(tmp_path, db_url, smtp, redis)
        self.app = make_app(load_settings(self.config))
        self.smtp = smtp
        self.redis = redis
        self.count = count
        self.workers = Workers(self.config, tmp_path / "workers.log", processes=processes)
        self.mails = queue_mails(self.app, count)

    def all_sent(self, timeout: float = 120) -> None:
        def done() -> bool:
            return statuses(self.app).get("sent", 0) == self.count

        try:
            wait_until(done, timeout, f"all {self.count} mails sent")
        except AssertionError:
            raise AssertionError(
                f"{statuses(self.app)}; worker log:\n{self.workers.log.read_text()[-3000:]}"
            ) from None

    def in_flight(self) -> set[str]:
        """Message-IDs of rows a worker was sending: their outcome is unknown."""
        with self.app.db.transaction(write=False) as session:
            return {r["message_id"] for r in outbox.rows(session, status="sending")}

    def expected(self) -> set[str]:
        return {m["message_id"] for m in self.mails}

    def close(self) -> None:
        self.workers.stop()
        self.app.close()


RigFactory = Callable[..., Rig]


@pytest.fixture
def rig_factory(
    tmp_path: Path, db_url: str, smtp_factory: Any, redis_server: RedisServer
) -> Iterator[RigFactory]:
    made: list[Rig] = []

    def make(**kwargs: Any) -> Rig:
        rig = Rig(tmp_path, db_url, smtp_factory("plain", keep_raw=False), redis_server, **kwargs)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()


def test_flushall_mid_send_loses_and_duplicates_nothing(rig_factory: RigFactory) -> None:
    rig = rig_factory()  # one worker process, four threads
    rig.workers.start()
    with dispatching(rig.app):
        wait_until(lambda: len(rig.smtp.sink) >= 100, 90, "the first 100 deliveries")
        rig.redis.flushall()  # every queued id is gone; the rows still say "claimed"
        flushed_at = len(rig.smtp.sink)
        rig.all_sent()
    counts = rig.smtp.sink.by_message_id()
    assert flushed_at < MAILS, "the flush came too late to test anything"
    assert set(counts) == rig.expected()
    assert max(counts.values()) == 1, [m for m, c in counts.items() if c > 1]
    with rig.app.db.transaction(write=False) as session:
        assert {r["attempts"] for r in outbox.rows(session)} == {1}


def test_sigkill_of_every_worker_mid_send_then_restart(rig_factory: RigFactory) -> None:
    rig = rig_factory(processes=2)  # a supervisor and two worker processes, 2 x 4 threads
    sigkill_every_worker_mid_send(rig, first=150, total=MAILS, timeout=90, what="mails")


def sigkill_every_worker_mid_send(
    rig: Any, *, first: int, total: int, timeout: float, what: str
) -> None:
    """Kill the whole worker group once ``first`` have arrived, restart it, and check that
    every one arrives, the only ones twice being those in a killed worker's hands."""
    rig.workers.start()
    with dispatching(rig.app):
        rig.workers.wait_for_children()
        wait_until(lambda: len(rig.smtp.sink) >= first, timeout, f"the first {first} {what}")
        killed = rig.workers.kill()
        # Nobody works the queue now: what is "sending" was in a killed worker's hands.
        unknown = rig.in_flight()
        killed_at = len(rig.smtp.sink)
        rig.workers.start()
        rig.all_sent()
    counts = rig.smtp.sink.by_message_id()
    assert killed >= 3 and killed_at < total
    assert set(counts) == rig.expected()
    duplicates = {m for m, c in counts.items() if c > 1}
    # Only those whose outcome the killed workers never recorded may arrive twice, and
    # never more than twice; eight sending threads hold at most eight of them.
    assert duplicates <= unknown, duplicates - unknown
    assert max(counts.values()) <= 2
    assert len(unknown) <= 8
    print(
        f"\nSIGKILL of {killed} processes after {killed_at} {what}: "
        f"{len(unknown)} in flight (outcome unknown), {len(duplicates)} delivered twice"
    )


def test_two_dispatchers_and_four_worker_threads_send_each_mail_once(
    tmp_path: Path, pg_database: Any, smtp_factory: Any, redis_server: RedisServer
) -> None:
    with pg_database() as db_url:
        smtp = smtp_factory("plain", keep_raw=False)
        rig = Rig(tmp_path, db_url, smtp, redis_server, count=300)  # 1 process x 4 threads
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


def _worker_children(workers: Workers) -> set[int]:
    """The spawned worker processes of the group (not the supervisor, not helpers)."""
    found = set()
    for pid in workers.members():
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.add(pid)
    return found


def test_a_dead_worker_process_is_replaced_and_sigterm_stops_all(
    tmp_path: Path, smtp_server: SmtpServer, redis_server: RedisServer
) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/leadmail.db", smtp_server, redis_server)
    make_app(load_settings(config)).close()
    workers = Workers(config, tmp_path / "workers.log", processes=2, threads=1)
    workers.start()
    try:
        wait_until(lambda: len(_worker_children(workers)) == 2, 60, "two worker processes")
        first = _worker_children(workers)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        # The supervisor says so first; counting processes alone can race with its noticing.
        replaced = f"worker process {victim} exited with -9; starting another"
        wait_until(lambda: replaced in workers.log.read_text(), 60, "the supervisor to notice")
        wait_until(
            lambda: len(_worker_children(workers)) == 2 and victim not in _worker_children(workers),
            60,
            "a replacement worker process",
        )
        assert workers.proc is not None
        os.kill(workers.proc.pid, signal.SIGTERM)  # the supervisor only: it stops the rest
        assert workers.proc.wait(60) == 0
        wait_until(lambda: not workers.members(), 30, "every worker process to exit")
        workers.proc = None
    finally:
        workers.stop()
    assert (tmp_path / "workers.log").read_text().count("starting another") == 1
