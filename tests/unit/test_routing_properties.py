"""Properties of the strategies over many leads, and of the loader over arbitrary input."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from fractions import Fraction

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.routing.conditions import OPS, Check, Not
from worker.routing.engine import decide, eligible
from worker.routing.facts import LeadFacts, MessageFacts, RoutingState
from worker.routing.loader import RuleFileError, load_rules
from worker.routing.schema import Assign, DateRange, Executive, Rule, RuleSet

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
LEAVE = (DateRange(date(2026, 6, 1), date(2026, 6, 30)),)
NO_LEAD = LeadFacts({})

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Why an executive is (not) available: eligible, inactive, away today, or at capacity.
availability = st.sampled_from(["ok", "inactive", "away", "full"])


def executive(index: int, why: str, weight: int = 1) -> Executive:
    return Executive(
        f"e{index}",
        f"Executive {index}",
        None,
        active=why != "inactive",
        away=LEAVE if why == "away" else (),
        capacity=3 if why == "full" else None,
        weight=weight,
    )


def one_rule(strategy: str, executives: list[Executive]) -> RuleSet:
    assign = Assign(strategy, tuple(e.id for e in executives))
    return RuleSet(
        {e.id: e for e in executives},
        (Rule("r", 0, None, assign, None, 1),),
        "UTC",
        False,
        "<test>",
    )


def full_state(executives: list[Executive], **kwargs: object) -> dict[str, int]:
    """Open-lead counts that put the 'full' executives at their capacity."""
    return {e.id: e.capacity for e in executives if e.capacity is not None}


@FAST
@given(
    whys=st.lists(availability, min_size=1, max_size=7).filter(lambda w: "ok" in w),
    leads=st.integers(0, 60),
    start=st.integers(0, 50),
)
def test_round_robin_shares_leads_evenly_among_the_eligible(
    whys: list[str], leads: int, start: int
) -> None:
    team = [executive(i, why) for i, why in enumerate(whys)]
    rules = one_rule("round_robin", team)
    open_leads = full_state(team)
    rotation = {"r": start}
    counts: Counter[str | None] = Counter()
    for _ in range(leads):
        decision = decide(rules, NO_LEAD, None, RoutingState(open_leads, rotation), NOW)
        counts[decision.executive] += 1
        assert decision.rotation is not None and decision.rotation[0] == "r"
        rotation = {"r": decision.rotation[1]}
    k = whys.count("ok")
    for member, why in zip(team, whys, strict=True):
        if why == "ok":
            assert counts[member.id] in (leads // k, -(-leads // k)), counts
        else:
            assert counts[member.id] == 0
    assert None not in counts


@FAST
@given(
    team_spec=st.lists(
        st.tuples(st.integers(0, 12), st.none() | st.integers(0, 12), st.booleans()),
        min_size=1,
        max_size=8,
    )
)
def test_load_balancing_picks_a_least_loaded_eligible_executive(
    team_spec: list[tuple[int, int | None, bool]],
) -> None:
    team = [
        Executive(f"e{i}", f"E{i}", None, active=active, capacity=capacity)
        for i, (_, capacity, active) in enumerate(team_spec)
    ]
    state = RoutingState(open_leads={f"e{i}": spec[0] for i, spec in enumerate(team_spec)})
    decision = decide(one_rule("load_balancing", team), NO_LEAD, None, state, NOW)
    candidates = [e.id for e in team if eligible(e, state, NOW, "UTC")[0]]
    if not candidates:
        assert decision.executive is None
        assert decision.reason.startswith("no rule assigned the lead: r: matched, but nobody")
        return
    fewest = min(state.open_leads[c] for c in candidates)
    assert decision.executive in candidates
    assert state.open_leads[decision.executive] == fewest
    assert decision.executive == next(c for c in candidates if state.open_leads[c] == fewest)


@FAST
@given(
    weights=st.lists(st.integers(1, 10), min_size=1, max_size=8),
    leads=st.integers(1, 80),
)
def test_weighted_shares_stay_within_one_of_the_quota(weights: list[int], leads: int) -> None:
    team = [executive(i, "ok", weight) for i, weight in enumerate(weights)]
    rules = one_rule("weighted", team)
    total = sum(weights)
    assigned: Counter[tuple[str, str]] = Counter()
    for step in range(1, leads + 1):
        decision = decide(rules, NO_LEAD, None, RoutingState(assigned=dict(assigned)), NOW)
        assert decision.executive is not None
        assigned[("r", decision.executive)] += 1
        for member in team:  # after every lead, not only at the end
            quota = Fraction(step * member.weight, total)
            assert abs(assigned[("r", member.id)] - quota) < 1, (step, assigned)


@FAST
@given(
    weights=st.lists(st.integers(1, 10), min_size=2, max_size=6),
    away=st.integers(0, 5),
    leads=st.integers(1, 40),
)
def test_weighted_shares_among_the_eligible_when_someone_is_away(
    weights: list[int], away: int, leads: int
) -> None:
    away %= len(weights)
    team = [executive(i, "away" if i == away else "ok", w) for i, w in enumerate(weights)]
    rules = one_rule("weighted", team)
    present = [m for m in team if m.id != f"e{away}"]
    total = sum(m.weight for m in present)
    assigned: Counter[tuple[str, str]] = Counter()
    for _ in range(leads):
        decision = decide(rules, NO_LEAD, None, RoutingState(assigned=dict(assigned)), NOW)
        assert decision.executive is not None and decision.executive != f"e{away}"
        assigned[("r", decision.executive)] += 1
    for member in present:
        assert abs(assigned[("r", member.id)] - Fraction(leads * member.weight, total)) < 1


# ------------------------------------------------------------------------------------ conditions

texts = st.text(alphabet="aAbBß.@ 1-", max_size=6)
fact = st.none() | st.booleans() | st.integers(-5, 5) | texts | st.lists(texts, max_size=3)
operands = {
    "exists": st.booleans(),
    "equals": st.integers(-5, 5) | texts.filter(str.strip) | st.booleans(),
    "not_equals": st.integers(-5, 5) | texts.filter(str.strip) | st.booleans(),
    "in": st.lists(st.integers(-5, 5) | texts.filter(str.strip), min_size=1, max_size=3),
    "contains": texts.filter(bool),
    "regex": st.sampled_from(["a", "^b", "1$", r"\.", "a|b"]),
    "starts_with": texts.filter(bool),
    "ends_with": texts.filter(bool),
    "gt": st.integers(-5, 5),
    "gte": st.integers(-5, 5),
    "lt": st.integers(-5, 5),
    "lte": st.integers(-5, 5),
}


@st.composite
def checks(draw: st.DrawFn) -> Check:
    op = draw(st.sampled_from(OPS))
    operand = draw(operands[op])
    return Check("field", "custom.x", op, tuple(operand) if isinstance(operand, list) else operand)


@FAST
@given(check=checks(), value=fact)
def test_not_inverts_every_check_and_keeps_its_reasons(check: Check, value: object) -> None:
    facts = LeadFacts({"custom": {"x": value}})
    matched, reasons = check.evaluate(facts, None)
    assert Not(check).evaluate(facts, None) == (not matched, reasons)
    assert len(reasons) == 1 and reasons[0].startswith("custom.x")


@FAST
@given(check=checks(), value=fact)
def test_a_check_reads_lead_fields_and_message_headers_alike(check: Check, value: object) -> None:
    as_field = check.evaluate(LeadFacts({"custom": {"x": value}}), None)[0]
    header = Check("header", "X-Value", check.op, check.value)
    items = value if isinstance(value, list) else [] if value is None else [value]
    headers = {"x-value": tuple(items)}
    as_header = header.evaluate(NO_LEAD, MessageFacts(headers=headers))[0]
    # Headers hold text; the field may hold booleans or numbers that text cannot mimic.
    if all(isinstance(v, str) for v in items):
        assert as_header == as_field


# ------------------------------------------------------------------------------------ loader

WORDS = [
    "timezone",
    "reassign_unavailable",
    "executives",
    "rules",
    "id",
    "name",
    "email",
    "active",
    "away",
    "from",
    "to",
    "capacity",
    "weight",
    "priority",
    "when",
    "assign",
    "schedule",
    "strategy",
    "field",
    "map",
    "days",
    "hours",
    "all",
    "any",
    "not",
    "message",
    "header",
    *OPS,
]
SCALARS = [
    "alice",
    "bob",
    "company",
    "subject",
    "custom.x",
    "round_robin",
    "load_balancing",
    "by_field",
    "weighted",
    "mon",
    "09:00-18:00",
    "22:00-06:00",
    "UTC",
    "Europe/Berlin",
    "(",
    "a@b.example",
]
scalar = (
    st.none()
    | st.booleans()
    | st.integers(-2, 60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31))
    | st.sampled_from(WORDS + SCALARS)
)
value = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(WORDS), inner, max_size=4)
    ),
    max_leaves=12,
)
rule_files = st.fixed_dictionaries(
    {
        "executives": st.lists(
            st.fixed_dictionaries({"id": st.sampled_from(["alice", "bob"])})
            | st.dictionaries(st.sampled_from(WORDS), value, max_size=3),
            max_size=3,
        ),
        "rules": st.lists(st.dictionaries(st.sampled_from(WORDS), value, max_size=5), max_size=3),
    },
    optional={"timezone": value, "reassign_unavailable": value},
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=rule_files | st.dictionaries(st.sampled_from(WORDS), value, max_size=4))
def test_loader_reports_problems_and_never_crashes(document: dict[str, object]) -> None:
    text = yaml.safe_dump(document, sort_keys=False)
    try:
        rules = load_rules(text, "fuzz.yaml")
    except RuleFileError as error:
        lines = text.count("\n") + 1
        assert error.problems
        assert all(1 <= p.line <= lines and p.column >= 1 for p in error.problems), error
        return
    decide(rules, NO_LEAD, MessageFacts(), RoutingState(), NOW)


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=" \t\n-:{}[],&*!|>'\"#%@`?ab1", max_size=80))
def test_loader_survives_any_text(text: str) -> None:
    try:
        load_rules(text)
    except RuleFileError as error:
        assert all(p.line >= 1 and p.column >= 1 for p in error.problems)
