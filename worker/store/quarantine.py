"""Reads of quarantine entries for people (intake writes them: store/inbound.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.store.models import QuarantineEntry


def _row(entry: QuarantineEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "status": entry.status,
        "source": entry.source,
        "account": entry.account,
        "folder": entry.folder,
        "uid": entry.uid,
        "size": entry.size,
        "error_type": entry.error_type,
        "reason": entry.reason,
        "attempts": entry.attempts,
        "raw_sha256": entry.raw_sha256,
        "created_at": entry.created_at.isoformat(),
        "replayed_at": entry.replayed_at.isoformat() if entry.replayed_at else None,
        "replay_outcome": entry.replay_outcome,
    }


def entries(session: Session, include_replayed: bool) -> list[dict[str, Any]]:
    """Held entries by id (and replayed ones too when asked)."""
    query = select(QuarantineEntry).order_by(QuarantineEntry.id)
    if not include_replayed:
        query = query.where(QuarantineEntry.status == "held")
    return [_row(e) for e in session.scalars(query)]


def entry(session: Session, entry_id: int) -> dict[str, Any] | None:
    found = session.get(QuarantineEntry, entry_id)
    return _row(found) if found is not None else None
