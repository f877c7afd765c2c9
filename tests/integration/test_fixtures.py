"""The shared database fixtures give each test a working, private database and clean up after it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("LEADMAIL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _database_exists(name: str) -> bool:
    conninfo = make_url(ADMIN_URL).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def test_db_url_round_trip(db_url: str) -> None:
    """Create a table, write a row and read it back on each backend."""
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        assert url.drivername == "postgresql+psycopg"
        assert url.database is not None
        assert url.database.startswith(f"leadmail_test_{os.getpid()}_")
    else:
        assert url.drivername == "sqlite"

    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE probe (id INTEGER PRIMARY KEY, note TEXT)"))
            conn.execute(sa.text("INSERT INTO probe (id, note) VALUES (1, 'ภาษาไทย ok')"))
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, note FROM probe")).all()
        assert [tuple(r) for r in rows] == [(1, "ภาษาไทย ok")]
    finally:
        engine.dispose()


class _Lingering:
    """A connection a careless test left open, kept alive until after the database is dropped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url)
        self.conn = self.engine.connect()
        self.conn.execute(sa.text("SELECT 1"))

    def discard(self) -> None:
        # The server has killed it; invalidate so the pool does not try (and log) a rollback.
        self.conn.invalidate()
        self.conn.close()
        self.engine.dispose()


@pytest.fixture
def dropped_after_teardown() -> Iterator[list[_Lingering]]:
    """Holds connections opened in the test; once the fixtures requested after this one are torn
    down (it is requested before ``db_url``, so it is torn down after it), checks their databases
    no longer exist."""
    held: list[_Lingering] = []
    yield held
    # Nothing held means the test failed before registering; that failure is already reported.
    try:
        for item in held:
            name = make_url(item.url).database
            assert name is not None
            assert not _database_exists(name), f"database {name} was not dropped after the test"
    finally:
        for item in held:
            item.discard()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_pg_database_is_dropped_after_test(
    dropped_after_teardown: list[_Lingering], db_url: str
) -> None:
    """Leave a connection open on purpose: teardown must still drop the database."""
    name = make_url(db_url).database
    assert name is not None and _database_exists(name)
    dropped_after_teardown.append(_Lingering(db_url))
