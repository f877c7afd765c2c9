"""Read queries the pure threading code asks through its ``ThreadLookups`` protocol."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from worker.store.models import Contact, Lead, LeadStatus, Message, Participant

CLOSED_STATUSES = (LeadStatus.CONVERTED.value, LeadStatus.DO_NOT_CONTACT.value)


def domain_of(email_key: str) -> str:
    return email_key.rpartition("@")[2]


class StoreLookups:
    """Implements ``worker.mail.threading.ThreadLookups`` over one open session."""

    def __init__(self, session: Session, org_domain_of: dict[str, str | None] | None = None):
        self.session = session
        # email_key -> registrable organisation domain (None for free mail), from the caller,
        # so the store needs no knowledge of public suffixes.
        self._org = org_domain_of or {}

    def leads_by_message_ids(self, message_ids: Sequence[str]) -> list[int]:
        if not message_ids:
            return []
        rows = self.session.execute(
            select(Message.message_id, Message.lead_id).where(
                Message.message_id.in_(list(message_ids)[:200]), Message.lead_id.is_not(None)
            )
        ).all()
        by_id = {mid: lead for mid, lead in rows}
        ordered = [by_id[m] for m in message_ids if m in by_id]
        return [lead for lead in dict.fromkeys(ordered) if lead is not None]

    def existing_leads(self, lead_ids: Sequence[int]) -> list[int]:
        if not lead_ids:
            return []
        found = set(self.session.scalars(select(Lead.id).where(Lead.id.in_(list(lead_ids)))))
        return [lead for lead in lead_ids if lead in found]

    def open_leads_by_subject(self, email_key: str, subject_key: str) -> list[int]:
        rows = self.session.scalars(
            select(Message.lead_id)
            .join(Lead, Lead.id == Message.lead_id)
            .where(
                Message.subject_key == subject_key,
                Lead.status.not_in(CLOSED_STATUSES),
                or_(
                    Lead.email_key == email_key,
                    exists().where(
                        Participant.lead_id == Lead.id, Participant.email_key == email_key
                    ),
                ),
            )
            .order_by(Message.id.desc())
            .limit(20)
        )
        return [lead for lead in dict.fromkeys(rows) if lead is not None]

    def leads_by_address(self, email_key: str) -> list[int]:
        """The lead whose address (or a contact's) is the sender's; the oldest lead wins."""
        own = self.session.scalars(
            select(Lead.id).where(Lead.email_key == email_key).order_by(Lead.id).limit(1)
        ).first()
        if own is not None:
            return [own]
        contact = self.session.scalars(
            select(Contact.lead_id).where(Contact.email_key == email_key).order_by(Contact.id)
        ).first()
        return [contact] if contact is not None else []

    def is_participant(self, lead_id: int, email_key: str) -> bool:
        lead = self.session.get(Lead, lead_id)
        if lead is None:
            return False
        if lead.email_key == email_key:
            return True
        org = self._org.get(email_key)
        if org and lead.organization_domain == org:
            return True
        for model in (Participant, Contact):
            hit = self.session.scalar(
                select(model.id).where(model.lead_id == lead_id, model.email_key == email_key)
            )
            if hit is not None:
                return True
        return False
