"""Writes of what people record on a lead: notes (comments) and activities (calls, meetings,
tasks, and the log lines of contact and address changes).

Plain dicts out, like store/leads.py, so services never hold an ORM object.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from worker.store import tables

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_leads = tables.leads


def lead_identity(session: Session, lead_id: int) -> dict[str, Any] | None:
    """The lead's own address (as typed and as a key); None when there is no such lead."""
    row = session.execute(
        select(_leads.c.email, _leads.c.email_key).where(_leads.c.id == lead_id)
    ).first()
    if row is None:
        return None
    return {"email": row.email, "email_key": row.email_key}


def add_comment(
    session: Session, lead_id: int, *, author: str, text: str, at: datetime
) -> dict[str, Any]:
    from worker.store.models import Comment  # the ORM: only where a row is added

    comment = Comment(lead_id=lead_id, author=author, text=text, at=at)
    session.add(comment)
    session.flush()
    return {
        "id": comment.id,
        "lead_id": lead_id,
        "author": author,
        "text": text,
        "at": at.isoformat(),
    }


def add_activity(
    session: Session,
    lead_id: int,
    *,
    kind: str,
    summary: str,
    actor: str,
    details: dict[str, Any],
    at: datetime,
) -> dict[str, Any]:
    from worker.store.models import Activity  # the ORM: only where a row is added

    activity = Activity(
        lead_id=lead_id, kind=kind, summary=summary, actor=actor, details=details, at=at
    )
    session.add(activity)
    session.flush()
    return {
        "id": activity.id,
        "lead_id": lead_id,
        "kind": kind,
        "summary": summary,
        "actor": actor,
        "details": details,
        "at": at.isoformat(),
    }
