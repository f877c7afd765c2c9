"""A realistic demo sales inbox as a Maildir, so leadmail can be tried without a real mailbox.

The messages cover what a sales mailbox really receives — new enquiries (free-mail, attachment,
HTML), a web-form relay, a reply thread, a bounce, an out-of-office, a newsletter and a Thai
enquiry in windows-874 — so every classifier and threading path has something to act on.

Everything is deterministic (no clock, no randomness): the same files with the same names and
bytes on every run, so writing the inbox twice changes nothing and tests can rely on the content.
Domains are example domains except the two a demo cannot do without: ``gmail.com`` (free-mail
detection) and ``example.co.th`` (a Thai company domain).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path

__all__ = ["OUR_ADDRESS", "THAI_BODY", "THAI_SUBJECT", "write_demo_inbox"]

OUR_ADDRESS = "sales@northwind.example"
_TO_US = f"Northwind Supplies Sales <{OUR_ADDRESS}>"
_OUR_MX = "mx.northwind.example"
# Maildir's "hostname" part of a unique name; fixed so names do not depend on the machine.
_MAILDIR_HOST = "leadmail-demo"


@dataclass(frozen=True, slots=True)
class _DemoMessage:
    """One message of the demo inbox: when it arrived (names the file) and its wire bytes."""

    received: datetime
    raw: bytes


def _tz(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


def _new_message(
    *,
    sent: datetime,
    sender: str,
    envelope_from: str,
    relay: tuple[str, str] | None,
    subject: str | None,
    message_id: str,
    to: str = _TO_US,
    cc: str | None = None,
    reply_to: str | None = None,
    in_reply_to: str | None = None,
    references: Iterable[str] = (),
    extra: Iterable[tuple[str, str]] = (),
) -> EmailMessage:
    """The headers every delivered message carries, in the order an MTA and MUA leave them.

    ``relay`` is (host, documentation-range IP) of the sending server, or None for mail our MX
    generated itself; our MX adds Return-Path and Received on delivery, so they come first.
    """
    msg = EmailMessage(policy=SMTP)
    msg["Return-Path"] = f"<{envelope_from}>"
    if relay is not None:
        host, ip = relay
        arrived = sent + timedelta(seconds=4)
        msg["Received"] = (
            f"from {host} ({host} [{ip}]) by {_OUR_MX} (Postfix) with ESMTPS "
            f"for <{OUR_ADDRESS}>; {format_datetime(arrived.astimezone(UTC))}"
        )
    msg["From"] = sender
    msg["To"] = to
    if cc is not None:
        msg["Cc"] = cc
    if reply_to is not None:
        msg["Reply-To"] = reply_to
    if subject is not None:
        msg["Subject"] = subject
    msg["Date"] = format_datetime(sent)
    msg["Message-ID"] = message_id
    if in_reply_to is not None:
        msg["In-Reply-To"] = in_reply_to
    refs = list(references)
    if refs:
        msg["References"] = " ".join(refs)
    for name, value in extra:
        msg[name] = value
    return msg


def _fix_boundaries(msg: EmailMessage, tag: str) -> None:
    """Give every multipart a boundary derived from ``tag``: the generator's are random."""
    for index, part in enumerate(msg.walk()):
        # message/delivery-status also holds a list of parts, but takes no boundary.
        if part.get_content_maintype() == "multipart":
            part.set_boundary(f"=_northwind_demo_{tag}_{index}")


def _to_bytes(msg: EmailMessage, tag: str) -> bytes:
    _fix_boundaries(msg, tag)
    return msg.as_bytes(policy=SMTP)


def _rfc2047_b(text: str, charset: str, codec: str) -> str:
    """Encode ``text`` as B encoded-words in ``charset``, folded so each line stays short.

    Needed because the stdlib would re-encode any header it is given as UTF-8, and the point of
    the Thai message is a windows-874 header (the codec is ``cp874``; the label is not an alias
    Python knows, which is exactly what the parser must cope with).
    """
    data = text.encode(codec)
    # cp874 is single-byte, so any split is on a character boundary; 30 bytes → 40 base64 chars.
    chunks = [data[i : i + 30] for i in range(0, len(data), 30)]
    words = [f"=?{charset}?B?{base64.b64encode(c).decode('ascii')}?=" for c in chunks]
    return "\r\n ".join(words)


