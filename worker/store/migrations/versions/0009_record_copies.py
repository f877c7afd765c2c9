"""records keep copies of the lead's contacts and addresses; one contact per address and lead

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 06:30:00

ERPNext copies a lead's contacts and addresses into the Opportunity, Quotation or Customer
made from it, so the record stays as it was sent when the lead changes later. Records get
``contacts`` and ``addresses`` (JSON lists, copied when the record is made; NULL for
records made before this revision).

``contacts`` gets a unique key on (lead_id, email_key): ``contacts add`` checked it in
Python, and two people adding the same address at once could both pass that check.
Duplicates already stored are folded into the oldest row first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

RECORD_TABLES = ("opportunities", "quotations", "customers")


def upgrade() -> None:
    for table in RECORD_TABLES:
        op.add_column(table, sa.Column("contacts", sa.JSON(), nullable=True))
        op.add_column(table, sa.Column("addresses", sa.JSON(), nullable=True))
    op.execute(
        "DELETE FROM contacts WHERE email_key IS NOT NULL AND id NOT IN ("
        " SELECT MIN(id) FROM contacts WHERE email_key IS NOT NULL"
        " GROUP BY lead_id, email_key)"
    )
    op.create_index("uq_contacts_lead_email", "contacts", ["lead_id", "email_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_contacts_lead_email", table_name="contacts")
    for table in RECORD_TABLES:
        # SQLite ≥ 3.35 drops a column in place; batch mode would copy the table.
        op.drop_column(table, "addresses")
        op.drop_column(table, "contacts")
