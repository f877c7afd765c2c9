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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from worker.errors import NotFoundError, ValidationError
from worker.store import leads as lead_store
from worker.store import reminders as store
from worker.store.tables import LeadStatus, ReminderKind, utcnow

if TYPE_CHECKING:  # type-only: `leads show` imports this module, and needs none of them
    from sqlalchemy.orm import Session

    from worker.config import Settings
    from worker.routing.schema import Executive, RuleSet
    from worker.services.context import App
    from worker.services.when import Parsed

    Executor = Session | Connection

KINDS = tuple(k.value for k in ReminderKind)
# A lead in these statuses gets no reminders, and loses the ones it had.
NO_REMINDERS = (LeadStatus.DO_NOT_CONTACT.value, LeadStatus.CONVERTED.value)
TIMELINE_KIND = "reminder"
"""The activities.kind of reminder changes in a lead's timeline."""


def _connection(executor: Executor) -> Connection:
    return executor if isinstance(executor, Connection) else executor.connection()


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


# -- Next Contact Date (leads set) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NextContact:
    """``leads set --next-contact-date WHEN --next-contact-by EXEC --note TEXT`` or
    ``--clear-next-contact``, as typed."""

    when: str | None = None
    by: str | None = None
    note: str | None = None
    clear: bool = False

    @property
    def given(self) -> bool:
        return self.clear or any(v is not None for v in (self.when, self.by, self.note))


def check_next_contact(app: App, request: NextContact, now: datetime) -> Parsed | None:
    """The checks that need no lead: the time (refused when past) and the options' mix."""
    if request.clear and any(v is not None for v in (request.when, request.by, request.note)):
        raise ValidationError(
            "--clear-next-contact cannot go with --next-contact-date/-by or --note", None
        )
    if request.when is None:
        return None
    from worker.services.when import parse_when

    parsed = parse_when(request.when, app.settings.leads.zone_name, now)
    if parsed.utc <= now:
        raise ValidationError(
            f"--next-contact-date {request.when!r} is in the past "
            f"({parsed.local:%Y-%m-%d %H:%M %Z}); give a time still ahead",
            request.when,
        )
    return parsed


def _executive(rules: RuleSet | None, executive_id: str) -> Executive:
    if rules is None:
        raise ValidationError(
            f"unknown executive {executive_id!r}: there is no rule file to name executives "
            "([rules] path)",
            executive_id,
        )
    found = rules.executive(executive_id)
    if found is None:
        known = ", ".join(sorted(rules.executives)) or "none"
        raise ValidationError(
            f"unknown executive {executive_id!r} (the rule file has: {known})", executive_id
        )
    if not found.active:
        raise ValidationError(
            f"executive {executive_id!r} is inactive in the rule file", executive_id
        )
    return found


def apply_next_contact(
    conn: Connection,
    lead: dict[str, Any],
    request: NextContact,
    parsed: Parsed | None,
    rules: RuleSet | None,
    actor: str,
    now: datetime,
    status_after: str,
) -> dict[str, list[Any]]:
    """``leads set``'s next-contact part, in its transaction; the lead's column changes.

    Refused (one line): a Do Not Contact or Converted lead (as it is, or as this same
    command leaves it), an unknown or inactive executive, nothing to move (``--note`` or
    ``--next-contact-by`` alone on a lead without a reminder).
    """
    lead_id = int(lead["id"])
    current = next(
        (r for r in pending_for_lead(conn, lead_id) if r["kind"] == ReminderKind.MANUAL), None
    )
    columns: dict[str, Any] = {}
    if request.clear:
        # Pending, or in the executive's calendar already (then a CANCEL goes out).
        cancel_for(
            conn, lead_id, ReminderKind.MANUAL.value, f"cleared by {actor}", actor=actor, now=now
        )
        columns = {"next_contact_date": None, "next_contact_by": None}
    else:
        if status_after in NO_REMINDERS:
            raise ValidationError(
                f"lead {lead_id} is {status_after}: it gets no reminders", lead_id
            )
        if parsed is None and current is None:
            raise ValidationError(
                f"lead {lead_id} has no next contact to change: give --next-contact-date",
                lead_id,
            )
        if parsed is not None:
            due = parsed.utc
        else:
            assert current is not None  # refused above
            due = _from_iso(current["due_at"])
        executive_id = request.by or (current["executive"] if current else None)
        executive_id = executive_id or lead.get("assigned_to")
        if not executive_id:
            raise ValidationError(
                f"lead {lead_id} is unassigned: say who makes the contact (--next-contact-by)",
                lead_id,
            )
        executive_id = executive_id.strip()
        _executive(rules, executive_id)
        note = request.note if request.note is not None else (current or {}).get("note")
        schedule(
            conn,
            lead_id,
            ReminderKind.MANUAL.value,
            due,
            executive_id,
            f"next contact set by {actor}",
            note,
            created_by=actor,
            now=now,
        )
        columns = {"next_contact_date": due, "next_contact_by": executive_id}
    changes: dict[str, list[Any]] = {}
    for name, value in columns.items():
        old = lead.get(name)
        if _comparable(old) != _comparable(value):
            changes[name] = [_shown(old), _shown(value)]
    if changes:
        lead_store.update_lead(conn, lead_id, columns, now)
    return changes


