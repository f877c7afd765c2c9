"""reminders: a lead's Next Contact Date and follow-up reminders, as due rows

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 09:00:00

One row per lead and kind (manual, first_response, escalation, no_reply): setting a new
date moves the row. The dispatcher claims due rows like the outbox's and a worker mails the
executive a calendar invitation; the row, never the broker, says whether work remains.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.Column("executive", sa.String(length=128), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ical_uid", sa.String(length=255), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("sequence_sent", sa.Integer(), nullable=True),
        sa.Column("method_sent", sa.String(length=8), nullable=True),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("log", sa.JSON(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lead_id", "kind", name="uq_reminders_lead_kind"),
        sa.UniqueConstraint("ical_uid"),
    )
    op.create_index("ix_reminders_lead_id", "reminders", ["lead_id"])
    op.create_index("ix_reminders_executive", "reminders", ["executive"])
    op.create_index("ix_reminders_message_id", "reminders", ["message_id"])
    op.create_index("ix_reminders_status_due_at", "reminders", ["status", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_reminders_status_due_at", table_name="reminders")
    op.drop_index("ix_reminders_message_id", table_name="reminders")
    op.drop_index("ix_reminders_executive", table_name="reminders")
    op.drop_index("ix_reminders_lead_id", table_name="reminders")
    op.drop_table("reminders")
