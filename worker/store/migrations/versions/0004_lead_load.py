"""open leads per executive, kept by triggers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 23:00:00

Load balancing and capacity need each executive's open leads on every assignment. Counting
the leads table there made a backfill of N new leads O(N²) (a 10,000-message mbox ran at a
tenth of its speed without rules). ``lead_load`` holds the counts; triggers on ``leads``
keep them, so no code path (nor a hand-typed UPDATE) can forget to.

The open statuses are written out here, as a migration must not change with the code;
store/routing_state.py's OPEN_STATUSES is the same list, and a test holds the two together.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = "('Lead', 'Open', 'Replied', 'Opportunity', 'Quotation', 'Interested')"

SQLITE_TRIGGERS = (
    f"""
    CREATE TRIGGER lead_load_insert AFTER INSERT ON leads
    WHEN NEW.assigned_to IS NOT NULL AND NEW.status IN {OPEN}
    BEGIN
        INSERT INTO lead_load (executive, open_leads) VALUES (NEW.assigned_to, 1)
        ON CONFLICT (executive) DO UPDATE SET open_leads = open_leads + 1;
    END
    """,
    f"""
    CREATE TRIGGER lead_load_update AFTER UPDATE OF status, assigned_to ON leads
    BEGIN
        UPDATE lead_load SET open_leads = open_leads - 1
        WHERE executive = OLD.assigned_to AND OLD.status IN {OPEN};
        INSERT INTO lead_load (executive, open_leads)
        SELECT NEW.assigned_to, 1 WHERE NEW.assigned_to IS NOT NULL AND NEW.status IN {OPEN}
        ON CONFLICT (executive) DO UPDATE SET open_leads = open_leads + 1;
    END
    """,
    f"""
    CREATE TRIGGER lead_load_delete AFTER DELETE ON leads
    WHEN OLD.assigned_to IS NOT NULL AND OLD.status IN {OPEN}
    BEGIN
        UPDATE lead_load SET open_leads = open_leads - 1 WHERE executive = OLD.assigned_to;
    END
    """,
)

POSTGRESQL_TRIGGERS = (
    f"""
    CREATE FUNCTION leadmail_lead_load() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE')
           AND OLD.assigned_to IS NOT NULL AND OLD.status IN {OPEN} THEN
            UPDATE lead_load SET open_leads = open_leads - 1
            WHERE executive = OLD.assigned_to;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE')
           AND NEW.assigned_to IS NOT NULL AND NEW.status IN {OPEN} THEN
            INSERT INTO lead_load (executive, open_leads) VALUES (NEW.assigned_to, 1)
            ON CONFLICT (executive) DO UPDATE SET open_leads = lead_load.open_leads + 1;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER lead_load AFTER INSERT OR DELETE OR UPDATE OF status, assigned_to
    ON leads FOR EACH ROW EXECUTE FUNCTION leadmail_lead_load()
    """,
)


def upgrade() -> None:
    op.create_table(
        "lead_load",
        sa.Column("executive", sa.String(length=128), nullable=False),
        sa.Column("open_leads", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("executive"),
    )
    # The leads already assigned before this migration.
    op.execute(
        "INSERT INTO lead_load (executive, open_leads) "
        "SELECT assigned_to, count(*) FROM leads "
        f"WHERE assigned_to IS NOT NULL AND status IN {OPEN} GROUP BY assigned_to"
    )
    dialect = op.get_bind().dialect.name
    for statement in POSTGRESQL_TRIGGERS if dialect == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS lead_load ON leads")
        op.execute("DROP FUNCTION IF EXISTS leadmail_lead_load()")
    else:
        for name in ("lead_load_insert", "lead_load_update", "lead_load_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("lead_load")
