"""load_rules(): every problem is reported at its line and column, and good files load."""

from __future__ import annotations

import textwrap
from datetime import date, time
from pathlib import Path

import pytest

from worker.errors import RuleError
from worker.routing.conditions import KINDS, OPS, AllOf, AnyOf, Check, Condition, Not
from worker.routing.loader import Problem, RuleFileError, load_rules, load_rules_file
from worker.routing.schema import STRATEGIES, DateRange, RuleSet

RULES = Path(__file__).resolve().parents[2] / "rules"

TEAM = """\
executives:
  - id: alice
  - id: bob
  - id: carol
rules:
"""
"""A valid head: rules appended below it start at line 6."""


def problems(text: str) -> list[Problem]:
    with pytest.raises(RuleFileError) as caught:
        load_rules(textwrap.dedent(text), "team.yaml")
    return caught.value.problems


def only(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def at(problem: Problem) -> tuple[int, int]:
    return problem.line, problem.column


def walk(condition: Condition | None) -> list[Condition]:
    if condition is None:
        return []
    if isinstance(condition, AllOf | AnyOf):
        return [condition, *(c for item in condition.items for c in walk(item))]
    if isinstance(condition, Not):
        return [condition, *walk(condition.item)]
    return [condition]


# ------------------------------------------------------------------------------------ good files


def test_example_yaml_loads_and_shows_every_feature() -> None:
    rules = load_rules_file(RULES / "example.yaml")
    checks = [c for rule in rules.rules for c in walk(rule.when) if isinstance(c, Check)]
    nodes = {type(c) for rule in rules.rules for c in walk(rule.when)}
    assert {c.op for c in checks} == set(OPS)
    assert {c.kind for c in checks} == set(KINDS)
    assert {AllOf, AnyOf, Not, Check} <= nodes
    assert any(c.name.startswith("custom.") for c in checks)
    assert {r.assign.strategy for r in rules.rules} == set(STRATEGIES)
    assert any(r.assign.map for r in rules.rules)
    assert any(r.when is None for r in rules.rules)
    schedules = [r.schedule for r in rules.rules if r.schedule is not None]
    assert any(s.start and s.end and s.end < s.start for s in schedules), "an overnight window"
    assert any(s.timezone != rules.timezone for s in schedules)
    executives = list(rules.executives.values())
    assert any(not e.active for e in executives)
    assert any(e.away for e in executives)
    assert any(e.capacity is not None for e in executives)
    assert any(e.weight != 1 for e in executives)
    assert rules.timezone == "Asia/Bangkok"
    assert rules.reassign_unavailable is True
    priorities = [r.priority for r in rules.rules]
    assert priorities == sorted(priorities, reverse=True)


def test_assignment_yaml_is_the_demo_team() -> None:
    rules = load_rules_file(RULES / "assignment.yaml")
    assert list(rules.executives) == ["alice", "bob", "carol"]
    assert all(str(e.email).endswith("@northwind.example") for e in rules.executives.values())
    assert rules.rules[-1].when is None, "a catch-all comes last"
    assert rules.source.endswith("assignment.yaml")


def test_a_full_rule_set_is_parsed_into_the_schema() -> None:
    rules = load_rules(
        textwrap.dedent(
            """\
            timezone: Europe/Berlin
            reassign_unavailable: true
            executives:
              - id: alice
                name: Alice Chan
                email: alice@example.com
                away: [{from: 2026-12-20, to: "2027-01-03"}]
                capacity: 50
                weight: 2
              - {id: bob, active: false, capacity: null}
            rules:
              - name: second
                assign: {strategy: round_robin, to: [alice, bob]}
              - name: first
                priority: 10
                when: {field: custom.tier, equals: gold}
                schedule: {days: [mon, Friday], hours: "22:00-06:00"}
                assign: {strategy: by_field, field: territory, map: {EU: alice, 7: bob}}
              - name: third
                assign: {strategy: weighted, to: [alice]}
            """
        ),
        "x.yaml",
    )
    assert isinstance(rules, RuleSet)
    alice = rules.executive("alice")
    assert alice is not None
    assert alice.name == "Alice Chan"
    assert alice.email == "alice@example.com"
    assert alice.away == (DateRange(date(2026, 12, 20), date(2027, 1, 3)),)
    assert (alice.capacity, alice.weight, alice.active) == (50, 2, True)
    bob = rules.executives["bob"]
    assert (bob.name, bob.email, bob.active, bob.capacity) == ("bob", None, False, None)
    assert rules.executive("nobody") is None
    assert [r.name for r in rules.rules] == ["first", "second", "third"]
    assert [r.line for r in rules.rules] == [14, 12, 19]
    first = rules.rules[0]
    assert first.when == Check("field", "custom.tier", "equals", "gold")
    assert first.assign.map == (("EU", "alice"), ("7", "bob"))
    assert first.schedule is not None
    assert first.schedule.days == frozenset({0, 4})
    assert (first.schedule.start, first.schedule.end) == (time(22), time(6))
    assert first.schedule.timezone == "Europe/Berlin", "defaults to the file's timezone"
    assert first.schedule.text == "mon,fri 22:00-06:00 Europe/Berlin"
    assert (rules.timezone, rules.reassign_unavailable, rules.source) == (
        "Europe/Berlin",
        True,
        "x.yaml",
    )
    hash(first), "rules and conditions are hashable"


def test_equal_priorities_keep_file_order_and_missing_priority_is_zero() -> None:
    body = "".join(
        f"  - name: {name}\n{prio}    assign: {{strategy: round_robin, to: [alice]}}\n"
        for name, prio in [
            ("a", ""),
            ("b", "    priority: -1\n"),
            ("c", "    priority: 5\n"),
            ("d", ""),
            ("e", "    priority: 5\n"),
            ("f", "    priority: 0\n"),
        ]
    )
    rules = load_rules(TEAM + body)
    assert [r.name for r in rules.rules] == ["c", "e", "a", "d", "f", "b"]


def test_aliases_are_followed() -> None:
    rules = load_rules(
        TEAM
        + textwrap.dedent(
            """\
              - name: a
                when: &big {field: custom.budget, gt: 1000}
                assign: {strategy: round_robin, to: &team [alice, bob]}
              - name: b
                when: {not: *big}
                assign: {strategy: load_balancing, to: *team}
            """
        )
    )
    assert rules.rules[1].when == Not(Check("field", "custom.budget", "gt", 1000))
    assert rules.rules[1].assign.to == ("alice", "bob")


# ------------------------------------------------------------------------------------ problems
# In these texts » marks where the problem must be reported; it is removed before loading.

MARK = "»"


def locate(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The text without marks, and the 1-based (line, column) of each mark in order."""
    spots: list[tuple[int, int]] = []
    lines = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        while MARK in line:
            column = line.index(MARK) + 1
            spots.append((number, column))
            line = line.replace(MARK, "", 1)
        lines.append(line)
    return "".join(lines), spots


def reported(text: str) -> tuple[list[Problem], list[tuple[int, int]]]:
    """(problems, marked spots) for a marked rule file."""
    clean, spots = locate(textwrap.dedent(text))
    return problems(clean), spots


def only_at_mark(text: str, words: str) -> Problem:
    found, spots = reported(text)
    assert [at(p) for p in found] == spots, found
    assert len(found) == 1
    assert words in found[0].message, found[0]
    return found[0]


def rule(body: str) -> str:
    """A one-rule file for the team, ``body`` being the rule's lines after ``- name: a``."""
    return TEAM + "  - name: a\n" + textwrap.indent(textwrap.dedent(body), "    ")


def test_unknown_key_points_at_the_key() -> None:
    problem = only_at_mark(
        rule(
            """\
            assign: {strategy: round_robin, to: [alice]}
            »schedul: {days: [mon]}
            """
        ),
        "unknown key 'schedul'",
    )
    assert "did you mean 'schedule'" in problem.message


def test_a_misspelled_required_key_is_one_problem_not_two() -> None:
    problem = only_at_mark(rule("»asign: {strategy: round_robin, to: [alice]}\n"), "asign")
    assert "did you mean 'assign'" in problem.message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("timezone: UTC\n»team: []\nexecutives: []\nrules: []\n", "'team' in the rule file"),
        (
            "executives:\n  - id: alice\n    »mail: a@x.example\nrules: []\n",
            "'mail' in an executive",
        ),
        (rule("assign: {strategy: round_robin, to: [alice], »who: bob}\n"), "'who' in assign"),
        (
            rule(
                "when: {field: company, exists: true, »also: 1}\nassign: {strategy: by_field}\n"
            ).replace("by_field}", "by_field, field: name}"),
            "'also' in a condition",
        ),
        (
            rule(
                "schedule: {days: [mon], »zone: UTC}\nassign: {strategy: round_robin, to: [bob]}\n"
            ),
            "'zone' in schedule",
        ),
    ],
    ids=["top", "executive", "assign", "condition", "schedule"],
)
def test_unknown_keys_anywhere(text: str, words: str) -> None:
    only_at_mark(text, "unknown key " + words)


