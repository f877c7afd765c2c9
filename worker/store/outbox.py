"""The outbox table: outbound mail waiting, claimed, sent or failed (plain dicts in and out).

The database owns the work; the broker only carries ids (ARCHITECTURE.md, principle 1).
Every state change is one conditional UPDATE, so two dispatchers, two workers or a worker
and a person typing ``outbox cancel`` can never both win.

API (the delivery side codes against exactly this):

Every function takes an ORM ``Session`` or a Core ``Connection`` (the caller's transaction).

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
- ``release(session, ids, now) -> int`` — ``claimed`` rows back to ``pending`` (an in-process
  worker that stops hands back what it never started).
- ``mark_bounced(session, message_id, error, now) -> dict | None`` — a ``sent`` (or
  ``sending``/``failed``) row named by a bounce becomes ``bounced``; returns the row.

For ``services/outbound.py``, reads of the lead a mail goes to:

- ``lead_for_mail(conn, lead_id) -> dict | None`` — the lead's fields, locked (PostgreSQL).
- ``thread_parent(conn, lead_id) -> (message_id, references) | None`` — the lead's latest
  conversation message (received, or sent by us), the one a new mail replies to.

Statuses: pending → claimed → sending → sent | failed | (pending again, retry);
pending/claimed → cancelled; sent → bounced; failed → pending (``outbox retry``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, bindparam, or_, select, update
from sqlalchemy import insert as insert_

from worker.store import claims, tables
from worker.store.fast import FastStatement
from worker.store.tables import OutboxStatus, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    # Only Core statements here, so services with a Session and ones with a Connection
    # share them (and `leads show` reads the outbox without importing the ORM).
    Executor = Session | Connection

_TABLE = tables.outbox
_leads = tables.leads
_messages = tables.messages
# A row can still change after these (bounced, requeued), but no worker may touch it.
_IN_FLIGHT = (OutboxStatus.CLAIMED, OutboxStatus.SENDING)

_COLUMNS = (
    "id", "lead_id", "message_row_id", "message_id", "executive", "envelope_from",
    "recipients", "subject", "raw_sha256", "status", "attempts", "due_at", "claimed_at",
    "sent_at", "last_error", "results", "log", "reason", "created_by", "created_at",
    "updated_at",
)  # fmt: skip
_TIMES = ("due_at", "claimed_at", "sent_at", "created_at", "updated_at")


def as_dict(row: Any) -> dict[str, Any]:
    """A row as plain values: times as ISO text, JSON columns as fresh lists and dicts."""
    out = {name: row._mapping[name] for name in _COLUMNS}
    for name in _TIMES:
        out[name] = out[name].isoformat() if out[name] is not None else None
    out["recipients"] = list(out["recipients"] or [])
    out["results"] = dict(out["results"] or {})
    out["log"] = list(out["log"] or [])
    return out


def _as_dict_fast(values: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(_ALL_COLUMNS, values, strict=True))
    for name in _TIMES:
        out[name] = out[name].isoformat() if out[name] is not None else None
    out["recipients"] = list(out["recipients"] or [])
    out["results"] = dict(out["results"] or {})
    out["log"] = list(out["log"] or [])
    return {name: out[name] for name in _COLUMNS}


# The worker's per-message statements, compiled once (store/fast.py): through Core's
# per-call machinery they cost more than the SMTP exchange they frame.
_ALL_COLUMNS = tuple(column.name for column in _TABLE.c)
_TAKE = FastStatement(
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("oid"), _TABLE.c.status == OutboxStatus.CLAIMED.value)
    .values(
        status=OutboxStatus.SENDING.value,
        claimed_at=bindparam("now", type_=_TABLE.c.claimed_at.type),
        updated_at=bindparam("now", type_=_TABLE.c.updated_at.type),
    )
    .returning(*_TABLE.c)
)
_FINISH_QUERY = select(_TABLE.c.attempts, _TABLE.c.results, _TABLE.c.log, _TABLE.c.status).where(
    _TABLE.c.id == bindparam("oid")
)
_FINISH_READ = {
    "postgresql": FastStatement(_FINISH_QUERY.with_for_update()),
    "sqlite": FastStatement(_FINISH_QUERY),  # the caller's BEGIN IMMEDIATE holds the lock
}
_FINISH_WRITE: dict[tuple[frozenset[str], bool], FastStatement] = {}
_GET = FastStatement(select(_TABLE).where(_TABLE.c.id == bindparam("oid")))
_GET_LOCKED = FastStatement(select(_TABLE).where(_TABLE.c.id == bindparam("oid")).with_for_update())
# IN (…) expands at execution time, which a compiled-once statement cannot do.
_IN_FLIGHT_NOW = or_(*(_TABLE.c.status == state.value for state in _IN_FLIGHT))


def insert(executor: Executor, **fields: Any) -> int:
    now = utcnow()
    values: dict[str, Any] = {
        "message_row_id": None,
        "executive": None,
        "recipients": [],
        "subject": "",
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "due_at": now,
        "claimed_at": None,
        "sent_at": None,
        "last_error": None,
        "results": {},
        "log": [],
        "reason": None,
        "created_by": None,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    outbox_id = executor.execute(insert_(_TABLE).returning(_TABLE.c.id), values).scalar_one()
    return int(outbox_id)


def claim_due(engine: Engine, now: datetime, stuck_seconds: float, limit: int) -> list[int]:
    """Claim what is due and commit; see the module docstring."""
    return claims.claim_due(engine, _TABLE, now, stuck_seconds, limit)


def take(executor: Executor, outbox_id: int, now: datetime) -> dict[str, Any] | None:
    """Claimed → sending for exactly one worker; see the module docstring."""
    if isinstance(executor, Connection):  # the worker's hot path: see store/fast.py
        params = {"oid": outbox_id, "now": now}
        found = _TAKE.first(executor, params)
        return _as_dict_fast(found) if found is not None else None
    taken = executor.execute(
        update(_TABLE)
        .where(_TABLE.c.id == outbox_id, _TABLE.c.status == OutboxStatus.CLAIMED)
        .values(status=OutboxStatus.SENDING, claimed_at=now, updated_at=now)
        .returning(*_TABLE.c)
    ).first()
    return as_dict(taken) if taken is not None else None


def get(executor: Executor, outbox_id: int, lock: bool = False) -> dict[str, Any] | None:
    if isinstance(executor, Connection):  # the worker's hot path: see store/fast.py
        found = (_GET_LOCKED if lock else _GET).first(executor, {"oid": outbox_id})
        return _as_dict_fast(found) if found is not None else None
    query = select(_TABLE).where(_TABLE.c.id == outbox_id)
    if lock:
        query = query.with_for_update()
    row = executor.execute(query).first()
    return as_dict(row) if row is not None else None


def by_message_id(executor: Executor, message_id: str) -> dict[str, Any] | None:
    row = executor.execute(select(_TABLE).where(_TABLE.c.message_id == message_id)).first()
    return as_dict(row) if row is not None else None


def rows(
    executor: Executor,
    status: str | None = None,
    lead_id: int | Sequence[int] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first."""
    query = select(_TABLE).order_by(_TABLE.c.id.desc())
    if status is not None:
        query = query.where(_TABLE.c.status == status)
    if isinstance(lead_id, int):
        query = query.where(_TABLE.c.lead_id == lead_id)
    elif lead_id is not None:
        query = query.where(_TABLE.c.lead_id.in_(list(lead_id)))
    if limit is not None:
        query = query.limit(limit)
    return [as_dict(row) for row in executor.execute(query)]


