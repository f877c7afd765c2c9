"""Sending one reminder: take it, compose it, talk to the server outside any transaction, record.

The same shape as services/delivery.py for the outbox, through the same transport (`Sender`):
``take`` lets exactly one caller move a ``claimed`` row to ``sending`` (committed before any
SMTP), every other caller finds it taken, done or cancelled and does nothing. The mail is
composed then, from the row and the lead as they are at that moment (mail/reminder.py), with
the Message-ID the row's id and SEQUENCE fix, so a retry after an unknown outcome sends the
same id. The outcome is recorded in a second short transaction: ``sent`` (or ``cancelled``
for a METHOD:CANCEL), back to ``pending`` with backoff for a temporary failure, ``failed``
after ``[smtp] max_attempts`` or at once for a permanent one. If the row was moved or
cancelled while it was being sent, the newer version stays due (store/reminders.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.mail.message import Address
from worker.mail.reminder import ComposedReminder, MessageSummary, ReminderDraft, compose_reminder
from worker.routing.schema import RuleSet
from worker.services.context import App
from worker.services.delivery import Attempt, Sender, backoff
from worker.store import reminders as store
from worker.store.models import ReminderMethod
from worker.transport.smtp import Outcome, SendResult, one_line

log = logging.getLogger("leadmail.reminders")

KIND = "reminders"
"""The job kind's name (jobs/actors.py), as `dispatch --json` reports it."""
MESSAGE_ID = "reminder-{id}-{sequence}@"


class CannotCompose(Exception):
    """A reminder that can never be sent as it is (no address for the executive, …)."""


def _now() -> datetime:
    return datetime.now(UTC)