def test_unknown_key_in_an_away_period() -> None:
    found, spots = reported(
        "executives:\n  - id: alice\n    away: [{from: 2026-01-01, »until: 2026-01-02}]\n"
        "rules: []\n"
    )
    assert spots[0] in [at(p) for p in found]
    assert any("unknown key 'until' in an away period" in p.message for p in found)


def test_unknown_executive_in_to_points_at_the_id() -> None:
    problem = only_at_mark(
        rule("assign: {strategy: round_robin, to: [alice, »dave]}\n"), "unknown executive 'dave'"
    )
    assert problem.message.endswith("in to; executives: alice, bob, carol")


def test_unknown_executives_in_block_lists_and_maps() -> None:
    found, spots = reported(
        rule(
            """\
            assign:
              strategy: by_field
              field: territory
              map:
                EU: »alicia
              to:
                - bob
                - »erin
            """
        )
    )
    assert [at(p) for p in found] == spots
    assert "unknown executive 'alicia' in map (did you mean 'alice'?)" in found[0].message
    assert "unknown executive 'erin' in to" in found[1].message


def test_bad_regex_points_at_the_pattern() -> None:
    problem = only_at_mark(
        rule(
            """\
            when: {message: subject, regex: »"quote(s"}
            assign: {strategy: round_robin, to: [alice]}
            """
        ),
        "bad regex /quote(s/: missing ): quote(s — rule patterns use RE2 syntax",
    )
    assert problem.message.startswith("bad regex")