def _insert_raw_headers(raw: bytes, headers: Iterable[tuple[str, str]], before: bytes) -> bytes:
    """Put already-encoded header lines into serialized ``raw`` just before header ``before``."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    new = [f"{name}: {value}".encode("ascii") for name, value in headers]
    at = next(i for i, line in enumerate(lines) if line.lower().startswith(before.lower() + b":"))
    return b"\r\n".join([*lines[:at], *new, *lines[at:]]) + sep + body


def _pdf(lines: list[str]) -> bytes:
    """A minimal but valid one-page PDF showing ``lines``: a realistic RFQ attachment, built here
    so the demo needs no binary file in the repository."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    text = "\n".join(f"({esc(line)}) Tj T*" for line in lines)
    stream = f"BT /F1 11 Tf 14 TL 56 790 Td\n{text}\nET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref_at,
    )
    return bytes(out)


# --- the messages -------------------------------------------------------------------------------


def _enquiry_cafes() -> _DemoMessage:
    sent = datetime(2026, 3, 2, 9, 14, 27, tzinfo=_tz(0))
    msg = _new_message(
        sent=sent,
        sender="Sarah Mitchell <sarah.mitchell@harbourcafes.example>",
        envelope_from="sarah.mitchell@harbourcafes.example",
        relay=("mail.harbourcafes.example", "192.0.2.41"),
        subject="Quote for compostable cups and lids for 6 sites",
        message_id="<20260302091427.7Q3F1A@mail.harbourcafes.example>",
    )
    msg.set_content(
        "Hello,\n\n"
        "I look after purchasing for Harbour Cafés, a group of six coffee shops\n"
        "along the south coast. We are moving all our takeaway packaging to\n"
        "compostable and would like a quote for the following, delivered monthly\n"
        "and split across our six sites:\n\n"
        "  - 8oz double-wall compostable cups: approx. 6,000 per month\n"
        "  - 12oz double-wall compostable cups: approx. 9,000 per month\n"
        "  - Matching CPLA lids for both sizes\n"
        "  - Kraft napkins, 2-ply: 20 cases per month\n\n"
        "Could you also let me know your lead times and whether you offer a fixed\n"
        "price for 12 months? We would like to switch supplier from April.\n\n"
        "Many thanks,\n"
        "Sarah Mitchell\n"
        "Operations & Purchasing Manager\n"
        "Harbour Cafés Ltd\n"
        "Tel: 01632 960 418\n"
    )
    return _DemoMessage(sent, _to_bytes(msg, "01"))


def _enquiry_gmail() -> _DemoMessage:
    sent = datetime(2026, 3, 2, 13, 40, 5, tzinfo=_tz(-5))
    msg = _new_message(
        sent=sent,
        sender="Daniel Okafor <d.okafor.demo@gmail.com>",
        envelope_from="d.okafor.demo@gmail.com",
        relay=("mail-sor-f41.google.example", "198.51.100.23"),
        subject="Office chairs and desks - price list?",
        message_id="<CAOk7dYq2u1mXz9p3vH0bR4sTn8LwQe5@mail.example.com>",
    )
    msg.set_content(
        "Hi there,\n\n"
        "I'm opening a small co-working space in Columbus next month (about 30\n"
        "desks) and found you through a search. Do you have a price list for\n"
        "ergonomic office chairs and sit-stand desks? I'd need around 30 of each,\n"
        "plus a few lockers if you do those.\n\n"
        "I don't have a company website yet, so email is best. My number is (614)\n"
        "555-0187.\n\n"
        "Thanks,\n"
        "Dan Okafor\n"
    )
    return _DemoMessage(sent, _to_bytes(msg, "02"))


