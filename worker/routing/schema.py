"""The parsed rule file: immutable values the loader builds and the engine reads.

Everything here is frozen so one RuleSet can be shared by every worker thread without locks, and
everything the engine needs at decide time (compiled regexes, schedule text) is computed here
once, at load.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from worker.routing.conditions import AllOf, AnyOf, Check, Condition, Not

__all__ = [
    "DAY_NAMES",
    "END_OF_DAY",
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
    "day_number",
    "parse_hours",
    "schedule_from",
    "zone",
]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Index = ``date.weekday()``, so ``Schedule.days`` holds 0 for Monday."""

STRATEGIES = ("round_robin", "load_balancing", "by_field", "weighted")

END_OF_DAY = time(23, 59, 59, 999999)
"""How ``24:00`` is held as an end time (``end`` is exclusive, so the day is whole)."""

_HOURS = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
_DAYS = {
    **{name: i for i, name in enumerate(DAY_NAMES)},
    **{
        full: i
        for i, full in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
}


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


def day_number(name: str) -> int | None:
    """``mon``/``monday`` (any case) → 0 … ``sun`` → 6; None for anything else."""
    return _DAYS.get(name.strip().lower())


def parse_hours(text: str) -> tuple[time, time]:
    """``"09:00-18:00"`` → (09:00, 18:00); ``24:00`` as an end is END_OF_DAY. An end before
    the start is an overnight window. ValueError, with the sentence to show, otherwise."""
    match = _HOURS.fullmatch(text)
    bounds: list[time] = []
    if match:
        for hour, minute in ((match[1], match[2]), (match[3], match[4])):
            h, m = int(hour), int(minute)
            if (h, m) == (24, 0) and bounds:
                bounds.append(END_OF_DAY)
            elif h < 24 and m < 60:
                bounds.append(time(h, m))
    if len(bounds) != 2:
        raise ValueError(f'hours must look like "09:00-18:00", not {text!r}')
    if bounds[0] == bounds[1]:
        raise ValueError("hours start and end at the same time; leave hours out for all day")
    return bounds[0], bounds[1]


def schedule_from(days: Iterable[str], hours: str | None, timezone: str) -> Schedule:
    """A Schedule from the rule file's words outside a rule file (``[followups]`` working
    hours in the config): day names, ``"HH:MM-HH:MM"`` or None for all day, a zone name.
    ValueError naming the first bad word."""
    numbers: set[int] = set()
    for name in days:
        number = day_number(name)
        if number is None:
            raise ValueError(f"unknown day {name!r}; use {', '.join(DAY_NAMES)}")
        numbers.add(number)
    if not numbers:
        raise ValueError("days needs at least one day")
    start, end = parse_hours(hours) if hours is not None else (None, None)
    try:
        zone(timezone)
    except (KeyError, ValueError) as error:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown timezone {timezone!r}") from error
    return Schedule(frozenset(numbers), start, end, timezone)


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
