"""decide(): conditions, priorities, schedules, eligibility and strategies, with their traces."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from tests.rulegen import generated_rules
from worker.routing.engine import (
    Decision,
    TraceEntry,
    decide,
    eligible,
    message_facts_tested,
)
from worker.routing.facts import LeadFacts, MessageFacts, RoutingState
from worker.routing.loader import load_rules
from worker.routing.schema import DateRange, Executive, RuleSet, Schedule

WEDNESDAY = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)

TEAM = """\
executives:
  - {id: alice, email: alice@example.com}
  - {id: bob, email: bob@example.com}
  - {id: carol, email: carol@example.com}
"""


def ruleset(rules: str, team: str = TEAM, head: str = "") -> RuleSet:
    """Load ``rules`` (a YAML list, or ``[]``) after the team and any top-level ``head``."""
    body = textwrap.dedent(rules)
    rules_part = "rules: []\n" if body.strip() == "[]" else "rules:\n" + body
    return load_rules(textwrap.dedent(head) + team + rules_part)


def lead(**fields: object) -> LeadFacts:
    return LeadFacts(fields)


def run(
    rules: RuleSet,
    facts: LeadFacts | None = None,
    message: MessageFacts | None = None,
    state: RoutingState | None = None,
    now: datetime = WEDNESDAY,
) -> Decision:
    return decide(rules, facts or lead(), message, state or RoutingState(), now)


def one_condition(condition: str) -> RuleSet:
    return ruleset(
        f"""\
        - name: r
          when: {condition}
          assign: {{strategy: round_robin, to: [alice]}}
        """
    )


# ------------------------------------------------------------------------------------ conditions

MESSAGE = MessageFacts(
    sender="buyer@shop.co.th",
    sender_domain="shop.co.th",
    subject="Request for QUOTE: 20 pumps",
    body="Hello,\nplease send a quotation.\n",
    to=("info@northwind.example", "Sales@Northwind.example"),
    cc=(),
    charset=("tis-620", "utf-8"),
    language="th",
    has_attachment=True,
    attachment_names=("spec.PDF", "photo.jpg"),
    headers={"x-priority": ("1 (Highest)",), "x-spam-score": ("3.5",), "received": ("a", "b")},
)

LEAD = lead(
    company="ACME Pumps",
    email="buyer@shop.co.th",
    name="Somchai",
    status="Open",
    source="Email",
    is_organization=True,
    phone="+66 2 123 4567",
    territory="  ",
    custom={"budget": "5000", "seats": 12, "newsletter": "true", "vip": True, "tags": ["a", "b"]},
)


@pytest.mark.parametrize(
    ("condition", "matched", "reason"),
    [
        # exists
        ("{field: company, exists: true}", True, "company exists"),
        ("{field: industry, exists: true}", False, "industry: no value"),
        ("{field: territory, exists: true}", False, "territory: no value"),  # whitespace only
        ("{field: industry, exists: false}", True, "industry: no value"),
        ("{field: company, exists: false}", False, "company exists"),
        ("{message: cc, exists: false}", True, "cc: no value"),
        ("{message: to, exists: true}", True, "to exists"),
        ("{field: custom.tags, exists: true}", True, "custom.tags exists"),
        ("{field: custom.nothing, exists: true}", False, "custom.nothing: no value"),
        # equals / not_equals: text ignores case, numbers by value, booleans
        ("{field: company, equals: acme pumps}", True, "company equals 'acme pumps'"),
        ("{field: company, equals: ACME}", False, "company does not equal 'ACME'"),
        ("{field: industry, equals: x}", False, "industry: no value"),
        ("{field: custom.budget, equals: 5000}", True, "custom.budget equals 5000"),
        ("{field: custom.seats, equals: '12'}", True, "custom.seats equals '12'"),
        ("{field: custom.seats, equals: 12.0}", True, "custom.seats equals 12.0"),
        ("{field: is_organization, equals: true}", True, "is_organization equals true"),
        ("{field: is_organization, equals: false}", False, "is_organization does not equal false"),
        ("{field: custom.newsletter, equals: true}", True, "custom.newsletter equals true"),
        ("{field: custom.vip, equals: 'TRUE'}", True, "custom.vip equals 'TRUE'"),
        ("{message: has_attachment, equals: true}", True, "has_attachment equals true"),
        ("{field: company, not_equals: Globex}", True, "company does not equal 'Globex'"),
        ("{field: company, not_equals: acme PUMPS}", False, "company equals 'acme PUMPS'"),
        ("{field: industry, not_equals: Retail}", True, "industry: no value"),
        # in
        ("{field: status, in: [Lead, open]}", True, "status in ['Lead', 'open']"),
        ("{field: status, in: [Lead, Replied]}", False, "status not in ['Lead', 'Replied']"),
        ("{field: custom.seats, in: [10, 12]}", True, "custom.seats in [10, 12]"),
        ("{field: custom.tags, in: [b, c]}", True, "custom.tags in ['b', 'c']"),
        # text operators: ignore case; list facts pass when any element does
        ("{message: subject, contains: quote}", True, "subject contains 'quote'"),
        ("{message: body, contains: invoice}", False, "body does not contain 'invoice'"),
        ("{message: to, contains: 'sales@'}", True, "to contains 'sales@'"),
        ("{message: charset, contains: tis}", True, "charset contains 'tis'"),
        ("{message: subject, regex: '\\bquote\\b'}", True, "subject matches /\\bquote\\b/"),
        ("{message: subject, regex: '^quote'}", False, "subject does not match /^quote/"),
        ("{message: body, regex: '^please'}", False, "body does not match /^please/"),
        ("{message: body, regex: '(?m)^please'}", True, "body matches /(?m)^please/"),
        ("{message: attachment_names, regex: '\\.pdf$'}", True, "attachment_names matches"),
        ("{field: phone, starts_with: '+66'}", True, "phone starts with '+66'"),
        ("{field: phone, starts_with: '66'}", False, "phone does not start with '66'"),
        ("{message: sender_domain, ends_with: .TH}", True, "sender_domain ends with '.TH'"),
        ("{field: email_domain, ends_with: .co.th}", True, "email_domain ends with '.co.th'"),
        ("{field: email, ends_with: '.example'}", False, "email does not end with '.example'"),
        ("{message: language, equals: th}", True, "language equals 'th'"),
        ("{message: sender, equals: BUYER@shop.co.th}", True, "sender equals"),
        # numbers: on custom fields and headers, text that reads as a number counts
        ("{field: custom.budget, gt: 1000}", True, "custom.budget > 1000"),
        ("{field: custom.budget, gt: 5000}", False, "custom.budget is not > 5000"),
        ("{field: custom.budget, gte: 5000}", True, "custom.budget >= 5000"),
        ("{field: custom.seats, lt: 12.5}", True, "custom.seats < 12.5"),
        ("{field: custom.seats, lte: 11}", False, "custom.seats is not <= 11"),
        ("{field: custom.tags, gt: 1}", False, "custom.tags is not > 1"),  # not numbers
        ("{field: custom.vip, gt: 0}", False, "custom.vip is not > 0"),  # booleans are not
        ("{header: X-Spam-Score, lte: 2.5}", False, "header X-Spam-Score is not <= 2.5"),
        ("{header: X-Spam-Score, gt: 2.5}", True, "header X-Spam-Score > 2.5"),
        # headers: any case of the name; repeated headers are lists
        ("{header: X-PRIORITY, starts_with: '1'}", True, "header X-PRIORITY starts with '1'"),
        ("{header: received, equals: b}", True, "header received equals 'b'"),
        ("{header: X-Mailer, exists: true}", False, "header X-Mailer: no value"),
        ("{header: X-Mailer, exists: false}", True, "header X-Mailer: no value"),
    ],
)
def test_each_condition_op(condition: str, matched: bool, reason: str) -> None:
    decision = run(one_condition(condition), LEAD, MESSAGE)
    entry = decision.trace[0]
    assert entry.matched is matched, entry
    assert entry.reasons[0].startswith(reason), entry
    assert (decision.executive == "alice") is matched


@pytest.mark.parametrize(
    "condition",
    [
        "{message: subject, contains: quote}",
        "{message: subject, exists: false}",
        "{header: X-Priority, exists: false}",
        "{all: [{field: company, exists: true}, {message: language, equals: th}]}",
    ],
)
def test_message_conditions_fail_without_a_message(condition: str) -> None:
    entry = run(one_condition(condition), LEAD, None).trace[0]
    assert (entry.matched, entry.reasons) == (False, ("no message",))


def test_not_of_a_message_condition_without_a_message_holds() -> None:
    entry = run(one_condition("{not: {message: subject, contains: x}}"), LEAD, None).trace[0]
    assert (entry.matched, entry.reasons[:1]) == (True, ("no message",))


def test_lead_fields_may_be_absent_or_odd() -> None:
    rules = one_condition("{field: custom.budget, gt: 1}")
    assert not run(rules, lead()).trace[0].matched
    assert not run(rules, lead(custom=None)).trace[0].matched
    assert not run(rules, lead(custom="not a mapping")).trace[0].matched
    assert run(rules, lead(custom={"budget": " 2 "})).trace[0].matched
    assert run(rules, lead(custom={"budget": 1.5})).trace[0].matched
    assert not run(rules, lead(custom={"budget": "nan"})).trace[0].matched
    tags = one_condition("{field: custom.tags, contains: vip}")
    assert run(tags, lead(custom={"tags": {"VIP", None, ""}})).trace[0].matched
    assert not run(tags, lead(custom={"tags": [None, "", " "]})).trace[0].matched
    other = one_condition("{field: custom.when, equals: '2026-01-01'}")
    assert run(other, lead(custom={"when": date(2026, 1, 1)})).trace[0].matched


def test_email_domain_prefers_the_stored_value() -> None:
    rules = one_condition("{field: email_domain, equals: example.org}")
    assert run(rules, lead(email="a@example.org")).trace[0].matched
    assert run(rules, lead(email="a@x.com", email_domain="example.org")).trace[0].matched
    assert not run(rules, lead(email="no-at-sign")).trace[0].matched


# ------------------------------------------------------------------------------------ combinators


def test_all_holds_with_every_reason_and_fails_with_the_first_failure() -> None:
    rules = one_condition(
        "{all: [{field: company, exists: true}, {message: language, equals: th},"
        " {field: status, equals: Open}]}"
    )
    entry = run(rules, LEAD, MESSAGE).trace[0]
    assert entry.reasons == (
        "company exists",
        "language equals 'th'",
        "status equals 'Open'",
        "round_robin: alice (position 0 of 1)",
    )
    entry = run(rules, LEAD, MessageFacts(language="en")).trace[0]
    assert (entry.matched, entry.reasons) == (False, ("language does not equal 'th'",))


def test_any_holds_with_the_first_passing_item_and_fails_naming_all() -> None:
    rules = one_condition(
        "{any: [{field: industry, exists: true}, {message: language, equals: th},"
        " {field: company, exists: true}]}"
    )
    entry = run(rules, LEAD, MESSAGE).trace[0]
    assert entry.reasons[:1] == ("language equals 'th'",)
    entry = run(rules, lead(), MessageFacts(language="en")).trace[0]
    assert entry.reasons == (
        "none of: industry: no value; language does not equal 'th'; company: no value",
    )
    assert run(rules, lead(), MessageFacts(language="en")).trace[0] == entry, "memoised alike"


def test_not_inverts_and_keeps_the_evidence() -> None:
    rules = one_condition("{not: {message: sender_domain, in: [rival.example]}}")
    ok = run(rules, LEAD, MessageFacts(sender_domain="shop.example")).trace[0]
    assert ok.matched and ok.reasons[0] == "sender_domain not in ['rival.example']"
    bad = run(rules, LEAD, MessageFacts(sender_domain="RIVAL.example")).trace[0]
    assert not bad.matched and bad.reasons == ("sender_domain in ['rival.example']",)


def test_nested_combinators() -> None:
    rules = ruleset(
        """\
        - name: r
          when:
            all:
              - any: [{field: company, exists: true}, {field: is_organization, equals: true}]
              - not:
                  any:
                    - {message: subject, contains: unsubscribe}
                    - {header: List-Id, exists: true}
          assign: {strategy: round_robin, to: [alice]}
        """
    )
    assert run(rules, lead(company="X"), MessageFacts(subject="Hi")).executive == "alice"
    assert run(rules, lead(is_organization=True), MessageFacts(subject="Hi")).executive == "alice"
    assert run(rules, lead(), MessageFacts(subject="Hi")).executive is None
    listed = MessageFacts(subject="Hi", headers={"list-id": ("<x>",)})
    assert run(rules, lead(company="X"), listed).executive is None
    assert run(rules, lead(company="X"), MessageFacts(subject="UNSUBSCRIBE")).executive is None


def test_message_facts_tested_finds_nested_checks_only() -> None:
    rules = ruleset(
        """\
        - name: r
          when:
            all:
              - {field: company, exists: true}
              - not:
                  any:
                    - {message: language, equals: th}
                    - {header: List-Id, exists: true}
          assign: {strategy: round_robin, to: [alice]}
        - name: s
          when: {message: sender_domain, equals: example.com}
          assign: {strategy: round_robin, to: [bob]}
        - name: fallback
          assign: {strategy: round_robin, to: [carol]}
        """
    )
    assert message_facts_tested(rules) == {"language", "sender_domain"}
    assert message_facts_tested(ruleset("[]")) == frozenset()


def test_no_when_always_matches() -> None:
    rules = ruleset("- name: all\n  assign: {strategy: round_robin, to: [bob]}\n")
    decision = run(rules)
    assert decision.executive == "bob"
    assert decision.trace == (TraceEntry("all", True, ("round_robin: bob (position 0 of 1)",)),)


# ------------------------------------------------------------------------------------ order


def test_priority_decides_and_equal_priorities_keep_file_order() -> None:
    rules = ruleset(
        """\
        - name: low
          priority: -5
          assign: {strategy: round_robin, to: [carol]}
        - name: plain
          assign: {strategy: round_robin, to: [bob]}
        - name: first-high
          priority: 10
          when: {field: company, exists: true}
          assign: {strategy: round_robin, to: [alice]}
        - name: second-high
          priority: 10
          assign: {strategy: round_robin, to: [carol]}
        """
    )
    assert [r.name for r in rules.rules] == ["first-high", "second-high", "plain", "low"]
    assert run(rules, lead(company="X")).rule == "first-high"
    decision = run(rules, lead())
    assert decision.rule == "second-high"
    assert [e.rule for e in decision.trace] == ["first-high", "second-high"]
    assert decision.trace[0] == TraceEntry("first-high", False, ("company: no value",))


# ------------------------------------------------------------------------------------ schedules


def _at(rules: RuleSet, when: datetime) -> bool:
    return run(rules, now=when).rule == "scheduled"


def scheduled(schedule: str, head: str = "") -> RuleSet:
    return ruleset(
        f"""\
        - name: scheduled
          schedule: {schedule}
          assign: {{strategy: round_robin, to: [alice]}}
        - name: fallback
          assign: {{strategy: round_robin, to: [bob]}}
        """,
        head=head,
    )


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        # 2026-03-29: Berlin springs forward at 02:00 CET; 09:00 CEST is 07:00 UTC.
        (utc(2026, 3, 29, 6, 59), False),
        (utc(2026, 3, 29, 7, 0), True),
        (utc(2026, 3, 29, 15, 59), True),
        (utc(2026, 3, 29, 16, 0), False),
        # The day before, still CET: 09:00 is 08:00 UTC.
        (utc(2026, 3, 28, 7, 59), False),
        (utc(2026, 3, 28, 8, 0), True),
        (utc(2026, 3, 28, 16, 59), True),
        (utc(2026, 3, 28, 17, 0), False),
        # 2026-10-25: back to CET at 03:00 CEST; 09:00 CET is 08:00 UTC.
        (utc(2026, 10, 25, 7, 59), False),
        (utc(2026, 10, 25, 8, 0), True),
        (utc(2026, 10, 25, 16, 59), True),
        (utc(2026, 10, 25, 17, 0), False),
        # The day before, still CEST: 09:00 is 07:00 UTC.
        (utc(2026, 10, 24, 7, 0), True),
        (utc(2026, 10, 24, 16, 0), False),
    ],
)
def test_office_hours_follow_berlin_daylight_saving(moment: datetime, inside: bool) -> None:
    rules = scheduled("{hours: '09:00-18:00', timezone: Europe/Berlin}")
    assert _at(rules, moment) is inside


def test_weekdays_are_local_days_and_the_trace_names_the_schedule() -> None:
    rules = scheduled(
        "{days: [mon, tue, wed, thu, fri], hours: '09:00-18:00', timezone: Europe/Berlin}"
    )
    assert _at(rules, utc(2026, 3, 27, 16, 59))  # Friday 17:59 CET
    decision = run(rules, now=utc(2026, 3, 28, 10, 0))  # Saturday
    assert decision.rule == "fallback"
    assert decision.trace[0] == TraceEntry(
        "scheduled", False, ("outside schedule mon-fri 09:00-18:00 Europe/Berlin",)
    )
    inside = run(rules, now=utc(2026, 3, 27, 9, 0)).trace[0]
    assert inside.reasons[0] == "inside schedule mon-fri 09:00-18:00 Europe/Berlin"
    # Sunday 23:30 UTC is already Monday 00:30 in Berlin, but before opening time.
    assert not _at(rules, utc(2026, 3, 29, 23, 30))
    # Friday 23:30 UTC in Tokyo is Saturday: a days-only schedule uses the local day.
    tokyo = scheduled("{days: [sat], timezone: Asia/Tokyo}")
    assert _at(tokyo, utc(2026, 3, 6, 23, 30))
    assert not _at(tokyo, utc(2026, 3, 6, 14, 0))


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (utc(2026, 3, 6, 14, 59), False),  # Friday 21:59 in Bangkok
        (utc(2026, 3, 6, 15, 0), True),  # Friday 22:00
        (utc(2026, 3, 6, 17, 0), True),  # Saturday 00:00, still Friday's night
        (utc(2026, 3, 6, 22, 59), True),  # Saturday 05:59
        (utc(2026, 3, 6, 23, 0), False),  # Saturday 06:00: end is exclusive
        (utc(2026, 3, 7, 15, 0), False),  # Saturday 22:00: Saturday is not listed
        (utc(2026, 3, 5, 22, 0), False),  # Friday 05:00: Thursday's night, not listed
    ],
)
def test_overnight_window_belongs_to_the_day_it_starts(moment: datetime, inside: bool) -> None:
    rules = scheduled("{days: [fri], hours: '22:00-06:00'}", head="timezone: Asia/Bangkok\n")
    assert _at(rules, moment) is inside


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (utc(2026, 3, 28, 20, 59), False),  # Saturday 21:59 CET
        (utc(2026, 3, 28, 21, 0), True),  # Saturday 22:00 CET
        (utc(2026, 3, 29, 0, 30), True),  # Sunday 01:30 CET
        (utc(2026, 3, 29, 1, 30), True),  # Sunday 03:30 CEST (02:00-03:00 never happened)
        (utc(2026, 3, 29, 3, 59), True),  # Sunday 05:59 CEST
        (utc(2026, 3, 29, 4, 0), False),  # Sunday 06:00 CEST
    ],
)
def test_overnight_window_across_the_dst_change(moment: datetime, inside: bool) -> None:
    rules = scheduled("{days: [sat], hours: '22:00-06:00', timezone: Europe/Berlin}")
    assert _at(rules, moment) is inside


def test_an_hours_window_may_end_at_midnight() -> None:
    rules = scheduled("{hours: '18:00-24:00'}")
    assert _at(rules, utc(2026, 3, 4, 23, 59, 59))
    assert not _at(rules, utc(2026, 3, 5, 0, 0))
    assert rules.rules[0].schedule is not None
    assert rules.rules[0].schedule.text == "18:00-23:59 UTC"


def test_naive_now_is_taken_as_utc() -> None:
    rules = scheduled("{hours: '09:00-10:00'}")
    assert _at(rules, datetime(2026, 3, 4, 9, 30))
    assert not _at(rules, datetime(2026, 3, 4, 10, 30))


# ------------------------------------------------------------------------------------ eligibility

AWAY_TEAM = """\
executives:
  - {id: alice, away: [{from: 2026-12-20, to: 2027-01-03}]}
  - {id: bob, capacity: 50}
  - {id: carol, active: false}
  - {id: dave}
