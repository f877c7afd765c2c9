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
