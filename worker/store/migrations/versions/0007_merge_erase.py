"""merged leads point at the lead they went into; erased addresses and Message-IDs

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 05:30:00

``leads merge KEEP OTHER`` leaves OTHER as a pointer: ``leads.merged_into_id``.
``leads erase`` keeps only salted sha256 digests of what it erased (``erased_keys``), so a
resync of the mailbox does not make the lead again. The salt is a random secret made once
per database, here, and kept in ``meta`` (key ``erase_salt``): the digests mean nothing
without the database they sit in, and a dump of the table alone cannot be checked against
a list of addresses.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not batch mode on SQLite: copying ``leads`` would drop its lead_load triggers (0004)
    # and, dropping the old table, cascade deletes into messages.
    # ADD COLUMN with REFERENCES and no default is what SQLite can do in place.
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # A downgrade leaves the column on SQLite (see there): add it only when missing.
        columns = {c["name"] for c in sa.inspect(bind).get_columns("leads")}
        if "merged_into_id" not in columns:
            op.execute("ALTER TABLE leads ADD COLUMN merged_into_id INTEGER REFERENCES leads (id)")
    else:
        op.add_column("leads", sa.Column("merged_into_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_leads_merged_into_id", "leads", "leads", ["merged_into_id"], ["id"]
        )
    op.create_index(op.f("ix_leads_merged_into_id"), "leads", ["merged_into_id"])
    op.create_table(
        "erased_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "digest", name="uq_erased_keys"),
    )
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.bulk_insert(meta, [{"key": "erase_salt", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("meta")
    op.drop_table("erased_keys")
    op.drop_index(op.f("ix_leads_merged_into_id"), table_name="leads")
    # On SQLite the column stays: SQLite cannot drop a column that REFERENCES a table in
    # place, and a batch copy of ``leads`` ends in DROP TABLE leads, whose implicit DELETE
    # cascades (foreign keys are on) through messages to their attachments: data lost in a
    # downgrade, and 0004's lead_load triggers with it. A nullable column the older schema
    # never reads is harmless, and the upgrade finds it there again.
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_leads_merged_into_id", "leads", type_="foreignkey")
        op.drop_column("leads", "merged_into_id")
