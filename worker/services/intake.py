"""Intake: one inbound message, one transaction, one recorded outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from worker.errors import LeadmailError, NotFoundError
from worker.mail.addresses import LeadSender, email_key, is_no_reply
from worker.mail.classify import Classification, Kind
from worker.mail.message import InboundMessage, RawMessage
from worker.mail.threading import ThreadMatch, ancestor_ids, thread
from worker.services.assignment import Pending, RuleAssigner, rule_book
from worker.services.context import App
from worker.services.preparation import (
    MailPolicy,
    Prepared,
    Preparer,
    content_hash,
    default_workers,
    prepare_batch,
)
from worker.store.blobs import safe_filename, sha256_hex
from worker.store.fast import FastStatement
from worker.store.lookups import IS_CONTACT, KNOWN_SENDER, StoreLookups
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
    table_of,
    utcnow,
)

log = logging.getLogger(__name__)

InTransaction = Callable[[Connection], None]
# Called inside each message's transaction with the message it commits (a cursor update).
PerMessage = Callable[[Connection, RawMessage], None]

_leads = table_of(Lead)
_messages = table_of(Message)
_contacts = table_of(Contact)
_participants = table_of(Participant)
_attachments = table_of(Attachment)
_status_changes = table_of(StatusChange)
_quarantine = table_of(QuarantineEntry)


# Statements built once; values are bound at execution (see store/lookups.py for why).
_INSERT_LEAD = insert(_leads).returning(_leads.c.id)
_INSERT_MESSAGE = insert(_messages).returning(_messages.c.id)
_INSERT_CONTACT = insert(_contacts)
_INSERT_STATUS = insert(_status_changes)
# One round trip answers both "stored already?" and "do we know this sender?".
_DUPLICATE_ID = (
    select(_messages.c.id)
    .where(
        or_(
            (_messages.c.account == bindparam("account"))
            & (_messages.c.direction == "in")
            & (_messages.c.message_id == bindparam("message_id")),
            _messages.c.content_hash == bindparam("content_hash"),
        )
    )
    .limit(1)
    .scalar_subquery()
)
_PRECHECK = select(_DUPLICATE_ID, KNOWN_SENDER.scalar_subquery())
_STORED = select(
    _messages.c.id,
    _messages.c.lead_id,
    _messages.c.kind,
    _messages.c.message_id,
    _messages.c.account,
).where(_messages.c.id == bindparam("id"))
_LEAD_STATE = select(
    _leads.c.id, _leads.c.email_key, _leads.c.organization_domain, _leads.c.status
).where(_leads.c.id == bindparam("id"))
_SET_STATUS = (
    update(_leads)
    .where(_leads.c.id == bindparam("lead_id"))
    .values(status=bindparam("status"), updated_at=bindparam("now"))
)
# The statements every new message runs, on the driver's cursor (see store/fast.py).
_FAST_PRECHECK = FastStatement(_PRECHECK)
_FAST_INSERT_LEAD = FastStatement(_INSERT_LEAD)
_FAST_INSERT_MESSAGE = FastStatement(_INSERT_MESSAGE)
_FAST_INSERT_STATUS = FastStatement(_INSERT_STATUS)
_FAST_SET_STATUS = FastStatement(_SET_STATUS)
# And these two, many rows at once (executemany).
_FAST_INSERT_ATTACHMENTS = FastStatement(insert(_attachments))
_FAST_ADD_PARTICIPANTS = {
    "sqlite": FastStatement(sqlite_insert(_participants).on_conflict_do_nothing()),
    "postgresql": FastStatement(pg_insert(_participants).on_conflict_do_nothing()),
}


# A long run refreshes the planner's statistics after this many messages, then 8×, 64× …
# (store/db.py: Database.refresh_statistics).
_FIRST_ANALYZE = 200


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
    """Routes a new lead inside the intake transaction (the rule engine plugs in here).

    ``decide_new`` sees the lead's columns before the INSERT, so the lead goes in with its
    executive; ``record_new`` stores the decision once the lead has an id.
    """

    def decide_new(
        self, conn: Connection, msg: InboundMessage, lead: Mapping[str, Any]
    ) -> Pending | None: ...

    def record_new(self, conn: Connection, lead_id: int, pending: Pending) -> None: ...


class _DryRunRollback(Exception):
    """Raised inside a dry-run transaction so that nothing it wrote is committed."""


class _CallbackFailed(Exception):
    """The caller's in-transaction step failed: not the message's fault, so no quarantine."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class Intake:
    """Turns raw messages into stored outcomes. Owns the transaction; nothing below commits."""

    def __init__(
        self,
        app: App,
        *,
        assigner: Assigner | None = None,
        dry_run: bool = False,
        max_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.assigner = assigner if assigner is not None else default_assigner(app)
        self.dry_run = dry_run
        self.max_bytes = max_bytes or app.settings.leads.max_message_bytes
        self._conn: Connection | None = None  # held across a batch by process_many
        self._blobs = None if dry_run else app.blobs
        self._policy = MailPolicy(app.own, app.sender_policy)

    # -- public API -------------------------------------------------------------------

    def process(self, raw: RawMessage, in_transaction: InTransaction | None = None) -> IntakeResult:
        """One message end to end; ``in_transaction`` runs inside its commit (cursor updates)."""
        prepared = prepare_batch([raw], self._blobs, self.max_bytes, self._policy)[0]
        return self._finish(prepared, in_transaction)

    def process_many(
        self,
        raws: Iterable[RawMessage],
        batch: int | None = None,
        workers: int | None = None,
        in_transaction: PerMessage | None = None,
    ) -> Iterator[IntakeResult]:
        """Many messages; blob fsyncs are shared per batch, each message is still one commit.

        With ``workers`` > 0, batches are parsed and written in worker processes while this
        one commits the batch before. ``in_transaction`` runs inside each message's commit
        (the IMAP cursor); when it raises, the message is rolled back and the error ends
        the run: the caller's state, not the message, is at fault.
        """
        settings = self.app.settings
        count = settings.ingest.parse_workers if workers is None else workers
        preparer = Preparer(
            self._blobs,
            self.max_bytes,
            batch or settings.storage.fsync_batch,
            default_workers() if count < 0 else count,
            self._policy,
        )
        with self.app.db.connect() as conn:
            self._conn = conn
            # A dry run keeps one outer transaction, each message a savepoint inside it, so a
            # reply or a copy later in the run sees the lead an earlier message would create;
            # the whole run is rolled back at the end.
            outer = conn.begin() if self.dry_run else None
            done, analyze_at = 0, _FIRST_ANALYZE
            try:
                for prepared_batch in preparer.batches(raws):
                    for prepared in prepared_batch:
                        yield self._finish(prepared, _bind(in_transaction, prepared.raw))
                    done += len(prepared_batch)
                    if done >= analyze_at and outer is None:
                        self.app.db.refresh_statistics(conn)
                        analyze_at *= 8
            finally:
                self._conn = None
                if outer is not None:
                    outer.rollback()

    def replay(self, entry_id: int) -> IntakeResult:
        """Run a quarantined message through intake again from its stored raw bytes."""
        with self.app.db.engine.connect() as conn:
            entry = conn.execute(select(_quarantine).where(_quarantine.c.id == entry_id)).first()
        if entry is None:
            raise NotFoundError(f"no quarantine entry {entry_id}", entry_id)
        raw = RawMessage(
            data=self.app.blobs.get(entry.raw_sha256),
            source=entry.source or f"quarantine#{entry_id}",
            account=entry.account,
            folder=entry.folder,
            uid=entry.uid,
        )
        result = self.process(raw)
        if not self.dry_run and result.outcome is not Outcome.QUARANTINED:
            with self.app.db.begin() as conn:
                conn.execute(
                    update(_quarantine)
                    .where(_quarantine.c.id == entry_id)
                    .values(
                        status="replayed", replay_outcome=result.outcome.value, replayed_at=utcnow()
                    )
                )
        return result

    # -- stages -----------------------------------------------------------------------

    def _finish(self, item: Prepared, in_transaction: InTransaction | None) -> IntakeResult:
        if item.msg is None:
            assert item.error is not None
            return self._quarantine(item, item.error, in_transaction)
        try:
            try:
                return self._transact(item, item.msg, in_transaction)
            except IntegrityError:
                # Another process stored the same message between our check and our insert:
                # the second attempt finds it and reports a duplicate.
                return self._transact(item, item.msg, in_transaction)
        except _CallbackFailed as failed:
            raise failed.original from None
        except Exception as exc:
            log.exception("intake failed for %s", item.raw.source)
            error = (
                exc
                if isinstance(exc, LeadmailError)
                else LeadmailError(f"{type(exc).__name__}: {exc}", None)
            )
            return self._quarantine(item, error, in_transaction)

    def _transact(
        self, item: Prepared, msg: InboundMessage, in_transaction: InTransaction | None
    ) -> IntakeResult:
        def work(conn: Connection) -> IntakeResult:
            result = _Decision(self, conn, item, msg).run()
            _call(in_transaction, conn)
            return result

        return self._in_transaction(work)

    def _in_transaction(self, work: Callable[[Connection], IntakeResult]) -> IntakeResult:
        if not self.dry_run:
            with self.app.db.begin(self._conn) as conn:
                return work(conn)
        if self._conn is not None and self._conn.in_transaction():
            with self._conn.begin_nested():
                return work(self._conn)
        outcome: list[IntakeResult] = []
        try:
            with self.app.db.begin(self._conn) as conn:
                outcome.append(work(conn))
                raise _DryRunRollback
        except _DryRunRollback:
            return outcome[0]

    def _quarantine(
        self, item: Prepared, error: LeadmailError, in_transaction: InTransaction | None
    ) -> IntakeResult:
        reason = (str(error).splitlines() or [type(error).__name__])[0][:2000]
        message_id = item.msg.message_id if item.msg else None

        def work(conn: Connection) -> IntakeResult:
            entry_id = conn.scalar(
                select(_quarantine.c.id)
                .where(_quarantine.c.raw_sha256 == item.raw_sha256, _quarantine.c.status == "held")
                .limit(1)
            )
            if entry_id is None:
                entry_id = conn.scalar(
                    insert(_quarantine)
                    .values(
                        account=item.raw.account,
                        folder=item.raw.folder,
                        uid=item.raw.uid,
                        source=item.raw.source,
                        raw_sha256=item.raw_sha256,
                        size=item.size,
                        reason=reason,
                        error_type=type(error).__name__,
                        status="held",
                        attempts=1,
                        created_at=utcnow(),
                    )
                    .returning(_quarantine.c.id)
                )
            else:
                conn.execute(
                    update(_quarantine)
                    .where(_quarantine.c.id == entry_id)
                    .values(attempts=_quarantine.c.attempts + 1, reason=reason)
                )
            _call(in_transaction, conn)
            return IntakeResult(
                item.raw.source,
                message_id,
                Outcome.QUARANTINED,
                None,
                None,
                (f"quarantined #{entry_id}: {reason}",),
                quarantine_id=entry_id,
                size=item.size,
            )

        try:
            return self._in_transaction(work)
        except _CallbackFailed as failed:
            raise failed.original from None

    def known(self, raws: list[RawMessage]) -> set[int]:
        """Positions in ``raws`` of messages stored or held already, by their bytes alone.

        Lets a watcher that rescans a folder skip the parse of everything it has seen.
        """
        hashes = [content_hash(raw.data) for raw in raws]
        raw_hashes = [sha256_hex(raw.data) for raw in raws]
        with self.app.db.engine.connect() as conn:
            stored = set(
                conn.scalars(
                    select(_messages.c.content_hash).where(_messages.c.content_hash.in_(hashes))
                )
            )
            held = set(
                conn.scalars(
                    select(_quarantine.c.raw_sha256).where(_quarantine.c.raw_sha256.in_(raw_hashes))
                )
            )
        return {
            i
            for i, (h, r) in enumerate(zip(hashes, raw_hashes, strict=True))
            if h in stored or r in held
        }


def default_assigner(app: App) -> Assigner:
    """The rule engine, with the rule file of the config ([rules] path)."""
    return RuleAssigner(rule_book(app))


def _bind(callback: PerMessage | None, raw: RawMessage) -> InTransaction | None:
    if callback is None:
        return None
    return lambda conn: callback(conn, raw)


def _call(callback: InTransaction | None, conn: Connection) -> None:
    if callback is None:
        return
    try:
        callback(conn)
    except Exception as exc:
        raise _CallbackFailed(exc) from exc


class _Decision:
    """The steps of one message inside its transaction: dedup, classify, thread, store."""

    def __init__(self, intake: Intake, conn: Connection, item: Prepared, msg: InboundMessage):
        self.app = intake.app
        self.assigner = intake.assigner
        self.conn = conn
        self.item = item
        self.msg = msg
        self.raw = item.raw
        self.now = utcnow()
        self._lead_key: str | None = None  # the email key of the lead the message lands on

    def run(self) -> IntakeResult:
        verdict, sender = self.item.verdict, self.item.sender
        assert verdict is not None and sender is not None
        sender_key, org = self.item.sender_key, self.item.org
        params = {
            "account": self.raw.account,
            "message_id": self.msg.message_id,
            "content_hash": self.item.content_hash,
            "email_key": sender_key,
        }
        duplicate_id, known = _FAST_PRECHECK.one(self.conn, params)
        if duplicate_id is not None:
            return self._duplicate(duplicate_id)
        reasons = list(verdict.reasons)
        if sender.address is not None and sender.reason != "From":
            reasons.append(f"sender: {sender.reason}")
        lookups = StoreLookups(self.conn, {sender_key: org} if sender_key else {})
        lookups.remember_known(sender_key, bool(known))
        if verdict.kind is not Kind.HUMAN:
            return self._ignored(verdict, reasons, lookups)
        if verdict.spam:
            return self._store(Outcome.IGNORED, verdict, [*reasons, "spam: not a lead"], None)
        if not sender_key or sender.address is None:
            return self._store(Outcome.IGNORED, verdict, [*reasons, "no sender address"], None)
        if is_no_reply(sender_key):
            # A notification nobody can answer (a relay that named no real sender).
            why = f"sender {sender_key} is a no-reply address: nobody to contact"
            return self._store(Outcome.IGNORED, verdict, [*reasons, why], None)
        match = thread(self.msg, sender_key, lookups, self.app.signer)
        reasons.append(f"thread: {match.reason}")
        if match.lead_id is not None:
            return self._threaded(match, verdict, reasons, sender_key, org)
        return self._created(match, verdict, reasons, sender, sender_key, org)

    # -- outcomes ----------------------------------------------------------------------

    def _duplicate(self, row_id: int) -> IntakeResult:
        existing = self.conn.execute(_STORED, {"id": row_id}).one()
        same_id = (
            existing.message_id == self.msg.message_id and existing.account == self.raw.account
        )
        why = "Message-ID already stored" if same_id else "same content already stored"
        return IntakeResult(
            self.raw.source,
            self.msg.message_id,
            Outcome.DUPLICATE,
            existing.kind,
            existing.lead_id,
            (f"{why} as message #{existing.id}",),
            size=self.item.size,
        )

    def _ignored(
        self, verdict: Classification, reasons: list[str], lookups: StoreLookups
    ) -> IntakeResult:
        lead_id: int | None = None
        if verdict.kind is Kind.BOUNCE and verdict.bounced_message_ids:
            lead_id = self._mark_bounced(verdict, reasons)
        if lead_id is None:
            found = lookups.leads_by_message_ids(ancestor_ids(self.msg))
            lead_id = found[0] if found else None
        reasons.append(f"{verdict.kind.value}: never a lead")
        return self._store(Outcome.IGNORED, verdict, reasons, lead_id)

    def _mark_bounced(self, verdict: Classification, reasons: list[str]) -> int | None:
        """A bounce of our own outbound mail marks it bounced and its lead's address bouncing.

        A delayed-delivery notice (no failed recipients) links to the lead but marks nothing.
        """
        rows = self.conn.execute(
            select(_messages.c.id, _messages.c.lead_id).where(
                _messages.c.message_id.in_(list(verdict.bounced_message_ids)),
                _messages.c.direction == "out",
            )
        ).all()
        leads = sorted({r.lead_id for r in rows if r.lead_id is not None})
        if rows and verdict.failed_recipients:
            self.conn.execute(
                update(_messages)
                .where(_messages.c.id.in_([r.id for r in rows]))
                .values(bounced=True)
            )
            if leads:
                self.conn.execute(
                    update(_leads)
                    .where(_leads.c.id.in_(leads))
                    .values(email_bouncing=True, updated_at=self.now)
                )
                reasons.append(f"bounce marks lead(s) {', '.join(map(str, leads))} as bouncing")
        return leads[0] if leads else None

    def _threaded(
        self,
        match: ThreadMatch,
        verdict: Classification,
        reasons: list[str],
        sender_key: str,
        org: str | None,
    ) -> IntakeResult:
        assert match.lead_id is not None
        lead = self.conn.execute(_LEAD_STATE, {"id": match.lead_id}).one()
        self._lead_key = lead.email_key
        from_lead_side = (
            sender_key == lead.email_key
            or (org is not None and org == lead.organization_domain)
            or self._is_contact(lead.id, sender_key)
        )
        result, row_id = self._store_row(Outcome.THREADED, verdict, reasons, lead.id)
        if from_lead_side:
            self._add_contact(lead.id, lead.email_key, sender_key)
            if lead.status in (LeadStatus.LEAD, LeadStatus.REPLIED):
                self._set_status(
                    lead.id, lead.status, LeadStatus.OPEN, f"reply from {sender_key}", row_id
                )
        return result

    def _created(
        self,
        match: ThreadMatch,
        verdict: Classification,
        reasons: list[str],
        sender: LeadSender,
        sender_key: str,
        org: str | None,
    ) -> IntakeResult:
        address = sender.address
        assert address is not None
        name = (address.name or "").strip()[:255] or None
        self._lead_key = sender_key
        lead: dict[str, Any] = dict(
            is_organization=False,
            person_name=name,
            email=address.email[:320],
            email_key=sender_key[:320],
            organization_domain=org,
            company_name=self.item.company,
            status=LeadStatus.LEAD.value,
            source=self.app.settings.leads.default_source,
            related_lead_id=match.related_lead_id,
            custom_fields={},
            email_bouncing=False,
            created_at=self.now,
            updated_at=self.now,
        )
        pending = (
            self.assigner.decide_new(self.conn, self.msg, lead)
            if self.assigner is not None
            else None
        )
        lead["assigned_to"] = pending.executive if pending is not None else None
        lead_id = _FAST_INSERT_LEAD.scalar(self.conn, lead)
        assert lead_id is not None
        result, row_id = self._store_row(Outcome.CREATED, verdict, reasons, lead_id)
        self._set_status(
            lead_id, None, LeadStatus.LEAD, f"created from message {self.msg.message_id}", row_id
        )
        if pending is not None:
            assert self.assigner is not None
            self.assigner.record_new(self.conn, lead_id, pending)
        return result

    # -- writes -------------------------------------------------------------------------

    def _store(
        self, outcome: Outcome, verdict: Classification, reasons: list[str], lead_id: int | None
    ) -> IntakeResult:
        return self._store_row(outcome, verdict, reasons, lead_id)[0]

    def _store_row(
        self, outcome: Outcome, verdict: Classification, reasons: list[str], lead_id: int | None
    ) -> tuple[IntakeResult, int]:
        msg = self.msg
        row = dict(
            self.item.row,
            kind=verdict.kind.value,
            outcome=outcome.value,
            reasons=reasons,
            raw_sha256=self.item.raw_sha256,
            lead_id=lead_id,
            created_at=self.now,
        )
        row_id = _FAST_INSERT_MESSAGE.scalar(self.conn, row)
        assert row_id is not None
        if msg.attachments:
            _FAST_INSERT_ATTACHMENTS.run_many(
                self.conn,
                [
                    {
                        "message_id": row_id,
                        "filename": safe_filename(a.filename),
                        "content_type": a.content_type[:255],
                        "size": size,
                        "sha256": digest,
                        "content_id": (a.content_id or None) and a.content_id[:998],
                        "inline": a.inline,
                    }
                    for a, digest, size in zip(
                        msg.attachments,
                        self.item.attachment_hashes,
                        self.item.attachment_sizes,
                        strict=True,
                    )
                ],
            )
        if lead_id is not None and outcome in (Outcome.CREATED, Outcome.THREADED):
            self._add_participants(lead_id)
        result = IntakeResult(
            self.raw.source,
            msg.message_id,
            outcome,
            verdict.kind.value,
            lead_id,
            tuple(reasons),
            size=self.item.size,
        )
        return result, row_id

    def _add_participants(self, lead_id: int) -> None:
        # The lead's own address needs no row: is_participant checks it on the lead itself.
        keys = [k for k in self.item.participant_keys if k != self._lead_key]
        if not keys:
            return
        rows = [{"lead_id": lead_id, "email_key": key} for key in keys]
        _FAST_ADD_PARTICIPANTS[self.conn.dialect.name].run_many(self.conn, rows)

    def _is_contact(self, lead_id: int, key: str) -> bool:
        return self.conn.scalar(IS_CONTACT, {"lead_id": lead_id, "email_key": key}) is not None

    def _add_contact(self, lead_id: int, lead_key: str | None, key: str) -> None:
        if key == lead_key or self._is_contact(lead_id, key):
            return
        address = next((a for a in self.msg.from_ if email_key(a.email) == key), None)
        self.conn.execute(
            _INSERT_CONTACT,
            dict(
                lead_id=lead_id,
                name=(address.name if address else None) or None,
                email=(address.email if address else key)[:320],
                email_key=key[:320],
                designation=None,
                phone=None,
                is_primary=False,
                created_at=self.now,
            ),
        )

    def _set_status(
        self,
        lead_id: int,
        before: str | None,
        to: LeadStatus,
        cause: str,
        message_row_id: int | None,
    ) -> None:
        if before is not None:
            _FAST_SET_STATUS.run(
                self.conn, {"lead_id": lead_id, "status": to.value, "now": self.now}
            )
        _FAST_INSERT_STATUS.run(
            self.conn,
            dict(
                lead_id=lead_id,
                from_status=before,
                to_status=to.value,
                cause=cause,
                message_id=message_row_id,
                at=self.now,
            ),
        )
