"""``leadmail dispatch`` and ``leadmail worker``: the outbox and reminders on their way.

`dispatch --once` is the cron-style one-shot: claim everything due, enqueue it, and with the
memory broker send it in this process before exiting. `worker` runs dramatiq worker processes
on the Redis broker; `leadmail run` dispatches (and, on the memory broker, works) by itself.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import click

from worker.cli.context import Context, pass_ctx, ready_app
from worker.cli.output import echo, to_json
from worker.cli.poll import configure_logging, stop_on_signals

log = logging.getLogger("leadmail")


def _job_lines(report: Any) -> list[dict[str, Any]]:
    """One JSON object per job: what it came to (in process) or that it was enqueued."""
    lines: list[dict[str, Any]] = []
    if report.in_process:
        lines += [{"kind": a.kind, **a.to_json()} for a in report.attempts]
        lines += [
            {"kind": kind, "id": row_id, "status": "error", "reply": text}
            for kind, row_id, text in report.errors
        ]
        return lines
    for kind, ids in report.round.enqueued.items():
        lines += [{"kind": kind, "id": row_id, "status": "enqueued"} for row_id in ids]
    return lines


def _summary(report: Any) -> str:
    total = report.round.total
    if not report.in_process:
        return f"dispatched {total} job(s) to {report.broker}"
    counts = Counter(a.status for a in report.attempts)
    parts = [f"{counts[s]} {s}" for s in ("sent", "pending", "failed") if counts[s]]
    if report.errors:
        parts.append(f"{len(report.errors)} error(s)")
    skipped = total - len(report.attempts) - len(report.errors)
    if skipped > 0:
        parts.append(f"{skipped} already done elsewhere")
    detail = f": {', '.join(parts)}" if parts else ""
    return f"dispatched {total} job(s){detail}".replace("pending", "to retry later")


def _followups_line(report: Any) -> str | None:
    """What [followups] did before the claim, when it did anything."""
    done = report.round.followups
    if done is None or not (done.scheduled or done.cancelled):
        return None
    return (
        f"follow-up rules: {len(done.scheduled)} reminder(s) made or moved, "
        f"{len(done.cancelled)} cancelled"
    )


@click.command()
@click.option(
    "--once",
    is_flag=True,
    required=True,
    help="Claim everything due now, send it (memory broker) or enqueue it (Redis), then exit.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per job.")
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=None,
    help="Sending threads of the in-process worker (memory broker; default 4).",
)
@pass_ctx
def dispatch(ctx: Context, once: bool, as_json: bool, threads: int | None) -> None:
    """Send what is due: outbound mail and reminders (cron style with --once)."""
    from worker.jobs.runtime import Jobs

    app = ready_app(ctx)
    configure_logging(ctx.settings, ctx.debug)
    jobs = Jobs(app, threads=threads, keep_outcomes=True)
    try:
        report = jobs.dispatch_once()
    finally:
        jobs.stop()
    if as_json:
        for line in _job_lines(report):
            click.echo(to_json(line))
    followups = _followups_line(report)
    if followups is not None:
        echo(followups, err=as_json)
    echo(_summary(report), err=as_json)
    if report.round.failed:
        for kind, error in report.round.failed.items():
            echo(f"leadmail: error: dispatching {kind}: {error}", err=True)
        sys.exit(1)


@click.command()
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes (each with its own SMTP connections).",
)
@click.option(
    "--threads", type=click.IntRange(1, 256), default=4, show_default=True, help="Per process."
)
@pass_ctx
def worker(ctx: Context, processes: int, threads: int) -> None:
    """Work the Redis queue: send outbound mail until SIGINT/SIGTERM (Ctrl-C).

    Run as many as you like, on any host: the database decides which mail is due and hands
    each to exactly one worker. Needs [queue] broker = "redis://…" (`leadmail run` works the
    memory broker itself).
    """
    from worker.jobs.runtime import require_redis, supervise, work_until
    from worker.services.delivery import check_sending

    settings = ctx.settings
    require_redis(settings)
    app = ready_app(ctx)
    check_sending(app)
    configure_logging(settings, ctx.debug)
    stop = threading.Event()
    with stop_on_signals(stop):
        if processes == 1:
            work_until(app, threads, stop)
            return
        app.close()
        log.info("leadmail worker: %d processes x %d threads", processes, threads)
        supervise(_worker_process, (ctx.config_path, threads, ctx.debug), processes, stop)


def _worker_process(config_path: Path | None, threads: int, debug: bool) -> None:
    """One process of `leadmail worker --processes N` (spawned by jobs.runtime.supervise)."""
    from worker.config import load_settings
    from worker.jobs.runtime import work_until
    from worker.services.context import App

    settings = load_settings(config_path)
    configure_logging(settings, debug)
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # SIGINT too: Ctrl-C reaches every process of the terminal's group; the parent
    # stops the children itself.
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    app = App.from_settings(settings)
    try:
        work_until(app, threads, stop)
    finally:
        app.close()
