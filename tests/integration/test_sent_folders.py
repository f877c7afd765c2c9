"""Sent folders polled beside the inbox: a real Dovecot (APPEND into Sent) and a Maildir."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.integration.helpers import make_mail
from tests.integration.test_imap_poller import account, imap_app  # noqa: F401 (fixture)
from tests.servers.dovecot import Dovecot
from worker.config import MaildirAccount
from worker.poller import ImapWorker, MaildirWorker, workers_for
from worker.services import outbound
from worker.services.context import App
from worker.services.leads import lead_detail
from worker.services.outbound import SendRequest, queue_mail
from worker.services.quarantine import list_entries, replay
from worker.services.status import mailbox_status
from worker.store import cursors
from worker.store import outbox as outbox_store
from worker.store.models import Lead, Message, table_of, utcnow

_messages = table_of(Message)
_leads = table_of(Lead)

ENQUIRY = make_mail()
ANSWER = make_mail(
    sender="Alice Seller <alice@northwind.example>",
    to="Jane Buyer <jane@acme-industrial.example>",
    subject="Re: Quote for 200 office chairs",
    message_id="<answer-1@northwind.example>",
    in_reply_to="<enquiry-1@acme-industrial.example>",
    body="Dear Jane, 200 chairs at 80 EUR each.\n",
)
TO_SUPPLIER = make_mail(
    sender="Alice Seller <alice@northwind.example>",
    to="orders@supplier.example",
    subject="Stock of model C-200?",
    message_id="<stock-1@northwind.example>",
)


def rows(app: App) -> list[tuple[str, str, str | None, int | None, str]]:
    with app.db.engine.connect() as conn:
        found = conn.execute(
            select(
                _messages.c.direction,
                _messages.c.message_id,
                _messages.c.folder,
                _messages.c.lead_id,
                _messages.c.outcome,
            ).order_by(_messages.c.id)
        ).all()
    return [tuple(r) for r in found]  # type: ignore[misc]


def lead_ids(app: App) -> list[int]:
    with app.db.engine.connect() as conn:
        return list(conn.scalars(select(_leads.c.id)))


def test_imap_sent_folder_is_recorded_as_outbound_on_the_lead(
    imap_app: App,  # noqa: F811 (fixture)
    dovecot: Dovecot,
    imap_user: str,
) -> None:
    dovecot.append(imap_user, "INBOX", [ENQUIRY])
    dovecot.append(imap_user, "Sent", [ANSWER, TO_SUPPLIER], flags=(b"\\Seen",))
    sent_flags = dovecot.flags(imap_user, "Sent")
    # post_action applies to the inbox only: the Sent folder is opened read-only.
    acct = account(dovecot, imap_user, sent_folders=["Sent"], post_action="flag")
    settings = imap_app.settings.model_copy(update={"accounts": (acct,)})
    workers = workers_for(imap_app, settings)
    assert [(w.folder, w.sent) for w in workers] == [("INBOX", False), ("Sent", True)]
    inbox, sent = workers
    assert inbox.run_once().outcomes == {"created": 1}
    assert sent.run_once().outcomes == {"threaded": 1, "ignored": 1}

    [lead_id] = lead_ids(imap_app)
    assert rows(imap_app) == [
        ("in", "enquiry-1@acme-industrial.example", "INBOX", lead_id, "created"),
        ("out", "answer-1@northwind.example", "Sent", lead_id, "threaded"),
        ("out", "stock-1@northwind.example", "Sent", None, "ignored"),
    ]
    detail = lead_detail(imap_app, lead_id)
    assert detail["status"] == "Replied"
    [change] = [e for e in detail["timeline"] if e["type"] == "status" and e["from_status"]]
    assert change["cause"] == "sent mail answer-1@northwind.example found in sales/Sent"

    # Each folder has its own cursor; the Sent folder is never changed.
    with imap_app.db.engine.connect() as conn:
        assert cursors.load(conn, "sales", "Sent").last_uid == 2  # type: ignore[union-attr]
        assert cursors.load(conn, "sales", "INBOX").last_uid == 1  # type: ignore[union-attr]
    assert dovecot.flags(imap_user, "Sent") == sent_flags
    status = mailbox_status(dataclasses.replace(imap_app, settings=settings))
    assert [(r["folder"], r["last_uid"]) for r in status] == [("INBOX", 1), ("Sent", 2)]

    # A new message in Sent is read from the cursor on; the old ones are not read again.
    later = make_mail(
        sender="Alice Seller <alice@northwind.example>",
        to="jane@acme-industrial.example",
        subject="Delivery date",
        message_id="<answer-2@northwind.example>",
    )
    dovecot.append(imap_user, "Sent", [later])
    assert sent.run_once().outcomes == {"threaded": 1}
    assert lead_ids(imap_app) == [lead_id]


def test_the_leads_reply_to_mail_from_the_sent_folder_reopens_it(
    imap_app: App,  # noqa: F811 (fixture)
    dovecot: Dovecot,
    imap_user: str,
) -> None:
    dovecot.append(imap_user, "INBOX", [ENQUIRY])
    dovecot.append(imap_user, "Sent", [ANSWER])
    acct = account(dovecot, imap_user, sent_folders=["Sent"])
    inbox = ImapWorker(imap_app, acct, "INBOX")
    sent = ImapWorker(imap_app, acct, "Sent", sent=True)
    inbox.run_once()
    sent.run_once()
    reply = make_mail(
        subject="Re: Quote for 200 office chairs",
        message_id="<reply-1@acme-industrial.example>",
        in_reply_to="<answer-1@northwind.example>",
        references="<enquiry-1@acme-industrial.example> <answer-1@northwind.example>",
    )
    dovecot.append(imap_user, "INBOX", [reply])
    assert inbox.run_once().outcomes == {"threaded": 1}
    [lead_id] = lead_ids(imap_app)
    assert lead_detail(imap_app, lead_id)["status"] == "Open"


def _maildir(path: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def test_maildir_sent_folder_is_read_apart_from_the_inbox(
    imap_app: App,  # noqa: F811 (fixture)
    tmp_path: Path,
) -> None:
    root = _maildir(tmp_path / "mail")
    sent_dir = _maildir(root / ".Sent")
    (root / "new" / "1000.a.host").write_bytes(ENQUIRY)
    (sent_dir / "cur" / "1001.b.host:2,S").write_bytes(ANSWER)
    acct = MaildirAccount.model_validate(
        {"name": "local-box", "kind": "maildir", "path": str(root), "sent_folders": ["Sent"]}
    )
    settings = imap_app.settings.model_copy(update={"accounts": (acct,)})
    workers = workers_for(imap_app, settings)
    assert [(w.folder, w.sent) for w in workers] == [(str(root), False), (str(sent_dir), True)]
    inbox, sent = workers
    assert isinstance(inbox, MaildirWorker) and isinstance(sent, MaildirWorker)
    # The inbox scan does not read the Sent folder as inbound mail.
    assert inbox.run_once().outcomes == {"created": 1}
    assert sent.run_once().outcomes == {"threaded": 1}
    [lead_id] = lead_ids(imap_app)
    assert lead_detail(imap_app, lead_id)["status"] == "Replied"
    assert [r[0] for r in rows(imap_app)] == ["in", "out"]


def test_the_whole_loop_with_leadmails_own_outbound_mail(
    imap_app: App,  # noqa: F811 (fixture)
    dovecot: Dovecot,
    imap_user: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Enquiry → lead; `send --lead` queues our mail, delivered → Replied; its copy in Sent
    (smtp.sent_copy) is not recorded twice; the lead's reply to our Message-ID → Open; a
    bounce of it marks the outbox row and the lead's address."""
    smtp = imap_app.settings.smtp.model_copy(update={"from_address": "sales@northwind.example"})
    app = dataclasses.replace(
        imap_app, settings=imap_app.settings.model_copy(update={"smtp": smtp})
    )
    acct = account(dovecot, imap_user, sent_folders=["Sent"])
    inbox = ImapWorker(app, acct, "INBOX")
    sent = ImapWorker(app, acct, "Sent", sent=True)
    dovecot.append(imap_user, "INBOX", [ENQUIRY])
    inbox.run_once()
    [lead_id] = lead_ids(app)

    queued = queue_mail(app, SendRequest(subject="Re: Quote", body="80 EUR each.", lead_id=lead_id))
    assert queued.outbox_id in outbox_store.claim_due(app.db.engine, utcnow(), 600, 10)
    with app.db.begin() as conn:
        row = outbox_store.take(conn, queued.outbox_id, utcnow())
        assert row is not None
    assert outbound.delivered(app, queued.outbox_id, {}, {"code": 250, "reply": "ok"})
    assert lead_detail(app, lead_id)["status"] == "Replied"

    # What smtp.sent_copy appends: the very bytes we sent.
    dovecot.append(imap_user, "Sent", [app.blobs.get(row["raw_sha256"])])
    assert sent.run_once().outcomes == {"duplicate": 1}

    reply = make_mail(
        subject="Re: Re: Quote",
        message_id="<reply-9@acme-industrial.example>",
        in_reply_to=f"<{queued.message_id}>",
    )
    dovecot.append(imap_user, "INBOX", [reply])
    assert inbox.run_once().outcomes == {"threaded": 1}
    assert lead_detail(app, lead_id)["status"] == "Open"

    notice = make_mail(
        sender="Mail Delivery System <MAILER-DAEMON@mx.northwind.example>",
        to="sales@northwind.example",
        subject="Undelivered Mail Returned to Sender",
        message_id="<bounce-9@mx.northwind.example>",
        headers={"X-Failed-Recipients": "jane@acme-industrial.example"},
        body="This is the mail system at host mx.northwind.example.\n\n"
        "--- Below this line is a copy of the message.\n\n"
        f"Message-ID: <{queued.message_id}>\n",
    )
    dovecot.append(imap_user, "INBOX", [notice])
    assert inbox.run_once().outcomes == {"ignored": 1}
    with app.db.begin() as conn:
        assert (outbox_store.get(conn, queued.outbox_id) or {})["status"] == "bounced"
    assert lead_detail(app, lead_id)["email_bouncing"] is True
    directions = [r[0] for r in rows(app)]
    assert directions == ["in", "out", "in", "in"]


