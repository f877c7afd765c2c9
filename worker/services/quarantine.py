"""Quarantined messages: what failed and why, with their raw bytes kept for replay."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from worker.errors import NotFoundError
from worker.services.context import App
from worker.services.intake import Intake, IntakeResult
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


def list_entries(app: App, include_replayed: bool = False) -> list[dict[str, Any]]:
    query = select(QuarantineEntry).order_by(QuarantineEntry.id)
    if not include_replayed:
        query = query.where(QuarantineEntry.status == "held")
    with app.db.transaction(write=False) as session:
        return [_row(e) for e in session.scalars(query)]


def show_entry(app: App, entry_id: int) -> dict[str, Any]:
    with app.db.transaction(write=False) as session:
        entry = session.get(QuarantineEntry, entry_id)
        if entry is None:
            raise NotFoundError(f"no quarantine entry {entry_id}", entry_id)
        row = _row(entry)
    raw = app.blobs.get(row["raw_sha256"])
    row["headers"] = _header_block(raw[:65536])[:4000].decode("utf-8", "replace")
    return row


def _header_block(raw: bytes) -> bytes:
    """The bytes before the first empty line, whether lines end in LF or CRLF."""
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if i >= 0]
    return raw[: min(ends)] if ends else raw


def replay(app: App, entry_id: int) -> IntakeResult:
    return Intake(app).replay(entry_id)


def replay_all(app: App) -> list[IntakeResult]:
    ids = [row["id"] for row in list_entries(app)]
    intake = Intake(app)
    return [intake.replay(entry_id) for entry_id in ids]
