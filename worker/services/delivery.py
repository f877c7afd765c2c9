"""Sending one outbox row: take it, talk to the server outside any transaction, record the result.

The row decides, never the queue (ARCHITECTURE.md principle 1). `send_outbound` is safe to
run any number of times for one id, at the same time or later: `take` lets exactly one caller
move a ``claimed`` row to ``sending`` (and commits), every other caller finds it taken, sent or
cancelled and does nothing. Only after that commit do we talk to the server, and the outcome is
recorded in a second short transaction; no transaction is open while SMTP runs.

Retries live in the database too: a temporary failure puts the row back to ``pending`` with a
later ``due_at`` (exponential backoff with jitter between ``[smtp] backoff_min_seconds`` and
``backoff_max_seconds``), and the dispatcher enqueues it again when it is due. A dramatiq
retry would park the attempt in Redis, where FLUSHALL loses it and where `outbox show` cannot
see it; here every attempt is in the row's log, and `[smtp] max_attempts` attempts in all end
in ``failed`` with the last reply.

A row whose worker died while ``sending`` stays so until the dispatcher claims it again after
``[queue] stuck_seconds``; if the worker had already handed the message to the server, the
second attempt duplicates it (see transport/smtp.py on the "unknown" outcome).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from worker.config import ImapAccount, SmtpSettings
from worker.errors import ConfigError, LeadmailError
from worker.services import outbound
from worker.services.context import App
from worker.sources.imap import append_message, password_for
from worker.store import outbox as store
from worker.transport.file import FileTransport
from worker.transport.smtp import Outcome, SendResult, SyncSmtpTransport, one_line

log = logging.getLogger("leadmail.delivery")


class Sender(Protocol):
    """A transport as this service uses it: the SMTP one or the file one."""

    def send(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes, message_id: str
    ) -> SendResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Attempt:
    """What one call did to one row; ``status`` is the row's status afterwards."""

    outbox_id: int
    message_id: str
    status: str
    outcome: str
    reply: str
    attempt: int
    due_at: str | None = None
    # The job kind (jobs/actors.py): "outbox", or "reminders" (services/reminder_delivery.py,
    # whose row id is in ``outbox_id`` too and is reported as ``reminder_id``).
    kind: str = "outbox"

    def to_json(self) -> dict[str, Any]:
        return {
            "reminder_id" if self.kind == "reminders" else "outbox_id": self.outbox_id,
            "message_id": self.message_id,
            "status": self.status,
            "outcome": self.outcome,
            "reply": self.reply,
            "attempt": self.attempt,
            "due_at": self.due_at,
        }


def smtp_password(settings: SmtpSettings, environ: dict[str, str] | None = None) -> str | None:
    """The SMTP password from the variable ``password_env`` names (None without a username)."""
    if settings.username is None or settings.password_env is None:
        return None
    env = os.environ if environ is None else environ
    password = env.get(settings.password_env)
    if not password:
        what = "is not set" if password is None else "is empty"
        raise ConfigError(
            f"[smtp] environment variable {settings.password_env} (password_env) {what}",
            settings.password_env,
        )
    return password


class _SmtpSender:
    """`SyncSmtpTransport` with the `Sender` signature (SMTP has no use for the Message-ID)."""

    def __init__(self, settings: SmtpSettings, password: str | None) -> None:
        self.transport = SyncSmtpTransport(settings, password)

    def send(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes, message_id: str
    ) -> SendResult:
        return self.transport.send(envelope_from, recipients, raw)

    def close(self) -> None:
        self.transport.close()


def open_sender(app: App) -> Sender:
    """The configured transport, for one thread; ConfigError when its password is missing."""
    settings = app.settings.smtp
    if settings.transport == "file":
        return FileTransport(settings.file_path)
    return _SmtpSender(settings, smtp_password(settings))


def check_sending(app: App) -> None:
    """Refuse to start workers that could not send anything (called by the CLI at start)."""
    settings = app.settings.smtp
    if settings.transport == "smtp":
        smtp_password(settings)


