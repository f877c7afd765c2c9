"""The actors, and the registry of job kinds the dispatcher and the workers share.

A job kind is a table of rows with due times (the outbox, reminders): a
function that claims the due rows and commits, and a function that does the work for one row
id. `KINDS` lists them; `declare` makes one dramatiq actor per kind on a given broker. Actors
carry ids only and re-check the row themselves (services/delivery.py), so a message delivered
twice, or left in Redis after the row was done, does nothing.

dramatiq's retry middleware is not installed (jobs/broker.py): a temporary failure puts the
row back to ``pending`` with a later due time in the database, where the dispatcher finds it
again. An
unexpected error (the database unreachable, a bug) is logged in one line and leaves the row
``sending``; the dispatcher claims it again after ``[queue] stuck_seconds``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from worker.services import delivery, reminder_delivery
from worker.services.context import App
from worker.services.delivery import Attempt, Sender

log = logging.getLogger("leadmail.jobs")

Claim = Callable[[App, datetime], list[int]]
Work = Callable[[App, int, Sender], Attempt | None]
Release = Callable[[App, Sequence[int]], int]


@dataclass(frozen=True)
class JobKind:
    """One kind of due work: how to claim it, what an actor does with one row id, and how to
    hand back claimed rows an in-process worker did not get to."""

    name: str
    actor_name: str
    queue_name: str
    claim: Claim
    work: Work
    release: Release


def _claim_outbox(app: App, now: datetime) -> list[int]:
    return delivery.claim_outbox(app, now)


def _claim_reminders(app: App, now: datetime) -> list[int]:
    return reminder_delivery.claim_reminders(app, now)


KINDS: list[JobKind] = [
    JobKind(
        name="outbox",
        actor_name="send_outbound",
        queue_name="outbound",
        claim=_claim_outbox,
        work=delivery.send_outbound,
        release=delivery.release_outbox,
    ),
    JobKind(
        name=reminder_delivery.KIND,
        actor_name="send_reminder",
        queue_name="reminders",
        claim=_claim_reminders,
        work=reminder_delivery.send_reminder,
        release=reminder_delivery.release_reminders,
    ),
]
"""Every kind the dispatcher claims and the workers run."""


def register(kind: JobKind) -> None:
    """Add a job kind (before any broker is declared); a name used twice is a bug."""
    if any(k.name == kind.name or k.actor_name == kind.actor_name for k in KINDS):
        raise ValueError(f"job kind {kind.name!r} ({kind.actor_name}) is registered twice")
    KINDS.append(kind)


class ThreadSenders(Middleware):
    """One transport per worker thread (an SMTP session is not thread-safe), closed with it."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._local = threading.local()
        self._all: list[Sender] = []
        self._lock = threading.Lock()

    def get(self) -> Sender:
        sender: Sender | None = getattr(self._local, "sender", None)
        if sender is None:
            sender = delivery.open_sender(self.app)
            self._local.sender = sender
            with self._lock:
                self._all.append(sender)
        return sender

    def discard(self) -> None:
        """Forget this thread's transport after an error left it in an unknown state."""
        sender: Sender | None = getattr(self._local, "sender", None)
        self._local.sender = None
        if sender is not None:
            self._close(sender)

    def _close(self, sender: Sender) -> None:
        with self._lock:
            if sender in self._all:
                self._all.remove(sender)
        try:
            sender.close()
        except Exception as exc:  # closing a dead session must not stop a shutdown
            log.debug("closing a transport failed: %s", exc)

    def before_worker_thread_shutdown(self, broker: dramatiq.Broker, thread: Any) -> None:
        self.discard()

    def close_all(self) -> None:
        with self._lock:
            senders = list(self._all)
        for sender in senders:
            self._close(sender)


@dataclass
class Outcomes:
    """What in-process actors did, for `leadmail dispatch --once` to report; a long-running
    worker keeps nothing (``keep`` off)."""

    keep: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    errors: list[tuple[str, int, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, attempt: Attempt) -> None:
        if self.keep:
            with self._lock:
                self.attempts.append(attempt)

    def error(self, kind: str, row_id: int, text: str) -> None:
        if self.keep:
            with self._lock:
                self.errors.append((kind, row_id, text))


class Outstanding:
    """Ids enqueued in this process and not yet started, by kind (memory broker only: its
    queue dies with the process, so a clean stop hands these rows back)."""

    def __init__(self, track: bool) -> None:
        self.track = track
        self._ids: dict[str, set[int]] = {}
        self._lock = threading.Lock()

    def add(self, kind: str, ids: Sequence[int]) -> None:
        if self.track:
            with self._lock:
                self._ids.setdefault(kind, set()).update(ids)

    def start(self, kind: str, row_id: int) -> None:
        if self.track:
            with self._lock:
                self._ids.get(kind, set()).discard(row_id)

    def drain(self) -> dict[str, list[int]]:
        with self._lock:
            left = {kind: sorted(ids) for kind, ids in self._ids.items() if ids}
            self._ids.clear()
        return left


@dataclass(frozen=True)
class Declared:
    """The actors of every kind on one broker, with what they share."""

    broker: dramatiq.Broker
    actors: dict[str, dramatiq.Actor[..., None]]
    kinds: list[JobKind]
    senders: ThreadSenders
    outcomes: Outcomes
    outstanding: Outstanding


def declare(
    app: App,
    broker: dramatiq.Broker,
    *,
    keep_outcomes: bool = False,
    track_outstanding: bool = False,
) -> Declared:
    """Create one actor per job kind on `broker`, working against `app`."""
    senders = ThreadSenders(app)
    broker.add_middleware(senders)
    outcomes = Outcomes(keep=keep_outcomes)
    outstanding = Outstanding(track_outstanding)
    # Longer than any send (a stuck send is cut off by its SMTP timeouts first), shorter
    # than stuck_seconds, after which the dispatcher hands the row to another worker.
    time_limit_ms = int(app.settings.queue.stuck_seconds * 1000 * 0.9)
    actors: dict[str, dramatiq.Actor[..., None]] = {}
    for kind in KINDS:
        actors[kind.name] = dramatiq.Actor(
            _actor_function(app, kind, senders, outcomes, outstanding),
            broker=broker,
            actor_name=kind.actor_name,
            queue_name=kind.queue_name,
            priority=0,
            options={"time_limit": time_limit_ms},
        )
    return Declared(broker, actors, list(KINDS), senders, outcomes, outstanding)


def _actor_function(
    app: App, kind: JobKind, senders: ThreadSenders, outcomes: Outcomes, outstanding: Outstanding
) -> Callable[..., None]:
    def run(row_id: int, *more: int) -> None:
        """One row id, or several: the dispatcher sends a few per message when many are due,
        since the queue's own cost per message is a good part of a fast send's. Each row is
        still taken, sent and recorded on its own."""
        for one in (row_id, *more):
            outstanding.start(kind.name, one)
            try:
                attempt = kind.work(app, one, senders.get())
            except Exception as exc:
                senders.discard()
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                log.error("%s #%d: %s: %s", kind.name, one, type(exc).__name__, first)
                log.debug("%s #%d failed", kind.name, one, exc_info=True)
                outcomes.error(kind.name, one, f"{type(exc).__name__}: {first}")
                continue
            except BaseException:  # TimeLimitExceeded, shutdown: the session's state is unknown
                senders.discard()
                raise
            if attempt is not None:
                outcomes.add(attempt)

    run.__name__ = run.__qualname__ = kind.actor_name
    run.__module__ = __name__
    return run
