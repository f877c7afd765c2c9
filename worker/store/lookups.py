"""Read queries the pure threading code asks through its ``ThreadLookups`` protocol."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, exists, or_, select

from worker.store import tables
from worker.store.tables import LeadStatus

CLOSED_STATUSES = (LeadStatus.CONVERTED.value, LeadStatus.DO_NOT_CONTACT.value)

_leads = tables.leads
_messages = tables.messages
_contacts = tables.contacts
_participants = tables.participants


# Built once: constructing a statement costs more than running it on SQLite.
_BY_MESSAGE_IDS = select(_messages.c.message_id, _messages.c.lead_id).where(
    _messages.c.message_id.in_(bindparam("ids", expanding=True)),
    _messages.c.lead_id.is_not(None),
)
_EXISTING = select(_leads.c.id).where(_leads.c.id.in_(bindparam("ids", expanding=True)))
_BY_SUBJECT = (
    select(_messages.c.lead_id)
    .join(_leads, _leads.c.id == _messages.c.lead_id)
    .where(
        _messages.c.subject_key == bindparam("subject_key"),
        _leads.c.status.not_in(CLOSED_STATUSES),
        or_(
            _leads.c.email_key == bindparam("email_key"),
            exists().where(
                _participants.c.lead_id == _leads.c.id,
                _participants.c.email_key == bindparam("email_key"),
            ),
        ),
    )
    .order_by(_messages.c.id.desc())
    .limit(20)
)
KNOWN_SENDER = select(
    or_(
        exists().where(_leads.c.email_key == bindparam("email_key")),
        exists().where(_contacts.c.email_key == bindparam("email_key")),
        exists().where(_participants.c.email_key == bindparam("email_key")),
    )
)
_LEAD_BY_ADDRESS = (
    select(_leads.c.id)
    .where(_leads.c.email_key == bindparam("email_key"))
    .order_by(_leads.c.id)
    .limit(1)
)
_CONTACT_BY_ADDRESS = (
    select(_contacts.c.lead_id)
    .where(_contacts.c.email_key == bindparam("email_key"))
    .order_by(_contacts.c.id)
    .limit(1)
)
_LEAD_IDENTITY = select(_leads.c.email_key, _leads.c.organization_domain).where(
    _leads.c.id == bindparam("lead_id")
)
_IS_PARTICIPANT = (
    select(_participants.c.id)
    .where(
        _participants.c.lead_id == bindparam("lead_id"),
        _participants.c.email_key == bindparam("email_key"),
    )
    .limit(1)
)
IS_CONTACT = (
    select(_contacts.c.id)
    .where(
        _contacts.c.lead_id == bindparam("lead_id"),
        _contacts.c.email_key == bindparam("email_key"),
    )
    .limit(1)
)


class StoreLookups:
    """Implements ``worker.mail.threading.ThreadLookups`` over one open connection (Core)."""

    def __init__(self, conn: Connection, org_domain_of: dict[str, str | None] | None = None):
        self.conn = conn
        # email_key -> registrable organisation domain (None for free mail), from the caller,
        # so the store needs no knowledge of public suffixes.
        self._org = org_domain_of or {}
        self._known: dict[str, bool] = {}

    def leads_by_message_ids(self, message_ids: Sequence[str]) -> list[int]:
        if not message_ids:
            return []
        rows = self.conn.execute(_BY_MESSAGE_IDS, {"ids": list(message_ids)[:200]}).all()
        by_id = {mid: lead for mid, lead in rows}
        ordered = [by_id[m] for m in message_ids if m in by_id]
        return [lead for lead in dict.fromkeys(ordered) if lead is not None]

    def existing_leads(self, lead_ids: Sequence[int]) -> list[int]:
        if not lead_ids:
            return []
        found = set(self.conn.scalars(_EXISTING, {"ids": list(lead_ids)}))
        return [lead for lead in lead_ids if lead in found]

    def open_leads_by_subject(self, email_key: str, subject_key: str) -> list[int]:
        rows = self.conn.scalars(_BY_SUBJECT, {"subject_key": subject_key, "email_key": email_key})
        return [lead for lead in dict.fromkeys(rows) if lead is not None]

    def knows_sender(self, email_key: str) -> bool:
        """Whether any lead has this address as its own, a contact's or a participant's.

        One query that lets a first-time sender skip the subject and address lookups.
        """
        known = self._known.get(email_key)
        if known is None:
            known = bool(self.conn.scalar(KNOWN_SENDER, {"email_key": email_key}))
            self._known[email_key] = known
        return known

    def remember_known(self, email_key: str, known: bool) -> None:
        """Seed ``knows_sender`` with an answer the caller already fetched."""
        self._known[email_key] = known

    def leads_by_address(self, email_key: str) -> list[int]:
        """The lead whose address (or a contact's) is the sender's; the oldest lead wins."""
        params = {"email_key": email_key}
        own = self.conn.scalar(_LEAD_BY_ADDRESS, params)
        if own is None:
            own = self.conn.scalar(_CONTACT_BY_ADDRESS, params)
        return [own] if own is not None else []

    def is_participant(self, lead_id: int, email_key: str) -> bool:
        row = self.conn.execute(_LEAD_IDENTITY, {"lead_id": lead_id}).first()
        if row is None:
            return False
        if row.email_key == email_key:
            return True
        org = self._org.get(email_key)
        if org and row.organization_domain == org:
            return True
        params = {"lead_id": lead_id, "email_key": email_key}
        return (
            self.conn.scalar(_IS_PARTICIPANT, params) is not None
            or self.conn.scalar(IS_CONTACT, params) is not None
        )
