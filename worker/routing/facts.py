"""What the rule engine decides on: the facts about a lead and its message, and routing state.

Values only, imported by every other routing module and importing none of them, so the engine,
the conditions and the strategies share these types without an import cycle.

``LEAD_FIELDS`` is the one list of the lead fields a rule may test: each rule-file name with
the lead columns it reads and how it reads them. The conditions' vocabulary (which ``field:``
names a rule file may use), the columns the assignment reads for an existing lead and the
mapping of a lead row onto ``LeadFacts`` are all derived from it, so a new field is one entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.mail.addresses import email_key
from worker.mail.language import guess_language
from worker.mail.message import InboundMessage

LeadRow = Mapping[str, Any]
"""A lead's columns by column name (a row read from ``leads``, or one about to be inserted)."""


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """The lead's fields by rule-file name; custom fields as a Mapping under ``custom``."""

    fields: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What rules may test about the message that created the lead; header names lower-case."""

    sender: str = ""
    sender_domain: str = ""
    subject: str = ""
    body: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    charset: tuple[str, ...] = ()
    language: str = ""
    has_attachment: bool = False
    attachment_names: tuple[str, ...] = ()
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoutingState:
    """What the strategies need to know from storage, read by the caller before deciding."""

    open_leads: Mapping[str, int] = field(default_factory=dict)
    rotation: Mapping[str, int] = field(default_factory=dict)
    assigned: Mapping[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeadField:
    """One lead fact: its name in ``LeadFacts.fields``, the lead columns it needs, its reader."""

    name: str
    columns: tuple[str, ...]
    read: Callable[[LeadRow], object]


def _column(name: str, column: str | None = None) -> LeadField:
    """A field that is one column as stored (absent = None)."""
    column = column or name

    def read(row: LeadRow) -> object:
        return row.get(column)

    return LeadField(name, (column,), read)


def _email(row: LeadRow) -> object:
    return row.get("email") or None


def _email_domain(row: LeadRow) -> object:
    """The domain of the normalised address (lower case, IDNA as the lead's email_key)."""
    email = row.get("email") or ""
    return email_key(email).rpartition("@")[2] or None if email else None


def _is_organization(row: LeadRow) -> object:
    return bool(row.get("is_organization"))


def _custom(row: LeadRow) -> object:
    return dict(row.get("custom_fields") or {})


LEAD_FIELDS: Mapping[str, LeadField] = {
    f.name: f
    for f in (
        _column("company", "company_name"),
        LeadField("email", ("email",), _email),
        LeadField("email_domain", ("email",), _email_domain),
        _column("name", "person_name"),
        _column("status"),
        _column("source"),
        _column("lead_type"),
        _column("market_segment"),
        _column("industry"),
        _column("territory"),
        _column("gender"),
        LeadField("is_organization", ("is_organization",), _is_organization),
        _column("phone"),
    )
}
"""The lead fields a rule's ``field:`` may name, by that name (custom fields aside)."""

CUSTOM = "custom"
"""Where LeadFacts keeps the custom fields; rules name one as ``custom.<key>``."""
CUSTOM_FIELDS = LeadField(CUSTOM, ("custom_fields",), _custom)

_READERS = (*LEAD_FIELDS.values(), CUSTOM_FIELDS)
LEAD_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(c for f in _READERS for c in f.columns))
"""The lead columns ``lead_facts`` reads: what to select for an existing lead."""

MESSAGE_FACTS = frozenset(f.name for f in dataclasses.fields(MessageFacts)) - {"headers"}
"""The message facts a rule's ``message:`` may name (headers are tested with ``header:``)."""


def lead_facts(row: LeadRow) -> LeadFacts:
    """The engine's view of a lead from its columns (``LEAD_COLUMNS``; an absent one = None)."""
    return LeadFacts({reader.name: reader.read(row) for reader in _READERS})


def message_facts(msg: InboundMessage, language: bool = True) -> MessageFacts:
    """The rules' view of a message. Made by the parse worker in a bulk ingest (language
    included: a few microseconds there), so the committing process, the bottleneck, does not."""
    sender = email_key(msg.from_address.email) if msg.from_address else ""
    return MessageFacts(
        sender=sender,
        sender_domain=sender.rpartition("@")[2],
        subject=msg.subject,
        body=msg.text,
        to=tuple(email_key(a.email) for a in msg.to),
        cc=tuple(email_key(a.email) for a in msg.cc),
        charset=msg.charsets,
        language=guess_language(msg) if language else "",
        has_attachment=any(not a.inline for a in msg.attachments),
        attachment_names=tuple(a.filename for a in msg.attachments if a.filename),
        # The message's own mapping (never mutated): pickled once with it, not copied.
        headers=msg.headers,
    )
