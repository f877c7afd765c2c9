"""Reminders end to end, as a new user meets them: ``leads set --next-contact-date`` then
``dispatch --once`` (or ``leadmail run``) against a real aiosmtpd server, on each backend.

Exactly one mail per reminder version, counted by Message-ID at the server; its .ics parsed
with icalendar and the stdlib parser: METHOD, UID, SEQUENCE and DTSTART as promised.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from icalendar import Calendar

from tests.integration.test_cli import Leadmail, invoke
from tests.integration.test_cli_dispatch import configure
from tests.servers.smtp import Delivery, SmtpServer


def _lead(mail: Leadmail, email: str = "jane@acme.example") -> int:
    lead = mail.json("leads", "add", "--email", email, "--name", "Jane Roe", "--json")
    return int(lead["id"])


def _soon(seconds: float = 3.0) -> datetime:
    """A due time a few seconds ahead (whole seconds): enough for `leads set` to accept it
    as future on a loaded machine, short enough to wait for."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0) + timedelta(
        seconds=1
    )


def _set(mail: Leadmail, lead: int, due: datetime, *more: str) -> dict[str, Any]:
    out = mail.json(
        "leads", "set", str(lead), "--next-contact-date", due.isoformat(), *more, "--json"
    )
    assert isinstance(out, dict)
    return out


def _wait_until(when: datetime) -> None:
    delay = (when - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay + 0.05)


def _dispatch(mail: Leadmail) -> list[dict[str, Any]]:
    result = mail.ok("dispatch", "--once", "--json")
    return [json.loads(line) for line in result.stdout.splitlines()]


