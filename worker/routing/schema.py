"""The parsed rule file: immutable values the loader builds and the engine reads.

Everything here is frozen so one RuleSet can be shared by every worker thread without locks, and
everything the engine needs at decide time (compiled regexes, schedule text) is computed here
once, at load.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from worker.routing.conditions import AllOf, AnyOf, Check, Condition, Not

__all__ = [
    "DAY_NAMES",
    "STRATEGIES",
    "AllOf",
    "AnyOf",
    "Assign",
    "Check",
    "Condition",
    "DateRange",
    "Executive",
    "Not",
    "Rule",
    "RuleSet",
    "Schedule",
    "zone",
]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Index = ``date.weekday()``, so ``Schedule.days`` holds 0 for Monday."""

STRATEGIES = ("round_robin", "load_balancing", "by_field", "weighted")


@functools.lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """A cached ZoneInfo: decide looks zones up per call and must not pay for it each time."""
    return ZoneInfo(name)


@dataclass(frozen=True, slots=True)
class DateRange:
    """An inclusive run of days (an executive's leave), read in the rule file's timezone."""

    start: date
    end: date

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True, slots=True)
class Executive:
    """A sales executive leads can be routed to."""

    id: str
    name: str
    email: str | None
    active: bool = True
    away: tuple[DateRange, ...] = ()
    capacity: int | None = None
    weight: int = 1
    # Where the executive works: the zone of their reminders' calendar entries (default:
    # [leads] timezone). Routing schedules keep their own timezone.
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a rule applies: on ``days`` (0=Mon), between ``start`` and ``end`` local time.

    ``end`` before ``start`` is an overnight window; it belongs to the day it starts on, so
    ``days: [fri]`` with ``22:00-06:00`` covers Friday 22:00 to Saturday 06:00. ``start`` is
    inclusive and ``end`` exclusive. No hours means all day.
    """

    days: frozenset[int]
    start: time | None
    end: time | None
    timezone: str
    text: str = field(init=False, repr=False, compare=False)
    """How traces name the schedule, e.g. ``mon-fri 09:00-18:00 Europe/Berlin``."""
    outside: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The trace reasons of a rule skipped for being outside the schedule, built once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", frozenset(self.days))
        object.__setattr__(self, "text", _describe(self))
        object.__setattr__(self, "outside", (f"outside schedule {self.text}",))

    def active(self, local: datetime) -> bool:
        """Whether ``local`` (already in this schedule's timezone) is inside the window."""
        day = local.weekday()
        start, end = self.start, self.end
        if start is None or end is None:
            return day in self.days
        now = local.time()
        if start <= end:
            return day in self.days and start <= now < end
        if now >= start:
            return day in self.days
        return now < end and (day - 1) % 7 in self.days

    def active_at(self, now: datetime) -> bool:
        """Whether the aware instant ``now`` falls inside the window."""
        return self.active(now.astimezone(zone(self.timezone)))


def _describe(schedule: Schedule) -> str:
    parts: list[str] = []
    if len(schedule.days) < 7:
        parts.append(describe_days(schedule.days))
    if schedule.start is not None and schedule.end is not None:
        parts.append(f"{schedule.start:%H:%M}-{schedule.end:%H:%M}")
    parts.append(schedule.timezone)
    return " ".join(parts)


def describe_days(days: frozenset[int]) -> str:
    """``mon-fri``, ``mon,wed,fri``, ``sat-sun``: consecutive days collapse into a range."""
    if not days:
        return "no days"
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(
        DAY_NAMES[run[0]] if len(run) == 1 else f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}"
        for run in runs
    )


@dataclass(frozen=True, slots=True)
class Assign:
    """How a matched rule picks an executive; ``map`` pairs are (field value, executive id)."""

    strategy: str
    to: tuple[str, ...]
    field: str | None = None
    map: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """One routing rule; ``line`` is where it starts in the file, for messages and traces."""

    name: str
    priority: int
    when: Condition | None
    assign: Assign
    schedule: Schedule | None
    line: int


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A loaded rule file; ``rules`` is already in evaluation order (priority desc, then file)."""

    executives: dict[str, Executive]
    rules: tuple[Rule, ...]
    timezone: str
    reassign_unavailable: bool
    source: str

    def executive(self, id: str) -> Executive | None:
        return self.executives.get(id)
