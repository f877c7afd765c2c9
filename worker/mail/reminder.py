"""A reminder mail to an executive: a short summary of the lead and a calendar invitation.

Pure: values in, bytes out. Composed when the reminder is sent (the summary shows the lead
as it is then), with a Message-ID fixed by the reminder and its SEQUENCE, so a retry after
an unknown SMTP outcome sends the same id and a sink or a mail client can tell a duplicate.

The invitation (iCalendar, RFC 5545/5546, made with the ``icalendar`` library) is one
``VEVENT`` per reminder with a stable ``UID``: a moved reminder is sent again with the same
UID and a higher ``SEQUENCE`` (clients move the entry), a cancelled one with
``METHOD:CANCEL``. ``DTSTART`` is the due instant expressed in the executive's zone (with
its ``VTIMEZONE``), the executive is the ``ATTENDEE``, our sender the ``ORGANIZER``, and a
``VALARM`` (DISPLAY) goes off at the start. The mail says ``Auto-Submitted:
auto-generated`` (RFC 3834): no auto-reply should answer it.

Everything from a lead or a message (names, subjects, excerpts) is data from strangers: it
is flattened to single lines for headers (no CR/LF/NUL ever reaches one) and trimmed to a
few lines in the body.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.header import Header
from email.utils import format_datetime, formataddr
from zoneinfo import ZoneInfo

from icalendar import Timezone, vText

from worker.errors import ValidationError
from worker.mail.addresses import normalize_email
from worker.mail.message import Address

PRODID = "-//leadmail//reminders//EN"
DURATION = timedelta(minutes=15)
EXCERPT_LINES = 4
EXCERPT_CHARS = 300
SUBJECT_CHARS = 120
MESSAGES_SHOWN = 3
_SUBJECTS = {
    "manual": "Contact {lead}",
    "first_response": "First response due: {lead}",
    "escalation": "Unanswered lead: {lead}",
    "no_reply": "Follow up: {lead}",
}


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """One of the lead's latest messages, as the reminder shows it."""

    direction: str  # in | out
    at: datetime
    sender: str
    subject: str
    text: str


@dataclass(frozen=True, slots=True)
class ReminderDraft:
    """Everything a reminder mail says."""

    reminder_id: int
    kind: str
    method: str  # REQUEST | CANCEL
    uid: str
    sequence: int
    due_at: datetime  # aware
    zone: str  # the executive's zone (or [leads] timezone)
    organizer: Address
    attendee: Address
    id_domain: str
    lead_id: int
    lead_name: str
    company: str | None
    status: str
    owner: str | None
    lead_email: str | None
    note: str | None
    cause: str | None
    messages: Sequence[MessageSummary] = ()
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class ComposedReminder:
    raw: bytes
    message_id: str  # bare
    subject: str
    ics: bytes


def reminder_message_id(reminder_id: int, sequence: int, domain: str) -> str:
    """Bare, deterministic: one per reminder and SEQUENCE. Every version that may reach a
    calendar has its own SEQUENCE (a move or cancel after delivery raises it), so two
    different mails never share an id, and a retry of one always does."""
    return f"reminder-{reminder_id}-{sequence}@{domain}"


def one_line(value: str | None, limit: int = SUBJECT_CHARS) -> str:
    """Any text as one plain line: controls become spaces, runs of space collapse."""
    text = value or ""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else " " for c in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _excerpt(text: str) -> list[str]:
    lines: list[str] = []
    for raw in (text or "").replace("\r\n", "\n").split("\n"):
        line = one_line(raw, 200)
        if not line or line.startswith(">"):
            continue  # quoted history says nothing new
        lines.append(line)
        if len(lines) == EXCERPT_LINES or sum(map(len, lines)) >= EXCERPT_CHARS:
            break
    return lines


def _header_address(header: str, value: Address) -> str:
    """``Name <addr>`` with the name RFC 2047-encoded when it is not ASCII; the domain in
    IDNA. ValidationError for anything that is not one plain address."""
    plain = normalize_email(value.email)
    if not plain or any(c in value.email.strip() for c in '<>,;: \t\r\n\0"()[]\\'):
        raise ValidationError(f"{header}: {value.email!r} is not an address", value.email)
    local, _, domain = plain.rpartition("@")
    if not local.isascii():
        raise ValidationError(f"{header}: {plain!r} has a non-ASCII local part", plain)
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationError(f"{header}: {plain!r} has an invalid domain", plain) from None
    return formataddr((one_line(value.name), f"{local}@{ascii_domain}"), charset="utf-8")


def subject_of(draft: ReminderDraft) -> str:
    who = one_line(draft.lead_name, 60)
    if draft.company and one_line(draft.company, 60) not in who:
        who = f"{who} ({one_line(draft.company, 60)})"
    base = _SUBJECTS.get(draft.kind, "Reminder: {lead}").format(lead=who)
    prefix = {"CANCEL": "Cancelled: ", "REQUEST": "Updated: " if draft.sequence else ""}
    return one_line(f"{prefix.get(draft.method, '')}{base}, lead {draft.lead_id}")