def _from_iso(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _comparable(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _shown(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


# -- for people: list, show, cancel ---------------------------------------------------------


def list_reminders(
    app: App,
    *,
    due: bool = False,
    executive: str | None = None,
    status: str | None = None,
    lead_id: int | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Reminders soonest first: by default the ones still to go (pending, claimed, sending,
    failed); ``due``: only those whose time has come; ``status``: exactly that status
    ("all" for every row)."""
    if status is None:
        wanted: str | tuple[str, ...] | None = LIVE_STATUSES
    elif status == "all":
        wanted = None
    else:
        wanted = check_status(status)
    with app.db.transaction(write=False) as session:
        rows = store.rows(
            session,
            status=wanted,
            executive=executive,
            due_before=(now or utcnow()) if due else None,
            lead_id=lead_id,
            limit=limit,
        )
    return rows


LIVE_STATUSES = ("pending", "claimed", "sending", "failed")
STATUSES = ("pending", "claimed", "sending", "sent", "failed", "cancelled")


def check_status(status: str) -> str:
    folded = status.strip().lower()
    if folded not in STATUSES:
        raise ValidationError(
            f"unknown reminder status {status!r}; one of: {', '.join(STATUSES)}, all", status
        )
    return folded


def show_reminder(app: App, reminder_id: int) -> dict[str, Any]:
    with app.db.transaction(write=False) as session:
        row = store.get(session, reminder_id)
    if row is None:
        raise NotFoundError(f"no reminder {reminder_id}", reminder_id)
    return row


def cancel_reminder(app: App, reminder_id: int, actor: str) -> dict[str, Any]:
    """``reminders cancel``: stops it, or sends METHOD:CANCEL when it reached a calendar.
    A manual reminder's lead loses its Next Contact Date with it."""
    now = utcnow()
    with app.db.begin() as conn:
        row = store.get(conn, reminder_id, lock=True)
        if row is None:
            raise NotFoundError(f"no reminder {reminder_id}", reminder_id)
        changed = cancel_one(conn, reminder_id, f"cancelled by {actor}", actor=actor, now=now)
        if not changed:
            raise ValidationError(
                f"reminder {reminder_id} is {row['status']}"
                + (" (its cancellation is on its way)" if row["method"] == "CANCEL" else "")
                + ": nothing to cancel",
                reminder_id,
            )
        if row["kind"] == ReminderKind.MANUAL:
            lead_store.update_lead(
                conn, row["lead_id"], {"next_contact_date": None, "next_contact_by": None}, now
            )
        after = store.get(conn, reminder_id)
    assert after is not None
    return after


def move_for_merge(conn: Connection, keep: int, other: int, actor: str, now: datetime) -> list[int]:
    """``leads merge``: OTHER's reminders go to KEEP, one per kind; a kind KEEP has already
    keeps KEEP's, and OTHER's is cancelled. The ids cancelled."""
    left = store.move_to_lead(conn, other, keep, now)
    cancelled: list[int] = []
    for reminder_id in left:
        cancelled += cancel_one(
            conn,
            reminder_id,
            f"lead {other} merged into lead {keep}, which has its own",
            actor=actor,
            now=now,
        )
    return cancelled
