"""When a person means: ``--next-contact-date`` text to one UTC instant. Pure (no I/O).

Accepted, case-insensitive:

- ISO 8601 with a time: ``2026-12-01T10:00``, ``2026-12-01 10:00``, ``2026-12-01T10:00:30``,
  with an offset (``+07:00``, ``Z``) or without one.
- ``today 17:00``, ``tomorrow 10:00``, a weekday ``monday 9:00`` / ``mon 9:00``: the next
  such day whose time is still ahead (``monday 9:00`` said on a Monday at 8:00 is today,
  at 10:00 it is next week). The time is ``H:MM``, ``HH:MM``, optionally ``am``/``pm``
  (``9am``, ``5:30pm``); a day without a time is refused, never guessed.
- ``+30m``, ``+2h``, ``+3d``, ``+1w`` and sums like ``+1d2h``: minutes and hours are
  elapsed time; days and weeks are calendar days at the same wall-clock time in the zone
  (``+1d`` at 10:00 the day before a DST change is 10:00 the day after, 23 or 25 hours on).

A time without an offset is wall-clock time in ``zone`` (``[leads] timezone``). Wall-clock
times a DST change makes odd follow one rule, the one ``zoneinfo`` gives with ``fold=0``:

- in a spring gap (02:30 on the day Europe/Berlin jumps 02:00 → 03:00) the time does not
  exist: it is read with the offset before the change, so it moves forward by the gap
  (02:30 → 03:30 CEST); ``Parsed.adjusted`` says so;
- in an autumn overlap (02:30 on the day 03:00 → 02:00) the time happens twice: the first,
  earlier one (still summer time) is meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from worker.errors import ValidationError

_DAYS = {
    "monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "tues": 1, "wednesday": 2, "wed": 2,
    "thursday": 3, "thu": 3, "thur": 3, "thurs": 3, "friday": 4, "fri": 4, "saturday": 5,
    "sat": 5, "sunday": 6, "sun": 6,
}  # fmt: skip
_TIME = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$")
_DAY_AND_TIME = re.compile(r"^([a-z]+)(?:\s+(?:at\s+)?(.+))?$")
_RELATIVE = re.compile(r"^\+\s*((?:\d{1,5}\s*[mhdw]\s*)+)$")
_PART = re.compile(r"(\d{1,5})\s*([mhdw])")
_MAX_AHEAD = timedelta(days=366 * 10)
EXAMPLES = "2026-12-01T10:00, 2026-12-01 10:00+07:00, tomorrow 10:00, monday 9:00, +3d, +2h"


@dataclass(frozen=True, slots=True)
class Parsed:
    """The instant meant (UTC), the same instant in the zone, and a note when the wall-clock
    time typed did not exist there (a DST gap) and was moved."""

    utc: datetime
    local: datetime
    adjusted: str | None = None


def _refuse(text: str, why: str = "") -> ValidationError:
    detail = f": {why}" if why else ""
    return ValidationError(f"cannot read {text!r} as a time{detail} (e.g. {EXAMPLES})", text)


def resolve_local(day: date, at: time, zone: ZoneInfo) -> tuple[datetime, str | None]:
    """A wall-clock time in ``zone`` as an aware datetime, by the rule in the module
    docstring; the note when it fell in a DST gap."""
    naive = datetime.combine(day, at.replace(tzinfo=None))
    local = naive.replace(tzinfo=zone, fold=0)
    # Round trip through UTC: a time in a gap comes back as another wall-clock time.
    back = local.astimezone(UTC).astimezone(zone)
    if back.replace(tzinfo=None) != naive:
        note = (
            f"{naive:%Y-%m-%d %H:%M} does not exist in {zone.key} (a daylight-saving change); "
            f"using {back:%H:%M %Z}"
        )
        return back, note
    return local, None


def _clock(text: str, original: str) -> time:
    match = _TIME.match(text.strip())
    if match is None:
        raise _refuse(original, f"{text!r} is not a time of day like 9:00 or 17:30")
    hour, minute = int(match[1]), int(match[2] or 0)
    if match[3]:
        if not 1 <= hour <= 12:
            raise _refuse(original, f"{text!r}: an am/pm hour is 1 to 12")
        hour = hour % 12 + (12 if match[3] == "pm" else 0)
    if hour > 23 or minute > 59:
        raise _refuse(original, f"{text!r} is not a time of day")
    return time(hour, minute)


def parse_when(text: str, zone: ZoneInfo | str, now: datetime) -> Parsed:
    """The instant ``text`` means, seen from ``now`` (aware) in ``zone``; ValidationError
    (one line, the text and examples) when it is none of the accepted forms. Does not
    refuse past times: the caller decides what is too early."""
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    original = text
    cleaned = " ".join(text.strip().lower().split())
    if not cleaned or len(cleaned) > 64:
        raise _refuse(original)
    local_now = now.astimezone(zone)
    relative = _RELATIVE.match(cleaned)
    if relative is not None:
        return _relative(relative[1], zone, now, local_now, original)
    if cleaned[0].isdigit():
        return _iso(text.strip(), zone, original)
    match = _DAY_AND_TIME.match(cleaned)
    if match is None:
        raise _refuse(original)
    word, clock_text = match[1], match[2]
    if word not in ("today", "tomorrow") and word not in _DAYS:
        raise _refuse(original)
    if clock_text is None:
        raise _refuse(original, f"give a time of day too, e.g. '{word} 10:00'")
    at = _clock(clock_text, original)
    today = local_now.date()
    if word == "today":
        day = today
    elif word == "tomorrow":
        day = today + timedelta(days=1)
    else:
        ahead = (_DAYS[word] - today.weekday()) % 7
        day = today + timedelta(days=ahead)
        local, _ = resolve_local(day, at, zone)
        if local <= now:  # that time today has passed: next week
            day += timedelta(days=7)
    local, note = resolve_local(day, at, zone)
    return Parsed(local.astimezone(UTC), local, note)


def _relative(
    spec: str, zone: ZoneInfo, now: datetime, local_now: datetime, original: str
) -> Parsed:
    days = 0
    elapsed = timedelta()
    for amount_text, unit in _PART.findall(spec):
        amount = int(amount_text)
        if unit == "m":
            elapsed += timedelta(minutes=amount)
        elif unit == "h":
            elapsed += timedelta(hours=amount)
        elif unit == "d":
            days += amount
        else:
            days += 7 * amount
    if timedelta(days=days) + elapsed > _MAX_AHEAD:
        raise _refuse(original, "more than ten years ahead")
    base = now
    note = None
    if days:
        wall = local_now.replace(tzinfo=None) + timedelta(days=days)
        local, note = resolve_local(wall.date(), wall.time(), zone)
        base = local
    instant = (base + elapsed).astimezone(UTC)
    return Parsed(instant, instant.astimezone(zone), note)


def _iso(text: str, zone: ZoneInfo, original: str) -> Parsed:
    candidate = text.replace("z", "Z")
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise _refuse(original) from None
    if "t" not in text.lower() and " " not in text.strip() and ":" not in text:
        raise _refuse(original, "give a time of day too, e.g. 2026-12-01T10:00")
    if parsed.tzinfo is not None:
        instant = parsed.astimezone(UTC)
        return Parsed(instant, instant.astimezone(zone))
    local, note = resolve_local(parsed.date(), parsed.time(), zone)
    return Parsed(local.astimezone(UTC), local, note)
