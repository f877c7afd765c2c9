"""Where every configured mailbox stands: cursor, backlog, last success and last error."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from worker.config import ImapAccount
from worker.errors import LeadmailError
from worker.services.context import App
from worker.sources.imap import ImapFolder, password_for
from worker.store import cursors
from worker.store.models import utcnow


def mailbox_status(app: App, live: bool = False) -> list[dict[str, Any]]:
    """One row per (account, folder): configured ones first, then any the database knows.

    ``live`` asks each IMAP server now how many messages wait beyond our cursor; otherwise
    ``waiting`` is what the poller saw at its last look.
    """
    with app.db.engine.connect() as conn:
        known = {(c.account, c.folder): c for c in cursors.all_cursors(conn)}
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for account in app.settings.accounts:
        for folder, _ in account.watched:
            cursor = known.pop((account.name, folder), None)
            row = _row(account.name, account.kind, folder, cursor, now)
            if live and isinstance(account, ImapAccount):
                _live(row, account, folder, cursor)
            rows.append(row)
    for (name, folder), cursor in sorted(known.items()):
        rows.append(_row(name, "(not configured)", folder, cursor, now))
    return rows


def _row(
    account: str, kind: str, folder: str, cursor: cursors.Cursor | None, now: Any
) -> dict[str, Any]:
    live_lease = cursor is not None and cursor.lease_live(now)
    return {
        "account": account,
        "kind": kind,
        "folder": folder,
        "uidvalidity": cursor.uidvalidity if cursor else None,
        "last_uid": cursor.last_uid if cursor else None,
        "waiting": cursor.waiting if cursor else None,
        "last_success_at": _iso(cursor.last_success_at) if cursor else None,
        "last_error": cursor.last_error if cursor else None,
        "last_error_at": _iso(cursor.last_error_at) if cursor else None,
        "worked_by": cursor.lease_holder if cursor and live_lease else None,
        "lease_expires_at": _iso(cursor.lease_expires_at) if cursor and live_lease else None,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _live(
    row: dict[str, Any], account: ImapAccount, folder: str, cursor: cursors.Cursor | None
) -> None:
    imap = ImapFolder(account, folder, password_for(account))
    try:
        state = imap.connect()
        same = cursor is not None and cursor.uidvalidity == state.uidvalidity
        last = cursor.last_uid if cursor is not None and same else 0
        row["waiting"] = len(imap.uids_after(last))
        row["server_messages"] = state.exists
    except LeadmailError as exc:
        row["live_error"] = str(exc)
    finally:
        imap.close()
