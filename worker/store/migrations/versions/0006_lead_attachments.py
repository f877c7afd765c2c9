"""attachments on a lead, without a message

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 05:10:00

``leads attach`` stores files a person attaches to the lead itself: ``attachments.message_id``
may now be NULL, ``lead_id`` names the lead instead, and a CHECK keeps exactly one of the two
set. SQLite cannot alter a column or add a constraint in place: batch mode copies the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lead_id", sa.Integer(), nullable=True))
        batch_op.alter_column("message_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(
            "fk_attachments_lead_id", "leads", ["lead_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index(batch_op.f("ix_attachments_lead_id"), ["lead_id"], unique=False)
        batch_op.create_check_constraint(
            "ck_attachments_one_owner", "(message_id IS NULL) <> (lead_id IS NULL)"
        )


def downgrade() -> None:
    # The files attached to leads have nowhere to go in the old schema.
    op.execute("DELETE FROM attachments WHERE message_id IS NULL")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_constraint("ck_attachments_one_owner", type_="check")
        batch_op.drop_index(batch_op.f("ix_attachments_lead_id"))
        batch_op.drop_constraint("fk_attachments_lead_id", type_="foreignkey")
        batch_op.drop_column("lead_id")
        batch_op.alter_column("message_id", existing_type=sa.Integer(), nullable=False)
