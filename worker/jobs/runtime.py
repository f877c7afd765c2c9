"""Putting the pieces together: broker, actors, dispatcher and (memory broker) the worker.

Three ways to run the jobs, one per command:

- `leadmail run`: `Jobs.start` — dispatcher thread, plus an in-process dramatiq `Worker` when
  the broker is ``memory`` (with Redis, `leadmail worker` processes do the work).
- `leadmail dispatch --once`: `Jobs.dispatch_once` — claim everything due, enqueue, and with the
  memory broker work the queue to the end before returning (cron style).
- `leadmail worker`: `work_until` — dramatiq worker threads on the Redis broker in this
  process; `supervise` runs several such processes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

import dramatiq

from worker.config import Settings
from worker.errors import ConfigError
from worker.jobs.actors import Declared, declare
from worker.jobs.broker import build_broker, describe, is_memory
from worker.jobs.dispatcher import Dispatcher, Round
from worker.services import delivery
from worker.services.context import App
from worker.services.delivery import Attempt

log = logging.getLogger("leadmail.jobs")

IN_PROCESS_THREADS = 4
"""Worker threads of the in-process worker (memory broker) when not given."""

_POLL_MS = 100

PREFETCH_PER_THREAD = 16


@dataclass
class DispatchReport:
    """What `dispatch_once` did: the round, and (memory broker) what each job came to."""

    round: Round
    broker: str
    attempts: list[Attempt]
    errors: list[tuple[str, int, str]]
    in_process: bool


class Jobs:
    """The broker, its actors and, on the memory broker, the in-process worker."""

    def __init__(self, app: App, *, threads: int | None = None, keep_outcomes: bool = False):
        self.app = app
        self.memory = is_memory(app.settings.queue)
        self.threads = threads or IN_PROCESS_THREADS
        delivery.check_sending(app)
        self.broker = build_broker(app.settings.queue)
        self.declared: Declared = declare(
            app, self.broker, keep_outcomes=keep_outcomes, track_outstanding=self.memory
        )
        self.dispatcher = Dispatcher(
            app,
            self.declared.kinds,
            self.declared.actors,
            on_enqueue=self.declared.outstanding.add,
        )
        self._worker: dramatiq.Worker | None = None
        self._dispatch_thread: threading.Thread | None = None

    @property
    def queues(self) -> list[str]:
        return sorted({kind.queue_name for kind in self.declared.kinds})

    def start_worker(self) -> None:
        """The in-process worker (memory broker only)."""
        if not self.memory or self._worker is not None:
            return
        # Time limits and other per-process middleware arm themselves on process_boot, which
        # only dramatiq's own CLI emits; without it, actor time limits would do nothing.
        self.broker.emit_after("process_boot")
        # Threads look for work (and for a stop request) every 100 ms instead of every
        # second: `dispatch --once` would otherwise spend two seconds shutting down.
        self._worker = dramatiq.Worker(
            self.broker, worker_threads=self.threads, worker_timeout=_POLL_MS
        )
        self._worker.start()

    def start(self, stop: threading.Event) -> None:
        """`leadmail run`: the worker (memory broker) and the dispatcher thread."""
        self.start_worker()
        self._dispatch_thread = self.dispatcher.start(stop)
        log.info(
            "jobs: dispatcher every %gs on broker %s%s",
            self.app.settings.queue.dispatch_seconds,
            describe(self.app.settings.queue),
            f" with {self.threads} in-process worker threads" if self.memory else "",
        )

    def join_queues(self) -> None:
        """Wait until the memory broker's queues are empty and every job finished."""
        if not self.memory:
            return
        for name in self.queues:
            self.broker.declare_queue(name)
            self.broker.join(name)

    def dispatch_once(self) -> DispatchReport:
        """Claim and enqueue everything due; with the memory broker, send it all now."""
        if self.memory:
            self.start_worker()
        result = self.dispatcher.run_once(complete=True)
        self.join_queues()
        outcomes = self.declared.outcomes
        return DispatchReport(
            round=result,
            broker=describe(self.app.settings.queue),
            attempts=list(outcomes.attempts),
            errors=list(outcomes.errors),
            in_process=self.memory,
        )

    def stop(self) -> None:
        if self._dispatch_thread is not None:
            self._dispatch_thread.join(timeout=30)
            self._dispatch_thread = None
        if self._worker is not None:
            self._worker.stop(timeout=30_000)  # finishes the jobs in hand
            self._worker = None
            self._release_unstarted()
        self.declared.senders.close_all()
        self.broker.close()

    def _release_unstarted(self) -> None:
        """The memory broker's queue (and what the worker prefetched) dies with the process:
        hand those rows back to the database now, rather than leaving them ``claimed`` until
        stuck_seconds have passed."""
        waiting = self.declared.outstanding.drain()
        for kind in self.declared.kinds:
            ids = waiting.get(kind.name)
            if not ids:
                continue
            try:
                released = kind.release(self.app, ids)
            except Exception as exc:  # stuck_seconds will bring them back
                log.warning("could not hand back %d %s job(s): %s", len(ids), kind.name, exc)
                continue
            log.info("handed %d unstarted %s job(s) back to the outbox", released, kind.name)


