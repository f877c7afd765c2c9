"""mailbox leases, waiting count and post-action cursor

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 21:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailbox_cursors") as batch:
        batch.add_column(sa.Column("waiting", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("post_action_uid", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("lease_holder", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailbox_cursors") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_holder")
        batch.drop_column("post_action_uid")
        batch.drop_column("waiting")
