"""Notes and activities a person records on a lead; both join its timeline.

A note's place in the timeline is when it was written; an activity's is when it happened
(``--at``), which may be earlier (a call logged afterwards) or later (a meeting planned).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from worker.errors import NotFoundError, ValidationError
from worker.store import leads as lead_store
from worker.store import notes as store

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from worker.services.context import App

ACTIVITY_KINDS = ("call", "meeting", "task")
MAX_DURATION_MINUTES = 7 * 24 * 60  # a week: longer is a typo, not an activity
ACTOR_MAX = 128  # activities.actor, comments.author


def parse_when(value: str) -> datetime:
    """An ISO 8601 time; one without an offset is in this machine's local time zone."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"--at {value!r} is not an ISO 8601 time (e.g. 2026-11-30T14:00 or "
            "2026-11-30T14:00+01:00)",
            value,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # the machine's local zone, DST of that date included
    return parsed.astimezone(UTC)


def check_kind(kind: str) -> str:
    for known in ACTIVITY_KINDS:
        if known == kind.strip().lower():
            return known
    raise ValidationError(
        f"unknown activity kind {kind!r}; one of: {', '.join(ACTIVITY_KINDS)}", kind
    )


def check_duration(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        minutes = int(value.strip())
    except ValueError:
        minutes = -1
    if not 0 < minutes <= MAX_DURATION_MINUTES:
        raise ValidationError(
            f"--duration {value!r} is not a number of minutes from 1 to {MAX_DURATION_MINUTES}",
            value,
        )
    return minutes


def optional_text(value: str | None, what: str, limit: int | None = None) -> str | None:
    """A person's text, trimmed; None when blank. Refused when it holds a NUL (PostgreSQL
    cannot store one) or is longer than its column (``limit``), naming the option."""
    text = (value or "").strip()
    if "\x00" in text:
        raise ValidationError(f"{what} contains a NUL character", value)
    if limit is not None and len(text) > limit:
        raise ValidationError(f"{what} is longer than {limit} characters", value)
    return text or None


def required_text(value: str | None, what: str, limit: int | None = None) -> str:
    text = optional_text(value, what, limit)
    if text is None:
        raise ValidationError(f"{what} is empty", value)
    return text


def check_actor(actor: str) -> str:
    """``--by`` fits the timeline's actor and author columns."""
    return required_text(actor, "--by", ACTOR_MAX)


def live_lead(session: Session | Connection, lead_id: int) -> int:
    """The lead a change to ``lead_id`` goes to: itself, or the lead it was merged into (an
    old id keeps working after a merge); NotFoundError when there is none."""
    current = lead_store.current_id(session, lead_id)
    if current is None:
        raise NotFoundError(f"no lead {lead_id}", lead_id)
    return current


def add_note(app: App, lead_id: int, text: str, actor: str) -> dict[str, Any]:
    body = required_text(text, "the note")
    author = check_actor(actor)
    with app.db.transaction() as session:
        lead_id = live_lead(session, lead_id)
        return store.add_comment(session, lead_id, author=author, text=body, at=datetime.now(UTC))


def add_activity(
    app: App,
    lead_id: int,
    *,
    kind: str,
    at: str,
    summary: str,
    actor: str,
    duration: str | None = None,
    outcome: str | None = None,
) -> dict[str, Any]:
    checked_kind = check_kind(kind)
    when = parse_when(at)
    minutes = check_duration(duration)
    text = required_text(summary, "--summary")
    note = optional_text(outcome, "--outcome")
    who = check_actor(actor)
    details: dict[str, Any] = {"recorded_at": datetime.now(UTC).isoformat()}
    if minutes is not None:
        details["duration_minutes"] = minutes
    if note is not None:
        details["outcome"] = note
    with app.db.transaction() as session:
        lead_id = live_lead(session, lead_id)
        return store.add_activity(
            session, lead_id, kind=checked_kind, summary=text, actor=who, details=details, at=when
        )


def log_change(
    session: Session, lead_id: int, *, kind: str, summary: str, actor: str, details: dict[str, Any]
) -> None:
    """One timeline line for a change a person made to the lead (a contact, an address).

    A ``--by`` that does not fit is refused here, which rolls the change back with it.
    """
    store.add_activity(
        session,
        lead_id,
        kind=kind,
        summary=summary,
        actor=check_actor(actor),
        details=details,
        at=datetime.now(UTC),
    )
