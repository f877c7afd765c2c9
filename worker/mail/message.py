"""The value a parsed inbound message becomes: everything later steps need, nothing mutable."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker.mail.charsets import clean


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

    def __post_init__(self) -> None:
        # Every text of a message ends up in a database column or on a terminal. PostgreSQL
        # refuses U+0000 in text and psycopg cannot encode a lone surrogate, while SQLite takes
        # both: cleaned here, where every InboundMessage is made (dataclasses.replace included),
        # a message has one outcome on both backends, whichever field a new feature stores.
        for name in _field_names(type(self)):
            value = getattr(self, name)
            cleaned = storable(value)
            if cleaned is not value:
                object.__setattr__(self, name, cleaned)

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


def storable(value: Any) -> Any:
    """``value`` with NULs and lone surrogates replaced in every str it holds (U+FFFD).

    Walks str, tuples, mappings and dataclasses (Address, Attachment, ReportPart); returns the
    same object when nothing needed cleaning, so a clean message is not copied.
    """
    kind = type(value)
    if kind is str or isinstance(value, str):
        return value if value.isascii() and "\x00" not in value else clean(value)
    if kind in _HOLDS_NO_TEXT:
        return value
    if kind is tuple or isinstance(value, tuple):
        return _storable_tuple(value)
    if isinstance(value, Mapping):
        items = value.items()
        for key, item in items:  # InboundMessage.headers: str keys, tuples of str
            if storable(key) is not key or storable(item) is not item:
                return {storable(k): storable(v) for k, v in items}
        return value
    names = _field_names(kind)
    if names:
        changes = {}
        for name in names:
            old = getattr(value, name)
            new = storable(old)
            if new is not old:
                changes[name] = new
        return dataclasses.replace(value, **changes) if changes else value
    return value


# Exact types storable() returns as they are (a datetime, an attachment's payload …).
_HOLDS_NO_TEXT = frozenset({type(None), bool, int, float, bytes, datetime})


def _storable_tuple(value: tuple[Any, ...]) -> tuple[Any, ...]:
    # Most items are clean str: tested inline, and nothing is copied until one is not.
    for index, item in enumerate(value):
        if type(item) is str and item.isascii() and "\x00" not in item:
            continue
        new = storable(item)
        if new is not item:
            return (*value[:index], new, *(storable(rest) for rest in value[index + 1 :]))
    return value


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """Field names of a dataclass type; () for any other type (remembered per type)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        fields = dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()
        names = _FIELD_NAMES[cls] = tuple(item.name for item in fields)
    return names
