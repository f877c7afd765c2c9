"""The reminders table: one reminder per lead and kind, due at a minute (plain dicts in and out).

Modelled on ``store/outbox.py``: the database owns the work, the broker only carries ids, and
every state change is one conditional UPDATE, so two dispatchers, two workers, or a worker and
a person moving the date can never both win.

API (``services/reminders.py`` and the follow-up rules code against exactly this). Every
function takes an ORM ``Session`` or a Core ``Connection`` (the caller's transaction) except
``claim_due``, which runs and commits its own.

- ``upsert(conn, *, lead_id, kind, due_at, executive, recipient, cause, note, created_by,
  ical_uid, now) -> (dict, str)`` — the one row of (lead, kind), created or moved to
  ``due_at`` as a pending REQUEST; returns the row afterwards and what happened:
  ``created``, ``moved`` (never delivered: same SEQUENCE), ``updated`` (the REQUEST in the
  calendar, or one being sent now, gets SEQUENCE + 1, same UID) or ``renewed`` (the row's
  last word in the calendar was a CANCEL: a new UID ``ical_uid``). Concurrent first inserts
  meet the unique key: the loser (IntegrityError inside a savepoint) moves the winner's row.
- ``cancel(conn, reminder_id, now, reason) -> str`` — ``cancelled`` (never delivered: the
  row just stops), ``cancelling`` (a REQUEST was delivered or is being sent: a
  METHOD:CANCEL with SEQUENCE + 1 is due now), or ``unchanged`` (cancelled already, or a
  CANCEL on its way). A ``failed`` row is cancelled like a pending one.
- ``claim_due(engine, now, stuck_seconds, limit) -> list[int]`` — exactly the outbox's: rows
  ``pending`` with ``due_at <= now`` and rows ``claimed``/``sending`` whose ``claimed_at`` is
  older than ``stuck_seconds`` become ``claimed`` (PostgreSQL ``FOR UPDATE SKIP LOCKED``
  inside one ``UPDATE … RETURNING``; SQLite the same statement under ``BEGIN IMMEDIATE``),
  committed before it returns; ids oldest due first.
- ``take(conn, reminder_id, now, message_id) -> dict | None`` — claimed → sending for exactly
  one worker; records the Message-ID the send will carry. None when the row is anything else.
- ``release(conn, ids, now) -> int`` — claimed rows an in-process worker never started go
  back to ``pending`` (due as they were).
- ``mark_sent(conn, reminder_id, sequence, method, recipient, log_entry, sent_at,
  taken_at=None) -> bool``
- ``mark_failed(conn, reminder_id, sequence, error, log_entry, taken_at=None) -> bool``
- ``mark_retry(conn, reminder_id, sequence, due_at, error, log_entry, taken_at=None) -> bool``
  Only a ``sending`` row (and, given ``taken_at``, one still held by that take: a row
  claimed and taken again after ``stuck_seconds`` belongs to the later take). Given
  ``taken`` too (``take``'s row, on a Connection), only the common case runs, as one
  compiled UPDATE: False when the row changed meanwhile, and the caller asks again
  without ``taken`` in a transaction;
  ``sequence``/``method`` are what the worker sent (from ``take``'s row). When the row was
  moved or cancelled while it was being sent, its newer version stays due (``pending``)
  instead of being marked done. False when the row was not sending.
- ``get(conn, reminder_id, lock=False)``, ``for_lead(conn, lead_id, kind=None)``,
  ``by_message_id(conn, message_id)``,
  ``rows(conn, status=None, executive=None, due_before=None, lead_id=None, limit=None)``.
- ``live_ids(conn, lead_id, kinds=None) -> list[int]`` — rows whose reminder is still to
  come or is in the calendar (pending/claimed/sending REQUEST, or a sent REQUEST): what a
  lead turning Do Not Contact must cancel.
- ``move_to_lead(conn, from_lead, to_lead, now) -> list[int]`` — a merge: rows of kinds the
  target has no row of are moved; the ids of the others (the caller cancels them).
- ``lead_summary(conn, lead_id)``, ``latest_messages(conn, lead_id, limit)`` — what the
  reminder mail shows of the lead, read when it is sent.

Statuses: pending → claimed → sending → sent | failed | pending (retry, or a newer version);
pending/claimed/failed → cancelled; a sent CANCEL ends ``cancelled``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, String, and_, bindparam, cast, func, or_, select, update
from sqlalchemy import insert as insert_
from sqlalchemy.exc import IntegrityError

from worker.store import claims, tables
from worker.store.fast import FastStatement
from worker.store.tables import ReminderMethod, ReminderStatus, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    # Core statements only: `leads show` reads reminders without importing the ORM.
    Executor = Session | Connection

_TABLE = tables.reminders
_IN_FLIGHT = (ReminderStatus.CLAIMED.value, ReminderStatus.SENDING.value)
_WAITING = (ReminderStatus.PENDING.value, ReminderStatus.CLAIMED.value)

_COLUMNS = (
    "id", "lead_id", "kind", "cause", "executive", "recipient", "due_at", "status",
    "ical_uid", "sequence", "method", "sequence_sent", "method_sent", "message_id", "note",
    "attempts", "last_error", "log", "claimed_at", "sent_at", "created_by", "created_at",
    "updated_at",
)  # fmt: skip
_TIMES = ("due_at", "claimed_at", "sent_at", "created_at", "updated_at")
LOG_MAX = 100
"""Entries kept in a row's log: a reminder moved every day for a year stays small."""


