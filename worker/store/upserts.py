"""``INSERT … ON CONFLICT`` for the dialect in use, built on first use.

The two dialects spell it with their own ``insert``; importing SQLAlchemy's PostgreSQL dialect
(it brings its asyncpg and psycopg modules along) cost every SQLite start-up ~30 ms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def dialect_insert(dialect: str) -> Callable[[Any], Any]:
    """The dialect's ``insert`` construct, which has ``on_conflict_do_…``."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
