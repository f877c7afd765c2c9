"""The outbox table: outbound mail waiting, claimed, sent or failed (plain dicts in and out).

The database owns the work; the broker only carries ids (ARCHITECTURE.md, principle 1).
Every state change is one conditional UPDATE, so two dispatchers, two workers or a worker
and a person typing ``outbox cancel`` can never both win.

API (the delivery side codes against exactly this):

- ``insert(session, **fields) -> int`` — a new row (``Outbox`` columns; ``status`` pending and
  ``due_at`` now unless given). Flushes, does not commit.
- ``claim_due(engine, now, stuck_seconds, limit) -> list[int]`` — in its own transaction,
  committed before it returns: rows ``pending`` with ``due_at <= now``, and rows ``claimed``
  or ``sending`` whose ``claimed_at < now - stuck_seconds`` (a worker died, Redis lost the
  message), become ``claimed`` with ``claimed_at = now``; their ids, oldest due first.
  PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` inside one ``UPDATE … RETURNING``;
  SQLite: the same ``UPDATE … RETURNING`` under ``BEGIN IMMEDIATE``.
- ``take(session, outbox_id, now) -> dict | None`` — the worker's step before SMTP: a
  ``claimed`` row becomes ``sending`` (``claimed_at = now``) and is returned; None when the
  row is anything else (already sent, cancelled, or taken by another worker), so a message
  enqueued twice is sent once. A ``sending`` row whose worker died is re-claimed by
  ``claim_due`` after ``stuck_seconds``. Commit before talking to the server.
- ``get(session, outbox_id, lock=False) -> dict | None``; ``by_message_id(session, id)``.
- ``rows(session, status=None, lead_id=None, limit=None) -> list[dict]`` — newest first.
- ``for_lead(session, lead_id) -> dict[int, dict]`` — status and recipients by messages row id.
- ``mark_sent(session, outbox_id, results, log_entry, sent_at) -> bool``
- ``mark_failed(session, outbox_id, error, results, log_entry) -> bool``
- ``mark_retry(session, outbox_id, due_at, error, results, log_entry) -> bool`` — back to
  ``pending`` with a later ``due_at``.
  These three need the row ``claimed`` or ``sending``; they add one to ``attempts``, merge
  ``results`` (per recipient: ``{"addr": {"state": accepted|refused_temp|refused_perm,
  "code": int, "reply": str}}``) into the row's and append ``log_entry`` (``{"at",
  "attempt", "code", "reply", "outcome"}``; ``at`` and ``attempt`` are filled in when
  missing) to ``log``. False when the row was not in a state to take it.
- ``cancel(session, outbox_id, now) -> bool`` — only ``pending`` or ``claimed`` (not yet
  handed to SMTP).
- ``requeue(session, outbox_id, now) -> bool`` — ``failed`` back to ``pending``, due now.
- ``mark_bounced(session, message_id, error, now) -> dict | None`` — a ``sent`` (or
  ``sending``/``failed``) row named by a bounce becomes ``bounced``; returns the row.

Statuses: pending → claimed → sending → sent | failed | (pending again, retry);
pending/claimed → cancelled; sent → bounced; failed → pending (``outbox retry``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.orm import Session

from worker.store.models import Outbox, OutboxStatus, table_of, utcnow

_TABLE = table_of(Outbox)
# A row can still change after these (bounced, requeued), but no worker may touch it.
_IN_FLIGHT = (OutboxStatus.CLAIMED, OutboxStatus.SENDING)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def as_dict(row: Outbox) -> dict[str, Any]:
    return {
        "id": row.id,
        "lead_id": row.lead_id,
        "message_row_id": row.message_row_id,
        "message_id": row.message_id,
        "executive": row.executive,
        "envelope_from": row.envelope_from,
        "recipients": list(row.recipients or []),
        "subject": row.subject,
        "raw_sha256": row.raw_sha256,
        "status": row.status,
        "attempts": row.attempts,
        "due_at": _iso(row.due_at),
        "claimed_at": _iso(row.claimed_at),
        "sent_at": _iso(row.sent_at),
        "last_error": row.last_error,
        "results": dict(row.results or {}),
        "log": list(row.log or []),
        "reason": row.reason,
        "created_by": row.created_by,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def insert(session: Session, **fields: Any) -> int:
    fields.setdefault("status", OutboxStatus.PENDING)
    fields.setdefault("due_at", utcnow())
    row = Outbox(**fields)
    session.add(row)
    session.flush()
    return row.id


def claim_due(engine: Engine, now: datetime, stuck_seconds: float, limit: int) -> list[int]:
    """Claim what is due and commit; see the module docstring."""
    stuck_before = now - timedelta(seconds=stuck_seconds)
    due = select(_TABLE.c.id).where(
        or_(
            and_(_TABLE.c.status == OutboxStatus.PENDING, _TABLE.c.due_at <= now),
            and_(_TABLE.c.status.in_(_IN_FLIGHT), _TABLE.c.claimed_at < stuck_before),
        )
    )
    due = due.order_by(_TABLE.c.due_at, _TABLE.c.id).limit(limit)
    if engine.dialect.name == "postgresql":
        # Two dispatchers never wait on each other: each takes the rows the other has not
        # locked. SQLite has no row locks; BEGIN IMMEDIATE serialises the whole statement.
        due = due.with_for_update(skip_locked=True)
    statement = (
        update(_TABLE)
        .where(_TABLE.c.id.in_(due.scalar_subquery()))
        .values(status=OutboxStatus.CLAIMED, claimed_at=now, updated_at=now)
        .returning(_TABLE.c.id, _TABLE.c.due_at)
    )
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            claimed = conn.execute(statement).all()
    return [row.id for row in sorted(claimed, key=lambda r: (r.due_at, r.id))]


def take(session: Session, outbox_id: int, now: datetime) -> dict[str, Any] | None:
    """Claimed → sending for exactly one worker; see the module docstring."""
    result = session.execute(
        update(_TABLE)
        .where(_TABLE.c.id == outbox_id, _TABLE.c.status == OutboxStatus.CLAIMED)
        .values(status=OutboxStatus.SENDING, claimed_at=now, updated_at=now)
        .returning(_TABLE.c.id)
    ).first()
    if result is None:
        return None
    session.expire_all()
    return get(session, outbox_id)


def get(session: Session, outbox_id: int, lock: bool = False) -> dict[str, Any] | None:
    query = select(Outbox).where(Outbox.id == outbox_id)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).first()
    return as_dict(row) if row is not None else None


def by_message_id(session: Session, message_id: str) -> dict[str, Any] | None:
    row = session.scalars(select(Outbox).where(Outbox.message_id == message_id)).first()
    return as_dict(row) if row is not None else None


def rows(
    session: Session,
    status: str | None = None,
    lead_id: int | Sequence[int] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    query = select(Outbox).order_by(Outbox.id.desc())
    if status is not None:
        query = query.where(Outbox.status == status)
    if isinstance(lead_id, int):
        query = query.where(Outbox.lead_id == lead_id)
    elif lead_id is not None:
        query = query.where(Outbox.lead_id.in_(list(lead_id)))
    if limit is not None:
        query = query.limit(limit)
    return [as_dict(row) for row in session.scalars(query)]


def for_lead(session: Session, lead_id: int) -> dict[int, dict[str, Any]]:
    """Outbox status and recipients of the lead's outbound messages, by messages row id."""
    query = select(
        Outbox.id, Outbox.message_row_id, Outbox.status, Outbox.recipients, Outbox.sent_at
    ).where(Outbox.lead_id == lead_id, Outbox.message_row_id.is_not(None))
    return {
        row.message_row_id: {
            "outbox_id": row.id,
            "status": row.status,
            "recipients": list(row.recipients or []),
            "sent_at": _iso(row.sent_at),
        }
        for row in session.execute(query)
    }


