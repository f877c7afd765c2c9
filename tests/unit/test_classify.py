"""classify(): the corpus by category, each rule on its own, and the false-positive traps."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.corpus import CORPUS
from worker.errors import ParseError
from worker.mail.classify import (
    AUTO_REPLY_RULES,
    BOUNCE_RULES,
    BOUNCE_SIGNALS,
    BOUNCE_THRESHOLD,
    LIST_RULES,
    OWN_RULES,
    REPORT_RULES,
    Classification,
    Kind,
    OwnIdentity,
    Rule,
    _bounce_score,
    _rules,
    _View,
    classify,
)
from worker.mail.message import Address, Attachment, InboundMessage, ReportPart
from worker.mail.parse import parse


def _corpus(*categories: str) -> list[Path]:
    return sorted(p for c in categories for p in (CORPUS / c).glob("*.eml"))


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


def _classify_file(path: Path) -> Classification:
    return classify(parse(path.read_bytes()))


def _msg(
    *,
    subject: str = "Quote for 200 units",
    from_: str = "jane@acme.example",
    from_name: str = "Jane Doe",
    to: str = "sales@ours.example",
    headers: Mapping[str, str | tuple[str, ...]] | None = None,
    text: str = "Hello, could you send me a quote?\n\nJane",
    content_type: str = "text/plain",
    report_type: str = "",
    report_parts: tuple[ReportPart, ...] = (),
    attachments: tuple[Attachment, ...] = (),
    message_id: str = "abc.123@mail.acme.example",
    sender: Address | None = None,
    in_reply_to: tuple[str, ...] = (),
) -> InboundMessage:
    """A synthetic message; header values as decoded strings, names any case."""
    decoded = {k.lower(): (v,) if isinstance(v, str) else v for k, v in (headers or {}).items()}
    return InboundMessage(
        message_id=message_id,
        content_hash="0" * 64,
        size=len(text),
        subject=subject,
        from_=(Address(from_name, from_),) if from_ or from_name else (),
        sender=sender,
        to=(Address("", to),) if to else (),
        in_reply_to=in_reply_to,
        text=text,
        content_type=content_type,
        report_type=report_type,
        report_parts=report_parts,
        attachments=attachments,
        headers=decoded,
    )


# --- the corpus -----------------------------------------------------------------------------

# Files outside bounces/auto-replies/reports/lists that are, on reading them, not person-to-us
# mail. Each is list-distributed, so LIST is the honest kind; nothing else in the human
# categories needed an exception.
NOT_HUMAN = {
    # freebsd-isp majordomo list: "Sender: owner-freebsd-isp@FreeBSD.ORG", "Precedence: bulk",
    # "X-Loop: FreeBSD.org" - a person's reply, but delivered to us by the list.
    "replies/cpython--msg_32.eml": Kind.LIST,
    # new-httpd@apache.org majordomo list: "Sender: new-httpd-owner@apache.org",
    # "Precedence: bulk", "Reply-To: new-httpd@apache.org", To the list address.
    "replies/flanker--from-encoding.eml": Kind.LIST,
    # rapidmail newsletter from carlance.fr: "List-Unsubscribe", "Precedence: bulk",
    # "Feedback-ID", "X-CSA-Complaints" - bulk marketing, not a person writing to us.
    "charsets/spamscope--mail_test_5.eml": Kind.LIST,
}
HUMAN_FILES = _corpus("plain", "replies", "multipart", "html-only", "charsets")


@pytest.mark.parametrize("path", _corpus("bounces"), ids=_ids(_corpus("bounces")))
def test_corpus_bounces_are_bounces(path: Path) -> None:
    result = _classify_file(path)
    assert result.kind is Kind.BOUNCE, result.reasons
    assert result.reasons
    assert result.failed_recipients, "every corpus bounce names the address that failed"


@pytest.mark.parametrize("path", _corpus("auto-replies"), ids=_ids(_corpus("auto-replies")))
def test_corpus_auto_replies_are_auto_replies(path: Path) -> None:
    assert _classify_file(path).kind in (Kind.AUTO_REPLY, Kind.OUT_OF_OFFICE)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("sisimai--rfc3834-01.eml", Kind.OUT_OF_OFFICE),  # "Away until May 5", "away returning"
        ("sisimai--rfc3834-02.eml", Kind.OUT_OF_OFFICE),  # "I'm out of the office Friday"
        ("sisimai--rfc3834-04.eml", Kind.OUT_OF_OFFICE),  # "I will be traveling for work"
        ("sisimai--rfc3834-06.eml", Kind.AUTO_REPLY),  # "This email inbox … is no longer in use"
        # Named "arf" upstream but not ARF: text/plain, no message/feedback-report part. It is
        # Apple Mail's automatic unsubscribe request (Auto-Submitted: auto-replied,
        # X-Apple-Unsubscribe: true), so AUTO_REPLY with the unsubscribe reason.
        ("sisimai--arf-26.eml", Kind.AUTO_REPLY),
    ],
)
def test_corpus_auto_reply_vs_out_of_office(name: str, kind: Kind) -> None:
    result = _classify_file(CORPUS / "auto-replies" / name)
    assert result.kind is kind, result.reasons


def test_apple_unsubscribe_request_says_so() -> None:
    result = _classify_file(CORPUS / "auto-replies" / "sisimai--arf-26.eml")
    assert "Auto-Submitted: auto-replied" in result.reasons
    assert any("X-Apple-Unsubscribe" in r for r in result.reasons)


@pytest.mark.parametrize("path", _corpus("reports"), ids=_ids(_corpus("reports")))
def test_corpus_reports_are_reports(path: Path) -> None:
    assert _classify_file(path).kind is Kind.REPORT


@pytest.mark.parametrize("path", _corpus("lists"), ids=_ids(_corpus("lists")))
def test_corpus_lists_are_lists(path: Path) -> None:
    # mikel--raw_email_trailing_dot has no List-* header: a RubyForge forum notification From
    # noreply@rubyforge.org To noreply@rubyforge.org (subscribers in Bcc), subject
    # "[skynet-help][60666] …". It is list mail; the no-reply-broadcast rule says why.
    assert _classify_file(path).kind is Kind.LIST


@pytest.mark.parametrize("path", HUMAN_FILES, ids=_ids(HUMAN_FILES))
def test_corpus_people_are_human(path: Path) -> None:
    expected = NOT_HUMAN.get(f"{path.parent.name}/{path.name}", Kind.HUMAN)
    result = _classify_file(path)
    assert result.kind is expected, result.reasons


def test_corpus_has_the_files_these_tests_expect() -> None:
    assert len(_corpus("bounces")) == 20
    assert len(HUMAN_FILES) == 59
    for name in NOT_HUMAN:
        assert (CORPUS / name).is_file()


# Original Message-IDs the sisimai bounces carry (message/rfc822 part, text/rfc822-headers, or
# headers quoted in the text); exchange2007 and postfix-01 quote no Message-ID at all.
SISIMAI_RETURNED_IDS = {
    "sisimai--lhost-activehunter-01.eml": ("0000000000.00000000000@mx4.example.org",),
    "sisimai--lhost-amazonses-01.eml": (
        "000001321defbd2a-788e31c8-2be1-422f-a8d4-cf7765cc9ed7-000000@email.amazonses.com",
    ),
    "sisimai--lhost-exchange2007-01.eml": (),
    "sisimai--lhost-exim-01.eml": ("E1P1ce6-000Egt-GZ@e1.example.org",),
    "sisimai--lhost-gmail-01.eml": ("D992C2C3-F175-4C4D-97E2-53A90E4E5BF5@gmail.com",),
    "sisimai--lhost-office365-01.eml": ("FFFFFFFF.EEEEEEEE@example.ed.jp",),
    "sisimai--lhost-postfix-01.eml": (),
    "sisimai--lhost-qmail-01.eml": ("000000000.9999999999999.JavaMail.postmaster@mailhub",),
    "sisimai--lhost-sendmail-01.eml": ("E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org",),
    "sisimai--lhost-yahoo-01.eml": ("6AE6249A-E7A8-4980-862C-F499F6B8E7C5@y.example.co.jp",),
    "sisimai--rfc3464-01.eml": ("E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org",),
}


@pytest.mark.parametrize(("name", "ids"), sorted(SISIMAI_RETURNED_IDS.items()))
def test_sisimai_bounces_name_the_original_message(name: str, ids: tuple[str, ...]) -> None:
    assert _classify_file(CORPUS / "bounces" / name).bounced_message_ids == ids


@pytest.mark.parametrize(
    ("name", "ids", "failed"),
    [
        (
            "cpython--msg_16.eml",
            ("002001c144a6$8752e060$56104586@oxy.edu",),
            ("jangel1@cougar.noc.ucla.edu",),
        ),
        ("flanker--mailbox-full.eml", ("4E326A95.3010907@example.com",), ("user@aol.com",)),
        (
            "flanker--office365.eml",
            ("20171013111011.20866.254C2F3A4D7AA526@ninomail.com",),
            ("noname@example.com",),
        ),
        (
            "flanker--gmail-invalid-address.eml",
            ("CAKsfaBUUGqVZiaMrmH3TRPfq1odQPtM7Ey5YW1SgyJJRHtAjgw@mail.gmail.com",),
            ("awfawfawfawfawfaw@someserverhere.com",),
        ),
        # message/rfc822-headers (non-standard) is filed as an attachment, still read
        (
            "spamscope--mail_malformed_2.eml",
            ("004801d1fc84$01c934ac$b247f0b7$@infospacemail.com",),
            ("abh@netpar.com.br",),
        ),
    ],
)
def test_bounce_ids_and_recipients(
    name: str, ids: tuple[str, ...], failed: tuple[str, ...]
) -> None:
    result = _classify_file(CORPUS / "bounces" / name)
    assert result.bounced_message_ids == ids
    assert result.failed_recipients == failed


@pytest.mark.parametrize(
    ("name", "failed"),
    [
        # non-DSN bounces: recipients come from the text, before the quoted original
        ("sisimai--lhost-qmail-01.eml", ("kijitora@example.ne.jp",)),
        ("sisimai--lhost-yahoo-01.eml", ("kijitora@example.org",)),
        ("sisimai--lhost-exim-01.eml", ("kijitora@example.ed.jp",)),  # X-Failed-Recipients
        # DSN: Original-Recipient (what was sent) and Final-Recipient (after aliasing)
        ("sisimai--lhost-postfix-01.eml", ("kijitora@example.org", "r@p351355.pool.example.ne.jp")),
        ("sisimai--lhost-office365-01.eml", ("kijitora@example.com",)),  # Exchange text only
    ],
)
def test_failed_recipients_from_text_headers_and_dsn(name: str, failed: tuple[str, ...]) -> None:
    assert _classify_file(CORPUS / "bounces" / name).failed_recipients == failed


def test_bounce_with_list_headers_is_still_a_bounce() -> None:
    # cpython--msg_16 came through a Mailman list (List-Id, Precedence: bulk): bounce goes first
    result = _classify_file(CORPUS / "bounces" / "cpython--msg_16.eml")
    assert result.kind is Kind.BOUNCE


def test_forwarded_bounce_as_attachment_is_human() -> None:
    # sisimai's is-not-bounce-02: a person attaches a bounce as message/rfc822
    path = CORPUS / "attachments" / "sisimai--is-not-bounce-02.eml"
    assert _classify_file(path).kind is Kind.HUMAN


def test_corpus_spam_flag_keeps_the_kind() -> None:
    result = _classify_file(CORPUS / "charsets" / "mikel--raw_email_bad_time.eml")
    assert result.kind is Kind.HUMAN
    assert result.spam
    assert "X-Spam-Status: Yes" in result.reasons


def test_corpus_gtube_is_spam() -> None:
    result = _classify_file(CORPUS / "spam" / "spamscope--mail_test_16.eml")
    assert result.spam
    assert any("GTUBE" in r for r in result.reasons)


def test_postmaster_without_failure_wording_is_human() -> None:
    # html-only/flanker--long-links is From "Bob <postmaster@example.com>" with a normal subject
    result = _classify_file(CORPUS / "html-only" / "flanker--long-links.eml")
    assert result.kind is Kind.HUMAN


# --- bounce rules ---------------------------------------------------------------------------

_DSN = ReportPart(
    "message/delivery-status",
    "Reporting-MTA: dns; mx.example.net\n\n"
    "Final-Recipient: rfc822; Lead@Client.example\nAction: failed\nStatus: 5.1.1\n",
)
_RETURNED = ReportPart(
    "message/rfc822", "From: sales@ours.example\nMessage-ID: <out-1@ours.example>\n"
)


def test_dsn_report() -> None:
    msg = _msg(
        from_="mailer@mx.example.net",
        content_type="multipart/report",
        report_type="delivery-status",
        report_parts=(_DSN, _RETURNED),
    )
    result = classify(msg)
    assert result.kind is Kind.BOUNCE
    assert "Content-Type: multipart/report; report-type=delivery-status" in result.reasons
    assert result.failed_recipients == ("lead@client.example",)
    assert result.bounced_message_ids == ("out-1@ours.example",)


def test_delivery_status_part_without_report_type() -> None:
    result = classify(_msg(content_type="multipart/mixed", report_parts=(_DSN,)))
    assert result.kind is Kind.BOUNCE
    assert "message/delivery-status part" in result.reasons


def test_delayed_dsn_is_a_bounce_that_says_delayed() -> None:
    delayed = ReportPart(
        "message/delivery-status",
        "Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@b.example\nAction: delayed\n"
        "Status: 4.4.7\n",
    )
    result = classify(_msg(report_parts=(delayed,), subject="Delayed Mail (still being retried)"))
    assert result.kind is Kind.BOUNCE
    assert any("delayed" in r for r in result.reasons)
    assert result.failed_recipients == ()  # not failed yet: the address is not bouncing


def test_success_dsn_is_a_report_not_a_bounce() -> None:
    delivered = ReportPart(
        "message/delivery-status",
        "Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@b.example\nAction: delivered\n"
        "Status: 2.0.0\n",
    )
    msg = _msg(content_type="multipart/report", report_type="delivery-status")
    result = classify(_msg(report_parts=(delivered,), content_type=msg.content_type))
    assert result.kind is Kind.REPORT
    assert result.failed_recipients == ()


@pytest.mark.parametrize(
    "from_",
    ["MAILER-DAEMON@mx.example.net", "mailer-daemon@googlemail.com", "Mailer-Daemon@e1.org"],
)
def test_mailer_daemon_sender(from_: str) -> None:
    result = classify(_msg(from_=from_, subject="Notice", text="see attached"))
    assert result.kind is Kind.BOUNCE
    assert result.reasons[0] == f"From: {from_}"


def test_postmaster_needs_failure_wording() -> None:
    human = _msg(from_="postmaster@acme.example", subject="New mail server on Monday")
    assert classify(human).kind is Kind.HUMAN
    bounce = _msg(from_="postmaster@acme.example", subject="Undeliverable: Quote")
    assert classify(bounce).kind is Kind.BOUNCE


def test_x_failed_recipients() -> None:
    msg = _msg(headers={"X-Failed-Recipients": "Gone@Client.example, other@client.example"})
    result = classify(msg)
    assert result.kind is Kind.BOUNCE
    assert result.failed_recipients == ("gone@client.example", "other@client.example")


def test_null_return_path_needs_failure_wording() -> None:
    plain = _msg(headers={"Return-Path": "<>"})
    assert classify(plain).kind is Kind.HUMAN
    failed = _msg(headers={"Return-Path": "<>"}, subject="Returned mail: User unknown")
    result = classify(failed)
    assert result.kind is Kind.BOUNCE
    assert result.reasons == ("Return-Path: <> with Subject: Returned mail: User unknown",)


# One snippet per MTA family: sent with a null Return-Path and a bland subject they bounce;
# quoted by a person (normal Return-Path, human From) they stay human.
NON_DSN_TEXTS = {
    "postfix": "This is the mail system at host mx.example.\n\nI'm sorry to have to inform you "
    "that your message could not\nbe delivered to one or more recipients.\n\n"
    "<lead@client.example>: host mx said: 550 5.1.1 User unknown\n",
    "exim": "This message was created automatically by mail delivery software.\n\nA message "
    "that you sent could not be delivered to one or more of its\nrecipients. The following "
    "address(es) failed:\n\n  lead@client.example\n    SMTP error from remote mail server\n",
    "qmail": "Hi. This is the qmail-send program at mx.example.\nI'm afraid I wasn't able to "
    "deliver your message to the following addresses.\n\n<lead@client.example>:\n550 no user\n",
    "sendmail": "   ----- The following addresses had permanent fatal errors -----\n"
    "<lead@client.example>\n    (reason: 550 5.1.1 User unknown)\n",
    "exchange": "Delivery has failed to these recipients or groups:\n\n"
    "Lead<mailto:lead@client.example>\nThe email address wasn't found.\n",
    "office365": "Your message to lead@client.example couldn't be delivered.\n"
    "lead wasn't found at client.example.\n",
    "domino": "Your message\n\n  Subject: Quote\n\nwas not delivered to:\n\n"
    "  lead@client.example\n\nbecause:\n\n  User lead not listed\n",
    "gmail": "Delivery to the following recipient failed permanently:\n\n"
    "     lead@client.example\n\nTechnical details of permanent failure:\n",
    "yahoo": "Sorry, we were unable to deliver your message to the following address.\n\n"
    "<lead@client.example>:\nRemote host said: 550 5.1.1 User Unknown\n",
    "amazon-ses": "The following message to <lead@client.example> was undeliverable.\n"
    "The reason for the problem:\n5.1.0 - Unknown address error\n",
    "japanese-carrier": "次のアドレスへのメールは配信できませんでした。\n\nlead@client.example\n",
}


@pytest.mark.parametrize("mta", sorted(NON_DSN_TEXTS))
def test_non_dsn_bounce_texts(mta: str) -> None:
    msg = _msg(
        from_="notifications@mx.example.net",
        from_name="",
        subject="Notice",
        headers={"Return-Path": "<>"},
        text=NON_DSN_TEXTS[mta],
    )
    result = classify(msg)
    assert result.kind is Kind.BOUNCE, mta
    assert result.failed_recipients == ("lead@client.example",), mta


@pytest.mark.parametrize("mta", sorted(NON_DSN_TEXTS))
def test_person_quoting_bounce_text_is_human(mta: str) -> None:
    text = "Hi, my mail to our buyer bounced, see below. Can you help?\n\n" + NON_DSN_TEXTS[mta]
    msg = _msg(
        subject="Fwd: Undeliverable: Quote", text=text, headers={"Return-Path": "<j@a.example>"}
    )
    assert classify(msg).kind is Kind.HUMAN


def test_mta_display_name_with_failure_subject() -> None:
    msg = _msg(
        from_="mx-notify@example.net",
        from_name="Mail Delivery System",
        subject="Undelivered Mail Returned to Sender",
    )
    assert classify(msg).kind is Kind.BOUNCE


def test_human_mentioning_delivery_failed_mid_body_stays_human() -> None:
    text = (
        "Hi team,\n\nOur courier says delivery failed twice; the message could not be "
        "delivered to the dock. Mail delivery failed notices also keep arriving.\n\nJane"
    )
    assert classify(_msg(text=text, subject="Delivery failed - reschedule?")).kind is Kind.HUMAN


def test_reply_to_a_bounce_subject_stays_human() -> None:
    msg = _msg(subject="Re: Delivery Status Notification (Failure)")
    assert classify(msg).kind is Kind.HUMAN


def test_bounce_message_id_fallbacks() -> None:
    quoted = (
        "Sorry.\n\n--- Below this line is a copy of the message.\n\nMessage-ID: <o@ours.example>\n"
    )
    msg = _msg(from_="MAILER-DAEMON@mx.example", text=quoted)
    assert classify(msg).bounced_message_ids == ("o@ours.example",)
    exchange = _msg(from_="MAILER-DAEMON@mx.example", text="", in_reply_to=("sent-9@ours.example",))
    assert classify(exchange).bounced_message_ids == ("sent-9@ours.example",)


# --- bounces from MTAs the rules above do not know (issue 9, item 7) -----------------------
#
# Written for these tests from the shape each MTA family's notices take (sender, subject, the
# opening text, the status codes, what is attached), in the languages Exchange, Domino and the
# hosting MTAs localise them into. None is a copy of a real message.

OUR_ID = "lead-7.k3x9@mail.ours.example"
OUR_MESSAGE = (
    "From: Sales <sales@ours.example>\r\nTo: lead@client.example\r\nSubject: Quote 1234\r\n"
    f"Message-ID: <{OUR_ID}>\r\nDate: Mon, 2 Jun 2025 09:00:00 +0000\r\n\r\nDear customer,\r\n"
)
OURS = OwnIdentity(
    addresses=frozenset({"sales@ours.example"}),
    message_id_domains=frozenset({"mail.ours.example"}),
)


def _raw(
    from_: str,
    subject: str,
    body: str,
    *,
    return_path: str | None = None,
    attach: str | None = None,
    attach_type: str = "message/rfc822",
    extra: str = "",
) -> InboundMessage:
    """A whole message as bytes (RFC 6532 UTF-8 headers), parsed like mail from a mailbox."""
    head = f"Return-Path: {return_path}\r\n" if return_path is not None else ""
    head += (
        f"From: {from_}\r\nTo: sales@ours.example\r\nSubject: {subject}\r\n"
        "Date: Mon, 2 Jun 2025 09:01:00 +0000\r\nMessage-ID: <n1.x@mx.example.net>\r\n"
        f"MIME-Version: 1.0\r\n{extra}"
    )
    text_part = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
    if attach is None:
        raw = f"{head}{text_part}\r\n{body}\r\n"
    else:
        raw = (
            f'{head}Content-Type: multipart/mixed; boundary="b0"\r\n\r\n--b0\r\n{text_part}\r\n'
            f"{body}\r\n--b0\r\nContent-Type: {attach_type}\r\n\r\n{attach}\r\n--b0--\r\n"
        )
    return parse(raw.encode("utf-8"))


# name: (From, Subject, Return-Path, body, attach our message?). Every one of them was a
# person's mail to the old rules: a sender, subject or text they had no wording for.
UNSEEN_BOUNCES: dict[str, tuple[str, str, str | None, str, bool]] = {
    "exchange-hungarian": (
        "Microsoft Outlook <postmaster@ceg.example.hu>",
        "Kézbesíthetetlen: Ajánlatkérés",
        None,
        "A kézbesítés a következő címzettekhez vagy csoportokhoz nem sikerült:\n\n"
        "lead@client.example\nA címzett e-mail-címe nem található.\n\n"
        "Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'\n",
        True,
    ),
    "exchange-polish": (
        "Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@firma.example.pl>",
        "Niedostarczalne: Zapytanie ofertowe",
        None,
        "Dostarczenie do tych adresatów lub grup nie powiodło się:\n\nlead@client.example\n\n"
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound'\n",
        True,
    ),
    "exchange-portuguese": (
        "Microsoft Outlook <postmaster@empresa.example.com.br>",
        "Não é possível entregar: Cotação",
        None,
        "A entrega falhou para estes destinatários ou grupos:\n\nlead@client.example\n"
        "A mensagem não pôde ser entregue. Servidor remoto retornou '550 5.1.1 User unknown'\n",
        False,
    ),
    "exchange-turkish": (
        "postmaster@sirket.example.com.tr",
        "Teslim Edilemedi: Teklif",
        None,
        "Şu alıcılara veya gruplara teslim başarısız oldu:\n\nlead@client.example\n"
        "Uzak Sunucu '550 5.1.1 User unknown' döndürdü\n",
        True,
    ),
    "groupwise": (
        "postmaster@gwia.example.org",
        "Message status - undeliverable",
        None,
        "The message that you sent was undeliverable to the following:\n"
        "\tlead@client.example (host: mx.client.example) (queue: Smtp)\n\n"
        "Possible reason: 550 5.1.1 mailbox unavailable\n",
        True,
    ),
    "courier": (
        "Courier mail server at mx.example.org <>",
        "NOTICE: mail delivery status.",
        "<>",
        "This is a delivery status notification from mx.example.org,\n"
        "running the Courier mail server.\n\n<lead@client.example>:\n"
        "    550 5.1.1 <lead@client.example>... User unknown\n",
        True,
    ),
    "mimecast": (
        "Mimecast <noreply-ndr@eu.mimecast.example>",
        "Undeliverable: Quote 1234",
        None,
        "Your message couldn't be delivered to the recipients shown below.\n\n"
        "lead@client.example\nRecipient address rejected: Access denied\n",
        True,
    ),
    "korean-webmail": (
        "메일 시스템 <mailadm@corp.example.kr>",
        "[반송] 견적 요청",
        None,
        "메시지를 배달하지 못했습니다.\n\n받는 사람: lead@client.example\n"
        "오류: 550 5.1.1 Recipient address rejected\n",
        False,
    ),
    "chinese-coremail": (
        "邮件系统 <system@mail.example.cn>",
        "未送达：报价",
        None,
        "很抱歉您发送的邮件无法送达以下收件人：\nlead@client.example\n\n"
        "退信原因：550 Mailbox not found\n",
        True,
    ),
    "thai-hosting": (
        "ระบบอีเมล <mailer@mail.example.co.th>",
        "ไม่สามารถส่งอีเมลได้: ใบเสนอราคา",
        None,
        "ไม่สามารถส่งข้อความถึงผู้รับต่อไปนี้:\n\nlead@client.example\n550 5.1.1 User unknown\n",
        False,
    ),
    "russian-hosting": (
        "Почтовая система <robot@mail.example.ru>",
        "Недоставленное сообщение",
        None,
        "Это письмо создано автоматически.\nСообщение не доставлено следующим адресатам:\n\n"
        "lead@client.example\n550 5.7.1 Policy rejection\n",
        True,
    ),
    "unknown-mta-null-path-smtp-code": (
        "MTA Notifier <notify@mx.example.net>",
        "Mail System Notification",
        "<>",
        "Recipient: lead@client.example\n"
        "Reason: 550 5.1.1 <lead@client.example>: Recipient address rejected: "
        "User unknown in virtual mailbox table\n",
        False,
    ),
    "plain-text-dsn-fields": (
        "Mail Router <router@mx.example.net>",
        "Notification",
        None,
        "Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; lead@client.example\n"
        "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 user unknown\n",
        False,
    ),
    "unknown-language-returns-our-message": (
        "Posta <posta@mx.example.net>",
        "Obavijest",
        "<>",
        "Poruka nije isporučena.\n",
        True,
    ),
    "vpopmail-bounce-local": (
        "bounce-notify@mx.example.net",
        "failure delivery",
        None,
        "Sorry, no mailbox here by that name. (#5.1.1)\n<lead@client.example>\n",
        False,
    ),
}


def _assert_bounce_of_lead(
    from_: str, subject: str | None, return_path: str | None, body: str, attach: bool
) -> None:
    """A bounce naming lead@client.example as failed (and our message, when it returns it)."""
    msg = _raw(
        from_, subject, body, return_path=return_path, attach=OUR_MESSAGE if attach else None
    )
    result = classify(msg, OURS)
    assert result.kind is Kind.BOUNCE, result.reasons
    assert "lead@client.example" in result.failed_recipients, result
    if attach:
        assert OUR_ID in result.bounced_message_ids


@pytest.mark.parametrize("name", sorted(UNSEEN_BOUNCES))
def test_bounces_from_unseen_mtas(name: str) -> None:
    _assert_bounce_of_lead(*UNSEEN_BOUNCES[name])


def test_returned_headers_part_of_ours_counts() -> None:
    headers_only = OUR_MESSAGE.split("\r\n\r\n", 1)[0] + "\r\n"
    msg = _raw(
        "Notifier <n@mx.example.net>",
        "Obavijest",
        "Poruka nije isporučena.",
        return_path="<>",
        attach=headers_only,
        attach_type="text/rfc822-headers",
    )
    result = classify(msg, OURS)
    assert result.kind is Kind.BOUNCE
    assert any("returned-own" in r for r in result.reasons)
    assert OUR_ID in result.bounced_message_ids


# The families the rules know, in the shapes and languages their notices take today.
KNOWN_FAMILIES: dict[str, tuple[str, str, str | None, str, bool]] = {
    "exim-german-hoster": (
        "Mail Delivery System <Mailer-Daemon@mx.hoster.example.de>",
        "Mail delivery failed: returning message to sender",
        "<>",
        "This message was created automatically by mail delivery software.\n\nA message that "
        "you sent could not be delivered to one or more of its\nrecipients. This is a permanent "
        "error. The following address(es) failed:\n\n  lead@client.example\n"
        "    host mx.client.example [192.0.2.7]\n    SMTP error from remote mail server after "
        "RCPT TO:<lead@client.example>:\n    550 5.1.1 User unknown\n",
        True,
    ),
    "postfix-zimbra-french": (
        "MAILER-DAEMON@zimbra.example.fr (Mail Delivery System)",
        "Undelivered Mail Returned to Sender",
        "<>",
        "This is the mail system at host zimbra.example.fr.\n\nI'm sorry to have to inform you "
        "that your message could not\nbe delivered to one or more recipients.\n\n"
        "<lead@client.example>: host mx.client.example[192.0.2.7] said: 550 5.1.1\n"
        "    <lead@client.example>: Recipient address rejected\n",
        True,
    ),
    "sendmail": (
        "Mail Delivery Subsystem <MAILER-DAEMON@mail.example.org>",
        "Returned mail: see transcript for details",
        "<>",
        "The original message was received at Mon, 2 Jun 2025 09:00:00 GMT\n\n"
        "   ----- The following addresses had permanent fatal errors -----\n"
        "<lead@client.example>\n    (reason: 550 5.1.1 <lead@client.example>... User unknown)\n",
        True,
    ),
    "qmail": (
        "MAILER-DAEMON@mx.example.net",
        "failure notice",
        "<>",
        "Hi. This is the qmail-send program at mx.example.net.\nI'm afraid I wasn't able to "
        "deliver your message to the following addresses.\nThis is a permanent error; I've "
        "given up. Sorry it didn't work out.\n\n<lead@client.example>:\n"
        "192.0.2.7 does not like recipient.\nRemote host said: 550 5.1.1 no such user\n",
        False,
    ),
    "domino": (
        "Postmaster@notes.example.com",
        "DELIVERY FAILURE: User lead (lead@client.example) not listed in Domino Directory",
        None,
        "Your message\n\n  Subject: Quote 1234\n\nwas not delivered to:\n\n"
        "  lead@client.example\n\nbecause:\n\n  User lead (lead@client.example) not listed in "
        "Domino Directory\n",
        True,
    ),
    "mdaemon": (
        "MDaemon@mail.example.com",
        "Permanent Delivery Failure",
        "<>",
        "The attached message had PERMANENT fatal delivery errors!\n\n"
        "After one or more unsuccessful delivery attempts the attached message has been\n"
        "removed from the mail queue on this server.\n\nlead@client.example\n"
        "550 5.1.1 mailbox unavailable\n",
        True,
    ),
    "yahoo": (
        "MAILER-DAEMON@yahoo.example.com",
        "Failure Notice",
        "<>",
        "Sorry, we were unable to deliver your message to the following address.\n\n"
        "<lead@client.example>:\nRemote host said: 554 delivery error: dd This user doesn't "
        "have a yahoo.com account\n",
        False,
    ),
    "gmail-japanese": (
        "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        "Delivery Status Notification (Failure)",
        None,
        "** アドレスが見つかりません **\n\nlead@client.example にメールを配信できませんでした。"
        "アドレスが見つからないか、メールを受信できないアドレスです。\n\n"
        "The response was:\n\n550 5.1.1 The email account that you tried to reach does not "
        "exist.\n",
        True,
    ),
    "office365-german": (
        "Microsoft Outlook <postmaster@firma.example.de>",
        "Unzustellbar: Angebot",
        None,
        "Ihre Nachricht an lead@client.example konnte nicht zugestellt werden.\n\n"
        "lead wurde bei client.example nicht gefunden.\n\nlead@client.example\n"
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound'\n",
        True,
    ),
    "office365-spanish": (
        "Microsoft Outlook <postmaster@empresa.example.es>",
        "No se puede entregar: Cotización",
        None,
        "No se pudo entregar el mensaje a lead@client.example.\n\nlead@client.example\n"
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound'\n",
        True,
    ),
    "office365-french": (
        "Microsoft Outlook <postmaster@societe.example.fr>",
        "Non remis : Devis",
        None,
        "Votre message n'a pas pu être remis à lead@client.example.\n\nlead@client.example\n"
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound'\n",
        True,
    ),
    "japanese-carrier": (
        "Postmaster@mail.carrier.example.ne.jp",
        "Mail System Error - Returned Mail",
        None,
        "次のアドレスへのメールは配信できませんでした。\n\nlead@client.example\n550 Unknown user\n",
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(KNOWN_FAMILIES))
def test_bounces_from_known_families_in_many_shapes(name: str) -> None:
    _assert_bounce_of_lead(*KNOWN_FAMILIES[name])


def test_auto_reply_returning_our_message_is_not_a_bounce() -> None:
    # A responder that attaches what it answers: null path and our message, but it says what
    # it is, and a bounce would mark the lead's address as bouncing.
    msg = _raw(
        "Jane Doe <jane@client.example>",
        "Automatic reply: Quote 1234",
        "I am out of the office until Monday.",
        return_path="<>",
        attach=OUR_MESSAGE,
    )
    assert classify(msg, OURS).kind is Kind.OUT_OF_OFFICE


# People whose mail carries one or two of those signals: each stays a lead.
HUMAN_LOOKALIKES: dict[str, tuple[str, str, str | None, str, bool]] = {
    "forwards-our-message-as-eml": (
        "Jane Doe <jane@acme.example>",
        "Fwd: Quote 1234",
        "<jane@acme.example>",
        "Hi, our IT says your mail got '550 5.1.1 user unknown' for my colleague's address, "
        "so I attach it. Please resend to me.\n",
        True,
    ),
    "undelivered-parcel-subject": (
        "Jane Doe <jane@acme.example>",
        "Undelivered parcel, order 5521",
        None,
        "Hello, the courier marked our order as undeliverable. Could you check the address?\n",
        False,
    ),
    "null-path-export": (
        "Jane Doe <jane@acme.example>",
        "Quote for 200 units",
        "<>",
        "Hello, could you send me a quote?\n",
        False,
    ),
    "korean-return-request": (
        "김민수 <minsu@acme.example.kr>",
        "반송 요청드립니다",
        None,
        "안녕하세요, 지난주에 받은 제품을 반송하고 싶습니다. 절차를 알려주세요.\n",
        False,
    ),
    "outlook-test-message": (
        "Microsoft Outlook <jane@acme.example>",
        "Microsoft Outlook Test Message",
        None,
        "This is an e-mail message sent automatically by Microsoft Outlook while testing the "
        "settings for your account.\n",
        False,
    ),
    "status-code-in-a-question": (
        "Jane Doe <jane@acme.example>",
        "Question about your mail server",
        None,
        "When I write to your support address I get 550 5.7.1 relay denied. Why?\n",
        False,
    ),
    "forwarded-eml-with-failure-words-in-body": (
        "Jane Doe <jane@acme.example>",
        "FW: your offer",
        None,
        "Hi, this message could not be delivered to the following address of my colleague, "
        "so here it is as an attachment.\n",
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(HUMAN_LOOKALIKES))
def test_people_with_a_weak_bounce_signal_stay_human(name: str) -> None:
    from_, subject, return_path, body, attach = HUMAN_LOOKALIKES[name]
    msg = _raw(
        from_, subject, body, return_path=return_path, attach=OUR_MESSAGE if attach else None
    )
    result = classify(msg, OURS)
    assert result.kind is Kind.HUMAN, result.reasons


def test_one_signal_alone_is_never_a_bounce() -> None:
    for signal in BOUNCE_SIGNALS:
        assert signal.weight < BOUNCE_THRESHOLD, signal.name


def test_scored_bounce_says_why() -> None:
    from_, subject, _, body, _ = UNSEEN_BOUNCES["exchange-hungarian"]
    result = classify(_raw(from_, subject, body, attach=OUR_MESSAGE), OURS)
    assert any(r.startswith("From: postmaster@ceg.example.hu") for r in result.reasons)
    assert any(r.endswith("[daemon-sender +2]") for r in result.reasons)
    assert any("[failure-subject +2]" in r for r in result.reasons)
    assert result.reasons[-1].startswith("bounce evidence scores ")


@pytest.mark.parametrize("path", _corpus("bounces"), ids=_ids(_corpus("bounces")))
def test_corpus_bounces_are_bounces_on_structure_alone(path: Path) -> None:
    # Without the exact-wording rules (DSN part, MAILER-DAEMON, X-Failed-Recipients…) the
    # scored evidence still finds every corpus bounce: it does not lean on one known MTA.
    view = _View(parse(path.read_bytes()), OwnIdentity())
    assert _bounce_score(view) is not None


# Every corpus file that is not a bounce; malformed/enmime--multipart-wo-boundary is a Postfix
# bounce filed under malformed/ (its multipart has no boundary) and is left out.
NOT_BOUNCES = [
    p
    for p in HUMAN_FILES + _corpus("attachments", "malformed", "spam", "reports", "auto-replies")
    if p.name != "enmime--multipart-wo-boundary.eml"
]


@pytest.mark.parametrize("path", NOT_BOUNCES, ids=_ids(NOT_BOUNCES))
def test_corpus_non_bounces_do_not_score_as_bounces(path: Path) -> None:
    try:
        msg = parse(path.read_bytes())
    except ParseError:
        return  # not mail at all (malformed/): quarantined before classify
    assert _bounce_score(_View(msg, OwnIdentity())) is None


# --- report rules ---------------------------------------------------------------------------


def test_arf_report() -> None:
    part = ReportPart("message/feedback-report", "Feedback-Type: abuse\nUser-Agent: x\n")
    result = classify(_msg(report_parts=(part, _RETURNED)))
    assert result.kind is Kind.REPORT
    assert result.bounced_message_ids == ("out-1@ours.example",)


def test_mdn_read_receipt() -> None:
    part = ReportPart(
        "message/disposition-notification",
        "Final-Recipient: rfc822;jane@acme.example\nOriginal-Message-ID: <out-2@ours.example>\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\n",
    )
    msg = _msg(
        content_type="multipart/report",
        report_type="disposition-notification",
        report_parts=(part,),
    )
    result = classify(msg)
    assert result.kind is Kind.REPORT
    assert result.bounced_message_ids == ("out-2@ours.example",)


def test_plain_text_read_receipt_needs_receipt_wording() -> None:
    receipt = _msg(
        subject="Read: Quote for 200 units",
        text="Your message\n\n  To: Jane\n\nwas read on 5/1/2024 10:00 AM.",
    )
    assert classify(receipt).kind is Kind.REPORT
    person = _msg(subject="Read: the attached proposal first", text="Then call me.")
    assert classify(person).kind is Kind.HUMAN


def test_arf_written_as_text_is_a_report() -> None:
    text = (
        "This is an email abuse report for an email message received from IP 192.0.2.9.\n\n"
        "Feedback-Type: abuse\nUser-Agent: SomeISP-FBL/1.0\nVersion: 1\n"
        "Source-IP: 192.0.2.9\n"
    )
    msg = _raw("FBL <fbl@isp.example>", "Abuse report", text, attach=OUR_MESSAGE)
    result = classify(msg, OURS)
    assert result.kind is Kind.REPORT
    assert any(r.startswith("ARF fields in the text") for r in result.reasons)


@pytest.mark.parametrize(
    ("from_", "subject", "attach"),
    [
        # a complaint loop's subject with the reported message attached
        ("Feedback <staff@webmail.example>", "complaint about message from 192.0.2.9", OUR_MESSAGE),
        # the complaint mailbox with the reported message attached
        ("scomp@isp.example", "Client TOS Notification", OUR_MESSAGE),
        # Microsoft JMRP: the marker header inside the returned message
        (
            "staff@webmail.example",
            "Notice",
            "X-HmXmrOriginalRecipient: <lead@client.example>\r\n" + OUR_MESSAGE,
        ),
    ],
)
def test_complaint_loops_are_reports(from_: str, subject: str, attach: str) -> None:
    msg = _raw(from_, subject, "This is a complaint.", attach=attach)
    assert classify(msg, OURS).kind is Kind.REPORT


def test_a_person_forwarding_an_eml_is_not_a_complaint() -> None:
    msg = _raw("Jane <jane@acme.example>", "Fwd: Quote 1234", "See attached.", attach=OUR_MESSAGE)
    assert classify(msg, OURS).kind is Kind.HUMAN


@pytest.mark.parametrize(
    ("subject", "headers"),
    [
        ("Report Domain: ours.example Submitter: mail.example.com Report-ID: <123@x>", {}),
        ("Report domain: ours.example Submitter: enterprise.protection.example", {}),
        ("Report", {"TLS-Report-Domain": "ours.example", "TLS-Report-Submitter": "x.example"}),
    ],
)
def test_aggregate_reports_are_reports(subject: str, headers: dict[str, str]) -> None:
    msg = _msg(from_="dmarcreport@mail.example.com", subject=subject, headers=headers)
    assert classify(msg).kind is Kind.REPORT


def test_person_asking_about_a_report_domain_is_human() -> None:
    assert classify(_msg(subject="Re: Report domain: setup question")).kind is Kind.HUMAN


# --- auto-reply rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ({"Auto-Submitted": "auto-generated"}, "Auto-Submitted: auto-generated"),
        ({"X-Autoreply": "yes"}, "X-Autoreply: yes"),
        ({"X-Autorespond": "Thanks"}, "X-Autorespond: Thanks"),
        ({"Precedence": "auto_reply"}, "Precedence: auto_reply"),
        ({"X-Precedence": "auto_reply"}, "X-Precedence: auto_reply"),
        ({"X-Mailer": "vacation 1.2.7"}, "X-Mailer: vacation 1.2.7"),
        ({"Delivered-To": "Autoresponder"}, "Delivered-To: Autoresponder"),
    ],
)
def test_auto_reply_headers(headers: dict[str, str], reason: str) -> None:
    result = classify(_msg(headers=headers, text="Thank you, we received your message."))
    assert result.kind is Kind.AUTO_REPLY
    assert reason in result.reasons


def test_auto_submitted_no_is_human() -> None:
    assert classify(_msg(headers={"Auto-Submitted": "no"})).kind is Kind.HUMAN


def test_auto_response_suppress_alone_is_not_auto() -> None:
    # Outlook stamps X-Auto-Response-Suppress on ordinary mail (meeting requests, replies)
    assert classify(_msg(headers={"X-Auto-Response-Suppress": "All"})).kind is Kind.HUMAN


@pytest.mark.parametrize(
    ("subject", "kind"),
    [
        ("Automatic reply: Quote for 200 units", Kind.AUTO_REPLY),
        ("Auto-Reply: Quote", Kind.AUTO_REPLY),
        ("AutoReply", Kind.AUTO_REPLY),
        ("Out of Office: Quote for 200 units", Kind.OUT_OF_OFFICE),
        ("Out of Office AutoReply: Quote", Kind.OUT_OF_OFFICE),
        ("AUTO: Jane Doe is out of the office (returning 05/06/2024)", Kind.OUT_OF_OFFICE),
        ("Abwesenheitsnotiz: Angebot", Kind.OUT_OF_OFFICE),  # German
        ("Automatische Antwort: Angebot", Kind.AUTO_REPLY),  # German
        ("Réponse automatique : Devis", Kind.AUTO_REPLY),  # French
        ("Respuesta automática: Cotización", Kind.AUTO_REPLY),  # Spanish
        ("自動返信: お見積り", Kind.AUTO_REPLY),  # Japanese
        ("【自動返信】お問い合わせありがとうございます", Kind.AUTO_REPLY),  # Japanese, brackets
        ("不在通知: お見積り", Kind.OUT_OF_OFFICE),  # Japanese absence
        ("自动回复: 报价", Kind.AUTO_REPLY),  # Chinese
        ("ตอบกลับอัตโนมัติ: ใบเสนอราคา", Kind.AUTO_REPLY),  # Thai "automatic reply"
        ("ไม่อยู่ที่สำนักงาน: ใบเสนอราคา", Kind.OUT_OF_OFFICE),  # Thai "not in the office"
        ("자동 응답: 견적", Kind.AUTO_REPLY),  # Korean
        ("Automatikus válasz: Ajánlat", Kind.AUTO_REPLY),  # Hungarian
        ("Αυτόματη απάντηση: Προσφορά", Kind.AUTO_REPLY),  # Greek
        ("Răspuns automat: Ofertă", Kind.AUTO_REPLY),  # Romanian
        ("Automatski odgovor: Ponuda", Kind.AUTO_REPLY),  # Croatian / Serbian
        ("Automatická odpoveď: Ponuka", Kind.AUTO_REPLY),  # Slovak
        ("Automatinis atsakymas: Pasiūlymas", Kind.AUTO_REPLY),  # Lithuanian
        ("Automaatne vastus: Pakkumine", Kind.AUTO_REPLY),  # Estonian
        ("Автоматичен отговор: Оферта", Kind.AUTO_REPLY),  # Bulgarian
        ("Автовідповідь: Пропозиція", Kind.AUTO_REPLY),  # Ukrainian
        ("Automated response: your enquiry", Kind.AUTO_REPLY),
        ("תשובה אוטומטית: הצעת מחיר", Kind.AUTO_REPLY),  # Hebrew (Outlook's wording)
        ("Fora do escritório: orçamento", Kind.OUT_OF_OFFICE),  # Portuguese
    ],
)
def test_auto_reply_subjects(subject: str, kind: Kind) -> None:
    # A neutral body: the subject alone decides auto vs absence.
    result = classify(_msg(subject=subject, text="Thank you for your message."))
    assert result.kind is kind, result.reasons


@pytest.mark.parametrize(
    "text",
    [
        "I am out of the office until Monday with limited access to email.",
        "Ich bin bis zum 3. Mai abwesend und nicht im Büro.",
        "ขณะนี้ดิฉันไม่อยู่ที่สำนักงาน จะกลับวันจันทร์",
        "ただいま休暇のため不在にしております。",
        "I'm currently on annual leave, back on the 5th.",
    ],
)
def test_absence_body_makes_out_of_office(text: str) -> None:
    result = classify(_msg(subject="Automatic reply: Quote", text=text))
    assert result.kind is Kind.OUT_OF_OFFICE
    assert any(r.startswith("absence notice") for r in result.reasons)


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Out of office plans",
        "Out of office plans for Q3",
        "RE: Automatic reply: Quote",  # a person answering an auto-reply
        "Auto-reply not working on our shop",
        "Autoresponder pricing",
        "Holiday notice: our warehouse is closed on Friday",
        "Question about vacation rentals",
    ],
)
def test_human_subjects_that_look_automatic(subject: str) -> None:
    assert classify(_msg(subject=subject)).kind is Kind.HUMAN


@pytest.mark.parametrize(
    "text",
    [
        "Thank you. This is an automated response: we have received your enquiry.",
        "We have received your message and will answer within two working days.",
        "Dies ist eine automatische Antwort. Wir melden uns in Kürze.",
        "Ceci est une réponse automatique. Nous vous répondrons rapidement.",
        "Este es un mensaje automático: hemos recibido su consulta.",
        "Dit is een automatisch antwoord.",
        "本邮件为系统自动发送，请勿直接回复。",
        "Это письмо отправлено автоматически.",
    ],
)
def test_null_sender_with_automatic_reply_text_is_an_auto_reply(text: str) -> None:
    msg = _msg(subject="Re: Quote for 200 units", text=text, headers={"Return-Path": "<>"})
    assert classify(msg).kind is Kind.AUTO_REPLY
    person = _msg(subject="Re: Quote", text=text, headers={"Return-Path": "<jane@acme.example>"})
    assert classify(person).kind is Kind.HUMAN


def test_null_sender_with_an_absence_notice_is_out_of_office() -> None:
    text = "Thank you for your mail. I am out of the office until 12 June."
    msg = _msg(subject="Re: Quote for 200 units", text=text, headers={"Return-Path": "<>"})
    result = classify(msg)
    assert result.kind is Kind.OUT_OF_OFFICE
    assert any(r.startswith("Return-Path: <> with absence notice") for r in result.reasons)
    person = _msg(subject="Re: Quote", text=text, headers={"Return-Path": "<jane@acme.example>"})
    assert classify(person).kind is Kind.HUMAN


def test_auto_reply_beats_list() -> None:
    msg = _msg(headers={"Auto-Submitted": "auto-replied", "Precedence": "bulk"})
    assert classify(msg).kind is Kind.AUTO_REPLY


# --- list rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"List-Id": "Sales <sales.lists.example>"}, "List-Id: Sales <sales.lists.example>"),
        ({"List-Unsubscribe": "<https://x.example/u>"}, "List-Unsubscribe: <https://x.example/u>"),
        ({"List-Post": "<mailto:l@lists.example>"}, "List-Post: <mailto:l@lists.example>"),
        ({"Precedence": "bulk"}, "Precedence: bulk"),
        ({"Precedence": "list"}, "Precedence: list"),
        ({"Precedence": "junk"}, "Precedence: junk"),
        ({"X-Mailing-List": "<dev@lists.example>"}, "X-Mailing-List: <dev@lists.example>"),
        ({"X-Mailman-Version": "2.1.39"}, "X-Mailman-Version: 2.1.39"),
        (
            {"X-Sequence": "42", "X-Loop": "l@lists.example"},
            "X-Sequence with X-Loop: l@lists.example",
        ),
    ],
)
def test_list_rules(headers: dict[str, str], reason: str) -> None:
    result = classify(_msg(headers=headers))
    assert result.kind is Kind.LIST
    assert reason in result.reasons


def test_list_owner_sender() -> None:
    msg = _msg(sender=Address("", "owner-buyers@lists.example"))
    assert classify(msg).kind is Kind.LIST


def test_web_form_notification_is_not_list_mail() -> None:
    # From noreply@ To us: a relay for a person (see addresses.lead_sender), not a broadcast
    msg = _msg(
        from_="noreply@shop.example",
        from_name="",
        to="sales@ours.example",
        text="Name: Jane\nEmail: jane@acme.example\nMessage: quote please",
    )
    assert classify(msg).kind is Kind.HUMAN


def test_no_reply_mailing_itself_is_a_broadcast() -> None:
    msg = _msg(from_="noreply@forum.example", to="noreply@forum.example")
    assert classify(msg).kind is Kind.LIST


# --- own loop -------------------------------------------------------------------------------

OWN = OwnIdentity(
    addresses=frozenset({"Sales@Ours.example"}), message_id_domains=frozenset({"mail.ours.example"})
)


def test_own_address_is_a_loop() -> None:
    result = classify(_msg(from_="sales@ours.example"), OWN)
    assert result.kind is Kind.OWN
    assert result.reasons == ("From sales@ours.example is our own account (loop)",)


def test_own_message_id_domain_is_a_loop() -> None:
    result = classify(_msg(message_id="lead-7.x@mail.ours.example"), OWN)
    assert result.kind is Kind.OWN
    sub = classify(_msg(message_id="x@eu.mail.ours.example"), OWN)
    assert sub.kind is Kind.OWN


def test_other_mail_is_not_own() -> None:
    assert classify(_msg(), OWN).kind is Kind.HUMAN
    assert classify(_msg(from_="sales@ours.example")).kind is Kind.HUMAN  # no identity given


def test_synthesized_message_id_is_not_a_loop() -> None:
    msg = _msg(message_id="deadbeef@mail.ours.example")
    synthesized = dataclasses.replace(msg, message_id_synthesized=True)
    assert classify(synthesized, OWN).kind is Kind.HUMAN


def test_list_beats_own() -> None:
    msg = _msg(from_="sales@ours.example", headers={"List-Id": "<x.example>"})
    assert classify(msg, OWN).kind is Kind.LIST


# --- spam -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "spam"),
    [
        ({"X-Spam-Flag": "YES"}, True),
        ({"X-Spam-Status": "Yes, score=7.1 required=5.0"}, True),
        ({"X-Spam-Status": "No, score=-1.1 required=5.0"}, False),
        ({"X-Forefront-Antispam-Report": "CIP:1.2.3.4;CTRY:;SFV:SPM;"}, True),
        ({"X-Forefront-Antispam-Report": "CIP:1.2.3.4;SFV:NSPM;"}, False),
        ({}, False),
    ],
)
def test_spam_flag(headers: dict[str, str], spam: bool) -> None:
    result = classify(_msg(headers=headers))
    assert result.spam is spam
    assert result.kind is Kind.HUMAN
    assert len(result.reasons) == (2 if spam else 1)


# --- rule registry --------------------------------------------------------------------------


def test_rules_have_unique_names_and_descriptions() -> None:
    rules = BOUNCE_RULES + REPORT_RULES + AUTO_REPLY_RULES + LIST_RULES + OWN_RULES
    names = [r.name for r in rules]
    assert len(names) == len(set(names))
    assert all(r.description for r in rules)


def test_duplicate_rule_names_are_refused() -> None:
    rule = Rule("same", "one", lambda v: None)
    with pytest.raises(ValueError, match="same"):
        _rules(rule, rule)


def test_human_reason() -> None:
    result = classify(_msg())
    assert result == Classification(
        kind=Kind.HUMAN, reasons=("no bounce, report, auto-reply, list or loop evidence",)
    )
