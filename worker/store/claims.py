"""The dispatcher's claim, shared by every table of due work (outbox, reminders).

Each such table has ``id``, ``status``, ``due_at`` and ``claimed_at`` columns and the
statuses ``pending``, ``claimed`` and ``sending``. A claim turns what is due (and what a
killed worker left in flight too long) into ``claimed`` in one committed statement, so two
dispatchers never hand the same row to the broker.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, Table, and_, or_, select, update

PENDING = "pending"
CLAIMED = "claimed"
IN_FLIGHT = (CLAIMED, "sending")


def claim_due(
    engine: Engine, table: Table, now: datetime, stuck_seconds: float, limit: int
) -> list[int]:
    """Claim up to ``limit`` due rows of ``table`` and commit; ids oldest due first."""
    stuck_before = now - timedelta(seconds=stuck_seconds)
    due = select(table.c.id).where(
        or_(
            and_(table.c.status == PENDING, table.c.due_at <= now),
            and_(table.c.status.in_(IN_FLIGHT), table.c.claimed_at < stuck_before),
        )
    )
    due = due.order_by(table.c.due_at, table.c.id).limit(limit)
    if engine.dialect.name == "postgresql":
        # Two dispatchers never wait on each other: each takes the rows the other has not
        # locked. SQLite has no row locks; BEGIN IMMEDIATE serialises the whole statement.
        due = due.with_for_update(skip_locked=True)
    statement = (
        update(table)
        .where(table.c.id.in_(due.scalar_subquery()))
        .values(status=CLAIMED, claimed_at=now, updated_at=now)
        .returning(table.c.id, table.c.due_at)
    )
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            claimed = conn.execute(statement).all()
    return [row.id for row in sorted(claimed, key=lambda r: (r.due_at, r.id))]
