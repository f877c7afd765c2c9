"""Reads of stored messages for people: one message, or a lead's messages.

Plain dicts out (intake writes messages: store/inbound.py). A message's row id is what
``leads show`` and ``messages list`` print; its Message-ID is what a mail client shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.store.models import Attachment, Message

# More rows than this under one Message-ID only says "ambiguous" louder.
_MAX_SAME_ID = 20


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _summary(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "date": _iso(m.sent_at),
        "direction": m.direction,
        "from": m.sender,
        "from_name": m.sender_name,
        "subject": m.subject,
        "message_id": m.message_id,
        "lead_id": m.lead_id,
        "kind": m.kind,
        "outcome": m.outcome,
        "received_at": _iso(m.created_at),
    }


def _detail(session: Session, m: Message) -> dict[str, Any]:
    recipients = m.recipients or {}
    row = _summary(m)
    row.update(
        to=list(recipients.get("to", [])),
        cc=list(recipients.get("cc", [])),
        reply_to=list(recipients.get("reply_to", [])),
        in_reply_to=list(m.in_reply_to or []),
        references=list(m.references or []),
        reasons=list(m.reasons or []),
        defects=list(m.defects or []),
        account=m.account,
        folder=m.folder,
        source=m.source,
        size=m.size,
        raw_sha256=m.raw_sha256,
        bounced=m.bounced,
        attachments=[
            {
                "id": a.id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "inline": a.inline,
            }
            for a in session.scalars(
                select(Attachment).where(Attachment.message_id == m.id).order_by(Attachment.id)
            )
        ],
        text=m.body_text,
        html=m.body_html,
    )
    return row


def by_row_id(session: Session, row_id: int) -> dict[str, Any] | None:
    """Every field we keep of one message, its bodies and attachments; None if none."""
    found = session.get(Message, row_id)
    return _detail(session, found) if found is not None else None


def row_ids_by_message_id(session: Session, message_id: str) -> list[int]:
    """The rows stored under a bare Message-ID (one per account and direction), by id."""
    return list(
        session.scalars(
            select(Message.id)
            .where(Message.message_id == message_id)
            .order_by(Message.id)
            .limit(_MAX_SAME_ID)
        )
    )


def for_lead(session: Session, lead_id: int) -> list[dict[str, Any]]:
    """The lead's messages in the order they were stored (never by their Date header)."""
    query = select(Message).where(Message.lead_id == lead_id).order_by(Message.id)
    return [_summary(m) for m in session.scalars(query)]