def require_redis(settings: Settings) -> None:
    if is_memory(settings.queue):
        raise ConfigError(
            'leadmail worker needs a Redis broker ([queue] broker = "redis://host:port/db"); '
            "with the memory broker, `leadmail run` or `leadmail dispatch --once` sends the mail",
            settings.queue.broker,
        )


def work_until(app: App, threads: int, stop: threading.Event) -> None:
    """dramatiq worker threads on the Redis broker in this process, until `stop` is set."""
    require_redis(app.settings)
    delivery.check_sending(app)
    broker = build_broker(app.settings.queue)
    declared = declare(app, broker)
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=threads)
    # dramatiq fetches two messages per thread by default, and when all of them are still
    # being worked its Redis consumer sleeps with a growing backoff instead of fetching again:
    # a sender that is faster than that backoff idles. A deeper prefetch keeps the threads fed;
    # what a killed worker held is claimed again by the dispatcher after stuck_seconds.
    worker.queue_prefetch = min(threads * PREFETCH_PER_THREAD, 1024)
    worker.start()
    log.info(
        "worker %d: %d thread(s) on %s, queues %s",
        os.getpid(),
        threads,
        describe(app.settings.queue),
        ", ".join(sorted({k.queue_name for k in declared.kinds})),
    )
    try:
        stop.wait()
    finally:
        worker.stop(timeout=30_000)
        declared.senders.close_all()
        broker.close()
        log.info("worker %d stopped", os.getpid())


def supervise(
    target: Callable[..., None],
    args: tuple[object, ...],
    processes: int,
    stop: threading.Event,
) -> None:
    """Run `processes` copies of ``target(*args)`` (each a worker process calling `work_until`)
    until `stop`; one that dies is started again. Spawned, not forked: a child inherits no
    database connection or thread of ours, only the environment."""
    context = multiprocessing.get_context("spawn")
    children: list[multiprocessing.process.BaseProcess] = []

    def spawn() -> multiprocessing.process.BaseProcess:
        child = context.Process(target=target, args=args, name="leadmail-worker")
        child.start()
        return child

    children = [spawn() for _ in range(processes)]
    try:
        while not stop.wait(0.5):
            for index, child in enumerate(children):
                if child.is_alive():
                    continue
                # Ctrl-C reaches the children too, and one may exit before our own handler
                # has run: a stop is never answered with a new worker.
                if stop.wait(0.5):
                    break
                log.warning(
                    "worker process %s exited with %s; starting another",
                    child.pid,
                    child.exitcode,
                )
                children[index] = spawn()
    finally:
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
                child.join()