"""


def test_eligible_says_why_not() -> None:
    rules = ruleset("[]\n", team=AWAY_TEAM, head="timezone: Asia/Bangkok\n")
    state = RoutingState(open_leads={"bob": 50, "dave": 99})
    now = utc(2026, 12, 25, 12, 0)

    def why(executive_id: str, when: datetime = now, given: RoutingState = state) -> object:
        executive = rules.executive(executive_id)
        assert executive is not None
        return eligible(executive, given, when, rules.timezone)

    assert why("alice") == (False, "away until 2027-01-03")
    assert why("bob") == (False, "at capacity 50/50")
    assert why("bob", given=RoutingState(open_leads={"bob": 49})) == (True, "")
    assert why("carol") == (False, "inactive")
    assert why("dave") == (True, ""), "no capacity means unlimited"
    # Away dates are inclusive and read in the file's timezone (Bangkok, UTC+7).
    assert why("alice", utc(2026, 12, 19, 16, 59)) == (True, "")
    assert why("alice", utc(2026, 12, 19, 17, 0)) == (False, "away until 2027-01-03")
    assert why("alice", utc(2027, 1, 3, 16, 59)) == (False, "away until 2027-01-03")
    assert why("alice", utc(2027, 1, 3, 17, 0)) == (True, "")


def test_eligible_checks_inactive_first_then_away_then_capacity() -> None:
    executive = Executive(
        "x",
        "X",
        None,
        active=False,
        away=(DateRange(date(2026, 1, 1), date(2026, 12, 31)),),
        capacity=0,
    )
    now = utc(2026, 6, 1)
    assert eligible(executive, RoutingState(), now, "UTC") == (False, "inactive")
    active = Executive("x", "X", None, away=executive.away, capacity=0)
    assert eligible(active, RoutingState(), now, "UTC") == (False, "away until 2026-12-31")
    present = Executive("x", "X", None, capacity=0)
    assert eligible(present, RoutingState(), now, "UTC") == (False, "at capacity 0/0")


def test_nobody_eligible_falls_through_to_the_next_rule() -> None:
    rules = ruleset(
        """\
        - name: key-accounts
          priority: 10
          when: {field: company, exists: true}
          assign: {strategy: load_balancing, to: [alice, bob, carol]}
        - name: everyone
          assign: {strategy: round_robin, to: [alice, bob, carol, dave]}
        """,
        team=AWAY_TEAM,
    )
    state = RoutingState(open_leads={"bob": 50})
    decision = run(rules, lead(company="Acme"), state=state, now=utc(2026, 12, 25, 12))
    assert (decision.executive, decision.rule) == ("dave", "everyone")
    assert decision.trace[0] == TraceEntry(
        "key-accounts",
        False,
        (
            "matched, but nobody eligible: alice away until 2027-01-03; "
            "bob at capacity 50/50; carol inactive",
            "company exists",
        ),
    )
    assert decision.trace[1] == TraceEntry(
        "everyone", True, ("round_robin: dave (position 3 of 4)",)
    )
    assert decision.rotation == ("everyone", 0)
    assert decision.reason == "rule 'everyone': round_robin: dave (position 3 of 4)"


def test_when_no_rule_assigns_the_reason_says_why() -> None:
    rules = ruleset(
        """\
        - name: key-accounts
          when: {field: company, exists: true}
          assign: {strategy: round_robin, to: [alice, carol]}
        - name: night
          schedule: {hours: '22:00-23:00'}
          assign: {strategy: round_robin, to: [dave]}
        """,
        team=AWAY_TEAM,
    )
    decision = run(rules, lead(company="Acme"), now=utc(2026, 12, 25, 12))
    assert (decision.executive, decision.rule, decision.rotation) == (None, None, None)
    assert decision.reason == (
        "no rule assigned the lead: key-accounts: matched, but nobody eligible: "
        "alice away until 2027-01-03; carol inactive; night: outside schedule 22:00-23:00 UTC"
    )
    assert [e.matched for e in decision.trace] == [False, False]
    empty = run(ruleset("[]\n"))
    assert empty.reason == "no rule assigned the lead: the rule file has no rules"
    assert empty.trace == ()


def test_the_unassigned_reason_is_bounded() -> None:
    body = "".join(
        f"- name: r{i}\n  when: {{field: company, exists: true}}\n"
        "  assign: {strategy: round_robin, to: [alice]}\n"
        for i in range(20)
    )
    decision = run(ruleset(body))
    assert len(decision.trace) == 20
    assert decision.reason.endswith("; and 15 more")


# ------------------------------------------------------------------------------------ strategies


def test_round_robin_rotates_from_the_stored_position_skipping_the_unavailable() -> None:
    rules = ruleset(
        "- name: rr\n  assign: {strategy: round_robin, to: [alice, bob, carol, dave]}\n",
        team=AWAY_TEAM,
    )
    now = utc(2026, 12, 25, 12)
    full = RoutingState(open_leads={"bob": 50})

    def pick(position: int, state: RoutingState = full) -> tuple[str | None, object]:
        state = RoutingState(open_leads=state.open_leads, rotation={"rr": position})
        decision = run(rules, state=state, now=now)
        return decision.executive, decision.rotation

    assert pick(0) == ("dave", ("rr", 0)), "alice away, bob full, carol inactive"
    assert pick(3) == ("dave", ("rr", 0))
    assert pick(7) == ("dave", ("rr", 0)), "positions wrap"
    assert pick(0, RoutingState()) == ("bob", ("rr", 2))
    assert pick(2, RoutingState()) == ("dave", ("rr", 0))
    decision = run(rules, now=utc(2026, 3, 4))
    assert decision.trace[0].reasons == ("round_robin: alice (position 0 of 4)",)
    assert decision.rotation == ("rr", 1)


def test_load_balancing_picks_the_fewest_open_leads_ties_by_order() -> None:
    rules = ruleset("- name: lb\n  assign: {strategy: load_balancing, to: [carol, bob, alice]}\n")
    decision = run(rules, state=RoutingState(open_leads={"carol": 3, "bob": 1, "alice": 1}))
    assert decision.executive == "bob"
    assert decision.trace[0].reasons == ("load_balancing: bob (1 open, fewest of 3 eligible)",)
    assert decision.rotation is None
    assert run(rules).executive == "carol", "everyone at 0: first in to"


def test_load_balancing_skips_executives_at_capacity() -> None:
    team = "executives:\n  - {id: alice, capacity: 2}\n  - {id: bob}\n"
    rules = ruleset("- name: lb\n  assign: {strategy: load_balancing, to: [alice, bob]}\n", team)
    decision = run(rules, state=RoutingState(open_leads={"alice": 2, "bob": 7}))
    assert decision.executive == "bob"


BY_FIELD = """\
- name: named
  when: {field: custom.owner, exists: true}
  assign: {strategy: by_field, field: custom.owner}
