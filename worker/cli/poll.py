"""``leadmail poll``, ``leadmail run`` and ``leadmail status``: the mailboxes, live."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click

from worker.cli.context import Context, pass_ctx, ready_app, ready_rules
from worker.cli.logs import BURST, setup_logging
from worker.cli.output import echo, emit, format_option, to_json
from worker.config import Settings
from worker.errors import ConfigError, LeadmailError, LeaseHeldError
from worker.poller import Poller, holder_id, workers_for
from worker.services.assignment import reassign_unavailable, rule_book
from worker.services.context import App
from worker.services.intake import IntakeResult
from worker.services.status import mailbox_status

log = logging.getLogger("leadmail")

STATUS_COLUMNS = [
    "account",
    "folder",
    "uidvalidity",
    "last_uid",
    "waiting",
    "last_success_at",
    "last_error",
    "worked_by",
]


def configure_logging(settings: Settings, debug: bool) -> None:
    """Long-running commands log to stderr at [logging] level, as text or JSON lines."""
    setup_logging(settings.logging.level, debug=debug, json_lines=settings.logging.format == "json")


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM ask for a clean stop; a second one exits at once."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            click.echo("leadmail: stopping now", err=True)
            raise SystemExit(128 + signum)
        log.info("%s: finishing the message in hand, then stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _log_result(result: IntakeResult) -> None:
    """One log line per message, as mail servers do: what happened and why."""
    lead = f" -> lead #{result.lead_id}" if result.lead_id is not None else ""
    why = result.reasons[-1] if result.reasons else ""
    log.info(
        "%s %s%s [%s] %s",
        result.outcome.value,
        result.message_id,
        lead,
        result.kind or "-",
        why,
        extra={BURST: True},
    )


def _printer(as_json: bool) -> Any:
    if not as_json:
        return _log_result

    def emit_line(result: IntakeResult) -> None:
        click.echo(to_json(result.to_json()))

    return emit_line


def _require_accounts(settings: Settings) -> None:
    if not settings.accounts:
        where = settings.source_file or "the built-in defaults"
        raise ConfigError(
            f"no [[accounts]] configured in {where}: see config.example.toml", value=where
        )


@click.command()
@click.option("--once", is_flag=True, help="Fetch what is new once, then exit.")
@click.option(
    "--account",
    "accounts",
    multiple=True,
    help="Only this account (repeatable; default: every account).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per message.")
@pass_ctx
def poll(ctx: Context, once: bool, accounts: tuple[str, ...], as_json: bool) -> None:
    """Fetch new mail from the configured accounts: once, or until stopped (IDLE / polling).

    Run one `leadmail poll` per mailbox to spread them over hosts: a lease in the database
    makes sure only one poller works a folder at a time; the others stand by.
    """
    settings = ctx.settings
    _require_accounts(settings)
    app = ready_app(ctx)
    ready_rules(app)
    configure_logging(settings, ctx.debug)
    stop = threading.Event()
    workers = workers_for(app, settings, accounts, stop=stop, on_result=_printer(as_json))
    if not once:
        with stop_on_signals(stop):
            Poller(workers, stop).start_and_wait()
        return
    failures: list[LeadmailError] = []
    with stop_on_signals(stop):
        for worker in workers:
            if stop.is_set():
                break
            try:
                report = worker.run_once()
            except LeaseHeldError as exc:
                echo(f"leadmail: skipped {worker.where}: {exc}", err=True)
                continue
            except LeadmailError as exc:
                failures.append(exc)
                echo(f"leadmail: error: {exc}", err=True)
                continue
            echo(report.summary(), err=as_json)
    if failures:
        sys.exit(max(f.exit_code for f in failures))


@click.command()
@pass_ctx
def run(ctx: Context) -> None:
    """Run every configured account, and send queued mail, until SIGINT/SIGTERM (Ctrl-C)."""
    settings = ctx.settings
    _require_accounts(settings)
    app = ready_app(ctx)
    configure_logging(settings, ctx.debug)
    stop = threading.Event()
    ready_rules(app)
    workers = workers_for(app, settings, stop=stop, on_result=_log_result, holder=holder_id())
    names = ", ".join(w.where for w in workers)
    # The outbox's dispatcher (and, on the memory broker, the worker that sends) beside the
    # pollers; with Redis, `leadmail worker` processes send.
    from worker.jobs.runtime import Jobs

    jobs = Jobs(app)
    log.info("leadmail running: %s (Ctrl-C or SIGTERM stops it)", names)
    with stop_on_signals(stop):
        jobs.start(stop)
        try:
            Poller(workers, stop).start_and_wait(settings.rules.reload_seconds, _housekeeping(app))
        finally:
            stop.set()
            jobs.stop()
    log.info("leadmail stopped")


def _housekeeping(app: App) -> Any:
    """What `run` does between mails: reload a changed rule file, move leads off
    executives who became unavailable (when the rules ask for it)."""
    book = rule_book(app)

    def tick() -> None:
        rules = book.current()
        if rules is not None and rules.reassign_unavailable:
            moved = reassign_unavailable(app, rules)
            if moved:
                log.info("reassigned %d lead(s) of unavailable executives", len(moved))

    return tick


@click.command()
@click.option("--live", is_flag=True, help="Ask each IMAP server now how many messages wait.")
@format_option
@pass_ctx
def status(ctx: Context, live: bool, fmt: str) -> None:
    """Each account and folder: UIDVALIDITY, last UID, messages waiting, last success/error."""
    app = ready_app(ctx)
    rows = mailbox_status(app, live=live)
    if not rows and fmt == "table":
        click.echo("no accounts configured and nothing polled yet")
        return
    columns = STATUS_COLUMNS + (["live_error"] if any("live_error" in r for r in rows) else [])
    emit(rows, columns, fmt, title="mailboxes")
