"""Raw bytes to InboundMessage, over the shared corpus and hand-made edge cases."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.corpus import CORPUS
from worker.errors import ParseError
from worker.mail.message import Address
from worker.mail.parse import html_to_text, message_ids, normalize, parse

CORPUS_FILES = sorted(CORPUS.rglob("*.eml"))
# Not mail at all (one line, no header): the only corpus file that must be refused.
NOT_MAIL = {"malformed/enmime--erroneous.eml"}


def _name(path: Path) -> str:
    return path.relative_to(CORPUS).as_posix()


def _read(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def _mail(headers: str, body: bytes = b"Hello\n") -> bytes:
    return headers.strip("\n").encode() + b"\n\n" + body


SIMPLE = _mail(
    """
From: Ann Example <ann@Example.COM>
To: bob@example.org
Subject: Hello
Date: Tue, 01 Jul 2025 10:00:00 +0200
Message-ID: <simple-1@example.com>
"""
)


def test_corpus_is_present() -> None:
    assert len(CORPUS_FILES) == 135


@pytest.mark.parametrize("path", CORPUS_FILES, ids=_name)
def test_every_corpus_message_parses(path: Path) -> None:
    raw = path.read_bytes()
    if _name(path) in NOT_MAIL:
        with pytest.raises(ParseError):
            parse(raw)
        return
    message = parse(raw)
    assert message.content_hash == hashlib.sha256(normalize(raw)).hexdigest()
    assert message.message_id and not set("<> \t\n") & set(message.message_id)
    assert all(ref and "<" not in ref for ref in message.references + message.in_reply_to)
    assert message.date is None or message.date.utcoffset() == UTC.utcoffset(None)
    assert message.size == len(raw)
    assert "<script" not in message.html.lower()
    assert all(a.filename for a in message.attachments)
    assert all(name == name.lower() for name in message.headers)
    # Everything must be storable as UTF-8: no lone surrogates anywhere.
    for text in (message.subject, message.text, message.html, *message.defects):
        text.encode("utf-8")
    for values in message.headers.values():
        for value in values:
            value.encode("utf-8")


def test_parse_is_deterministic() -> None:
    raw = _read("attachments/spamscope--mail_test_10.eml")
    assert parse(raw) == parse(raw)


# --- charsets ---------------------------------------------------------------------------------


def test_thai_windows_874_attachment_name() -> None:
    message = parse(_read("charsets/demisto--eml_contains_image_name_with_Thai_characters.eml"))
    (image,) = message.attachments
    assert image.filename == "ผ้าห่ม06[4].jpg"
    assert image.content_type == "image/jpeg"
    assert image.payload.startswith(b"\xff\xd8\xff")  # decoded JPEG, not base64 text


def test_shift_jis_body() -> None:
    message = parse(_read("charsets/mikel--japanese_shift_jis.eml"))
    assert "このメールはテスト用のメールです。" in message.text
    assert message.charsets == ("shift_jis",)


def test_iso_2022_jp_encoded_words_split_across_folded_lines() -> None:
    message = parse(_read("replies/mikel--example14.eml"))
    assert message.subject.startswith("Re: TEST")
    assert message.subject.endswith("テストテスト")


def test_iso_2022_jp_body_is_decoded() -> None:
    # mail-parser returns this body with its escape sequences still in it.
    raw = _mail(
        "From: a@example.com\nSubject: t\nContent-Type: text/plain; charset=ISO-2022-JP\n"
        "Content-Transfer-Encoding: 7bit",
        "こんにちは、世界\n".encode("iso2022_jp"),
    )
    assert parse(raw).text == "こんにちは、世界\n"


def test_euc_kr_subject_and_body() -> None:
    message = parse(_read("charsets/mikel--raw_email.eml"))
    assert message.subject == "NOTE: 한국말로 하는 것"
    assert "제 이름은 Jamis입니다." in message.text


def test_ks_c_5601_1987_body() -> None:
    # The body bytes are BD BA C6 BC C7 D8 under charset="ks_c_5601-1987".
    assert parse(_read("charsets/mikel--ks_c_5601-1987.eml")).text == "스티해\n"


def test_windows_1251_encoded_display_name() -> None:
    message = parse(_read("charsets/mikel--raw_email_bad_time.eml"))
    assert message.from_ == (Address("Атиковa", "yusuf75thu@auracom.net"),)


def test_gb2312_subject_and_name() -> None:
    message = parse(_read("charsets/spamscope--mail_test_12.eml"))
    assert message.subject == "代开各地增值税发票"
    assert message.from_[0].name == "张先生"


def test_koi8_r_body_and_subject() -> None:
    # The corpus has only an empty KOI8-R part (cpython msg_08), so build one.
    raw = _mail(
        "From: a@example.com\nSubject: =?koi8-r?B?"
        + base64.b64encode("Привет".encode("koi8_r")).decode()
        + "?=\nContent-Type: text/plain; charset=koi8-r\nContent-Transfer-Encoding: 8bit",
        "Добрый день\n".encode("koi8_r"),
    )
    message = parse(raw)
    assert message.subject == "Привет"
    assert message.text == "Добрый день\n"


def test_utf8_under_a_stale_x_mac_cyrillic_label() -> None:
    # The body says x-mac-cyrillic but its bytes are UTF-8 ("=C2=A9" is a copyright sign);
    # read as mac-cyrillic, "©" would be "¬©" and each dash "вАУ".
    message = parse(_read("charsets/phpmmp--issue230.eml"))
    assert "x-mac-cyrillic" in message.charsets
    assert "© 2019 Science and Education Foundation, Bulgaria" in message.text
    assert "вА" not in message.text


def test_raw_utf8_headers_rfc_6532() -> None:
    message = parse(_read("charsets/mikel--utf8_headers.eml"))
    assert message.subject == "Säying Hello"
    assert message.from_ == (Address("Jöhn Doe", "jdöe@mächine.example"),)
    assert message.to == (Address("Märy Smith", "märy@exämple.net"),)


def test_raw_8bit_header_in_body_charset() -> None:
    raw = (
        b"From: a@example.com\nSubject: \x83e\x83X\x83g\n"
        b"Content-Type: text/plain; charset=shift_jis\n\nx\n"
    )
    assert parse(raw).subject == "テスト"


def test_raw_utf8_attachment_name() -> None:
    (attachment,) = parse(_read("attachments/mikel--attachment_nonascii_filename.eml")).attachments
    assert attachment.filename == "ciële.txt"


# --- identity -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["plain/mikel--basic_email.eml", "attachments/cpython--msg_07.eml"]
)
def test_bom_and_line_endings_do_not_change_identity(name: str) -> None:
    raw = _read(name).replace(b"\r\n", b"\n")
    plain = parse(raw)
    for variant in (
        b"\xef\xbb\xbf" + raw,
        raw.replace(b"\n", b"\r\n"),
        b"From someone@example.com Mon Jan  1 00:00:00 2024\n" + raw,
        b"\n   \n" + raw,
    ):
        other = parse(variant)
        assert (other.message_id, other.content_hash) == (plain.message_id, plain.content_hash)
        assert other.subject == plain.subject


def test_missing_message_id_is_synthesised_stably() -> None:
    raw = _read("attachments/cpython--msg_07.eml")
    message = parse(raw)
    assert message.message_id_synthesized
    assert message.message_id == f"{message.content_hash[:32]}@leadmail.invalid"
    assert parse(raw).message_id == message.message_id
    assert parse(raw + b"x").message_id != message.message_id
    assert "MissingMessageId" in message.defects


def test_message_id_is_bare() -> None:
    raw = SIMPLE.replace(b"<simple-1@example.com>", b"  <simple-1@\n example.com> (comment)")
    message = parse(raw)
    assert message.message_id == "simple-1@example.com"
    assert not message.message_id_synthesized


def test_in_reply_to_and_references() -> None:
    message = parse(_read("replies/mikel--example07.eml"))
    assert message.in_reply_to == ("3456@example.net",)
    assert message.references == ("1234@local.machine.example", "3456@example.net")


def test_message_ids_tolerate_garbage() -> None:
    text = 'Your message of "Mon" <a@x>\n garbage <b@y>,<c@z> (comment) <a@x> <>'
    assert message_ids(text) == ("a@x", "b@y", "c@z")
    assert message_ids("a@x b@y") == ("a@x", "b@y")
    assert message_ids("no ids here") == ()


# --- headers, addresses, date -------------------------------------------------------------------


def test_addresses_domain_lowered_local_kept_and_names_decoded() -> None:
    raw = _mail(
        "From: =?utf-8?q?Doe=2C_J=C3=B6hn?= <John.Doe@Example.COM>\n"
        "To: Team: Ann <ann@a.example>, bob@B.example;, undisclosed-recipients:;\n"
        'Cc: not-an-address, "Carol" <carol@c.example>, carol@C.EXAMPLE\n'
        "Reply-To: <reply@r.example>\nSender: sender@s.example"
    )
    message = parse(raw)
    assert message.from_ == (Address("Doe, Jöhn", "John.Doe@example.com"),)
    assert message.to == (Address("Ann", "ann@a.example"), Address("", "bob@b.example"))
    assert message.cc == (Address("Carol", "carol@c.example"),)
    assert message.reply_to == (Address("", "reply@r.example"),)
    assert message.sender == Address("", "sender@s.example")


def test_headers_are_decoded_lower_case_tuples() -> None:
    message = parse(_read("replies/mikel--example14.eml"))
    assert message.headers["reply-to"] == ("rudeboyjet@gmail.com",)
    assert message.header("Subject") == message.subject
    received = parse(_read("plain/mikel--basic_email.eml")).headers["received"]
    assert len(received) > 1 and all("\n" not in value for value in received)


def test_date_is_utc() -> None:
    assert parse(SIMPLE).date == datetime(2025, 7, 1, 8, 0, tzinfo=UTC)


def test_unparsable_date_is_none_with_defect() -> None:
    message = parse(SIMPLE.replace(b"Tue, 01 Jul 2025 10:00:00 +0200", b"sometime soon"))
    assert message.date is None
    assert any(d.startswith("UnparsableDate") for d in message.defects)


# --- bodies -------------------------------------------------------------------------------------


def test_html_only_message_gets_text() -> None:
    message = parse(_read("html-only/enmime--html-only-inline.eml"))
    assert message.text == "Test of HTML section"
    assert "<" not in message.text
    assert message.html


def test_html_is_sanitised() -> None:
    html = (
        b'<html><head><style>p {color: red}</style></head><body onload="x()">'
        b"<p onclick=\"steal()\">Hi &amp; welcome</p><script>alert('x')</script>"
        b'<a href="javascript:alert(1)">link</a><img src="cid:logo@x"></body></html>'
    )
    message = parse(_mail("From: a@example.com\nContent-Type: text/html; charset=utf-8", html))
    assert "<script" not in message.html and "alert('x')" not in message.html
    assert "onclick" not in message.html and "javascript:" not in message.html
    assert 'src="cid:logo@x"' in message.html
    assert message.text == "Hi & welcome\nlink"


def test_html_to_text_layout() -> None:
    source = "<div>one<br>two</div><table><tr><td>a</td><td>b</td></tr></table>&nbsp;<!-- x -->"
    assert html_to_text(source) == "one\ntwo\n\na b"


def test_plain_text_is_preferred_over_html() -> None:
    message = parse(_read("replies/talon--gmail.eml"))
    assert message.text.startswith("Hello\n")
    assert message.html


def test_iso_8859_1_label_reads_windows_1252_quotes() -> None:
    raw = _mail(
        "From: a@example.com\nContent-Type: text/plain; charset=iso-8859-1",
        "\u201cquoted\u201d caf\u00e9".encode("cp1252"),
    )
    assert parse(raw).text == "\u201cquoted\u201d caf\u00e9"


# --- attachments and reports --------------------------------------------------------------------


def test_unnamed_parts_get_stable_names() -> None:
    message = parse(_read("attachments/spamscope--mail_test_10.eml"))
    names = [a.filename for a in message.attachments]
    assert names[:3] == ["part-5.gif", "part-6.gif", "part-7.gif"]
    assert all(a.inline and a.content_id for a in message.attachments[:3])
    assert names[3] == "Move To Eight ZWEP6227F.pdf"


def test_rfc2231_encoded_filename() -> None:
    raw = _mail(
        'From: a@example.com\nContent-Type: multipart/mixed; boundary="b"',
        b"--b\nContent-Type: text/plain\n\nbody\n--b\n"
        b"Content-Type: application/pdf\n"
        b"Content-Disposition: attachment; filename*=UTF-8''Pr%C3%A9sentation%20Q3.pdf\n"
        b"Content-Transfer-Encoding: base64\n\nJVBERi0=\n--b--\n",
    )
    (attachment,) = parse(raw).attachments
    assert attachment.filename == "Présentation Q3.pdf"
    assert attachment.payload == b"%PDF-"
    assert not attachment.inline


def test_message_rfc822_becomes_an_eml_attachment() -> None:
    message = parse(_read("attachments/sisimai--is-not-bounce-02.eml"))
    (attached,) = message.attachments
    assert attached.filename == "original.eml"
    assert attached.content_type == "message/rfc822"
    assert b"\nSubject: " in attached.payload or attached.payload.startswith(b"Subject: ")
    assert message.report_parts == ()  # not inside a multipart/report


def test_rfc822_attachment_named_after_its_subject() -> None:
    message = parse(_read("bounces/sisimai--rfc3464-01.eml"))
    assert [a.filename for a in message.attachments] == ["バウンスメールのテスト(日本語).eml"]


def test_delivery_status_report() -> None:
    message = parse(_read("bounces/mikel--multi_address_bounce1.eml"))
    assert message.content_type == "multipart/report"
    assert message.report_type == "delivery-status"
    kinds = [part.content_type for part in message.report_parts]
    assert kinds == ["message/delivery-status", "message/rfc822"]
    status = message.report_parts[0].text
    assert "Final-Recipient: rfc822; bbbbvhvbbvkjbhfbvbvjhb@gmail.com" in status
    assert "Status: 5.1.1" in status
    assert "Return-Path: <rahul.chaudhari@LL.com>" in message.report_parts[1].text


def test_returned_headers_report_part() -> None:
    message = parse(_read("bounces/flanker--mailbox-full.eml"))
    kinds = [part.content_type for part in message.report_parts]
    assert kinds == ["message/delivery-status", "text/rfc822-headers"]
    assert message.report_parts[1].text.startswith("Return-Path: ")


def test_feedback_report() -> None:
    message = parse(_read("reports/sisimai--arf-01.eml"))
    assert message.report_type == "feedback-report"
    assert "Feedback-Type: abuse" in message.report_parts[0].text


def test_disposition_notification() -> None:
    message = parse(_read("reports/flanker--disposition-notification.eml"))
    assert message.report_type == "disposition-notification"
    mdn = message.report_parts[0]
    assert mdn.content_type == "message/disposition-notification"
    assert "Disposition: manual-action/MDN-sent-manually; displayed" in mdn.text


# --- limits and refusals ------------------------------------------------------------------------


def test_header_block_cap_skips_fields_and_keeps_the_rest() -> None:
    raw = _read("malformed/flanker--long-header.eml")
    message = parse(raw, max_header_bytes=4096)
    assert message.subject == ""  # the ~200 KB Subject was skipped
    assert message.from_ == (Address("", "bob@example.com"),)
    assert message.date == datetime(2013, 5, 7, 23, 11, 57, tzinfo=UTC)
    assert message.text == parse(raw).text
    assert any(d.startswith("HeaderBlockTooLarge") and "subject" in d for d in message.defects)
    assert message.content_hash == parse(raw).content_hash  # identity is the full bytes


def test_long_header_under_the_default_cap_is_truncated_in_values() -> None:
    message = parse(_read("malformed/flanker--long-header.eml"))
    assert message.subject.startswith("Die heiße Zypernsonne quälte Max")
    assert len(message.subject) == 16 * 1024
    assert "HeaderValueTruncated: subject" in message.defects


@pytest.mark.parametrize(
    "raw", [b"", b"\n\n\n", b"\xef\xbb\xbf", b"// Not an RFC-822 Document", b"hello world\n"]
)
def test_not_mail_raises_parse_error(raw: bytes) -> None:
    with pytest.raises(ParseError):
        parse(raw)


def test_header_only_message() -> None:
    message = parse(b"Subject: only a header")
    assert message.subject == "only a header"
    assert message.text == ""
    assert message.message_id_synthesized