def as_dict(row: Any) -> dict[str, Any]:
    """A row as plain values: times as ISO text (UTC), the log as a fresh list."""
    out = {name: row._mapping[name] for name in _COLUMNS}
    for name in _TIMES:
        out[name] = out[name].isoformat() if out[name] is not None else None
    out["log"] = list(out["log"] or [])
    return out


_ALL_COLUMNS = tuple(column.name for column in _TABLE.c)


def _as_dict_fast(values: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(_ALL_COLUMNS, values, strict=True))
    for name in _TIMES:
        out[name] = out[name].isoformat() if out[name] is not None else None
    out["log"] = list(out["log"] or [])
    return {name: out[name] for name in _COLUMNS}


# The worker's per-reminder statements, compiled once (store/fast.py), as the outbox's.
_MESSAGE_ID = (
    "reminder-"
    + cast(_TABLE.c.id, String)
    + "-"
    + cast(_TABLE.c.sequence, String)
    + bindparam("mid_suffix", type_=String)
)
_TAKE = FastStatement(
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("rid"), _TABLE.c.status == ReminderStatus.CLAIMED.value)
    .values(
        status=ReminderStatus.SENDING.value,
        claimed_at=bindparam("now", type_=_TABLE.c.claimed_at.type),
        updated_at=bindparam("now", type_=_TABLE.c.updated_at.type),
        message_id=_MESSAGE_ID,
    )
    .returning(*_TABLE.c)
)
_FINISH_FAST: dict[frozenset[str], FastStatement] = {}


def _finish_statement(columns: frozenset[str]) -> FastStatement:
    """The fenced UPDATE of a worker's outcome for these columns: only the row still
    ``sending`` since the very take (``claimed_at``) and unchanged since (``sequence`` and
    ``method``); compiled once per set of columns."""
    statement = _FINISH_FAST.get(columns)
    if statement is None:
        statement = _FINISH_FAST[columns] = FastStatement(
            update(_TABLE)
            .where(
                _TABLE.c.id == bindparam("rid"),
                _TABLE.c.status == ReminderStatus.SENDING.value,
                _TABLE.c.claimed_at == bindparam("claimed", type_=_TABLE.c.claimed_at.type),
                _TABLE.c.sequence == bindparam("seq"),
                _TABLE.c.method == bindparam("meth"),
            )
            .values({n: bindparam(f"v_{n}", type_=_TABLE.c[n].type) for n in columns})
            .returning(_TABLE.c.id)
        )
    return statement


