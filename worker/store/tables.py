"""The database tables as SQLAlchemy Core ``Table`` objects: every column, type, default and
index of the schema, in one place.

The ORM classes of worker/store/models.py are mapped onto these tables. Statements that need
no ORM use them directly, so a command that only reads (``leads list``, ``leads show``) neither
imports nor configures the ORM: mapping the classes is a good part of a short command's
start-up (bench/startup.py).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
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


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENDING = "sending"  # taken by one worker, which is talking to the server
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BOUNCED = "bounced"


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


metadata = MetaData()


leads = Table(
    "leads",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("is_organization", Boolean, default=False, nullable=False),
    Column("company_name", String(255)),
    Column("person_name", String(255)),
    Column("gender", String(32)),
    Column("email", String(320)),
    Column("email_key", String(320), index=True),
    Column("phone", String(64)),
    Column("mobile", String(64)),
    Column("website", String(255)),
    Column("organization_domain", String(255), index=True),
    Column("status", String(32), default=LeadStatus.LEAD, index=True, nullable=False),
    Column("source", String(64)),
    Column("lead_type", String(64)),
    Column("market_segment", String(128)),
    Column("industry", String(128)),
    Column("territory", String(128)),
    Column("notes", Text),
    Column("assigned_to", String(128), index=True),
    Column("next_contact_date", UTCDateTime()),
    Column("next_contact_by", String(128)),
    Column("custom_fields", JSON, default=dict, nullable=False),
    Column("email_bouncing", Boolean, default=False, nullable=False),
    Column("related_lead_id", ForeignKey("leads.id")),
    # Set by ``leads merge`` (migration 0007): this lead went into that one and only points.
    Column("merged_into_id", ForeignKey("leads.id", name="fk_leads_merged_into_id"), index=True),
    Column("created_at", UTCDateTime(), default=utcnow, nullable=False),
    Column("updated_at", UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False),
    # The follow-up rules look for recent leads nobody has answered (migration 0012).
    Index("ix_leads_status_created_at", "status", "created_at"),
)


contacts = Table(
    "contacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("name", String(255)),
    Column("email", String(320)),
    Column("email_key", String(320), index=True),
    Column("phone", String(64)),
    Column("designation", String(128)),
    Column("is_primary", Boolean, default=False, nullable=False),
    Column("created_at", UTCDateTime(), default=utcnow, nullable=False),
    # One contact per address and lead (migration 0009): the backstop when two people add
    # the same address at once.
    Index("uq_contacts_lead_email", "lead_id", "email_key", unique=True),
)


addresses = Table(
    "addresses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("address_type", String(32), default="Office", nullable=False),
    Column("line1", String(255)),
    Column("line2", String(255)),
    Column("city", String(128)),
    Column("state", String(128)),
    Column("postcode", String(32)),
    Column("country", String(128)),
)


participants = Table(
    "participants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), nullable=False),
    Column("email_key", String(320), index=True, nullable=False),
    UniqueConstraint("lead_id", "email_key"),
)


messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("direction", String(8), default="in", nullable=False),
    Column("account", String(128), nullable=False),
    Column("folder", String(255)),
    Column("uid", BigInteger),
    Column("source", Text),
    Column("message_id", String(998), nullable=False),
    Column("in_reply_to", JSON, default=list, nullable=False),
    Column("references", JSON, default=list, nullable=False),
    Column("sender", String(320)),
    Column("sender_name", String(255)),
    Column("recipients", JSON, default=dict, nullable=False),
    Column("subject", Text),
    Column("subject_key", String(255), index=True),
    Column("sent_at", UTCDateTime()),
    Column("kind", String(32)),
    Column("outcome", String(16), nullable=False),
    Column("reasons", JSON, default=list, nullable=False),
    Column("body_text", Text),
    Column("body_html", Text),
    Column("raw_sha256", String(64), nullable=False),
    Column("content_hash", String(64), index=True, nullable=False),
    Column("size", Integer, default=0, nullable=False),
    Column("defects", JSON, default=list, nullable=False),
    Column("bounced", Boolean, default=False, nullable=False),
    # Indexed with direction (migration 0012): "has the lead any mail of ours" must not
    # read every outbound message.
    Column("lead_id", ForeignKey("leads.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime(), default=utcnow, nullable=False),
    # One stored copy per account and direction: a second one is a duplicate (also the
    # backstop when two processes race on the same message).
    UniqueConstraint("account", "direction", "message_id", name="uq_messages_identity"),
    Index("ix_messages_message_id", "message_id"),
    # The no_reply rule looks for our mail of a few days ago (migration 0012).
    Index("ix_messages_direction_sent_at", "direction", "sent_at"),
    # A lead's messages, and its mail in one direction (0012: was lead_id alone).
    Index("ix_messages_lead_id_direction", "lead_id", "direction"),
)


attachments = Table(
    "attachments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("message_id", ForeignKey("messages.id", ondelete="CASCADE"), index=True),
    Column(
        "lead_id",
        ForeignKey("leads.id", ondelete="CASCADE", name="fk_attachments_lead_id"),
        index=True,
    ),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content_id", String(998)),
    Column("inline", Boolean, default=False, nullable=False),
    CheckConstraint("(message_id IS NULL) <> (lead_id IS NULL)", name="ck_attachments_one_owner"),
)


status_changes = Table(
    "status_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("from_status", String(32)),
    Column("to_status", String(32), nullable=False),
    Column("cause", Text, nullable=False),
    Column("message_id", ForeignKey("messages.id", ondelete="SET NULL")),
    Column("at", UTCDateTime(), default=utcnow, nullable=False),
)


comments = Table(
    "comments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("author", String(128)),
    Column("text", Text, nullable=False),
    Column("at", UTCDateTime(), default=utcnow, nullable=False),
)


activities = Table(
    "activities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("summary", Text, nullable=False),
    Column("actor", String(128)),
    Column("details", JSON, default=dict, nullable=False),
    Column("due_date", Date),
    Column("at", UTCDateTime(), default=utcnow, nullable=False),
)


def _record_columns() -> list[Column[Any]]:
    """What every record made from a lead has: the lead, the fields copied from it when
    the record was made (ERPNext copies them too: later edits of the lead leave the record
    as it was sent), who made it and when."""
    return [
        Column("id", Integer, primary_key=True),
        Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), index=True, nullable=False),
        Column("party_name", String(255)),
        Column("email", String(320)),
        Column("source", String(64)),
        Column("actor", String(128)),
        Column("created_at", UTCDateTime(), default=utcnow, nullable=False),
        # The lead's contacts and postal addresses when the record was made (migration 0009);
        # None for records made before that.
        Column("contacts", JSON),
        Column("addresses", JSON),
    ]


opportunities = Table(
    "opportunities",
    metadata,
    Column("status", String(16), default="open", nullable=False),
    Column("title", String(255)),
    # Decimal text ("1250.50"): exact on SQLite and PostgreSQL alike, never a float.
    Column("amount", String(40)),
    Column("currency", String(3)),
    Column("expected_close", Date),
    Column("updated_at", UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False),
    *_record_columns(),
)


quotations = Table(
    "quotations",
    metadata,
    Column("status", String(16), default="open", nullable=False),
    Column("amount", String(40)),
    Column("currency", String(3)),
    Column("valid_until", Date),
    Column("updated_at", UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False),
    *_record_columns(),
)


customers = Table(
    "customers",
    metadata,
    Column("name", String(255), nullable=False),
    *_record_columns(),
)


outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), index=True, nullable=False),
    # The direction="out" row in messages that threading and `leads show` see.
    Column("message_row_id", ForeignKey("messages.id", ondelete="SET NULL")),
    # Bare, without angle brackets, as messages.message_id.
    Column("message_id", String(998), unique=True, nullable=False),
    Column("executive", String(128)),
    Column("envelope_from", String(320), nullable=False),
    Column("recipients", JSON, default=list, nullable=False),
    Column("subject", Text, default="", nullable=False),
    Column("raw_sha256", String(64), nullable=False),
    Column("status", String(16), default=OutboxStatus.PENDING, nullable=False),
    Column("attempts", Integer, default=0, nullable=False),
    Column("due_at", UTCDateTime(), default=utcnow, nullable=False),
    Column("claimed_at", UTCDateTime()),
    Column("sent_at", UTCDateTime()),
    Column("last_error", Text),
    # Per recipient: {"addr": {"state": accepted|refused_temp|refused_perm, "code", "reply"}}.
    Column("results", JSON, default=dict, nullable=False),
    # Every attempt: {"at", "attempt", "code", "reply", "outcome"}.
    Column("log", JSON, default=list, nullable=False),
    # The --force --reason text of a mail to a Do Not Contact lead.
    Column("reason", Text),
    Column("created_by", String(128)),
    Column("created_at", UTCDateTime(), default=utcnow, nullable=False),
    Column("updated_at", UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False),
    Index("ix_outbox_status_due_at", "status", "due_at"),
    # From a messages row to its outbox row: is this mail an acknowledgement (0012)?
    Index("ix_outbox_message_row_id", "message_row_id"),
)


autoreplies = Table(
    "autoreplies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email_key", String(320), nullable=False),
    Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("outbox_id", ForeignKey("outbox.id", ondelete="SET NULL")),
    Column("at", UTCDateTime(), default=utcnow, nullable=False),
    Index("ix_autoreplies_email_key_at", "email_key", "at"),
)


reminders = Table(
    "reminders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("kind", String(32), nullable=False),
    # Why it exists: "set by anna", "no reply to <id> since …"; follow-up rules compare it.
    Column("cause", Text),
    # The executive id (rule file) it is for; their address is looked up at send time.
    Column("executive", String(128), index=True),
    # An explicit address (an escalation to someone outside the rule file), else the address
    # the last send went to (a CANCEL goes to the same attendee).
    Column("recipient", String(320)),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("status", String(16), default=ReminderStatus.PENDING, nullable=False),
    Column("ical_uid", String(255), unique=True, nullable=False),
    Column("sequence", Integer, default=0, nullable=False),
    Column("method", String(8), default=ReminderMethod.REQUEST, nullable=False),
    Column("sequence_sent", Integer),
    Column("method_sent", String(8)),
    # Of the send in flight or the last one: ``<reminder-{id}-{sequence}@domain>``, bare.
    Column("message_id", String(998), index=True),
    Column("note", Text),
    Column("attempts", Integer, default=0, nullable=False),
    Column("last_error", Text),
    # Every attempt and change: {"at", "event", ...}.
    Column("log", JSON, default=list, nullable=False),
    Column("claimed_at", UTCDateTime()),
    Column("sent_at", UTCDateTime()),
    Column("created_by", String(128)),
    Column("created_at", UTCDateTime(), default=utcnow, nullable=False),
    Column("updated_at", UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False),
    UniqueConstraint("lead_id", "kind", name="uq_reminders_lead_kind"),
    Index("ix_reminders_status_due_at", "status", "due_at"),
)


quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account", String(128), nullable=False),
    Column("folder", String(255)),
    Column("uid", BigInteger),
    Column("source", Text),
    Column("raw_sha256", String(64), index=True, nullable=False),
    Column("size", Integer, default=0, nullable=False),
    Column("reason", Text, nullable=False),
    Column("error_type", String(128), nullable=False),
    Column("status", String(16), default="held", nullable=False),
    Column("replay_outcome", String(16)),
    Column("attempts", Integer, default=1, nullable=False),
    Column("created_at", UTCDateTime(), default=utcnow, nullable=False),
    Column("replayed_at", UTCDateTime()),
)


mailbox_cursors = Table(
    "mailbox_cursors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account", String(128), nullable=False),
    Column("folder", String(255), nullable=False),
    Column("uidvalidity", BigInteger),
    Column("last_uid", BigInteger, default=0, nullable=False),
    Column("last_success_at", UTCDateTime()),
    Column("last_error", Text),
    Column("last_error_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False),
    # Messages beyond the cursor when the folder was last looked at (for `leadmail status`).
    Column("waiting", Integer),
    # Processed messages up to this UID have had the account's post_action applied; the
    # rest of (post_action_uid, last_uid] is applied on the next pass, so a crash between
    # the commit and the action loses no action.
    Column("post_action_uid", BigInteger, default=0, nullable=False),
    # The lease: who works this folder now, until when. The cursor update of every message
    # names the holder, so a poller that lost its lease cannot commit a message.
    Column("lease_holder", String(255)),
    Column("lease_expires_at", UTCDateTime()),
    UniqueConstraint("account", "folder"),
)


erased_keys = Table(
    "erased_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("erased_at", UTCDateTime(), default=utcnow, nullable=False),
    UniqueConstraint("kind", "digest", name="uq_erased_keys"),
)


meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


lead_load = Table(
    "lead_load",
    metadata,
    Column("executive", String(128), primary_key=True),
    Column("open_leads", Integer, default=0, nullable=False),
)


routing_counters = Table(
    "routing_counters",
    metadata,
    Column("scope", String(255), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", BigInteger, default=0, nullable=False),
)


# Where the bytes of a blob are: a record in a pack file (store/packs.py, migration 0013). A
# row is inserted in the transaction that first names its sha256 (a message, an attachment,
# an outbox mail, a quarantine entry), after its record was fsynced; a record with no row is
# garbage that ``leadmail store gc`` reclaims.
blobs = Table(
    "blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("pack", String(64), nullable=False, index=True),
    Column("offset", BigInteger, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("created_at", UTCDateTime(), default=utcnow, nullable=False),
)
