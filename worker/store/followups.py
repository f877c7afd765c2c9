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

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
)
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


# The statements are built once (a tick runs every few seconds, and building one costs more
# than running it on an empty result); the values go in as bound parameters.


@functools.cache
def _unanswered(first_response: bool, escalation: bool) -> Select[Any]:
    missing: list[ColumnElement[bool]] = []
    if first_response:
        lacks = ~exists().where(
            _REMINDERS.c.lead_id == _LEADS.c.id, _REMINDERS.c.kind == "first_response"
        )
        missing.append(and_(_LEADS.c.assigned_to.is_not(None), lacks))
    if escalation:
        missing.append(
            ~exists().where(_REMINDERS.c.lead_id == _LEADS.c.id, _REMINDERS.c.kind == "escalation")
        )
    mail = _MESSAGES.alias("ours")
    answered = exists().where(mail.c.lead_id == _LEADS.c.id, _ours(mail))
    return (
        select(_LEADS.c.id)
        .where(
            _LEADS.c.status.in_(bindparam("statuses", expanding=True)),
            _LEADS.c.created_at >= bindparam("created_from"),
            _LEADS.c.created_at <= bindparam("created_to"),
            _LEADS.c.id > bindparam("after_id"),
            or_(*missing),
            ~answered,
        )
        .order_by(_LEADS.c.id)
        .limit(bindparam("limit"))
    )


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
    if not (first_response or escalation):
        return []
    rows = executor.execute(
        _unanswered(first_response, escalation),
        {
            "statuses": list(statuses),
            "created_from": created_from,
            "created_to": created_to,
            "after_id": after_id,
            "limit": limit,
        },
    )
    return [int(i) for i in rows.scalars()]


@functools.cache
def _unreplied() -> Select[Any]:
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
    cause = bindparam("cause_prefix", type_=String) + mail.c.message_id
    reminded = exists().where(
        _REMINDERS.c.lead_id == mail.c.lead_id,
        _REMINDERS.c.kind == "no_reply",
        _REMINDERS.c.cause == cause + bindparam("cause_suffix", type_=String),
    )
    return (
        select(mail.c.lead_id)
        .join(_LEADS, _LEADS.c.id == mail.c.lead_id)
        .where(
            mail.c.direction == "out",  # the index's first column
            mail.c.sent_at >= bindparam("sent_from"),
            mail.c.sent_at <= bindparam("sent_to"),
            _ours(mail),
            mail.c.lead_id > bindparam("after_id"),
            _LEADS.c.status.not_in(bindparam("excluded", expanding=True)),
            _LEADS.c.merged_into_id.is_(None),
            _LEADS.c.assigned_to.is_not(None),
            ~newer_ours,
            ~replied,
            ~reminded,
        )
        .group_by(mail.c.lead_id)
        .order_by(mail.c.lead_id)
        .limit(bindparam("limit"))
    )


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
    rows = executor.execute(
        _unreplied(),
        {
            "sent_from": sent_from,
            "sent_to": sent_to,
            "excluded": list(excluded_statuses),
            "cause_prefix": cause_prefix,
            "cause_suffix": cause_suffix,
            "after_id": after_id,
            "limit": limit,
        },
    )
    return [int(i) for i in rows.scalars()]


@functools.cache
def _pending(due: bool) -> Select[Any]:
    query = select(_REMINDERS.c.lead_id).where(
        _REMINDERS.c.status == "pending",
        _REMINDERS.c.kind.in_(bindparam("kinds", expanding=True)),
        _REMINDERS.c.lead_id > bindparam("after_id"),
    )
    if due:
        query = query.where(_REMINDERS.c.due_at <= bindparam("due_before"))
    return (
        query.group_by(_REMINDERS.c.lead_id)
        .order_by(_REMINDERS.c.lead_id)
        .limit(bindparam("limit"))
    )


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
    values: dict[str, Any] = {"kinds": list(kinds), "after_id": after_id, "limit": limit}
    if due_before is not None:
        values["due_before"] = due_before
    rows = executor.execute(_pending(due_before is not None), values)
    return [int(i) for i in rows.scalars()]


_LEAD_ROWS = select(
    _LEADS.c.id,
    _LEADS.c.status,
    _LEADS.c.created_at,
    _LEADS.c.assigned_to,
    _LEADS.c.email_key,
    _LEADS.c.merged_into_id,
).where(_LEADS.c.id.in_(bindparam("ids", expanding=True)))
_OUR_MAIL = select(
    _MESSAGES.c.lead_id,
    _out_time(_MESSAGES).label("at"),
    _MESSAGES.c.id,
    _MESSAGES.c.message_id,
).where(_MESSAGES.c.lead_id.in_(bindparam("ids", expanding=True)), _ours(_MESSAGES))
_THEIR_MAIL = (
    select(
        _MESSAGES.c.lead_id,
        func.min(_MESSAGES.c.sent_at).label("first_sent"),
        func.max(_MESSAGES.c.created_at).label("last_in"),
    )
    .where(_MESSAGES.c.lead_id.in_(bindparam("ids", expanding=True)), _theirs(_MESSAGES))
    .group_by(_MESSAGES.c.lead_id)
)
_REMINDER_ROWS = select(
    _REMINDERS.c.id,
    _REMINDERS.c.lead_id,
    _REMINDERS.c.kind,
    _REMINDERS.c.status,
    _REMINDERS.c.method,
    _REMINDERS.c.cause,
    _REMINDERS.c.due_at,
    _REMINDERS.c.executive,
    _REMINDERS.c.recipient,
).where(
    _REMINDERS.c.lead_id.in_(bindparam("ids", expanding=True)),
    _REMINDERS.c.kind.in_(bindparam("kinds", expanding=True)),
)
_LOCK = select(_LEADS.c.id).where(_LEADS.c.id == bindparam("id")).with_for_update()


def mail_facts(executor: Executor, lead_ids: Sequence[int]) -> list[MailFacts]:
    """The facts of each lead in ``lead_ids`` that exists, in id order: three queries for
    the whole batch."""
    ids = {"ids": sorted(set(lead_ids))}
    if not ids["ids"]:
        return []
    leads = executor.execute(_LEAD_ROWS, ids).all()
    ours: dict[int, list[tuple[datetime, int, str]]] = {}
    for row in executor.execute(_OUR_MAIL, ids):
        ours.setdefault(row.lead_id, []).append((_aware(row.at), row.id, row.message_id))
    theirs = {
        row.lead_id: (row.first_sent, row.last_in) for row in executor.execute(_THEIR_MAIL, ids)
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
                first_out_at=mine[0][0] if mine else None,
                last_out_at=mine[-1][0] if mine else None,
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
        _REMINDER_ROWS, {"ids": sorted(set(lead_ids)), "kinds": list(kinds)}
    ).all()
    return [{**row._mapping, "due_at": _aware(row.due_at)} for row in rows]


def lock_lead(executor: Executor, lead_id: int) -> bool:
    """Hold the lead's row until the transaction ends (PostgreSQL; SQLite's BEGIN IMMEDIATE
    already serialises writers), so two dispatchers apply one lead's plan one at a time."""
    return executor.execute(_LOCK, {"id": lead_id}).first() is not None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return _aware(value)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
