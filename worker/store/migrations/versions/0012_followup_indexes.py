"""followup indexes: the follow-up rules find their few candidates without a scan

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 09:00:00

Each dispatcher tick asks for recent leads in Lead/Open that nobody has answered
(leads by status and creation), for our mail of a few days ago (messages by direction and
date), for a lead's mail in one direction (messages by lead and direction, replacing the
index on lead alone), and whether a mail is an automatic acknowledgement (outbox by its
messages row).
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_leads_status_created_at", "leads", ["status", "created_at"])
    op.create_index("ix_messages_direction_sent_at", "messages", ["direction", "sent_at"])
    # Replaces the index on lead_id alone: with direction beside it, "any mail of ours on
    # this lead" is one index lookup, and SQLite (no statistics) no longer picks the
    # direction index for it and reads every outbound message.
    op.create_index("ix_messages_lead_id_direction", "messages", ["lead_id", "direction"])
    op.drop_index("ix_messages_lead_id", table_name="messages")
    op.create_index("ix_outbox_message_row_id", "outbox", ["message_row_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_message_row_id", table_name="outbox")
    op.create_index("ix_messages_lead_id", "messages", ["lead_id"])
    op.drop_index("ix_messages_lead_id_direction", table_name="messages")
    op.drop_index("ix_messages_direction_sent_at", table_name="messages")
    op.drop_index("ix_leads_status_created_at", table_name="leads")
