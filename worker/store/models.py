"""SQLAlchemy models: leads and everything hung on them, messages, quarantine, cursors."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which drops tzinfo) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class LeadStatus(enum.StrEnum):
    LEAD = "Lead"
    OPEN = "Open"
    REPLIED = "Replied"
    OPPORTUNITY = "Opportunity"
    QUOTATION = "Quotation"
    LOST_QUOTATION = "Lost Quotation"
    INTERESTED = "Interested"
    CONVERTED = "Converted"
    DO_NOT_CONTACT = "Do Not Contact"


class Outcome(enum.StrEnum):
    CREATED = "created"
    THREADED = "threaded"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    QUARANTINED = "quarantined"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Lead(Base):
    __tablename__ = "leads"
    # The follow-up rules look for recent leads nobody has answered (migration 0012).
    __table_args__ = (Index("ix_leads_status_created_at", "status", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    is_organization: Mapped[bool] = mapped_column(Boolean, default=False)
    company_name: Mapped[str | None] = mapped_column(String(255))
    person_name: Mapped[str | None] = mapped_column(String(255))
    gender: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320))
    email_key: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(64))
    mobile: Mapped[str | None] = mapped_column(String(64))
    website: Mapped[str | None] = mapped_column(String(255))
    organization_domain: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(32), default=LeadStatus.LEAD, index=True)
    source: Mapped[str | None] = mapped_column(String(64))
    lead_type: Mapped[str | None] = mapped_column(String(64))
    market_segment: Mapped[str | None] = mapped_column(String(128))
    industry: Mapped[str | None] = mapped_column(String(128))
    territory: Mapped[str | None] = mapped_column(String(128))
    notes: Mapped[str | None] = mapped_column(Text)
    assigned_to: Mapped[str | None] = mapped_column(String(128), index=True)
    next_contact_date: Mapped[datetime | None] = mapped_column()
    next_contact_by: Mapped[str | None] = mapped_column(String(128))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    email_bouncing: Mapped[bool] = mapped_column(Boolean, default=False)
    related_lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"))
    # Set by ``leads merge`` (migration 0007): this lead went into that one and only points.
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("leads.id", name="fk_leads_merged_into_id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    messages: Mapped[list[Message]] = relationship(back_populates="lead")
    contacts: Mapped[list[Contact]] = relationship(back_populates="lead")
    addresses: Mapped[list[PostalAddress]] = relationship(back_populates="lead")

    @property
    def display_name(self) -> str:
        return self.person_name or self.company_name or self.email or f"Lead {self.id}"


class Contact(Base):
    """A person at the lead (ERPNext's contact): the lead's own address and colleagues."""

    __tablename__ = "contacts"
    # One contact per address and lead (migration 0009): the backstop when two people add
    # the same address at once.
    __table_args__ = (Index("uq_contacts_lead_email", "lead_id", "email_key", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    email_key: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(64))
    designation: Mapped[str | None] = mapped_column(String(128))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lead: Mapped[Lead] = relationship(back_populates="contacts")


class PostalAddress(Base):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    address_type: Mapped[str] = mapped_column(String(32), default="Office")
    line1: Mapped[str | None] = mapped_column(String(255))
    line2: Mapped[str | None] = mapped_column(String(255))
    city: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str | None] = mapped_column(String(128))
    postcode: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(128))

    lead: Mapped[Lead] = relationship(back_populates="addresses")


class Participant(Base):
    """An address seen in From/To/Cc of a lead's messages: who may reply into its threads."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("lead_id", "email_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    email_key: Mapped[str] = mapped_column(String(320), index=True)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # One stored copy per account and direction: a second one is a duplicate (also the
        # backstop when two processes race on the same message).
        UniqueConstraint("account", "direction", "message_id", name="uq_messages_identity"),
        Index("ix_messages_message_id", "message_id"),
        # The no_reply rule looks for our mail of a few days ago (migration 0012).
        Index("ix_messages_direction_sent_at", "direction", "sent_at"),
        # A lead's messages, and its mail in one direction (0012: was lead_id alone).
        Index("ix_messages_lead_id_direction", "lead_id", "direction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), default="in")  # in | out
    account: Mapped[str] = mapped_column(String(128))
    folder: Mapped[str | None] = mapped_column(String(255))
    uid: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(998))
    in_reply_to: Mapped[list[str]] = mapped_column(default=list)
    references: Mapped[list[str]] = mapped_column(default=list)
    sender: Mapped[str | None] = mapped_column(String(320))
    sender_name: Mapped[str | None] = mapped_column(String(255))
    recipients: Mapped[dict[str, Any]] = mapped_column(default=dict)
    subject: Mapped[str | None] = mapped_column(Text)
    subject_key: Mapped[str | None] = mapped_column(String(255), index=True)
    sent_at: Mapped[datetime | None] = mapped_column()
    kind: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(default=list)
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    raw_sha256: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    defects: Mapped[list[str]] = mapped_column(default=list)
    bounced: Mapped[bool] = mapped_column(Boolean, default=False)
    # Indexed with direction (migration 0012): "has the lead any mail of ours" must not
    # read every outbound message.
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lead: Mapped[Lead | None] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message")


class Attachment(Base):
    """A file from a message, or one a person attached to the lead itself (exactly one owner)."""

    __tablename__ = "attachments"
    __table_args__ = (
        CheckConstraint(
            "(message_id IS NULL) <> (lead_id IS NULL)", name="ck_attachments_one_owner"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    lead_id: Mapped[int | None] = mapped_column(
        ForeignKey("leads.id", ondelete="CASCADE", name="fk_attachments_lead_id"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content_id: Mapped[str | None] = mapped_column(String(998))
    inline: Mapped[bool] = mapped_column(Boolean, default=False)

    message: Mapped[Message | None] = relationship(back_populates="attachments")


class StatusChange(Base):
    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    cause: Mapped[str] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    author: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Activity(Base):
    """Calls, meetings, tasks and assignments: what happened to a lead besides mail."""

    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # call | meeting | task | assignment | note
    summary: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    due_date: Mapped[date | None] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class _RecordColumns:
    """What every record made from a lead has: the lead, the fields copied from it when
    the record was made (ERPNext copies them too: later edits of the lead leave the record
    as it was sent), who made it and when."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    party_name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    source: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The lead's contacts and postal addresses when the record was made (migration 0009);
    # None for records made before that.
    contacts: Mapped[list[Any] | None] = mapped_column(JSON)
    addresses: Mapped[list[Any] | None] = mapped_column(JSON)


class Opportunity(_RecordColumns, Base):
    """A sales opportunity made from a lead (migration 0005); status open | lost | won."""

    __tablename__ = "opportunities"

    status: Mapped[str] = mapped_column(String(16), default="open")
    title: Mapped[str | None] = mapped_column(String(255))
    # Decimal text ("1250.50"): exact on SQLite and PostgreSQL alike, never a float.
    amount: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str | None] = mapped_column(String(3))
    expected_close: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Quotation(_RecordColumns, Base):
    """A quotation made from a lead (migration 0005); status open | lost | ordered."""

    __tablename__ = "quotations"

    status: Mapped[str] = mapped_column(String(16), default="open")
    amount: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str | None] = mapped_column(String(3))
    valid_until: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Customer(_RecordColumns, Base):
    """The customer a lead became (migration 0005): the lead is Converted from then on."""

    __tablename__ = "customers"

    name: Mapped[str] = mapped_column(String(255))


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENDING = "sending"  # taken by one worker, which is talking to the server
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BOUNCED = "bounced"


class Outbox(Base):
    """One outbound mail (migration 0008): its final Message-ID and raw blob are fixed when
    it is queued, so a retry after an unknown outcome sends the very same message.

    ``status`` says whether work remains (pending → claimed → sending → sent | failed, or
    pending again to retry; pending/claimed → cancelled; sent → bounced); the broker only
    ever carries the row id.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_due_at", "status", "due_at"),
        # From a messages row to its outbox row: is this mail an acknowledgement (0012)?
        Index("ix_outbox_message_row_id", "message_row_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    # The direction="out" row in messages that threading and `leads show` see.
    message_row_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    # Bare, without angle brackets, as messages.message_id.
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    executive: Mapped[str | None] = mapped_column(String(128))
    envelope_from: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    raw_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    # Per recipient: {"addr": {"state": accepted|refused_temp|refused_perm, "code", "reply"}}.
    results: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Every attempt: {"at", "attempt", "code", "reply", "outcome"}.
    log: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # The --force --reason text of a mail to a Do Not Contact lead.
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Autoreply(Base):
    """An automatic acknowledgement queued to an address ([autoreply], migration 0010).

    Keyed by the address, not the lead, so "at most one per address per
    min_interval_hours" holds when the address later gets another lead (its first lead's
    address was edited, say). The row goes with its lead (erase deletes the lead).
    """

    __tablename__ = "autoreplies"
    __table_args__ = (Index("ix_autoreplies_email_key_at", "email_key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_key: Mapped[str] = mapped_column(String(320))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ReminderStatus(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENDING = "sending"  # taken by one worker, which is talking to the server
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ReminderKind(enum.StrEnum):
    MANUAL = "manual"  # leads set --next-contact-date
    FIRST_RESPONSE = "first_response"  # [followups] first_response_hours
    ESCALATION = "escalation"  # [followups] escalate_after_hours
    NO_REPLY = "no_reply"  # [followups] no_reply_days


class ReminderMethod(enum.StrEnum):
    REQUEST = "REQUEST"
    CANCEL = "CANCEL"


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

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("lead_id", "kind", name="uq_reminders_lead_kind"),
        Index("ix_reminders_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    # Why it exists: "set by anna", "no reply to <id> since …"; follow-up rules compare it.
    cause: Mapped[str | None] = mapped_column(Text)
    # The executive id (rule file) it is for; their address is looked up at send time.
    executive: Mapped[str | None] = mapped_column(String(128), index=True)
    # An explicit address (an escalation to someone outside the rule file), else the address
    # the last send went to (a CANCEL goes to the same attendee).
    recipient: Mapped[str | None] = mapped_column(String(320))
    due_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=ReminderStatus.PENDING)
    ical_uid: Mapped[str] = mapped_column(String(255), unique=True)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    method: Mapped[str] = mapped_column(String(8), default=ReminderMethod.REQUEST)
    sequence_sent: Mapped[int | None] = mapped_column(Integer)
    method_sent: Mapped[str | None] = mapped_column(String(8))
    # Of the send in flight or the last one: ``<reminder-{id}-{sequence}@domain>``, bare.
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Every attempt and change: {"at", "event", ...}.
    log: Mapped[list[Any]] = mapped_column(JSON, default=list)
    claimed_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QuarantineEntry(Base):
    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(128))
    folder: Mapped[str | None] = mapped_column(String(255))
    uid: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str | None] = mapped_column(Text)
    raw_sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text)
    error_type: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="held")  # held | replayed
    replay_outcome: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    replayed_at: Mapped[datetime | None] = mapped_column()


class MailboxCursor(Base):
    """Our own place in a folder; advanced in the same transaction as each message."""

    __tablename__ = "mailbox_cursors"
    __table_args__ = (UniqueConstraint("account", "folder"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(128))
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    last_success_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Messages beyond the cursor when the folder was last looked at (for `leadmail status`).
    waiting: Mapped[int | None] = mapped_column(Integer)
    # Processed messages up to this UID have had the account's post_action applied; the
    # rest of (post_action_uid, last_uid] is applied on the next pass, so a crash between
    # the commit and the action loses no action.
    post_action_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    # The lease: who works this folder now, until when. The cursor update of every message
    # names the holder, so a poller that lost its lease cannot commit a message.
    lease_holder: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column()


class ErasedKey(Base):
    """A salted sha256 of an address or Message-ID a privacy request erased (migration 0007).

    Intake ignores mail whose sender or Message-ID is here (reason ``erased``), so a resync
    of the mailbox does not make the erased lead again; nothing else of it is kept.
    """

    __tablename__ = "erased_keys"
    __table_args__ = (UniqueConstraint("kind", "digest", name="uq_erased_keys"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # address | message_id
    digest: Mapped[str] = mapped_column(String(64))
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)


class Meta(Base):
    """Values made once per database: ``erase_salt``, the salt of ``erased_keys``."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class LeadLoad(Base):
    """Open leads per executive, kept by database triggers on ``leads`` (migration 0004).

    Load balancing and capacity read it on every assignment; counting the leads table there
    instead made a backfill of N new leads cost O(N²). Triggers keep it right whatever
    changes a lead's status or executive: intake, the CLI, or SQL typed by hand.
    """

    __tablename__ = "lead_load"

    executive: Mapped[str] = mapped_column(String(128), primary_key=True)
    open_leads: Mapped[int] = mapped_column(Integer, default=0)


class RoutingCounter(Base):
    """Rule-engine state that must change atomically with each assignment.

    (rule, "#next") is a round-robin rule's next position; (rule, executive) counts the leads
    a weighted rule gave that executive; ("*", "lock") is the row every assignment locks on
    PostgreSQL so two intakes never read the same rotation slot.
    """

    __tablename__ = "routing_counters"

    scope: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


def table_of(model: type[Base]) -> Table:
    """The Core table behind a model, typed, for the Core statements of the hot path."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Blob(Base):
    """Where the bytes of a blob are: a record in a pack file (store/packs.py, migration 0013).

    A row is inserted in the transaction that first names its sha256 (a message, an
    attachment, an outbox mail, a quarantine entry), after its record was fsynced; a record
    with no row is garbage that ``leadmail store gc`` reclaims.
    """

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    pack: Mapped[str] = mapped_column(String(64), index=True)
    offset: Mapped[int] = mapped_column(BigInteger)
    length: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
