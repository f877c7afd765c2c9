"""Intake: one inbound message, one transaction, one recorded outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from worker.errors import LeadmailError, NotFoundError
from worker.mail.addresses import email_key, organization_domain
from worker.mail.autoreply import AUTO_REPLY_HEADERS, autoreply_refusal, autoreply_subject
from worker.mail.bounces import address_keys, bounce_effect
from worker.mail.charsets import clean
from worker.mail.classify import Kind
from worker.mail.message import InboundMessage, RawMessage
from worker.mail.threading import ThreadMatch, ancestor_ids, thread, thread_sent
from worker.mail.verdict import MailPolicy
from worker.routing.facts import MessageFacts
from worker.services.assignment import Pending, RuleAssigner, rule_book
from worker.services.context import App
from worker.services.preparation import (
    Prepared,
    Preparer,
    Source,
    Unreadable,
    content_hash,
    default_workers,
    prepare_batch,
)
from worker.store import blobs, inbound, lifecycle, outbox
from worker.store.blobs import BlobRef, sha256_hex
from worker.store.lookups import StoreLookups
from worker.store.tables import LeadStatus, Outcome, utcnow

log = logging.getLogger(__name__)

InTransaction = Callable[[Connection], None]
# Called inside each message's transaction with the message it commits (a cursor update).
PerMessage = Callable[[Connection, RawMessage], None]

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
        self,
        conn: Connection,
        msg: InboundMessage,
        lead: Mapping[str, Any],
        facts: MessageFacts | None = None,
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
        sent: bool = False,
    ) -> None:
        self.app = app
        # Messages from a Sent folder: ours, recorded as outbound (``_Decision._sent``).
        self.sent = sent
        self.assigner = assigner if assigner is not None else default_assigner(app)
        self.dry_run = dry_run
        self.max_bytes = max_bytes or app.settings.leads.max_message_bytes
        self._conn: Connection | None = None  # held across a batch by process_many
        self._blobs = None if dry_run else app.blobs
        # Records written for mail that turned out to be an erased lead's: zeroed once the
        # batch is committed, unless another message of it named them (_discard_unused).
        self._unused: list[BlobRef] = []
        self._policy = MailPolicy(app.own, app.sender_policy)

    # -- public API -------------------------------------------------------------------

    def process(self, raw: RawMessage, in_transaction: InTransaction | None = None) -> IntakeResult:
        """One message end to end; ``in_transaction`` runs inside its commit (cursor updates)."""
        prepared = prepare_batch([raw], self._blobs, self.max_bytes, self._policy)[0]
        try:
            return self._finish(prepared, in_transaction)
        finally:
            self._discard_unused()

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
        return self._commit_all(preparer.batches(raws), in_transaction)

    def process_loaded(
        self,
        source: Source,
        keys: Iterable[list[int]],
        workers: int,
        in_transaction: PerMessage | None = None,
    ) -> Iterator[IntakeResult]:
        """As ``process_many``, for the messages that the batches ``keys`` name in ``source``:
        ``workers`` processes (at least one) read them there themselves, so their bytes never
        pass through this process."""
        preparer = Preparer(self._blobs, self.max_bytes, 0, workers, self._policy)
        return self._commit_all(preparer.loaded(source, keys), in_transaction)

    def _commit_all(
        self,
        batches: Iterator[list[Prepared | Unreadable]],
        in_transaction: PerMessage | None,
    ) -> Iterator[IntakeResult]:
        with self.app.db.intake_connection() as conn:
            self._conn = conn
            # A dry run keeps one outer transaction, each message a savepoint inside it, so a
            # reply or a copy later in the run sees the lead an earlier message would create;
            # the whole run is rolled back at the end.
            outer = conn.begin() if self.dry_run else None
            done, analyze_at = 0, _FIRST_ANALYZE
            try:
                for prepared_batch in batches:
                    for prepared in prepared_batch:
                        yield self._finish(prepared, _bind(in_transaction, prepared.raw))
                    self._discard_unused()
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
            entry = inbound.held_message(conn, entry_id)
        if entry is None:
            raise NotFoundError(f"no quarantine entry {entry_id}", entry_id)
        raw = RawMessage(
            data=self.app.blobs.get(entry.raw_sha256),
            source=entry.source or f"quarantine#{entry_id}",
            account=entry.account,
            folder=entry.folder,
            uid=entry.uid,
        )
        intake = self
        if not self.sent and self.app.settings.is_sent_folder(entry.account, entry.folder):
            # Held from a Sent folder: it is our own mail, never a lead.
            intake = Intake(
                self.app,
                assigner=self.assigner,
                dry_run=self.dry_run,
                max_bytes=self.max_bytes,
                sent=True,
            )
        result = intake.process(raw)
        if not self.dry_run and result.outcome is not Outcome.QUARANTINED:
            with self.app.db.begin() as conn:
                inbound.mark_replayed(conn, entry_id, result.outcome.value, utcnow())
        return result

    def known(self, raws: list[RawMessage]) -> set[int]:
        """Positions in ``raws`` of messages stored or held already, by their bytes alone.

        Lets a watcher that rescans a folder skip the parse of everything it has seen.
        """
        hashes = [content_hash(raw.data) for raw in raws]
        raw_hashes = [sha256_hex(raw.data) for raw in raws]
        with self.app.db.engine.connect() as conn:
            stored, held = inbound.known_content(conn, hashes, raw_hashes)
        return {
            i
            for i, (h, r) in enumerate(zip(hashes, raw_hashes, strict=True))
            if h in stored or r in held
        }

    # -- stages -----------------------------------------------------------------------

    def _finish(
        self, item: Prepared | Unreadable, in_transaction: InTransaction | None
    ) -> IntakeResult:
        if isinstance(item, Unreadable):
            return self._quarantine(item, None, item.error, in_transaction)
        try:
            try:
                return self._transact(item, in_transaction)
            except IntegrityError:
                # Another process stored the same message between our check and our insert:
                # the second attempt finds it and reports a duplicate.
                return self._transact(item, in_transaction)
        except _CallbackFailed as failed:
            raise failed.original from None
        except Exception as exc:
            error = (
                exc
                if isinstance(exc, LeadmailError)
                else LeadmailError(f"{type(exc).__name__}: {exc}", None)
            )
            return self._quarantine(item, item.msg.message_id, error, in_transaction, failure=exc)

    def _transact(self, item: Prepared, in_transaction: InTransaction | None) -> IntakeResult:
        unused: list[BlobRef] = []

        def work(conn: Connection) -> IntakeResult:
            unused.clear()
            decision = _Decision(self, conn, item)
            result = decision.run()
            if decision.unused_blobs:
                unused.extend(r for r in item.blobs if r.sha256 in decision.unused_blobs)
            elif result.outcome is not Outcome.DUPLICATE:
                # The records written for it, named in the commit that stores the message. A
                # duplicate's (new bytes under a known Message-ID) stay unnamed: gc's.
                blobs.record(conn, item.blobs, decision.now)
            _call(in_transaction, conn)
            return result

        result = self._in_transaction(work)
        # Mail of an erased lead: the bytes written for it before the transaction go again.
        if self._blobs is not None:
            self._unused.extend(unused)
        return result

    def _discard_unused(self) -> None:
        if self._unused and self._blobs is not None:
            refs, self._unused = self._unused, []
            self._blobs.discard(refs)

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
        self,
        item: Prepared | Unreadable,
        message_id: str | None,
        error: LeadmailError,
        in_transaction: InTransaction | None,
        failure: BaseException | None = None,
    ) -> IntakeResult:
        """Hold the message with its reason; every quarantine is one log line that says why.

        The traceback of an unexpected ``failure`` goes with it only when debugging.
        """
        reason = _reason(error)
        if not self.dry_run:  # a dry run's result says it would be held; nothing is
            traceback = failure if log.isEnabledFor(logging.DEBUG) else None
            source = clean(item.raw.source)  # a file name may hold undecodable bytes
            log.warning("quarantined %s: %s", source, reason, exc_info=traceback)

        def work(conn: Connection) -> IntakeResult:
            blobs.record(conn, (r for r in item.blobs if r.sha256 == item.raw_sha256))
            entry_id = inbound.hold(
                conn,
                item.raw,
                raw_sha256=item.raw_sha256,
                size=item.size,
                reason=reason,
                error_type=type(error).__name__,
                now=utcnow(),
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


def default_assigner(app: App) -> Assigner:
    """The rule engine, with the rule file of the config ([rules] path)."""
    return RuleAssigner(rule_book(app))


def _reason(error: LeadmailError) -> str:
    """The first line of an error, capped and storable (it may quote the message): what a
    quarantine entry and its log line say."""
    return clean((str(error).splitlines() or [type(error).__name__])[0][:2000])


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
    """The steps of one message inside its transaction: dedup, thread, store.

    What the message is and whose it is was judged before (``Prepared.verdict``); this
    acts on that verdict and asks the store only what needs the database.
    """

    def __init__(self, intake: Intake, conn: Connection, item: Prepared):
        self.app = intake.app
        self.assigner = intake.assigner
        # A dry run commits nothing, so it races nobody (and would only pile up locks).
        self.lock = not intake.dry_run
        self.dry_run = intake.dry_run
        self.sent = intake.sent
        self.own_addresses = intake.app.own.addresses
        self.conn = conn
        self.item = item
        self.msg = item.msg
        self.raw = item.raw
        self.verdict = item.verdict
        self.sender = item.verdict.sender
        self.now = utcnow()
        self._lead_key: str | None = None  # the email key of the lead the message lands on
        self.unused_blobs: set[str] = set()  # blobs of erased mail, deleted after the commit

    def run(self) -> IntakeResult:
        if self.sent:
            return self._sent()
        verdict, sender = self.verdict, self.sender
        if verdict.may_lead and self.lock:
            # Before "do we know this sender?": see inbound.lock_sender.
            inbound.lock_sender(self.conn, sender.key)
        duplicate_id, known, any_erased = inbound.precheck(
            self.conn,
            account=self.raw.account,
            message_id=self.msg.message_id,
            content_hash=self.item.content_hash,
            email_key=sender.key,
        )
        if duplicate_id is not None:
            return self._duplicate(duplicate_id)
        if any_erased and lifecycle.is_erased(self.conn, sender.key, self.msg.message_id):
            return self._erased()
        reasons = list(verdict.reasons)
        lookups = StoreLookups(self.conn, {sender.key: sender.org} if sender.key else {})
        lookups.remember_known(sender.key, known)
        if not verdict.may_lead:
            lead_id = self._lead_referred_to(reasons, lookups) if verdict.follows_thread else None
            return self._store(Outcome.IGNORED, reasons, lead_id)
        match = thread(self.msg, sender.key, lookups, self.app.signer)
        reasons.append(f"thread: {match.reason}")
        if match.lead_id is not None:
            return self._threaded(match.lead_id, reasons)
        return self._created(match, reasons)

    def _sent(self) -> IntakeResult:
        """Mail an executive sent from their own client (a Sent folder): recorded as
        outbound on the lead it threads to or was sent to, with the status effect of our
        own outbound mail. It never makes a lead, and leadmail's own copy is not recorded
        twice (its row, account "outbox", has the same Message-ID)."""
        msg = self.msg
        recorded, any_erased = inbound.sent_precheck(
            self.conn, message_id=msg.message_id, content_hash=self.item.content_hash
        )
        if recorded is not None:
            return self._duplicate(recorded)
        recipients = [
            key
            for key in dict.fromkeys(email_key(a.email) for a in (*msg.to, *msg.cc))
            if key and key not in self.own_addresses
        ]
        if any_erased and any(
            lifecycle.is_erased(self.conn, key, msg.message_id) for key in recipients or [""]
        ):
            return self._erased()
        reasons = [f"sent mail (folder {self.raw.folder or self.raw.source})"]
        lookups = StoreLookups(self.conn)
        match = thread_sent(msg, recipients, lookups, self.app.signer)
        reasons.append(f"thread: {match.reason}")
        if match.lead_id is None:
            return self._store(Outcome.IGNORED, reasons, None)
        lead = inbound.lead_state(self.conn, match.lead_id)
        self._lead_key = lead.email_key
        # To the lead's side: its address, a contact's, or its organisation's domain. A
        # forward to a colleague is kept on the lead but says nothing to the lead.
        to_lead = any(
            key == lead.email_key
            or inbound.is_contact(self.conn, lead.id, key)
            or (
                lead.organization_domain is not None
                and organization_domain(key, self.app.sender_policy) == lead.organization_domain
            )
            for key in recipients
        )
        person = self.verdict.kind in (Kind.HUMAN, Kind.OWN)
        if not person:
            reasons.append(f"{self.verdict.kind.value}: no status change")
        elif not to_lead:
            reasons.append("not sent to the lead's side: no status change")
        result, row_id = self._store_row(Outcome.THREADED, reasons, lead.id)
        if person and to_lead and lead.status in (LeadStatus.LEAD, LeadStatus.OPEN):
            where = "/".join(filter(None, (self.raw.account, self.raw.folder)))
            cause = f"sent mail {msg.message_id} found in {where}"
            self._set_status(lead.id, lead.status, LeadStatus.REPLIED, cause, row_id)
        return result

    # -- outcomes ----------------------------------------------------------------------

    def _duplicate(self, row_id: int) -> IntakeResult:
        existing = inbound.stored_message(self.conn, row_id)
        same_id = (
            existing.message_id == self.msg.message_id and existing.account == self.raw.account
        )
        why = "Message-ID already stored" if same_id else "same content already stored"
        if self.sent and existing.message_id == self.msg.message_id:
            from worker.services.outbound import ACCOUNT as OUTBOUND_ACCOUNT

            why = (
                "leadmail's own outbound mail"
                if existing.account == OUTBOUND_ACCOUNT
                else "sent mail already recorded"
            )
        return IntakeResult(
            self.raw.source,
            self.msg.message_id,
            Outcome.DUPLICATE,
            existing.kind,
            existing.lead_id,
            (f"{why} as message #{existing.id}",),
            size=self.item.size,
        )

    def _erased(self) -> IntakeResult:
        """Mail of an erased lead: ignored, and no row of it stored (it would keep personal
        data); the result is its outcome. services/lifecycle.py says why."""
        digests = {self.item.raw_sha256, *(a.sha256 for a in self.item.attachments)}
        self.unused_blobs = lifecycle.unreferenced(self.conn, digests)
        return IntakeResult(
            self.raw.source,
            self.msg.message_id,
            Outcome.IGNORED,
            self.verdict.kind.value,
            None,
            (lifecycle.ERASED_REASON,),
            size=self.item.size,
        )

    def _lead_referred_to(self, reasons: list[str], lookups: StoreLookups) -> int | None:
        """The lead that machine mail about our mail (a bounce, an auto-reply) belongs to."""
        classification = self.verdict.classification
        lead_id: int | None = None
        if classification.bounced_message_ids:
            lead_id = self._mark_bounced(reasons)
        if lead_id is None:
            found = lookups.leads_by_message_ids(ancestor_ids(self.msg))
            lead_id = found[0] if found else None
        return lead_id

    def _mark_bounced(self, reasons: list[str]) -> int | None:
        """A bounce of our own outbound mail marks it bounced (its outbox row too) and, when
        the address that failed is the lead's, the lead's address bouncing; the lead's
        timeline says which mail bounced and why.

        A delayed-delivery notice (no failed recipients) links to the lead but marks nothing.
        """
        classification = self.verdict.classification
        rows = inbound.outbound_messages(self.conn, classification.bounced_message_ids)
        leads = list(dict.fromkeys(row.lead_id for row in rows if row.lead_id is not None))
        failed = classification.failed_recipients
        if not rows or not failed:
            return leads[0] if leads else None
        bouncing: list[int] = []
        error = f"bounce {self.msg.message_id}: {', '.join(failed)[:500]}"
        for row in rows:
            outbox_row = outbox.mark_bounced(self.conn, row.message_id, error, self.now)
            if row.lead_id is None:
                continue
            effect = bounce_effect(failed, address_keys(row.sent_to), row.lead_email_key)
            if effect.lead_bouncing:
                bouncing.append(row.lead_id)
            summary = f"mail {row.message_id} bounced: {effect.reason}" + (
                "; the address is marked bouncing" if effect.lead_bouncing else ""
            )
            details = {
                "message_id": row.message_id,
                "bounce": self.msg.message_id,
                "failed": list(failed),
                "outbox_id": outbox_row["id"] if outbox_row else None,
            }
            inbound.log_activity(
                self.conn,
                row.lead_id,
                kind="bounce",
                summary=summary,
                details=details,
                now=self.now,
            )
            reasons.append(f"bounce of {row.message_id} on lead {row.lead_id}: {effect.reason}")
        bouncing = list(dict.fromkeys(bouncing))
        inbound.mark_bounced(self.conn, [row.id for row in rows], bouncing, self.now)
        if bouncing:
            reasons.append(f"bounce marks lead(s) {', '.join(map(str, bouncing))} as bouncing")
        return leads[0] if leads else None

    def _threaded(self, lead_id: int, reasons: list[str]) -> IntakeResult:
        lead = inbound.lead_state(self.conn, lead_id)
        key, org = self.sender.key, self.sender.org
        self._lead_key = lead.email_key
        if key == lead.email_key:
            from_lead_side, new_contact = True, False
        else:
            contact = inbound.is_contact(self.conn, lead.id, key)
            from_lead_side = contact or (org is not None and org == lead.organization_domain)
            new_contact = from_lead_side and not contact
        result, row_id = self._store_row(Outcome.THREADED, reasons, lead.id)
        if new_contact:
            self._add_contact(lead.id, key)
        if from_lead_side and lead.status in (LeadStatus.LEAD, LeadStatus.REPLIED):
            self._set_status(lead.id, lead.status, LeadStatus.OPEN, f"reply from {key}", row_id)
        if from_lead_side and self.app.settings.followups.cancel_on_reply:
            # [followups] cancel_on_reply: the lead wrote, so the call planned is moot.
            from worker.services.reminders import cancel_for

            cancel_for(self.conn, lead.id, "manual", f"reply from {key}", now=self.now)
        return result

    def _created(self, match: ThreadMatch, reasons: list[str]) -> IntakeResult:
        sender = self.sender
        address = sender.address
        assert address is not None  # a verdict that may make a lead has a sender
        self._lead_key = sender.key
        columns = inbound.new_lead_columns(
            person_name=(address.name or "").strip()[:255] or None,
            email=address.email,
            email_key=sender.key,
            organization_domain=sender.org,
            company_name=sender.company,
            status=LeadStatus.LEAD.value,
            source=self.app.settings.leads.default_source,
            related_lead_id=match.related_lead_id,
            now=self.now,
        )
        pending = (
            self.assigner.decide_new(self.conn, self.msg, columns, self.item.facts)
            if self.assigner is not None
            else None
        )
        executive = pending.executive if pending is not None else None
        lead_id = inbound.insert_lead(self.conn, {**columns, "assigned_to": executive})
        result, row_id = self._store_row(Outcome.CREATED, reasons, lead_id)
        self._set_status(
            lead_id, None, LeadStatus.LEAD, f"created from message {self.msg.message_id}", row_id
        )
        if pending is not None:
            assert self.assigner is not None
            self.assigner.record_new(self.conn, lead_id, pending)
        acknowledgement = self._acknowledge(lead_id)
        if acknowledgement is not None:
            reasons.append(acknowledgement)
            inbound.set_reasons(self.conn, row_id, reasons)
            result = replace(result, reasons=tuple(reasons))
        return result

    def _acknowledge(self, lead_id: int) -> str | None:
        """[autoreply]: one acknowledgement of a new lead's first message, queued through
        the outbox in this transaction (the lead and its acknowledgement commit together,
        so a message fetched again after a crash is acknowledged once). What happened, for
        the message's reasons; None when acknowledgements are off."""
        settings = self.app.settings.autoreply
        if not settings.enabled:
            return None
        why = autoreply_refusal(self.msg, self.verdict)
        if why is None and settings.min_interval_hours > 0:
            since = self.now - timedelta(hours=settings.min_interval_hours)
            earlier = inbound.recent_autoreply(self.conn, self.sender.key, since)
            if earlier is not None:
                why = (
                    f"{self.sender.key} was acknowledged at {earlier[1]:%Y-%m-%d %H:%M} UTC, "
                    f"less than {settings.min_interval_hours:g} h ago"
                )
        if why is not None:
            return f"no acknowledgement: {why}"
        if self.dry_run:
            return "acknowledgement: one would be queued"
        # Composing and templates (Jinja2, Markdown) load only when acknowledgements are on.
        from worker.services.outbound import SendRequest, queue_mail

        request = SendRequest(
            subject=autoreply_subject(self.msg.subject),
            template=settings.template,
            lead_id=lead_id,
            actor=inbound.AUTOREPLY_ACTOR,
            extra_headers=AUTO_REPLY_HEADERS,
        )
        try:
            # A savepoint: a refused acknowledgement (no template, no sender address) costs
            # the acknowledgement, never the lead.
            with self.conn.begin_nested():
                queued = queue_mail(self.app, request, self.now, conn=self.conn)
                inbound.record_autoreply(
                    self.conn,
                    email_key=self.sender.key,
                    lead_id=lead_id,
                    outbox_id=queued.outbox_id,
                    now=self.now,
                )
        except LeadmailError as exc:
            log.warning("lead %s: no acknowledgement queued: %s", lead_id, exc)
            return f"no acknowledgement: {exc}"
        return f"acknowledgement queued: outbox #{queued.outbox_id} <{queued.message_id}>"

    # -- writes -------------------------------------------------------------------------

    def _store(self, outcome: Outcome, reasons: list[str], lead_id: int | None) -> IntakeResult:
        return self._store_row(outcome, reasons, lead_id)[0]

    def _store_row(
        self, outcome: Outcome, reasons: list[str], lead_id: int | None
    ) -> tuple[IntakeResult, int]:
        kind = self.verdict.kind.value
        row = self.item.row
        if self.sent:
            # Ours, sent: "own" like leadmail's outbound rows, unless a responder wrote it.
            kind = kind if self.verdict.kind not in (Kind.HUMAN, Kind.OWN) else Kind.OWN.value
            row = {**row, "direction": "out"}
        row_id = inbound.insert_message(
            self.conn,
            row,
            kind=kind,
            outcome=outcome.value,
            reasons=reasons,
            raw_sha256=self.item.raw_sha256,
            lead_id=lead_id,
            now=self.now,
        )
        if self.item.attachments:
            inbound.insert_attachments(self.conn, row_id, self.item.attachments)
        if lead_id is not None and outcome in (Outcome.CREATED, Outcome.THREADED):
            # The lead's own address needs no row: is_participant checks it on the lead.
            # Nor does the sender of our own sent mail: that is one of us.
            us = self.sender.key if self.sent else None
            keys = [k for k in self.item.participant_keys if k not in (self._lead_key, us)]
            inbound.add_participants(self.conn, lead_id, keys)
        result = IntakeResult(
            self.raw.source,
            self.msg.message_id,
            outcome,
            kind,
            lead_id,
            tuple(reasons),
            size=self.item.size,
        )
        return result, row_id

    def _add_contact(self, lead_id: int, key: str) -> None:
        address = next((a for a in self.msg.from_ if email_key(a.email) == key), None)
        inbound.add_contact(
            self.conn,
            lead_id,
            name=(address.name if address else None) or None,
            email=address.email if address else key,
            email_key=key,
            now=self.now,
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
            inbound.set_lead_status(self.conn, lead_id, to.value, self.now)
        inbound.log_status_change(
            self.conn,
            lead_id,
            before=before,
            to=to.value,
            cause=cause,
            message_row_id=message_row_id,
            now=self.now,
        )