def _enquiry_rfq() -> _DemoMessage:
    sent = datetime(2026, 3, 3, 8, 5, 51, tzinfo=_tz(8))
    msg = _new_message(
        sent=sent,
        sender="Karen Liu <karen.liu@brightlane.example>",
        envelope_from="karen.liu@brightlane.example",
        relay=("smtp.brightlane.example", "203.0.113.77"),
        subject="RFQ-2026-0142: cleaning consumables for Q2",
        message_id="<a3f9c2e1-5b7d-4e2a-9c61-0f8e2d4b7a19@brightlane.example>",
    )
    msg.set_content(
        "Dear Northwind Supplies team,\n\n"
        "Brightlane Facilities Management invites you to quote for cleaning\n"
        "consumables for our Q2 contract period (1 April to 30 June 2026). The\n"
        "attached RFQ lists the items, estimated quantities and delivery sites.\n\n"
        "Please return your quotation by Friday 13 March 2026, quoting reference\n"
        "RFQ-2026-0142, including unit prices, minimum order quantities and\n"
        "delivery charges.\n\n"
        "Kind regards,\n"
        "Karen Liu\n"
        "Procurement Officer, Brightlane Facilities Management Pte. Ltd.\n"
        "+65 6555 0142\n"
    )
    msg.add_attachment(
        _pdf(
            [
                "Brightlane Facilities Management Pte. Ltd.",
                "REQUEST FOR QUOTATION  RFQ-2026-0142",
                "Issued: 3 March 2026    Closing: 13 March 2026",
                "",
                "Item  Description                          Est. qty / month",
                "1     Nitrile gloves, powder-free, size M  400 boxes (100)",
                "2     Nitrile gloves, powder-free, size L  300 boxes (100)",
                "3     Centrefeed paper rolls, 2-ply        250 rolls",
                "4     Heavy-duty bin liners, 120 L         120 packs (50)",
                "5     Hand soap refill, 5 L                80 bottles",
                "",
                "Delivery: 4 sites, Singapore. Quote unit prices excl. GST.",
                "Contact: Karen Liu, karen.liu@brightlane.example",
            ]
        ),
        maintype="application",
        subtype="pdf",
        filename="RFQ-2026-0142.pdf",
    )
    return _DemoMessage(sent, _to_bytes(msg, "03"))


def _enquiry_html() -> _DemoMessage:
    sent = datetime(2026, 3, 3, 15, 22, 9, tzinfo=_tz(1))
    msg = _new_message(
        sent=sent,
        sender="Elena Marsh <elena.marsh@lumenhotels.example>",
        envelope_from="elena.marsh@lumenhotels.example",
        relay=("mail.lumenhotels.example", "198.51.100.140"),
        subject="Amenity kits for 3 new hotels opening in May",
        message_id="<DB9PR04MB8421C3E07A1F5E2D9B@mail.lumenhotels.example>",
    )
    msg.set_content(
        "Good afternoon,\n\n"
        "Lumen Hotels is opening three new properties in May (420 rooms in total)\n"
        "and we are looking for a supplier of guest amenity kits:\n\n"
        "- Dental kit, shaving kit and vanity kit, recycled-card packaging\n"
        "- 250 ml refillable dispensers (shampoo, conditioner, body wash)\n"
        "- Our logo printed on the packaging, if possible\n\n"
        "Could you send samples and a price for an initial order of 15,000 kits?\n\n"
        "Best regards,\n"
        "Elena Marsh\n"
        "Head of Procurement, Lumen Hotels\n"
    )
    msg.add_alternative(
        '<!DOCTYPE html>\n<html><body style="font-family: Calibri, sans-serif">\n'
        "<p>Good afternoon,</p>\n"
        "<p>Lumen Hotels is opening <b>three new properties in May</b> (420 rooms in total)"
        " and we are looking for a supplier of guest amenity kits:</p>\n"
        "<ul>\n<li>Dental kit, shaving kit and vanity kit, recycled-card packaging</li>\n"
        "<li>250&nbsp;ml refillable dispensers (shampoo, conditioner, body wash)</li>\n"
        "<li>Our logo printed on the packaging, if possible</li>\n</ul>\n"
        "<p>Could you send samples and a price for an initial order of"
        " <b>15,000 kits</b>?</p>\n"
        "<p>Best regards,<br>\n<b>Elena Marsh</b><br>\nHead of Procurement, Lumen Hotels<br>\n"
        '<a href="https://www.lumenhotels.example/">www.lumenhotels.example</a></p>\n'
        "</body></html>\n",
        subtype="html",
    )
    return _DemoMessage(sent, _to_bytes(msg, "04"))