def test_unknown_field_points_at_the_name() -> None:
    only_at_mark(
        rule(
            """\
            when:
              any:
                - {field: »compnay, exists: true}
            assign: {strategy: round_robin, to: [alice]}
            """
        ),
        "unknown field 'compnay' (did you mean 'company'?)",
    )


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        ('{field: company, exists: »"yes"}', "exists takes true or false, not a string ('yes')"),
        ("{field: company, exists: »1}", "exists takes true or false, not a number (1)"),
        ("{field: company, in: »Acme}", "in takes a list, not a string ('Acme')"),
        ("{field: company, in: »[]}", "in needs at least one value"),
        ("{field: company, in: »[a, [b]]}", "in takes a string, number or true/false, not a list"),
        ("{field: company, contains: »7}", "contains takes a non-empty string, not a number"),
        ("{header: X-Score, gt: »high}", "gt takes a number, not a string ('high')"),
        ("{header: X-Score, lte: ».nan}", "lte takes a number"),
        ("{field: company, gt: »5}", "gt compares numbers; company is text"),
        ("{message: subject, lt: »5}", "lt compares numbers; subject is text"),
        ("{field: company, equals: »2026-01-01}", "(quote dates)"),
        ("{field: company, equals: »[a]}", "equals takes a string, number or true/false"),
        ("{field: company, equals:» }", "not an empty value"),
        ("{field: is_organization, equals: »yes please}", "takes true or false"),
        ("{message: has_attachment, contains: »pdf}", "has_attachment is true or false"),
        ("{message: »subjet, exists: true}", "unknown message fact 'subjet'"),
        ("{header: »'X Bad', exists: true}", "bad header name"),
        ("{field: »custom., exists: true}", "custom fields are named custom.<key>"),
        ("{field: »[company], exists: true}", "field must be a non-empty string"),
        ("{field: company, regex: »'(?<'}", "bad regex"),
        ("{field: company, regex: »!!binary aGk=}", "takes a non-empty string"),
    ],
)
def test_wrong_types_point_at_the_value(condition: str, words: str) -> None:
    only_at_mark(rule(f"when: {condition}\nassign: {{strategy: round_robin, to: [bob]}}\n"), words)


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        ("»{field: company}", "a condition needs an operator"),
        ("»{exists: true}", "a condition needs field, message or header"),
        ("{field: company, »message: subject, exists: true}", "tests one fact"),
        ("{field: company, exists: true, »equals: x}", "one operator per condition"),
        ("{all: [], »field: company}", "has no other keys"),
        ("{all: »[]}", "all needs at least one condition"),
        ("{any: »{field: company, exists: true}}", "any must be a list, not a mapping"),
        ("»[{field: company, exists: true}]", "a condition must be a mapping, not a list"),
        ("{not: »company}", "a condition must be a mapping, not a string"),
        ("»!!set {field: company, exists: true}", "unsupported YAML tag"),
    ],
)
def test_malformed_conditions(condition: str, words: str) -> None:
    found, spots = reported(
        rule(f"when: {condition}\nassign: {{strategy: round_robin, to: [bob]}}\n")
    )
    assert at(found[0]) == spots[0], found
    assert words in found[0].message


