"""What the follow-up rules read: candidate leads, each lead's mail facts, its follow-ups.

Every query is bounded (``limit``, ids after a cursor) and served by an index (migration
0012): a tick with nothing to do reads a few index entries. The rules themselves are pure
(worker/routing/followups.py); services/followups.py joins the two.

"Our mail" (``_ours``) is a ``messages`` row going out from a person on our side (kind
``own``: leadmail's outbound and the executives' Sent folders) on a lead, except automatic
acknowledgements and outbox mail cancelled or failed before it left. "The lead's mail"
(``_theirs``) is a human inbound message made into or threaded onto the lead. Our mail is
dated by its Date (``sent_at``; leadmail sets it when queueing), the lead's by when it
reached us (``created_at``), so a sender's wrong clock cannot put a reply before our mail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from worker.store.inbound import AUTOREPLY_ACTOR
from worker.store.models import (
    Lead,
    Message,
    Outbox,
    OutboxStatus,
    Reminder,
    table_of,
)

_LEADS = table_of(Lead)
_MESSAGES = table_of(Message)
_OUTBOX = table_of(Outbox)
_REMINDERS = table_of(Reminder)

Executor = Session | Connection

_NOT_SENT = (OutboxStatus.CANCELLED.value, OutboxStatus.FAILED.value)


@dataclass(frozen=True, slots=True)
class MailFacts:
    """One lead's row and mail, as the rules read them (UTC instants)."""

    lead_id: int
    status: str
    created_at: datetime
    executive: str | None
    has_address: bool
    merged: bool
    first_in_sent_at: datetime | None
    first_out_at: datetime | None
    last_out_at: datetime | None
    last_out_id: str | None
    last_in_at: datetime | None


def _ours(messages: Any) -> ColumnElement[bool]:
    automatic = exists().where(
        _OUTBOX.c.message_row_id == messages.c.id,
        or_(_OUTBOX.c.created_by == AUTOREPLY_ACTOR, _OUTBOX.c.status.in_(_NOT_SENT)),
    )
    return and_(
        messages.c.direction == "out",
        messages.c.kind == "own",
        messages.c.lead_id.is_not(None),
        ~automatic,
    )


def _theirs(messages: Any) -> ColumnElement[bool]:
    return and_(
        messages.c.direction == "in",
        messages.c.kind == "human",
        messages.c.outcome.in_(("created", "threaded")),
    )


def _out_time(messages: Any) -> ColumnElement[datetime]:
    return func.coalesce(messages.c.sent_at, messages.c.created_at)


def unanswered_leads(
    executor: Executor,
    *,
    statuses: Sequence[str],
    created_from: datetime,
    created_to: datetime,
    first_response: bool,
    escalation: bool,
    after_id: int,
    limit: int,
) -> list[int]:
    """Leads in ``statuses`` made in [created_from, created_to] that none of our mail went
    to and that lack a reminder of an enabled kind (first_response only for a lead with an
    executive); ids above ``after_id``, ascending."""
    missing: list[ColumnElement[bool]] = []
    for enabled, kind, extra in (
        (first_response, "first_response", _LEADS.c.assigned_to.is_not(None)),
        (escalation, "escalation", None),
    ):
        if not enabled:
            continue
        lacks = ~exists().where(_REMINDERS.c.lead_id == _LEADS.c.id, _REMINDERS.c.kind == kind)
        missing.append(lacks if extra is None else and_(extra, lacks))
    if not missing:
        return []
    mail = _MESSAGES.alias("ours")
    answered = exists().where(mail.c.lead_id == _LEADS.c.id, _ours(mail))
    query = (
        select(_LEADS.c.id)
        .where(
            _LEADS.c.status.in_(list(statuses)),
            _LEADS.c.created_at >= created_from,
            _LEADS.c.created_at <= created_to,
            _LEADS.c.merged_into_id.is_(None),
            _LEADS.c.email_key.is_not(None),
            _LEADS.c.id > after_id,
            or_(*missing),
            ~answered,
        )
        .order_by(_LEADS.c.id)
        .limit(limit)
    )
    return [int(i) for i in executor.execute(query).scalars()]


def unreplied_leads(
    executor: Executor,
    *,
    sent_from: datetime,
    sent_to: datetime,
    excluded_statuses: Sequence[str],
    cause_prefix: str,
    cause_suffix: str,
    after_id: int,
    limit: int,
) -> list[int]:
    """Leads whose last mail from us is dated in [sent_from, sent_to], with no mail from
    the lead after it and no no_reply reminder for it (its cause is ``cause_prefix`` +
    the Message-ID + ``cause_suffix``); ids above ``after_id``, ascending."""
    mail = _MESSAGES.alias("ours")
    later = _MESSAGES.alias("later")
    reply = _MESSAGES.alias("reply")
    newer_ours = exists().where(
        later.c.lead_id == mail.c.lead_id,
        _ours(later),
        _out_time(later) > _out_time(mail),
    )
    replied = exists().where(
        reply.c.lead_id == mail.c.lead_id,
        _theirs(reply),
        reply.c.created_at > _out_time(mail),
    )
    reminded = exists().where(
        _REMINDERS.c.lead_id == mail.c.lead_id,
        _REMINDERS.c.kind == "no_reply",
        _REMINDERS.c.cause == literal(cause_prefix) + mail.c.message_id + literal(cause_suffix),
    )
    query = (
        select(mail.c.lead_id)
        .join(_LEADS, _LEADS.c.id == mail.c.lead_id)
        .where(
            mail.c.direction == "out",  # the index's first column
            mail.c.sent_at >= sent_from,
            mail.c.sent_at <= sent_to,
            _ours(mail),
            mail.c.lead_id > after_id,
            _LEADS.c.status.not_in(list(excluded_statuses)),
            _LEADS.c.merged_into_id.is_(None),
            _LEADS.c.assigned_to.is_not(None),
            ~newer_ours,
            ~replied,
            ~reminded,
        )
        .group_by(mail.c.lead_id)
        .order_by(mail.c.lead_id)
        .limit(limit)
    )
    return [int(i) for i in executor.execute(query).scalars()]