def body_of(draft: ReminderDraft) -> str:
    zone = ZoneInfo(draft.zone)
    local = draft.due_at.astimezone(zone)
    lines: list[str] = []
    if draft.method == "CANCEL":
        lines.append(f"This reminder is cancelled: lead {draft.lead_id} needs no contact now.")
    else:
        lines.append(f"Time to contact lead {draft.lead_id}.")
    lines += [
        "",
        f"When:     {local:%Y-%m-%d %H:%M} {local.tzname()} ({draft.zone})",
        f"Lead:     {one_line(draft.lead_name)}"
        + (f" <{one_line(draft.lead_email)}>" if draft.lead_email else ""),
    ]
    if draft.company:
        lines.append(f"Company:  {one_line(draft.company)}")
    lines.append(f"Status:   {one_line(draft.status)}")
    lines.append(f"Owner:    {one_line(draft.owner) if draft.owner else 'unassigned'}")
    if draft.note:
        lines.append(f"Note:     {one_line(draft.note, 1000)}")
    if draft.cause:
        lines.append(f"Why:      {one_line(draft.cause, 300)}")
    shown = list(draft.messages)[-MESSAGES_SHOWN:]
    if shown:
        lines += ["", f"Latest messages ({len(shown)}):"]
        for m in shown:
            arrow = "→ sent" if m.direction == "out" else "← received"
            when = m.at.astimezone(zone)
            lines.append("")
            lines.append(
                f"  {arrow} {when:%Y-%m-%d %H:%M} {one_line(m.sender, 80)}: "
                f"{one_line(m.subject, 100) or '(no subject)'}"
            )
            lines += [f"    {line}" for line in _excerpt(m.text)]
    else:
        lines += ["", "No messages yet."]
    lines += [
        "",
        f"Show the lead:  leadmail leads show {draft.lead_id}",
        "",
        f"-- leadmail reminder {draft.reminder_id} ({draft.kind}), calendar entry attached",
    ]
    return "\n".join(lines) + "\n"


def description_of(draft: ReminderDraft) -> str:
    """The calendar entry's text: short (clients show it in a small box, and long text is
    slow to fold), the mail carries the rest."""
    lines = [f"Lead {draft.lead_id}: {one_line(draft.lead_name)}"]
    if draft.company:
        lines[0] += f" ({one_line(draft.company, 60)})"
    if draft.note:
        lines.append(one_line(draft.note, 300))
    lines.append(f"leadmail leads show {draft.lead_id}")
    return "\n".join(lines)


@functools.lru_cache(maxsize=256)
def _vtimezone(zone: str, year: int) -> bytes:
    """The zone's VTIMEZONE (icalendar, from zoneinfo's rules) for the years around
    ``year``, serialised once: folding its lines is most of a calendar's cost."""
    component = Timezone.from_tzinfo(
        ZoneInfo(zone), zone, date(year - 1, 1, 1), date(year + 2, 1, 1)
    )
    vtimezone: bytes = component.to_ical()
    return vtimezone


_UTC_NAMES = frozenset({"UTC", "ETC/UTC", "UNIVERSAL", "ETC/UNIVERSAL", "ZULU", "ETC/ZULU"})
FOLD_OCTETS = 75


def calendar_of(draft: ReminderDraft, now: datetime) -> bytes:
    """The invitation's bytes. Its shape is fixed, so its content lines are written here
    directly, each value escaped by icalendar's own property types, and folded at 75
    octets; building Calendar/Event objects and letting icalendar serialise them cost 2.7 ms
    a reminder, two thirds of a whole send. The VTIMEZONE comes from icalendar (cached).
    Tests parse every shape back with icalendar and compare it with the library's output."""
    zone = ZoneInfo(draft.zone)
    start = draft.due_at.astimezone(zone)
    end = start + DURATION
    utc = draft.zone.upper() in _UTC_NAMES
    if utc:
        dtstart = f"DTSTART:{start.astimezone(UTC):%Y%m%dT%H%M%SZ}"
        dtend = f"DTEND:{end.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    else:
        tzid = draft.zone  # an IANA name: nothing in it needs quoting
        dtstart = f"DTSTART;TZID={tzid}:{start:%Y%m%dT%H%M%S}"
        dtend = f"DTEND;TZID={tzid}:{end:%Y%m%dT%H%M%S}"
    subject = subject_of(draft)
    summary = subject.rsplit(", lead ", 1)[0].removeprefix("Cancelled: ")
    cancel = draft.method == "CANCEL"
    lines = [
        f"UID:{_text(draft.uid)}",
        f"SEQUENCE:{int(draft.sequence)}",
        f"DTSTAMP:{now.astimezone(UTC):%Y%m%dT%H%M%SZ}",
        dtstart,
        dtend,
        f"SUMMARY:{_text(summary)}",
        f"DESCRIPTION:{_text(description_of(draft))}",
        f"STATUS:{'CANCELLED' if cancel else 'CONFIRMED'}",
        "TRANSP:TRANSPARENT",  # a reminder, not a meeting: the time stays free
        f"ORGANIZER;CN={_param(one_line(draft.organizer.name) or draft.organizer.email)}"
        f":mailto:{normalize_email(draft.organizer.email)}",
        f"ATTENDEE;CN={_param(one_line(draft.attendee.name) or draft.attendee.email)}"
        ";PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT;RSVP=FALSE"
        f":mailto:{normalize_email(draft.attendee.email)}",
    ]
    if not cancel:
        lines += [
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            f"DESCRIPTION:{_text(one_line(subject))}",
            "TRIGGER:PT0S",
            "END:VALARM",
        ]
    head = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        f"METHOD:{draft.method}",
    ]
    # RFC 5545: a TZID needs its VTIMEZONE, before the components that use it.
    vtimezone = b"" if utc else _vtimezone(draft.zone, start.year)
    event = ["BEGIN:VEVENT", *lines, "END:VEVENT", "END:VCALENDAR", ""]
    return b"".join(
        (
            "\r\n".join(head).encode("ascii"),
            b"\r\n",
            vtimezone,
            b"\r\n".join(_fold(line) for line in event),
        )
    )


