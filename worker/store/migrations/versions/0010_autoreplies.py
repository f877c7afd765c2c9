"""autoreplies: the acknowledgements queued to each address

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:00:00

With ``[autoreply] enabled``, intake acknowledges a new lead's first message through the
outbox, at most once per address per ``min_interval_hours``; this table remembers to whom
and when, by address, so the limit holds whatever happens to the lead afterwards.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "autoreplies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_autoreplies_email_key_at", "autoreplies", ["email_key", "at"])
    op.create_index("ix_autoreplies_lead_id", "autoreplies", ["lead_id"])


def downgrade() -> None:
    op.drop_index("ix_autoreplies_lead_id", table_name="autoreplies")
    op.drop_index("ix_autoreplies_email_key_at", table_name="autoreplies")
    op.drop_table("autoreplies")