def _web_form() -> _DemoMessage:
    sent = datetime(2026, 3, 4, 10, 31, 44, tzinfo=_tz(0))
    msg = _new_message(
        sent=sent,
        sender="Northwind Supplies Website <no-reply@forms.northwind.example>",
        envelope_from="bounces@forms.northwind.example",
        relay=("forms.northwind.example", "192.0.2.10"),
        subject="New quote request from the website: Tom Becker",
        message_id="<form-20260304103144-8812@forms.northwind.example>",
        reply_to="Tom Becker <tom.becker@beckerlogistics.example>",
        extra=[("X-Form-Name", "Request a quote")],
    )
    msg.set_content(
        'A visitor submitted the "Request a quote" form on northwind.example.\n\n'
        "Name: Tom Becker\n"
        "Email: tom.becker@beckerlogistics.example\n"
        "Phone: (614) 555-0142\n"
        "Company: Becker Logistics Inc.\n"
        "Message: We run two warehouses in Ohio and go through about 40 rolls\n"
        "of pallet stretch wrap and 10 coils of PET strapping a week. Looking for\n"
        "a better price on a 12-month contract. Please call or email.\n\n"
        "--\n"
        "Submitted 4 March 2026 10:31 UTC from https://northwind.example/quote\n"
    )
    return _DemoMessage(sent, _to_bytes(msg, "05"))


_GREENLEAF_FIRST_ID = "<20260302190512.GL7781@mail.greenleafmarkets.example>"
_GREENLEAF_SUBJECT = "Shelf labels and price tag stock"


def _thread_first() -> _DemoMessage:
    sent = datetime(2026, 3, 2, 11, 5, 12, tzinfo=_tz(-8))
    msg = _new_message(
        sent=sent,
        sender="Priya Nair <priya.nair@greenleafmarkets.example>",
        envelope_from="priya.nair@greenleafmarkets.example",
        relay=("mail.greenleafmarkets.example", "203.0.113.15"),
        subject=_GREENLEAF_SUBJECT,
        message_id=_GREENLEAF_FIRST_ID,
    )
    msg.set_content(
        "Hi,\n\n"
        "Greenleaf Markets runs 14 grocery stores in Oregon and Washington. We're\n"
        "reviewing our supplier for shelf-edge labels and price tag stock. Could\n"
        "you quote for:\n\n"
        "  - Direct thermal shelf labels, 58 x 40 mm, 50,000 per month\n"
        "  - Clear label holders for 39 mm shelf edges, 5,000 (one-off)\n\n"
        "Delivery would be to our distribution centre in Portland.\n\n"
        "Thanks,\n"
        "Priya Nair\n"
        "Category Buyer, Store Supplies\n"
        "Greenleaf Markets\n"
    )
    return _DemoMessage(sent, _to_bytes(msg, "06"))


def _thread_follow_up() -> _DemoMessage:
    sent = datetime(2026, 3, 4, 9, 48, 30, tzinfo=_tz(-8))
    msg = _new_message(
        sent=sent,
        sender="Priya Nair <priya.nair@greenleafmarkets.example>",
        envelope_from="priya.nair@greenleafmarkets.example",
        relay=("mail.greenleafmarkets.example", "203.0.113.15"),
        subject=f"Re: {_GREENLEAF_SUBJECT}",
        message_id="<20260304174830.GL8035@mail.greenleafmarkets.example>",
        in_reply_to="<our-reply-1@northwind.example>",
        references=[_GREENLEAF_FIRST_ID, "<our-reply-1@northwind.example>"],
    )
    msg.set_content(
        "Hi Mark,\n\n"
        "Thanks for the quick quote. The label price works for us. Could you add\n"
        "200 rolls of 80 mm thermal receipt paper per month to the same order,\n"
        "and confirm you can deliver to Portland on a fixed day each week?\n\n"
        "If so we can sign off this week.\n\n"
        "Priya\n\n"
        "On Tue, 3 Mar 2026 at 09:12, Mark Hansen <sales@northwind.example> wrote:\n"
        "> Hi Priya,\n"
        ">\n"
        "> Thank you for your enquiry. Please find our prices below:\n"
        "> - Direct thermal shelf labels 58 x 40 mm: USD 11.40 per 1,000\n"
        "> - Clear label holders 39 mm: USD 0.38 each\n"
        ">\n"
        "> Best regards,\n"
        "> Mark Hansen, Northwind Supplies\n"
    )
    return _DemoMessage(sent, _to_bytes(msg, "07"))


