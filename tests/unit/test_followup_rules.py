"""The follow-up rules' decision (worker/routing/followups.py): pure, with a given clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from worker.config import Settings, load_settings
from worker.routing.followups import (
    ESCALATION,
    ESCALATION_CAUSE,
    FIRST_RESPONSE,
    FIRST_RESPONSE_CAUSE,
    NO_REPLY,
    Existing,
    FollowupRules,
    LeadFollowupFacts,
    plan,
    wanted,
)
from worker.routing.schema import Executive, RuleSet, schedule_from
from worker.services.followups import followup_rules
from worker.store.models import LeadStatus, ReminderKind

BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)
OFFICE = schedule_from(("mon", "tue", "wed", "thu", "fri"), "09:00-18:00", "Europe/Berlin")
RULES = FollowupRules(
    first_response=H,
    escalate_after=4 * H,
    escalate_executive="boss",
    escalate_recipient=None,
    no_reply=timedelta(days=3),
    working=OFFICE,
)
# Wednesday 2026-06-10 10:00 in Berlin.
CAME = datetime(2026, 6, 10, 10, tzinfo=BERLIN).astimezone(UTC)
NEW = LeadFollowupFacts(lead_id=7, status="Lead", arrived_at=CAME, executive="anna")


def existing(kind: str, status: str = "pending", **changes: object) -> Existing:
    want, _ = wanted(RULES, NEW)
    target = want.get(kind)
    row = Existing(
        id=100 + len(kind),
        kind=kind,
        status=status,
        cause=target.cause if target else "no reply to <old@x>",
        due_at=target.due_at if target else CAME,
        executive=target.executive if target else "anna",
        recipient=target.recipient if target else None,
    )
    return replace(row, **changes)  # type: ignore[arg-type]


def test_the_kinds_and_statuses_are_the_stores() -> None:
    kinds = {k.value for k in ReminderKind}
    assert {FIRST_RESPONSE, ESCALATION, NO_REPLY} <= kinds
    from worker.routing import followups

    statuses = {s.value for s in LeadStatus}
    assert set(followups.UNANSWERED) <= statuses and set(followups.NO_REMINDERS) <= statuses


def test_an_unanswered_lead_gets_one_reminder_and_one_escalation() -> None:
    # Nothing before the first hour has passed; then the reminder; then the escalation.
    assert not plan(RULES, NEW, [], CAME + H - timedelta(seconds=1))
    (first,) = plan(RULES, NEW, [], CAME + H).schedule
    result = plan(RULES, NEW, [], CAME + 4 * H)
    assert not result.cancel
    assert result.schedule[0] == first
    escalation = result.schedule[1]
    assert (first.kind, first.executive, first.recipient) == (FIRST_RESPONSE, "anna", None)
    assert first.due_at == datetime(2026, 6, 10, 11, tzinfo=BERLIN)
    assert (escalation.kind, escalation.executive) == (ESCALATION, "boss")
    assert escalation.due_at == datetime(2026, 6, 10, 14, tzinfo=BERLIN)
    assert first.cause == FIRST_RESPONSE_CAUSE and escalation.cause == ESCALATION_CAUSE
    assert "Lead 7 came Wed 2026-06-10 10:00 Europe/Berlin" in first.note
    assert "first_response_hours = 1" in first.note and "mon-fri 09:00-18:00" in first.note


def test_once_made_it_is_not_made_again() -> None:
    for status in ("pending", "claimed", "sending", "sent", "cancelled", "failed"):
        rows = [existing(FIRST_RESPONSE, status), existing(ESCALATION, status)]
        assert not plan(RULES, NEW, rows, CAME + 10 * H), status


def test_a_lead_we_wrote_to_gets_none_and_loses_the_pending_ones() -> None:
    answered = replace(NEW, first_out_at=CAME + H / 2, last_out_at=CAME + H / 2, last_out_id="a@x")
    assert not plan(RULES, answered, [], CAME + H)
    # Days later only the no_reply rule has something to say: our mail went unanswered.
    later = CAME + timedelta(days=4)
    assert [w.kind for w in plan(RULES, answered, [], later).schedule] == [NO_REPLY]
    rows = [existing(FIRST_RESPONSE), existing(ESCALATION, "sent")]
    result = plan(replace(RULES, no_reply=None), answered, rows, CAME + H)
    assert not result.schedule
    (cancel,) = result.cancel  # the delivered escalation stays as it was
    assert (cancel.kind, cancel.reason) == (FIRST_RESPONSE, "we wrote to the lead")


def test_friday_evening_lead_is_due_monday() -> None:
    friday = datetime(2026, 6, 12, 17, 30, tzinfo=BERLIN)
    first, escalation = plan(RULES, replace(NEW, arrived_at=friday), [], friday + 4 * H).schedule
    assert first.due_at == datetime(2026, 6, 15, 9, 30, tzinfo=BERLIN)
    assert escalation.due_at == datetime(2026, 6, 15, 12, 30, tzinfo=BERLIN)


def test_a_new_executive_moves_the_pending_reminder_but_not_a_sent_one() -> None:
    moved = replace(NEW, executive="ben")
    (target,) = plan(RULES, moved, [existing(FIRST_RESPONSE), existing(ESCALATION)], CAME).schedule
    assert (target.kind, target.executive) == (FIRST_RESPONSE, "ben")
    sent = [existing(FIRST_RESPONSE, "sent"), existing(ESCALATION)]
    assert not plan(RULES, moved, sent, CAME)


def test_changed_hours_move_a_pending_reminder() -> None:
    longer = replace(RULES, first_response=2 * H)
    (target,) = plan(longer, NEW, [existing(FIRST_RESPONSE), existing(ESCALATION)], CAME).schedule
    assert target.due_at == datetime(2026, 6, 10, 12, tzinfo=BERLIN)


def test_no_executive_no_first_response_but_still_an_escalation() -> None:
    (escalation,) = plan(RULES, replace(NEW, executive=None), [], CAME + 4 * H).schedule
    assert escalation.kind == ESCALATION
    assert "Its executive: none." in escalation.note


def test_escalation_to_an_address() -> None:
    rules = replace(RULES, escalate_executive=None, escalate_recipient="boss@example.com")
    _, escalation = plan(rules, NEW, [], CAME + 4 * H).schedule
    assert (escalation.executive, escalation.recipient) == (None, "boss@example.com")


def test_rules_turned_off_make_nothing_and_cancel_what_is_pending() -> None:
    off = replace(RULES, first_response=None, escalate_after=None, no_reply=None)
    assert not plan(off, NEW, [], CAME)
    result = plan(off, NEW, [existing(FIRST_RESPONSE), existing(ESCALATION)], CAME)
    assert [c.reason for c in result.cancel] == [
        "first_response_hours is off",
        "escalate_after_hours is off",
    ]


def test_do_not_contact_converted_and_merged_leads_get_none() -> None:
    for facts, reason in (
        (replace(NEW, status="Do Not Contact"), "the lead is Do Not Contact"),
        (replace(NEW, status="Converted"), "the lead is Converted"),
        (replace(NEW, merged=True), "the lead was merged into another"),
    ):
        assert not plan(RULES, facts, [], CAME)
        rows = [existing(FIRST_RESPONSE), existing(NO_REPLY)]
        assert {c.reason for c in plan(RULES, facts, rows, CAME).cancel} == {reason}


def test_a_lead_someone_took_up_or_without_address_needs_no_first_response() -> None:
    later = CAME + 4 * H
    assert not plan(RULES, replace(NEW, status="Interested"), [], later)
    assert not plan(RULES, replace(NEW, has_address=False), [], later)
    assert len(plan(RULES, replace(NEW, status="Open"), [], later).schedule) == 2


def test_an_old_lead_is_not_caught_up() -> None:
    # A lead from last year (an ingested backlog): its reminders would have been due long ago.
    old = replace(NEW, arrived_at=CAME - timedelta(days=365))
    assert not plan(RULES, old, [], CAME)
    # Within catch_up (the dispatcher was down for a day), it is made, due at once.
    recent = replace(NEW, arrived_at=CAME - timedelta(days=1))
    assert len(plan(RULES, recent, [], CAME).schedule) == 2


# -- no reply ---------------------------------------------------------------------------------

SENT = datetime(2026, 6, 8, 11, tzinfo=BERLIN).astimezone(UTC)  # a Monday
WROTE = replace(
    NEW,
    status="Replied",
    first_out_at=SENT,
    last_out_at=SENT,
    last_out_id="out-1@example.com",
)


def test_our_unanswered_mail_makes_a_no_reply_reminder() -> None:
    assert not plan(RULES, WROTE, [], SENT + timedelta(days=3) - timedelta(seconds=1))
    (target,) = plan(RULES, WROTE, [], SENT + timedelta(days=3)).schedule
    assert (target.kind, target.executive) == (NO_REPLY, "anna")
    assert target.due_at == datetime(2026, 6, 11, 11, tzinfo=BERLIN)  # three days later
    assert target.cause == "no reply to <out-1@example.com>"
    assert "Our mail <out-1@example.com> of Mon 2026-06-08 11:00" in target.note


def test_no_reply_due_at_the_weekend_waits_for_monday() -> None:
    thursday = datetime(2026, 6, 11, 15, tzinfo=BERLIN)
    facts = replace(WROTE, last_out_at=thursday)
    (target,) = plan(RULES, facts, [], thursday + timedelta(days=3)).schedule
    assert target.due_at == datetime(2026, 6, 15, 9, tzinfo=BERLIN)


def test_the_lead_replying_cancels_no_reply() -> None:
    replied = replace(WROTE, status="Open", last_in_at=SENT + H)
    row = existing(NO_REPLY, cause="no reply to <out-1@example.com>")
    (cancel,) = plan(RULES, replied, [row], SENT + H).cancel
    assert (cancel.reason, cancel.reminder_id) == ("the lead replied", row.id)
    # An older message of the lead is no reply to our mail.
    earlier = replace(WROTE, last_in_at=SENT - H)
    assert plan(RULES, earlier, [], SENT + timedelta(days=3)).schedule[0].kind == NO_REPLY


def test_our_next_mail_is_a_new_cause() -> None:
    later = SENT + timedelta(days=4)
    again = replace(WROTE, last_out_at=later, last_out_id="out-2@example.com")
    sent_row = existing(NO_REPLY, "sent", cause="no reply to <out-1@example.com>")
    assert not plan(RULES, again, [sent_row], later)  # not before three days
    (target,) = plan(RULES, again, [sent_row], later + timedelta(days=3)).schedule
    assert target.cause == "no reply to <out-2@example.com>"
    # … but the same cause, delivered or cancelled, is never made again.
    same = existing(NO_REPLY, "cancelled", cause="no reply to <out-1@example.com>")
    assert not plan(RULES, WROTE, [same], SENT + timedelta(days=5))
    # A reminder in flight is left to finish; the next tick moves it.
    flying = replace(sent_row, status="claimed")
    assert not plan(RULES, again, [flying], later + timedelta(days=3))


def test_no_reply_needs_an_owner_and_stays_off_for_do_not_contact() -> None:
    later = SENT + timedelta(days=3)
    assert not plan(RULES, replace(WROTE, executive=None), [], later)
    assert not plan(RULES, replace(WROTE, status="Do Not Contact"), [], later)


def test_manual_reminders_are_never_touched() -> None:
    manual = Existing(1, "manual", "pending", "set by anna", CAME, "anna")
    off = replace(RULES, first_response=None, escalate_after=None, no_reply=None)
    assert not plan(off, replace(NEW, status="Converted"), [manual], CAME)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    status=st.sampled_from(["Lead", "Open", "Replied", "Interested", "Converted"]),
    executive=st.sampled_from([None, "anna"]),
    wrote=st.booleans(),
    replied=st.booleans(),
    hours=st.integers(0, 200),
)
def test_applying_a_plan_leaves_nothing_to_do(
    status: str, executive: str | None, wrote: bool, replied: bool, hours: int
) -> None:
    """A plan applied (as the service does) gives a plan with nothing left: the tick is
    idempotent, so running it many times makes no duplicates."""
    facts = replace(
        NEW,
        status=status,
        executive=executive,
        first_out_at=CAME + H if wrote else None,
        last_out_at=CAME + H if wrote else None,
        last_out_id="o@x" if wrote else None,
        last_in_at=CAME + 2 * H if replied else None,
    )
    now = CAME + hours * H
    rows: dict[str, Existing] = {}
    for _ in range(3):
        result = plan(RULES, facts, rows.values(), now)
        for target in result.schedule:
            rows[target.kind] = Existing(
                len(rows) + 1,
                target.kind,
                "pending",
                target.cause,
                target.due_at,
                target.executive,
                target.recipient,
            )
        for cancel in result.cancel:
            rows[cancel.kind] = replace(rows[cancel.kind], status="cancelled")
    assert not plan(RULES, facts, rows.values(), now)


# -- [followups] as the rules read it -------------------------------------------------------


def settings(**followups: str) -> Settings:
    env = {f"LEADMAIL_FOLLOWUPS__{k.upper()}": v for k, v in followups.items()}
    return load_settings(environ={"LEADMAIL_LEADS__TIMEZONE": '"Asia/Bangkok"', **env})


TEAM = RuleSet(
    {"boss": Executive("boss", "Boss", "boss@example.com")}, (), "UTC", False, "rules.yaml"
)


def test_every_rule_off_by_default_means_nothing_to_do() -> None:
    assert followup_rules(settings(), TEAM) is None


def test_the_config_becomes_rules() -> None:
    made = followup_rules(
        settings(
            first_response_hours="1.5",
            escalate_after_hours="8",
            escalate_to='"boss"',
            no_reply_days="3",
            working_days='["mon", "tue", "sat"]',
            working_hours='"08:30-24:00"',
            catch_up_days="2",
        ),
        TEAM,
    )
    assert made is not None
    assert (made.first_response, made.escalate_after, made.no_reply) == (
        timedelta(hours=1.5),
        8 * H,
        timedelta(days=3),
    )
    assert (made.escalate_executive, made.escalate_recipient) == ("boss", None)
    assert made.working.text == "mon-tue,sat 08:30-23:59 Asia/Bangkok"  # [leads] timezone
    assert made.catch_up == timedelta(days=2)


def test_escalate_to_an_address_or_an_unknown_executive(caplog: pytest.LogCaptureFixture) -> None:
    by_mail = followup_rules(
        settings(escalate_after_hours="2", escalate_to='"director@example.com"'), TEAM
    )
    assert by_mail is not None
    assert (by_mail.escalate_executive, by_mail.escalate_recipient) == (
        None,
        "director@example.com",
    )
    unknown = followup_rules(
        settings(first_response_hours="1", escalate_after_hours="2", escalate_to='"nobody"'),
        TEAM,
    )
    assert unknown is not None and unknown.escalate_after is None
    assert "escalate_to 'nobody' is no executive of rules.yaml" in caplog.text
    zone = followup_rules(settings(no_reply_days="1", working_timezone='"Europe/Berlin"'), TEAM)
    assert zone is not None and zone.working.timezone == "Europe/Berlin"
