"""Outbox rows for delivery tests, written straight through the store (fast, many at once)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from worker.config import Settings
from worker.services.context import App
from worker.store import blobs, outbox, schema
from worker.store.models import Lead

SENDER = "sales@northwind.example"


def delivery_settings(
    db_url: str, tmp_path: Path, smtp: dict[str, Any] | None = None, **sections: Any
) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": db_url},
        "storage": {"path": str(tmp_path / "data"), "fsync_batch": 8},
        "rules": {"path": str(tmp_path / "rules.yaml")},
        "leads": {"own_addresses": [SENDER]},
        "smtp": {"from_address": SENDER, "backoff_min_seconds": 30, **(smtp or {})},
        **sections,
    }
    return Settings.model_validate(data)


def smtp_section(server: Any, **extra: Any) -> dict[str, Any]:
    """[smtp] for a plain test server (no TLS, no AUTH)."""
    return {
        "transport": "smtp",
        "host": server.host,
        "port": server.port,
        "security": "none",
        "timeout": 10,
        **extra,
    }


def make_app(settings: Settings) -> App:
    app = App.from_settings(settings)
    schema.upgrade(app.db.engine)
    return app


def raw_message(message_id: str, to: list[str], subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Northwind Sales <{SENDER}>"
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content(f"Hello,\n\nthis is {subject}.\n")
    return msg.as_bytes()


def queue_mails(
    app: App,
    count: int,
    *,
    recipients: list[str] | None = None,
    tag: str | None = None,
    due_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """`count` outbox rows, each on a lead of its own, with its raw message in the blob store;
    their (id, message_id, recipients)."""
    tag = tag or uuid.uuid4().hex[:8]
    made: list[dict[str, Any]] = []
    raws = []
    specs = []
    for n in range(count):
        to = recipients or [f"buyer{n}@firm{n}.example"]
        message_id = f"out-{tag}-{n}@northwind.example"
        raw = raw_message(message_id, to, f"Offer {tag} {n}")
        raws.append(raw)
        specs.append((message_id, to, f"Offer {tag} {n}"))
    stored = app.blobs.put_many(raws)
    digests = stored.digests
    with app.db.transaction() as session:
        blobs.record(session.connection(), stored.refs)
        for (message_id, to, subject), digest in zip(specs, digests, strict=True):
            lead = Lead(email=to[0], email_key=to[0], status="Lead")
            session.add(lead)
            session.flush()
            fields: dict[str, Any] = {
                "lead_id": lead.id,
                "message_id": message_id,
                "envelope_from": SENDER,
                "recipients": to,
                "subject": subject,
                "raw_sha256": digest,
            }
            if due_at is not None:
                fields["due_at"] = due_at
            row_id = outbox.insert(session, **fields)
            made.append({"id": row_id, "message_id": message_id, "recipients": to})
    return made


def row(app: App, outbox_id: int) -> dict[str, Any]:
    with app.db.transaction(write=False) as session:
        found = outbox.get(session, outbox_id)
    assert found is not None
    return found


def statuses(app: App) -> dict[str, int]:
    with app.db.transaction(write=False) as session:
        rows = outbox.rows(session)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts
