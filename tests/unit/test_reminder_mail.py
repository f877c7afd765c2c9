"""mail/reminder.py: the reminder mail and its invitation, parsed back with icalendar and
Python's own email parser."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from worker.mail.message import Address
from worker.mail.reminder import MessageSummary, ReminderDraft, compose_reminder

DUE = datetime(2026, 3, 29, 8, 0, tzinfo=UTC)  # 10:00 CEST, the day Berlin changes
NOW = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)

DRAFT = ReminderDraft(
    reminder_id=7,
    kind="manual",
    method="REQUEST",
    uid="5a1c0de0-0000-4000-8000-000000000001@leadmail",
    sequence=0,
    due_at=DUE,
    zone="Europe/Berlin",
    organizer=Address("Northwind Sales", "sales@northwind.example"),
    attendee=Address("Alice Chan", "alice@northwind.example"),
    id_domain="northwind.example",
    lead_id=42,
    lead_name="Jane Roe",
    company="Acme Industrial",
    status="Open",
    owner="alice",
    lead_email="jane@acme.example",
    note="Ask about the second quote",
    cause="next contact set by bob",
    messages=(
        MessageSummary("in", NOW - timedelta(days=3), "jane@acme.example", "Quote?", "one"),
        MessageSummary("out", NOW - timedelta(days=2), "alice@northwind.example", "Re: Quote?",
                       "Hello Jane,\n\n> old quoted text\nHere is the quote.\nBest,\nAlice\n"
                       "more\nmore"),
        MessageSummary("in", NOW - timedelta(days=1), "jane@acme.example", "Re: Re: Quote?",
                       "Thanks!"),
        MessageSummary("in", NOW - timedelta(hours=1), "jane@acme.example", "Also", "One more"),
    ),
    now=NOW,
)  # fmt: skip


def _parse(raw: bytes) -> tuple[EmailMessage, Calendar]:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    parts = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    assert parts[0].get_param("method") in ("REQUEST", "CANCEL")
    assert parts[0].get_filename() in ("invite.ics", "cancel.ics")
    return msg, Calendar.from_ical(parts[0].get_content())


def test_request_mail_headers_body_and_invitation() -> None:
    composed = compose_reminder(DRAFT)
    msg, cal = _parse(composed.raw)
    assert msg["Message-ID"] == "<reminder-7-0@northwind.example>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["To"] == "Alice Chan <alice@northwind.example>"
    assert msg["From"] == "Northwind Sales <sales@northwind.example>"
    assert msg["Subject"] == "Contact Jane Roe (Acme Industrial), lead 42"
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "2026-03-29 10:00 CEST (Europe/Berlin)" in text
    assert "Ask about the second quote" in text and "Status:   Open" in text
    assert "leadmail leads show 42" in text
    # The last three messages, in and out, with dates; quoted lines left out, a few lines each.
    assert "Quote?" in text and "Also" in text and "one\n" not in text
    assert "→ sent 2026-03-26" in text and "old quoted text" not in text
    assert "more\n    more" not in text
    assert cal["method"] == "REQUEST"
    (event,) = cal.walk("VEVENT")
    assert str(event["uid"]) == DRAFT.uid
    assert event.decoded("sequence") == 0
    start = event.decoded("dtstart")
    assert start.astimezone(UTC) == DUE
    assert str(start.tzinfo) == "Europe/Berlin" or getattr(start.tzinfo, "key", "") == (
        "Europe/Berlin"
    )
    assert event["dtstart"].params["TZID"] == "Europe/Berlin"
    assert [tz["tzid"] for tz in cal.walk("VTIMEZONE")] == ["Europe/Berlin"]
    assert str(event["attendee"]) == "mailto:alice@northwind.example"
    assert str(event["organizer"]) == "mailto:sales@northwind.example"
    (alarm,) = event.walk("VALARM")
    assert alarm["action"] == "DISPLAY" and alarm.decoded("trigger") == timedelta(0)
    # Composed again (a retry): the same Message-ID.
    assert compose_reminder(DRAFT).message_id == composed.message_id


def test_update_and_cancel_keep_the_uid() -> None:
    update = compose_reminder(replace(DRAFT, sequence=1, due_at=DUE + timedelta(days=1)))
    msg, cal = _parse(update.raw)
    assert msg["Subject"].startswith("Updated: Contact Jane Roe")
    assert msg["Message-ID"] == "<reminder-7-1@northwind.example>"
    (event,) = cal.walk("VEVENT")
    assert (str(event["uid"]), event.decoded("sequence")) == (DRAFT.uid, 1)
    assert event.decoded("dtstart").astimezone(UTC) == DUE + timedelta(days=1)
    cancel = compose_reminder(replace(DRAFT, sequence=2, method="CANCEL"))
    msg, cal = _parse(cancel.raw)
    assert cal["method"] == "CANCEL" and msg["Subject"].startswith("Cancelled: ")
    (event,) = cal.walk("VEVENT")
    assert (str(event["uid"]), event.decoded("sequence"), str(event["status"])) == (
        DRAFT.uid,
        2,
        "CANCELLED",
    )
    assert event.walk("VALARM") == []


def test_bangkok_zone_and_kinds() -> None:
    composed = compose_reminder(replace(DRAFT, zone="Asia/Bangkok", kind="no_reply", messages=()))
    msg, cal = _parse(composed.raw)
    assert msg["Subject"] == "Follow up: Jane Roe (Acme Industrial), lead 42"
    (event,) = cal.walk("VEVENT")
    start = event.decoded("dtstart")
    assert (start.hour, start.astimezone(UTC)) == (15, DUE)
    body = msg.get_body(("plain",))
    assert body is not None and "No messages yet." in body.get_content()


@pytest.mark.parametrize(
    "name",
    ["Jane\r\nBcc: evil@x.example", "Jane\x00Roe", "J" * 5000, "Jane\u202eRoe", "ジェーン"],
)
def test_hostile_lead_text_never_breaks_a_header(name: str) -> None:
    composed = compose_reminder(replace(DRAFT, lead_name=name, company=name, note=name))
    msg, cal = _parse(composed.raw)
    assert msg["Bcc"] is None
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    assert len(msg["Subject"]) <= 130
    assert str(cal.walk("VEVENT")[0]["uid"]) == DRAFT.uid


def test_utc_needs_no_vtimezone() -> None:
    composed = compose_reminder(replace(DRAFT, zone="UTC"))
    _msg, cal = _parse(composed.raw)
    assert cal.walk("VTIMEZONE") == []
    (event,) = cal.walk("VEVENT")
    assert event.decoded("dtstart") == DUE
    assert b"DTSTART:20260329T080000Z" in composed.ics


def test_long_non_ascii_names_fold_with_crlf_only() -> None:
    name = "ทดสอบ ลูกค้า " * 12
    composed = compose_reminder(
        replace(DRAFT, lead_name=name, attendee=Address(name, DRAFT.attendee.email))
    )
    assert b"\r\n" in composed.raw
    assert b"\n" not in composed.raw.replace(b"\r\n", b"")
    assert b"\r" not in composed.raw.replace(b"\r\n", b"")
    assert max(len(line) for line in composed.raw.split(b"\r\n")) <= 998
    msg, _cal = _parse(composed.raw)
    assert msg["Subject"].startswith("Contact ทดสอบ ลูกค้า")
    assert msg["To"].addresses[0].display_name == " ".join(name.split())[:119] + "…" or (
        msg["To"].addresses[0].username == "alice"
    )
    body = msg.get_body(("plain",))
    assert body is not None and "ทดสอบ" in body.get_content()


# -- the invitation is what icalendar itself would write ------------------------------------


def _reference(draft: ReminderDraft, now: datetime) -> Calendar:
    """The same invitation built the slow, obvious way with icalendar's objects."""
    from icalendar import Alarm, Event, vCalAddress, vText

    from worker.mail.reminder import PRODID, description_of, one_line, subject_of

    start = draft.due_at.astimezone(ZoneInfo(draft.zone))
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", draft.method)
    event = Event()
    event.add("uid", draft.uid)
    event.add("sequence", draft.sequence)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=15))
    event.add("summary", subject_of(draft).rsplit(", lead ", 1)[0].removeprefix("Cancelled: "))
    event.add("description", description_of(draft))
    event.add("status", "CANCELLED" if draft.method == "CANCEL" else "CONFIRMED")
    event.add("transp", "TRANSPARENT")
    for name, who, extra in (
        ("organizer", draft.organizer, {}),
        ("attendee", draft.attendee, {"role": "REQ-PARTICIPANT", "partstat": "ACCEPTED"}),
    ):
        address = vCalAddress(f"mailto:{who.email}")
        address.params["cn"] = vText(one_line(who.name) or who.email)
        for key, value in extra.items():
            address.params[key] = vText(value)
        if name == "attendee":
            address.params["rsvp"] = vText("FALSE")
        event.add(name, address)
    if draft.method != "CANCEL":
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", one_line(subject_of(draft)))
        alarm.add("trigger", timedelta(0))
        event.add_component(alarm)
    cal.add_component(event)
    return Calendar.from_ical(cal.to_ical())


