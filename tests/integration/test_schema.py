"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from worker.config import DatabaseSettings
from worker.store import schema
from worker.store.db import Database
from worker.store.models import Base


def test_migrations_match_models_and_are_idempotent(db_url: str) -> None:
    db = Database(DatabaseSettings(url=db_url))
    try:
        assert schema.alembic_head() == schema.HEAD
        before, after = schema.upgrade(db.engine)
        assert before is None and after == schema.head_revision()
        assert schema.upgrade(db.engine) == (after, after)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        db.dispose()


def test_migration_0014_keeps_the_rows_and_the_lead_load_triggers(db_url: str) -> None:
    """0014 rebuilds blobs, lead_load and routing_counters (WITHOUT ROWID on SQLite) and
    changes two indexes of leads: rows survive both ways, and the triggers of 0004 still
    keep lead_load, whose table they name was rebuilt under them."""
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import insert, inspect, select, text, update

    from worker.store.models import Lead, LeadStatus, table_of
    from worker.store.tables import blobs, lead_load, routing_counters

    leads = table_of(Lead)
    when = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)

    def lead(n: int, executive: str, status: LeadStatus) -> dict[str, object]:
        return {
            "email": f"p{n}@example.com",
            "email_key": f"p{n}@example.com",
            "status": status.value,
            "assigned_to": executive,
            "is_organization": False,
            "custom_fields": {},
            "email_bouncing": False,
            "created_at": when,
            "updated_at": when,
        }

    def state() -> tuple[object, ...]:
        with db.engine.connect() as conn:
            return (
                sorted(conn.execute(select(lead_load)).all()),
                sorted(conn.execute(select(blobs.c.sha256, blobs.c.pack)).all()),
                sorted(conn.execute(select(routing_counters)).all()),
            )

    db = Database(DatabaseSettings(url=db_url))
    try:
        schema.upgrade(db.engine, "0013")
        with db.engine.begin() as conn:
            conn.execute(
                insert(leads),
                [
                    lead(1, "alice", LeadStatus.LEAD),
                    lead(2, "bob", LeadStatus.OPEN),
                    lead(3, "alice", LeadStatus.OPEN),
                ],
            )
            conn.execute(
                insert(blobs),
                [{"sha256": "ab" * 32, "pack": "p1", "offset": 0, "length": 3, "created_at": when}],
            )
            conn.execute(insert(routing_counters), [{"scope": "rule", "key": "#next", "value": 2}])
        before = state()
        assert before[0] == [("alice", 2), ("bob", 1)]

        assert schema.upgrade(db.engine) == ("0013", schema.HEAD)
        assert state() == before
        with db.engine.connect() as conn:
            names = {ix["name"] for ix in inspect(conn).get_indexes("leads")}
            assert "ix_leads_status" not in names
            assert {"ix_leads_status_created_at", "ix_leads_merged_into_id"} <= names
            if conn.dialect.name == "sqlite":
                sql = dict(conn.execute(text("SELECT name, sql FROM sqlite_master")).all())
                for table in ("blobs", "lead_load", "routing_counters"):
                    assert sql[table].rstrip().endswith("WITHOUT ROWID"), sql[table]
        with db.engine.begin() as conn:  # the triggers still count, on the rebuilt table
            conn.execute(insert(leads), lead(4, "carol", LeadStatus.LEAD))
            conn.execute(
                update(leads)
                .where(leads.c.assigned_to == "alice")
                .values(status=LeadStatus.CONVERTED.value)
            )
        assert state()[0] == [("alice", 0), ("bob", 1), ("carol", 1)]

        cfg = schema._alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0013")
        with db.engine.connect() as conn:
            names = {ix["name"] for ix in inspect(conn).get_indexes("leads")}
            assert "ix_leads_status" in names
        with db.engine.begin() as conn:
            conn.execute(update(leads).where(leads.c.id == 2).values(status="Converted"))
        assert state()[0] == [("alice", 0), ("bob", 0), ("carol", 1)]
        assert state()[1:] == before[1:]
    finally:
        db.dispose()
