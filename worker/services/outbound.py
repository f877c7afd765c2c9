"""Outbound mail: queued in one transaction, then moved along by what the delivery reports.

``queue_mail`` is ``leadmail send``: it resolves the lead (or makes one, routed like any new
lead), refuses what must not be sent, composes the message with its final Message-ID, writes
the raw bytes to the blob store, and records the ``messages`` row (direction out) and the
``outbox`` row in the same transaction. Nothing is queued when anything is refused. The
dispatcher and the worker (``worker/jobs``) then call the state changes below, each in a
short transaction of its own, never across SMTP.

For ``worker/jobs`` (the worker, after SMTP): ``delivered(app, id, results, log_entry,
sent_at)``, ``failed(app, id, error, results, log_entry)``, ``retry_later(app, id, due_at,
error, results, log_entry)``; each returns False, changing nothing, when the row is no
longer ``claimed``/``sending``. Claiming and taking rows: ``store/outbox.py``.
For intake: ``queue_mail(..., conn=conn)`` queues a new lead's acknowledgement inside its
transaction ([autoreply]). A bounce is handled in intake itself (``store/outbox.mark_bounced``
and ``mail/bounces.py``, which marks the lead's address only when it is the one that failed).
For people: ``queue_mail``, ``cancel``, ``retry``, ``list_outbox``, ``show_outbox``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from worker.errors import LeadmailError, NotFoundError, ValidationError
from worker.mail.addresses import email_key, normalize_email
from worker.mail.compose import Composed, Draft, OutboundFile, check_header, compose
from worker.mail.message import Address
from worker.mail.parse import SYNTHETIC_ID_DOMAIN
from worker.mail.threading import normalize_subject
from worker.routing.schema import Executive, RuleSet
from worker.services.attachments import read_file
from worker.services.context import App
from worker.services.leads import insert_new_lead
from worker.services.notes import check_actor, live_lead, optional_text
from worker.services.templates import render_template
from worker.store import blobs, inbound
from worker.store import leads as lead_store
from worker.store import outbox as store
from worker.store.lookups import StoreLookups
from worker.store.models import LeadStatus, OutboxStatus, utcnow

OUTBOUND_SOURCE = "Outbound"
"""The source of a lead made by ``send --to`` an address no lead has."""
ACCOUNT = "outbox"
"""The ``messages.account`` of mail we send (one row per Message-ID and direction)."""
MAX_RECIPIENTS = 100
# Statuses an outbound mail moves to Replied: the executive answered, the lead is waiting.
_TO_REPLIED = (LeadStatus.LEAD.value, LeadStatus.OPEN.value)


@dataclass(frozen=True, slots=True)
class SendRequest:
    """What ``leadmail send`` was asked, as typed (checked by ``queue_mail``).

    Exactly one of ``lead_id`` and ``to``; exactly one of ``body`` and ``template``.
    """

    subject: str
    body: str | None = None
    template: str | None = None
    variables: tuple[tuple[str, str], ...] = ()
    lead_id: int | None = None
    to: str | None = None
    cc: tuple[str, ...] = ()
    attachments: tuple[Path, ...] = ()
    executive: str | None = None
    markdown: bool = False
    force: bool = False
    reason: str | None = None
    actor: str = "leadmail"
    # e.g. Auto-Submitted on an acknowledgement (RFC 3834).
    extra_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class QueuedMail:
    outbox_id: int
    message_id: str
    lead_id: int
    status: str
    lead_created: bool = False

    def to_json(self) -> dict[str, Any]:
        """What ``send --json`` prints."""
        return {
            "outbox_id": self.outbox_id,
            "message_id": self.message_id,
            "lead_id": self.lead_id,
            "status": self.status,
        }


def queue_mail(
    app: App,
    request: SendRequest,
    now: datetime | None = None,
    *,
    conn: Connection | None = None,
) -> QueuedMail:
    """Queue one mail, or refuse it with one line and queue nothing (see the module doc).

    With ``conn``, inside the caller's transaction (intake's acknowledgement of a new lead
    is queued in the transaction that makes the lead), which the caller commits; a refusal
    then leaves the caller to roll back what it began (a savepoint).
    """
    now = now or utcnow()
    actor = check_actor(request.actor)
    subject = _checked_subject(request.subject)
    reason = optional_text(request.reason, "--reason", 2000)
    if reason is not None and not request.force:
        raise ValidationError("--reason goes with --force", reason)
    if (request.lead_id is None) == (request.to is None):
        raise ValidationError("give exactly one of --lead ID and --to ADDRESS", None)
    if (request.body is None) == (request.template is None):
        raise ValidationError("give exactly one of a body and --template", None)
    variables = _variables(request.variables)
    to = _one_address("--to", request.to) if request.to is not None else None
    cc = [_one_address("--cc", value) for value in request.cc]
    if len(cc) + 1 > MAX_RECIPIENTS:
        raise ValidationError(f"at most {MAX_RECIPIENTS} recipients", len(cc) + 1)
    files = _files(app, request.attachments)
    from worker.services.assignment import rule_book  # the rule engine: only here

    rules = rule_book(app).load()  # a broken rule file is refused here, before anything
    chosen = _executive(rules, request.executive) if request.executive else None

    with _transaction(app, conn) as conn:
        lead_id, created = _resolve_lead(app, conn, rules, request.lead_id, to, actor, now)
        lead = store.lead_for_mail(conn, lead_id)
        if lead is None:  # pragma: no cover - resolved in this very transaction
            raise ValidationError(f"no lead {lead_id}", lead_id)
        forced = _refusals(lead, request.force, reason)
        recipient = to or _lead_address(lead)
        executive = chosen or _assigned(rules, lead.get("assigned_to"))
        sender, envelope_from = _sender(app, executive)
        text = request.body
        if request.template is not None:
            context = template_context(lead, executive, variables)
            text = render_template(app.settings.smtp.templates_path, request.template, context)
        assert text is not None
        composed = _compose(
            app, conn, lead_id, sender, recipient, cc, subject, text, files, request, now
        )
        if len(composed.raw) > app.settings.leads.max_message_bytes:
            raise ValidationError(
                f"the mail is {len(composed.raw)} bytes, over leads.max_message_bytes "
                f"({app.settings.leads.max_message_bytes})",
                len(composed.raw),
            )
        stored = app.blobs.put(composed.raw)  # durable before the commit that names it
        blobs.record(conn, stored.refs)
        digest = stored.digests[0]
        row_id = inbound.insert_message(
            conn,
            _message_row(composed, sender, now),
            kind="own",
            outcome="outbound",
            reasons=[f"queued by {actor}"],
            raw_sha256=digest,
            lead_id=lead_id,
            now=now,
        )
        keys = [email_key(a) for a in (*composed.to, *composed.cc)]
        inbound.add_participants(conn, lead_id, [k for k in keys if k != lead["email_key"]])
        outbox_id = store.insert(
            conn,
            lead_id=lead_id,
            message_row_id=row_id,
            message_id=composed.message_id,
            executive=executive.id if executive else None,
            envelope_from=envelope_from,
            recipients=list(composed.envelope_recipients),
            subject=composed.subject,
            raw_sha256=digest,
            status=OutboxStatus.PENDING.value,
            due_at=now,
            reason=reason,
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
        if forced:
            _log_forced(conn, lead_id, outbox_id, composed.message_id, forced, reason, actor, now)
    return QueuedMail(outbox_id, composed.message_id, lead_id, OutboxStatus.PENDING, created)


@contextmanager
def _transaction(app: App, conn: Connection | None) -> Iterator[Connection]:
    """The caller's transaction when it has one, else one of our own."""
    if conn is not None:
        yield conn
        return
    with app.db.begin() as fresh:
        yield fresh


