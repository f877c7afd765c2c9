"""Inbound mail's statements: messages, leads, contacts, participants, attachments, status
changes and quarantine rows.

Intake decides; these functions only read and write, taking and returning plain values
(``InboundMessage``, ids, small frozen rows). The statements every new message runs are
built once and executed on the driver's cursor (store/fast.py): through Core they would
cost more than the database does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, bindparam, func, insert, or_, select, update

from worker.mail.message import Attachment as MailAttachment
from worker.mail.message import InboundMessage, RawMessage, storable
from worker.mail.threading import normalize_subject
from worker.store import tables
from worker.store.blobs import safe_filename
from worker.store.fast import Encoded, FastStatement
from worker.store.lookups import IS_CONTACT, KNOWN_SENDER
from worker.store.upserts import insert_ignoring

_leads = tables.leads
_activities = tables.activities
_autoreplies = tables.autoreplies

AUTOREPLY_ACTOR = "autoreply"
"""``outbox.created_by`` of the acknowledgements intake queues ([autoreply])."""
_messages = tables.messages
_contacts = tables.contacts
_participants = tables.participants
_attachments = tables.attachments
_status_changes = tables.status_changes
_quarantine = tables.quarantine

# Column caps: what the schema holds (models.py), applied where values enter.
_ADDRESS_MAX = 320


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """An inbound message already stored: what a duplicate's outcome reports."""

    id: int
    lead_id: int | None
    kind: str | None
    message_id: str
    account: str


@dataclass(frozen=True, slots=True)
class LeadState:
    """What threading a reply onto a lead needs to know about it."""

    id: int
    email_key: str | None
    organization_domain: str | None
    status: str


@dataclass(frozen=True, slots=True)
class OutboundRow:
    """A message we sent, as a bounce of it needs it: whom it went to, and whose lead."""

    id: int
    lead_id: int | None
    message_id: str
    sent_to: tuple[str, ...]  # To and Cc as stored (``Name <addr>`` or ``addr``)
    lead_email_key: str | None


@dataclass(frozen=True, slots=True)
class AttachmentRow:
    """One attachment as stored: a safe file name and the digest of its blob."""

    filename: str
    content_type: str
    size: int
    sha256: str
    content_id: str | None
    inline: bool


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """A quarantine entry: where the message came from and the digest of its raw bytes."""

    id: int
    raw_sha256: str
    source: str | None
    account: str
    folder: str | None
    uid: int | None


# -- values computed before the transaction --------------------------------------------


def message_row(raw: RawMessage, msg: InboundMessage, size: int) -> dict[str, Any]:
    """The columns of an inbound message's row that need no database.

    Computed where the message is parsed (a worker process in a bulk ingest), so the
    committing process adds only ids, kind and outcome.
    """
    sender = msg.from_address
    return {
        "direction": "in",
        "account": raw.account,
        "folder": raw.folder,
        "uid": raw.uid,
        "source": raw.source,
        "message_id": msg.message_id[:998],
        "in_reply_to": _json(list(msg.in_reply_to)[:20]),
        "references": _json(list(msg.references)[-100:]),
        "sender": sender.email[:_ADDRESS_MAX] if sender else None,
        "sender_name": (sender.name[:255] or None) if sender else None,
        "recipients": _json(
            {
                "to": [str(a) for a in msg.to],
                "cc": [str(a) for a in msg.cc],
                "reply_to": [str(a) for a in msg.reply_to],
            }
        ),
        "subject": msg.subject,
        "subject_key": normalize_subject(msg.subject)[:255] or None,
        "sent_at": msg.date,
        "body_text": msg.text,
        "body_html": msg.html or None,
        "content_hash": msg.content_hash,
        "size": size,
        "defects": _json(list(msg.defects)[:50]),
        "bounced": False,
    }


def _json(value: object) -> Encoded:
    """JSON text for a JSON column, made where the message is parsed (see ``Encoded``)."""
    return Encoded(json.dumps(value))


