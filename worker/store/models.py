"""SQLAlchemy ORM models: leads and everything hung on them, messages, quarantine, cursors.

Each class is mapped onto its Core table in worker/store/tables.py, which holds the columns
with their types, defaults and indexes; the annotations here tell type checkers what each
attribute holds.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

from worker.store import tables
from worker.store.tables import LeadStatus as LeadStatus
from worker.store.tables import OutboxStatus as OutboxStatus
from worker.store.tables import Outcome as Outcome
from worker.store.tables import ReminderKind as ReminderKind
from worker.store.tables import ReminderMethod as ReminderMethod
from worker.store.tables import ReminderStatus as ReminderStatus
from worker.store.tables import UTCDateTime as UTCDateTime
from worker.store.tables import utcnow as utcnow


class Base(DeclarativeBase):
    metadata = tables.metadata
    # For a model declared with mapped_column() (the tables module is the place for new ones).
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Lead(Base):
    __table__ = tables.leads

    id: Mapped[int]
    is_organization: Mapped[bool]
    company_name: Mapped[str | None]
    person_name: Mapped[str | None]
    gender: Mapped[str | None]
    email: Mapped[str | None]
    email_key: Mapped[str | None]
    phone: Mapped[str | None]
    mobile: Mapped[str | None]
    website: Mapped[str | None]
    organization_domain: Mapped[str | None]
    status: Mapped[str]
    source: Mapped[str | None]
    lead_type: Mapped[str | None]
    market_segment: Mapped[str | None]
    industry: Mapped[str | None]
    territory: Mapped[str | None]
    notes: Mapped[str | None]
    assigned_to: Mapped[str | None]
    next_contact_date: Mapped[datetime | None]
    next_contact_by: Mapped[str | None]
    custom_fields: Mapped[dict[str, Any]]
    email_bouncing: Mapped[bool]
    related_lead_id: Mapped[int | None]
    merged_into_id: Mapped[int | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    messages: Mapped[list[Message]] = relationship(back_populates="lead")
    contacts: Mapped[list[Contact]] = relationship(back_populates="lead")
    addresses: Mapped[list[PostalAddress]] = relationship(back_populates="lead")

    @property
    def display_name(self) -> str:
        return self.person_name or self.company_name or self.email or f"Lead {self.id}"


class Contact(Base):
    """A person at the lead (ERPNext's contact): the lead's own address and colleagues."""

    __table__ = tables.contacts

    id: Mapped[int]
    lead_id: Mapped[int]
    name: Mapped[str | None]
    email: Mapped[str | None]
    email_key: Mapped[str | None]
    phone: Mapped[str | None]
    designation: Mapped[str | None]
    is_primary: Mapped[bool]
    created_at: Mapped[datetime]

    lead: Mapped[Lead] = relationship(back_populates="contacts")


class PostalAddress(Base):
    __table__ = tables.addresses

    id: Mapped[int]
    lead_id: Mapped[int]
    address_type: Mapped[str]
    line1: Mapped[str | None]
    line2: Mapped[str | None]
    city: Mapped[str | None]
    state: Mapped[str | None]
    postcode: Mapped[str | None]
    country: Mapped[str | None]

    lead: Mapped[Lead] = relationship(back_populates="addresses")


class Participant(Base):
    """An address seen in From/To/Cc of a lead's messages: who may reply into its threads."""

    __table__ = tables.participants

    id: Mapped[int]
    lead_id: Mapped[int]
    email_key: Mapped[str]


class Message(Base):
    __table__ = tables.messages

    id: Mapped[int]
    direction: Mapped[str]
    account: Mapped[str]
    folder: Mapped[str | None]
    uid: Mapped[int | None]
    source: Mapped[str | None]
    message_id: Mapped[str]
    in_reply_to: Mapped[list[str]]
    references: Mapped[list[str]]
    sender: Mapped[str | None]
    sender_name: Mapped[str | None]
    recipients: Mapped[dict[str, Any]]
    subject: Mapped[str | None]
    subject_key: Mapped[str | None]
    sent_at: Mapped[datetime | None]
    kind: Mapped[str | None]
    outcome: Mapped[str]
    reasons: Mapped[list[str]]
    body_text: Mapped[str | None]
    body_html: Mapped[str | None]
    raw_sha256: Mapped[str]
    content_hash: Mapped[str]
    size: Mapped[int]
    defects: Mapped[list[str]]
    bounced: Mapped[bool]
    lead_id: Mapped[int | None]
    created_at: Mapped[datetime]

    lead: Mapped[Lead | None] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message")


class Attachment(Base):
    """A file from a message, or one a person attached to the lead itself (exactly one owner)."""

    __table__ = tables.attachments

    id: Mapped[int]
    message_id: Mapped[int | None]
    lead_id: Mapped[int | None]
    filename: Mapped[str]
    content_type: Mapped[str]
    size: Mapped[int]
    sha256: Mapped[str]
    content_id: Mapped[str | None]
    inline: Mapped[bool]

    message: Mapped[Message | None] = relationship(back_populates="attachments")


class StatusChange(Base):
    __table__ = tables.status_changes

    id: Mapped[int]
    lead_id: Mapped[int]
    from_status: Mapped[str | None]
    to_status: Mapped[str]
    cause: Mapped[str]
    message_id: Mapped[int | None]
    at: Mapped[datetime]


class Comment(Base):
    __table__ = tables.comments

    id: Mapped[int]
    lead_id: Mapped[int]
    author: Mapped[str | None]
    text: Mapped[str]
    at: Mapped[datetime]


class Activity(Base):
    """Calls, meetings, tasks and assignments: what happened to a lead besides mail."""

    __table__ = tables.activities

    id: Mapped[int]
    lead_id: Mapped[int]
    kind: Mapped[str]
    summary: Mapped[str]
    actor: Mapped[str | None]
    details: Mapped[dict[str, Any]]
    due_date: Mapped[date | None]
    at: Mapped[datetime]


class _RecordColumns:
    """What every record made from a lead has: the lead, the fields copied from it when
    the record was made (ERPNext copies them too: later edits of the lead leave the record
    as it was sent), who made it and when."""

    id: Mapped[int]
    lead_id: Mapped[int]
    party_name: Mapped[str | None]
    email: Mapped[str | None]
    source: Mapped[str | None]
    actor: Mapped[str | None]
    created_at: Mapped[datetime]
    contacts: Mapped[list[Any] | None]
    addresses: Mapped[list[Any] | None]


class Opportunity(_RecordColumns, Base):
    """A sales opportunity made from a lead (migration 0005); status open | lost | won."""

    __table__ = tables.opportunities

    status: Mapped[str]
    title: Mapped[str | None]
    amount: Mapped[str | None]
    currency: Mapped[str | None]
    expected_close: Mapped[date | None]
    updated_at: Mapped[datetime]


class Quotation(_RecordColumns, Base):
    """A quotation made from a lead (migration 0005); status open | lost | ordered."""

    __table__ = tables.quotations

    status: Mapped[str]
    amount: Mapped[str | None]
    currency: Mapped[str | None]
    valid_until: Mapped[date | None]
    updated_at: Mapped[datetime]


class Customer(_RecordColumns, Base):
    """The customer a lead became (migration 0005): the lead is Converted from then on."""

    __table__ = tables.customers

    name: Mapped[str]


class Outbox(Base):
    """One outbound mail (migration 0008): its final Message-ID and raw blob are fixed when
    it is queued, so a retry after an unknown outcome sends the very same message.

    ``status`` says whether work remains (pending → claimed → sending → sent | failed, or
    pending again to retry; pending/claimed → cancelled; sent → bounced); the broker only
    ever carries the row id.
    """

    __table__ = tables.outbox

    id: Mapped[int]
    lead_id: Mapped[int]
    message_row_id: Mapped[int | None]
    message_id: Mapped[str]
    executive: Mapped[str | None]
    envelope_from: Mapped[str]
    recipients: Mapped[list[str]]
    subject: Mapped[str]
    raw_sha256: Mapped[str]
    status: Mapped[str]
    attempts: Mapped[int]
    due_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None]
    results: Mapped[dict[str, Any]]
    log: Mapped[list[Any]]
    reason: Mapped[str | None]
    created_by: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Autoreply(Base):
    """An automatic acknowledgement queued to an address ([autoreply], migration 0010).

    Keyed by the address, not the lead, so "at most one per address per
    min_interval_hours" holds when the address later gets another lead (its first lead's
    address was edited, say). The row goes with its lead (erase deletes the lead).
    """

    __table__ = tables.autoreplies

    id: Mapped[int]
    email_key: Mapped[str]
    lead_id: Mapped[int]
    outbox_id: Mapped[int | None]
    at: Mapped[datetime]


