"""opportunities, quotations and customers made from a lead

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 05:15:00

ERPNext makes an Opportunity, a Quotation or a Customer from a Lead, copying its party
name, email and source; the lead's status then follows from those records (Converted >
Quotation > Opportunity > Lost Quotation). Each record keeps who made it and when.
Amounts are decimal text (``"1250.50"``): exact on both backends, no float on the way.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _common() -> list[sa.Column[object]]:
    """The columns every record has: its lead, the copied fields, who made it and when."""
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("party_name", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "opportunities",
        *_common(),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("amount", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("expected_close", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_opportunities_lead_id", "opportunities", ["lead_id"], unique=False)
    op.create_table(
        "quotations",
        *_common(),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_quotations_lead_id", "quotations", ["lead_id"], unique=False)
    op.create_table(
        "customers",
        *_common(),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_customers_lead_id", "customers", ["lead_id"], unique=False)


def downgrade() -> None:
    for table in ("customers", "quotations", "opportunities"):
        op.drop_index(f"ix_{table}_lead_id", table_name=table)
        op.drop_table(table)
