"""``[smtp] sent_copy``: a sent mail is appended to the executive's Sent folder (real Dovecot)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.outbound_helpers import (
    delivery_settings,
    make_app,
    queue_mails,
    row,
    smtp_section,
)
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import SmtpServer
from worker.services import delivery

PASSWORD_ENV = "LEADMAIL_TEST_IMAP_PASSWORD"


def test_a_sent_mail_is_copied_to_the_sent_folder_once(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    imap_user: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, Dovecot.PASSWORD)
    account = {
        "name": "sales",
        "kind": "imap",
        "host": dovecot.host,
        "port": dovecot.port,
        "security": "none",
        "username": imap_user,
        "password_env": PASSWORD_ENV,
    }
    settings = delivery_settings(
        f"sqlite:///{tmp_path}/leadmail.db",
        tmp_path,
        smtp_section(smtp_server, sent_copy="sales/Sent Items"),
        accounts=[account],
    )
    app = make_app(settings)
    sender = delivery.open_sender(app)
    try:
        mails = queue_mails(app, 2)
        smtp_server.script.add("data", "550 5.7.1 Refused", match=mails[1]["message_id"])
        delivery.claim_outbox(app)
        for mail in mails:
            delivery.send_outbound(app, mail["id"], sender)
        assert row(app, mails[0]["id"])["status"] == "sent"
        assert row(app, mails[1]["id"])["status"] == "failed"
    finally:
        sender.close()
        app.close()
    # Only the mail that went out is in the Sent folder, marked read.
    with dovecot.session(imap_user) as imap:
        imap.select_folder("Sent Items", readonly=True)
        found = imap.search(["HEADER", "Message-ID", mails[0]["message_id"]])
        assert len(found) == 1
        assert imap.search("ALL") == found
        assert b"\\Seen" in imap.get_flags(found)[found[0]]


def test_a_failed_copy_is_a_warning_and_the_mail_stays_sent(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    imap_user: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    account = {
        "name": "sales",
        "kind": "imap",
        "host": dovecot.host,
        "port": dovecot.port,
        "security": "none",
        "username": imap_user,
        "password_env": PASSWORD_ENV,
    }
    settings = delivery_settings(
        f"sqlite:///{tmp_path}/leadmail.db",
        tmp_path,
        smtp_section(smtp_server, sent_copy="sales/Sent"),
        accounts=[account],
    )
    app = make_app(settings)
    sender = delivery.open_sender(app)
    try:
        (mail,) = queue_mails(app, 1)
        delivery.claim_outbox(app)
        attempt = delivery.send_outbound(app, mail["id"], sender)
        assert attempt is not None and attempt.status == "sent"
    finally:
        sender.close()
        app.close()
    assert len(smtp_server.sink) == 1
    (warning,) = [r for r in caplog.records if "sent copy" in r.getMessage()]
    assert "login" in warning.getMessage() and "not-the-password" not in warning.getMessage()
