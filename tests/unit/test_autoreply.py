"""Which first messages get an automatic acknowledgement (RFC 3834): people only."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from worker.mail.autoreply import autoreply_refusal, autoreply_subject
from worker.mail.classify import OwnIdentity
from worker.mail.parse import parse
from worker.mail.verdict import MailPolicy, judge

POLICY = MailPolicy(own=OwnIdentity(addresses=frozenset({"sales@northwind.example"})))


def _mail(sender: str = "Jane Buyer <jane@acme-industrial.example>", **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "sales@northwind.example"
    msg["Subject"] = headers.pop("Subject", "Quote for 200 office chairs")
    msg["Message-ID"] = "<enquiry-1@acme-industrial.example>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Hello, could you send a quote for 200 chairs?\n")
    return msg.as_bytes()


def refusal(data: bytes) -> str | None:
    msg = parse(data)
    return autoreply_refusal(msg, judge(msg, POLICY))


def test_a_persons_enquiry_may_be_acknowledged() -> None:
    assert refusal(_mail()) is None
    assert refusal(_mail(Auto_Submitted="no")) is None


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Auto_Submitted": "auto-replied"}, "auto_reply mail is never acknowledged"),
        ({"Auto_Submitted": "auto-generated"}, "auto_reply mail is never acknowledged"),
        ({"Precedence": "bulk"}, "list mail is never acknowledged"),
        ({"Precedence": "junk"}, "list mail is never acknowledged"),
        ({"List_Id": "<news.acme.example>"}, "list mail is never acknowledged"),
        ({"X_Autoreply": "yes"}, "auto_reply mail is never acknowledged"),
        ({"X_Auto_Response_Suppress": "DR, OOF, AutoReply"}, "X-Auto-Response-Suppress"),
        ({"Return_Path": "<>"}, "null Return-Path"),
    ],
)
def test_machine_and_bulk_mail_is_never_acknowledged(headers: dict[str, str], why: str) -> None:
    reason = refusal(_mail(**headers))
    assert reason is not None and reason.startswith(why), reason


@pytest.mark.parametrize(
    "sender",
    [
        "Shop <no-reply@shop.example>",
        "MAILER-DAEMON@mx.example",
        "Sales <sales@northwind.example>",  # our own address: a loop
    ],
)
def test_no_reply_machine_and_own_senders_are_never_acknowledged(sender: str) -> None:
    assert refusal(_mail(sender)) is not None


def test_bounce_is_never_acknowledged() -> None:
    data = _mail(
        "Mail Delivery System <mailer-daemon@mx.example>",
        Subject="Undelivered Mail Returned to Sender",
    )
    assert refusal(data) == "bounce mail is never acknowledged"


def test_subject_follows_rfc_3834() -> None:
    assert autoreply_subject("Quote  for\n chairs") == "Auto: Quote for chairs"
    assert autoreply_subject("Auto: Quote") == "Auto: Quote"
    assert autoreply_subject("") == "Auto:"
