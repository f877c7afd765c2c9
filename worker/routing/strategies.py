"""Assignment strategies: which eligible executive a matched rule gives the lead to.

Strategies are pure functions of the rule, the lead and the routing state the caller passes
in (open-lead counts, round-robin positions, per-rule assignment counts); they never store
anything. What must be remembered (the next round-robin position) comes back in the Pick.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from worker.routing.conditions import lead_getter, present, show
from worker.routing.facts import RoutingState
from worker.routing.schema import Rule, RuleSet

MATCHED_BUT = "matched, but"
"""How a strategy's no-pick reason starts: the condition held, the assignment could not."""

WhyNot = Callable[[str], str]
"""Executive id → '' when eligible now, else why not ('away until 2027-01-03')."""


@dataclass(frozen=True, slots=True)
class Pick:
    """The chosen executive and the evidence, or None and why nobody could be chosen."""

    executive: str | None
    reason: str
    rotation: int | None = None


def choose(
    rule: Rule,
    rules: RuleSet,
    fields: Mapping[str, object],
    state: RoutingState,
    why_not: WhyNot,
) -> Pick:
    """Pick by the rule's strategy; every strategy skips whoever ``why_not`` rules out."""
    strategy = rule.assign.strategy
    if strategy == "round_robin":
        return round_robin(rule, state, why_not)
    if strategy == "load_balancing":
        return load_balancing(rule, state, why_not)
    if strategy == "weighted":
        return weighted(rule, rules, state, why_not)
    if strategy == "by_field":
        return by_field(rule, rules, fields, why_not)
    return Pick(None, f"{MATCHED_BUT} strategy {strategy!r} is unknown")


def nobody(to: tuple[str, ...], why_not: WhyNot) -> Pick:
    """The no-pick answer, naming why each candidate was skipped, in ``to`` order."""
    if not to:
        return Pick(None, f"{MATCHED_BUT} the rule names no executives")
    return Pick(
        None, f"{MATCHED_BUT} nobody eligible: " + "; ".join(f"{e} {why_not(e)}" for e in to)
    )


def round_robin(rule: Rule, state: RoutingState, why_not: WhyNot) -> Pick:
    """Rotate through ``to`` from the stored position, skipping whoever is not eligible."""
    to = rule.assign.to
    k = len(to)
    if not k:
        return nobody(to, why_not)
    start = state.rotation.get(rule.name, 0) % k
    for i in range(k):
        j = (start + i) % k
        if not why_not(to[j]):
            return Pick(to[j], f"round_robin: {to[j]} (position {j} of {k})", (j + 1) % k)
    return nobody(to, why_not)


def load_balancing(rule: Rule, state: RoutingState, why_not: WhyNot) -> Pick:
    """The eligible executive with the fewest open leads; ties go to the earlier in ``to``."""
    best: str | None = None
    fewest = 0
    count = 0
    for executive in rule.assign.to:
        if why_not(executive):
            continue
        count += 1
        open_leads = state.open_leads.get(executive, 0)
        if best is None or open_leads < fewest:
            best, fewest = executive, open_leads
    if best is None:
        return nobody(rule.assign.to, why_not)
    return Pick(best, f"load_balancing: {best} ({fewest} open, fewest of {count} eligible)")


def weighted(rule: Rule, rules: RuleSet, state: RoutingState, why_not: WhyNot) -> Pick:
    """Deterministic weighted shares: each executive stays within one lead of its quota.

    Among eligible executives still below their upper quota for the next lead
    (``assigned * W < (n + 1) * weight``), pick the one minimising ``(assigned + 1) / weight``,
    ties by ``to`` order. That is Balinski and Young's quota method: plain ``(assigned + 1) /
    weight`` (D'Hondt) lets a heavy executive run far ahead of its share, and the cap stops it.
    Counts come from ``state.assigned`` for this rule, so the caller's bookkeeping is the state.
    """
    candidates: list[tuple[str, int, int]] = []
    for executive in rule.assign.to:
        if why_not(executive):
            continue
        ex = rules.executives.get(executive)
        weight = ex.weight if ex is not None else 1
        candidates.append((executive, weight, state.assigned.get((rule.name, executive), 0)))
    if not candidates:
        return nobody(rule.assign.to, why_not)
    total = sum(a for _, _, a in candidates)
    weights = sum(w for _, w, _ in candidates)
    allowed = [c for c in candidates if c[2] * weights < (total + 1) * c[1]] or candidates
    best = allowed[0]
    for candidate in allowed[1:]:
        # (a + 1) / w < (b + 1) / v without floats: ties must be exact to keep `to` order.
        if (candidate[2] + 1) * best[1] < (best[2] + 1) * candidate[1]:
            best = candidate
    name, weight, assigned = best
    return Pick(
        name,
        f"weighted: {name} ({assigned} of {total} leads from this rule so far, "
        f"weight {weight} of {weights})",
    )


def by_field(rule: Rule, rules: RuleSet, fields: Mapping[str, object], why_not: WhyNot) -> Pick:
    """The executive a lead field names, directly by id or through ``map``."""
    assign = rule.assign
    name = assign.field or ""
    items = present(lead_getter(name)(fields))
    if not items:
        return Pick(None, f"{MATCHED_BUT} {name}: no value")
    value = str(items[0])
    wanted = value.casefold()
    target: str | None = None
    if assign.map:
        target = next((e for key, e in assign.map if key.casefold() == wanted), None)
        if target is None:
            return Pick(None, f"{MATCHED_BUT} {name} {show(value)} is not in the map")
    else:
        pool = assign.to or tuple(rules.executives)
        target = next((e for e in pool if e.casefold() == wanted), None)
        if target is None:
            scope = " in to" if assign.to else ""
            return Pick(None, f"{MATCHED_BUT} {name} {show(value)} names no executive{scope}")
    why = why_not(target)
    if why:
        return Pick(None, f"{MATCHED_BUT} nobody eligible: {target} {why}")
    return Pick(target, f"by_field: {target} ({name} = {show(value)})")