def _text(value: str) -> str:
    """A TEXT value escaped as RFC 5545 says (backslash, ``;``, ``,``, newline)."""
    return vText(value).to_ical().decode("utf-8")


def _param(value: str) -> str:
    """A parameter value, always quoted; a double quote in it as RFC 6868's ``^'``."""
    return '"' + value.replace("^", "^^").replace('"', "^'") + '"'


def _fold(line: str) -> bytes:
    """RFC 5545 folding: at most 75 octets a line, never inside a UTF-8 sequence."""
    data = line.encode("utf-8")
    if len(data) <= FOLD_OCTETS:
        return data
    parts: list[bytes] = []
    begin, limit = 0, FOLD_OCTETS
    while len(data) - begin > limit:
        cut = begin + limit
        while data[cut] & 0xC0 == 0x80:  # a continuation byte: cut before its sequence
            cut -= 1
        parts.append(data[begin:cut])
        begin, limit = cut, FOLD_OCTETS - 1  # the folded line starts with a space
    parts.append(data[begin:])
    return b"\r\n ".join(parts)


def _mime(
    headers: Sequence[tuple[str, str]],
    text: str,
    ics: bytes,
    method: str,
    filename: str,
    message_id: str,
) -> bytes:
    """The message's bytes, written out directly: its shape never changes (multipart/mixed:
    the text as quoted-printable UTF-8, the invitation as base64, which keeps its CRLFs),
    every header value is ours and one line (checked above), and the email package's
    generator cost more than composing the calendar. Tests parse it back with the stdlib.
    """
    boundary = f"=_leadmail_{hashlib.sha256(message_id.encode()).hexdigest()[:24]}"
    # Header.encode folds long encoded words with "\n ": the only line breaks a value holds
    # (one_line took every control character out of what came from the database).
    lines = [f"{name}: {value}".replace("\n", "\r\n") for name, value in headers]
    lines += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        f"--{boundary}",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        binascii.b2a_qp(text.encode("utf-8")).decode("ascii").replace("\n", "\r\n").rstrip(),
        f"--{boundary}",
        f'Content-Type: text/calendar; charset="utf-8"; method={method}; name="{filename}"',
        "Content-Transfer-Encoding: base64",
        f'Content-Disposition: attachment; filename="{filename}"',
        "",
        *(
            binascii.b2a_base64(ics[i : i + 57], newline=False).decode("ascii")
            for i in range(0, len(ics), 57)
        ),
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


def compose_reminder(draft: ReminderDraft) -> ComposedReminder:
    """The mail: text summary and the invitation as a ``text/calendar`` attachment."""
    if draft.method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"unknown iTIP method {draft.method!r}")
    if draft.due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    now = draft.now or datetime.now(UTC)
    message_id = reminder_message_id(draft.reminder_id, draft.sequence, draft.id_domain)
    subject = subject_of(draft)
    ics = calendar_of(draft, now)
    subject_header = (
        subject if subject.isascii() else Header(subject, "utf-8", header_name="Subject").encode()
    )
    headers = [
        ("Message-ID", f"<{message_id}>"),
        ("Date", format_datetime(now.astimezone(UTC))),
        ("From", _header_address("From", draft.organizer)),
        ("To", _header_address("To", draft.attendee)),
        ("Subject", subject_header),
        ("Auto-Submitted", "auto-generated"),
        ("X-Auto-Response-Suppress", "All"),
        ("X-Leadmail-Reminder", f"{draft.reminder_id}; lead={draft.lead_id}"),
    ]
    filename = "invite.ics" if draft.method != "CANCEL" else "cancel.ics"
    raw = _mime(headers, body_of(draft), ics, draft.method, filename, message_id)
    return ComposedReminder(raw=raw, message_id=message_id, subject=subject, ics=ics)