def claim_reminders(app: App, now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Claim due (and stuck) reminders for the dispatcher; committed when it returns."""
    queue = app.settings.queue
    return store.claim_due(app.db.engine, now or _now(), queue.stuck_seconds, limit or queue.batch)


def release_reminders(app: App, reminder_ids: Sequence[int]) -> int:
    """Claimed reminders an in-process worker never started go back to ``pending``."""
    with app.db.begin() as conn:
        return store.release(conn, reminder_ids, _now())


def id_domain(app: App) -> str:
    """Our Message-ID domain, as for outbound mail: [leads] own_domains[0], else the sender's."""
    domains = app.settings.leads.own_domains
    if domains:
        return domains[0]
    sender = app.settings.smtp.from_address or ""
    return sender.rpartition("@")[2] or "leadmail.invalid"


def _rules(app: App) -> RuleSet | None:
    from worker.services.assignment import rule_book

    return rule_book(app).current()


def _draft(app: App, row: dict[str, Any], now: datetime) -> tuple[ReminderDraft, str]:
    """The draft of the mail for the row, and the address it goes to."""
    smtp = app.settings.smtp
    if not smtp.from_address:
        raise CannotCompose("[smtp] from_address is not set: reminders have no sender")
    rules = _rules(app)
    executive = rules.executive(row["executive"]) if rules and row["executive"] else None
    current = executive.email if executive is not None else None
    if row["method"] == ReminderMethod.CANCEL:
        # The cancellation goes to whoever got the invitation.
        address = row["recipient"] or current
    else:
        address = current or row["recipient"]
    if not address:
        who = row["executive"] or "nobody"
        raise CannotCompose(f"executive {who!r} has no email in the rule file")
    name = executive.name if executive is not None else ""
    zone = (executive.timezone if executive is not None else None) or (app.settings.leads.zone_name)
    with app.db.transaction(write=False) as session:
        lead = store.lead_summary(session, row["lead_id"])
        messages = store.latest_messages(session, row["lead_id"], 3)
    if lead is None:
        raise CannotCompose(f"lead {row['lead_id']} is gone")
    draft = ReminderDraft(
        reminder_id=row["id"],
        kind=row["kind"],
        method=row["method"],
        uid=row["ical_uid"],
        sequence=row["sequence"],
        due_at=datetime.fromisoformat(row["due_at"]),
        zone=zone,
        organizer=Address(smtp.from_name or "", smtp.from_address),
        attendee=Address(name, address),
        id_domain=id_domain(app),
        lead_id=row["lead_id"],
        lead_name=lead["person_name"] or lead["company_name"] or lead["email"] or "",
        company=lead["company_name"],
        status=lead["status"],
        owner=lead["assigned_to"],
        lead_email=lead["email"],
        note=row["note"],
        cause=row["cause"],
        messages=tuple(
            MessageSummary(m["direction"], m["at"], m["sender"], m["subject"], m["text"])
            for m in messages
        ),
        now=now,
    )
    return draft, address


def compose_for(app: App, row: dict[str, Any], now: datetime) -> tuple[ComposedReminder, str]:
    """The mail a row stands for now (tests and `reminders show` look at it too)."""
    draft, address = _draft(app, row, now)
    return compose_reminder(draft), address


def send_reminder(app: App, reminder_id: int, sender: Sender) -> Attempt | None:
    """Send the reminder if it is ours to send; None when another worker has it or it is done."""
    now = _now()
    template = MESSAGE_ID + id_domain(app)
    with app.db.begin() as conn:
        row = store.take(conn, reminder_id, now, template)
    if row is None:
        return None
    attempt = row["attempts"] + 1
    address: str | None = None
    try:
        composed, address = compose_for(app, row, now)
    except CannotCompose as exc:
        result = SendResult(Outcome.PERMANENT, None, str(exc))
    except Exception as exc:  # a bug or bad data: one line, never a stuck row
        log.debug("composing reminder #%d failed", reminder_id, exc_info=True)
        result = SendResult(Outcome.PERMANENT, None, f"cannot compose: {one_line(exc)}")
    else:
        envelope_from = app.settings.smtp.from_address or address
        try:
            result = sender.send(envelope_from, [address], composed.raw, composed.message_id)
        except Exception as exc:
            log.debug("sending reminder #%d failed", reminder_id, exc_info=True)
            reason = f"internal error: {type(exc).__name__}: {one_line(exc)}"
            result = SendResult(Outcome.TEMPORARY, None, reason)
    return _record(app, row, attempt, address, result)


def _record(
    app: App, row: dict[str, Any], attempt: int, address: str | None, result: SendResult
) -> Attempt:
    settings = app.settings.smtp
    reminder_id = row["id"]
    entry = {
        "code": result.code,
        "reply": one_line(result.reply),
        "outcome": result.outcome.value,
        "method": row["method"],
        "to": address,
        "message_id": row["message_id"],
    }
    due_at: datetime | None = None
    taken_at = datetime.fromisoformat(row["claimed_at"])
    delivered = result.outcome is Outcome.DELIVERED or (
        result.outcome is Outcome.PARTIAL and not result.retry_recipients
    )
    with app.db.begin() as conn:
        if delivered:
            status = "sent"
            done = store.mark_sent(
                conn,
                reminder_id,
                row["sequence"],
                row["method"],
                address,
                entry,
                _now(),
                taken_at=taken_at,
            )
        elif (result.outcome.retry or result.outcome is Outcome.PARTIAL) and (
            attempt < settings.max_attempts
        ):
            status = "pending"
            due_at = _now() + timedelta(seconds=backoff(settings, attempt))
            done = store.mark_retry(conn, reminder_id, row["sequence"], due_at, result.reply, entry)
        else:
            status = "failed"
            error = result.reply
            if result.outcome.retry or result.outcome is Outcome.PARTIAL:
                error = f"{error} (gave up after {attempt} attempts)"
            done = store.mark_failed(
                conn, reminder_id, row["sequence"], error, entry, taken_at=taken_at
            )
        after = store.get(conn, reminder_id)
    if not done:
        log.warning(
            "reminder #%d changed while it was being sent; outcome not recorded", reminder_id
        )
    final = after["status"] if after is not None else status
    level = logging.INFO if status == "sent" else logging.WARNING
    log.log(
        level,
        "reminder #%d %s %s to %s: %s (attempt %d) %s",
        reminder_id,
        row["method"],
        row["message_id"],
        address,
        final,
        attempt,
        one_line(result.reply),
    )
    return Attempt(
        outbox_id=reminder_id,
        message_id=row["message_id"] or "",
        status=status,
        outcome=result.outcome.value,
        reply=one_line(result.reply),
        attempt=attempt,
        due_at=due_at.isoformat() if due_at is not None else None,
        kind=KIND,
    )