def _finish(
    session: Session,
    outbox_id: int,
    *,
    from_states: Sequence[str],
    results: dict[str, Any],
    log_entry: dict[str, Any],
    values: dict[str, Any],
) -> bool:
    """Read-modify-write of one row's JSON columns, under its row lock (PostgreSQL) or the
    write lock the caller's BEGIN IMMEDIATE holds (SQLite)."""
    row = session.scalars(select(Outbox).where(Outbox.id == outbox_id).with_for_update()).first()
    if row is None or row.status not in from_states:
        return False
    attempt = row.attempts + 1
    entry = {"at": utcnow().isoformat(), "attempt": attempt, **log_entry}
    merged = {**(row.results or {}), **results}
    session.execute(
        update(_TABLE)
        .where(_TABLE.c.id == outbox_id)
        .values(
            attempts=attempt,
            results=merged,
            log=[*(row.log or []), entry],
            updated_at=utcnow(),
            **values,
        )
    )
    session.expire(row)
    return True


def mark_sent(
    session: Session,
    outbox_id: int,
    results: dict[str, Any],
    log_entry: dict[str, Any],
    sent_at: datetime,
) -> bool:
    return _finish(
        session,
        outbox_id,
        from_states=_IN_FLIGHT,
        results=results,
        log_entry=log_entry,
        values={"status": OutboxStatus.SENT, "sent_at": sent_at, "last_error": None},
    )


