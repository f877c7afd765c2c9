"""Reads and writes of attachments: the files of a lead's messages and those attached to it.

An attachment belongs to a message (from mail) or to a lead (``leads attach``), never both;
the bytes live in the blob store under ``sha256``. Plain dicts out, like store/leads.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, or_, select

from worker.store import tables

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# Reads are Core statements: `leads show` lists attachments without importing the ORM.
_attachments = tables.attachments
_messages = tables.messages


def add_to_lead(
    session: Session, lead_id: int, *, filename: str, content_type: str, size: int, sha256: str
) -> dict[str, Any]:
    from worker.store.models import Attachment

    attachment = Attachment(
        lead_id=lead_id,
        message_id=None,
        filename=filename,
        content_type=content_type,
        size=size,
        sha256=sha256,
        content_id=None,
        inline=False,
    )
    session.add(attachment)
    session.flush()
    return {
        "id": attachment.id,
        "lead_id": lead_id,
        "filename": filename,
        "content_type": content_type,
        "size": size,
        "sha256": sha256,
    }


_COLUMNS = (
    _attachments.c.id,
    _attachments.c.filename,
    _attachments.c.content_type,
    _attachments.c.size,
    _attachments.c.sha256,
    _attachments.c.inline,
    _attachments.c.message_id.label("message_row"),
    _messages.c.message_id.label("message_id"),
    _messages.c.subject,
    _attachments.c.lead_id.label("own_lead"),
    _messages.c.lead_id.label("message_lead"),
)


def _row(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "filename": row.filename,
        "content_type": row.content_type,
        "size": row.size,
        "sha256": row.sha256,
        "inline": bool(row.inline),
        "lead_id": row.own_lead if row.own_lead is not None else row.message_lead,
        "on_lead": row.message_row is None,
        "message": row.message_row,
        "message_id": row.message_id,
        "subject": row.subject,
    }


def get(session: Session | Connection, attachment_id: int) -> dict[str, Any] | None:
    row = session.execute(
        select(*_COLUMNS)
        .outerjoin(_messages, _messages.c.id == _attachments.c.message_id)
        .where(_attachments.c.id == attachment_id)
    ).first()
    return None if row is None else _row(row)


def for_lead(session: Session | Connection, lead_id: int) -> list[dict[str, Any]]:
    """The lead's own attachments and those of its messages, oldest first."""
    rows = session.execute(
        select(*_COLUMNS)
        .outerjoin(_messages, _messages.c.id == _attachments.c.message_id)
        .where(or_(_attachments.c.lead_id == lead_id, _messages.c.lead_id == lead_id))
        .order_by(_attachments.c.id)
    )
    return [_row(row) for row in rows]
