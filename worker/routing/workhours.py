"""Working-time arithmetic over a routing Schedule: "N working hours after this instant".

Working time is exactly the instants at which ``Schedule.active_at`` holds, read in the
schedule's zone on the wall clock: a window of ``09:00-18:00`` is nine real hours on an
ordinary day, a window that spans a DST change is as long as the clock really ran (an
all-day Sunday in Europe/Berlin is 23 h in March and 25 h in October), and a wall-clock hour
that happens twice counts twice. ``24:00`` as an end means midnight (the loader holds it as
23:59:59.999999; the last microsecond is counted here).

Each local day's window is mapped to UTC piece by piece: within one window's reach (at most
two days) the zone changes its offset at most once, which holds for every zone in the tz
database; the instant of the change is found by bisection on ``utcoffset``, so no private
zoneinfo data is read. Everything is pure and bounded: a search gives up after
``HORIZON_DAYS`` local days and answers None.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from worker.routing.schema import END_OF_DAY, Schedule, zone

__all__ = [
    "HORIZON_DAYS",
    "add_working_time",
    "next_working_instant",
    "working_intervals",
    "working_time_between",
]

HORIZON_DAYS = 5 * 366
"""How far ahead a search looks before it answers None (a schedule with a minute a week
and a year of hours to count)."""

_DAY = timedelta(days=1)
# No zone's offset reaches 15 h either way (the tz database spans -12 h … +14 h), so the
# instants whose local time falls on a local day D lie within D ± 15 h read as UTC.
_REACH = timedelta(hours=15)
_SECOND = timedelta(seconds=1)

Interval = tuple[datetime, datetime]
"""A half-open [start, end) of aware UTC instants."""


def working_intervals(schedule: Schedule, start: datetime) -> Iterator[Interval]:
    """The working time from ``start`` on, as sorted, disjoint, merged UTC intervals (the
    first one clipped to begin no earlier than ``start``); ends after HORIZON_DAYS days."""
    start = _aware(start)
    place = zone(schedule.timezone)
    # The window of the day before can run past midnight into the day of ``start``.
    first_day = start.astimezone(place).date() - _DAY
    last_day = first_day + timedelta(days=HORIZON_DAYS)
    pending: list[Interval] = []
    day = first_day
    current: Interval | None = None
    while True:
        # Every interval a later day can make starts at or after its midnight - _REACH:
        # make days until none of them could come before the earliest one waiting.
        while day <= last_day and (not pending or _lowest_start(day) <= pending[0][0]):
            for piece in _day_pieces(schedule, place, day):
                heapq.heappush(pending, piece)
            day += _DAY
        if not pending:
            break
        low, high = heapq.heappop(pending)
        if high <= start:
            continue
        low = max(low, start)
        if current is not None and low <= current[1]:
            current = (current[0], max(current[1], high))
            continue
        if current is not None:
            yield current
        current = (low, high)
    if current is not None:
        yield current


def add_working_time(schedule: Schedule, start: datetime, amount: timedelta) -> datetime | None:
    """The instant at which ``amount`` of working time has passed since ``start``; ``start``
    itself for no time at all. None when it is not reached within HORIZON_DAYS days."""
    start = _aware(start)
    if amount <= timedelta(0):
        return start
    left = amount
    for low, high in working_intervals(schedule, start):
        if high - low >= left:
            return low + left
        left -= high - low
    return None


def working_time_between(schedule: Schedule, start: datetime, end: datetime) -> timedelta:
    """How much working time lies in [start, end) (nothing when end is not after start)."""
    start, end = _aware(start), _aware(end)
    total = timedelta(0)
    if end <= start:
        return total
    for low, high in working_intervals(schedule, start):
        if low >= end:
            break
        total += min(high, end) - low
    return total


def next_working_instant(schedule: Schedule, at: datetime) -> datetime | None:
    """``at`` when it is working time, else the next instant that is; None beyond the horizon."""
    for low, _high in working_intervals(schedule, at):
        return low
    return None


# -- one local day ----------------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("working-time arithmetic needs timezone-aware instants")
    return value.astimezone(UTC)


def _lowest_start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC) - _REACH


def _window(schedule: Schedule, day: date) -> tuple[datetime, datetime] | None:
    """The day's window as naive local wall times [begin, end), or None on a day off."""
    if day.weekday() not in schedule.days:
        return None
    midnight = datetime.combine(day, time(0))
    start, end = schedule.start, schedule.end
    if start is None or end is None:
        return midnight, midnight + _DAY
    begin = datetime.combine(day, start)
    if end == END_OF_DAY:
        return begin, midnight + _DAY
    if start < end:
        return begin, datetime.combine(day, end)
    return begin, datetime.combine(day + _DAY, end)  # overnight: belongs to its first day


def _day_pieces(schedule: Schedule, place: tzinfo, day: date) -> list[Interval]:
    """The UTC instants whose wall time in ``place`` lies in the day's window: one interval,
    or two around an offset change (a repeated hour can split a window in two)."""
    window = _window(schedule, day)
    if window is None:
        return []
    begin, end = window
    low = begin.replace(tzinfo=UTC) - _REACH
    high = end.replace(tzinfo=UTC) + _REACH
    before, after = _offset(place, low), _offset(place, high)
    if before == after:
        return [(begin.replace(tzinfo=UTC) - before, end.replace(tzinfo=UTC) - before)]
    change = _change(place, low, high, before)
    pieces = [
        # With the offset before the change, for the instants before it …
        (begin.replace(tzinfo=UTC) - before, min(end.replace(tzinfo=UTC) - before, change)),
        # … and with the offset after it, for the instants from it on.
        (max(begin.replace(tzinfo=UTC) - after, change), end.replace(tzinfo=UTC) - after),
    ]
    return [(a, b) for a, b in pieces if a < b]


def _offset(place: tzinfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(place).utcoffset()
    assert offset is not None
    return offset


def _change(place: tzinfo, low: datetime, high: datetime, before: timedelta) -> datetime:
    """The first instant in (low, high] whose offset is no longer ``before`` (tz changes
    happen on whole seconds)."""
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            middle = low + _SECOND
        if _offset(place, middle) == before:
            low = middle
        else:
            high = middle
    return high