- name: mapped
  assign:
    strategy: by_field
    field: territory
    map: {EU: carol, apac: bob, 7: alice}
- name: restricted
  assign: {strategy: by_field, field: territory, to: [alice, bob]}
- name: fallback
  assign: {strategy: round_robin, to: [alice]}
"""


@pytest.mark.parametrize(
    ("fields", "executive", "rule", "first_reason"),
    [
        (
            {"custom": {"owner": "Carol"}},
            "carol",
            "named",
            "by_field: carol (custom.owner = 'Carol')",
        ),
        ({"territory": "eu"}, "carol", "mapped", "by_field: carol (territory = 'eu')"),
        ({"territory": "APAC"}, "bob", "mapped", "by_field: bob (territory = 'APAC')"),
        ({"territory": 7}, "alice", "mapped", "by_field: alice (territory = '7')"),
        ({"custom": {"owner": "zed"}}, "alice", "fallback", None),
        ({"territory": "bob"}, "bob", "restricted", "by_field: bob (territory = 'bob')"),
        ({"territory": "carol"}, "alice", "fallback", None),
        ({}, "alice", "fallback", None),
    ],
)
def test_by_field(
    fields: Mapping[str, Any], executive: str, rule: str, first_reason: str | None
) -> None:
    decision = run(ruleset(BY_FIELD), LeadFacts(fields))
    assert (decision.executive, decision.rule) == (executive, rule)
    if first_reason is not None:
        assert decision.trace[-1].reasons[-1] == first_reason


def test_by_field_explains_why_it_could_not_assign() -> None:
    rules = ruleset(BY_FIELD)
    trace = run(rules, lead(territory="carol", custom={"owner": "zed"})).trace
    assert trace[0].reasons[0] == "matched, but custom.owner 'zed' names no executive"
    assert trace[1].reasons[0] == "matched, but territory 'carol' is not in the map"
    assert trace[2].reasons[0] == "matched, but territory 'carol' names no executive in to"
    missing = run(rules, lead()).trace
    assert missing[1].reasons[0] == "matched, but territory: no value"


def test_by_field_respects_eligibility() -> None:
    rules = ruleset(BY_FIELD, team=AWAY_TEAM.replace("dave", "zed"))
    decision = run(rules, lead(custom={"owner": "carol"}, territory="EU"))
    assert decision.trace[0].reasons[0] == "matched, but nobody eligible: carol inactive"
    assert decision.trace[1].reasons[0] == "matched, but nobody eligible: carol inactive"
    assert decision.rule == "fallback"


def test_weighted_follows_weights_and_breaks_ties_by_order() -> None:
    team = "executives:\n  - {id: alice, weight: 2}\n  - {id: bob}\n"
    rules = ruleset("- name: w\n  assign: {strategy: weighted, to: [alice, bob]}\n", team)
    assigned: dict[tuple[str, str], int] = {}
    picks = []
    for _ in range(6):
        decision = run(rules, state=RoutingState(assigned=dict(assigned)))
        assert decision.executive is not None
        picks.append(decision.executive)
        key = ("w", decision.executive)
        assigned[key] = assigned.get(key, 0) + 1
    assert picks == ["alice", "alice", "bob", "alice", "alice", "bob"]
    decision = run(rules, state=RoutingState(assigned={("w", "alice"): 2, ("w", "bob"): 1}))
    assert decision.trace[0].reasons == (
        "weighted: alice (2 of 3 leads from this rule so far, weight 2 of 3)",
    )


def test_weighted_never_lets_a_heavy_executive_run_ahead_of_its_share() -> None:
    team = "executives:\n" + "".join(
        f"  - {{id: e{i}, weight: {w}}}\n" for i, w in enumerate([10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    )
    to = ", ".join(f"e{i}" for i in range(11))
    rules = ruleset(f"- name: w\n  assign: {{strategy: weighted, to: [{to}]}}\n", team)
    assigned: dict[tuple[str, str], int] = {}
    for _ in range(10):
        executive = run(rules, state=RoutingState(assigned=dict(assigned))).executive
        assert executive is not None
        assigned[("w", executive)] = assigned.get(("w", executive), 0) + 1
    assert assigned[("w", "e0")] == 5, "(assigned + 1) / weight alone would give e0 all ten"


def test_weighted_skips_the_unavailable() -> None:
    team = "executives:\n  - {id: alice, weight: 5, active: false}\n  - {id: bob}\n"
    rules = ruleset("- name: w\n  assign: {strategy: weighted, to: [alice, bob]}\n", team)
    assert run(rules).executive == "bob"


# ------------------------------------------------------------------------------------ output


def test_decision_and_trace_serialise_to_json() -> None:
    rules = ruleset(
        "- name: a\n  when: {field: company, exists: true}\n"
        "  assign: {strategy: round_robin, to: [alice]}\n"
        "- name: b\n  assign: {strategy: round_robin, to: [bob]}\n"
    )
    decision = run(rules)
    assert decision.to_json() == {
        "executive": "bob",
        "rule": "b",
        "reason": "rule 'b': round_robin: bob (position 0 of 1)",
        "trace": [
            {"rule": "a", "matched": False, "reasons": ["company: no value"]},
            {"rule": "b", "matched": True, "reasons": ["round_robin: bob (position 0 of 1)"]},
        ],
    }


def test_conditions_and_rules_are_hashable_values() -> None:
    first = one_condition("{all: [{field: company, in: [a, b]}, {not: {header: X, exists: true}}]}")
    second = one_condition(
        "{all: [{field: company, in: [a, b]}, {not: {header: X, exists: true}}]}"
    )
    assert first.rules[0] == second.rules[0]
    assert hash(first.rules[0]) == hash(second.rules[0])
    assert len({first.rules[0].when, second.rules[0].when}) == 1


# ------------------------------------------------------------------------------------ speed


def test_decide_compiles_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = load_rules(generated_rules())
    facts = lead(company="Globex", territory="EU", custom={"tier": "silver", "b": "-1"})
    message = MessageFacts(
        sender_domain="globex.com", subject="Please quote 20 widgets", headers={"x-tag": ("z",)}
    )
    state = RoutingState(open_leads={f"e{i}": i for i in range(10)})
    decision = decide(rules, facts, message, state, WEDNESDAY)
    assert (decision.rule, len(decision.trace)) == ("catch-all", 100)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a regex was compiled while deciding")

    monkeypatch.setattr(re, "compile", refuse)
    monkeypatch.setattr(re, "_compile", refuse)
    # Speed itself is measured in bench/rules.py, never asserted here.
    again = decide(rules, facts, message, state, WEDNESDAY)
    assert again == decision


def test_a_schedule_answers_for_any_instant() -> None:
    schedule = Schedule(frozenset({0, 1, 2, 3, 4}), time(9), time(18), "Europe/Berlin")
    assert schedule.text == "mon-fri 09:00-18:00 Europe/Berlin"
    assert schedule.outside == ("outside schedule mon-fri 09:00-18:00 Europe/Berlin",)
    assert schedule.active_at(utc(2026, 3, 27, 16, 59))
    assert not schedule.active_at(utc(2026, 3, 27, 17, 0))
    assert Schedule(frozenset({5, 6}), None, None, "UTC").text == "sat-sun UTC"
    assert Schedule(frozenset({0, 2, 4, 5}), None, None, "UTC").text == "mon,wed,fri-sat UTC"


class _Unread(Mapping[str, int]):
    """Open-lead counts that fail when read: storage's are a query, made on first use."""

    def __getitem__(self, key: str) -> int:
        raise AssertionError(f"open leads of {key} read")

    def __iter__(self) -> Any:
        raise AssertionError("open leads listed")

    def __len__(self) -> int:
        raise AssertionError("open leads counted")


def test_round_robin_without_capacities_never_reads_open_leads() -> None:
    rules = ruleset(
        """\
        - name: turns
          assign: {strategy: round_robin, to: [alice, bob, carol]}
        """
    )
    decision = run(rules, state=RoutingState(open_leads=_Unread(), rotation={"turns": 1}))
    assert decision.executive == "bob"


def test_a_capacity_makes_round_robin_read_open_leads() -> None:
    rules = ruleset(
        """\
        - name: turns
          assign: {strategy: round_robin, to: [alice, bob]}
        """,
        team="executives:\n  - {id: alice, capacity: 2}\n  - {id: bob}\n",
    )
    full = RoutingState(open_leads={"alice": 2})
    assert run(rules, state=full).executive == "bob"
    with pytest.raises(AssertionError, match="open leads of alice read"):
        run(rules, state=RoutingState(open_leads=_Unread()))