def mark_failed(
    session: Session,
    outbox_id: int,
    error: str,
    results: dict[str, Any],
    log_entry: dict[str, Any],
) -> bool:
    return _finish(
        session,
        outbox_id,
        from_states=_IN_FLIGHT,
        results=results,
        log_entry=log_entry,
        values={"status": OutboxStatus.FAILED, "last_error": error},
    )


def mark_retry(
    session: Session,
    outbox_id: int,
    due_at: datetime,
    error: str,
    results: dict[str, Any],
    log_entry: dict[str, Any],
) -> bool:
    return _finish(
        session,
        outbox_id,
        from_states=_IN_FLIGHT,
        results=results,
        log_entry=log_entry,
        values={
            "status": OutboxStatus.PENDING,
            "due_at": due_at,
            "claimed_at": None,
            "last_error": error,
        },
    )


def _move(
    session: Session, outbox_id: int, from_states: Sequence[str], values: dict[str, Any]
) -> bool:
    result = session.execute(
        update(_TABLE)
        .where(_TABLE.c.id == outbox_id, _TABLE.c.status.in_(list(from_states)))
        .values(**values)
        .returning(_TABLE.c.id)
    ).first()
    session.expire_all()
    return result is not None


def cancel(session: Session, outbox_id: int, now: datetime) -> bool:
    return _move(
        session,
        outbox_id,
        (OutboxStatus.PENDING, OutboxStatus.CLAIMED),
        {"status": OutboxStatus.CANCELLED, "updated_at": now},
    )


def requeue(session: Session, outbox_id: int, now: datetime) -> bool:
    return _move(
        session,
        outbox_id,
        (OutboxStatus.FAILED,),
        {"status": OutboxStatus.PENDING, "due_at": now, "claimed_at": None, "updated_at": now},
    )


def mark_bounced(
    session: Session, message_id: str, error: str, now: datetime
) -> dict[str, Any] | None:
    """The row a bounce names becomes ``bounced`` (with the bounce's reason); returns it."""
    row = session.scalars(
        select(Outbox).where(Outbox.message_id == message_id).with_for_update()
    ).first()
    if row is None:
        return None
    if row.status in (OutboxStatus.SENT, OutboxStatus.SENDING, OutboxStatus.FAILED):
        session.execute(
            update(_TABLE)
            .where(_TABLE.c.id == row.id)
            .values(status=OutboxStatus.BOUNCED, last_error=error, updated_at=now)
        )
        session.expire(row)
    return get(session, row.id)
