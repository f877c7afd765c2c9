"""mail/compose.py: the bytes we send, read back with the stdlib as a receiver would."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest

from worker.errors import ValidationError
from worker.mail.compose import (
    MAX_REFERENCES,
    Draft,
    OutboundFile,
    compose,
    message_id,
    references_for,
)
from worker.mail.message import Address
from worker.mail.parse import parse
from worker.mail.threading import TokenSigner

SIGNER = TokenSigner(b"0123456789abcdef-test-secret")
TOKEN = SIGNER.token(42)
WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

DRAFT = Draft(
    sender=Address("Alice Chan", "alice@northwind.example"),
    to=(Address("Jane Buyer", "jane@acme-industrial.example"),),
    cc=(Address("", "Tom@ACME-Industrial.example"),),
    subject="Your quote for 200 chairs",
    text="Dear Jane,\r\n\r\nthe quote is attached.\r\n",
    token=TOKEN,
    id_domain="northwind.example",
    parent_id="enquiry-1@acme-industrial.example",
    parent_references=("root@acme-industrial.example",),
    date=WHEN,
    unique="0123abcd4567ef89",
)


def read(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def unix(text: str) -> str:
    return text.replace("\r\n", "\n")


def test_every_header_reads_back() -> None:
    done = compose(DRAFT)
    msg = read(done.raw)
    assert done.message_id == f"{TOKEN}.0123abcd4567ef89@northwind.example"
    assert msg["Message-ID"] == f"<{done.message_id}>"
    assert msg["From"] == "Alice Chan <alice@northwind.example>"
    assert msg["To"] == "Jane Buyer <jane@acme-industrial.example>"
    assert msg["Cc"] == "Tom@acme-industrial.example"  # domain lower-cased, local part kept
    assert msg["Subject"] == "Your quote for 200 chairs"
    assert msg["In-Reply-To"] == "<enquiry-1@acme-industrial.example>"
    assert msg["References"] == "<root@acme-industrial.example> <enquiry-1@acme-industrial.example>"
    assert parsedate_to_datetime(msg["Date"]) == WHEN
    assert msg["Bcc"] is None and msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().replace("\r\n", "\n") == "Dear Jane,\n\nthe quote is attached.\n"
    assert done.envelope_recipients == (
        "jane@acme-industrial.example",
        "tom@acme-industrial.example",
    )
    assert (done.in_reply_to, done.references) == (
        ("enquiry-1@acme-industrial.example",),
        ("root@acme-industrial.example", "enquiry-1@acme-industrial.example"),
    )
    assert b"\r\n" in done.raw and b"\n" not in done.raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in done.raw.split(b"\r\n"))


def test_the_token_in_our_message_id_finds_the_lead() -> None:
    done = compose(DRAFT)
    assert SIGNER.find([done.message_id]) == [42]
    # A different lead's number with our mac is no token.
    assert SIGNER.find([done.message_id.replace("L42-", "L43-")]) == []


def test_the_parser_reads_what_we_send() -> None:
    """Our own intake (threading step 1) sees the same ids we recorded."""
    done = compose(replace(DRAFT, subject_tag=SIGNER.subject_tag(42)))
    parsed = parse(done.raw)
    assert parsed.message_id == done.message_id
    assert parsed.in_reply_to == done.in_reply_to
    assert parsed.references == done.references
    assert parsed.subject == f"Your quote for 200 chairs [#{TOKEN}]"
    assert parsed.content_hash and parsed.text.startswith("Dear Jane,")


def test_subject_tag_is_added_once() -> None:
    tag = SIGNER.subject_tag(42)
    tagged = compose(replace(DRAFT, subject_tag=tag))
    assert read(tagged.raw)["Subject"] == f"Your quote for 200 chairs {tag}"
    again = compose(replace(DRAFT, subject=f"Re: quote {tag.upper()}", subject_tag=tag))
    assert again.subject == f"Re: quote {tag.upper()}"
    assert SIGNER.find([tagged.subject]) == [42]


def test_markdown_gives_a_sanitised_html_alternative() -> None:
    text = (
        "Dear **Jane**,\n\n- 200 chairs\n- 20 desks\n\n<script>alert(1)</script>\n\n"
        "[site](javascript:alert(2)) [ok](https://northwind.example)\n"
    )
    done = compose(replace(DRAFT, text=text, markdown=True))
    msg = read(done.raw)
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert unix(plain.get_content()) == text  # the source stays the text part
    body = html.get_content()
    assert "<strong>Jane</strong>" in body and "<li>200 chairs</li>" in body
    assert "<script>" not in body and 'href="javascript' not in body
    assert 'href="https://northwind.example"' in body
    assert done.html is not None and "<strong>Jane</strong>" in done.html


def test_no_html_without_markdown() -> None:
    done = compose(replace(DRAFT, text="**not bold**"))
    assert done.html is None
    assert read(done.raw).get_body(("html",)) is None


def test_attachments_with_types_from_name_and_content() -> None:
    files = (
        OutboundFile("quote.pdf", b"%PDF-1.4 quote"),
        OutboundFile("scan", b"\x89PNG\r\n\x1a\n...."),
        OutboundFile("ใบเสนอราคา.txt", "ราคา 1,250 บาท\n".encode()),
        OutboundFile("data.bin", b"\x00\x01", content_type="application/x-custom"),
    )
    done = compose(replace(DRAFT, attachments=files, markdown=True))
    msg = read(done.raw)
    assert msg.get_content_type() == "multipart/mixed"
    got = [
        (a.get_filename(), a.get_content_type(), a.get_content()) for a in msg.iter_attachments()
    ]
    assert got == [
        ("quote.pdf", "application/pdf", b"%PDF-1.4 quote"),
        ("scan", "image/png", b"\x89PNG\r\n\x1a\n...."),
        ("ใบเสนอราคา.txt", "text/plain", "ราคา 1,250 บาท\n"),
        ("data.bin", "application/x-custom", b"\x00\x01"),
    ]
    assert msg.get_body(("html",)) is not None and msg.get_body(("plain",)) is not None


def test_thai_names_subject_and_body_are_encoded() -> None:
    draft = replace(
        DRAFT,
        sender=Address("สมศรี ใจดี", "somsri@northwind.example"),
        to=(Address("สมชาย", "somchai@acme.co.th"),),
        cc=(),
        subject="ใบเสนอราคา เก้าอี้ 200 ตัว — ด่วน",
        text="เรียน คุณสมชาย\n\nตามที่ได้ตกลงกันไว้ " * 30,
    )
    done = compose(draft)
    assert done.raw.isascii()  # RFC 2047 words and a transfer encoding: any server takes it
    msg = read(done.raw)
    assert msg["Subject"] == "ใบเสนอราคา เก้าอี้ 200 ตัว — ด่วน"
    assert msg["From"] == "สมศรี ใจดี <somsri@northwind.example>"
    assert msg["To"].addresses[0].display_name == "สมชาย"
    assert unix(msg.get_content()) == draft.text + "\n"
    assert all(len(line) <= 78 for line in done.raw.split(b"\r\n"))


def test_idn_domain_goes_out_in_ascii() -> None:
    done = compose(replace(DRAFT, to=(Address("", "info@bücher.example"),), cc=()))
    assert done.to == ("info@xn--bcher-kva.example",)
    assert read(done.raw)["To"] == "info@xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("change", "header"),
    [
        ({"subject": "Quote\r\nBcc: everyone@example.com"}, "Subject"),
        ({"subject": "Quote\nBcc: x@example.com"}, "Subject"),
        ({"subject": "Quote\rX: y"}, "Subject"),
        ({"subject": "Quote\x00"}, "Subject"),
        ({"sender": Address("Alice\r\nBcc: x@example.com", "alice@northwind.example")}, "From"),
        ({"to": (Address("", "jane@acme.example\r\nBcc: x@example.com"),)}, "To"),
        ({"cc": (Address("Tom\n", "tom@acme.example"),)}, "Cc"),
        ({"parent_id": "a@b\r\nBcc: x@example.com"}, "In-Reply-To"),
        ({"parent_references": ("a@b\nX: y",)}, "References"),
        ({"attachments": (OutboundFile("a\r\nb.pdf", b"x"),)}, "attachment filename"),
        ({"extra_headers": (("Auto-Submitted", "auto-replied\r\nBcc: x@y"),)}, "Auto-Submitted"),
        ({"subject_tag": "[#L1-aaaaaaaa]\n"}, "Subject"),
    ],
)
def test_cr_lf_nul_in_any_header_is_refused_naming_it(
    change: dict[str, object], header: str
) -> None:
    with pytest.raises(ValidationError) as info:
        compose(replace(DRAFT, **change))  # type: ignore[arg-type]
    text = str(info.value)
    assert text.startswith(f"{header}: ") and "\n" not in text and "\r" not in text


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"to": ()}, "To: at least one recipient"),
        ({"to": (Address("", "not an address"),)}, "To: 'not an address' is not an address"),
        ({"to": (Address("", "a@b.example, c@d.example"),)}, "is not an address"),
        ({"to": (Address("", "ผู้ซื้อ@acme.example"),)}, "non-ASCII local part"),
        ({"cc": (Address("", "Jane <jane@acme.example>"),)}, "Cc: "),
        ({"id_domain": "not a domain"}, "Message-ID"),
        ({"token": "L42 bad"}, "Message-ID"),
        ({"text": "hello\x00"}, "NUL"),
        ({"extra_headers": (("Bad Header", "x"),)}, "not a header name"),
    ],
)
def test_bad_values_are_one_line(change: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        compose(replace(DRAFT, **change))  # type: ignore[arg-type]
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_references_keep_the_root_and_the_newest() -> None:
    refs = tuple(f"r{i}@acme.example" for i in range(40))
    kept = references_for("parent@acme.example", refs)
    assert len(kept) == MAX_REFERENCES
    assert kept[0] == "r0@acme.example" and kept[-1] == "parent@acme.example"
    assert kept[1:-1] == refs[-(MAX_REFERENCES - 2) :]
    # Duplicates once; ids that cannot be written back between brackets are dropped.
    assert references_for("p@x", ("p@x", "a b@x", "<c>@x", "nobracket", "ok@x")) == ("ok@x", "p@x")
    assert references_for(None, ()) == ()


def test_extra_headers_ride_along() -> None:
    done = compose(replace(DRAFT, extra_headers=(("Auto-Submitted", "auto-replied"),)))
    assert read(done.raw)["Auto-Submitted"] == "auto-replied"


def test_no_parent_means_no_threading_headers() -> None:
    done = compose(replace(DRAFT, parent_id=None, parent_references=()))
    msg = read(done.raw)
    assert msg["In-Reply-To"] is None and msg["References"] is None


def test_message_ids_are_unique_by_default() -> None:
    fields = {n: getattr(DRAFT, n) for n in DRAFT.__dataclass_fields__ if n != "unique"}
    first, second = compose(Draft(**fields)), compose(Draft(**fields))  # type: ignore[arg-type]
    assert first.message_id != second.message_id
    assert SIGNER.find([first.message_id, second.message_id]) == [42]
    assert message_id(TOKEN, "NorthWind.Example", "x1") == f"{TOKEN}.x1@northwind.example"
