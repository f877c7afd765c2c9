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

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email import charset as charsets
from email import policy
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from typing import cast
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event, Timezone, vCalAddress, vText

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


_QP = charsets.Charset("utf-8")
_QP.body_encoding = charsets.QP  # readable in any mail client's source view
# MIMEText takes a Charset as well as a name (its stub says only str).
_UTF8_QP = cast(str, _QP)
_CRLF = policy.compat32.clone(linesep="\r\n")


@dataclass(frozen=True, slots=True)
class ComposedReminder:
    message: MIMEMultipart
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
    text = "".join(c if c.isprintable() else " " for c in (value or ""))
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


def calendar_of(draft: ReminderDraft, now: datetime) -> bytes:
    zone = ZoneInfo(draft.zone)
    start = draft.due_at.astimezone(zone)
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
    event.add("dtend", start + DURATION)
    event.add("summary", subject_of(draft).rsplit(", lead ", 1)[0].removeprefix("Cancelled: "))
    event.add("description", description_of(draft))
    event.add("status", "CANCELLED" if draft.method == "CANCEL" else "CONFIRMED")
    event.add("transp", "TRANSPARENT")  # a reminder, not a meeting: the time stays free
    organizer = vCalAddress(f"mailto:{normalize_email(draft.organizer.email)}")
    organizer.params["cn"] = vText(one_line(draft.organizer.name) or draft.organizer.email)
    event["organizer"] = organizer
    attendee = vCalAddress(f"mailto:{normalize_email(draft.attendee.email)}")
    attendee.params["cn"] = vText(one_line(draft.attendee.name) or draft.attendee.email)
    attendee.params["role"] = vText("REQ-PARTICIPANT")
    attendee.params["partstat"] = vText("ACCEPTED")
    attendee.params["rsvp"] = vText("FALSE")
    event.add("attendee", attendee)
    if draft.method != "CANCEL":
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", one_line(subject_of(draft)))
        alarm.add("trigger", timedelta(0))
        event.add_component(alarm)
    cal.add_component(event)
    ics: bytes = cal.to_ical()
    if event["dtstart"].params.get("TZID"):
        # RFC 5545: a TZID needs its VTIMEZONE, before the components that use it.
        begin = b"BEGIN:VEVENT\r\n"
        ics = ics.replace(begin, _vtimezone(draft.zone, start.year) + begin, 1)
    return ics


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
    # The legacy (compat32) MIME classes: a third of the modern API's cost per mail, and
    # every header here is ours, built from checked single-line values.
    msg = MIMEMultipart("mixed")
    msg["Message-ID"] = f"<{message_id}>"
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["From"] = _header_address("From", draft.organizer)
    msg["To"] = _header_address("To", draft.attendee)
    msg["Subject"] = (
        subject if subject.isascii() else Header(subject, "utf-8", header_name="Subject").encode()
    )
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Leadmail-Reminder"] = f"{draft.reminder_id}; lead={draft.lead_id}"
    text = MIMEText(body_of(draft), "plain", _UTF8_QP)
    invitation = MIMEText(ics.decode("utf-8"), "calendar", _UTF8_QP)
    invitation.set_param("method", draft.method)
    filename = "invite.ics" if draft.method != "CANCEL" else "cancel.ics"
    invitation.add_header("Content-Disposition", "attachment", filename=filename)
    for part in (text, invitation):
        del part["MIME-Version"]  # the legacy classes repeat it on every part
        msg.attach(part)
    return ComposedReminder(
        message=msg,
        raw=msg.as_bytes(policy=_CRLF),
        message_id=message_id,
        subject=subject,
        ics=ics,
    )