def _entry(now: datetime, event: str, **details: Any) -> dict[str, Any]:
    return {"at": now.isoformat(), "event": event, **details}


def _appended(log: Iterable[Any] | None, entry: dict[str, Any]) -> list[Any]:
    return [*(log or []), entry][-LOG_MAX:]


def _delivered_or_in_flight(row: Any) -> bool:
    """Whether the row's current SEQUENCE may already be in someone's calendar."""
    return row.status == ReminderStatus.SENDING or (
        row.sequence_sent is not None and row.sequence_sent == row.sequence
    )


def upsert(
    executor: Executor,
    *,
    lead_id: int,
    kind: str,
    due_at: datetime,
    executive: str | None,
    recipient: str | None,
    cause: str | None,
    note: str | None,
    created_by: str | None,
    ical_uid: str,
    now: datetime | None = None,
) -> tuple[dict[str, Any], str]:
    """Create or move the one reminder of (lead, kind); see the module docstring."""
    now = now or utcnow()
    fields = {
        "due_at": due_at,
        "executive": executive,
        "recipient": recipient,
        "cause": cause,
        "note": note,
    }
    for _ in range(3):
        row = executor.execute(
            select(_TABLE)
            .where(_TABLE.c.lead_id == lead_id, _TABLE.c.kind == kind)
            .with_for_update()
        ).first()
        if row is None:
            try:
                with _savepoint(executor):
                    new_id = executor.execute(
                        insert_(_TABLE).returning(_TABLE.c.id),
                        {
                            **fields,
                            "lead_id": lead_id,
                            "kind": kind,
                            "status": ReminderStatus.PENDING.value,
                            "ical_uid": ical_uid,
                            "sequence": 0,
                            "method": ReminderMethod.REQUEST.value,
                            "sequence_sent": None,
                            "method_sent": None,
                            "message_id": None,
                            "attempts": 0,
                            "last_error": None,
                            "log": [_entry(now, "created", due_at=due_at.isoformat())],
                            "claimed_at": None,
                            "sent_at": None,
                            "created_by": created_by,
                            "created_at": now,
                            "updated_at": now,
                        },
                    ).scalar_one()
            except IntegrityError:
                continue  # someone created it meanwhile: move theirs
            found = get(executor, int(new_id))
            assert found is not None
            return found, "created"
        values: dict[str, Any] = {
            **fields,
            "status": ReminderStatus.PENDING.value,
            "method": ReminderMethod.REQUEST.value,
            "claimed_at": None,
            "last_error": None,
            "attempts": 0,
            "updated_at": now,
        }
        if row.method_sent == ReminderMethod.CANCEL and row.status != ReminderStatus.SENDING:
            # The calendar's last word on the old UID is CANCEL; many clients do not bring a
            # cancelled event back, so this is a new entry.
            what = "renewed"
            values["ical_uid"] = ical_uid
            values["sequence"] = row.sequence + 1
            values["sequence_sent"] = None
            values["method_sent"] = None
        elif row.method_sent is None and row.status != ReminderStatus.SENDING:
            what = "moved"
        elif _delivered_or_in_flight(row):
            what = "updated"
            values["sequence"] = row.sequence + 1
        else:
            # An update (or a CANCEL) is already waiting with a SEQUENCE nobody has seen.
            what = "updated"
        if row.status == ReminderStatus.SENDING:
            # The worker sending the old version keeps the row; mark_sent sees the newer
            # SEQUENCE and leaves it pending for this version.
            values["status"] = ReminderStatus.SENDING.value
            values.pop("claimed_at")
        values["log"] = _appended(
            row.log, _entry(now, what, due_at=due_at.isoformat(), by=created_by)
        )
        executor.execute(update(_TABLE).where(_TABLE.c.id == row.id).values(**values))
        found = get(executor, row.id)
        assert found is not None
        return found, what
    raise RuntimeError(f"reminder of lead {lead_id} ({kind}) kept changing")  # pragma: no cover


