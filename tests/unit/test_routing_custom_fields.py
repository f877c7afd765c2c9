"""custom.NAME in a rule file is checked against the config's declarations at load."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from worker.config import CustomFieldSettings, LeadSettings
from worker.routing.conditions import DeclaredField
from worker.routing.engine import decide
from worker.routing.facts import LeadFacts, RoutingState
from worker.routing.loader import RuleFileError, load_rules
from worker.services.assignment import declared_fields

DECLARED = {
    "budget": DeclaredField("decimal"),
    "employees": DeclaredField("int"),
    "region": DeclaredField("text"),
    "tier": DeclaredField("choice", ("Gold", "Silver")),
    "since": DeclaredField("date"),
    "partner": DeclaredField("bool"),
}
HEAD = """\
executives:
  - {id: alice}
rules:
  - name: r
    assign: {strategy: round_robin, to: [alice]}
    when: """


def _load(when: str, declared: dict[str, DeclaredField] | None = DECLARED) -> object:
    return load_rules(HEAD + when + "\n", "team.yaml", declared)


def _problems(when: str) -> list[str]:
    with pytest.raises(RuleFileError) as refused:
        _load(when)
    return [str(p) for p in refused.value.problems]


@pytest.mark.parametrize(
    "when",
    [
        "{field: custom.budget, gte: 10000}",
        "{field: custom.employees, lt: 50}",
        "{field: custom.employees, in: [10, '20']}",
        "{field: custom.region, regex: '^North'}",
        "{field: custom.region, equals: North}",
        "{field: custom.tier, in: [gold, Silver]}",
        "{field: custom.since, equals: '2026-01-05'}",
        "{field: custom.partner, equals: true}",
        "{field: custom.partner, exists: false}",
        "{not: {field: custom.budget, exists: true}}",
    ],
)
def test_conditions_that_suit_the_declared_type_load(when: str) -> None:
    _load(when)


@pytest.mark.parametrize(
    ("when", "problem"),
    [
        (
            "{field: custom.budgte, gte: 1}",
            "team.yaml:6:19: unknown custom field 'budgte' (did you mean 'budget'?); "
            "declared: budget, employees, partner, region, since, tier",
        ),
        ("{field: custom.region, gt: 5}", "team.yaml:6:38: gt compares numbers; "
         "custom.region is a text field"),
        ("{field: custom.tier, lte: 5}", "custom.tier is a choice field"),
        ("{field: custom.since, gt: 5}", "gt compares numbers; custom.since is a date field"),
        ("{field: custom.partner, contains: x}", "custom.partner is a bool field: use exists"),
        ("{field: custom.partner, equals: 'yes'}", "equals takes true or false"),
        ("{field: custom.employees, equals: many}", "custom.employees is an int field: equals "
         "takes a number, not a string ('many')"),
        ("{field: custom.employees, equals: 2.5}", "takes a whole number"),
        ("{field: custom.tier, equals: Silvr}", "custom.tier is a choice field: 'Silvr' is not "
         "one of its choices (did you mean 'Silver'?) (Gold, Silver)"),
        ("{field: custom.tier, in: [Gold, Bronze]}", "'Bronze' is not one of its choices"),
        ("{field: custom.since, equals: '5 May'}", "takes a quoted date like '2026-12-20'"),
        ("{field: custom.since, equals: '2026-02-30'}", "'2026-02-30' is not a date"),
    ],
)  # fmt: skip
def test_conditions_that_cannot_hold_are_refused_where_they_are(when: str, problem: str) -> None:
    problems = _problems(when)
    assert len(problems) == 1, problems
    assert problem in problems[0]
    assert problems[0].startswith("team.yaml:6:")


def test_an_unknown_name_is_reported_once() -> None:
    """Not also as 'gt compares numbers' on a name that was refused already."""
    assert len(_problems("{field: custom.nope, gt: 5}")) == 1
    text = HEAD + "{field: nope, gt: 5}\n"
    with pytest.raises(RuleFileError) as refused:
        load_rules(text, "team.yaml")
    assert len(refused.value.problems) == 1


def test_by_field_on_an_undeclared_custom_field_is_refused() -> None:
    text = textwrap.dedent("""\
        executives:
          - {id: alice}
        rules:
          - name: r
            assign: {strategy: by_field, field: custom.owner}
        """)
    with pytest.raises(RuleFileError, match=r"team\.yaml:5:41: unknown custom field 'owner'"):
        load_rules(text, "team.yaml", DECLARED)
    assert load_rules(text, "team.yaml", {**DECLARED, "owner": DeclaredField("text")})


def test_without_declarations_any_custom_field_loads() -> None:
    for declared in (None, {}):
        _load("{field: custom.whatever, gt: 5}", declared)


def test_a_declared_decimal_stored_as_text_compares_as_a_number() -> None:
    rules = load_rules(HEAD + "{field: custom.budget, gte: 10000}\n", "team.yaml", DECLARED)
    now = datetime(2026, 11, 30, 10, tzinfo=UTC)
    for stored, executive in (("25000.50", "alice"), ("999.99", None)):
        lead = LeadFacts({"custom": {"budget": stored}})
        assert decide(rules, lead, None, RoutingState(), now).executive == executive


def test_the_services_pass_the_config_s_declarations() -> None:
    assert declared_fields(LeadSettings()) is None
    settings = LeadSettings(
        custom_fields=(
            CustomFieldSettings(name="tier", type="choice", choices=("Gold",)),
            CustomFieldSettings(name="budget", type="decimal"),
        )
    )
    assert declared_fields(settings) == {
        "tier": DeclaredField("choice", ("Gold",)),
        "budget": DeclaredField("decimal"),
    }
