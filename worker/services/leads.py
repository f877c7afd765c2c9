"""Reading leads for people: the list, one lead with its timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from worker.errors import LeadmailError, NotFoundError
from worker.services.context import App
from worker.store import leads as store
from worker.store.models import LeadStatus

STATUSES = [s.value for s in LeadStatus]


def check_status(status: str) -> str:
    """Accept a status in any case ('do not contact'); refuse an unknown one by name."""
    for known in STATUSES:
        if known.lower() == status.strip().lower():
            return known
    raise LeadmailError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}", status)


def list_leads(
    app: App, status: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    checked = check_status(status) if status else None
    with app.db.transaction(write=False) as session:
        return store.summaries(session, checked, limit)


def lead_detail(app: App, lead_id: int) -> dict[str, Any]:
    with app.db.transaction(write=False) as session:
        messages = store.messages(session, lead_id)
        detail = store.detail(session, lead_id, len(messages))
        if detail is None:
            raise NotFoundError(f"no lead {lead_id}", lead_id)
        detail["timeline"] = _timeline(
            messages,
            store.status_changes(session, lead_id),
            store.comments(session, lead_id),
            store.activities(session, lead_id),
        )
        return detail


# Entries recorded at the same moment (one message's transaction) read in cause order: the
# message, the status it set, the assignment it got.
_TYPE_ORDER = {"message": 0, "status": 1, "assignment": 2, "activity": 3, "comment": 4}


def _timeline(
    messages: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    comments: list[dict[str, Any]],
    activities: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """What happened to the lead, in the order it happened.

    ``at`` is when leadmail recorded each entry (a message: when it was received and
    stored). A message's own Date header is ``date``, shown beside it and never the sort
    key: a sender can write any Date (1999, 2099), and the timeline must not reorder on it.
    """
    keyed: list[tuple[tuple[datetime, int, int], dict[str, Any]]] = []

    def add(kind: str, row: dict[str, Any]) -> None:
        at, row_id = row["at"], row["id"]
        fields = {k: v for k, v in row.items() if k not in ("id", "at")}
        entry = {"at": at.isoformat(), "type": kind, **fields}
        keyed.append(((at, _TYPE_ORDER[kind], row_id), entry))

    for m in messages:
        add("message", m)
    for change in changes:
        add("status", change)
    for comment in comments:
        add("comment", comment)
    for act in activities:
        add("assignment" if act["kind"] == "assignment" else "activity", act)
    keyed.sort(key=lambda pair: pair[0])
    return [entry for _, entry in keyed]
