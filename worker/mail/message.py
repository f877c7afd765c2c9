"""The value a parsed inbound message becomes: everything later steps need, nothing mutable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox: display name and address (domain lower-cased, local part kept)."""

    name: str
    email: str

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attached or inline file; ``filename`` is decoded but not yet made store-safe."""

    filename: str
    content_type: str
    payload: bytes
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True, slots=True)
class ReportPart:
    """A machine-readable part that classify looks into (DSN, ARF, MDN, returned headers).

    ``content_type`` is lower-case (``message/delivery-status``, ``message/feedback-report``,
    ``message/disposition-notification``, ``message/rfc822``, ``text/rfc822-headers``);
    ``text`` is the part's decoded text (for message/rfc822, its header block).
    """

    content_type: str
    text: str


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A parsed message. Ids are bare (no angle brackets); header names are lower-case."""

    message_id: str
    content_hash: str  # sha256 hex of the normalised bytes (BOM/junk stripped, LF endings)
    size: int
    subject: str = ""
    from_: tuple[Address, ...] = ()
    sender: Address | None = None
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    date: datetime | None = None  # timezone-aware, UTC
    text: str = ""
    html: str = ""  # sanitised
    attachments: tuple[Attachment, ...] = ()
    content_type: str = "text/plain"  # top-level, lower-case
    report_type: str = ""  # report-type parameter of a multipart/report, lower-case
    report_parts: tuple[ReportPart, ...] = ()
    charsets: tuple[str, ...] = ()  # charsets declared by the text parts, lower-case
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # decoded values
    defects: tuple[str, ...] = ()
    message_id_synthesized: bool = False

    def header(self, name: str) -> str:
        """First value of a header, or ''."""
        values = self.headers.get(name.lower(), ())
        return values[0] if values else ""

    @property
    def from_address(self) -> Address | None:
        return self.from_[0] if self.from_ else None


@dataclass(frozen=True, slots=True)
class RawMessage:
    """Bytes as a source delivered them, and where they came from."""

    data: bytes
    source: str  # a path, path#N inside an mbox, or imap://account/folder;uid
    account: str
    folder: str | None = None
    uid: int | None = None
    # The message's real size when ``data`` holds only part of it (the headers of an
    # over-size message a server reported): such a message is quarantined, never processed.
    size: int | None = None
