"""Reading stored messages: one by its row id or Message-ID, its raw bytes, a lead's list."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from worker.errors import NotFoundError, ValidationError
from worker.services.context import App
from worker.services.notes import live_lead
from worker.store import messages as store

# Row ids are INTEGER columns: a larger number can only be (part of) a Message-ID.
MAX_ROW_ID = 2**31 - 1


def show(app: App, ref: str) -> dict[str, Any]:
    """Every field we keep of one message, named by row id or Message-ID (see resolve)."""
    with app.db.transaction(write=False) as session:
        return resolve(session, ref)


def raw_bytes(app: App, ref: str) -> bytes:
    """The message's bytes exactly as they were fetched, from the blob store."""
    digest = show(app, ref)["raw_sha256"]
    return app.blobs.get(digest)


def for_lead(app: App, lead_id: int) -> list[dict[str, Any]]:
    with app.db.transaction(write=False) as session:
        return store.for_lead(session, live_lead(session, lead_id))


def resolve(session: Session, ref: str) -> dict[str, Any]:
    """One message from what a person typed: a row id (``42``, as ``leads show`` and
    ``messages list`` print it) or a Message-ID with or without its angle brackets (as a
    mail client shows it, even with the ``Message-ID:`` label pasted along).

    Digits are a row id first; when no row has that id they are tried as a Message-ID.
    A Message-ID stored more than once (the same mail in two accounts, or sent and seen
    again) is refused naming the rows, so the person picks one.
    """
    text = ref.strip()
    if text.isascii() and text.isdecimal() and 0 < int(text) <= MAX_ROW_ID:
        found = store.by_row_id(session, int(text))
        if found is not None:
            return found
    bare = bare_message_id(text)
    if not bare:
        raise ValidationError("give a message's row id or its Message-ID", ref)
    rows = store.row_ids_by_message_id(session, bare)
    if len(rows) > 1:
        ids = ", ".join(str(r) for r in rows)
        raise ValidationError(
            f"Message-ID <{bare}> is stored {len(rows)} times (rows {ids}): give the row id",
            ref,
        )
    found = store.by_row_id(session, rows[0]) if rows else None
    if found is None:
        raise NotFoundError(f"no message {ref!r} (no such row id or Message-ID)", ref)
    return found


def bare_message_id(text: str) -> str:
    """``<a@b>``, `` a@b ``, ``Message-ID: <a@b>`` → ``a@b``, as intake stores it (no
    brackets, no whitespace)."""
    value = text.strip()
    if value[:11].lower() == "message-id:":
        value = value[11:]
    value = "".join(value.split())
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    return value
