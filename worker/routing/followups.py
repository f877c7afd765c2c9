"""Follow-up rules ([followups]): which reminders a lead should have, and which must go.

Pure: ``plan(rules, facts, existing, now)`` looks at one lead's facts (read by the store) and
its follow-up reminders as they are, and returns what to schedule and what to cancel; the
service applies it (services/followups.py). Three rules, each making at most one reminder of
its kind per lead (the reminders table holds one row per lead and kind):

- ``first_response``: a new lead (status Lead or Open) that nobody on our side has written
  to is due a reminder to its executive ``first_response_hours`` working hours after it
  came. Any mail of ours on the lead counts as written, except an automatic
  acknowledgement (the store leaves those out). A lead with no executive gets none.
- ``escalation``: the same lead, ``escalate_after_hours`` working hours after it came, also
  reminds ``escalate_to`` (an executive id, or an address). Unassigned leads too: someone
  should know.
- ``no_reply``: our last mail to a lead, unanswered by any human mail from the lead for
  ``no_reply_days`` days (calendar days; the reminder then waits for working time), reminds
  the lead's executive to follow up. Each mail of ours is its own cause, so a new mail
  after the reminder makes the next one.

A reminder is made once its rule's span has passed in plain time (the lead came N hours
ago, our mail is N days old): working time is never shorter, so it cannot be due earlier,
and when the span ended outside working hours it waits, pending, for the working clock (a
lead of Friday evening is due Monday morning). Until then a lead has no row for it.

"Once per lead and cause": a reminder is made when none of its kind exists; one that exists
with the same cause is only moved while it is still pending (a new executive, changed
hours), never made again once it was sent or cancelled (a person's ``reminders cancel``
holds). A pending reminder whose cause went away (we wrote, the lead replied, the lead is
Do Not Contact or Converted, the rule was turned off) is cancelled. Delivered ones are left
alone: their calendar entry is in the past.

Reminders that would have been due more than ``catch_up`` before ``now`` are not made: a
mailbox ingested from years back, or a rule turned on today, must not remind anyone of
last year's leads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from worker.routing.schema import Schedule, zone
from worker.routing.workhours import add_working_time, next_working_instant

__all__ = [
    "ESCALATION",
    "FIRST_RESPONSE",
    "KINDS",
    "NO_REMINDERS",
    "NO_REPLY",
    "UNANSWERED",
    "Cancel",
    "Existing",
    "FollowupRules",
    "LeadFollowupFacts",
    "Plan",
    "Wanted",
    "no_reply_cause",
    "plan",
    "wanted",
]

FIRST_RESPONSE = "first_response"
ESCALATION = "escalation"
NO_REPLY = "no_reply"
KINDS = (FIRST_RESPONSE, ESCALATION, NO_REPLY)
"""The reminder kinds the rules make (``manual`` ones are people's, never touched here)."""

UNANSWERED = ("Lead", "Open")
"""Statuses of a lead nobody has dealt with: every other one is set by mail we sent or by a
person (Interested, records), so a person has taken the lead up."""
NO_REMINDERS = ("Do Not Contact", "Converted")

FIRST_RESPONSE_CAUSE = "no mail from us since the lead came"
ESCALATION_CAUSE = "no mail from us since the lead came (escalation)"
_NO_REPLY_CAUSE = "no reply to <{message_id}>"

_PENDING = "pending"
_IN_FLIGHT = ("claimed", "sending")


def no_reply_cause(message_id: str) -> str:
    """The cause of the no_reply reminder of our mail ``message_id`` (bare, no brackets):
    the store finds the leads whose last mail has no such reminder by this text."""
    return _NO_REPLY_CAUSE.format(message_id=message_id)


@dataclass(frozen=True, slots=True)
class FollowupRules:
    """[followups] as the rules read it; a None duration is a rule turned off.

    ``escalate_executive``/``escalate_recipient``: who an escalation goes to, an executive
    id of the rule file or an address (exactly one when ``escalate_after`` is set).
    """

    first_response: timedelta | None
    escalate_after: timedelta | None
    escalate_executive: str | None
    escalate_recipient: str | None
    no_reply: timedelta | None
    working: Schedule
    catch_up: timedelta = timedelta(days=7)

    @property
    def any(self) -> bool:
        return any(d is not None for d in (self.first_response, self.escalate_after, self.no_reply))

    @property
    def earliest_unanswered(self) -> timedelta | None:
        """The shorter of the two unanswered-lead rules: no working time is shorter than the
        same span of plain time, so a lead younger than this needs neither yet."""
        spans = [d for d in (self.first_response, self.escalate_after) if d is not None]
        return min(spans) if spans else None


@dataclass(frozen=True, slots=True)
class LeadFollowupFacts:
    """What the rules need to know about one lead (UTC instants).

    ``arrived_at``: when the lead came (the earlier of its row's creation and its first
    human mail's date, so an ingested backlog is as old as its mail). ``first_out_at`` /
    ``last_out_at`` / ``last_out_id``: our mail on the lead (acknowledgements and mail
    cancelled or failed before sending left out). ``last_in_at``: when the lead's last human
    mail reached us.
    """

    lead_id: int
    status: str
    arrived_at: datetime
    executive: str | None
    has_address: bool = True
    merged: bool = False
    first_out_at: datetime | None = None
    last_out_at: datetime | None = None
    last_out_id: str | None = None
    last_in_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Existing:
    """A follow-up reminder row of the lead as it is now."""

    id: int
    kind: str
    status: str
    cause: str | None
    due_at: datetime
    executive: str | None
    recipient: str | None = None


@dataclass(frozen=True, slots=True)
class Wanted:
    """A reminder the rules say should exist."""

    kind: str
    due_at: datetime
    executive: str | None
    recipient: str | None
    cause: str
    note: str
    ready_at: datetime
    """When the rule's span has passed in plain time: the reminder is made from then on
    (and waits for working time when ``due_at`` is later)."""


@dataclass(frozen=True, slots=True)
class Cancel:
    reminder_id: int
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do for one lead: reminders to create or move, pending ones to cancel."""

    schedule: tuple[Wanted, ...] = ()
    cancel: tuple[Cancel, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.schedule or self.cancel)


def wanted(
    rules: FollowupRules, facts: LeadFollowupFacts
) -> tuple[dict[str, Wanted], dict[str, str]]:
    """The reminders the lead should have by kind, and for every other kind why not."""
    want: dict[str, Wanted] = {}
    why: dict[str, str] = {}
    refusal = _no_reminders(facts)
    for kind in KINDS:
        if refusal is not None:
            why[kind] = refusal
            continue
        made = _no_reply(rules, facts) if kind == NO_REPLY else _unanswered(rules, facts, kind)
        if isinstance(made, Wanted):
            want[kind] = made
        else:
            why[kind] = made
    return want, why


def plan(
    rules: FollowupRules,
    facts: LeadFollowupFacts,
    existing: Iterable[Existing],
    now: datetime,
) -> Plan:
    """Compare what should exist with what does (see the module docstring)."""
    rows = {row.kind: row for row in existing if row.kind in KINDS}
    want, why = wanted(rules, facts)
    schedule: list[Wanted] = []
    cancel: list[Cancel] = []
    for kind in KINDS:
        row = rows.get(kind)
        target = want.get(kind)
        if target is None:
            if row is not None and row.status == _PENDING:
                cancel.append(Cancel(row.id, kind, why[kind]))
            continue
        ready = target.ready_at <= now and target.due_at >= now - rules.catch_up
        if row is None:
            if ready:
                schedule.append(target)
        elif row.cause == target.cause:
            moved = (row.due_at, row.executive, row.recipient) != (
                target.due_at,
                target.executive,
                target.recipient,
            )
            if row.status == _PENDING and moved:
                schedule.append(target)
        elif row.status not in _IN_FLIGHT and ready:
            # A new cause (our next mail): the row is reused, moved to the new date.
            schedule.append(target)
    return Plan(tuple(schedule), tuple(cancel))


# -- the rules ------------------------------------------------------------------------------


def _no_reminders(facts: LeadFollowupFacts) -> str | None:
    if facts.merged:
        return "the lead was merged into another"
    if facts.status in NO_REMINDERS:
        return f"the lead is {facts.status}"
    return None


def _unanswered(rules: FollowupRules, facts: LeadFollowupFacts, kind: str) -> Wanted | str:
    first = kind == FIRST_RESPONSE
    span = rules.first_response if first else rules.escalate_after
    key = "first_response_hours" if first else "escalate_after_hours"
    if span is None:
        return f"{key} is off"
    if facts.first_out_at is not None:
        return "we wrote to the lead"
    if facts.status not in UNANSWERED:
        return f"the lead is {facts.status}: someone took it up"
    if not facts.has_address:
        return "the lead has no address to write to"
    if first:
        executive, recipient = facts.executive, None
        if executive is None:
            return "the lead has no executive"
    else:
        executive, recipient = rules.escalate_executive, rules.escalate_recipient
        if executive is None and recipient is None:
            return "escalate_to is not set"
    due = add_working_time(rules.working, facts.arrived_at, span)
    if due is None:
        return f"{key} is never reached in working hours {rules.working.text}"
    hours = span / timedelta(hours=1)
    came = _local(facts.arrived_at, rules.working)
    note = (
        f"Lead {facts.lead_id} came {came} and nobody has written to it yet: "
        f"{key} = {hours:g} (working hours {rules.working.text})."
    )
    if not first:
        note += f" Its executive: {facts.executive or 'none'}."
    cause = FIRST_RESPONSE_CAUSE if first else ESCALATION_CAUSE
    return Wanted(kind, due, executive, recipient, cause, note, facts.arrived_at + span)


def _no_reply(rules: FollowupRules, facts: LeadFollowupFacts) -> Wanted | str:
    if rules.no_reply is None:
        return "no_reply_days is off"
    if facts.last_out_at is None or facts.last_out_id is None:
        return "we have not written to the lead"
    if facts.last_in_at is not None and facts.last_in_at > facts.last_out_at:
        return "the lead replied"
    if facts.executive is None:
        return "the lead has no executive"
    quiet = facts.last_out_at + rules.no_reply
    due = next_working_instant(rules.working, quiet)
    if due is None:
        return f"working hours {rules.working.text} never come"
    days = rules.no_reply / timedelta(days=1)
    note = (
        f"Our mail <{facts.last_out_id}> of {_local(facts.last_out_at, rules.working)} "
        f"has had no reply for {days:g} days: follow up."
    )
    cause = no_reply_cause(facts.last_out_id)
    return Wanted(NO_REPLY, due, facts.executive, None, cause, note, quiet)


def _local(instant: datetime, working: Schedule) -> str:
    local = instant.astimezone(zone(working.timezone))
    return f"{local:%a %Y-%m-%d %H:%M} {working.timezone}"
