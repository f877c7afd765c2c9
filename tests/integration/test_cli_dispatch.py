"""``leadmail send`` then ``leadmail dispatch --once`` against a real SMTP server, on each backend.

What a new user does: queue a mail from the CLI, run the cron-style one-shot, and find exactly
one message at the server whose Message-ID is the one `send --json` printed.
"""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from tests.integration.delivery_fixtures import SmtpFactory
from tests.integration.test_cli import ENQUIRY, REPLY, Leadmail, assert_user_error
from tests.integration.test_cli_send import RULES, ingest, outbox
from tests.servers.smtp import SmtpServer

PASSWORD_ENV = "LEADMAIL_TEST_SMTP_PASSWORD"


@pytest.fixture
def sqlite_leadmail(tmp_path: Path) -> Leadmail:
    """The CLI on SQLite only: for what does not depend on the backend (the send itself is
    tested on both), to keep the suite quick."""
    return Leadmail(tmp_path, f"sqlite:///{tmp_path}/leadmail.db")


def configure(leadmail: Leadmail, server: SmtpServer | None, **queue: Any) -> Leadmail:
    leadmail.rules_file.write_text(RULES, encoding="utf-8")
    lines = ["[smtp]", 'from_address = "sales@northwind.example"']
    if server is not None:
        security = {"plain": "none", "starttls": "starttls", "ssl": "ssl"}[server.mode]
        lines += [
            'transport = "smtp"',
            f'host = "{server.host}"',
            f"port = {server.port}",
            f'security = "{security}"',
            "timeout = 10",
        ]
        if server.mode != "plain":
            lines.append(f"ca_file = {json.dumps(str(server.ca_path))}")
        if server.auth:
            lines += [f'username = "{SmtpServer.USER}"', f'password_env = "{PASSWORD_ENV}"']
    if queue:
        lines.append("[queue]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in queue.items()]
    with leadmail.config.open("a", encoding="utf-8") as config:
        config.write("\n".join(lines) + "\n")
    return leadmail


def send(leadmail: Leadmail, *args: str) -> dict[str, Any]:
    out = leadmail.json("send", *args, "--json", "--by", "alice")
    assert isinstance(out, dict)
    return out


def test_send_then_dispatch_once_delivers_exactly_one(
    leadmail: Leadmail, smtp_server: SmtpServer
) -> None:
    mail = configure(leadmail, smtp_server)
    queued = send(
        mail, "--to", "somchai@siam-office.example", "--subject", "Chairs?", "--body", "Hello\n"
    )
    result = mail.ok("dispatch", "--once", "--json")
    (job,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert job["kind"] == "outbox" and job["outbox_id"] == queued["outbox_id"]
    assert (job["status"], job["outcome"], job["message_id"]) == (
        "sent",
        "delivered",
        queued["message_id"],
    )
    assert "dispatched 1 job(s): 1 sent" in result.stderr
    assert smtp_server.sink.by_message_id() == {queued["message_id"]: 1}
    (delivery,) = smtp_server.sink.deliveries
    assert delivery.rcpt_tos == ("somchai@siam-office.example",)
    assert delivery.mail_from == "sales@northwind.example"  # [smtp] from_address
    (row,) = outbox(mail)
    assert row["status"] == "sent"
    lead = mail.json("leads", "show", str(queued["lead_id"]), "--format", "json")
    assert lead["status"] == "Replied"
    # Nothing is due any more: a second run sends nothing.
    again = mail.ok("dispatch", "--once")
    assert again.stdout.strip() == "dispatched 0 job(s)"
    assert len(smtp_server.sink) == 1


def test_a_reply_to_a_lead_carries_its_thread(
    sqlite_leadmail: Leadmail, smtp_server: SmtpServer, tmp_path: Any
) -> None:
    mail = configure(sqlite_leadmail, smtp_server)
    ingest(mail, tmp_path, ENQUIRY, REPLY)
    (lead,) = mail.json("leads", "list", "--format", "json")
    queued = send(mail, "--lead", str(lead["id"]), "--subject", "Re: chairs", "--body", "Yes.\n")
    mail.ok("dispatch", "--once")
    (delivery,) = smtp_server.sink.find(queued["message_id"])
    assert delivery.raw is not None
    sent = message_from_bytes(delivery.raw, policy=policy.default)
    assert sent["In-Reply-To"] == "<r1@acme-industrial.example>"
    assert "<enquiry-1@acme-industrial.example>" in sent["References"]


def test_starttls_with_auth_and_the_password_never_shown(
    sqlite_leadmail: Leadmail, smtp_factory: SmtpFactory
) -> None:
    server = smtp_factory("starttls")
    mail = configure(sqlite_leadmail, server)
    queued = send(mail, "--to", "jane@acme-industrial.example", "--subject", "Hi", "--body", "x")
    env = {PASSWORD_ENV: SmtpServer.PASSWORD}
    result = mail.run("dispatch", "--once", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    assert SmtpServer.PASSWORD not in result.output
    (delivery,) = server.sink.deliveries
    assert delivery.tls and delivery.login == SmtpServer.USER
    assert delivery.message_id == queued["message_id"]


def test_a_wrong_password_is_one_line_on_the_row(
    sqlite_leadmail: Leadmail, smtp_factory: SmtpFactory
) -> None:
    server = smtp_factory("starttls")
    mail = configure(sqlite_leadmail, server)
    queued = send(mail, "--to", "jane@acme-industrial.example", "--subject", "Hi", "--body", "x")
    wrong = "Not-The-Pa55word"
    result = mail.run("dispatch", "--once", "--json", env={PASSWORD_ENV: wrong})
    assert result.exit_code == 0, result.stderr
    (job,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert job["status"] == "pending"  # retried later: the password may be fixed meanwhile
    assert job["reply"].startswith(f"SMTP login as {SmtpServer.USER} refused by 127.0.0.1:")
    shown = mail.run("outbox", "show", str(queued["outbox_id"]), "--json")
    assert wrong not in result.output and wrong not in shown.output
    assert json.loads(shown.stdout)["last_error"] == job["reply"]
    assert len(server.sink) == 0


def test_missing_password_refuses_to_start(
    sqlite_leadmail: Leadmail, smtp_factory: SmtpFactory
) -> None:
    mail = configure(sqlite_leadmail, smtp_factory("starttls"))
    assert_user_error(mail.run("dispatch", "--once"), f"{PASSWORD_ENV} (password_env) is not set")


def test_worker_refuses_the_memory_broker(sqlite_leadmail: Leadmail) -> None:
    mail = configure(sqlite_leadmail, None)
    line = assert_user_error(mail.run("worker"), "leadmail worker needs a Redis broker")
    assert mail.run("worker").exit_code == 2
    assert "memory" in line


def test_dispatch_once_on_redis_only_enqueues(
    sqlite_leadmail: Leadmail, smtp_server: SmtpServer, redis_server: Any
) -> None:
    mail = configure(sqlite_leadmail, smtp_server, broker=redis_server.url)
    queued = send(mail, "--to", "jane@acme-industrial.example", "--subject", "Hi", "--body", "x")
    result = mail.ok("dispatch", "--once", "--json")
    (job,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert job == {"kind": "outbox", "id": queued["outbox_id"], "status": "enqueued"}
    assert f"dispatched 1 job(s) to {redis_server.url}" in result.stderr
    with redis_server.client() as conn:
        assert conn.llen("dramatiq:outbound") == 1
    assert len(smtp_server.sink) == 0
    (row,) = outbox(mail)
    assert row["status"] == "claimed"


@pytest.mark.parametrize("option", ["--threads=0", "--processes=0"])
def test_worker_options_are_checked(sqlite_leadmail: Leadmail, option: str) -> None:
    result = configure(sqlite_leadmail, None).run("worker", option)
    assert result.exit_code == 2
