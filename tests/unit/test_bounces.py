"""Bounces of our own mail: the original Message-ID found in whole DSNs as the MTAs write
them, and which address failed decides whether the lead's address is bouncing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.corpus import CORPUS
from worker.errors import ParseError
from worker.mail.bounces import address_keys, bounce_effect
from worker.mail.classify import Kind, OwnIdentity, classify
from worker.mail.parse import parse

OUR_ID = "L42-abcdefgh.5f2c@mail.northwind.example"
OURS = OwnIdentity(
    addresses=frozenset({"sales@northwind.example"}),
    message_id_domains=frozenset({"mail.northwind.example"}),
)
LEAD = "jane@acme-industrial.example"

ORIGINAL_HEADERS = (
    "From: Alice Seller <alice@northwind.example>\r\n"
    f"To: Jane Buyer <{LEAD}>\r\n"
    "Subject: Re: Quote for 200 office chairs\r\n"
    "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
    f"Message-ID: <{OUR_ID}>\r\n"
    "In-Reply-To: <enquiry-1@acme-industrial.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
)
ORIGINAL = ORIGINAL_HEADERS + "\r\nDear Jane, our offer: 80 EUR a chair.\r\n"


def _dsn_status(action: str = "failed", status: str = "5.1.1") -> str:
    return (
        "Reporting-MTA: dns; mx.northwind.example\r\n"
        "Arrival-Date: Mon,  2 Nov 2026 10:00:01 +0000 (UTC)\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {LEAD}\r\n"
        f"Original-Recipient: rfc822;{LEAD}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mx.acme-industrial.example\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <jane@acme-industrial.example>: Recipient address "
        "rejected: User unknown in virtual mailbox table\r\n"
    )


def _report(
    sender: str, subject: str, notice: str, returned_type: str, returned: str, extra: str = ""
) -> bytes:
    boundary = "=_dsn_7f3a"
    return (
        f"Return-Path: <>\r\nFrom: {sender}\r\nTo: alice@northwind.example\r\n"
        f"Subject: {subject}\r\nDate: Mon, 02 Nov 2026 10:00:02 +0000\r\n"
        "Message-ID: <20261102100002.1A2B3C@mx.northwind.example>\r\n"
        f"{extra}MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\nThis is a MIME-encapsulated message.\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{notice}\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n{_dsn_status()}\r\n"
        f"--{boundary}\r\nContent-Type: {returned_type}\r\n\r\n{returned}\r\n"
        f"--{boundary}--\r\n"
    ).encode()


POSTFIX_NOTICE = (
    "This is the mail system at host mx.northwind.example.\r\n\r\n"
    "I'm sorry to have to inform you that your message could not\r\n"
    "be delivered to one or more recipients. It's attached below.\r\n\r\n"
    f"<{LEAD}>: host mx.acme-industrial.example[192.0.2.7] said: 550 5.1.1\r\n"
    "    User unknown (in reply to RCPT TO command)\r\n"
)
EXCHANGE_NOTICE = (
    "Delivery has failed to these recipients or groups:\r\n\r\n"
    f"Jane Buyer ({LEAD})\r\nThe e-mail address you entered couldn't be found.\r\n\r\n"
    "Diagnostic information for administrators:\r\n\r\n"
    f"Generating server: EX01.acme-industrial.example\r\n\r\n{LEAD}\r\n"
    "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found'\r\n"
)
EXIM_TEXT = (
    "This message was created automatically by mail delivery software.\r\n\r\n"
    "A message that you sent could not be delivered to one or more of its\r\n"
    "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
    f"  {LEAD}\r\n    host mx.acme-industrial.example [192.0.2.7]\r\n"
    "    SMTP error from remote mail server after RCPT TO:<jane@acme-industrial.example>:\r\n"
    "    550 5.1.1 User unknown\r\n\r\n"
    "------ This is a copy of the message, including all the headers. ------\r\n\r\n" + ORIGINAL
)


def _exim() -> bytes:
    return (
        "Return-path: <>\r\nFrom: Mail Delivery System <Mailer-Daemon@mx.northwind.example>\r\n"
        "To: alice@northwind.example\r\n"
        "Subject: Mail delivery failed: returning message to sender\r\n"
        "Message-Id: <E1qXyZ-0001Ab-Cd@mx.northwind.example>\r\n"
        f"X-Failed-Recipients: {LEAD}\r\nAuto-Submitted: auto-replied\r\n"
        "Date: Mon, 02 Nov 2026 10:00:02 +0000\r\n\r\n" + EXIM_TEXT
    ).encode()


def _exchange_reply_only(header: str) -> bytes:
    """An NDR that returns nothing but names our mail in its thread headers."""
    return (
        "From: Microsoft Outlook <postmaster@acme-industrial.example>\r\n"
        "To: alice@northwind.example\r\n"
        "Subject: Undeliverable: Re: Quote for 200 office chairs\r\n"
        "Message-ID: <ndr-91@EX01.acme-industrial.example>\r\n"
        f"{header}: <{OUR_ID}>\r\n"
        f"X-Failed-Recipients: {LEAD}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "Date: Mon, 02 Nov 2026 10:00:02 +0000\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + EXCHANGE_NOTICE
    ).encode()


SHAPES: dict[str, bytes] = {
    # Postfix: the returned message whole (message/rfc822) or its headers only.
    "postfix-rfc822": _report(
        "MAILER-DAEMON@mx.northwind.example (Mail Delivery System)",
        "Undelivered Mail Returned to Sender",
        POSTFIX_NOTICE,
        "message/rfc822",
        ORIGINAL,
    ),
    "postfix-headers": _report(
        "MAILER-DAEMON@mx.northwind.example (Mail Delivery System)",
        "Undelivered Mail Returned to Sender",
        POSTFIX_NOTICE,
        "text/rfc822-headers",
        ORIGINAL_HEADERS,
    ),
    # Exim: no DSN; X-Failed-Recipients and the original quoted after a marker line.
    "exim": _exim(),
    # Exchange / Office 365: a DSN with the original attached…
    "exchange-rfc822": _report(
        "Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@acme.example>",
        "Undeliverable: Re: Quote for 200 office chairs",
        EXCHANGE_NOTICE,
        "message/rfc822",
        ORIGINAL,
        extra=f"In-Reply-To: <{OUR_ID}>\r\n",
    ),
    # …or a plain NDR in reply to it, by In-Reply-To or by References alone.
    "exchange-in-reply-to": _exchange_reply_only("In-Reply-To"),
    "exchange-references": _exchange_reply_only("References"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_dsn_shapes_name_our_message_and_the_failed_lead(shape: str) -> None:
    result = classify(parse(SHAPES[shape]), OURS)
    assert result.kind is Kind.BOUNCE, result.reasons
    assert result.bounced_message_ids == (OUR_ID,)
    assert result.failed_recipients == (LEAD,)


def test_delay_notice_names_our_message_but_no_failure() -> None:
    delayed = SHAPES["postfix-headers"].replace(b"Action: failed", b"Action: delayed")
    delayed = delayed.replace(b"Status: 5.1.1", b"Status: 4.4.1")
    result = classify(parse(delayed), OURS)
    assert result.kind is Kind.BOUNCE
    assert result.bounced_message_ids == (OUR_ID,)
    assert result.failed_recipients == ()


def test_a_leads_reply_quoting_our_ids_is_human_not_own() -> None:
    """Own mail is our address in From or our domain in the message's own Message-ID; our
    Message-ID in References (every reply to us has it) says nothing."""
    reply = (
        f"From: Jane Buyer <{LEAD}>\r\nTo: Alice Seller <alice@northwind.example>\r\n"
        "Cc: sales@northwind.example\r\n"
        "Subject: Re: Quote for 200 office chairs\r\n"
        "Message-ID: <reply-1@acme-industrial.example>\r\n"
        f"In-Reply-To: <{OUR_ID}>\r\n"
        f"References: <enquiry-1@acme-industrial.example> <{OUR_ID}>\r\n\r\n"
        f"Thanks! On Monday Alice wrote:\r\n> Message-ID: <{OUR_ID}>\r\n> our offer\r\n"
    ).encode()
    result = classify(parse(reply), OURS)
    assert result.kind is Kind.HUMAN, result.reasons
    assert result.bounced_message_ids == ()


def _corpus_bounces() -> list[Path]:
    return sorted((CORPUS / "bounces").glob("*.eml"))


@pytest.mark.parametrize("path", _corpus_bounces(), ids=lambda p: p.name)
def test_corpus_bounces_name_bare_message_ids(path: Path) -> None:
    try:
        msg = parse(path.read_bytes())
    except ParseError:
        pytest.fail(f"{path.name} does not parse")
    result = classify(msg)
    assert result.kind is Kind.BOUNCE
    for found in result.bounced_message_ids:
        assert "@" in found and not found.startswith("<") and not found.endswith(">")
    assert all("@" in a for a in result.failed_recipients)


# -- what a bounce does to the lead ------------------------------------------------------------


def test_address_keys_read_stored_recipients() -> None:
    assert address_keys(["Jane Buyer <Jane@ACME.example>", "bob@acme.example", ""]) == [
        "jane@acme.example",
        "bob@acme.example",
    ]


def test_the_leads_own_address_failed() -> None:
    effect = bounce_effect([LEAD], [LEAD, "bob@acme-industrial.example"], LEAD)
    assert effect.lead_bouncing and effect.failed == (LEAD,)
    assert effect.reason == f"{LEAD} failed"


def test_a_cc_colleague_failed_not_the_lead() -> None:
    colleague = "bob@acme-industrial.example"
    effect = bounce_effect([colleague], [LEAD, colleague], LEAD)
    assert not effect.lead_bouncing and effect.failed == (colleague,)
    assert "not the lead's address" in effect.reason


def test_a_rewritten_address_of_the_only_recipient_is_the_lead() -> None:
    effect = bounce_effect(["j.buyer@mailhost.acme-industrial.example"], [LEAD], LEAD)
    assert effect.lead_bouncing and effect.failed == (LEAD,)
    assert "the only recipient" in effect.reason


def test_an_unknown_address_on_a_mail_to_several_marks_nothing() -> None:
    effect = bounce_effect(["x@elsewhere.example"], [LEAD, "bob@acme.example"], LEAD)
    assert not effect.lead_bouncing and effect.failed == ()
