"""Reminders: a lead's Next Contact Date, and the follow-up rules' reminders, as due rows.

One reminder per lead and kind (``manual`` for ``leads set --next-contact-date``;
``first_response``, ``escalation``, ``no_reply`` for ``[followups]``): setting another date
moves the row. At its minute the dispatcher claims it and a worker mails the executive a
calendar invitation (services/reminder_delivery.py); a move after delivery sends the
update (same UID, SEQUENCE + 1), a cancel after delivery sends METHOD:CANCEL.

For other services and the follow-up rules, inside the caller's transaction:

- ``schedule(conn, lead_id, kind, due_at, executive, cause, note=None, *, recipient=None,
  created_by=None, now=None) -> int`` — creates or moves the one reminder of that lead and
  kind; the reminder's id. Logged in the lead's timeline. Checks nothing about the lead or
  the executive (the callers do: a person's command refuses a past time, a Do Not Contact
  lead, an unknown executive).
- ``cancel_for(conn, lead_id, kind=None, reason="", *, now=None) -> list[int]`` — cancels
  the lead's reminders (of one kind, of several, or all): pending ones stop, delivered ones
  get a METHOD:CANCEL. The ids it changed. Logged in the timeline.
- ``cancel_on_status(conn, lead_id, status, reason)`` — what a status change must do: Do Not
  Contact and Converted cancel every reminder of the lead.
- ``cancel_on_reply(app_settings, conn, lead_id)`` — a human reply from the lead: with
  ``[followups] cancel_on_reply`` its manual reminder too.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from worker.config import Settings
from worker.errors import ValidationError
from worker.store import leads as lead_store
from worker.store import reminders as store
from worker.store.models import LeadStatus, ReminderKind, utcnow

KINDS = tuple(k.value for k in ReminderKind)
# A lead in these statuses gets no reminders, and loses the ones it had.
NO_REMINDERS = (LeadStatus.DO_NOT_CONTACT.value, LeadStatus.CONVERTED.value)
TIMELINE_KIND = "reminder"
"""The activities.kind of reminder changes in a lead's timeline."""

Executor = Session | Connection


def _connection(executor: Executor) -> Connection:
    return executor.connection() if isinstance(executor, Session) else executor


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValidationError(f"unknown reminder kind {kind!r}; one of: {', '.join(KINDS)}", kind)
    return kind


def new_uid() -> str:
    """A calendar UID: random once, then stable for the reminder (RFC 7986 recommends a
    UUID; an id made from the lead would come back for a new lead after an erase)."""
    return f"{uuid.uuid4()}@leadmail"


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def schedule(
    executor: Executor,
    lead_id: int,
    kind: str,
    due_at: datetime,
    executive: str | None,
    cause: str | None,
    note: str | None = None,
    *,
    recipient: str | None = None,
    created_by: str | None = None,
    now: datetime | None = None,
) -> int:
    """Create or move the one reminder of (lead, kind); its id. See the module docstring."""
    check_kind(kind)
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    now = now or utcnow()
    conn = _connection(executor)
    row, what = store.upsert(
        conn,
        lead_id=lead_id,
        kind=kind,
        due_at=due_at.astimezone(UTC),
        executive=executive,
        recipient=recipient,
        cause=cause,
        note=note,
        created_by=created_by,
        ical_uid=new_uid(),
        now=now,
    )
    who = executive or recipient or "nobody"
    verb = {"created": "set", "renewed": "set"}.get(what, "moved")
    summary = f"reminder #{row['id']} ({kind}) {verb}: {_when(due_at)} for {who}"
    if what == "updated":
        summary += f" (calendar update, SEQUENCE {row['sequence']})"
    if created_by:
        summary += f", by {created_by}"
    lead_store.record_activity(
        conn,
        lead_id,
        kind=TIMELINE_KIND,
        summary=summary,
        actor=created_by,
        details={
            "reminder_id": row["id"],
            "reminder_kind": kind,
            "change": what,
            "due_at": due_at.astimezone(UTC).isoformat(),
            "executive": executive,
            "cause": cause,
        },
        now=now,
    )
    return int(row["id"])


def cancel_for(
    executor: Executor,
    lead_id: int,
    kind: str | Sequence[str] | None = None,
    reason: str = "",
    *,
    actor: str | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Cancel the lead's live reminders (of ``kind``, or all); the ids changed."""
    kinds: list[str] | None
    if kind is None:
        kinds = None
    elif isinstance(kind, str):
        kinds = [check_kind(kind)]
    else:
        kinds = [check_kind(k) for k in kind]
    now = now or utcnow()
    conn = _connection(executor)
    changed: list[int] = []
    for reminder_id in store.live_ids(conn, lead_id, kinds):
        changed += cancel_one(conn, reminder_id, reason, actor=actor, now=now)
    return changed


def cancel_one(
    conn: Connection,
    reminder_id: int,
    reason: str,
    *,
    actor: str | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Cancel one reminder and log it on its lead; [id] when it changed, else []."""
    now = now or utcnow()
    row = store.get(conn, reminder_id, lock=True)
    if row is None:
        return []
    what = store.cancel(conn, reminder_id, now, reason)
    if what == "unchanged":
        return []
    summary = f"reminder #{reminder_id} ({row['kind']}) cancelled"
    if what == "cancelling":
        summary += " (calendar cancellation sent)"
    if reason:
        summary += f": {reason}"
    lead_store.record_activity(
        conn,
        row["lead_id"],
        kind=TIMELINE_KIND,
        summary=summary,
        actor=actor,
        details={
            "reminder_id": reminder_id,
            "reminder_kind": row["kind"],
            "change": what,
            "reason": reason,
        },
        now=now,
    )
    return [reminder_id]


def cancel_on_status(
    executor: Executor, lead_id: int, status: str, reason: str, *, now: datetime | None = None
) -> list[int]:
    """A lead that becomes Do Not Contact or Converted loses its reminders."""
    if status not in NO_REMINDERS:
        return []
    return cancel_for(executor, lead_id, None, reason or f"lead is {status}", now=now)


def cancel_on_reply(
    settings: Settings, executor: Executor, lead_id: int, *, now: datetime | None = None
) -> list[int]:
    """A human reply from the lead: its manual reminder goes only with ``cancel_on_reply``."""
    if not settings.followups.cancel_on_reply:
        return []
    return cancel_for(executor, lead_id, ReminderKind.MANUAL.value, "the lead replied", now=now)


def pending_for_lead(executor: Executor, lead_id: int) -> list[dict[str, Any]]:
    """The lead's reminders still to come (a REQUEST not yet sent), soonest first."""
    rows = store.rows(
        _connection(executor), status=("pending", "claimed", "sending", "failed"), lead_id=lead_id
    )
    return [r for r in rows if r["method"] == "REQUEST"]
