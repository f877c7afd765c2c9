"""lead_load, kept by triggers, always equals a count of the open assigned leads."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, func, insert, select, update

from worker.config import DatabaseSettings
from worker.services.context import App
from worker.store import schema
from worker.store.db import Database
from worker.store.models import Lead, LeadLoad, LeadStatus, table_of
from worker.store.routing_state import OPEN_STATUSES, OpenLeadCounts

_leads = table_of(Lead)
_load = table_of(LeadLoad)
WHEN = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
EXECUTIVES = ("alice", "bob", "carol", None)


def _lead(n: int, executive: str | None, status: LeadStatus) -> dict[str, object]:
    email = f"p{n}@example.com"
    return {
        "email": email,
        "email_key": email,
        "status": status.value,
        "assigned_to": executive,
        "is_organization": False,
        "custom_fields": {},
        "email_bouncing": False,
        "created_at": WHEN,
        "updated_at": WHEN,
    }


def counted(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        select(_leads.c.assigned_to, func.count())
        .where(_leads.c.assigned_to.is_not(None), _leads.c.status.in_(OPEN_STATUSES))
        .group_by(_leads.c.assigned_to)
    )
    return {executive: int(count) for executive, count in rows}


def kept(conn: Connection) -> dict[str, int]:
    return {e: n for e, n in conn.execute(select(_load.c.executive, _load.c.open_leads)) if n}


def test_every_kind_of_change_keeps_the_counts(app: App) -> None:
    rng = random.Random(4)
    statuses = list(LeadStatus)
    ids: list[int] = []
    for step in range(400):
        with app.db.begin() as conn:
            action = rng.random()
            if action < 0.35 or not ids:
                lead = _lead(step, rng.choice(EXECUTIVES), rng.choice(statuses))
                ids.append(conn.scalar(insert(_leads).returning(_leads.c.id), lead))
            elif action < 0.6:
                target = rng.choice(ids)
                conn.execute(
                    update(_leads)
                    .where(_leads.c.id == target)
                    .values(status=rng.choice(statuses).value)
                )
            elif action < 0.8:
                target = rng.choice(ids)
                conn.execute(
                    update(_leads)
                    .where(_leads.c.id == target)
                    .values(assigned_to=rng.choice(EXECUTIVES))
                )
            elif action < 0.9:
                # Several rows and both columns in one statement.
                chosen = rng.sample(ids, min(5, len(ids)))
                conn.execute(
                    update(_leads)
                    .where(_leads.c.id.in_(chosen))
                    .values(assigned_to=rng.choice(EXECUTIVES), status=rng.choice(statuses).value)
                )
            else:
                target = ids.pop(rng.randrange(len(ids)))
                conn.execute(delete(_leads).where(_leads.c.id == target))
        if step % 50 == 49:
            with app.db.engine.connect() as conn:
                assert kept(conn) == counted(conn), f"after step {step}"
    with app.db.engine.connect() as conn:
        expected = counted(conn)
        assert sum(expected.values()) > 20  # the walk did leave open assigned leads
        assert dict(OpenLeadCounts(conn)) == expected


def test_the_migration_counts_leads_assigned_before_it(db_url: str) -> None:
    db = Database(DatabaseSettings(url=db_url))
    try:
        schema.upgrade(db.engine, "0003")
        with db.engine.begin() as conn:
            for n, (executive, status) in enumerate(
                [
                    ("alice", LeadStatus.LEAD),
                    ("alice", LeadStatus.OPEN),
                    ("alice", LeadStatus.CONVERTED),
                    ("bob", LeadStatus.QUOTATION),
                    ("bob", LeadStatus.DO_NOT_CONTACT),
                    (None, LeadStatus.LEAD),
                ]
            ):
                conn.execute(insert(_leads), _lead(n, executive, status))
        schema.upgrade(db.engine)
        with db.engine.connect() as conn:
            assert kept(conn) == {"alice": 2, "bob": 1} == counted(conn)
    finally:
        db.dispose()
