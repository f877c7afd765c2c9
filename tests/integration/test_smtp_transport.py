"""The SMTP transport against a real aiosmtpd: every security mode, every outcome class."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.delivery_fixtures import SmtpFactory
from tests.servers.smtp import DROP_AFTER_DATA, DROP_MID_DATA, SmtpServer
from worker.config import SmtpSettings
from worker.transport.smtp import Outcome, RecipientState, SyncSmtpTransport

SENDER = "sales@northwind.example"
JANE = "jane@acme-industrial.example"
BOB = "bob@acme-industrial.example"


def message(n: int, to: str = JANE) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: offer {n}\r\n"
        f"Message-ID: <offer-{n}@northwind.example>\r\n\r\nHello {n}\r\n"
    ).encode()


def settings_for(server: SmtpServer, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "transport": "smtp",
        "host": server.host,
        "port": server.port,
        "security": {"plain": "none", "starttls": "starttls", "ssl": "ssl"}[server.mode],
        "timeout": 5,
    }
    if server.mode != "plain":
        values["ca_file"] = server.ca_path
    if server.auth:
        values["username"] = SmtpServer.USER
        values["password_env"] = "SMTP_TEST_PASSWORD"
    values.update(overrides)
    return SmtpSettings(**values)


@pytest.fixture
def transports() -> Iterator[list[SyncSmtpTransport]]:
    made: list[SyncSmtpTransport] = []
    yield made
    for transport in made:
        transport.close()


def connect(
    made: list[SyncSmtpTransport], server: SmtpServer, password: str | None = None, **kw: Any
) -> SyncSmtpTransport:
    transport = SyncSmtpTransport(
        settings_for(server, **kw), SmtpServer.PASSWORD if password is None else password
    )
    made.append(transport)
    return transport


@pytest.mark.parametrize("mode", ["plain", "starttls", "ssl"])
def test_each_security_mode_delivers(
    smtp_factory: SmtpFactory, transports: list[SyncSmtpTransport], mode: Any
) -> None:
    server = smtp_factory(mode)
    result = connect(transports, server).send(SENDER, [JANE], message(1))
    assert result.outcome is Outcome.DELIVERED, result.reply
    assert result.recipients[JANE].state is RecipientState.ACCEPTED
    (delivery,) = server.sink.deliveries
    assert delivery.message_id == "offer-1@northwind.example"
    assert delivery.tls == (mode != "plain")
    assert delivery.login == (SmtpServer.USER if mode != "plain" else None)


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_unknown_certificate_is_refused_unless_verify_tls_is_off(
    smtp_factory: SmtpFactory, transports: list[SyncSmtpTransport], mode: Any
) -> None:
    server = smtp_factory(mode)
    refused = connect(transports, server, ca_file=None).send(SENDER, [JANE], message(1))
    assert refused.outcome is Outcome.TEMPORARY
    assert refused.reply.startswith(f"TLS with {server.host}:{server.port} failed: ")
    assert "certificate verify failed" in refused.reply
    assert "\n" not in refused.reply and len(server.sink) == 0
    sent = connect(transports, server, ca_file=None, verify_tls=False).send(
        SENDER, [JANE], message(1)
    )
    assert sent.outcome is Outcome.DELIVERED
    assert len(server.sink) == 1


def test_wrong_password_is_one_line_without_the_password(
    smtp_factory: SmtpFactory, transports: list[SyncSmtpTransport]
) -> None:
    server = smtp_factory("starttls")
    result = connect(transports, server, password="Wrong-Pa55word").send(SENDER, [JANE], message(1))
    assert result.outcome is Outcome.TEMPORARY and result.code == 535
    assert result.reply.startswith(f"SMTP login as {SmtpServer.USER} refused by ")
    assert "Wrong-Pa55word" not in result.reply and "\n" not in result.reply
    assert "Wrong-Pa55word" not in repr(transports[-1].transport)


def test_connection_refused_is_temporary(
    smtp_factory: SmtpFactory, transports: list[SyncSmtpTransport]
) -> None:
    server = smtp_factory("plain")
    server.stop()
    result = connect(transports, server).send(SENDER, [JANE], message(1))
    assert result.outcome is Outcome.TEMPORARY
    assert result.reply.startswith(f"cannot reach {server.host}:{server.port}")


def test_one_connection_carries_max_per_connection_messages(
    smtp_server: SmtpServer, transports: list[SyncSmtpTransport]
) -> None:
    transport = connect(transports, smtp_server, max_per_connection=3)
    for n in range(7):
        assert transport.send(SENDER, [JANE], message(n)).outcome is Outcome.DELIVERED
    assert smtp_server.connections == 3
    assert [d.connection for d in smtp_server.sink.deliveries] == [1, 1, 1, 2, 2, 2, 3]


@pytest.mark.parametrize(
    ("stage", "reply", "outcome"),
    [
        ("mail", "421 4.3.2 Service shutting down", Outcome.TEMPORARY),
        ("mail", "451 4.3.0 Try again later", Outcome.TEMPORARY),
        ("data", "451 4.3.0 Queue full", Outcome.TEMPORARY),
        ("data", "550 5.7.1 Message refused", Outcome.PERMANENT),
        ("mail", "550 5.7.1 Sender refused", Outcome.PERMANENT),
        ("rcpt", "550 5.1.1 No such user", Outcome.PERMANENT),
        ("rcpt", "452 4.2.2 Mailbox full", Outcome.TEMPORARY),
        ("rcpt", "421 4.3.2 Closing", Outcome.TEMPORARY),
    ],
)
def test_replies_are_classified(
    smtp_server: SmtpServer,
    transports: list[SyncSmtpTransport],
    stage: Any,
    reply: str,
    outcome: Outcome,
) -> None:
    transport = connect(transports, smtp_server)
    smtp_server.script.add(stage, reply)
    result = transport.send(SENDER, [JANE], message(1))
    assert result.outcome is outcome
    assert result.code == int(reply[:3])
    assert reply[4:] in result.reply
    assert len(smtp_server.sink) == 0
    if stage in ("rcpt", "data"):
        expected = RecipientState.REFUSED_TEMP if reply[0] == "4" else RecipientState.REFUSED_PERM
        assert result.recipients[JANE].state is expected
    # The same transport goes on: after RSET, or on a new connection after a 421.
    assert transport.send(SENDER, [JANE], message(2)).outcome is Outcome.DELIVERED
    assert smtp_server.sink.by_message_id() == {"offer-2@northwind.example": 1}
    assert smtp_server.connections == (2 if reply.startswith("421") else 1)


def test_partial_refusal_per_recipient(
    smtp_server: SmtpServer, transports: list[SyncSmtpTransport]
) -> None:
    carol = "carol@acme-industrial.example"
    smtp_server.script.add("rcpt", "452 4.2.2 Mailbox full", match=BOB)
    smtp_server.script.add("rcpt", "550 5.1.1 No such user", match=carol)
    result = connect(transports, smtp_server).send(SENDER, [JANE, BOB, carol], message(1))
    assert result.outcome is Outcome.PARTIAL
    assert {a: r.state for a, r in result.recipients.items()} == {
        JANE: RecipientState.ACCEPTED,
        BOB: RecipientState.REFUSED_TEMP,
        carol: RecipientState.REFUSED_PERM,
    }
    assert result.retry_recipients == [BOB]
    assert result.results_json()[BOB] == {
        "state": "refused_temp",
        "code": 452,
        "reply": "4.2.2 Mailbox full",
    }
    assert smtp_server.sink.deliveries[0].rcpt_tos == (JANE,)


def test_every_recipient_refused_temporarily(
    smtp_server: SmtpServer, transports: list[SyncSmtpTransport]
) -> None:
    smtp_server.script.add("rcpt", "452 4.2.2 Mailbox full", times=2)
    result = connect(transports, smtp_server).send(SENDER, [JANE, BOB], message(1))
    assert result.outcome is Outcome.TEMPORARY and result.code == 452
    assert result.retry_recipients == [JANE, BOB]


def test_drop_mid_data_is_unknown_and_nothing_arrived(
    smtp_server: SmtpServer, transports: list[SyncSmtpTransport]
) -> None:
    smtp_server.script.add("data", DROP_MID_DATA)
    transport = connect(transports, smtp_server)
    result = transport.send(SENDER, [JANE], message(1))
    assert result.outcome is Outcome.UNKNOWN and result.outcome.retry
    assert "may have the message" in result.reply
    assert len(smtp_server.sink) == 0
    assert transport.send(SENDER, [JANE], message(1)).outcome is Outcome.DELIVERED
    assert smtp_server.sink.by_message_id() == {"offer-1@northwind.example": 1}


def test_drop_after_data_is_unknown_and_the_retry_duplicates(
    smtp_server: SmtpServer, transports: list[SyncSmtpTransport]
) -> None:
    """The documented exception: the server had the message; sending again duplicates it."""
    smtp_server.script.add("data", DROP_AFTER_DATA)
    transport = connect(transports, smtp_server)
    assert transport.send(SENDER, [JANE], message(1)).outcome is Outcome.UNKNOWN
    assert transport.send(SENDER, [JANE], message(1)).outcome is Outcome.DELIVERED
    assert smtp_server.sink.by_message_id() == {"offer-1@northwind.example": 2}


def test_idle_connection_closed_by_the_server_is_reopened(
    smtp_server: SmtpServer, transports: list[SyncSmtpTransport]
) -> None:
    transport = connect(transports, smtp_server)
    assert transport.send(SENDER, [JANE], message(1)).outcome is Outcome.DELIVERED
    smtp_server.script.add("mail", "421 4.4.2 Idle timeout")  # the server hangs up on MAIL
    result = transport.send(SENDER, [JANE], message(2))
    assert result.outcome is Outcome.TEMPORARY  # a 421 reply is a reply: not retried blindly
    assert transport.send(SENDER, [JANE], message(3)).outcome is Outcome.DELIVERED


def test_international_addresses_need_smtputf8(
    smtp_factory: SmtpFactory, transports: list[SyncSmtpTransport]
) -> None:
    johann = "jöhann@acme-industrial.example"
    with_utf8 = smtp_factory("plain")
    sent = connect(transports, with_utf8).send(SENDER, [johann, JANE], message(1))
    assert sent.outcome is Outcome.DELIVERED
    assert with_utf8.sink.deliveries[0].rcpt_tos == (johann, JANE)
    # A server without SMTPUTF8 cannot take that address: that recipient alone is refused.
    without = smtp_factory("plain", smtputf8=False)
    transport = connect(transports, without)
    partial = transport.send(SENDER, [johann, JANE], message(2))
    assert partial.outcome is Outcome.PARTIAL and partial.retry_recipients == []
    assert partial.recipients[johann].state is RecipientState.REFUSED_PERM
    assert "SMTPUTF8" in partial.recipients[johann].reply
    assert without.sink.deliveries[0].rcpt_tos == (JANE,)
    alone = transport.send(SENDER, [johann], message(3))
    assert alone.outcome is Outcome.PERMANENT