def _thread_colleague() -> _DemoMessage:
    sent = datetime(2026, 3, 3, 8, 20, 2, tzinfo=_tz(-8))
    msg = _new_message(
        sent=sent,
        sender="James Whitfield <james.whitfield@greenleafmarkets.example>",
        envelope_from="james.whitfield@greenleafmarkets.example",
        relay=("mail.greenleafmarkets.example", "203.0.113.15"),
        subject=f"Re: {_GREENLEAF_SUBJECT}",
        message_id="<20260303162002.GL7902@mail.greenleafmarkets.example>",
        cc="Priya Nair <priya.nair@greenleafmarkets.example>",
        in_reply_to=_GREENLEAF_FIRST_ID,
        references=[_GREENLEAF_FIRST_ID],
    )
    msg.set_content(
        "Hello,\n\n"
        "Adding to Priya's request: I manage store operations at Greenleaf.\n"
        "Besides the Portland DC we'd need a second delivery point at our Tacoma\n"
        "DC from June, roughly a third of the volume. Please include that in your\n"
        "quote.\n\n"
        "Regards,\n"
        "James Whitfield\n"
        "Director of Store Operations, Greenleaf Markets\n\n"
        "-----Original Message-----\n"
        "From: Priya Nair <priya.nair@greenleafmarkets.example>\n"
        "Sent: Monday, March 2, 2026 11:05 AM\n"
        "To: sales@northwind.example\n"
        f"Subject: {_GREENLEAF_SUBJECT}\n\n"
        "Greenleaf Markets runs 14 grocery stores in Oregon and Washington. [...]\n"
    )
    return _DemoMessage(sent, _to_bytes(msg, "08"))