def for_lead(executor: Executor, lead_id: int) -> dict[int, dict[str, Any]]:
    """Outbox status and recipients of the lead's outbound messages, by messages row id."""
    query = select(
        _TABLE.c.id,
        _TABLE.c.message_row_id,
        _TABLE.c.status,
        _TABLE.c.recipients,
        _TABLE.c.sent_at,
        _TABLE.c.last_error,
    ).where(_TABLE.c.lead_id == lead_id, _TABLE.c.message_row_id.is_not(None))
    return {
        row.message_row_id: {
            "outbox_id": row.id,
            "outbox_status": row.status,
            "recipients": list(row.recipients or []),
            "sent_at": row.sent_at.isoformat() if row.sent_at is not None else None,
            "last_error": row.last_error,
        }
        for row in executor.execute(query)
    }


def _finish(
    executor: Executor,
    outbox_id: int,
    *,
    results: dict[str, Any],
    log_entry: dict[str, Any],
    values: dict[str, Any],
    taken: Mapping[str, Any] | None = None,
) -> bool:
    """Read-modify-write of one row's JSON columns, under its row lock (PostgreSQL) or the
    write lock the caller's BEGIN IMMEDIATE holds (SQLite); only a row still in flight.

    With ``taken`` (the row as `take` returned it, to the worker that took it) there is
    nothing to read: the row cannot have changed since, unless the dispatcher claimed it
    again after stuck_seconds, which the fence on ``claimed_at`` detects (False).
    """
    if taken is not None and isinstance(executor, Connection):
        row: dict[str, Any] | None = {
            "attempts": taken["attempts"],
            "results": taken["results"],
            "log": taken["log"],
            "status": OutboxStatus.SENDING.value,
        }
        fence: dict[str, Any] | None = {"claimed": datetime.fromisoformat(taken["claimed_at"])}
    elif isinstance(executor, Connection):
        found = _FINISH_READ[executor.dialect.name].first(executor, {"oid": outbox_id})
        names = ("attempts", "results", "log", "status")
        row = None if found is None else dict(zip(names, found, strict=True))
        fence = None
    else:
        read = executor.execute(
            select(_TABLE.c.attempts, _TABLE.c.results, _TABLE.c.log, _TABLE.c.status)
            .where(_TABLE.c.id == outbox_id)
            .with_for_update()
        ).first()
        row = None if read is None else dict(read._mapping)
        fence = None
    if row is None or row["status"] not in _IN_FLIGHT:
        return False
    attempt = row["attempts"] + 1
    now = utcnow()
    entry = {"at": now.isoformat(), "attempt": attempt, **log_entry}
    changes = {
        "attempts": attempt,
        "results": {**(row["results"] or {}), **results},
        "log": [*(row["log"] or []), entry],
        "updated_at": now,
        **values,
    }
    if isinstance(executor, Connection):
        statement = _finish_statement(frozenset(changes), fenced=fence is not None)
        params = {"oid": outbox_id, **{f"v_{k}": v for k, v in changes.items()}, **(fence or {})}
        return statement.first(executor, params) is not None
    done = executor.execute(
        update(_TABLE)
        .where(_TABLE.c.id == outbox_id, _TABLE.c.status.in_(_IN_FLIGHT))
        .values(**changes)
        .returning(_TABLE.c.id)
    ).first()
    return done is not None