def _parse(delivery: Delivery) -> tuple[EmailMessage, Any]:
    assert delivery.raw is not None
    msg = message_from_bytes(delivery.raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    (part,) = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    (event,) = Calendar.from_ical(part.get_content()).walk("VEVENT")
    cal = Calendar.from_ical(part.get_content())
    assert part.get_param("method") == cal["method"]
    return msg, (cal, event)


def _only_new(server: SmtpServer, seen: int) -> Delivery:
    assert server.sink.wait_for(seen + 1)
    deliveries = server.sink.deliveries
    assert len(deliveries) == seen + 1, [d.message_id for d in deliveries]
    return deliveries[-1]


def test_set_move_clear_each_reach_the_server_once(
    leadmail: Leadmail, smtp_server: SmtpServer
) -> None:
    mail = configure(leadmail, smtp_server)
    lead = _lead(mail)
    due = _soon()
    _set(mail, lead, due, "--next-contact-by", "alice", "--note", "Call about the quote")
    assert _dispatch(mail) == []  # not due yet
    _wait_until(due)
    (job,) = _dispatch(mail)
    assert (job["kind"], job["status"], job["outcome"]) == ("reminders", "sent", "delivered")
    delivery = _only_new(smtp_server, 0)
    assert delivery.rcpt_tos == ("alice@northwind.example",)
    assert delivery.mail_from == "sales@northwind.example"
    msg, (cal, event) = _parse(delivery)
    reminder_id = job["reminder_id"]
    assert msg["Message-ID"] == f"<reminder-{reminder_id}-0@northwind.example>"
    assert delivery.message_id == job["message_id"]
    assert msg["Auto-Submitted"] == "auto-generated"
    assert "Jane Roe" in msg["Subject"]
    body = msg.get_body(("plain",))
    assert body is not None and f"leadmail leads show {lead}" in body.get_content()
    assert "Call about the quote" in body.get_content()
    assert cal["method"] == "REQUEST"
    uid = str(event["uid"])
    assert event.decoded("sequence") == 0
    assert event.decoded("dtstart").astimezone(UTC) == due
    assert str(event["attendee"]) == "mailto:alice@northwind.example"
    assert event.walk("VALARM")
    # Nothing more: dispatching again sends nothing.
    assert _dispatch(mail) == []
    shown = mail.json("reminders", "show", str(reminder_id), "--json")
    assert (shown["status"], shown["method_sent"], shown["attempts"]) == ("sent", "REQUEST", 1)

    # Moved after delivery: the update, same UID, SEQUENCE 1, at the new time.
    due = _soon()
    _set(mail, lead, due)
    assert _dispatch(mail) == []
    _wait_until(due)
    (job,) = _dispatch(mail)
    assert job["reminder_id"] == reminder_id
    msg, (cal, event) = _parse(_only_new(smtp_server, 1))
    assert msg["Message-ID"] == f"<reminder-{reminder_id}-1@northwind.example>"
    assert (cal["method"], str(event["uid"]), event.decoded("sequence")) == ("REQUEST", uid, 1)
    assert event.decoded("dtstart").astimezone(UTC) == due

    # Cleared after delivery: METHOD:CANCEL for the same UID, at once.
    mail.ok("leads", "set", str(lead), "--clear-next-contact")
    (job,) = _dispatch(mail)
    msg, (cal, event) = _parse(_only_new(smtp_server, 2))
    assert (cal["method"], str(event["uid"]), event.decoded("sequence")) == ("CANCEL", uid, 2)
    assert msg["Subject"].startswith("Cancelled: ")
    assert delivery.rcpt_tos == ("alice@northwind.example",)
    shown = mail.json("reminders", "show", str(reminder_id), "--json")
    assert (shown["status"], shown["method_sent"]) == ("cancelled", "CANCEL")
    assert _dispatch(mail) == []
    assert smtp_server.sink.by_message_id() == {
        f"reminder-{reminder_id}-{n}@northwind.example": 1 for n in range(3)
    }


def test_do_not_contact_cancels_pending_and_delivered_reminders(
    leadmail: Leadmail, smtp_server: SmtpServer
) -> None:
    mail = configure(leadmail, smtp_server)
    pending = _lead(mail)
    delivered = _lead(mail, "joe@acme.example")
    due = _soon()
    # Far enough after the other that a slow machine never sends both in one dispatch.
    _set(mail, pending, due + timedelta(seconds=120), "--next-contact-by", "bob")
    _set(mail, delivered, due, "--next-contact-by", "bob")
    _wait_until(due)
    assert [j["status"] for j in _dispatch(mail)] == ["sent"]
    first = _only_new(smtp_server, 0)
    # Both leads become Do Not Contact: the pending one just stops, the delivered one is
    # taken out of bob's calendar.
    for lead in (pending, delivered):
        mail.ok("leads", "set", str(lead), "--status", "Do Not Contact")
    _wait_until(due + timedelta(seconds=1))
    (job,) = _dispatch(mail)
    assert job["status"] == "sent"
    msg, (cal, event) = _parse(_only_new(smtp_server, 1))
    assert str(event["uid"]) == str(_parse(first)[1][1]["uid"])
    assert cal["method"] == "CANCEL" and first.message_id != msg["Message-ID"].strip("<>")
    statuses = {r["lead_id"]: r["status"] for r in mail.json(
        "reminders", "list", "--status", "all", "--format", "json"
    )}  # fmt: skip
    assert statuses == {pending: "cancelled", delivered: "cancelled"}
    assert len(smtp_server.sink.deliveries) == 2


def test_a_refused_recipient_fails_the_reminder_with_its_reply(
    leadmail: Leadmail, smtp_server: SmtpServer
) -> None:
    mail = configure(leadmail, smtp_server)
    lead = _lead(mail)
    smtp_server.script.add("rcpt", "550 5.1.1 no such user", match="alice@northwind.example")
    due = _soon()
    _set(mail, lead, due, "--next-contact-by", "alice")
    _wait_until(due)
    (job,) = _dispatch(mail)
    assert (job["status"], job["outcome"]) == ("failed", "permanent")
    (row,) = mail.json("reminders", "list", "--format", "json")
    assert row["status"] == "failed" and "550" in row["last_error"]
    # The failed reminder is still the lead's: moving it tries again.
    due = _soon()
    _set(mail, lead, due)
    _wait_until(due)
    (job,) = _dispatch(mail)
    assert job["status"] == "sent"
    assert len(smtp_server.sink.deliveries) == 1


def test_run_sends_a_reminder_at_its_minute_to_the_file_transport(tmp_path: Path) -> None:
    """`leadmail run` on the embedded default: the reminder lands in the outbox folder."""
    outbox = tmp_path / "outbox"
    maildir = tmp_path / "inbox"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "executives:\n  - {id: alice, name: Alice Chan, email: alice@northwind.example}\n"
        "rules:\n  - {name: all, assign: {strategy: round_robin, to: [alice]}}\n"
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path}/leadmail.db"
[storage]
path = "{tmp_path / "data"}"
[rules]
path = "{rules}"
[smtp]
transport = "file"
file_path = "{outbox}"
from_address = "sales@northwind.example"
[queue]
dispatch_seconds = 0.5
[[accounts]]
name = "inbox"
kind = "maildir"
path = "{maildir}"
"""
    )
    base = ["--config", str(config)]
    added = invoke([*base, "leads", "add", "--email", "jane@acme.example", "--json"])
    assert added.exit_code == 0, added.stderr
    lead = json.loads(added.stdout)["id"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADMAIL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", *base, "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        due = _soon()
        result = invoke([*base, "leads", "set", str(lead), "--next-contact-date", due.isoformat()])
        assert result.exit_code == 0, result.stderr
        deadline = time.monotonic() + 30
        while not any(outbox.glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.05)
        arrived = datetime.now(UTC)
    finally:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    (eml,) = outbox.glob("*.eml")
    assert arrived >= due  # never before its time (how soon after is for bench/)
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    (part,) = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_filename() == "invite.ics"
    (event,) = Calendar.from_ical(part.get_content()).walk("VEVENT")
    assert event.decoded("dtstart").astimezone(UTC) == due