def _shape(cal: Calendar) -> list[tuple[str, list[tuple[str, str, dict[str, str]]]]]:
    """Every component with its properties, values as icalendar reads them back."""
    return [
        (
            component.name,
            sorted(
                (key, str(value.to_ical() if hasattr(value, "to_ical") else value),
                 {k: str(v) for k, v in getattr(value, "params", {}).items()})
                for key, value in component.property_items(recursive=False)
                if key not in ("BEGIN", "END")
            ),
        )
        for component in cal.walk()
        if component.name != "VTIMEZONE" and component.name not in ("STANDARD", "DAYLIGHT")
    ]  # fmt: skip


_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=120
)


@settings(max_examples=60, deadline=None)
@given(
    name=_TEXT,
    note=_TEXT,
    company=st.one_of(st.none(), _TEXT),
    method=st.sampled_from(["REQUEST", "CANCEL"]),
    zone=st.sampled_from(["Europe/Berlin", "Asia/Bangkok", "UTC", "America/St_Johns"]),
    sequence=st.integers(0, 40),
)
def test_the_invitation_reads_back_as_icalendars_own(
    name: str, note: str, company: str | None, method: str, zone: str, sequence: int
) -> None:
    draft = replace(
        DRAFT,
        lead_name=name,
        note=note,
        company=company,
        method=method,
        zone=zone,
        sequence=sequence,
        attendee=Address(f'Ålice "Al" Chan; {name[:20]}', "alice@northwind.example"),
    )
    ics = compose_reminder(draft).ics
    assert all(len(line) <= 75 for line in ics.split(b"\r\n"))
    ics.decode("utf-8")  # folding never cut a character in two
    ours = Calendar.from_ical(ics)
    assert _shape(ours) == _shape(_reference(draft, NOW))
    if zone != "UTC":
        assert [c["tzid"] for c in ours.walk("VTIMEZONE")] == [zone]