def test_duplicate_rule_name_points_at_the_second_name() -> None:
    problem = only_at_mark(
        TEAM
        + """\
  - name: a
    assign: {strategy: round_robin, to: [alice]}
  - name: »a
    assign: {strategy: round_robin, to: [bob]}
""",
        "duplicate rule name",
    )
    assert problem.message == "duplicate rule name 'a' (first at line 6)"


def test_duplicate_executive_id_and_duplicate_keys() -> None:
    found, spots = reported(
        "executives:\n  - {id: alice}\n  - {id: »alice, weight: 1, »weight: 2}\nrules: []\n"
    )
    assert [(at(p), p.message) for p in found] == [
        (spots[0], "duplicate executive id 'alice' (first at line 2)"),
        (spots[1], "duplicate key 'weight' in an executive"),
    ]


def test_missing_assign_points_at_the_rule() -> None:
    problem = only_at_mark(
        TEAM + "  - »name: lonely\n    when: {field: company, exists: true}\n", "needs an assign"
    )
    assert problem.message.startswith("rule 'lonely' needs an assign")


@pytest.mark.parametrize(
    ("assign", "words"),
    [
        ("»{to: [alice]}", "assign needs a strategy"),
        ("{strategy: »random, to: [alice]}", "unknown strategy 'random'"),
        ("{strategy: »round-robin, to: [alice]}", "did you mean 'round_robin'"),
        ("»{strategy: round_robin}", "round_robin needs 'to'"),
        ("{strategy: load_balancing, to: »[]}", "needs at least one executive"),
        ("{strategy: by_field, field: territory, to: »[]}", "needs at least one executive"),
        ("{strategy: weighted, to: [alice, »alice]}", "listed twice"),
        ("{strategy: weighted, to: »alice}", "to must be a list"),
        ("»{strategy: by_field, to: [alice]}", "by_field needs 'field'"),
        ("{strategy: by_field, field: »colour}", "unknown field 'colour'"),
        ("{strategy: round_robin, to: [bob], »field: territory}", "only used by the by_field"),
        ("{strategy: round_robin, to: [bob], »map: {x: bob}}", "only used by the by_field"),
        ("{strategy: by_field, field: territory, to: [bob], map: {EU: »alice}}", "not in to"),
        ("{strategy: by_field, field: territory, map: {EU: bob, »eu: carol}}", "twice"),
        ("{strategy: by_field, field: territory, map: »[bob]}", "map must be a mapping"),
        ("{strategy: by_field, field: territory, map: »{}}", "at least one value"),
        ("»[round_robin, alice]", "assign must be a mapping"),
    ],
)
def test_assign_problems(assign: str, words: str) -> None:
    only_at_mark(rule(f"assign: {assign}\n"), words)


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ("{days: [mon, »funday]}", "unknown day 'funday'"),
        ("{days: »[]}", "days needs at least one day"),
        ("{days: »mon}", "days must be a list"),
        ("{hours: »9-5}", 'hours must look like "09:00-18:00"'),
        ("{hours: »'25:00-26:00'}", "hours must look like"),
        ("{hours: »'09:60-10:00'}", "hours must look like"),
        ("{hours: »'24:00-10:00'}", "hours must look like"),
        ("{hours: »'09:00-09:00'}", "same time"),
        ("{days: [mon], timezone: »Mars/Olympus}", "unknown timezone 'Mars/Olympus'"),
        ("{days: [mon], timezone: »europe/berlin}", "did you mean 'Europe/Berlin'"),
        ("»{}", "a schedule needs days, hours or both"),
    ],
)
def test_schedule_problems(schedule: str, words: str) -> None:
    only_at_mark(
        rule(f"schedule: {schedule}\nassign: {{strategy: round_robin, to: [bob]}}\n"), words
    )


