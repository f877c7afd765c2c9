"""Quarantined messages: what failed and why, with their raw bytes kept for replay."""

from __future__ import annotations

from typing import Any

from worker.errors import NotFoundError
from worker.services.context import App
from worker.services.intake import Intake, IntakeResult
from worker.store import quarantine as store


def list_entries(app: App, include_replayed: bool = False) -> list[dict[str, Any]]:
    with app.db.transaction(write=False) as session:
        return store.entries(session, include_replayed)


def show_entry(app: App, entry_id: int) -> dict[str, Any]:
    with app.db.transaction(write=False) as session:
        row = store.entry(session, entry_id)
    if row is None:
        raise NotFoundError(f"no quarantine entry {entry_id}", entry_id)
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