class Reminder(Base):
    """A reminder mail with a calendar invitation, due at a minute (migration 0011).

    One row per lead and kind, ever (the unique key): setting a new date moves the row, so
    two people moving it at once still leave one reminder, and the calendar entry keeps its
    ``ical_uid``. ``method``/``sequence`` say what the next send carries; ``method_sent``/
    ``sequence_sent`` what was last handed to a server, so a move after delivery sends an
    update (SEQUENCE + 1) and a cancel after delivery sends METHOD:CANCEL. ``status`` works
    like the outbox's: pending → claimed → sending → sent | failed | pending (retry);
    pending/claimed → cancelled, and a CANCEL once sent ends ``cancelled`` too.
    """

    __table__ = tables.reminders

    id: Mapped[int]
    lead_id: Mapped[int]
    kind: Mapped[str]
    cause: Mapped[str | None]
    executive: Mapped[str | None]
    recipient: Mapped[str | None]
    due_at: Mapped[datetime]
    status: Mapped[str]
    ical_uid: Mapped[str]
    sequence: Mapped[int]
    method: Mapped[str]
    sequence_sent: Mapped[int | None]
    method_sent: Mapped[str | None]
    message_id: Mapped[str | None]
    note: Mapped[str | None]
    attempts: Mapped[int]
    last_error: Mapped[str | None]
    log: Mapped[list[Any]]
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    created_by: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class QuarantineEntry(Base):
    __table__ = tables.quarantine

    id: Mapped[int]
    account: Mapped[str]
    folder: Mapped[str | None]
    uid: Mapped[int | None]
    source: Mapped[str | None]
    raw_sha256: Mapped[str]
    size: Mapped[int]
    reason: Mapped[str]
    error_type: Mapped[str]
    status: Mapped[str]
    replay_outcome: Mapped[str | None]
    attempts: Mapped[int]
    created_at: Mapped[datetime]
    replayed_at: Mapped[datetime | None]