@pytest.mark.parametrize(
    ("executive", "words"),
    [
        ("»{name: Nobody}", "an executive needs an id"),
        ("{id: »''}", "id must be a non-empty string"),
        ("{id: »a b}", "must not contain spaces"),
        ("{id: »7}", "id must be a non-empty string, not a number (7)"),
        ("{id: a, email: »not-an-address}", "is not an address"),
        ("{id: a, active: »maybe}", "active must be true or false"),
        ("{id: a, capacity: »-1}", "capacity must be at least 0"),
        ("{id: a, weight: »0}", "weight must be at least 1"),
        ("{id: a, weight: »1.5}", "weight must be a whole number"),
        ("{id: a, weight: »true}", "weight must be a whole number"),
        ("{id: a, away: [{from: 2026-02-01, to: »2026-01-01}]}", "before it starts"),
        ("{id: a, away: [»{from: 2026-02-01}]}", "needs from and to"),
        ("{id: a, away: [{from: »2026-13-45, to: 2027-01-01}]}", "month must be in 1..12"),
        ("{id: a, away: [{from: »soon, to: 2027-01-01}]}", "must be a date"),
        ("{id: a, away: [{from: »2026-01-01 10:00:00, to: 2027-01-01}]}", "must be a date"),
        ("{id: a, away: »{from: 2026-01-01, to: 2027-01-01}}", "away must be a list"),
    ],
)
def test_executive_problems(executive: str, words: str) -> None:
    only_at_mark(f"executives:\n  - {executive}\nrules: []\n", words)


def test_yaml_syntax_error_has_the_marks_position() -> None:
    problem = only_at_mark(
        TEAM
        + """\
  - name: a
    assign: {strategy: round_robin, to: [alice]
  »- name: b
""",
        "YAML syntax error: ",
    )
    assert "while parsing a flow mapping" in problem.message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("executives:\n»\t- id: alice\n", "found character '\\t'"),
        ("executives: [alice\nrules»: []\n", "YAML syntax error"),
        ("a: b\na: [\n»", "YAML syntax error"),
        ("---\na: 1\n»---\nb: 2\n", "expected a single document"),
        ("executives: []\nrules: [»\x07]\n", "character '\\x07' is not allowed"),
        ("»", "the rule file is empty"),
        ("»# only a comment\n", "the rule file is empty"),
        ("»- a\n- b\n", "the rule file must be a mapping, not a list"),
        ("»executives: []\n", "missing key 'rules'"),
        ("»rules: []\n", "missing key 'executives'"),
        ("executives: »!!python/object:os.system []\nrules: []\n", "unsupported YAML tag"),
        ("executives: []\nrules:\n  - »!!python/name:os.system\n", "tagged"),
        ("executives: []\nrules: []\n»1: x\n", "keys must be names"),
        ("executives: []\nrules: »{}\n", "rules must be a list, not a mapping"),
    ],
)
def test_whole_file_problems(text: str, words: str) -> None:
    found, spots = reported(text)
    assert at(found[0]) == spots[0], found
    assert words in found[0].message