def followup_leads(
    executor: Executor,
    *,
    kinds: Sequence[str],
    due_before: datetime | None = None,
    after_id: int = 0,
    limit: int,
) -> list[int]:
    """Leads with a pending reminder of ``kinds`` (due before ``due_before`` when given):
    the ones whose cause may have gone away; ids above ``after_id``, ascending."""
    query = select(_REMINDERS.c.lead_id).where(
        _REMINDERS.c.status == "pending",
        _REMINDERS.c.kind.in_(list(kinds)),
        _REMINDERS.c.lead_id > after_id,
    )
    if due_before is not None:
        query = query.where(_REMINDERS.c.due_at <= due_before)
    query = query.group_by(_REMINDERS.c.lead_id).order_by(_REMINDERS.c.lead_id).limit(limit)
    return [int(i) for i in executor.execute(query).scalars()]


def mail_facts(executor: Executor, lead_ids: Sequence[int]) -> list[MailFacts]:
    """The facts of each lead in ``lead_ids`` that exists, in id order: three queries for
    the whole batch."""
    ids = sorted(set(lead_ids))
    if not ids:
        return []
    leads = executor.execute(
        select(
            _LEADS.c.id,
            _LEADS.c.status,
            _LEADS.c.created_at,
            _LEADS.c.assigned_to,
            _LEADS.c.email_key,
            _LEADS.c.merged_into_id,
        ).where(_LEADS.c.id.in_(ids))
    ).all()
    ours: dict[int, list[tuple[datetime, int, str]]] = {}
    for row in executor.execute(
        select(
            _MESSAGES.c.lead_id,
            _out_time(_MESSAGES).label("at"),
            _MESSAGES.c.id,
            _MESSAGES.c.message_id,
        ).where(_MESSAGES.c.lead_id.in_(ids), _ours(_MESSAGES))
    ):
        ours.setdefault(row.lead_id, []).append((row.at, row.id, row.message_id))
    theirs = {
        row.lead_id: (row.first_sent, row.last_in)
        for row in executor.execute(
            select(
                _MESSAGES.c.lead_id,
                func.min(_MESSAGES.c.sent_at).label("first_sent"),
                func.max(_MESSAGES.c.created_at).label("last_in"),
            )
            .where(_MESSAGES.c.lead_id.in_(ids), _theirs(_MESSAGES))
            .group_by(_MESSAGES.c.lead_id)
        )
    }
    facts = []
    for lead in sorted(leads, key=lambda r: r.id):
        mine = sorted(ours.get(lead.id, []))
        first_sent, last_in = theirs.get(lead.id, (None, None))
        facts.append(
            MailFacts(
                lead_id=lead.id,
                status=lead.status,
                created_at=_aware(lead.created_at),
                executive=lead.assigned_to,
                has_address=lead.email_key is not None,
                merged=lead.merged_into_id is not None,
                first_in_sent_at=_utc(first_sent),
                first_out_at=_aware(mine[0][0]) if mine else None,
                last_out_at=_aware(mine[-1][0]) if mine else None,
                last_out_id=mine[-1][2] if mine else None,
                last_in_at=_utc(last_in),
            )
        )
    return facts


def reminders_of(
    executor: Executor, lead_ids: Sequence[int], kinds: Sequence[str]
) -> list[dict[str, Any]]:
    """The reminder rows of ``kinds`` of these leads: what the rules compare with."""
    if not lead_ids:
        return []
    rows = executor.execute(
        select(
            _REMINDERS.c.id,
            _REMINDERS.c.lead_id,
            _REMINDERS.c.kind,
            _REMINDERS.c.status,
            _REMINDERS.c.method,
            _REMINDERS.c.cause,
            _REMINDERS.c.due_at,
            _REMINDERS.c.executive,
            _REMINDERS.c.recipient,
        ).where(_REMINDERS.c.lead_id.in_(sorted(set(lead_ids))), _REMINDERS.c.kind.in_(kinds))
    ).all()
    return [{**row._mapping, "due_at": _utc(row.due_at)} for row in rows]


def lock_lead(executor: Executor, lead_id: int) -> bool:
    """Hold the lead's row until the transaction ends (PostgreSQL; SQLite's BEGIN IMMEDIATE
    already serialises writers), so two dispatchers apply one lead's plan one at a time."""
    found = executor.execute(
        select(_LEADS.c.id).where(_LEADS.c.id == lead_id).with_for_update()
    ).first()
    return found is not None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return _aware(value)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