class _savepoint:
    """A SAVEPOINT on a Session or a Connection, so a lost insert race keeps the transaction."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.nested: Any = None

    def __enter__(self) -> None:
        self.nested = self.executor.begin_nested()

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            self.nested.commit()
        else:
            self.nested.rollback()


def cancel(executor: Executor, reminder_id: int, now: datetime, reason: str) -> str:
    """Stop a reminder, or send its CANCEL when a REQUEST reached the calendar."""
    row = executor.execute(
        select(_TABLE).where(_TABLE.c.id == reminder_id).with_for_update()
    ).first()
    if row is None:
        return "unchanged"
    if row.status == ReminderStatus.CANCELLED or row.method == ReminderMethod.CANCEL:
        return "unchanged"
    request_out = row.status == ReminderStatus.SENDING or (
        row.method_sent == ReminderMethod.REQUEST
    )
    if not request_out:
        executor.execute(
            update(_TABLE)
            .where(_TABLE.c.id == row.id)
            .values(
                status=ReminderStatus.CANCELLED.value,
                claimed_at=None,
                updated_at=now,
                log=_appended(row.log, _entry(now, "cancelled", reason=reason)),
            )
        )
        return "cancelled"
    values: dict[str, Any] = {
        "method": ReminderMethod.CANCEL.value,
        "due_at": now,
        "last_error": None,
        "attempts": 0,
        "updated_at": now,
        "log": _appended(row.log, _entry(now, "cancelling", reason=reason)),
    }
    # A new SEQUENCE unless the current one was never seen (an update still pending).
    if _delivered_or_in_flight(row):
        values["sequence"] = row.sequence + 1
    if row.status != ReminderStatus.SENDING:
        values["status"] = ReminderStatus.PENDING.value
        values["claimed_at"] = None
    executor.execute(update(_TABLE).where(_TABLE.c.id == row.id).values(**values))
    return "cancelling"


def claim_due(engine: Engine, now: datetime, stuck_seconds: float, limit: int) -> list[int]:
    """Claim what is due and commit; see the module docstring."""
    return claims.claim_due(engine, _TABLE, now, stuck_seconds, limit)


def take(
    executor: Executor, reminder_id: int, now: datetime, id_domain: str | None = None
) -> dict[str, Any] | None:
    """Claimed → sending for exactly one worker; see the module docstring. With
    ``id_domain`` the row's ``message_id`` becomes ``reminder-{id}-{sequence}@{id_domain}``
    in the same statement (atomic alone: run it on an autocommit connection)."""
    if isinstance(executor, Connection) and id_domain is not None:
        found = _TAKE.first(
            executor, {"rid": reminder_id, "now": now, "mid_suffix": f"@{id_domain}"}
        )
        return _as_dict_fast(found) if found is not None else None
    values: dict[str, Any] = {
        "status": ReminderStatus.SENDING.value,
        "claimed_at": now,
        "updated_at": now,
    }
    if id_domain is not None:
        values["message_id"] = _MESSAGE_ID
    taken = executor.execute(
        update(_TABLE)
        .where(_TABLE.c.id == reminder_id, _TABLE.c.status == ReminderStatus.CLAIMED.value)
        .values(**values)
        .returning(*_TABLE.c),
        {"mid_suffix": f"@{id_domain}"} if id_domain is not None else {},
    ).first()
    return as_dict(taken) if taken is not None else None


def release(executor: Executor, reminder_ids: Sequence[int], now: datetime) -> int:
    if not reminder_ids:
        return 0
    done = executor.execute(
        update(_TABLE)
        .where(
            _TABLE.c.id.in_(list(reminder_ids)),
            _TABLE.c.status == ReminderStatus.CLAIMED.value,
        )
        .values(status=ReminderStatus.PENDING.value, claimed_at=None, updated_at=now)
        .returning(_TABLE.c.id)
    ).all()
    return len(done)


def _finish(
    executor: Executor,
    reminder_id: int,
    sequence: int,
    log_entry: dict[str, Any],
    decide: Any,
    taken_at: datetime | None,
    taken: dict[str, Any] | None = None,
) -> bool:
    """Read-modify-write of one sending row under its lock: ``decide(row, changed)`` gives
    the values; ``changed`` when the row was moved or cancelled while it was being sent.
    ``taken_at`` (the take's ``claimed_at``) fences out a worker whose row was claimed and
    taken again by another after ``stuck_seconds``: the later take owns the outcome.

    With ``taken`` (the row as ``take`` returned it) on a Connection, only the usual case
    is tried (nobody touched the row meanwhile): one compiled UPDATE fenced on
    ``claimed_at``, SEQUENCE and method, atomic alone (an autocommit connection will do).
    False when it finds nothing; the caller then calls again without ``taken``, in a
    transaction, and the read-modify-write below decides."""
    if taken is not None:
        if taken_at is None or not isinstance(executor, Connection):
            raise ValueError("the fast path needs taken_at and a Connection")
        now = utcnow()
        attempt = taken["attempts"] + 1
        entry = {"at": now.isoformat(), "attempt": attempt, "sequence": sequence, **log_entry}
        fast_row = SimpleNamespace(**{**taken, "due_at": datetime.fromisoformat(taken["due_at"])})
        values = {
            **decide(fast_row, False),
            "attempts": attempt,
            "log": _appended(taken["log"], entry),
            "updated_at": now,
        }
        params = {
            "rid": reminder_id,
            "claimed": taken_at,
            "seq": sequence,
            "meth": taken["method"],
            **{f"v_{k}": v for k, v in values.items()},
        }
        return _finish_statement(frozenset(values)).first(executor, params) is not None
    row = executor.execute(
        select(_TABLE).where(_TABLE.c.id == reminder_id).with_for_update()
    ).first()
    if row is None or row.status != ReminderStatus.SENDING:
        return False
    if taken_at is not None and row.claimed_at != taken_at:
        return False
    now = utcnow()
    attempt = row.attempts + 1
    entry = {"at": now.isoformat(), "attempt": attempt, "sequence": sequence, **log_entry}
    changed = row.sequence != sequence or row.method != log_entry.get("method", row.method)
    values = decide(row, changed)
    if changed and values["status"] == ReminderStatus.PENDING:
        attempt = 0  # the newer version has not been tried yet
    executor.execute(
        update(_TABLE)
        .where(_TABLE.c.id == reminder_id, _TABLE.c.status == ReminderStatus.SENDING.value)
        .values(attempts=attempt, log=_appended(row.log, entry), updated_at=now, **values)
    )
    return True


def mark_sent(
    executor: Executor,
    reminder_id: int,
    sequence: int,
    method: str,
    recipient: str | None,
    log_entry: dict[str, Any],
    sent_at: datetime,
    taken_at: datetime | None = None,
    taken: dict[str, Any] | None = None,
) -> bool:
    def decide(row: Any, changed: bool) -> dict[str, Any]:
        values: dict[str, Any] = {
            "sequence_sent": sequence,
            "method_sent": method,
            "sent_at": sent_at,
            "recipient": recipient if recipient is not None else row.recipient,
            "last_error": None,
            "claimed_at": None,
        }
        if changed:
            values["status"] = ReminderStatus.PENDING.value  # the newer version is due
        elif method == ReminderMethod.CANCEL:
            values["status"] = ReminderStatus.CANCELLED.value
        else:
            values["status"] = ReminderStatus.SENT.value
        return values

    entry = {"method": method, **log_entry}
    return _finish(executor, reminder_id, sequence, entry, decide, taken_at, taken)


def mark_failed(
    executor: Executor,
    reminder_id: int,
    sequence: int,
    error: str,
    log_entry: dict[str, Any],
    taken_at: datetime | None = None,
    taken: dict[str, Any] | None = None,
) -> bool:
    def decide(row: Any, changed: bool) -> dict[str, Any]:
        if not changed:
            return {"status": ReminderStatus.FAILED.value, "last_error": error}
        if row.method == ReminderMethod.CANCEL and row.method_sent is None:
            # Cancelled while its first send was failing: nothing reached a calendar.
            return {"status": ReminderStatus.CANCELLED.value, "last_error": error}
        return {"status": ReminderStatus.PENDING.value, "last_error": error, "claimed_at": None}

    return _finish(executor, reminder_id, sequence, log_entry, decide, taken_at, taken)


def mark_retry(
    executor: Executor,
    reminder_id: int,
    sequence: int,
    due_at: datetime,
    error: str,
    log_entry: dict[str, Any],
    taken_at: datetime | None = None,
    taken: dict[str, Any] | None = None,
) -> bool:
    def decide(row: Any, changed: bool) -> dict[str, Any]:
        if changed and row.method == ReminderMethod.CANCEL and row.method_sent is None:
            # Cancelled while its first send was being tried: the CANCEL still goes, since
            # the server may have taken the REQUEST.
            return {
                "status": ReminderStatus.PENDING.value,
                "last_error": error,
                "claimed_at": None,
            }
        return {
            "status": ReminderStatus.PENDING.value,
            "due_at": due_at if not changed else max(due_at, row.due_at),
            "last_error": error,
            "claimed_at": None,
        }

    return _finish(executor, reminder_id, sequence, log_entry, decide, taken_at, taken)


def get(executor: Executor, reminder_id: int, lock: bool = False) -> dict[str, Any] | None:
    query = select(_TABLE).where(_TABLE.c.id == reminder_id)
    if lock:
        query = query.with_for_update()
    row = executor.execute(query).first()
    return as_dict(row) if row is not None else None


def by_message_id(executor: Executor, message_id: str) -> dict[str, Any] | None:
    row = executor.execute(
        select(_TABLE).where(_TABLE.c.message_id == message_id).order_by(_TABLE.c.id).limit(1)
    ).first()
    return as_dict(row) if row is not None else None


def for_lead(executor: Executor, lead_id: int, kind: str | None = None) -> list[dict[str, Any]]:
    query = select(_TABLE).where(_TABLE.c.lead_id == lead_id).order_by(_TABLE.c.id)
    if kind is not None:
        query = query.where(_TABLE.c.kind == kind)
    return [as_dict(row) for row in executor.execute(query)]


def rows(
    executor: Executor,
    status: str | Sequence[str] | None = None,
    executive: str | None = None,
    due_before: datetime | None = None,
    lead_id: int | Sequence[int] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Soonest due first."""
    query = select(_TABLE).order_by(_TABLE.c.due_at, _TABLE.c.id)
    if isinstance(status, str):
        query = query.where(_TABLE.c.status == status)
    elif status is not None:
        query = query.where(_TABLE.c.status.in_(list(status)))
    if executive is not None:
        query = query.where(_TABLE.c.executive == executive)
    if due_before is not None:
        query = query.where(_TABLE.c.due_at <= due_before)
    if isinstance(lead_id, int):
        query = query.where(_TABLE.c.lead_id == lead_id)
    elif lead_id is not None:
        query = query.where(_TABLE.c.lead_id.in_(list(lead_id)))
    if limit is not None:
        query = query.limit(limit)
    return [as_dict(row) for row in executor.execute(query)]


def live_ids(executor: Executor, lead_id: int, kinds: Sequence[str] | None = None) -> list[int]:
    """Rows still to come or standing in a calendar, which a cancel has something to do to."""
    query = select(_TABLE.c.id).where(
        _TABLE.c.lead_id == lead_id,
        _TABLE.c.method == ReminderMethod.REQUEST.value,
        or_(
            _TABLE.c.status.in_(
                (*_WAITING, ReminderStatus.SENDING.value, ReminderStatus.FAILED.value)
            ),
            and_(
                _TABLE.c.status == ReminderStatus.SENT.value,
                _TABLE.c.method_sent == ReminderMethod.REQUEST.value,
            ),
        ),
    )
    if kinds is not None:
        query = query.where(_TABLE.c.kind.in_(list(kinds)))
    return [int(r.id) for r in executor.execute(query.order_by(_TABLE.c.id))]


def move_to_lead(executor: Executor, from_lead: int, to_lead: int, now: datetime) -> list[int]:
    """A merge: the merged lead's rows of kinds the target lacks go to the target; returns
    the ids left behind (the target has its own of that kind)."""
    taken = {
        r.kind for r in executor.execute(select(_TABLE.c.kind).where(_TABLE.c.lead_id == to_lead))
    }
    left: list[int] = []
    for row in executor.execute(
        select(_TABLE.c.id, _TABLE.c.kind).where(_TABLE.c.lead_id == from_lead)
    ).all():
        if row.kind in taken:
            left.append(int(row.id))
            continue
        executor.execute(
            update(_TABLE).where(_TABLE.c.id == row.id).values(lead_id=to_lead, updated_at=now)
        )
    return left


# -- what a reminder mail shows ------------------------------------------------------------

_leads = tables.leads
_messages = tables.messages
# Messages of the conversation: never a bounce, a duplicate or an ignored one.
_CONVERSATION = ("created", "threaded", "outbound")
BODY_CHARS = 2000


_SUMMARY_COLUMNS = ("id", "person_name", "company_name", "email", "status", "assigned_to")
_SUMMARY = FastStatement(
    select(*(_leads.c[n] for n in _SUMMARY_COLUMNS)).where(_leads.c.id == bindparam("lid"))
)
_LATEST = FastStatement(
    select(
        _messages.c.direction,
        _messages.c.sent_at,
        _messages.c.created_at,
        _messages.c.sender,
        _messages.c.subject,
        func.substr(_messages.c.body_text, 1, BODY_CHARS).label("text"),
    )
    .where(
        _messages.c.lead_id == bindparam("lid"),
        # IN (…) expands at execution time, which a compiled-once statement cannot do.
        or_(*(_messages.c.outcome == outcome for outcome in _CONVERSATION)),
    )
    .order_by(_messages.c.id.desc())
    .limit(bindparam("n"))
)


def lead_summary(executor: Executor, lead_id: int) -> dict[str, Any] | None:
    """The lead's fields a reminder shows."""
    if isinstance(executor, Connection):
        found = _SUMMARY.first(executor, {"lid": lead_id})
        return dict(zip(_SUMMARY_COLUMNS, found, strict=True)) if found is not None else None
    row = executor.execute(
        select(*(_leads.c[n] for n in _SUMMARY_COLUMNS)).where(_leads.c.id == lead_id)
    ).first()
    return dict(row._mapping) if row is not None else None


def latest_messages(executor: Executor, lead_id: int, limit: int) -> list[dict[str, Any]]:
    """The lead's newest conversation messages, oldest of them first; bodies cut short."""
    if isinstance(executor, Connection):
        rows: list[Any] = _LATEST.rows(executor, {"lid": lead_id, "n": limit})
    else:
        rows = [
            tuple(r)
            for r in executor.execute(
                select(
                    _messages.c.direction,
                    _messages.c.sent_at,
                    _messages.c.created_at,
                    _messages.c.sender,
                    _messages.c.subject,
                    func.substr(_messages.c.body_text, 1, BODY_CHARS).label("text"),
                )
                .where(_messages.c.lead_id == lead_id, _messages.c.outcome.in_(_CONVERSATION))
                .order_by(_messages.c.id.desc())
                .limit(limit)
            )
        ]
    out = []
    for direction, sent_at, created_at, sender, subject, text in reversed(rows):
        out.append(
            {
                "direction": direction,
                # Received mail is placed by when we stored it; its Date can say anything.
                "at": created_at if direction == "in" or sent_at is None else sent_at,
                "sender": sender or "",
                "subject": subject or "",
                "text": text or "",
            }
        )
    return out
