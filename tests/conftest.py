"""Shared fixtures: a database URL on each backend, the shared mail corpus, and a clean environment.

The PostgreSQL half never skips: a suite that silently skips half its storage tests when the
server is down is green for the wrong reason. `scripts/ensure-postgres.sh` makes one answer.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from tests.corpus import CORPUS

DEFAULT_TEST_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
"""Server for throwaway test databases; override with LEADMAIL_TEST_PG (any database on it)."""

_KEEP_ENV = frozenset({"LEADMAIL_TEST_PG", "LEADMAIL_TEST_CORPUS", "LEADMAIL_TEST_DOVECOT"})

# Unique per process (pid) and per database within it, so xdist workers and concurrent runs
# against one server never collide.
_db_numbers = itertools.count(1)

PgDatabaseFactory = Callable[[], AbstractContextManager[str]]


def _admin_url() -> URL:
    """The LEADMAIL_TEST_PG URL, with a plain ``postgresql`` scheme that psycopg understands."""
    raw = os.environ.get("LEADMAIL_TEST_PG", DEFAULT_TEST_PG)
    return make_url(raw).set(drivername="postgresql")


def _conninfo(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def _drop_database(conn: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    # A test that forgot to dispose its engine still holds pooled connections, and DROP DATABASE
    # refuses while anyone is connected.
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session", autouse=True)
def _clean_leadmail_env() -> Iterator[None]:
    """Remove a developer's LEADMAIL_* settings so tests see only what they set themselves.

    Covers fixture and test time, not import time: code must not read settings at import
    (config is loaded once and passed down).
    """
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("LEADMAIL_") and name not in _KEEP_ENV:
                mp.delenv(name)
        yield


@pytest.fixture(scope="session")
def _pg_unavailable() -> str | None:
    """Check once per session whether the test server answers; the reason if not, else None.

    One short connect instead of one timeout per test keeps a suite without a server fast.
    """
    url = _admin_url()
    try:
        with psycopg.connect(_conninfo(url), connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"PostgreSQL test server {url.render_as_string(hide_password=True)} does not answer "
            f"({first_line}). Start one with scripts/ensure-postgres.sh, or point "
            f"LEADMAIL_TEST_PG at a server that does."
        )
    return None


@pytest.fixture(scope="session")
def pg_database(_pg_unavailable: str | None) -> PgDatabaseFactory:
    """Factory for throwaway PostgreSQL databases: ``with pg_database() as url: ...``.

    The URL uses the ``postgresql+psycopg`` driver; the database is dropped on exit. Fails (never
    skips) the test when the server does not answer.
    """

    @contextmanager
    def make() -> Iterator[str]:
        if _pg_unavailable is not None:
            pytest.fail(_pg_unavailable, pytrace=False)
        admin = _admin_url()
        name = f"leadmail_test_{os.getpid()}_{next(_db_numbers)}"
        with psycopg.connect(_conninfo(admin), connect_timeout=3, autocommit=True) as conn:
            # A run killed before its teardown, in a process whose pid came round again, left
            # this name behind.
            _drop_database(conn, name)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield _conninfo(admin.set(drivername="postgresql+psycopg", database=name))
        finally:
            with psycopg.connect(_conninfo(admin), connect_timeout=3, autocommit=True) as conn:
                _drop_database(conn, name)

    return make


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database: PgDatabaseFactory
) -> Iterator[str]:
    """A SQLAlchemy URL to an empty database of its own, once per backend.

    Each test gets a fresh database so tests are independent and can run in parallel (xdist).
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/leadmail.db"
    else:
        with pg_database() as url:
            yield url


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared corpus of real messages, which lives beside the repository, not inside it."""
    path = CORPUS
    if not path.is_dir():
        pytest.fail(
            f"mail corpus not found at {path}; it is expected in ../shared/corpus "
            f"next to the repository",
            pytrace=False,
        )
    return path
