"""The blob store as a whole: check that every blob a row names reads back, and compact packs.

Erasure zeroes records in place (services/lifecycle.py); ``gc`` gives their space back, and
that of records written for transactions that never committed.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from worker.services.context import App
from worker.store.blobs import Progress


def verify(app: App, progress: Progress | None = None) -> tuple[int, list[dict[str, Any]]]:
    """(distinct blobs checked, one row per referencing column and blob that failed)."""
    checked, problems = app.blobs.verify(progress)
    return checked, [
        {
            "problem": p.problem,
            "table": p.table,
            "column": p.column,
            "sha256": p.sha256,
            "detail": p.detail,
        }
        for p in problems
    ]


def gc(app: App, progress: Progress | None = None, threshold: float = 0.1) -> dict[str, Any]:
    report = app.blobs.gc(progress, threshold)
    return {**asdict(report), "bytes_reclaimed": report.bytes_reclaimed}