def _bounce() -> _DemoMessage:
    """A Postfix-style RFC 3464 delivery status notification for a reply we sent."""
    sent = datetime(2026, 3, 4, 11, 2, 17, tzinfo=_tz(0))
    failed = "tom.becker@beckerlogistics.example"
    msg = _new_message(
        sent=sent,
        sender="Mail Delivery System <MAILER-DAEMON@mx.northwind.example>",
        envelope_from="",
        relay=None,
        subject="Undelivered Mail Returned to Sender",
        message_id="<20260304110217.3C1D22A0F1@mx.northwind.example>",
        to=OUR_ADDRESS,
        extra=[("Auto-Submitted", "auto-replied"), ("MIME-Version", "1.0")],
    )
    msg["Content-Type"] = "multipart/report; report-type=delivery-status"

    human = EmailMessage(policy=SMTP)
    human.set_content(
        "This is the mail system at host mx.northwind.example.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n\n"
        "For further assistance, please send mail to postmaster.\n\n"
        "                   The mail system\n\n"
        f"<{failed}>: host\n"
        "    mx1.beckerlogistics.example[198.51.100.60] said: 550 5.1.1\n"
        f"    <{failed}>: Recipient address rejected: User\n"
        "    unknown in virtual mailbox table (in reply to RCPT TO command)\n",
        charset="us-ascii",
    )
    human["Content-Description"] = "Notification"

    # message/delivery-status is a list of header blocks: one per message, one per recipient.
    per_message = EmailMessage(policy=SMTP)
    per_message["Reporting-MTA"] = "dns; mx.northwind.example"
    per_message["X-Postfix-Queue-ID"] = "3C1D22A0F1"
    per_message["X-Postfix-Sender"] = f"rfc822; {OUR_ADDRESS}"
    per_message["Arrival-Date"] = "Wed, 4 Mar 2026 11:02:13 +0000"
    per_recipient = EmailMessage(policy=SMTP)
    per_recipient["Final-Recipient"] = f"rfc822; {failed}"
    per_recipient["Original-Recipient"] = f"rfc822;{failed}"
    per_recipient["Action"] = "failed"
    per_recipient["Status"] = "5.1.1"
    per_recipient["Remote-MTA"] = "dns; mx1.beckerlogistics.example"
    per_recipient["Diagnostic-Code"] = (
        f"smtp; 550 5.1.1 <{failed}>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    status = EmailMessage(policy=SMTP)
    status["Content-Description"] = "Delivery report"
    status["Content-Type"] = "message/delivery-status"
    status.attach(per_message)
    status.attach(per_recipient)

    headers = EmailMessage(policy=SMTP)
    headers.set_content(
        "Return-Path: <sales@northwind.example>\n"
        "From: Northwind Supplies Sales <sales@northwind.example>\n"
        f"To: Tom Becker <{failed}>\n"
        "Subject: Re: New quote request from the website: Tom Becker\n"
        "Date: Wed, 4 Mar 2026 11:02:12 +0000\n"
        "Message-ID: <our-reply-2@northwind.example>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: text/plain; charset="utf-8"\n',
        subtype="rfc822-headers",
        charset="us-ascii",
    )
    headers["Content-Description"] = "Undelivered Message Headers"

    for part in (human, status, headers):
        # Subparts carry no MIME-Version of their own.
        del part["MIME-Version"]
        msg.attach(part)
    return _DemoMessage(sent, _to_bytes(msg, "09"))


def _out_of_office() -> _DemoMessage:
    sent = datetime(2026, 3, 5, 7, 30, 11, tzinfo=_tz(0))
    subject = "Quote for compostable cups and lids for 6 sites"
    msg = _new_message(
        sent=sent,
        sender="Sarah Mitchell <sarah.mitchell@harbourcafes.example>",
        envelope_from="sarah.mitchell@harbourcafes.example",
        relay=("mail.harbourcafes.example", "192.0.2.41"),
        subject=f"Automatic reply: Re: {subject}",
        message_id="<20260305073011.8K2B7C@mail.harbourcafes.example>",
        in_reply_to="<our-reply-3@northwind.example>",
        references=["<our-reply-3@northwind.example>"],
        extra=[("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")],
    )
    msg.set_content(
        "Thank you for your email. I am out of the office until Monday 16 March\n"
        "with limited access to email.\n\n"
        "For urgent orders please contact our office on 01632 960 400 or\n"
        "orders@harbourcafes.example.\n\n"
        "Sarah Mitchell\n"
    )
    return _DemoMessage(sent, _to_bytes(msg, "10"))


def _newsletter() -> _DemoMessage:
    sent = datetime(2026, 3, 5, 6, 0, 3, tzinfo=_tz(0))
    msg = _new_message(
        sent=sent,
        sender="Packaging Today <news@packagingtoday.example>",
        envelope_from="bounce-a81f3c@mailer.packagingtoday.example",
        relay=("mailer.packagingtoday.example", "198.51.100.201"),
        subject="Packaging Today Weekly: 5 trends in sustainable packaging for 2026",
        message_id="<weekly-2026-10.a81f3c@mailer.packagingtoday.example>",
        to=OUR_ADDRESS,
        extra=[
            ("List-Id", "Packaging Today Weekly <weekly.packagingtoday.example>"),
            (
                "List-Unsubscribe",
                "<https://packagingtoday.example/u/a81f3c>, "
                "<mailto:unsubscribe+a81f3c@packagingtoday.example>",
            ),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("Precedence", "bulk"),
        ],
    )
    msg.set_content(
        "PACKAGING TODAY WEEKLY - Issue 10, March 2026\n\n"
        "1. Refill and reuse: why hospitality is leaving single-use behind\n"
        "2. Mono-material films are finally ready for frozen food\n"
        "3. Fibre-based cups: what the new standards mean for buyers\n"
        "4. Digital watermarks and the sorting line\n"
        "5. Right-sizing: cutting void fill by a third\n\n"
        "Read online: https://packagingtoday.example/weekly/2026-10\n\n"
        "You are receiving this because you subscribed at packagingtoday.example.\n"
        "Unsubscribe: https://packagingtoday.example/u/a81f3c\n"
    )
    msg.add_alternative(
        "<!DOCTYPE html>\n<html><body>\n"
        "<h1>Packaging Today Weekly</h1>\n<p>Issue 10, March 2026</p>\n<ol>\n"
        "<li>Refill and reuse: why hospitality is leaving single-use behind</li>\n"
        "<li>Mono-material films are finally ready for frozen food</li>\n"
        "<li>Fibre-based cups: what the new standards mean for buyers</li>\n"
        "<li>Digital watermarks and the sorting line</li>\n"
        "<li>Right-sizing: cutting void fill by a third</li>\n</ol>\n"
        '<p><a href="https://packagingtoday.example/weekly/2026-10">Read online</a> |'
        ' <a href="https://packagingtoday.example/u/a81f3c">Unsubscribe</a></p>\n'
        '<img src="https://packagingtoday.example/o/a81f3c.gif" width="1" height="1" alt="">\n'
        "</body></html>\n",
        subtype="html",
    )
    return _DemoMessage(sent, _to_bytes(msg, "11"))


THAI_SUBJECT = "สอบถามราคาถุงมือไนไตรล์ สำหรับโรงงานอาหาร"
THAI_SENDER_NAME = "สมชาย ใจดี"
THAI_BODY = (
    "เรียน ฝ่ายขาย Northwind Supplies\n\n"
    "บริษัท สยามเฟรช ฟู้ดส์ จำกัด สนใจสั่งซื้อถุงมือไนไตรล์ชนิดไม่มีแป้ง\n"
    "ไซซ์ M และ L จำนวนประมาณ 200 กล่องต่อเดือน\n"
    "สำหรับโรงงานแปรรูปอาหารที่จังหวัดสมุทรสาคร\n\n"
    "รบกวนส่งใบเสนอราคา พร้อมระยะเวลาจัดส่งและเงื่อนไขการชำระเงินให้ด้วยครับ\n\n"
    "ขอบคุณครับ\n"
    "สมชาย ใจดี\n"
    "ผู้จัดการฝ่ายจัดซื้อ\n"
    "บริษัท สยามเฟรช ฟู้ดส์ จำกัด\n"
    "โทร 02-555-0174\n"
)


def _thai_enquiry() -> _DemoMessage:
    """Outlook on Thai Windows still sends windows-874; body and headers are encoded by hand
    because the stdlib neither knows that label nor keeps a header's charset."""
    sent = datetime(2026, 3, 4, 14, 12, 40, tzinfo=_tz(7))
    msg = _new_message(
        sent=sent,
        sender="placeholder@example.co.th",  # replaced below by the windows-874 From
        envelope_from="somchai@example.co.th",
        relay=("mail.example.co.th", "203.0.113.208"),
        subject=None,
        message_id="<000001dcab3f$4e2a1c70$ea7e5550$@example.co.th>",
        extra=[("X-Mailer", "Microsoft Outlook 16.0")],
    )
    del msg["From"]
    # Text in base64 is in canonical form: CRLF line ends (RFC 2045 section 6.8).
    msg.set_content(
        THAI_BODY.replace("\n", "\r\n").encode("cp874"),
        maintype="text",
        subtype="plain",
        cte="base64",
        params={"charset": "windows-874"},
    )
    raw = _to_bytes(msg, "12")
    sender = f"{_rfc2047_b(THAI_SENDER_NAME, 'windows-874', 'cp874')} <somchai@example.co.th>"
    subject = _rfc2047_b(THAI_SUBJECT, "windows-874", "cp874")
    raw = _insert_raw_headers(raw, [("From", sender)], before=b"To")
    raw = _insert_raw_headers(raw, [("Subject", subject)], before=b"Date")
    return _DemoMessage(sent, raw)


_BUILDERS: tuple[Callable[[], _DemoMessage], ...] = (
    _enquiry_cafes,
    _enquiry_gmail,
    _enquiry_rfq,
    _enquiry_html,
    _web_form,
    _thread_first,
    _thread_follow_up,
    _thread_colleague,
    _bounce,
    _out_of_office,
    _newsletter,
    _thai_enquiry,
)


def _maildir_name(number: int, message: _DemoMessage) -> str:
    """Maildir unique name ``<time>.<unique>.<host>``, from the arrival time and a fixed number
    instead of clock, pid and hostname, so every run names each message the same."""
    epoch = int(message.received.timestamp())
    return f"{epoch}.M{number:06d}P0Q{number}.{_MAILDIR_HOST}"


def write_demo_inbox(path: Path) -> int:
    """Write the demo inbox as a Maildir at ``path`` and return how many messages it holds.

    Messages go to ``new/`` by Maildir delivery (write in ``tmp/``, rename into ``new/``), so a
    reader never sees half a file. Re-running rewrites nothing that is already there, and skips a
    message a mail client has since moved to ``cur/`` (``<name>:2,<flags>``), so it never
    duplicates mail.
    """
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    messages = [build() for build in _BUILDERS]
    seen_in_cur = {entry.name.split(":", 1)[0] for entry in (path / "cur").iterdir()}
    for number, message in enumerate(messages, start=1):
        name = _maildir_name(number, message)
        target = path / "new" / name
        if name in seen_in_cur:
            continue
        if target.exists() and target.read_bytes() == message.raw:
            continue
        staging = path / "tmp" / name
        staging.write_bytes(message.raw)
        os.replace(staging, target)
    return len(messages)
