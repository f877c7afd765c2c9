"""fewer pages: a new lead's transaction writes fewer index pages

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 17:00:00

On SQLite every b-tree a transaction changes is one more WAL frame at COMMIT, and COMMIT is
about a quarter of the committing process's time in a bulk ingest (issue 13; bench/README.md):
a new lead touched 28. This drops up to five of them:

- ``ix_leads_status`` goes: ``ix_leads_status_created_at`` (0012) starts with the same column;
- ``ix_leads_merged_into_id`` becomes partial on SQLite (``merged_into_id IS NOT NULL``): a
  lead is written with no merge, and every look-up by it compares it with a value (``=``,
  ``IN``), which SQLite answers from a partial index;
- ``blobs``, ``lead_load`` and ``routing_counters`` become WITHOUT ROWID tables on SQLite:
  keyed by text, each was a table plus the index of its primary key; now the key is the
  table. (PostgreSQL has no rowid tables; nothing changes there.)

SQLite rebuilds a table to change that (create, copy, drop, rename). ``lead_load`` is named by
the triggers on ``leads`` (0004); with ``legacy_alter_table`` the rename leaves their text as it
is, which names the rebuilt table again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_NOT_MERGED = "merged_into_id IS NOT NULL"

# (table, its columns, its primary key, its other indexes as (name, columns)).
_REBUILT = (
    (
        "blobs",
        "sha256 VARCHAR(64) NOT NULL, pack VARCHAR(64) NOT NULL, "
        '"offset" BIGINT NOT NULL, length BIGINT NOT NULL, created_at DATETIME NOT NULL',
        "sha256",
        (("ix_blobs_pack", "pack"),),
    ),
    (
        "lead_load",
        "executive VARCHAR(128) NOT NULL, open_leads INTEGER NOT NULL",
        "executive",
        (),
    ),
    (
        "routing_counters",
        'scope VARCHAR(255) NOT NULL, "key" VARCHAR(255) NOT NULL, value BIGINT NOT NULL',
        'scope, "key"',
        (),
    ),
)


def upgrade() -> None:
    op.drop_index("ix_leads_status", table_name="leads")
    op.drop_index("ix_leads_merged_into_id", table_name="leads")
    op.create_index(
        "ix_leads_merged_into_id",
        "leads",
        ["merged_into_id"],
        sqlite_where=sa.text(_NOT_MERGED),
    )
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(without_rowid=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(without_rowid=False)
    op.drop_index("ix_leads_merged_into_id", table_name="leads")
    op.create_index("ix_leads_merged_into_id", "leads", ["merged_into_id"])
    op.create_index("ix_leads_status", "leads", ["status"])


def _rebuild(*, without_rowid: bool) -> None:
    """Each table of _REBUILT again, its rows kept, as a WITHOUT ROWID table or not."""
    conn = op.get_bind()
    suffix = " WITHOUT ROWID" if without_rowid else ""
    conn.exec_driver_sql("PRAGMA legacy_alter_table = ON")
    try:
        for table, columns, key, indexes in _REBUILT:
            conn.exec_driver_sql(
                f"CREATE TABLE _new_{table} ({columns}, PRIMARY KEY ({key})){suffix}"
            )
            conn.exec_driver_sql(f"INSERT INTO _new_{table} SELECT * FROM {table}")
            conn.exec_driver_sql(f"DROP TABLE {table}")
            conn.exec_driver_sql(f"ALTER TABLE _new_{table} RENAME TO {table}")
            for name, column in indexes:
                conn.exec_driver_sql(f"CREATE INDEX {name} ON {table} ({column})")
    finally:
        conn.exec_driver_sql("PRAGMA legacy_alter_table = OFF")
