"""Intake: one inbound message, one transaction, one recorded outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.errors import LeadmailError, ParseError
from worker.mail.addresses import email_key, guess_organization, lead_sender, organization_domain
from worker.mail.classify import Classification, Kind, classify
from worker.mail.message import InboundMessage, RawMessage
from worker.mail.parse import normalize, parse
from worker.mail.threading import ThreadMatch, normalize_subject, thread
from worker.services.context import App
from worker.store.blobs import safe_filename, sha256_hex
from worker.store.lookups import StoreLookups
from worker.store.models import (
    Attachment,
    Contact,
    Lead,
    LeadStatus,
    Message,
    Outcome,
    Participant,
    QuarantineEntry,
    StatusChange,
    utcnow,
)

log = logging.getLogger(__name__)

InTransaction = Callable[[Session], None]


@dataclass(frozen=True, slots=True)
class IntakeResult:
    source: str
    message_id: str | None
    outcome: Outcome
    kind: str | None
    lead_id: int | None
    reasons: tuple[str, ...] = ()
    quarantine_id: int | None = None
    size: int = 0  # raw bytes, for progress reporting

    def to_json(self) -> dict[str, Any]:
        """The `leadmail ingest --json` contract: keep these keys."""
        return {
            "source": self.source,
            "message_id": self.message_id,
            "outcome": self.outcome.value,
            "kind": self.kind,
            "lead_id": self.lead_id,
            "reasons": list(self.reasons),
        }


class Assigner(Protocol):
    """Routes a new lead inside the intake transaction (the rule engine plugs in here)."""

    def assign(self, session: Session, lead: Lead, msg: InboundMessage) -> None: ...


@dataclass
class _Prepared:
    """A message after the work that needs no transaction: parse and blob writes."""

    raw: RawMessage
    raw_sha256: str = ""
    content_hash: str = ""
    msg: InboundMessage | None = None
    error: LeadmailError | None = None
    attachment_hashes: list[str] = field(default_factory=list)


class Intake:
    """Turns raw messages into stored outcomes. Owns the transaction; nothing below commits."""

    def __init__(
        self, app: App, *, assigner: Assigner | None = None, dry_run: bool = False
    ) -> None:
        self.app = app
        self.assigner = assigner
        self.dry_run = dry_run
        self.max_bytes = app.settings.leads.max_message_bytes

    # -- public API -------------------------------------------------------------------

    def process(self, raw: RawMessage, in_transaction: InTransaction | None = None) -> IntakeResult:
        """One message end to end; ``in_transaction`` runs inside its commit (cursor updates)."""
        prepared = self._prepare([raw])[0]
        return self._finish(prepared, in_transaction)

    def process_many(self, raws: Iterable[RawMessage], batch: int | None = None) -> Iterator[IntakeResult]:
        """Many messages, blob writes fsynced per batch, each message still its own commit."""
        size = batch or self.app.settings.storage.fsync_batch
        iterator = iter(raws)
        while chunk := list(islice(iterator, size)):
            for prepared in self._prepare(chunk):
                yield self._finish(prepared, None)

    def replay(self, entry_id: int) -> IntakeResult:
        """Run a quarantined message through intake again from its stored raw bytes."""
        with self.app.db.transaction(write=False) as session:
            entry = session.get(QuarantineEntry, entry_id)
            if entry is None:
                from worker.errors import NotFoundError

                raise NotFoundError(f"no quarantine entry {entry_id}", entry_id)
            raw = RawMessage(
                data=self.app.blobs.get(entry.raw_sha256),
                source=entry.source or f"quarantine#{entry_id}",
                account=entry.account,
                folder=entry.folder,
                uid=entry.uid,
            )
        result = self.process(raw, in_transaction=None)
        if not self.dry_run and result.outcome is not Outcome.QUARANTINED:
            with self.app.db.transaction() as session:
                session.execute(
                    update(QuarantineEntry)
                    .where(QuarantineEntry.id == entry_id)
                    .values(status="replayed", replay_outcome=result.outcome.value,
                            replayed_at=utcnow())
                )
        return result

    # -- stages -----------------------------------------------------------------------

    def _prepare(self, raws: list[RawMessage]) -> list[_Prepared]:
        """Parse and write blobs for a batch, so one round of fsyncs covers all of them."""
        batch = [_Prepared(raw) for raw in raws]
        payloads: list[bytes] = []
        for item in batch:
            item.content_hash = _content_hash(item.raw.data)
            if len(item.raw.data) > self.max_bytes:
                item.error = ParseError(
                    f"message of {len(item.raw.data)} bytes exceeds leads.max_message_bytes "
                    f"({self.max_bytes})", len(item.raw.data))
            else:
                try:
                    item.msg = parse(item.raw.data)
                except ParseError as exc:
                    item.error = exc
                except Exception as exc:  # a parser bug must cost one message, not the run
                    item.error = ParseError(f"parser failed: {type(exc).__name__}: {exc}", None)
            payloads.append(item.raw.data)
            if item.msg is not None:
                payloads.extend(a.payload for a in item.msg.attachments)
        if self.dry_run:
            digests = [sha256_hex(p) for p in payloads]
        else:
            digests = self.app.blobs.put_many(payloads)
        position = 0
        for item in batch:
            item.raw_sha256 = digests[position]
            count = len(item.msg.attachments) if item.msg is not None else 0
            item.attachment_hashes = digests[position + 1 : position + 1 + count]
            position += 1 + count
        return batch

    def _finish(self, item: _Prepared, in_transaction: InTransaction | None) -> IntakeResult:
        if item.msg is None:
            assert item.error is not None
            return self._quarantine(item, item.error, in_transaction)
        try:
            return self._transact(item, item.msg, in_transaction)
        except IntegrityError:
            # Another process stored the same message between our check and our insert.
            return self._transact(item, item.msg, in_transaction)
        except Exception as exc:
            log.exception("intake failed for %s", item.raw.source)
            error = exc if isinstance(exc, LeadmailError) else LeadmailError(
                f"{type(exc).__name__}: {exc}", None)
            return self._quarantine(item, error, in_transaction)

    def _transact(
        self, item: _Prepared, msg: InboundMessage, in_transaction: InTransaction | None
    ) -> IntakeResult:
        with self.app.db.transaction() as session:
            result = _Decision(self, session, item, msg).run()
            if in_transaction is not None:
                in_transaction(session)
            if self.dry_run:
                session.rollback()
        return result

    def _quarantine(
        self, item: _Prepared, error: LeadmailError, in_transaction: InTransaction | None
    ) -> IntakeResult:
        reason = str(error).splitlines()[0][:2000] if str(error) else type(error).__name__
        message_id = item.msg.message_id if item.msg else None
        with self.app.db.transaction() as session:
            entry = session.scalars(
                select(QuarantineEntry).where(
                    QuarantineEntry.raw_sha256 == item.raw_sha256,
                    QuarantineEntry.status == "held",
                )
            ).first()
            if entry is None:
                entry = QuarantineEntry(
                    account=item.raw.account, folder=item.raw.folder, uid=item.raw.uid,
                    source=item.raw.source, raw_sha256=item.raw_sha256,
                    size=len(item.raw.data), reason=reason,
                    error_type=type(error).__name__, attempts=1,
                )
                session.add(entry)
            else:
                entry.attempts += 1
                entry.reason = reason
            session.flush()
            entry_id = entry.id
            if in_transaction is not None:
                in_transaction(session)
            if self.dry_run:
                session.rollback()
        return IntakeResult(item.raw.source, message_id, Outcome.QUARANTINED, None, None,
                            (f"quarantined #{entry_id}: {reason}",), quarantine_id=entry_id,
                            size=len(item.raw.data))


def _content_hash(data: bytes) -> str:
    try:
        return sha256_hex(normalize(data))
    except ParseError:
        return sha256_hex(data)  # not mail at all: it will be quarantined under its bytes


class _Decision:
    """The steps of one message inside its transaction: dedup, classify, thread, store."""

    def __init__(self, intake: Intake, session: Session, item: _Prepared, msg: InboundMessage):
        self.app = intake.app
        self.assigner = intake.assigner
        self.session = session
        self.item = item
        self.msg = msg
        self.raw = item.raw

    def run(self) -> IntakeResult:
        duplicate = self._duplicate()
        if duplicate is not None:
            return duplicate
        verdict = classify(self.msg, self.app.own)
        reasons = list(verdict.reasons)
        sender = lead_sender(self.msg, self.app.sender_policy)
        sender_key = email_key(sender.address.email) if sender.address else ""
        if sender.address is not None and sender.reason != "From":
            reasons.append(f"sender: {sender.reason}")
        policy = self.app.sender_policy
        org = organization_domain(sender_key, policy) if sender_key else None
        lookups = StoreLookups(self.session, {sender_key: org} if sender_key else {})
        if verdict.kind is not Kind.HUMAN:
            return self._ignored(verdict, reasons, sender_key, lookups)
        if verdict.spam:
            return self._store(Outcome.IGNORED, verdict, [*reasons, "spam: not a lead"], None)
        if not sender_key:
            return self._store(Outcome.IGNORED, verdict, [*reasons, "no sender address"], None)
        match = thread(self.msg, sender_key, lookups, self.app.signer)
        reasons.append(f"thread: {match.reason}")
        if match.lead_id is not None:
            return self._threaded(match, verdict, reasons, sender_key, org)
        return self._created(match, verdict, reasons, sender, sender_key, org)

    # -- outcomes ----------------------------------------------------------------------

    def _duplicate(self) -> IntakeResult | None:
        existing = self.session.execute(
            select(Message.id, Message.lead_id, Message.kind, Message.message_id)
            .where(Message.account == self.raw.account, Message.direction == "in",
                   Message.message_id == self.msg.message_id)
            .limit(1)
        ).first()
        why = "Message-ID already stored"
        if existing is None:
            existing = self.session.execute(
                select(Message.id, Message.lead_id, Message.kind, Message.message_id)
                .where(Message.content_hash == self.item.content_hash)
                .limit(1)
            ).first()
            why = "same content already stored"
        if existing is None:
            return None
        return IntakeResult(self.raw.source, self.msg.message_id, Outcome.DUPLICATE,
                            existing.kind, existing.lead_id,
                            (f"{why} as message #{existing.id}",), size=len(self.raw.data))

    def _ignored(self, verdict: Classification, reasons: list[str], sender_key: str,
                 lookups: StoreLookups) -> IntakeResult:
        lead_id: int | None = None
        if verdict.kind is Kind.BOUNCE and verdict.bounced_message_ids:
            lead_id = self._mark_bounced(verdict, reasons)
        if lead_id is None and (self.msg.in_reply_to or self.msg.references):
            ids = [*self.msg.in_reply_to, *reversed(self.msg.references)]
            found = lookups.leads_by_message_ids(ids)
            lead_id = found[0] if found else None
        reasons.append(f"{verdict.kind.value}: never a lead")
        return self._store(Outcome.IGNORED, verdict, reasons, lead_id)

    def _mark_bounced(self, verdict: Classification, reasons: list[str]) -> int | None:
        rows = self.session.execute(
            select(Message.id, Message.lead_id).where(
                Message.message_id.in_(list(verdict.bounced_message_ids)),
                Message.direction == "out",
            )
        ).all()
        if not rows:
            return None
        self.session.execute(
            update(Message).where(Message.id.in_([r.id for r in rows])).values(bounced=True)
        )
        leads = sorted({r.lead_id for r in rows if r.lead_id is not None})
        if leads:
            self.session.execute(
                update(Lead).where(Lead.id.in_(leads)).values(email_bouncing=True)
            )
            reasons.append(f"bounce marks lead(s) {', '.join(map(str, leads))} as bouncing")
        return leads[0] if leads else None

    def _threaded(self, match: ThreadMatch, verdict: Classification, reasons: list[str],
                  sender_key: str, org: str | None) -> IntakeResult:
        assert match.lead_id is not None
        lead = self.session.get(Lead, match.lead_id)
        assert lead is not None
        from_lead_side = sender_key == lead.email_key or (
            org is not None and org == lead.organization_domain
        ) or self._is_contact(lead.id, sender_key)
        result = self._store(Outcome.THREADED, verdict, reasons, lead.id)
        message_row_id = self._last_message_id
        if from_lead_side:
            self._add_contact(lead, sender_key)
            if lead.status in (LeadStatus.LEAD, LeadStatus.REPLIED):
                self._change_status(lead, LeadStatus.OPEN,
                                    f"reply from {sender_key}", message_row_id)
        return result

    def _created(self, match: ThreadMatch, verdict: Classification, reasons: list[str],
                 sender: Any, sender_key: str, org: str | None) -> IntakeResult:
        address = sender.address
        lead = Lead(
            person_name=(address.name or "").strip()[:255] or None,
            email=address.email,
            email_key=sender_key,
            organization_domain=org,
            company_name=guess_organization(sender_key, self.app.sender_policy),
            status=LeadStatus.LEAD.value,
            source=self.app.settings.leads.default_source,
            related_lead_id=match.related_lead_id,
            custom_fields={},
        )
        self.session.add(lead)
        self.session.flush()
        self.session.add(Contact(lead_id=lead.id, name=lead.person_name, email=address.email,
                                 email_key=sender_key, is_primary=True))
        result = self._store(Outcome.CREATED, verdict, reasons, lead.id)
        self._change_status(lead, LeadStatus.LEAD, f"created from message {self.msg.message_id}",
                            self._last_message_id, from_status=None)
        if self.assigner is not None:
            self.assigner.assign(self.session, lead, self.msg)
        return result

    # -- writes -------------------------------------------------------------------------

    _last_message_id: int | None = None

    def _store(self, outcome: Outcome, verdict: Classification, reasons: list[str],
               lead_id: int | None) -> IntakeResult:
        msg = self.msg
        sender = msg.from_address
        row = Message(
            direction="in", account=self.raw.account, folder=self.raw.folder, uid=self.raw.uid,
            source=self.raw.source, message_id=msg.message_id,
            in_reply_to=list(msg.in_reply_to), references=list(msg.references)[-100:],
            sender=sender.email if sender else None,
            sender_name=(sender.name[:255] or None) if sender else None,
            recipients={"to": [str(a) for a in msg.to], "cc": [str(a) for a in msg.cc],
                        "reply_to": [str(a) for a in msg.reply_to]},
            subject=msg.subject, subject_key=normalize_subject(msg.subject) or None,
            sent_at=msg.date, kind=verdict.kind.value, outcome=outcome.value,
            reasons=reasons, body_text=msg.text, body_html=msg.html or None,
            raw_sha256=self.item.raw_sha256, content_hash=self.item.content_hash,
            size=len(self.raw.data), defects=list(msg.defects)[:50], lead_id=lead_id,
        )
        self.session.add(row)
        self.session.flush()
        self._last_message_id = row.id
        for attachment, digest in zip(msg.attachments, self.item.attachment_hashes, strict=True):
            self.session.add(Attachment(
                message_id=row.id, filename=safe_filename(attachment.filename),
                content_type=attachment.content_type[:255], size=len(attachment.payload),
                sha256=digest, content_id=attachment.content_id, inline=attachment.inline))
        if lead_id is not None and outcome in (Outcome.CREATED, Outcome.THREADED):
            self._add_participants(lead_id)
        return IntakeResult(self.raw.source, msg.message_id, outcome, verdict.kind.value,
                            lead_id, tuple(reasons), size=len(self.raw.data))

    def _add_participants(self, lead_id: int) -> None:
        keys = {email_key(a.email) for a in (*self.msg.from_, *self.msg.to, *self.msg.cc,
                                              *self.msg.reply_to)}
        keys.discard("")
        if not keys:
            return
        known = set(self.session.scalars(select(Participant.email_key).where(
            Participant.lead_id == lead_id, Participant.email_key.in_(keys))))
        for key in sorted(keys - known):
            self.session.add(Participant(lead_id=lead_id, email_key=key[:320]))

    def _is_contact(self, lead_id: int, key: str) -> bool:
        return self.session.scalar(select(Contact.id).where(
            Contact.lead_id == lead_id, Contact.email_key == key)) is not None

    def _add_contact(self, lead: Lead, key: str) -> None:
        if key == lead.email_key or self._is_contact(lead.id, key):
            return
        address = next((a for a in self.msg.from_ if email_key(a.email) == key), None)
        self.session.add(Contact(lead_id=lead.id, name=(address.name if address else None) or None,
                                 email=address.email if address else key, email_key=key))

    def _change_status(self, lead: Lead, to: LeadStatus, cause: str, message_row_id: int | None,
                       from_status: str | None | type[Ellipsis] = ...) -> None:
        before = lead.status if from_status is ... else from_status
        lead.status = to.value
        self.session.add(StatusChange(lead_id=lead.id, from_status=before, to_status=to.value,
                                      cause=cause, message_id=message_row_id))