def attachment_row(attachment: MailAttachment, sha256: str, size: int) -> AttachmentRow:
    return AttachmentRow(
        filename=safe_filename(attachment.filename),
        content_type=attachment.content_type[:255],
        size=size,
        sha256=sha256,
        content_id=(attachment.content_id or None) and attachment.content_id[:998],
        inline=attachment.inline,
    )


def new_lead_columns(
    *,
    person_name: str | None,
    email: str,
    email_key: str,
    organization_domain: str | None,
    company_name: str | None,
    status: str,
    source: str | None,
    related_lead_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    """A new lead's columns (without ``assigned_to``), as the routing rules read them."""
    return {
        "is_organization": False,
        "person_name": person_name,
        "email": email[:_ADDRESS_MAX],
        "email_key": email_key[:_ADDRESS_MAX],
        "organization_domain": organization_domain,
        "company_name": company_name,
        "status": status,
        "source": source,
        "related_lead_id": related_lead_id,
        "custom_fields": {},
        "email_bouncing": False,
        "created_at": now,
        "updated_at": now,
    }


# -- statements ----------------------------------------------------------------------------

# One round trip answers both "stored already?" and "do we know this sender?".
_DUPLICATE_ID = (
    select(_messages.c.id)
    .where(
        or_(
            (_messages.c.account == bindparam("account"))
            & (_messages.c.direction == "in")
            & (_messages.c.message_id == bindparam("message_id")),
            _messages.c.content_hash == bindparam("content_hash"),
        )
    )
    .limit(1)
    .scalar_subquery()
)
# Whether any privacy erasure happened at all: only then is the sender checked against them
# (store/lifecycle.is_erased), so intake pays nothing extra for erasure in the usual case.
_ANY_ERASED = select(tables.erased_keys.c.id).limit(1).scalar_subquery()
_PRECHECK = FastStatement(select(_DUPLICATE_ID, KNOWN_SENDER.scalar_subquery(), _ANY_ERASED))
# A message of ours recorded already: leadmail's own outbound row (account "outbox") or a
# Sent-folder copy read before, by Message-ID in any account; or the same bytes anywhere.
_RECORDED_OUT = (
    select(_messages.c.id)
    .where(
        or_(
            (_messages.c.direction == "out") & (_messages.c.message_id == bindparam("message_id")),
            _messages.c.content_hash == bindparam("content_hash"),
        )
    )
    .limit(1)
    .scalar_subquery()
)
_SENT_PRECHECK = select(_RECORDED_OUT, _ANY_ERASED)
_LOCK_SENDER = FastStatement(select(func.pg_advisory_xact_lock(bindparam("key", type_=BigInteger))))
_STORED = FastStatement(
    select(
        _messages.c.id,
        _messages.c.lead_id,
        _messages.c.kind,
        _messages.c.message_id,
        _messages.c.account,
    ).where(_messages.c.id == bindparam("id"))
)
# FOR UPDATE: two replies to one lead at once (from two of its people) must not both move
# it Lead → Open; the second waits and sees the status the first committed. SQLite's
# compiler drops the clause: BEGIN IMMEDIATE already lets one writer in at a time.
_LEAD_STATE = FastStatement(
    select(_leads.c.id, _leads.c.email_key, _leads.c.organization_domain, _leads.c.status)
    .where(_leads.c.id == bindparam("id"))
    .with_for_update()
)
_INSERT_LEAD = FastStatement(insert(_leads).returning(_leads.c.id))
_INSERT_MESSAGE = FastStatement(insert(_messages).returning(_messages.c.id))
_INSERT_ATTACHMENTS = FastStatement(insert(_attachments))


_add_participants = insert_ignoring(_participants)

_IS_CONTACT = FastStatement(IS_CONTACT)
_INSERT_CONTACT = FastStatement(insert(_contacts))
_SET_STATUS = FastStatement(
    update(_leads)
    .where(_leads.c.id == bindparam("lead_id"))
    .values(status=bindparam("status"), updated_at=bindparam("now"))
)
_INSERT_STATUS = FastStatement(insert(_status_changes))
_OUTBOUND_BY_MESSAGE_IDS = (
    select(
        _messages.c.id,
        _messages.c.lead_id,
        _messages.c.message_id,
        _messages.c.recipients,
        _leads.c.email_key,
    )
    .outerjoin(_leads, _leads.c.id == _messages.c.lead_id)
    .where(
        _messages.c.message_id.in_(bindparam("ids", expanding=True)),
        _messages.c.direction == "out",
    )
    .order_by(_messages.c.id)
)
_INSERT_ACTIVITY = insert(_activities)
# An acknowledgement queued to this address lately.
_RECENT_AUTOREPLY = (
    select(_autoreplies.c.outbox_id, _autoreplies.c.at)
    .where(
        _autoreplies.c.email_key == bindparam("email_key"),
        _autoreplies.c.at >= bindparam("since"),
    )
    .order_by(_autoreplies.c.at.desc())
    .limit(1)
)
_MARK_BOUNCED = (
    update(_messages)
    .where(_messages.c.id.in_(bindparam("ids", expanding=True)))
    .values(bounced=True)
)
_MARK_BOUNCING = (
    update(_leads)
    .where(_leads.c.id.in_(bindparam("ids", expanding=True)))
    .values(email_bouncing=True, updated_at=bindparam("now"))
)
_HELD = (
    select(_quarantine.c.id)
    .where(_quarantine.c.raw_sha256 == bindparam("raw_sha256"), _quarantine.c.status == "held")
    .limit(1)
)
_INSERT_HELD = insert(_quarantine).returning(_quarantine.c.id)
_HELD_AGAIN = (
    update(_quarantine)
    .where(_quarantine.c.id == bindparam("entry_id"))
    .values(attempts=_quarantine.c.attempts + 1, reason=bindparam("reason"))
)
_HELD_ENTRY = select(
    _quarantine.c.id,
    _quarantine.c.raw_sha256,
    _quarantine.c.source,
    _quarantine.c.account,
    _quarantine.c.folder,
    _quarantine.c.uid,
).where(_quarantine.c.id == bindparam("entry_id"))
_REPLAYED = (
    update(_quarantine)
    .where(_quarantine.c.id == bindparam("entry_id"))
    .values(status="replayed", replay_outcome=bindparam("outcome"), replayed_at=bindparam("now"))
)
_STORED_HASHES = select(_messages.c.content_hash).where(
    _messages.c.content_hash.in_(bindparam("hashes", expanding=True))
)
_HELD_HASHES = select(_quarantine.c.raw_sha256).where(
    _quarantine.c.raw_sha256.in_(bindparam("hashes", expanding=True))
)


# -- one message's transaction --------------------------------------------------------------


def sender_lock_key(email_key: str) -> int:
    """A stable signed 64-bit number for an address: the same in every process and run."""
    digest = hashlib.blake2b(email_key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_sender(conn: Connection, email_key: str) -> None:
    """Hold the sender's address until this transaction ends, before asking who knows it.

    Two processes with mail from the same new address would otherwise both find it
    unknown and both make a lead. On PostgreSQL a transaction-scoped advisory lock on the
    address makes the second wait, and its next statement (READ COMMITTED) sees the lead
    the first committed. SQLite needs nothing: intake's transactions begin IMMEDIATE,
    which already lets one writer in at a time, and their reads come after that BEGIN.
    """
    if conn.dialect.name == "postgresql":
        _LOCK_SENDER.later(conn, {"key": sender_lock_key(email_key)})


def precheck(
    conn: Connection, *, account: str, message_id: str, content_hash: str, email_key: str
) -> tuple[int | None, bool, bool]:
    """(id of the same message stored already or None, whether any lead knows the sender,
    whether anything was ever erased), in one round trip."""
    params = {
        "account": account,
        "message_id": message_id,
        "content_hash": content_hash,
        "email_key": email_key,
    }
    duplicate_id, known, erased = _PRECHECK.one(conn, params)
    return duplicate_id, bool(known), erased is not None


def sent_precheck(
    conn: Connection, *, message_id: str, content_hash: str
) -> tuple[int | None, bool]:
    """For a message from a Sent folder: (id of the row that records it already or None,
    whether anything was ever erased), in one round trip."""
    row = conn.execute(
        _SENT_PRECHECK, {"message_id": message_id, "content_hash": content_hash}
    ).one()
    return row[0], row[1] is not None


def stored_message(conn: Connection, row_id: int) -> StoredMessage:
    return StoredMessage(*_STORED.one(conn, {"id": row_id}))


def lead_state(conn: Connection, lead_id: int) -> LeadState:
    return LeadState(*_LEAD_STATE.one(conn, {"id": lead_id}))


def insert_lead(conn: Connection, columns: Mapping[str, Any]) -> int:
    lead_id = _INSERT_LEAD.scalar(conn, columns)
    assert lead_id is not None
    return int(lead_id)


def insert_message(
    conn: Connection,
    row: Mapping[str, Any],
    *,
    kind: str,
    outcome: str,
    reasons: Sequence[str],
    raw_sha256: str,
    lead_id: int | None,
    now: datetime,
) -> int:
    """Store an inbound message (``row`` from ``message_row``) with its outcome; its id."""
    values = {
        **row,
        "kind": kind,
        "outcome": outcome,
        "reasons": list(reasons),
        "raw_sha256": raw_sha256,
        "lead_id": lead_id,
        "created_at": now,
    }
    row_id = _INSERT_MESSAGE.scalar(conn, values)
    assert row_id is not None
    return int(row_id)


def insert_attachments(
    conn: Connection, message_row_id: int, attachments: Sequence[AttachmentRow]
) -> None:
    _INSERT_ATTACHMENTS.later_many(
        conn,
        [
            {
                "message_id": message_row_id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "content_id": a.content_id,
                "inline": a.inline,
            }
            for a in attachments
        ],
    )


def add_participants(conn: Connection, lead_id: int, keys: Iterable[str]) -> None:
    """Remember addresses seen on a lead's mail; ones it has already are skipped."""
    rows = [{"lead_id": lead_id, "email_key": key} for key in keys]
    if rows:
        _add_participants(conn.dialect.name).later_many(conn, rows)


def is_contact(conn: Connection, lead_id: int, email_key: str) -> bool:
    return _IS_CONTACT.first(conn, {"lead_id": lead_id, "email_key": email_key}) is not None


def add_contact(
    conn: Connection, lead_id: int, *, name: str | None, email: str, email_key: str, now: datetime
) -> None:
    _INSERT_CONTACT.run(
        conn,
        {
            "lead_id": lead_id,
            "name": name,
            "email": email[:_ADDRESS_MAX],
            "email_key": email_key[:_ADDRESS_MAX],
            "designation": None,
            "phone": None,
            "is_primary": False,
            "created_at": now,
        },
    )


def set_lead_status(conn: Connection, lead_id: int, status: str, now: datetime) -> None:
    _SET_STATUS.later(conn, {"lead_id": lead_id, "status": status, "now": now})


def log_status_change(
    conn: Connection,
    lead_id: int,
    *,
    before: str | None,
    to: str,
    cause: str,
    message_row_id: int | None,
    now: datetime,
) -> None:
    _INSERT_STATUS.later(
        conn,
        {
            "lead_id": lead_id,
            "from_status": before,
            "to_status": to,
            "cause": cause,
            "message_id": message_row_id,
            "at": now,
        },
    )


def outbound_messages(conn: Connection, message_ids: Sequence[str]) -> list[OutboundRow]:
    """Our own sent messages with these Message-IDs (leadmail's and Sent-folder copies)."""
    if not message_ids:
        return []
    rows = conn.execute(_OUTBOUND_BY_MESSAGE_IDS, {"ids": list(message_ids)[:200]}).all()
    return [
        OutboundRow(
            id=row.id,
            lead_id=row.lead_id,
            message_id=row.message_id,
            sent_to=tuple(
                str(value)
                for field in ("to", "cc")
                for value in (row.recipients or {}).get(field, ())
            ),
            lead_email_key=row.email_key,
        )
        for row in rows
    ]


def set_reasons(conn: Connection, row_id: int, reasons: Sequence[str]) -> None:
    """The reasons of a message row, when its transaction learnt more after storing it."""
    conn.execute(update(_messages).where(_messages.c.id == row_id).values(reasons=list(reasons)))


def recent_autoreply(
    conn: Connection, email_key: str, since: datetime
) -> tuple[int | None, datetime] | None:
    """(outbox id, when) of the latest acknowledgement to this address since ``since``."""
    row = conn.execute(_RECENT_AUTOREPLY, {"email_key": email_key, "since": since}).first()
    return (row.outbox_id, row.at) if row is not None else None


def record_autoreply(
    conn: Connection, *, email_key: str, lead_id: int, outbox_id: int, now: datetime
) -> None:
    conn.execute(
        insert(_autoreplies),
        {
            "email_key": email_key[:_ADDRESS_MAX],
            "lead_id": lead_id,
            "outbox_id": outbox_id,
            "at": now,
        },
    )


def log_activity(
    conn: Connection,
    lead_id: int,
    *,
    kind: str,
    summary: str,
    details: Mapping[str, Any],
    now: datetime,
) -> None:
    """A line in the lead's timeline written by intake itself (actor "leadmail")."""
    conn.execute(
        _INSERT_ACTIVITY,
        {
            "lead_id": lead_id,
            "kind": kind,
            "summary": summary,
            "actor": "leadmail",
            "details": dict(details),
            "due_date": None,
            "at": now,
        },
    )


def mark_bounced(
    conn: Connection, message_row_ids: Sequence[int], lead_ids: Sequence[int], now: datetime
) -> None:
    """Our sent messages bounced, and the leads they went to have a bouncing address."""
    if message_row_ids:
        conn.execute(_MARK_BOUNCED, {"ids": list(message_row_ids)})
    if lead_ids:
        conn.execute(_MARK_BOUNCING, {"ids": list(lead_ids), "now": now})


# -- quarantine -------------------------------------------------------------------------------


def hold(
    conn: Connection,
    raw: RawMessage,
    *,
    raw_sha256: str,
    size: int,
    reason: str,
    error_type: str,
    now: datetime,
) -> int:
    """Quarantine a message; the same bytes held already count one more attempt. Its id.

    The reason can quote the message (a header in a parse error), and a source or folder
    name comes from outside: cleaned as every text of a message is, so PostgreSQL takes the
    row that SQLite takes and the message is never left without an outcome.
    """
    reason = storable(reason)
    entry_id = conn.scalar(_HELD, {"raw_sha256": raw_sha256})
    if entry_id is not None:
        conn.execute(_HELD_AGAIN, {"entry_id": entry_id, "reason": reason})
        return int(entry_id)
    entry_id = conn.scalar(
        _INSERT_HELD,
        {
            "account": raw.account,
            "folder": storable(raw.folder),
            "uid": raw.uid,
            "source": storable(raw.source),
            "raw_sha256": raw_sha256,
            "size": size,
            "reason": reason,
            "error_type": error_type,
            "status": "held",
            "attempts": 1,
            "created_at": now,
        },
    )
    assert entry_id is not None
    return int(entry_id)


def held_message(conn: Connection, entry_id: int) -> HeldMessage | None:
    row = conn.execute(_HELD_ENTRY, {"entry_id": entry_id}).first()
    return HeldMessage(*row) if row is not None else None


def mark_replayed(conn: Connection, entry_id: int, outcome: str, now: datetime) -> None:
    conn.execute(_REPLAYED, {"entry_id": entry_id, "outcome": outcome, "now": now})


def known_content(
    conn: Connection, content_hashes: Sequence[str], raw_hashes: Sequence[str]
) -> tuple[set[str], set[str]]:
    """(content hashes of stored messages, raw digests of quarantined ones) among these."""
    stored = set(conn.scalars(_STORED_HASHES, {"hashes": list(content_hashes)}))
    held = set(conn.scalars(_HELD_HASHES, {"hashes": list(raw_hashes)}))
    return stored, held
