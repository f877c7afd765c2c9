"""Small builders shared by the integration tests."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime


def make_mail(
    *,
    sender: str = "Jane Buyer <jane@acme-industrial.example>",
    to: str = "sales@northwind.example",
    subject: str = "Quote for 200 office chairs",
    body: str = "Hello, could you send a quote for 200 chairs?\n",
    message_id: str | None = "<enquiry-1@acme-industrial.example>",
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
    cc: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, 2, 9, 30, tzinfo=UTC))
    if message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def enquiries(count: int, start: int = 0, tag: str = "enquiry") -> list[bytes]:
    """``count`` new enquiries from different senders, Message-ID <tag-N@firmN.example>."""
    return [
        make_mail(
            sender=f"Buyer {n} <buyer{n}@firm{n}.example>",
            message_id=f"<{tag}-{n}@firm{n}.example>",
            subject=f"Quote request {n}",
        )
        for n in range(start, start + count)
    ]