def _finish_statement(columns: frozenset[str], *, fenced: bool) -> FastStatement:
    """The UPDATE of `_finish` for these columns, compiled once; ``fenced``: only the row
    still ``sending`` since the very take (same ``claimed_at``)."""
    key = (columns, fenced)
    statement = _FINISH_WRITE.get(key)
    if statement is None:
        where = (
            and_(
                _TABLE.c.status == OutboxStatus.SENDING.value,
                _TABLE.c.claimed_at == bindparam("claimed", type_=_TABLE.c.claimed_at.type),
            )
            if fenced
            else _IN_FLIGHT_NOW
        )
        statement = _FINISH_WRITE[key] = FastStatement(
            update(_TABLE)
            .where(_TABLE.c.id == bindparam("oid"), where)
            .values({name: bindparam(f"v_{name}", type_=_TABLE.c[name].type) for name in columns})
            .returning(_TABLE.c.id)
        )
    return statement


def mark_sent(
    executor: Executor,
    outbox_id: int,
    results: dict[str, Any],
    log_entry: dict[str, Any],
    sent_at: datetime,
    *,
    taken: Mapping[str, Any] | None = None,
) -> bool:
    return _finish(
        executor,
        outbox_id,
        results=results,
        log_entry=log_entry,
        values={"status": OutboxStatus.SENT, "sent_at": sent_at, "last_error": None},
        taken=taken,
    )


def mark_failed(
    executor: Executor,
    outbox_id: int,
    error: str,
    results: dict[str, Any],
    log_entry: dict[str, Any],
    *,
    taken: Mapping[str, Any] | None = None,
) -> bool:
    return _finish(
        executor,
        outbox_id,
        results=results,
        log_entry=log_entry,
        values={"status": OutboxStatus.FAILED, "last_error": error},
        taken=taken,
    )


def mark_retry(
    executor: Executor,
    outbox_id: int,
    due_at: datetime,
    error: str,
    results: dict[str, Any],
    log_entry: dict[str, Any],
    *,
    taken: Mapping[str, Any] | None = None,
) -> bool:
    return _finish(
        executor,
        outbox_id,
        results=results,
        log_entry=log_entry,
        values={
            "status": OutboxStatus.PENDING,
            "due_at": due_at,
            "claimed_at": None,
            "last_error": error,
        },
        taken=taken,
    )


def _move(
    executor: Executor, outbox_id: int, from_states: Sequence[str], values: dict[str, Any]
) -> bool:
    moved = executor.execute(
        update(_TABLE)
        .where(_TABLE.c.id == outbox_id, _TABLE.c.status.in_(list(from_states)))
        .values(**values)
        .returning(_TABLE.c.id)
    ).first()
    return moved is not None


