"""The demo inbox is a well-formed, deterministic Maildir that exercises every kind of mail."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from email.header import decode_header
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

import pytest

from worker.demo import OUR_ADDRESS, THAI_BODY, THAI_SUBJECT, write_demo_inbox

EXPECTED_COUNT = 12
# RFC 2606 / 6761 names, plus the two real domains the demo needs on purpose.
ALLOWED_DOMAIN = re.compile(r"(^|\.)(example|example\.(com|net|org)|example\.co\.th|gmail\.com)$")


def _parse(path: Path) -> EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "Maildir"
    assert write_demo_inbox(path) == EXPECTED_COUNT
    return path


@pytest.fixture(scope="module")
def messages(inbox: Path) -> dict[str, EmailMessage]:
    """Parsed messages by Message-ID."""
    parsed = [_parse(p) for p in sorted((inbox / "new").iterdir())]
    by_id = {str(m["Message-ID"]): m for m in parsed}
    assert len(by_id) == len(parsed), "Message-IDs are not unique"
    return by_id


def _find(messages: dict[str, EmailMessage], **header: str) -> EmailMessage:
    (name, needle), *_ = header.items()
    found = [m for m in messages.values() if needle in str(m.get(name.replace("_", "-"), ""))]
    assert len(found) == 1, f"expected one message with {name} containing {needle!r}"
    return found[0]


def test_writes_a_maildir_with_every_message_in_new(inbox: Path) -> None:
    assert {p.name for p in inbox.iterdir()} == {"cur", "new", "tmp"}
    names = [p.name for p in (inbox / "new").iterdir()]
    assert len(names) == EXPECTED_COUNT
    assert not list((inbox / "tmp").iterdir())
    assert not list((inbox / "cur").iterdir())
    for name in names:
        # <seconds>.<unique>.<host>, and nothing a Maildir reader would take as flags.
        assert re.fullmatch(r"\d{10}\.[A-Za-z0-9]+\.[a-z-]+", name), name


def test_rewriting_is_idempotent(tmp_path: Path) -> None:
    inbox = tmp_path / "Maildir"
    assert write_demo_inbox(inbox) == EXPECTED_COUNT
    first = {p.name: p.read_bytes() for p in (inbox / "new").iterdir()}

    assert write_demo_inbox(inbox) == EXPECTED_COUNT
    second = {p.name: p.read_bytes() for p in (inbox / "new").iterdir()}
    assert second == first
    assert not list((inbox / "tmp").iterdir())


def test_message_a_client_has_read_is_not_delivered_again(tmp_path: Path) -> None:
    inbox = tmp_path / "Maildir"
    write_demo_inbox(inbox)
    seen = sorted((inbox / "new").iterdir())[0]
    shutil.move(seen, inbox / "cur" / f"{seen.name}:2,S")

    write_demo_inbox(inbox)

    assert not (inbox / "new" / seen.name).exists()
    assert len(list((inbox / "new").iterdir())) == EXPECTED_COUNT - 1


def test_every_message_is_well_formed(messages: dict[str, EmailMessage]) -> None:
    assert len(messages) == EXPECTED_COUNT
    for message_id, msg in messages.items():
        assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", message_id)
        assert msg["Date"].datetime.tzinfo is not None
        assert msg["From"] is not None
        assert msg["Return-Path"] is not None
        # The Thai message's header defects are the point of it (see its own test).
        if msg.get_content_charset() != "windows-874":
            assert not msg.defects, message_id
            for name, value in msg.items():
                assert not getattr(value, "defects", ()), f"{message_id}: {name}"
        for part in msg.walk():
            assert not part.defects, f"{message_id}: {part.get_content_type()}"


def test_only_example_domains_and_gmail(messages: dict[str, EmailMessage]) -> None:
    for msg in messages.values():
        fields = [str(msg[h]) for h in ("To", "Cc", "Reply-To") if msg[h] is not None]
        raw_from = msg.get_all("From", [])
        addresses = [addr for _, addr in getaddresses([*fields, *map(str, raw_from)])]
        addresses.append(str(msg["Message-ID"]).strip("<>"))
        for address in addresses:
            domain = address.rpartition("@")[2].lower()
            assert ALLOWED_DOMAIN.search(domain), address


def test_enquiries_cover_free_mail_attachment_and_html(messages: dict[str, EmailMessage]) -> None:
    gmail = _find(messages, From="@gmail.com")
    assert gmail.get_content_type() == "text/plain"

    rfq = _find(messages, Subject="RFQ-2026-0142")
    (attachment,) = list(rfq.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "RFQ-2026-0142.pdf"
    pdf = attachment.get_content()
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    assert b"RFQ-2026-0142" in pdf

    html = _find(messages, From="lumenhotels.example")
    assert html.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in html.iter_parts()] == ["text/plain", "text/html"]


def test_web_form_names_the_enquirer_in_reply_to(messages: dict[str, EmailMessage]) -> None:
    form = _find(messages, From="no-reply@forms.northwind.example")
    assert form["Reply-To"].addresses[0].addr_spec == "tom.becker@beckerlogistics.example"
    body = form.get_content()
    for field in ("Name:", "Email:", "Phone:", "Company:", "Message:"):
        assert field in body


def test_reply_thread_points_at_our_reply_and_the_first_mail(
    messages: dict[str, EmailMessage],
) -> None:
    first_id = "<20260302190512.GL7781@mail.greenleafmarkets.example>"
    first = messages[first_id]
    replies = [m for m in messages.values() if str(m["Subject"]) == f"Re: {first['Subject']}"]
    assert len(replies) == 2

    from_priya = _find(messages, In_Reply_To="<our-reply-1@northwind.example>")
    assert from_priya["From"].addresses[0] == first["From"].addresses[0]
    assert "<our-reply-1@northwind.example>" in str(from_priya["References"])

    colleague = next(m for m in replies if m is not from_priya)
    assert str(colleague["In-Reply-To"]) == first_id
    assert colleague["From"].addresses[0].domain == first["From"].addresses[0].domain
    assert colleague["Cc"].addresses[0] == first["From"].addresses[0]


def test_bounce_is_a_delivery_status_report_naming_our_message(
    messages: dict[str, EmailMessage],
) -> None:
    bounce = _find(messages, From="MAILER-DAEMON@")
    assert bounce.get_content_type() == "multipart/report"
    assert bounce.get_param("report-type") == "delivery-status"
    assert str(bounce["Return-Path"]) == "<>"
    types = [p.get_content_type() for p in bounce.iter_parts()]
    assert types == ["text/plain", "message/delivery-status", "text/rfc822-headers"]

    _, status, original = bounce.iter_parts()
    blocks = status.get_payload()
    assert isinstance(blocks, list) and len(blocks) == 2  # per-message, per-recipient
    recipient = blocks[1]
    assert isinstance(recipient, EmailMessage)
    assert str(recipient["Action"]) == "failed"
    assert str(recipient["Status"]) == "5.1.1"
    headers = original.get_content()
    assert "Message-ID: <our-reply-2@northwind.example>" in headers


def test_auto_reply_and_newsletter_carry_their_markers(messages: dict[str, EmailMessage]) -> None:
    ooo = _find(messages, Subject="Automatic reply:")
    assert str(ooo["Auto-Submitted"]) == "auto-replied"

    news = _find(messages, List_Id="packagingtoday.example")
    assert news["List-Unsubscribe"] is not None
    assert str(news["To"]) == OUR_ADDRESS


def test_thai_enquiry_is_windows_874(inbox: Path, messages: dict[str, EmailMessage]) -> None:
    (thai,) = [m for m in messages.values() if m.get_content_charset() == "windows-874"]
    assert thai["From"] is not None
    raw = next(
        p.read_bytes() for p in (inbox / "new").iterdir() if b"windows-874" in p.read_bytes()
    )
    raw_subject = re.search(rb"^Subject: ([^\r\n]*(?:\r\n [^\r\n]*)*)", raw, re.MULTILINE)
    assert raw_subject is not None
    assert raw_subject.group(1).startswith(b"=?windows-874?B?")

    decoded = "".join(
        chunk.decode("cp874") if isinstance(chunk, bytes) else chunk
        for chunk, charset in decode_header(raw_subject.group(1).decode("ascii"))
        if charset in ("windows-874", None)
    )
    assert decoded == THAI_SUBJECT

    body_bytes = thai.get_payload(decode=True)
    assert isinstance(body_bytes, bytes)
    body = body_bytes.decode("cp874")
    assert body.replace("\r\n", "\n") == THAI_BODY
    assert "ถุงมือไนไตรล์" in body
