"""The SMTP and Redis test servers behave like the real ones the delivery code will meet."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path

import pytest

from tests.integration.delivery_fixtures import SmtpFactory
from tests.servers.redis import RedisServer
from tests.servers.smtp import DROP_AFTER_DATA, DROP_MID_DATA, SmtpProcess, SmtpServer


def mail(n: int, to: str = "jane@acme-industrial.example") -> bytes:
    return (
        f"From: sales@northwind.example\r\nTo: {to}\r\nSubject: offer {n}\r\n"
        f"Message-ID: <offer-{n}@northwind.example>\r\n\r\nHello {n}\r\n"
    ).encode()


def plain_client(server: SmtpServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, timeout=10)


def test_plain_server_records_each_message(smtp_server: SmtpServer) -> None:
    with plain_client(smtp_server) as client:
        for n in (1, 2):
            client.sendmail("sales@northwind.example", ["jane@acme-industrial.example"], mail(n))
    assert smtp_server.sink.by_message_id() == {
        "offer-1@northwind.example": 1,
        "offer-2@northwind.example": 1,
    }
    first = smtp_server.sink.find("<offer-1@northwind.example>")[0]
    assert first.rcpt_tos == ("jane@acme-industrial.example",)
    assert first.raw is not None and b"Hello 1" in first.raw
    assert first.confirmed and not first.tls and first.login is None
    assert smtp_server.connections == 1


def test_starttls_with_auth(smtp_factory: SmtpFactory) -> None:
    server = smtp_factory("starttls")
    context = ssl.create_default_context(cafile=str(server.ca_path))
    with plain_client(server) as client:
        # Before TLS: no AUTH offered, and mail is refused.
        client.ehlo()
        assert not client.has_extn("auth")
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.sendmail("sales@northwind.example", ["jane@acme-industrial.example"], mail(1))
    with plain_client(server) as client:
        client.starttls(context=context)
        client.login(SmtpServer.USER, SmtpServer.PASSWORD)
        client.sendmail("sales@northwind.example", ["jane@acme-industrial.example"], mail(2))
    (delivery,) = server.sink.deliveries
    assert delivery.tls and delivery.login == SmtpServer.USER


def test_wrong_password_is_refused_with_535(smtp_factory: SmtpFactory) -> None:
    server = smtp_factory("starttls")
    with plain_client(server) as client:
        client.starttls(context=ssl.create_default_context(cafile=str(server.ca_path)))
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(SmtpServer.USER, "not-the-password")
    assert refused.value.smtp_code == 535


def test_implicit_tls_and_certificate_checks(smtp_factory: SmtpFactory) -> None:
    server = smtp_factory("ssl")
    trusting = ssl.create_default_context(cafile=str(server.ca_path))
    with smtplib.SMTP_SSL(server.host, server.port, context=trusting, timeout=10) as client:
        client.login(SmtpServer.USER, SmtpServer.PASSWORD)
        client.sendmail("sales@northwind.example", ["jane@acme-industrial.example"], mail(1))
    assert len(server.sink) == 1
    # The system trust store does not know the throwaway CA.
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(server.host, server.port, context=ssl.create_default_context(), timeout=10)


def test_scripted_replies(smtp_server: SmtpServer) -> None:
    script = smtp_server.script
    script.add("rcpt", "452 4.2.2 Mailbox full", match="bob@acme-industrial.example")
    script.add("data", "451 4.3.0 Try again later")
    script.add("mail", "550 5.7.1 Sender refused", match="spam@northwind.example")
    with plain_client(smtp_server) as client:
        with pytest.raises(smtplib.SMTPDataError) as data_error:
            client.sendmail(
                "sales@northwind.example",
                ["jane@acme-industrial.example", "bob@acme-industrial.example"],
                mail(1),
            )
        assert data_error.value.smtp_code == 451
        # The rules were used once each: now bob is accepted and the data too.
        assert (
            client.sendmail(
                "sales@northwind.example",
                ["jane@acme-industrial.example", "bob@acme-industrial.example"],
                mail(2),
            )
            == {}
        )
        with pytest.raises(smtplib.SMTPSenderRefused) as sender_error:
            client.sendmail("spam@northwind.example", ["jane@acme-industrial.example"], mail(3))
        assert sender_error.value.smtp_code == 550
    (delivery,) = smtp_server.sink.deliveries
    assert delivery.message_id == "offer-2@northwind.example"


def test_partial_recipient_refusal(smtp_server: SmtpServer) -> None:
    smtp_server.script.add("rcpt", "452 4.2.2 Mailbox full", match="bob@acme-industrial.example")
    with plain_client(smtp_server) as client:
        refused = client.sendmail(
            "sales@northwind.example",
            ["jane@acme-industrial.example", "bob@acme-industrial.example"],
            mail(1),
        )
    assert refused == {"bob@acme-industrial.example": (452, b"4.2.2 Mailbox full")}
    assert smtp_server.sink.deliveries[0].rcpt_tos == ("jane@acme-industrial.example",)


def test_421_closes_the_connection(smtp_server: SmtpServer) -> None:
    smtp_server.script.add("mail", "421 4.3.2 Service shutting down")
    with plain_client(smtp_server) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("sales@northwind.example", ["jane@acme-industrial.example"], mail(1))
        assert refused.value.smtp_code == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    assert len(smtp_server.sink) == 0


def test_drop_mid_data_delivers_nothing(smtp_server: SmtpServer) -> None:
    smtp_server.script.add("data", DROP_MID_DATA)
    with plain_client(smtp_server) as client, pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail("sales@northwind.example", ["jane@acme-industrial.example"], mail(1))
    assert len(smtp_server.sink) == 0
    assert smtp_server.drops == 1
    with plain_client(smtp_server) as client:
        client.sendmail("sales@northwind.example", ["jane@acme-industrial.example"], mail(1))
    assert smtp_server.sink.by_message_id() == {"offer-1@northwind.example": 1}


def test_drop_after_data_delivers_without_confirming(smtp_server: SmtpServer) -> None:
    smtp_server.script.add("data", DROP_AFTER_DATA, match="offer-1@northwind.example")
    with plain_client(smtp_server) as client, pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail("sales@northwind.example", ["jane@acme-industrial.example"], mail(1))
    (delivery,) = smtp_server.sink.deliveries
    assert delivery.message_id == "offer-1@northwind.example" and not delivery.confirmed


def test_sink_process_counts_in_a_file(tmp_path: Path) -> None:
    with SmtpProcess(tmp_path / "sink") as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            for n in (1, 2, 2):
                client.sendmail(
                    "sales@northwind.example", ["jane@acme-industrial.example"], mail(n)
                )
        pid = sink.pid
        assert pid is not None
    assert sink.counts() == {"offer-1@northwind.example": 1, "offer-2@northwind.example": 2}


def test_redis_server_flush_restart_stop(redis_server: RedisServer) -> None:
    with redis_server.client() as conn:
        conn.set("k", "v")
        assert conn.get("k") == b"v"
    redis_server.flushall()
    with redis_server.client() as conn:
        assert conn.get("k") is None
        conn.set("k", "again")
    port, pid = redis_server.port, redis_server.pid
    redis_server.restart()
    assert redis_server.port == port and redis_server.pid != pid
    with redis_server.client() as conn:
        assert conn.get("k") is None  # no persistence
    assert redis_server.url == f"redis://127.0.0.1:{port}/0"
    redis_server.stop()
    assert not redis_server.running