def test_recursive_alias_is_a_problem_not_a_hang() -> None:
    found, spots = reported(
        rule("when: »&c {not: *c}\nassign: {strategy: round_robin, to: [bob]}\n")
    )
    assert [(at(p), p.message) for p in found] == [
        (spots[0], "a condition contains itself (recursive alias)")
    ]


def test_shared_aliases_are_walked_once() -> None:
    """Aliases under the expansion cap (tests/unit/test_rule_bounds.py refuses the bombs)."""
    lines = [TEAM + "  - name: a", "    when:", "      all:"]
    lines.append("        - &c0 {field: company, exists: true}")
    for i in range(1, 9):
        lines.append(f"        - &c{i} {{all: [*c{i - 1}, *c{i - 1}, *c{i - 1}]}}")
    lines.append("    assign: {strategy: round_robin, to: [alice]}")
    rules = load_rules("\n".join(lines) + "\n")  # 3**8 paths, each condition built once
    assert rules.rules[0].name == "a"


def test_merge_keys_are_reported() -> None:
    found, spots = reported(rule("assign: {»<<: {strategy: round_robin}, to: [alice]}\n"))
    assert spots[0] in [at(p) for p in found]
    assert any("merge keys (<<) are not supported" in p.message for p in found)


def test_several_problems_in_one_file_are_all_reported_in_file_order() -> None:
    text, spots = locate(
        """\
timezone: »Mars/Base
executives:
  - {id: alice, capacity: »ten}
  - {id: »alice}
rules:
  - name: a
    when: {all: [{field: »compnay, exists: »"yes"}, {message: subject, regex: »"(x"}]}
    assign: {strategy: round_robin, to: [alice, »dave]}
  - name: »a
    assign: »{strategy: by_field}
  - »name: b
    schedule: {days: [mon, »funday], hours: »"9-5"}
  - name: c
    when: {header: X-Spam-Score, gt: »"high"}
    assign: {strategy: weighted, to: »[]}
"""
    )
    with pytest.raises(RuleFileError) as caught:
        load_rules(text, "team.yaml")
    found = caught.value.problems
    assert len(spots) == 14
    assert [at(p) for p in found] == spots
    assert str(caught.value) == "\n".join(str(p) for p in found)
    assert str(found[0]) == "team.yaml:1:11: unknown timezone 'Mars/Base'"
    assert isinstance(caught.value, RuleError)
    assert caught.value.exit_code == 2


def test_problem_formats_as_file_line_column_message() -> None:
    assert str(Problem("r.yaml", 3, 7, "bad")) == "r.yaml:3:7: bad"


def test_missing_file_is_one_problem_at_the_start(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(RuleFileError) as caught:
        load_rules_file(path)
    assert [(p.file, at(p)) for p in caught.value.problems] == [(str(path), (1, 1))]
    assert "no such rule file" in str(caught.value)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00bad", None], ids=["not-utf8", "directory"])
def test_unreadable_file_is_one_problem_at_the_start(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "rules.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(RuleFileError) as caught:
        load_rules_file(path)
    assert [at(p) for p in caught.value.problems] == [(1, 1)]


def test_a_file_loads_with_its_path_as_source(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(TEAM + "  - name: a\n    assign: {strategy: round_robin, to: [alice]}\n")
    assert load_rules_file(path).source == str(path)
    path.write_text(TEAM + "  - name: a\n")
    with pytest.raises(RuleFileError) as caught:
        load_rules_file(path)
    assert str(caught.value).startswith(f"{path}:6:5: ")


def test_check_validates_when_built_directly() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        Check("field", "nope", "exists", True)
    with pytest.raises(ValueError, match="bad regex"):
        Check("message", "subject", "regex", "(")
    with pytest.raises(ValueError, match="unknown operator"):
        Check("message", "subject", "like", "x")
    assert Check("field", "company", "in", ["a", "b"]).value == ("a", "b")  # type: ignore[arg-type]