def test_a_quarantined_sent_message_replays_as_sent_mail(
    imap_app: App,  # noqa: F811 (fixture)
    tmp_path: Path,
) -> None:
    """Held from a Sent folder (here: over the account's size limit), a message replays as
    our own sent mail, never as a stranger's enquiry that would make a lead of us."""
    root = _maildir(tmp_path / "mail")
    sent_dir = _maildir(root / ".Sent")
    (root / "new" / "1000.a.host").write_bytes(ENQUIRY)
    big = make_mail(
        sender="Alice Seller <alice@northwind.example>",
        to="jane@acme-industrial.example",
        subject="Catalogue",
        message_id="<catalogue-1@northwind.example>",
        body="x" * 4000,
    )
    (sent_dir / "cur" / "1001.b.host:2,S").write_bytes(big)
    acct = MaildirAccount.model_validate(
        {
            "name": "local-box",
            "kind": "maildir",
            "path": str(root),
            "sent_folders": ["Sent"],
            "max_message_bytes": 2048,
        }
    )
    app = dataclasses.replace(
        imap_app, settings=imap_app.settings.model_copy(update={"accounts": (acct,)})
    )
    inbox, sent = workers_for(app, app.settings)
    inbox.run_once()
    assert sent.run_once().outcomes == {"quarantined": 1}
    [entry] = list_entries(app)
    replayed = replay(app, entry["id"])
    assert replayed.outcome.value == "threaded"
    [lead_id] = lead_ids(app)
    assert replayed.lead_id == lead_id
    assert lead_detail(app, lead_id)["status"] == "Replied"
