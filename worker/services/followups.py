"""The follow-up rules ([followups]) at work, once per dispatcher tick.

Each tick finds the few leads that may need a follow-up reminder or may no longer need
one, asks the pure rules (worker/routing/followups.py) what should exist, and makes it so
through services/reminders (``schedule`` creates or moves, ``cancel_one`` cancels), one
transaction per lead with the lead locked, so two dispatchers never make one reminder
twice. The leads looked at (store/followups.py, every scan bounded by ``limit`` and
resumed from a cursor on the next tick):

1. pending follow-up reminders due within ``SOON``: always, so a cause that went away
   (we wrote, the lead replied) cancels the reminder before it is sent;
2. the other pending follow-up reminders, a window at a time (the rest of the cancels);
3. leads in Lead/Open made between ``catch_up`` and the shorter of first_response_hours
   and escalate_after_hours ago (as plain hours: working time is never shorter) that none
   of our mail went to and that lack a reminder of an enabled kind;
4. leads whose last mail from us is between ``catch_up`` and no_reply_days old, with no
   reply since and no no_reply reminder for that mail.

A tick with every rule off reads nothing; with nothing to do it reads a few index
entries. ``now`` comes from the caller (the dispatcher's clock), so tests drive time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection

from worker.config import Settings
from worker.routing import followups as rules_
from worker.routing.followups import Existing, FollowupRules, LeadFollowupFacts, Plan
from worker.routing.schema import RuleSet, schedule_from
from worker.services import reminders
from worker.services.assignment import rule_book
from worker.services.context import App
from worker.store import followups as store
from worker.store.models import ReminderMethod, utcnow

log = logging.getLogger("leadmail.followups")

ACTOR = "followups"
"""Who the timeline says made or cancelled a follow-up reminder."""
LIMIT = 200
"""Leads per scan and tick."""
MAX_ROUNDS = 1000
"""Ticks of a ``complete`` run at most (200,000 leads per scan)."""
SOON = timedelta(minutes=5)
"""Pending follow-ups due within this are checked on every tick, before the claim."""


@dataclass
class Cursor:
    """Where each bounded scan resumes on the next tick: one per dispatcher, in memory (a
    restarted dispatcher starts again from the lowest lead id, which costs one pass)."""

    pending: int = 0
    unanswered: int = 0
    unreplied: int = 0

    @property
    def through(self) -> bool:
        """Every scan got to its end on the last tick."""
        return not (self.pending or self.unanswered or self.unreplied)


@dataclass
class TickResult:
    """What one tick did: (lead id, kind, reminder id) per change."""

    examined: int = 0
    scheduled: list[tuple[int, str, int]] = field(default_factory=list)
    cancelled: list[tuple[int, str, int]] = field(default_factory=list)


def followup_rules(settings: Settings, rules: RuleSet | None) -> FollowupRules | None:
    """[followups] as the rules read it; None when every rule is off.

    An ``escalate_to`` with an ``@`` is an address; otherwise an executive id, which must be
    in the rule file: an unknown one turns escalation off, with a warning each tick.
    """
    config = settings.followups

    def hours(value: float) -> timedelta | None:
        return timedelta(hours=value) if value > 0 else None

    escalate_after = hours(config.escalate_after_hours)
    executive: str | None = None
    recipient: str | None = None
    target = config.escalate_to
    if escalate_after is not None and target is not None:
        if "@" in target:
            recipient = target
        elif rules is not None and rules.executive(target) is None:
            log.warning(
                "[followups] escalate_to %r is no executive of %s: no escalations",
                target,
                rules.source,
            )
            escalate_after = None
        else:
            executive = target
    no_reply = timedelta(days=config.no_reply_days) if config.no_reply_days > 0 else None
    made = FollowupRules(
        first_response=hours(config.first_response_hours),
        escalate_after=escalate_after,
        escalate_executive=executive,
        escalate_recipient=recipient,
        no_reply=no_reply,
        working=schedule_from(
            config.working_days,
            config.working_hours,
            config.working_timezone or settings.leads.zone_name,
        ),
        catch_up=timedelta(days=config.catch_up_days),
    )
    return made if made.any else None


def run_once(
    app: App,
    now: datetime | None = None,
    *,
    cursor: Cursor | None = None,
    limit: int = LIMIT,
    complete: bool = False,
) -> TickResult:
    """One tick of the follow-up rules (see the module docstring); with ``complete``, as
    many as it takes for every scan to get through (``dispatch --once``, cron style)."""
    result = TickResult()
    rules = followup_rules(app.settings, rule_book(app).current())
    if rules is None:
        return result
    now = now or utcnow()
    cursor = cursor if cursor is not None else Cursor()
    for _ in range(MAX_ROUNDS if complete else 1):
        _round(app, rules, now, cursor, limit, result)
        if cursor.through:
            break
    return result


def _round(
    app: App, rules: FollowupRules, now: datetime, cursor: Cursor, limit: int, result: TickResult
) -> None:
    with app.db.transaction(write=False) as session:
        conn = session.connection()
        lead_ids = _candidates(conn, rules, now, cursor, limit)
        plans = _plans(conn, rules, lead_ids, now)
    result.examined += len(lead_ids)
    for lead_id in plans:
        with app.db.begin() as conn:
            if not store.lock_lead(conn, lead_id):
                continue
            # Again, under the lock: another dispatcher, or the lead's mail, may have
            # changed things since the batch was read.
            plan = _plans(conn, rules, [lead_id], now).get(lead_id)
            if plan is not None:
                _apply(conn, lead_id, plan, now, result)


def _candidates(
    conn: Connection, rules: FollowupRules, now: datetime, cursor: Cursor, limit: int
) -> list[int]:
    found: dict[int, None] = {}

    def scan(ids: list[int]) -> int:
        """Adds the ids; the cursor of the next tick (0 once a scan is through)."""
        found.update(dict.fromkeys(ids))
        return ids[-1] if len(ids) == limit else 0

    found.update(
        dict.fromkeys(
            store.followup_leads(conn, kinds=rules_.KINDS, due_before=now + SOON, limit=limit)
        )
    )
    cursor.pending = scan(
        store.followup_leads(conn, kinds=rules_.KINDS, after_id=cursor.pending, limit=limit)
    )
    span = rules.earliest_unanswered
    if span is not None:
        cursor.unanswered = scan(
            store.unanswered_leads(
                conn,
                statuses=rules_.UNANSWERED,
                created_from=now - span - rules.catch_up,
                created_to=now - span,
                first_response=rules.first_response is not None,
                escalation=rules.escalate_after is not None,
                after_id=cursor.unanswered,
                limit=limit,
            )
        )
    if rules.no_reply is not None:
        prefix, suffix = rules_.no_reply_cause("\0").split("\0")
        cursor.unreplied = scan(
            store.unreplied_leads(
                conn,
                sent_from=now - rules.no_reply - rules.catch_up,
                sent_to=now - rules.no_reply,
                excluded_statuses=rules_.NO_REMINDERS,
                cause_prefix=prefix,
                cause_suffix=suffix,
                after_id=cursor.unreplied,
                limit=limit,
            )
        )
    return list(found)


def _plans(
    conn: Connection, rules: FollowupRules, lead_ids: Sequence[int], now: datetime
) -> dict[int, Plan]:
    """The non-empty plans of these leads, by lead id."""
    rows: dict[int, list[Existing]] = {}
    for row in store.reminders_of(conn, lead_ids, rules_.KINDS):
        # A cancellation on its way to the calendar is a cancelled reminder to the rules.
        status = "cancelled" if row["method"] == ReminderMethod.CANCEL else row["status"]
        rows.setdefault(row["lead_id"], []).append(
            Existing(
                id=row["id"],
                kind=row["kind"],
                status=status,
                cause=row["cause"],
                due_at=row["due_at"],
                executive=row["executive"],
                recipient=row["recipient"],
            )
        )
    plans: dict[int, Plan] = {}
    for mail in store.mail_facts(conn, lead_ids):
        plan = rules_.plan(rules, lead_facts(mail), rows.get(mail.lead_id, []), now)
        if plan:
            plans[mail.lead_id] = plan
    return plans


def lead_facts(mail: store.MailFacts) -> LeadFollowupFacts:
    """The store's facts as the rules read them: the lead came when it was made, or at its
    first mail's date when that is earlier (an ingested backlog is as old as its mail)."""
    arrived = mail.created_at
    if mail.first_in_sent_at is not None and mail.first_in_sent_at < arrived:
        arrived = mail.first_in_sent_at
    return LeadFollowupFacts(
        lead_id=mail.lead_id,
        status=mail.status,
        arrived_at=arrived,
        executive=mail.executive,
        has_address=mail.has_address,
        merged=mail.merged,
        first_out_at=mail.first_out_at,
        last_out_at=mail.last_out_at,
        last_out_id=mail.last_out_id,
        last_in_at=mail.last_in_at,
    )


def _apply(conn: Connection, lead_id: int, plan: Plan, now: datetime, result: TickResult) -> None:
    for cancel in plan.cancel:
        if reminders.cancel_one(conn, cancel.reminder_id, cancel.reason, actor=ACTOR, now=now):
            result.cancelled.append((lead_id, cancel.kind, cancel.reminder_id))
            log.info("lead %s: %s reminder cancelled: %s", lead_id, cancel.kind, cancel.reason)
    for wanted in plan.schedule:
        reminder_id = reminders.schedule(
            conn,
            lead_id,
            wanted.kind,
            wanted.due_at,
            wanted.executive,
            wanted.cause,
            wanted.note,
            recipient=wanted.recipient,
            created_by=ACTOR,
            now=now,
        )
        result.scheduled.append((lead_id, wanted.kind, reminder_id))
        log.info(
            "lead %s: %s reminder #%s due %s",
            lead_id,
            wanted.kind,
            reminder_id,
            f"{wanted.due_at:%Y-%m-%d %H:%M} UTC",
        )
