"""services/when.py: the forms a person types, zones and DST (property tests over dates)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.errors import ValidationError
from worker.services.when import parse_when, resolve_local

BANGKOK = ZoneInfo("Asia/Bangkok")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
# A Tuesday, 08:00 in Bangkok.
NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T10:00", datetime(2026, 12, 1, 3, 0, tzinfo=UTC)),
        ("2026-12-01 10:00", datetime(2026, 12, 1, 3, 0, tzinfo=UTC)),
        ("2026-12-01 10:00+07:00", datetime(2026, 12, 1, 3, 0, tzinfo=UTC)),
        ("2026-12-01T10:00:00Z", datetime(2026, 12, 1, 10, 0, tzinfo=UTC)),
        ("2026-12-01T10:00+01:00", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("today 17:00", datetime(2026, 12, 1, 10, 0, tzinfo=UTC)),
        ("Tomorrow 10:00", datetime(2026, 12, 2, 3, 0, tzinfo=UTC)),
        ("tomorrow at 9am", datetime(2026, 12, 2, 2, 0, tzinfo=UTC)),
        ("tomorrow 5:30pm", datetime(2026, 12, 2, 10, 30, tzinfo=UTC)),
        ("monday 9:00", datetime(2026, 12, 7, 2, 0, tzinfo=UTC)),
        ("tue 9:00", datetime(2026, 12, 1, 2, 0, tzinfo=UTC)),  # today, still ahead
        ("tue 7:00", datetime(2026, 12, 8, 0, 0, tzinfo=UTC)),  # passed: next week
        ("+3d", NOW + timedelta(days=3)),
        ("+2h", NOW + timedelta(hours=2)),
        ("+30m", NOW + timedelta(minutes=30)),
        ("+1w", NOW + timedelta(days=7)),
        ("+1d2h", NOW + timedelta(days=1, hours=2)),
    ],
)
def test_forms_in_bangkok(text: str, expected: datetime) -> None:
    assert parse_when(text, BANGKOK, NOW).utc == expected


@pytest.mark.parametrize(
    "text",
    ["", "soon", "tomorrow", "monday", "2026-12-01", "25:00", "tomorrow 25:00", "+3y", "+",
     "2026-13-01T10:00", "tomorrow 13pm", "someday 10:00", "+99999w", "x" * 100],
)  # fmt: skip
def test_refusals_are_one_line_validation_errors(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_when(text, BANGKOK, NOW)
    assert "\n" not in str(caught.value)
    assert "e.g." in str(caught.value)


def test_spring_gap_moves_forward_and_autumn_overlap_takes_the_first() -> None:
    # Europe/Berlin 2026: 29 March 02:00 → 03:00; 25 October 03:00 → 02:00.
    gap = parse_when("2026-03-29 02:30", BERLIN, NOW)
    assert gap.utc == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert gap.local.hour == 3 and gap.adjusted and "does not exist" in gap.adjusted
    overlap = parse_when("2026-10-25 02:30", BERLIN, NOW)
    assert overlap.utc == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the CEST one
    assert overlap.adjusted is None
    # Calendar days keep the wall-clock time across the change: 23 hours that day.
    before = datetime(2026, 3, 28, 9, 0, tzinfo=UTC)  # 10:00 CET
    moved = parse_when("+1d", BERLIN, before)
    assert moved.local.hour == 10 and moved.utc - before == timedelta(hours=23)
    assert parse_when("+24h", BERLIN, before).local.hour == 11


ZONES = st.sampled_from([BANGKOK, BERLIN, NEW_YORK, ZoneInfo("Australia/Sydney"), ZoneInfo("UTC")])
DAYS = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))
TIMES = st.times().map(lambda t: t.replace(second=0, microsecond=0))


@settings(max_examples=400)
@given(zone=ZONES, day=DAYS, at=TIMES)
def test_a_wall_clock_time_fires_at_the_utc_instant_the_zone_gives(
    zone: ZoneInfo, day: date, at: time
) -> None:
    text = f"{day:%Y-%m-%d} {at:%H:%M}"
    parsed = parse_when(text, zone, NOW)
    naive = datetime.combine(day, at)
    # Every UTC instant that shows this wall-clock time in the zone.
    candidates = [
        instant
        for offset_hours in range(-14, 15)
        for extra in (0, 30, 45)
        for instant in [(naive - timedelta(hours=offset_hours, minutes=extra)).replace(tzinfo=UTC)]
        if instant.astimezone(zone).replace(tzinfo=None) == naive
    ]
    if candidates:
        # It exists: the earliest of its instants (an autumn overlap gives two).
        assert parsed.utc == min(candidates)
        assert parsed.adjusted is None
        assert parsed.local.replace(tzinfo=None) == naive
    else:
        # A spring gap: moved forward by the gap, to the first valid minute after it.
        assert parsed.adjusted is not None
        assert parsed.local.replace(tzinfo=None) > naive
        assert parsed.local.replace(tzinfo=None) - naive <= timedelta(hours=1)
        assert parsed.utc.astimezone(zone) == parsed.local
    assert parsed.utc.tzinfo is UTC


@settings(max_examples=300)
@given(day=DAYS, hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_bangkok_has_no_dst_so_every_time_is_seven_hours_ahead(
    day: date, hour: int, minute: int
) -> None:
    parsed = parse_when(f"{day:%Y-%m-%d}T{hour:02d}:{minute:02d}", BANGKOK, NOW)
    assert parsed.utc == datetime.combine(day, time(hour, minute), UTC) - timedelta(hours=7)


@settings(max_examples=300)
@given(
    now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
    days=st.integers(1, 400),
)
def test_berlin_plus_days_keeps_the_wall_clock_across_dst(now: datetime, days: int) -> None:
    parsed = parse_when(f"+{days}d", BERLIN, now)
    start = now.astimezone(BERLIN)
    expected_day = start.date() + timedelta(days=days)
    local, note = resolve_local(expected_day, start.time(), BERLIN)
    assert parsed.utc == local.astimezone(UTC)
    if note is None:
        assert (parsed.local.hour, parsed.local.minute) == (start.hour, start.minute)
    # Between 23 and 25 hours a day, whatever changes in between.
    assert abs((parsed.utc - now) - timedelta(days=days)) <= timedelta(hours=1)


@settings(max_examples=200)
@given(now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)))
def test_weekday_forms_are_the_next_such_day_in_the_future(now: datetime) -> None:
    aware = now.replace(tzinfo=UTC)
    for name, weekday in (("monday", 0), ("fri", 4), ("sunday", 6)):
        parsed = parse_when(f"{name} 9:00", BERLIN, aware)
        assert parsed.utc > aware
        assert parsed.local.weekday() == weekday
        assert parsed.utc - aware <= timedelta(days=7, hours=1)