def cancel(executor: Executor, outbox_id: int, now: datetime) -> bool:
    return _move(
        executor,
        outbox_id,
        (OutboxStatus.PENDING, OutboxStatus.CLAIMED),
        {"status": OutboxStatus.CANCELLED, "updated_at": now},
    )


def requeue(executor: Executor, outbox_id: int, now: datetime) -> bool:
    return _move(
        executor,
        outbox_id,
        (OutboxStatus.FAILED,),
        {"status": OutboxStatus.PENDING, "due_at": now, "claimed_at": None, "updated_at": now},
    )


def release(executor: Executor, outbox_ids: Sequence[int], now: datetime) -> int:
    """Claimed rows back to ``pending``, due now: a worker stopping cleanly hands back what it
    claimed and never started (a ``sending`` row is not touched). How many moved."""
    if not outbox_ids:
        return 0
    moved = executor.execute(
        update(_TABLE)
        .where(_TABLE.c.id.in_(list(outbox_ids)), _TABLE.c.status == OutboxStatus.CLAIMED)
        .values(status=OutboxStatus.PENDING, due_at=now, claimed_at=None, updated_at=now)
        .returning(_TABLE.c.id)
    ).all()
    return len(moved)


def mark_bounced(
    executor: Executor, message_id: str, error: str, now: datetime
) -> dict[str, Any] | None:
    """The row a bounce names becomes ``bounced`` (with the bounce's reason); returns it,
    unchanged when it was never handed to a server (pending, cancelled) or bounced already."""
    row = executor.execute(
        select(_TABLE.c.id).where(_TABLE.c.message_id == message_id).with_for_update()
    ).first()
    if row is None:
        return None
    _move(
        executor,
        row.id,
        (OutboxStatus.SENT, OutboxStatus.SENDING, OutboxStatus.FAILED),
        {"status": OutboxStatus.BOUNCED, "last_error": error, "updated_at": now},
    )
    return get(executor, row.id)


# -- the lead a mail goes to --------------------------------------------------------------

_LEAD_FIELDS = (
    "id", "person_name", "company_name", "email", "email_key", "status", "source", "gender",
    "phone", "mobile", "website", "organization_domain", "lead_type", "market_segment",
    "industry", "territory", "assigned_to", "email_bouncing", "custom_fields",
    "merged_into_id",
)  # fmt: skip
# Messages that are part of the conversation: never a bounce or a duplicate to reply to.
_CONVERSATION = ("created", "threaded", "outbound")


def lead_for_mail(executor: Executor, lead_id: int) -> dict[str, Any] | None:
    """What a mail to the lead needs of it; the row stays locked (PostgreSQL) until the end
    of the transaction, so a status change made meanwhile cannot slip past the refusals."""
    if isinstance(executor, Connection):  # also on the worker's hot path (delivered)
        values = _LEAD_FOR_MAIL.first(executor, {"lead_id": lead_id})
        if values is None:
            return None
        found = dict(zip(_LEAD_FIELDS, values, strict=True))
    else:
        row = executor.execute(_LEAD_FOR_MAIL_QUERY, {"lead_id": lead_id}).first()
        if row is None:
            return None
        found = dict(row._mapping)
    found["custom_fields"] = dict(found["custom_fields"] or {})
    return found


_LEAD_FOR_MAIL_QUERY = (
    select(*(_leads.c[name] for name in _LEAD_FIELDS))
    .where(_leads.c.id == bindparam("lead_id"))
    .with_for_update()
)
_LEAD_FOR_MAIL = FastStatement(_LEAD_FOR_MAIL_QUERY)


def lead_status(executor: Executor, lead_id: int) -> str | None:
    """The lead's status, its row locked (PostgreSQL) for a status change in this
    transaction: the worker's check after each send, cheaper than `lead_for_mail`."""
    if isinstance(executor, Connection):
        found = _LEAD_STATUS.first(executor, {"lead_id": lead_id})
    else:
        found = executor.execute(_LEAD_STATUS_QUERY, {"lead_id": lead_id}).first()
    return None if found is None else str(found[0])


_LEAD_STATUS_QUERY = (
    select(_leads.c.status).where(_leads.c.id == bindparam("lead_id")).with_for_update()
)
_LEAD_STATUS = FastStatement(_LEAD_STATUS_QUERY)


def thread_parent(executor: Executor, lead_id: int) -> tuple[str, list[str]] | None:
    """(Message-ID, References) of the lead's latest conversation message, or None."""
    row = executor.execute(
        select(_messages.c.message_id, _messages.c.references)
        .where(_messages.c.lead_id == lead_id, _messages.c.outcome.in_(_CONVERSATION))
        .order_by(_messages.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return str(row.message_id), [str(r) for r in row.references or []]
