"""Working-time arithmetic: examples at the edges, then properties against Schedule.active_at."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from worker.routing.schema import DAY_NAMES, END_OF_DAY, Schedule, schedule_from
from worker.routing.workhours import (
    add_working_time,
    next_working_instant,
    working_intervals,
    working_time_between,
)

BERLIN = ZoneInfo("Europe/Berlin")
BANGKOK = ZoneInfo("Asia/Bangkok")
OFFICE = schedule_from(("mon", "tue", "wed", "thu", "fri"), "09:00-18:00", "Europe/Berlin")
H = timedelta(hours=1)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


# -- examples ---------------------------------------------------------------------------------


def test_friday_evening_waits_for_monday_morning() -> None:
    friday = berlin(2026, 6, 12, 17, 30)  # a Friday, half an hour before closing
    assert add_working_time(OFFICE, friday, H) == berlin(2026, 6, 15, 9, 30)
    assert add_working_time(OFFICE, friday, 30 * timedelta(minutes=1)) == berlin(2026, 6, 12, 18)


def test_a_lead_that_comes_at_night_or_at_the_weekend_starts_at_opening() -> None:
    assert add_working_time(OFFICE, berlin(2026, 6, 13, 11), H) == berlin(2026, 6, 15, 10)
    assert add_working_time(OFFICE, berlin(2026, 6, 10, 3), H) == berlin(2026, 6, 10, 10)
    assert next_working_instant(OFFICE, berlin(2026, 6, 13, 11)) == berlin(2026, 6, 15, 9)
    inside = berlin(2026, 6, 10, 11)
    assert next_working_instant(OFFICE, inside) == inside


def test_many_hours_span_days_and_weekends() -> None:
    # 20 working hours from Thursday 09:00: Thursday (9), Friday (9), Monday 09:00-11:00.
    assert add_working_time(OFFICE, berlin(2026, 6, 11, 9), 20 * H) == berlin(2026, 6, 15, 11)


def test_no_time_at_all_is_the_start_itself() -> None:
    saturday = berlin(2026, 6, 13, 11)
    assert add_working_time(OFFICE, saturday, timedelta(0)) == saturday


def test_the_office_day_is_nine_real_hours_on_a_dst_weekend() -> None:
    # Berlin goes to summer time on Sunday 2026-03-29: Friday 17:30 + 1 h is Monday 09:30
    # local, which is 07:30 UTC (it was 08:30 UTC the Monday before).
    result = add_working_time(OFFICE, berlin(2026, 3, 27, 17, 30), H)
    assert result == berlin(2026, 3, 30, 9, 30)
    assert result is not None and result.astimezone(UTC) == datetime(2026, 3, 30, 7, 30, tzinfo=UTC)
    before = add_working_time(OFFICE, berlin(2026, 3, 20, 17, 30), H)
    assert before is not None and before.astimezone(UTC) == datetime(2026, 3, 23, 8, 30, tzinfo=UTC)


def test_an_all_day_sunday_is_as_long_as_the_clock_ran() -> None:
    sunday = schedule_from(("sun",), None, "Europe/Berlin")
    week = (datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 4, 2, tzinfo=UTC))
    assert working_time_between(sunday, *week) == 23 * H
    autumn = (datetime(2026, 10, 23, tzinfo=UTC), datetime(2026, 10, 29, tzinfo=UTC))
    assert working_time_between(sunday, *autumn) == 25 * H


def test_a_repeated_hour_counts_twice() -> None:
    # 02:00-03:00 local happens twice on 2026-10-25 in Berlin, and never on 2026-03-29.
    night = schedule_from(("sun",), "02:00-03:00", "Europe/Berlin")
    assert (
        working_time_between(
            night, datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 10, 26, tzinfo=UTC)
        )
        == 2 * H
    )
    assert working_time_between(
        night, datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC)
    ) == timedelta(0)


def test_an_overnight_window_belongs_to_the_day_it_starts() -> None:
    shift = schedule_from(("fri",), "22:00-06:00", "Asia/Bangkok")
    friday = datetime(2026, 6, 12, 21, tzinfo=BANGKOK)
    assert add_working_time(shift, friday, H) == datetime(2026, 6, 12, 23, tzinfo=BANGKOK)
    assert add_working_time(shift, friday, 8 * H) == datetime(2026, 6, 13, 6, tzinfo=BANGKOK)
    # Saturday 03:00 is inside Friday's shift; the next hour after Saturday 06:00 is next week.
    assert add_working_time(shift, datetime(2026, 6, 13, 3, tzinfo=BANGKOK), H) == datetime(
        2026, 6, 13, 4, tzinfo=BANGKOK
    )
    assert add_working_time(shift, datetime(2026, 6, 13, 6, tzinfo=BANGKOK), H) == datetime(
        2026, 6, 19, 23, tzinfo=BANGKOK
    )


def test_24_00_is_midnight_and_days_join_up() -> None:
    evenings = schedule_from(("mon", "tue"), "18:00-24:00", "UTC")
    assert evenings.end == END_OF_DAY
    monday = datetime(2026, 6, 15, 18, tzinfo=UTC)
    assert add_working_time(evenings, monday, 6 * H) == datetime(2026, 6, 16, 0, tzinfo=UTC)
    always = schedule_from(DAY_NAMES, None, "Europe/Berlin")
    (first,) = itertools.islice(working_intervals(always, monday), 1)
    assert first[0] == monday and first[1] - first[0] > timedelta(days=365)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_working_time(OFFICE, datetime(2026, 6, 12, 17), H)


def test_a_schedule_that_never_adds_up_answers_none() -> None:
    minute = schedule_from(("mon",), "09:00-09:01", "UTC")
    assert add_working_time(minute, datetime(2026, 6, 15, tzinfo=UTC), 10_000 * H) is None


def test_schedule_from_names_the_bad_word() -> None:
    with pytest.raises(ValueError, match="unknown day 'someday'"):
        schedule_from(("mon", "someday"), "09:00-18:00", "UTC")
    with pytest.raises(ValueError, match="hours must look like"):
        schedule_from(("mon",), "9 to 5", "UTC")
    with pytest.raises(ValueError, match="unknown timezone"):
        schedule_from(("mon",), "09:00-18:00", "Mars/Olympus")
    assert schedule_from(("Monday", "FRI"), None, "UTC").days == frozenset({0, 4})


# -- properties -------------------------------------------------------------------------------

ZONES = (
    "UTC",
    "Europe/Berlin",
    "Asia/Bangkok",
    "America/New_York",
    "Australia/Lord_Howe",  # a 30-minute DST change
    "America/St_Johns",  # a half-hour offset with DST
    "Pacific/Chatham",  # +12:45 / +13:45
    "Asia/Kolkata",
)
# Days around the 2026 changes of these zones, and ordinary days.
AROUND = (
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 4, 5),
    date(2026, 9, 27),
    date(2026, 10, 4),
    date(2026, 10, 25),
    date(2026, 11, 1),
    date(2026, 6, 10),
    date(2026, 1, 15),
)

minutes = st.integers(0, 24 * 60 - 1)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    zone_name = draw(st.sampled_from(ZONES))
    if draw(st.booleans()):
        return Schedule(days, None, None, zone_name)
    start = draw(minutes)
    end = draw(minutes.filter(lambda m: m != start) | st.just(24 * 60))
    if end == 24 * 60 and start == 0:
        return Schedule(days, None, None, zone_name)
    end_time = END_OF_DAY if end == 24 * 60 else time(end // 60, end % 60)
    return Schedule(days, time(start // 60, start % 60), end_time, zone_name)


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    day = draw(st.sampled_from(AROUND)) + timedelta(days=draw(st.integers(-3, 3)))
    return datetime.combine(day, time(0), UTC) + timedelta(minutes=draw(st.integers(0, 24 * 60)))


def active_minutes(schedule: Schedule, start: datetime, end: datetime) -> int:
    """The oracle: every whole UTC minute in [start, end) at which the schedule is active."""
    count = 0
    at = start
    while at < end:
        count += schedule.active_at(at)
        at += timedelta(minutes=1)
    return count


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(schedule=schedules(), start=instants(), span=st.integers(0, 3 * 24 * 60))
@example(
    schedule=schedule_from(("sun",), "01:30-02:30", "Europe/Berlin"),
    start=datetime(2026, 3, 28, 20, tzinfo=UTC),
    span=24 * 60,
)
@example(
    schedule=schedule_from(("sat",), "02:40-02:30", "Europe/Berlin"),
    start=datetime(2026, 10, 23, tzinfo=UTC),
    span=3 * 24 * 60,
)
def test_working_time_is_exactly_the_active_minutes(
    schedule: Schedule, start: datetime, span: int
) -> None:
    end = start + timedelta(minutes=span)
    counted = working_time_between(schedule, start, end)
    assert counted == timedelta(minutes=active_minutes(schedule, start, end))


@FAST
@given(schedule=schedules(), start=instants(), amount=st.integers(0, 40 * 60))
def test_adding_working_time(schedule: Schedule, start: datetime, amount: int) -> None:
    span = timedelta(minutes=amount)
    result = add_working_time(schedule, start, span)
    if result is None:  # a minute a week does not make 40 hours within the horizon
        assert working_time_between(schedule, start, start + timedelta(days=365)) < span
        return
    assert result >= start
    # Exactly the time asked for lies between, counting only working time …
    assert working_time_between(schedule, start, result) == span
    if amount:
        # … and the result is the end of a working minute, not a later idle instant.
        assert schedule.active_at(result - timedelta(minutes=1))


@FAST
@given(
    schedule=schedules(),
    start=instants(),
    amounts=st.tuples(st.integers(0, 30 * 60), st.integers(0, 30 * 60)),
)
def test_more_working_time_is_never_earlier(
    schedule: Schedule, start: datetime, amounts: tuple[int, int]
) -> None:
    low, high = sorted(amounts)
    first = add_working_time(schedule, start, timedelta(minutes=low))
    second = add_working_time(schedule, start, timedelta(minutes=high))
    # None is "not within the horizon": later than any instant.
    assert second is None or (first is not None and first <= second)


@FAST
@given(schedule=schedules(), start=instants())
def test_intervals_are_sorted_disjoint_and_active(schedule: Schedule, start: datetime) -> None:
    pieces = list(itertools.islice(working_intervals(schedule, start), 12))
    assert pieces and pieces[0][0] >= start
    for (_, end), (following, _) in itertools.pairwise(pieces):
        assert end < following  # merged: touching intervals are one
    for low, high in pieces:
        assert low < high
        assert schedule.active_at(low)
        assert schedule.active_at(high - timedelta(minutes=1))  # every bound is on a minute
    first = next_working_instant(schedule, start)
    assert first == pieces[0][0]
