"""Routing state: the assignment lock, rotation and weighted counters, open-lead loads, and the
record of each assignment on the lead and in its timeline.

The rule engine decides from these values; services/assignment.py reads them here, decides,
and writes the decision back through the functions below, inside the caller's transaction.
Every new lead runs the hot ones, so they are prebuilt and run on the driver's cursor
(store/fast.py): that costs a fraction of building and executing Core statements per lead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from worker.errors import NotFoundError
from worker.store import tables
from worker.store.fast import FastStatement
from worker.store.tables import LeadStatus
from worker.store.upserts import dialect_insert

_leads = tables.leads
_activities = tables.activities
_counters = tables.routing_counters
_load = tables.lead_load

# Leads an executive still works on: what capacity and load balancing count. Migration
# 0004's triggers count the same statuses into lead_load.
OPEN_STATUSES = (
    LeadStatus.LEAD,
    LeadStatus.OPEN,
    LeadStatus.REPLIED,
    LeadStatus.OPPORTUNITY,
    LeadStatus.QUOTATION,
    LeadStatus.INTERESTED,
)

# routing_counters rows: (rule, "#next") is a round-robin position, (rule, executive) a
# weighted rule's count, ("*", "lock") the row every assignment locks on PostgreSQL.
_NEXT = "#next"
_LOCK = ("*", "lock")

_TAKE_LOCK = FastStatement(
    select(_counters.c.value)
    .where(_counters.c.scope == _LOCK[0], _counters.c.key == _LOCK[1])
    .with_for_update()
)
_COUNTERS = FastStatement(
    select(_counters.c.scope, _counters.c.key, _counters.c.value).where(
        _counters.c.scope != _LOCK[0]
    )
)
# Kept by triggers on leads (migration 0004): one small table read instead of a count.
_LEAD_LOAD = FastStatement(select(_load.c.executive, _load.c.open_leads))
_SET_EXECUTIVE = FastStatement(
    update(_leads)
    .where(_leads.c.id == bindparam("b_id"))
    .values(assigned_to=bindparam("b_executive"), updated_at=bindparam("b_now"))
)
_INSERT_ACTIVITY = FastStatement(insert(_activities))
_LEAD_COLUMNS: dict[tuple[str, ...], FastStatement] = {}


def _counter_upsert(dialect_insert: Any, increment: bool) -> FastStatement:
    statement = dialect_insert(_counters).values(
        scope=bindparam("b_scope"), key=bindparam("b_key"), value=bindparam("b_value")
    )
    value = _counters.c.value + 1 if increment else statement.excluded.value
    return FastStatement(
        statement.on_conflict_do_update(
            index_elements=[_counters.c.scope, _counters.c.key], set_={"value": value}
        )
    )


@functools.cache
def _counter_statement(dialect: str, increment: bool) -> FastStatement:
    return _counter_upsert(dialect_insert(dialect), increment)


# -- reading the state -------------------------------------------------------------------------


def lock(conn: Connection) -> None:
    """Serialise assignments until the caller's transaction ends.

    On PostgreSQL one row is locked, so concurrent intakes in several processes take rotation
    slots one after another; SQLite's BEGIN IMMEDIATE has serialised the transaction already.
    """
    if conn.dialect.name != "postgresql":
        return
    if _TAKE_LOCK.first(conn, {}) is not None:
        return
    # Migration 0003 creates the row; should it be gone, make it again (once) and lock it.
    conn.execute(
        dialect_insert("postgresql")(_counters)
        .values(scope=_LOCK[0], key=_LOCK[1], value=0)
        .on_conflict_do_nothing()
    )
    _TAKE_LOCK.first(conn, {})


def counters(conn: Connection) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """(next round-robin position by rule, leads given by (weighted rule, executive))."""
    rotation: dict[str, int] = {}
    assigned: dict[tuple[str, str], int] = {}
    for scope, key, value in _COUNTERS.rows(conn, {}):
        if key == _NEXT:
            rotation[scope] = int(value)
        else:
            assigned[(scope, key)] = int(value)
    return rotation, assigned


class OpenLeadCounts(Mapping[str, int]):
    """Open leads per executive, read on first use only (most rules never ask)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._counts: dict[str, int] | None = None

    def _load(self) -> dict[str, int]:
        if self._counts is None:
            rows = _LEAD_LOAD.rows(self._conn, {})
            self._counts = {executive: int(count) for executive, count in rows if count}
        return self._counts

    def __getitem__(self, key: str) -> int:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def lead_columns(conn: Connection, lead_id: int, columns: tuple[str, ...]) -> dict[str, Any]:
    """The named columns of lead ``lead_id`` (LookupError when there is none)."""
    statement = _LEAD_COLUMNS.get(columns)
    if statement is None:
        statement = _LEAD_COLUMNS[columns] = FastStatement(
            select(*(_leads.c[name] for name in columns)).where(_leads.c.id == bindparam("b_id"))
        )
    return dict(zip(columns, statement.one(conn, {"b_id": lead_id}), strict=True))


def assignee(conn: Connection, lead_id: int) -> str | None:
    """The lead's executive (None: unassigned); NotFoundError when there is no such lead."""
    row = conn.execute(select(_leads.c.assigned_to).where(_leads.c.id == lead_id)).first()
    if row is None:
        raise NotFoundError(f"no lead {lead_id}", lead_id)
    executive: str | None = row.assigned_to
    return executive


def last_assignment(conn: Connection, lead_id: int) -> tuple[dict[str, Any], datetime] | None:
    """The details and time of the lead's latest assignment record, None if it has none."""
    row = conn.execute(
        select(_activities.c.details, _activities.c.at)
        .where(_activities.c.lead_id == lead_id, _activities.c.kind == "assignment")
        .order_by(_activities.c.at.desc(), _activities.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (dict(row.details or {}), row.at)


def open_assigned_leads(conn: Connection) -> list[tuple[int, str]]:
    """(lead id, executive) of every open lead that has an executive."""
    rows = conn.execute(
        select(_leads.c.id, _leads.c.assigned_to).where(
            _leads.c.assigned_to.is_not(None), _leads.c.status.in_(OPEN_STATUSES)
        )
    )
    return [(lead_id, executive) for lead_id, executive in rows]


# -- writing a decision ------------------------------------------------------------------------


def set_executive(conn: Connection, lead_id: int, executive: str, now: datetime) -> None:
    _SET_EXECUTIVE.later(conn, {"b_id": lead_id, "b_executive": executive, "b_now": now})


def set_rotation(conn: Connection, rule: str, position: int) -> None:
    """Where round-robin rule ``rule`` continues for the next lead."""
    params = {"b_scope": rule[:255], "b_key": _NEXT, "b_value": position}
    _counter_statement(conn.dialect.name, False).later(conn, params)


def count_assigned(conn: Connection, rule: str, executive: str) -> None:
    """One more lead given to ``executive`` by weighted rule ``rule``."""
    params = {"b_scope": rule[:255], "b_key": executive[:255], "b_value": 1}
    _counter_statement(conn.dialect.name, True).later(conn, params)


def record_assignment(
    conn: Connection,
    lead_id: int,
    summary: str,
    actor: str | None,
    details: Mapping[str, Any],
    now: datetime,
) -> None:
    """The assignment's entry in the lead's timeline (what ``rules explain`` reads back)."""
    _INSERT_ACTIVITY.later(
        conn,
        {
            "lead_id": lead_id,
            "kind": "assignment",
            "summary": summary,
            "actor": actor,
            "details": details,
            "due_date": None,
            "at": now,
        },
    )
