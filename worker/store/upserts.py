"""``INSERT … ON CONFLICT`` for the dialect in use, built on first use.

The two dialects spell it with their own ``insert``; importing SQLAlchemy's PostgreSQL dialect
(it brings its asyncpg and psycopg modules along) cost every SQLite start-up ~30 ms.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import Table

from worker.store.fast import FastStatement


def dialect_insert(dialect: str) -> Callable[[Any], Any]:
    """The dialect's ``insert`` construct, which has ``on_conflict_do_…``."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def insert_ignoring(table: Table) -> Callable[[str], FastStatement]:
    """By dialect name, an INSERT into ``table`` that skips a row whose key is there already
    (``ON CONFLICT DO NOTHING``), built on first use for that dialect."""

    @functools.cache
    def statement(dialect: str) -> FastStatement:
        return FastStatement(dialect_insert(dialect)(table).on_conflict_do_nothing())

    return statement
