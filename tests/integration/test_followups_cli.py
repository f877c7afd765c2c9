"""Follow-up reminders as a new user meets them: mail comes in, nobody answers, and
``leadmail dispatch --once`` (cron) mails the executive and the manager, once, at a real
SMTP server. Working hours are the whole week so the real clock decides nothing. SQLite
only: the rules and the tick are tested on both backends in test_followups.py."""

from __future__ import annotations

import json
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

from sqlalchemy import create_engine, update

from tests.integration.test_cli import ENQUIRY, Leadmail
from tests.integration.test_cli_dispatch import configure
from tests.integration.test_cli_send import ingest
from tests.servers.smtp import SmtpServer
from worker.store.models import Lead, Message, table_of, utcnow

FOLLOWUPS = """
[followups]
first_response_hours = 1
escalate_after_hours = 2
escalate_to = "bob"
working_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
working_hours = "00:00-24:00"
working_timezone = "UTC"
"""


def age_everything(leadmail: Leadmail, hours: float) -> None:
    """Intake stamps the real clock: make the lead and its mail ``hours`` old."""
    engine = create_engine(leadmail.db_url)
    then = utcnow() - timedelta(hours=hours)
    try:
        with engine.begin() as conn:
            conn.execute(update(table_of(Lead)).values(created_at=then))
            conn.execute(update(table_of(Message)).values(created_at=then, sent_at=then))
    finally:
        engine.dispose()


def test_an_unanswered_lead_reminds_its_executive_and_the_manager_once(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    mail = configure(Leadmail(tmp_path, f"sqlite:///{tmp_path}/leadmail.db"), smtp_server)
    with mail.config.open("a", encoding="utf-8") as config:
        config.write(FOLLOWUPS)
    ingest(mail, tmp_path, ENQUIRY)
    (lead,) = mail.json("leads", "list", "--format", "json")
    assert mail.ok("dispatch", "--once").stderr.count("sent") == 0
    assert smtp_server.sink.deliveries == []

    age_everything(mail, 3)
    first = mail.ok("dispatch", "--once", "--json")
    assert "follow-up rules: 2 reminder(s) made or moved, 0 cancelled" in first.stderr
    jobs = [json.loads(line) for line in first.stdout.splitlines()]
    assert sorted(job["kind"] for job in jobs) == ["reminders", "reminders"]
    for _ in range(3):
        again = mail.ok("dispatch", "--once", "--json")
        assert again.stdout == "" and "follow-up" not in again.stderr
    counts = smtp_server.sink.by_message_id()
    assert len(counts) == 2 and set(counts.values()) == {1}
    to = sorted(d.rcpt_tos[0] for d in smtp_server.sink.deliveries)
    assert to == [f"{lead['assigned_to']}@northwind.example", "bob@northwind.example"]

    rows = mail.json("reminders", "list", "--status", "all", "--format", "json")
    assert sorted((r["kind"], r["status"]) for r in rows) == [
        ("escalation", "sent"),
        ("first_response", "sent"),
    ]
    for delivery in smtp_server.sink.deliveries:
        assert delivery.raw is not None
        message = message_from_bytes(delivery.raw, policy=policy.default)
        assert message["Auto-Submitted"] == "auto-generated"
        text = message.get_body(("plain",))
        assert text is not None and "nobody has written to it yet" in text.get_content()