class MailboxCursor(Base):
    """Our own place in a folder; advanced in the same transaction as each message."""

    __table__ = tables.mailbox_cursors

    id: Mapped[int]
    account: Mapped[str]
    folder: Mapped[str]
    uidvalidity: Mapped[int | None]
    last_uid: Mapped[int]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None]
    last_error_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    waiting: Mapped[int | None]
    post_action_uid: Mapped[int]
    lease_holder: Mapped[str | None]
    lease_expires_at: Mapped[datetime | None]


class ErasedKey(Base):
    """A salted sha256 of an address or Message-ID a privacy request erased (migration 0007).

    Intake ignores mail whose sender or Message-ID is here (reason ``erased``), so a resync
    of the mailbox does not make the erased lead again; nothing else of it is kept.
    """

    __table__ = tables.erased_keys

    id: Mapped[int]
    kind: Mapped[str]
    digest: Mapped[str]
    erased_at: Mapped[datetime]


class Meta(Base):
    """Values made once per database: ``erase_salt``, the salt of ``erased_keys``."""

    __table__ = tables.meta

    key: Mapped[str]
    value: Mapped[str]


class LeadLoad(Base):
    """Open leads per executive, kept by database triggers on ``leads`` (migration 0004).

    Load balancing and capacity read it on every assignment; counting the leads table there
    instead made a backfill of N new leads cost O(N²). Triggers keep it right whatever
    changes a lead's status or executive: intake, the CLI, or SQL typed by hand.
    """

    __table__ = tables.lead_load

    executive: Mapped[str]
    open_leads: Mapped[int]


class RoutingCounter(Base):
    """Rule-engine state that must change atomically with each assignment.

    (rule, "#next") is a round-robin rule's next position; (rule, executive) counts the leads
    a weighted rule gave that executive; ("*", "lock") is the row every assignment locks on
    PostgreSQL so two intakes never read the same rotation slot.
    """

    __table__ = tables.routing_counters

    scope: Mapped[str]
    key: Mapped[str]
    value: Mapped[int]


def table_of(model: type[Base]) -> Table:
    """The Core table behind a model, typed, for the Core statements of the hot path."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Blob(Base):
    """A blob's place in a pack file (see ``tables.blobs``)."""

    __table__ = tables.blobs

    sha256: Mapped[str]
    pack: Mapped[str]
    offset: Mapped[int]
    length: Mapped[int]
    created_at: Mapped[datetime]
