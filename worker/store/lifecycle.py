"""Merge and erase: the statements that move a lead's things onto another lead, or delete
a lead with everything of it and keep only salted digests of what it was.

services/lifecycle.py decides (refusals, what to print); these only read and write, on the
caller's connection, inside its one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from worker.store import tables

# The reason intake gives mail whose sender or Message-ID was erased.
ERASED_REASON = "erased"

_leads = tables.leads
_messages = tables.messages
_contacts = tables.contacts
_addresses = tables.addresses
_comments = tables.comments
_activities = tables.activities
_status_changes = tables.status_changes
_opportunities = tables.opportunities
_quotations = tables.quotations
_customers = tables.customers
_attachments = tables.attachments
_participants = tables.participants
_quarantine = tables.quarantine
_erased = tables.erased_keys
_meta = tables.meta
_outbox = tables.outbox

# What a merge moves, by the name it is reported under; participants are moved apart
# (their (lead_id, email_key) is unique).
_MOVED = {
    "messages": _messages,
    "contacts": _contacts,
    "addresses": _addresses,
    "notes": _comments,
    "activities": _activities,
    "status_changes": _status_changes,
    "opportunities": _opportunities,
    "quotations": _quotations,
    "customers": _customers,
    "attachments": _attachments,
    "outbox": _outbox,
}


@dataclass(frozen=True, slots=True)
class LeadRef:
    """What merge and erase need to know of a lead."""

    id: int
    email: str | None
    email_key: str | None
    person_name: str | None
    merged_into_id: int | None


def lead_ref(conn: Connection, lead_id: int) -> LeadRef | None:
    row = conn.execute(
        select(
            _leads.c.id,
            _leads.c.email,
            _leads.c.email_key,
            _leads.c.person_name,
            _leads.c.merged_into_id,
        ).where(_leads.c.id == lead_id)
    ).first()
    return LeadRef(*row) if row is not None else None


def merge(conn: Connection, keep: int, other: int) -> dict[str, int]:
    """Move everything of ``other`` onto ``keep``; returns how many of each moved."""
    moved: dict[str, int] = {}
    # One contact per address and lead: OTHER's contact for an address KEEP already has
    # goes, and KEEP's primary contact stays the only primary.
    kept_contacts = select(_contacts.c.email_key).where(
        _contacts.c.lead_id == keep, _contacts.c.email_key.is_not(None)
    )
    conn.execute(
        delete(_contacts).where(
            _contacts.c.lead_id == other, _contacts.c.email_key.in_(kept_contacts)
        )
    )
    kept_primary = conn.scalar(
        select(_contacts.c.id).where(_contacts.c.lead_id == keep, _contacts.c.is_primary.is_(True))
    )
    if kept_primary is not None:
        conn.execute(update(_contacts).where(_contacts.c.lead_id == other).values(is_primary=False))
    for name, table in _MOVED.items():
        result = conn.execute(update(table).where(table.c.lead_id == other).values(lead_id=keep))
        moved[name] = result.rowcount
    kept_keys = select(_participants.c.email_key).where(_participants.c.lead_id == keep)
    conn.execute(
        delete(_participants).where(
            _participants.c.lead_id == other, _participants.c.email_key.in_(kept_keys)
        )
    )
    result = conn.execute(
        update(_participants).where(_participants.c.lead_id == other).values(lead_id=keep)
    )
    moved["participants"] = result.rowcount
    # Leads merged into OTHER before, or related to it, now point at KEEP.
    conn.execute(update(_leads).where(_leads.c.merged_into_id == other).values(merged_into_id=keep))
    conn.execute(
        update(_leads).where(_leads.c.related_lead_id == other).values(related_lead_id=keep)
    )
    return moved


def has_contact(conn: Connection, lead_id: int, email_key: str) -> bool:
    found = conn.scalar(
        select(_contacts.c.id).where(
            _contacts.c.lead_id == lead_id, _contacts.c.email_key == email_key
        )
    )
    return found is not None


def add_contact(
    conn: Connection, lead_id: int, *, name: str | None, email: str, email_key: str, now: datetime
) -> None:
    conn.execute(
        insert(_contacts).values(
            lead_id=lead_id, name=name, email=email, email_key=email_key, created_at=now
        )
    )


def mark_merged(conn: Connection, other: int, keep: int, now: datetime) -> str | None:
    """OTHER becomes a pointer to KEEP; returns the executive it was assigned to.

    Unassigning it lets the lead_load triggers (migration 0004) stop counting it as one of
    its executive's open leads: its mail and records are KEEP's now. Its email key and
    organisation domain go too, so threading finds KEEP (whose contact the address is
    now) and never the pointer; ``email`` stays for people reading it.
    """
    executive = conn.scalar(select(_leads.c.assigned_to).where(_leads.c.id == other))
    conn.execute(
        update(_leads)
        .where(_leads.c.id == other)
        .values(
            merged_into_id=keep,
            assigned_to=None,
            email_key=None,
            organization_domain=None,
            updated_at=now,
        )
    )
    return executive


def log_activity(
    conn: Connection,
    lead_id: int,
    *,
    kind: str,
    summary: str,
    actor: str,
    details: dict[str, Any],
    now: datetime,
) -> None:
    conn.execute(
        insert(_activities).values(
            lead_id=lead_id, kind=kind, summary=summary, actor=actor, details=details, at=now
        )
    )


# -- erase ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Erased:
    """What an erase removed: counts by name, and the blobs it may have left unused."""

    counts: dict[str, int]
    blob_candidates: frozenset[str]


def erase(conn: Connection, lead_ids: list[int], salt: str, now: datetime) -> Erased:
    """Delete these leads with everything of theirs; record digests of their addresses and
    Message-IDs. Every delete is explicit: SQLite enforces no ON DELETE without its pragma."""
    addresses = set(
        conn.scalars(
            select(_leads.c.email_key).where(
                _leads.c.id.in_(lead_ids), _leads.c.email_key.is_not(None)
            )
        )
    )
    addresses |= set(
        conn.scalars(
            select(_contacts.c.email_key).where(
                _contacts.c.lead_id.in_(lead_ids), _contacts.c.email_key.is_not(None)
            )
        )
    )
    # The lead's mail, and mail from its addresses that is on no lead: their auto-replies,
    # out-of-office notes and the like, kept as `ignored` but theirs all the same.
    message_rows = conn.execute(
        select(_messages.c.id, _messages.c.message_id, _messages.c.raw_sha256).where(
            or_(
                _messages.c.lead_id.in_(lead_ids),
                and_(
                    _messages.c.lead_id.is_(None),
                    func.lower(_messages.c.sender).in_(sorted(addresses)),
                ),
            )
        )
    ).all()
    message_ids = [row.id for row in message_rows]
    attachment_owner = or_(
        _attachments.c.lead_id.in_(lead_ids), _attachments.c.message_id.in_(message_ids)
    )
    blobs = {row.raw_sha256 for row in message_rows}
    blobs |= set(conn.scalars(select(_attachments.c.sha256).where(attachment_owner)))

    counts: dict[str, int] = {}
    counts["attachments"] = conn.execute(delete(_attachments).where(attachment_owner)).rowcount
    counts["status_changes"] = conn.execute(
        delete(_status_changes).where(
            or_(
                _status_changes.c.lead_id.in_(lead_ids),
                _status_changes.c.message_id.in_(message_ids),
            )
        )
    ).rowcount
    # Mail still queued to an erased lead is never sent: its row goes with the lead.
    blobs |= set(conn.scalars(select(_outbox.c.raw_sha256).where(_outbox.c.lead_id.in_(lead_ids))))
    counts["outbox"] = conn.execute(delete(_outbox).where(_outbox.c.lead_id.in_(lead_ids))).rowcount
    counts["messages"] = conn.execute(
        delete(_messages).where(_messages.c.id.in_(message_ids))
    ).rowcount
    for name, table in (
        ("contacts", _contacts),
        ("addresses", _addresses),
        ("notes", _comments),
        ("activities", _activities),
        ("opportunities", _opportunities),
        ("quotations", _quotations),
        ("customers", _customers),
        ("participants", _participants),
    ):
        counts[name] = conn.execute(delete(table).where(table.c.lead_id.in_(lead_ids))).rowcount
    conn.execute(
        update(_leads).where(_leads.c.related_lead_id.in_(lead_ids)).values(related_lead_id=None)
    )
    # Pointers first: a lead merged into another one is deleted before it.
    conn.execute(delete(_leads).where(_leads.c.merged_into_id.in_(lead_ids)))
    counts["leads"] = len(lead_ids)
    conn.execute(delete(_leads).where(_leads.c.id.in_(lead_ids)))

    digests = {("address", salted(salt, "address", a)) for a in addresses}
    digests |= {("message_id", salted(salt, "message_id", row.message_id)) for row in message_rows}
    rows = conn.execute(
        select(_erased.c.kind, _erased.c.digest).where(
            _erased.c.digest.in_([d for _, d in digests])
        )
    )
    known = {(kind, digest) for kind, digest in rows}
    new = [
        {"kind": kind, "digest": digest, "erased_at": now}
        for kind, digest in sorted(digests - known)
    ]
    if new:
        conn.execute(insert(_erased), new)
    counts["erased_keys"] = len(digests)
    return Erased(counts, frozenset(blobs))


def pointers_to(conn: Connection, lead_id: int) -> list[int]:
    """The leads merged into this one."""
    return list(conn.scalars(select(_leads.c.id).where(_leads.c.merged_into_id == lead_id)))


def unreferenced(conn: Connection, digests: Iterable[str]) -> set[str]:
    """The blobs among these that no message, attachment or quarantine entry refers to."""
    wanted = set(digests)
    if not wanted:
        return set()
    listed = list(wanted)
    used = set(
        conn.scalars(select(_messages.c.raw_sha256).where(_messages.c.raw_sha256.in_(listed)))
    )
    used |= set(
        conn.scalars(select(_attachments.c.sha256).where(_attachments.c.sha256.in_(listed)))
    )
    used |= set(
        conn.scalars(select(_quarantine.c.raw_sha256).where(_quarantine.c.raw_sha256.in_(listed)))
    )
    used |= set(conn.scalars(select(_outbox.c.raw_sha256).where(_outbox.c.raw_sha256.in_(listed))))
    return wanted - used


def salt(conn: Connection) -> str:
    """The database's erase salt (made by migration 0007)."""
    value = conn.scalar(select(_meta.c.value).where(_meta.c.key == "erase_salt"))
    assert value is not None, "migration 0007 makes the erase salt"
    return str(value)


def salted(salt_value: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{salt_value}\x00{kind}\x00{value}".encode()).hexdigest()


def is_erased(conn: Connection, email_key: str | None, message_id: str | None) -> bool:
    """Whether this sender address or Message-ID was erased (intake then ignores the mail).

    Intake asks only when its precheck found that anything was ever erased (store/inbound.py).
    """
    salt_value = salt(conn)
    wanted = []
    if email_key:
        wanted.append(("address", salted(salt_value, "address", email_key)))
    if message_id:
        wanted.append(("message_id", salted(salt_value, "message_id", message_id)))
    for kind, digest in wanted:
        found = conn.scalar(
            select(_erased.c.id).where(_erased.c.kind == kind, _erased.c.digest == digest)
        )
        if found is not None:
            return True
    return False
