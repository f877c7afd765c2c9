"""The lead fields rules may test are defined once (routing/facts.py) and all of them work.

Every name the rule loader accepts is read from a real row of ``leads``, and every name read
from that row is one the loader accepts: a field added in one place but not the others (the
old column list, fact mapping and rule vocabulary) fails here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert

from worker.routing import conditions
from worker.routing.conditions import present
from worker.routing.facts import LEAD_COLUMNS, LEAD_FIELDS, lead_facts
from worker.routing.loader import RuleFileError, load_rules
from worker.services.assignment import route
from worker.services.context import App
from worker.store import routing_state
from worker.store.models import Lead, LeadStatus, table_of

_leads = table_of(Lead)
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
TEAM = """
executives:
  - {id: alice, name: Alice Chan, email: alice@northwind.example}
"""


def _value(column: str) -> object:
    """A present value of the column's type, so each field reads as something."""
    special: dict[str, object] = {
        "email": "Buyer@Firm.EXAMPLE",
        "email_key": "buyer@firm.example",
        "status": LeadStatus.OPEN.value,
        "custom_fields": {"tier": "gold"},
    }
    if column in special:
        return special[column]
    kind = _leads.c[column].type.python_type
    if kind is bool:
        return True
    if kind is str:
        return f"{column} value"[: getattr(_leads.c[column].type, "length", None) or 64]
    raise AssertionError(f"give leads.{column} ({kind}) a test value")


def _insert_full_lead(app: App) -> int:
    row: dict[str, Any] = {column: _value(column) for column in LEAD_COLUMNS}
    row.setdefault("email_key", "buyer@firm.example")
    row.update(email_bouncing=False, created_at=NOW, updated_at=NOW)
    with app.db.begin() as conn:
        lead_id = conn.scalar(insert(_leads).returning(_leads.c.id), row)
    assert isinstance(lead_id, int)
    return lead_id


def _one_rule(when: str) -> str:
    return (
        TEAM
        + f"""
rules:
  - name: r
    when: {when}
    assign: {{strategy: round_robin, to: [alice]}}
"""
    )


def test_the_rules_vocabulary_is_the_fact_list() -> None:
    assert set(LEAD_FIELDS) == conditions.LEAD_FIELDS
    assert "custom" not in conditions.LEAD_FIELDS, "custom fields are named custom.<key>"
    with pytest.raises(RuleFileError) as refused:
        load_rules(_one_rule("{field: no_such_field, exists: true}"))
    assert ", ".join(sorted(LEAD_FIELDS)) in str(refused.value)


def test_every_lead_field_is_read_from_a_stored_lead_and_usable_in_a_rule(app: App) -> None:
    lead_id = _insert_full_lead(app)
    with app.db.engine.connect() as conn:
        row = routing_state.lead_columns(conn, lead_id, LEAD_COLUMNS)
    facts = lead_facts(row).fields
    assert {name for name in LEAD_FIELDS if not present(facts[name])} == set()
    assert facts["email_domain"] == "firm.example"
    assert facts["company"] == "company_name value"
    assert facts["name"] == "person_name value"
    assert facts["custom"] == {"tier": "gold"}

    for name in [*LEAD_FIELDS, "custom.tier"]:
        rules = load_rules(_one_rule(f"{{field: {name}, exists: true}}"), f"{name}.yaml")
        with app.db.begin() as conn:
            decision = route(conn, rules, lead_id, None, NOW)
        assert decision.executive == "alice", (name, decision.reason)
