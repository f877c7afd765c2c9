"""The database tables as SQLAlchemy Core ``Table`` objects: every column, type, default and
index of the schema, in one place.

The ORM classes of worker/store/models.py are mapped onto these tables. Statements that need
no ORM use them directly, so a command that only reads (``leads list``, ``leads show``) neither
imports nor configures the ORM: mapping the classes is a good part of a short command's
start-up (bench/startup.py).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
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
    text,
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


# Each table is built when a module first asks for it (``tables.leads``, through the module
# ``__getattr__`` at the end), with the tables its foreign keys point to: 22 ``Table``s of
# 235 columns are ~0.03 s of start-up here, and `leads list` reads two or three of them
# (bench/startup.md). ``metadata`` builds every table before it is handed out, so alembic,
# the ORM's mapping and ``create_all`` always see the whole schema.
_metadata = MetaData()
_lock = threading.RLock()

metadata: MetaData
leads: Table
contacts: Table
addresses: Table
participants: Table
messages: Table
attachments: Table
status_changes: Table
comments: Table
activities: Table
opportunities: Table
quotations: Table
customers: Table
outbox: Table
autoreplies: Table
reminders: Table
quarantine: Table
mailbox_cursors: Table
erased_keys: Table
meta: Table
lead_load: Table
routing_counters: Table
blobs: Table


def _leads() -> Table:
    return Table(
        "leads",
        _metadata,
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
        # Indexed by ix_leads_status_created_at, which starts with it (migration 0014).
        Column("status", String(32), default=LeadStatus.LEAD, nullable=False),
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
        Column("merged_into_id", ForeignKey("leads.id", name="fk_leads_merged_into_id")),
        Column("created_at", UTCDateTime(), default=utcnow, nullable=False),
        Column("updated_at", UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False),
        # The follow-up rules look for recent leads nobody has answered (migration 0012).
        Index("ix_leads_status_created_at", "status", "created_at"),
        # Partial on SQLite (migration 0014): a new lead has no merge, so its insert writes
        # no page here. (A postgresql_where here would import that dialect on every start.)
        Index(
            "ix_leads_merged_into_id",
            "merged_into_id",
            sqlite_where=text("merged_into_id IS NOT NULL"),
        ),
    )


def _contacts() -> Table:
    return Table(
        "contacts",
        _metadata,
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


def _addresses() -> Table:
    return Table(
        "addresses",
        _metadata,
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


def _participants() -> Table:
    return Table(
        "participants",
        _metadata,
        Column("id", Integer, primary_key=True),
        Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), nullable=False),
        Column("email_key", String(320), index=True, nullable=False),
        UniqueConstraint("lead_id", "email_key"),
    )


def _messages() -> Table:
    return Table(
        "messages",
        _metadata,
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


def _attachments() -> Table:
    return Table(
        "attachments",
        _metadata,
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
        CheckConstraint(
            "(message_id IS NULL) <> (lead_id IS NULL)", name="ck_attachments_one_owner"
        ),
    )


def _status_changes() -> Table:
    return Table(
        "status_changes",
        _metadata,
        Column("id", Integer, primary_key=True),
        Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), index=True, nullable=False),
        Column("from_status", String(32)),
        Column("to_status", String(32), nullable=False),
        Column("cause", Text, nullable=False),
        Column("message_id", ForeignKey("messages.id", ondelete="SET NULL")),
        Column("at", UTCDateTime(), default=utcnow, nullable=False),
    )


def _comments() -> Table:
    return Table(
        "comments",
        _metadata,
        Column("id", Integer, primary_key=True),
        Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), index=True, nullable=False),
        Column("author", String(128)),
        Column("text", Text, nullable=False),
        Column("at", UTCDateTime(), default=utcnow, nullable=False),
    )


def _activities() -> Table:
    return Table(
        "activities",
        _metadata,
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


def _opportunities() -> Table:
    return Table(
        "opportunities",
        _metadata,
        Column("status", String(16), default="open", nullable=False),
        Column("title", String(255)),
        # Decimal text ("1250.50"): exact on SQLite and PostgreSQL alike, never a float.
        Column("amount", String(40)),
        Column("currency", String(3)),
        Column("expected_close", Date),
        Column("updated_at", UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False),
        *_record_columns(),
    )


def _quotations() -> Table:
    return Table(
        "quotations",
        _metadata,
        Column("status", String(16), default="open", nullable=False),
        Column("amount", String(40)),
        Column("currency", String(3)),
        Column("valid_until", Date),
        Column("updated_at", UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False),
        *_record_columns(),
    )


def _customers() -> Table:
    return Table(
        "customers",
        _metadata,
        Column("name", String(255), nullable=False),
        *_record_columns(),
    )


def _outbox() -> Table:
    return Table(
        "outbox",
        _metadata,
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


def _autoreplies() -> Table:
    return Table(
        "autoreplies",
        _metadata,
        Column("id", Integer, primary_key=True),
        Column("email_key", String(320), nullable=False),
        Column("lead_id", ForeignKey("leads.id", ondelete="CASCADE"), index=True, nullable=False),
        Column("outbox_id", ForeignKey("outbox.id", ondelete="SET NULL")),
        Column("at", UTCDateTime(), default=utcnow, nullable=False),
        Index("ix_autoreplies_email_key_at", "email_key", "at"),
    )


def _reminders() -> Table:
    return Table(
        "reminders",
        _metadata,
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


def _quarantine() -> Table:
    return Table(
        "quarantine",
        _metadata,
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


def _mailbox_cursors() -> Table:
    return Table(
        "mailbox_cursors",
        _metadata,
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


def _erased_keys() -> Table:
    return Table(
        "erased_keys",
        _metadata,
        Column("id", Integer, primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("digest", String(64), nullable=False),
        Column("erased_at", UTCDateTime(), default=utcnow, nullable=False),
        UniqueConstraint("kind", "digest", name="uq_erased_keys"),
    )


def _meta() -> Table:
    return Table(
        "meta",
        _metadata,
        Column("key", String(64), primary_key=True),
        Column("value", Text, nullable=False),
    )


def _lead_load() -> Table:
    return Table(
        "lead_load",
        _metadata,
        Column("executive", String(128), primary_key=True),
        Column("open_leads", Integer, default=0, nullable=False),
        sqlite_with_rowid=False,  # keyed by text: the key is the table (0014)
    )


def _routing_counters() -> Table:
    return Table(
        "routing_counters",
        _metadata,
        Column("scope", String(255), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("value", BigInteger, default=0, nullable=False),
        sqlite_with_rowid=False,  # keyed by text: the key is the table (0014)
    )


# Where the bytes of a blob are: a record in a pack file (store/packs.py, migration 0013). A
# row is inserted in the transaction that first names its sha256 (a message, an attachment,
# an outbox mail, a quarantine entry), after its record was fsynced; a record with no row is
# garbage that ``leadmail store gc`` reclaims.
def _blobs() -> Table:
    return Table(
        "blobs",
        _metadata,
        Column("sha256", String(64), primary_key=True),
        Column("pack", String(64), nullable=False, index=True),
        Column("offset", BigInteger, nullable=False),
        Column("length", BigInteger, nullable=False),
        Column("created_at", UTCDateTime(), default=utcnow, nullable=False),
        sqlite_with_rowid=False,  # keyed by text: the key is the table (0014)
    )


_BUILDERS: dict[str, Callable[[], Table]] = {
    "leads": _leads,
    "contacts": _contacts,
    "addresses": _addresses,
    "participants": _participants,
    "messages": _messages,
    "attachments": _attachments,
    "status_changes": _status_changes,
    "comments": _comments,
    "activities": _activities,
    "opportunities": _opportunities,
    "quotations": _quotations,
    "customers": _customers,
    "outbox": _outbox,
    "autoreplies": _autoreplies,
    "reminders": _reminders,
    "quarantine": _quarantine,
    "mailbox_cursors": _mailbox_cursors,
    "erased_keys": _erased_keys,
    "meta": _meta,
    "lead_load": _lead_load,
    "routing_counters": _routing_counters,
    "blobs": _blobs,
}


def __getattr__(name: str) -> Any:
    if name == "metadata":
        with _lock:
            for table in _BUILDERS:
                _built(table)
            globals()["metadata"] = _metadata  # complete: later reads skip this function
        return _metadata
    if name in _BUILDERS:
        return _built(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _built(name: str) -> Table:
    """The table ``name``, built once; it becomes a module attribute once the tables its
    foreign keys refer to are built too (another thread never sees it before)."""
    table = globals().get(name)
    if isinstance(table, Table):
        return table
    with _lock:
        table = _metadata.tables.get(name)
        if table is None:
            table = _BUILDERS[name]()
            for key in table.foreign_keys:
                _built(key.target_fullname.partition(".")[0])
        globals()[name] = table
    return table
