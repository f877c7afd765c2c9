"""A bulk intake into a new PostgreSQL database keeps the planner's statistics current.

Without them the plans psycopg prepares early (for empty tables) stay cached, and the
duplicate check scanned every stored message for each new one: a backfill got slower with
every message. Autovacuum, where it is on at all (not on this machine's server), wakes once a
minute: within this test's few seconds only intake's own ANALYZE fills in the statistics.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from sqlalchemy import select

from tests.conftest import PgDatabaseFactory
from tests.integration.conftest import settings_for
from tests.integration.helpers import enquiries
from worker.mail.message import RawMessage
from worker.services.context import App
from worker.services.intake import Intake
from worker.store import schema
from worker.store.models import Message, table_of


def _analysed(url: str) -> dict[str, float]:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT relname, reltuples FROM pg_class "
            "WHERE relname IN ('messages', 'leads', 'participants', 'contacts')"
        ).fetchall()
    return {name: tuples for name, tuples in rows}


def test_a_long_intake_analyses_the_tables_it_reads(
    pg_database: PgDatabaseFactory, tmp_path: Path
) -> None:
    with pg_database() as url:
        app = App.from_settings(settings_for(url, tmp_path))
        try:
            schema.upgrade(app.db.engine)
            before = _analysed(url)
            raws = [RawMessage(data, f"m{n}", "local") for n, data in enumerate(enquiries(260))]
            results = list(Intake(app).process_many(raws, workers=0))
            assert {r.outcome.value for r in results} == {"created"}
            after = _analysed(url)
            with app.db.engine.connect() as conn:
                stored = len(conn.scalars(select(table_of(Message).c.id)).all())
        finally:
            app.close()
    assert stored == 260
    assert all(tuples < 1 for tuples in before.values())  # never analysed: -1 (or 0)
    # Analysed once 200 messages were in: the planner now knows the tables are not empty.
    assert after["messages"] >= 200 and after["leads"] >= 200
