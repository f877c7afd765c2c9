"""decide(): route one lead through a RuleSet, with a trace that says why.

Pure: the caller supplies the facts about the lead and its message, the routing state (open
leads per executive, round-robin positions, per-rule counts) and the clock, and stores what
the Decision says to remember. That keeps every decision reproducible from its inputs and
testable without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from worker.routing.conditions import ALWAYS, AllOf, AnyOf, Check, Condition, Not
from worker.routing.facts import LeadFacts, MessageFacts, RoutingState
from worker.routing.schema import Executive, RuleSet, zone
from worker.routing.strategies import MATCHED_BUT, choose

UNASSIGNED = "no rule assigned the lead: "
_SUMMARY_LIMIT = 5
"""How many rules an unassigned reason names; the trace has them all."""

# Non-matching TraceEntries are values made of prebuilt reasons, so they are shared: building
# a frozen dataclass costs about as much as evaluating a rule, and a 100-rule file that falls
# through to its catch-all would spend a third of its time on them. Bounded; cleared when full.
_MISSES: dict[tuple[str, tuple[str, ...]], TraceEntry] = {}
_MISSES_LIMIT = 8192


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One rule's verdict; ``reasons`` is the evidence, in the order it was found."""

    rule: str
    matched: bool
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"rule": self.rule, "matched": self.matched, "reasons": list(self.reasons)}


@dataclass(frozen=True, slots=True)
class Decision:
    """Who gets the lead (or None), by which rule, and the trace of every rule tried.

    ``rotation`` is (rule name, next position) when round robin chose: the caller stores it
    so the next lead continues the rotation.
    """

    executive: str | None
    rule: str | None
    trace: tuple[TraceEntry, ...]
    reason: str
    rotation: tuple[str, int] | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "executive": self.executive,
            "rule": self.rule,
            "reason": self.reason,
            "trace": [entry.to_json() for entry in self.trace],
        }


def message_facts_tested(rules: RuleSet) -> frozenset[str]:
    """The message facts some rule's condition reads, so a caller can skip costly ones."""
    names: set[str] = set()
    pending: list[Condition] = [rule.when for rule in rules.rules if rule.when is not None]
    while pending:
        node = pending.pop()
        if isinstance(node, AllOf | AnyOf):
            pending.extend(node.items)
        elif isinstance(node, Not):
            pending.append(node.item)
        elif isinstance(node, Check) and node.kind == "message":
            names.add(node.name)
    return frozenset(names)


def eligible(
    executive: Executive, state: RoutingState, now: datetime, timezone: str
) -> tuple[bool, str]:
    """Whether ``executive`` may take a lead at ``now``; else why not (e.g. 'inactive').

    Away ranges are dates in ``timezone`` (the rule file's), inclusive at both ends.
    """
    day = _aware(now).astimezone(zone(timezone)).date()
    why = _why_not(executive, state.open_leads, day)
    return not why, why


def _why_not(executive: Executive, open_leads: Mapping[str, int], day: date) -> str:
    """Open leads are looked up only for an executive with a capacity: the caller's mapping
    may read them from storage on first use, which a rule file without capacities and
    without load balancing then never needs."""
    if not executive.active:
        return "inactive"
    for away in executive.away:
        if away.start <= day <= away.end:
            return f"away until {away.end.isoformat()}"
    if executive.capacity is not None:
        count = open_leads.get(executive.id, 0)
        if count >= executive.capacity:
            return f"at capacity {count}/{executive.capacity}"
    return ""


def _miss(rule: str, reasons: tuple[str, ...]) -> TraceEntry:
    key = (rule, reasons)
    entry = _MISSES.get(key)
    if entry is None:
        if len(_MISSES) >= _MISSES_LIMIT:
            _MISSES.clear()
        entry = _MISSES[key] = TraceEntry(rule, False, reasons)
    return entry


def _aware(now: datetime) -> datetime:
    """Naive datetimes are taken as UTC rather than as the host's local time."""
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def decide(
    rules: RuleSet,
    lead: LeadFacts,
    message: MessageFacts | None,
    state: RoutingState,
    now: datetime,
) -> Decision:
    """Try the rules in order; the first that matches and finds an eligible executive wins.

    A rule outside its schedule, whose condition fails, or whose candidates are all
    unavailable is recorded in the trace and the next rule is tried.
    """
    now = _aware(now)
    trace: list[TraceEntry] = []
    verdicts: dict[str, str] = {}
    local_times: dict[str, datetime] = {}

    def why_not(executive_id: str) -> str:
        why = verdicts.get(executive_id)
        if why is None:
            executive = rules.executives.get(executive_id)
            if executive is None:
                why = "is not in the rule file"
            else:
                day = local_time(rules.timezone).date()
                why = _why_not(executive, state.open_leads, day)
            verdicts[executive_id] = why
        return why

    def local_time(timezone: str) -> datetime:
        local = local_times.get(timezone)
        if local is None:
            local = local_times[timezone] = now.astimezone(zone(timezone))
        return local

    misses = _MISSES
    for rule in rules.rules:
        name, schedule, when = rule.name, rule.schedule, rule.when
        if schedule is not None and not schedule.active(local_time(schedule.timezone)):
            why = schedule.outside
            ok = False
        else:
            ok, why = ALWAYS if when is None else when.test(lead, message)
        if not ok:
            entry = misses.get((name, why))
            trace.append(entry if entry is not None else _miss(name, why))
            continue
        pick = choose(rule, rules, lead.fields, state, why_not)
        if pick.executive is None:
            trace.append(TraceEntry(rule.name, False, (pick.reason, *why)))
            continue
        inside = () if schedule is None else (f"inside schedule {schedule.text}",)
        trace.append(TraceEntry(rule.name, True, (*inside, *why, pick.reason)))
        return Decision(
            executive=pick.executive,
            rule=rule.name,
            trace=tuple(trace),
            reason=f"rule {rule.name!r}: {pick.reason}",
            rotation=None if pick.rotation is None else (rule.name, pick.rotation),
        )
    return Decision(executive=None, rule=None, trace=tuple(trace), reason=_unassigned(trace))


def _unassigned(trace: list[TraceEntry]) -> str:
    """Name the rules that came closest first: matched-but-nobody-eligible before non-matches."""
    if not trace:
        return UNASSIGNED + "the rule file has no rules"
    close = [e for e in trace if e.reasons and e.reasons[0].startswith(MATCHED_BUT)]
    ordered = close + [e for e in trace if e not in close]
    parts = [
        f"{e.rule}: {e.reasons[0] if e.reasons else 'did not match'}"
        for e in ordered[:_SUMMARY_LIMIT]
    ]
    if len(ordered) > _SUMMARY_LIMIT:
        parts.append(f"and {len(ordered) - _SUMMARY_LIMIT} more")
    return UNASSIGNED + "; ".join(parts)