# -- checks before the transaction --------------------------------------------------------------


def _checked_subject(subject: str) -> str:
    check_header("Subject", subject)
    text = " ".join(subject.split())
    if not text:
        raise ValidationError("--subject is empty", subject)
    if len(text) > 998:
        raise ValidationError("--subject is longer than 998 characters", len(text))
    return text


def _one_address(option: str, value: str) -> Address:
    """``jane@acme.example`` or ``Jane Buyer <jane@acme.example>``; one, never a list."""
    check_header("To" if option == "--to" else "Cc", value)
    pairs = getaddresses([value])
    if len(pairs) != 1 or not normalize_email(pairs[0][1]) or "@" not in value:
        raise ValidationError(f"{option} {value!r} is not one email address", value)
    name, address = pairs[0]
    return Address(" ".join(name.split()), normalize_email(address))


def _variables(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in pairs:
        name = key.strip()
        if not name.isidentifier():
            raise ValidationError(f"--var {key!r}: a name of letters, digits and _", key)
        found[name] = value
    return found


def _files(app: App, paths: Sequence[Path]) -> tuple[OutboundFile, ...]:
    """Every attachment read now: a missing one refuses the mail before anything is written."""
    limit = app.settings.leads.max_message_bytes
    files = tuple(OutboundFile(path.name, read_file(path, limit)) for path in paths)
    total = sum(len(f.data) for f in files)
    if total > limit:
        raise ValidationError(
            f"the attachments hold {total} bytes, over leads.max_message_bytes ({limit})", total
        )
    return files


def _executive(rules: RuleSet | None, given: str) -> Executive:
    """``--as``: an executive of the rule file, by id (any case) or name."""
    wanted = given.strip().casefold()
    if rules is not None:
        for executive in rules.executives.values():
            if wanted in (executive.id.casefold(), executive.name.casefold()):
                return executive
    known = ", ".join(sorted(rules.executives)) if rules is not None else "no rule file"
    raise ValidationError(f"unknown executive {given!r} (known: {known})", given)


def _assigned(rules: RuleSet | None, assigned_to: str | None) -> Executive | None:
    if rules is None or not assigned_to:
        return None
    return rules.executive(assigned_to)


# -- inside the transaction ---------------------------------------------------------------------


def _resolve_lead(
    app: App,
    conn: Connection,
    rules: RuleSet | None,
    lead_id: int | None,
    to: Address | None,
    actor: str,
    now: datetime,
) -> tuple[int, bool]:
    """The lead the mail goes on, and whether this mail made it."""
    if lead_id is not None:
        try:
            return live_lead(conn, lead_id), False
        except NotFoundError:
            raise ValidationError(f"no lead {lead_id}", lead_id) from None
    assert to is not None
    key = email_key(to.email)
    inbound.lock_sender(conn, key)  # against intake making a lead of the same address
    existing = StoreLookups(conn).leads_by_address(key)
    if existing:
        return live_lead(conn, existing[0]), False
    created = insert_new_lead(
        app,
        conn,
        rules,
        email=to.email,
        person_name=to.name[:255] or None,
        company=None,
        source=OUTBOUND_SOURCE,
        cause=f"created by outbound mail from {actor}",
        now=now,
    )
    return created, True


def _refusals(lead: Mapping[str, Any], force: bool, reason: str | None) -> list[str]:
    """Refuse mail the lead must not get; with --force, what was overridden (for the log)."""
    forced: list[str] = []
    lead_id = lead["id"]
    if lead["status"] == LeadStatus.DO_NOT_CONTACT.value:
        if not (force and reason):
            raise ValidationError(
                f"lead {lead_id} is Do Not Contact: nothing sent (--force --reason TEXT "
                "to send anyway)",
                lead_id,
            )
        forced.append("Do Not Contact")
    if lead["email_bouncing"]:
        if not force:
            raise ValidationError(
                f"lead {lead_id}'s address {lead['email']} is marked bouncing: nothing sent "
                "(--force to send anyway)",
                lead_id,
            )
        forced.append("address bouncing")
    return forced


def _lead_address(lead: Mapping[str, Any]) -> Address:
    if not lead.get("email"):
        raise ValidationError(f"lead {lead['id']} has no email address: use --to", lead["id"])
    return Address(" ".join((lead.get("person_name") or "").split()), lead["email"])


def _sender(app: App, executive: Executive | None) -> tuple[Address, str]:
    """From (the executive, else [smtp] from_name/from_address) and the envelope sender."""
    smtp = app.settings.smtp
    name = executive.name if executive is not None else (smtp.from_name or "")
    address = (executive.email if executive is not None else None) or smtp.from_address
    if not address:
        who = f"executive {executive.id} has no email in the rule file and " if executive else ""
        raise ValidationError(f"no sender address: {who}[smtp] from_address is not set", None)
    return Address(name, address), smtp.from_address or address


def _id_domain(app: App, envelope_from: str) -> str:
    """Our Message-ID domain: the first of [leads] own_domains, else the sender's domain
    (classify then sees our own ids as ours: a copy that comes back is a loop, not a lead)."""
    domains = app.settings.leads.own_domains
    return domains[0] if domains else envelope_from.rpartition("@")[2]


def _compose(
    app: App,
    conn: Connection,
    lead_id: int,
    sender: Address,
    recipient: Address,
    cc: Sequence[Address],
    subject: str,
    text: str,
    files: tuple[OutboundFile, ...],
    request: SendRequest,
    now: datetime,
) -> Composed:
    parent = store.thread_parent(conn, lead_id)
    parent_id, references = parent if parent is not None else (None, [])
    if parent_id is not None and parent_id.endswith("@" + SYNTHETIC_ID_DOMAIN):
        parent_id = None  # an id we made up for a message without one: nobody knows it
    envelope_from = app.settings.smtp.from_address or sender.email
    return compose(
        Draft(
            sender=sender,
            to=(recipient,),
            cc=tuple(cc),
            subject=subject,
            text=text,
            token=app.signer.token(lead_id),
            id_domain=_id_domain(app, envelope_from),
            markdown=request.markdown,
            parent_id=parent_id,
            parent_references=tuple(references),
            attachments=files,
            subject_tag=app.signer.subject_tag(lead_id) if app.settings.smtp.subject_tag else None,
            extra_headers=request.extra_headers,
            date=now,
        )
    )


def _message_row(composed: Composed, sender: Address, now: datetime) -> dict[str, Any]:
    """The ``messages`` row of a mail we send: threading step 1 finds replies to it, ``leads
    show`` lists it, and the copy in a Sent folder is recognised by its Message-ID."""
    msg = composed.message
    return {
        "direction": "out",
        "account": ACCOUNT,
        "folder": None,
        "uid": None,
        "source": None,
        "message_id": composed.message_id,
        "in_reply_to": list(composed.in_reply_to),
        "references": list(composed.references),
        "sender": sender.email,
        "sender_name": sender.name[:255] or None,
        "recipients": {"to": [str(v) for v in msg["To"].addresses], "cc": _cc(msg)},
        "subject": composed.subject,
        "subject_key": normalize_subject(composed.subject)[:255] or None,
        "sent_at": now,
        "body_text": _plain(composed),
        "body_html": composed.html,
        "content_hash": hashlib.sha256(composed.raw).hexdigest(),
        "size": len(composed.raw),
        "defects": [],
        "bounced": False,
    }


def _cc(msg: Any) -> list[str]:
    header = msg["Cc"]
    return [str(v) for v in header.addresses] if header is not None else []


def _plain(composed: Composed) -> str:
    body = composed.message.get_body(("plain",))
    return str(body.get_content()) if body is not None else ""


def _log_forced(
    conn: Connection,
    lead_id: int,
    outbox_id: int,
    message_id: str,
    forced: list[str],
    reason: str | None,
    actor: str,
    now: datetime,
) -> None:
    why = f": {reason}" if reason else ""
    lead_store.record_activity(
        conn,
        lead_id,
        kind="outbound",
        summary=f"by {actor}: mail sent despite {' and '.join(forced)} (--force){why}",
        actor=actor,
        details={
            "outbox_id": outbox_id,
            "message_id": message_id,
            "forced": forced,
            "reason": reason,
        },
        now=now,
    )


def template_context(
    lead: Mapping[str, Any], executive: Executive | None, variables: Mapping[str, str]
) -> dict[str, Any]:
    """What a template sees: the lead's fields (top level and as ``lead``), its custom fields
    (``custom``), the sending ``executive``, then ``--var`` values, which win. A field the
    lead does not have is left out, so using it is the missing-variable error, not "None"."""
    fields = {
        "id": lead["id"],
        "lead_id": lead["id"],
        "name": lead.get("person_name"),
        "person_name": lead.get("person_name"),
        "company": lead.get("company_name"),
        "company_name": lead.get("company_name"),
        "email": lead.get("email"),
        "status": lead.get("status"),
        "source": lead.get("source"),
        "gender": lead.get("gender"),
        "phone": lead.get("phone"),
        "mobile": lead.get("mobile"),
        "website": lead.get("website"),
        "lead_type": lead.get("lead_type"),
        "market_segment": lead.get("market_segment"),
        "industry": lead.get("industry"),
        "territory": lead.get("territory"),
        "assigned_to": lead.get("assigned_to"),
    }
    present = {k: v for k, v in fields.items() if v is not None and v != ""}
    custom = {k: v for k, v in (lead.get("custom_fields") or {}).items() if v is not None}
    context: dict[str, Any] = {**present, "lead": {**present, "custom": custom}, "custom": custom}
    if executive is not None:
        context["executive"] = {
            k: v
            for k, v in (("id", executive.id), ("name", executive.name), ("email", executive.email))
            if v
        }
    context.update(variables)
    return context


# -- what the delivery reports ------------------------------------------------------------------


def delivered(
    app: App,
    outbox_id: int,
    results: dict[str, Any],
    log_entry: dict[str, Any],
    sent_at: datetime | None = None,
    *,
    taken: Mapping[str, Any] | None = None,
) -> bool:
    """The server took the mail: the row is ``sent``, and its lead, if Lead or Open, is now
    Replied (the executive answered; the lead's move), logged with the mail as its cause.
    False (and nothing changed) when the row was no longer in flight. ``taken``: the row as
    the worker took it (store.take), which spares reading it again."""
    when = sent_at or utcnow()
    with app.db.begin() as conn:
        if not store.mark_sent(conn, outbox_id, results, log_entry, when, taken=taken):
            return False
        row = taken if taken is not None else store.get(conn, outbox_id)
        assert row is not None
        # An automatic acknowledgement answers nothing: the lead still waits for a person.
        if row.get("created_by") == inbound.AUTOREPLY_ACTOR:
            return True
        status = store.lead_status(conn, row["lead_id"])
        if status in _TO_REPLIED:
            inbound.set_lead_status(conn, row["lead_id"], LeadStatus.REPLIED.value, when)
            inbound.log_status_change(
                conn,
                row["lead_id"],
                before=status,
                to=LeadStatus.REPLIED.value,
                cause=f"outbound mail {row['message_id']} sent",
                message_row_id=row["message_row_id"],
                now=when,
            )
    return True


def failed(
    app: App,
    outbox_id: int,
    error: str,
    results: dict[str, Any],
    log_entry: dict[str, Any],
    *,
    taken: Mapping[str, Any] | None = None,
) -> bool:
    """A permanent failure (5xx, retries spent): the row is ``failed`` with the last reply."""
    with app.db.begin() as conn:
        return store.mark_failed(conn, outbox_id, _one_line(error), results, log_entry, taken=taken)


def retry_later(
    app: App,
    outbox_id: int,
    due_at: datetime,
    error: str,
    results: dict[str, Any],
    log_entry: dict[str, Any],
    *,
    taken: Mapping[str, Any] | None = None,
) -> bool:
    """A temporary failure: back to ``pending``, due again at ``due_at``."""
    with app.db.begin() as conn:
        return store.mark_retry(
            conn, outbox_id, due_at, _one_line(error), results, log_entry, taken=taken
        )


def cancel(app: App, outbox_id: int, actor: str) -> dict[str, Any]:
    """``outbox cancel``: only a mail no worker has handed to a server yet."""
    who = check_actor(actor)
    now = utcnow()
    with app.db.begin() as conn:
        row = _row(conn, outbox_id)
        if not store.cancel(conn, outbox_id, now):
            raise ValidationError(
                f"outbox {outbox_id} is {row['status']}: only a pending or claimed mail can "
                "be cancelled",
                outbox_id,
            )
        _log_change(conn, row, f"by {who}: outbound mail {row['message_id']} cancelled", who, now)
        return _row(conn, outbox_id)


def retry(app: App, outbox_id: int, actor: str) -> dict[str, Any]:
    """``outbox retry``: a failed mail back to pending, due now (same Message-ID)."""
    who = check_actor(actor)
    now = utcnow()
    with app.db.begin() as conn:
        row = _row(conn, outbox_id)
        if not store.requeue(conn, outbox_id, now):
            raise ValidationError(
                f"outbox {outbox_id} is {row['status']}: only a failed mail can be retried",
                outbox_id,
            )
        _log_change(conn, row, f"by {who}: outbound mail {row['message_id']} retried", who, now)
        return _row(conn, outbox_id)


def _row(conn: Connection, outbox_id: int) -> dict[str, Any]:
    row = store.get(conn, outbox_id, lock=True)
    if row is None:
        raise NotFoundError(f"no outbox mail {outbox_id}", outbox_id)
    return row


def _log_change(
    conn: Connection, row: Mapping[str, Any], summary: str, actor: str, now: datetime
) -> None:
    lead_store.record_activity(
        conn,
        row["lead_id"],
        kind="outbound",
        summary=summary,
        actor=actor,
        details={"outbox_id": row["id"], "message_id": row["message_id"]},
        now=now,
    )


# -- reads for the CLI --------------------------------------------------------------------------


def list_outbox(
    app: App, status: str | None = None, lead_id: int | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    if status is not None and status not in {s.value for s in OutboxStatus}:
        known = ", ".join(s.value for s in OutboxStatus)
        raise ValidationError(f"unknown outbox status {status!r}; one of: {known}", status)
    with app.db.engine.connect() as conn:
        if lead_id is not None:
            try:
                lead_id = live_lead(conn, lead_id)
            except NotFoundError:
                raise ValidationError(f"no lead {lead_id}", lead_id) from None
        return store.rows(conn, status=status, lead_id=lead_id, limit=limit)


def show_outbox(app: App, outbox_id: int) -> dict[str, Any]:
    """The row, its raw message's headers and text body (from the blob store)."""
    with app.db.engine.connect() as conn:
        row = store.get(conn, outbox_id)
    if row is None:
        raise NotFoundError(f"no outbox mail {outbox_id}", outbox_id)
    try:
        raw = app.blobs.get(row["raw_sha256"])
    except LeadmailError as exc:
        row.update(headers=[], body=None, blob_error=str(exc))
        return row
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    row["headers"] = [[name, str(value)] for name, value in msg.items()]
    body = msg.get_body(("plain",))
    row["body"] = body.get_content() if body is not None else None
    row["attachments"] = [
        {"filename": part.get_filename(), "content_type": part.get_content_type()}
        for part in msg.iter_attachments()
    ]
    return row


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:2000]
