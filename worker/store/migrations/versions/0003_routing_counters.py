"""routing counters for the assignment-rule engine

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "routing_counters",
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    # The row every assignment locks on PostgreSQL (services/assignment.py).
    op.bulk_insert(table, [{"scope": "*", "key": "lock", "value": 0}])


def downgrade() -> None:
    op.drop_table("routing_counters")
