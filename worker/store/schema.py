"""Create or upgrade the database to the newest schema (alembic, run in-process).

alembic is imported only when a migration runs: every other command just compares the
stored revision with ``HEAD``, which keeps CLI start-up short.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration; a test checks it against alembic's own view of the scripts.
HEAD = "0014"


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


# Any constant: the advisory lock number that serialises schema upgrades on PostgreSQL.
_UPGRADE_LOCK = 0x6C6D_6967  # "lmig"


def upgrade(
    engine: Engine, target: str = "head", blob_root: Path | None = None
) -> tuple[str | None, str]:
    """Bring the schema to ``target`` (tests stop earlier); returns (before, after).

    ``blob_root`` is the blob store's directory: migration 0013 moves the blob files of the
    old layout found there into a pack.

    Two commands started at once on a new database (two ``ingest``, ``ingest`` beside
    ``run``) both find no schema: one upgrade at a time, and the second, once it has the
    lock, finds the first one's tables and has nothing to do. PostgreSQL: a transaction-
    scoped advisory lock; SQLite: BEGIN IMMEDIATE, so the second waits (busy timeout)
    instead of failing with "database is locked" when it turns from reading to writing.
    """
    from alembic import command

    before = current_revision(engine)
    cfg = _alembic_config()
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK})
            cfg.attributes["connection"] = conn
            cfg.attributes["blob_root"] = blob_root
            command.upgrade(cfg, target)
    return before, head_revision() if target == "head" else target


def head_revision() -> str:
    return HEAD


def alembic_head() -> str | None:
    """The head as alembic computes it from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def autogenerate(engine: Engine, message: str) -> None:
    """Developer helper: write a new revision from the difference to the models."""
    from alembic import command

    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
