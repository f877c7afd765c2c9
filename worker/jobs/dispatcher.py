"""The dispatcher: claims due rows of every job kind, commits, then enqueues their ids.

Claim first, enqueue second: a row is marked ``claimed`` in a committed transaction before its
id goes to the broker, so two dispatchers (on any number of hosts) never enqueue the same row
for the same round, and a broker that loses the message (FLUSHALL, a restart without
persistence) loses nothing: the row stays ``claimed`` until ``[queue] stuck_seconds`` have
passed, and the next claim takes it again. The same goes for a row whose worker died while
``sending``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dramatiq

from worker.jobs.actors import JobKind
from worker.services import followups
from worker.services.context import App

log = logging.getLogger("leadmail.dispatcher")

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


MAX_CHUNK = 16
"""Row ids per queue message at most. A message costs the queue about as much as a fast local
send; a few ids per message halve that, while small rounds still spread over the workers."""


def chunk_size(claimed: int) -> int:
    """Ids per message for a round of `claimed` rows: 1 for a handful, up to MAX_CHUNK."""
    return max(1, min(MAX_CHUNK, claimed // 32))


@dataclass
class Round:
    """The ids one `Dispatcher.run_once` claimed and enqueued, by kind."""

    enqueued: dict[str, list[int]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    # What the follow-up rules made and cancelled before the claim ([followups]).
    followups: followups.TickResult | None = None

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.enqueued.values())


class Dispatcher:
    """Claims and enqueues; `run_once` for one round (tests, cron), `run_forever` to tick."""

    def __init__(
        self,
        app: App,
        kinds: Sequence[JobKind],
        actors: dict[str, dramatiq.Actor[..., None]],
        *,
        clock: Clock = _utcnow,
        on_enqueue: Callable[[str, list[int]], None] | None = None,
    ) -> None:
        self.app = app
        self.kinds = list(kinds)
        self.actors = actors
        self.clock = clock
        self.on_enqueue = on_enqueue
        self.followup_cursor = followups.Cursor()
        self._warn_about_settings()

    def _warn_about_settings(self) -> None:
        smtp, queue = self.app.settings.smtp, self.app.settings.queue
        # A send may take a timeout per command (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT,
        # DATA, the final reply); a row claimed again while its first worker still waits on
        # the server would be sent twice.
        if smtp.transport == "smtp" and queue.stuck_seconds < 10 * smtp.timeout:
            log.warning(
                "[queue] stuck_seconds (%g) is less than 10 x [smtp] timeout (%g): a slow send "
                "may be claimed again while it is still running, and sent twice",
                queue.stuck_seconds,
                smtp.timeout,
            )

    def run_once(self, *, complete: bool = False) -> Round:
        """Claim everything due now, batch after batch, and enqueue each batch after its commit.

        First the follow-up rules make the reminders that became due and cancel those whose
        cause went away, so a cancelled one is never claimed. Their scans resume where the
        last tick stopped; ``complete`` (``dispatch --once``) runs them through to the end.
        """
        report = Round()
        self._followups(report, complete)
        for kind in self.kinds:
            ids: list[int] = []
            try:
                while True:
                    batch = kind.claim(self.app, self.clock())
                    actor = self.actors[kind.name]
                    if self.on_enqueue is not None:
                        self.on_enqueue(kind.name, batch)
                    size = chunk_size(len(batch))
                    for start in range(0, len(batch), size):
                        actor.send(*batch[start : start + size])
                    ids += batch
                    if len(batch) < self.app.settings.queue.batch:
                        break
            except Exception as exc:
                # Rows claimed but not enqueued are claimed again after stuck_seconds.
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                report.failed[kind.name] = f"{type(exc).__name__}: {first}"
                log.error("dispatching %s failed: %s", kind.name, report.failed[kind.name])
            if ids:
                report.enqueued[kind.name] = ids
                log.info("enqueued %d %s job(s)", len(ids), kind.name)
        return report

    def _followups(self, report: Round, complete: bool) -> None:
        try:
            report.followups = followups.run_once(
                self.app, self.clock(), cursor=self.followup_cursor, complete=complete
            )
        except Exception as exc:
            # The claims go on: a broken follow-up check must not stop the mail.
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            report.failed["followups"] = f"{type(exc).__name__}: {first}"
            log.error("follow-up rules failed: %s", report.failed["followups"])

    def run_forever(self, stop: threading.Event) -> None:
        """A round every ``[queue] dispatch_seconds`` until `stop` is set."""
        every = self.app.settings.queue.dispatch_seconds
        while not stop.is_set():
            self.run_once()
            stop.wait(every)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(
            target=self.run_forever, args=(stop,), name="leadmail-dispatcher", daemon=True
        )
        thread.start()
        return thread