def backoff(settings: SmtpSettings, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds before attempt ``attempt + 1``: doubling from the minimum, capped, jittered.

    The jitter (each delay drawn from its upper half) keeps a batch that failed together
    from coming back together and hitting a recovering server at once.
    """
    ceiling = min(settings.backoff_max_seconds, settings.backoff_min_seconds * 2.0 ** (attempt - 1))
    draw: float = (rng or random).uniform(0.5, 1.0)
    return max(settings.backoff_min_seconds, ceiling * draw)


def claim_outbox(app: App, now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Claim due (and stuck) outbox rows for the dispatcher; committed when it returns."""
    queue = app.settings.queue
    return store.claim_due(app.db.engine, now or _now(), queue.stuck_seconds, limit or queue.batch)


def release_outbox(app: App, outbox_ids: Sequence[int]) -> int:
    """Hand claimed rows that were never started back to ``pending`` (due now), so the next
    dispatcher sends them at once instead of after ``[queue] stuck_seconds``."""
    with app.db.begin() as conn:
        return store.release(conn, outbox_ids, _now())


def _now() -> datetime:
    return datetime.now(UTC)


def _pending_recipients(row: dict[str, Any]) -> list[str]:
    """Recipients still to send to: not yet accepted, and not refused for good."""
    results = row.get("results") or {}
    done = {"accepted", "refused_perm"}
    return [a for a in row["recipients"] if (results.get(a) or {}).get("state") not in done]


def send_outbound(app: App, outbox_id: int, sender: Sender) -> Attempt | None:
    """Send the row if it is ours to send; None when another worker has it or it is done."""
    # One conditional UPDATE … RETURNING: atomic alone, committed before we talk to the server.
    with app.db.autocommit() as conn:
        row = store.take(conn, outbox_id, _now())
    if row is None:
        return None
    attempt = row["attempts"] + 1
    recipients = _pending_recipients(row)
    raw: bytes | None = None
    if not recipients:
        result = SendResult(Outcome.DELIVERED, None, "every recipient already has it")
    else:
        try:
            raw = app.blobs.get(row["raw_sha256"])
        except Exception as exc:  # the blob store's error is one line already
            result = SendResult(Outcome.PERMANENT, None, f"raw message unreadable: {exc}")
        else:
            try:
                result = sender.send(row["envelope_from"], recipients, raw, row["message_id"])
            except Exception as exc:
                # A bug, not the server: counted as an attempt like any temporary failure, so
                # it ends in `failed` after max_attempts instead of coming back forever.
                log.debug("sending outbox #%d failed", row["id"], exc_info=True)
                reason = f"internal error: {type(exc).__name__}: {one_line(exc)}"
                result = SendResult(Outcome.TEMPORARY, None, reason)
    done = _record(app, row, attempt, recipients, result)
    if done.status == "sent" and raw is not None:
        copy_to_sent(app, raw, row["message_id"])
    return done


def copy_to_sent(app: App, raw: bytes, message_id: str) -> bool:
    """``[smtp] sent_copy``: APPEND the sent message to the executive's Sent folder, so their
    own mail client shows it (the poller recognises it there by its Message-ID).

    After the row is ``sent``, never before: a copy that fails is a warning in the log, not a
    reason to send the mail again.
    """
    target = app.settings.smtp.sent_copy_target
    if target is None:
        return False
    account = app.settings.account(target[0])
    if not isinstance(account, ImapAccount):  # config validation already refuses this
        return False
    try:
        append_message(account, password_for(account), target[1], raw)
    except LeadmailError as exc:
        log.warning("sent copy of %s to %s/%s failed: %s", message_id, *target, exc)
        return False
    return True


def _record(
    app: App, row: dict[str, Any], attempt: int, recipients: list[str], result: SendResult
) -> Attempt:
    """The second short transaction: the row's new status from the attempt's outcome."""
    settings = app.settings.smtp
    outbox_id = row["id"]
    entry = {
        "attempt": attempt,
        "code": result.code,
        "reply": one_line(result.reply),
        "outcome": result.outcome.value,
        "recipients": recipients,
    }
    results = result.results_json()
    retry_more = attempt < settings.max_attempts
    due_at: datetime | None = None
    if result.outcome is Outcome.DELIVERED or (
        result.outcome is Outcome.PARTIAL and not result.retry_recipients
    ):
        status = "sent"
    elif (result.outcome.retry or result.outcome is Outcome.PARTIAL) and retry_more:
        status = "pending"
        due_at = _now() + timedelta(seconds=backoff(settings, attempt))
    else:
        status = "failed"
    # services/outbound.py owns the transitions (and moves the lead to Replied on a send).
    if status == "sent":
        done = outbound.delivered(app, outbox_id, results, entry, _now(), taken=row)
    elif status == "pending":
        assert due_at is not None
        done = outbound.retry_later(app, outbox_id, due_at, result.reply, results, entry, taken=row)
    else:
        error = result.reply
        if result.outcome.retry or result.outcome is Outcome.PARTIAL:
            error = f"{error} (gave up after {attempt} attempts)"
        done = outbound.failed(app, outbox_id, error, results, entry, taken=row)
    if not done:  # a person cancelled it meanwhile? Cannot happen while `sending`; say so
        log.warning("outbox #%d changed while it was being sent; outcome not recorded", outbox_id)
    level = logging.INFO if status == "sent" else logging.WARNING
    log.log(
        level,
        "outbox #%d %s: %s (attempt %d) %s",
        outbox_id,
        row["message_id"],
        status,
        attempt,
        one_line(result.reply),
    )
    return Attempt(
        outbox_id=outbox_id,
        message_id=row["message_id"],
        status=status,
        outcome=result.outcome.value,
        reply=one_line(result.reply),
        attempt=attempt,
        due_at=due_at.isoformat() if due_at is not None else None,
    )
