"""The rule engine wired into intake: each new lead routed in its own transaction, race-free."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.integration.conftest import settings_for
from tests.integration.helpers import make_mail
from worker.errors import NotFoundError, RuleError
from worker.mail.message import RawMessage
from worker.services.assignment import (
    RuleAssigner,
    RuleBook,
    assign_manually,
    explain,
    reassign_unavailable,
)
from worker.services.context import App
from worker.services.intake import Intake
from worker.services.leads import lead_detail
from worker.store import schema
from worker.store.models import Activity, Lead, table_of

_leads = table_of(Lead)
_activities = table_of(Activity)

TEAM = """
executives:
  - {id: alice, name: Alice Chan, email: alice@northwind.example}
  - {id: bob, name: Bob Stone, email: bob@northwind.example}
  - {id: carol, name: Carol Diaz, email: carol@northwind.example}
"""
ROUND_ROBIN = (
    TEAM
    + """
rules:
  - name: everyone
    assign: {strategy: round_robin, to: [alice, bob, carol]}
"""
)


def write_rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def raw(n: int, sender: str | None = None, subject: str | None = None) -> RawMessage:
    data = make_mail(
        sender=sender or f"Buyer {n} <buyer{n}@firm{n}.example>",
        message_id=f"<lead-{n}@firm{n}.example>",
        subject=subject or f"Enquiry {n}",
    )
    return RawMessage(data=data, source=f"test#{n}", account="local")


def intake(app: App, rules: Path) -> Intake:
    return Intake(app, assigner=RuleAssigner(RuleBook(rules, reload_seconds=3600)))


def assigned(app: App) -> list[str | None]:
    with app.db.engine.connect() as conn:
        return list(conn.scalars(select(_leads.c.assigned_to).order_by(_leads.c.id)))


def test_new_leads_are_assigned_in_rotation_and_explained(app: App, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, ROUND_ROBIN)
    work = intake(app, rules)
    results = [work.process(raw(n)) for n in range(5)]
    assert [r.outcome.value for r in results] == ["created"] * 5
    assert assigned(app) == ["alice", "bob", "carol", "alice", "bob"]
    lead_id = results[4].lead_id
    assert lead_id is not None
    why = explain(app, lead_id)
    assert (why["executive"], why["rule"]) == ("bob", "everyone")
    assert why["trace"] == [
        {"rule": "everyone", "matched": True, "reasons": why["trace"][0]["reasons"]}
    ]
    timeline = lead_detail(app, lead_id)["timeline"]
    entry = next(e for e in timeline if e["type"] == "assignment")
    assert "assigned to bob by rule everyone" in entry["summary"]


def test_a_reply_does_not_assign_again(app: App, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, ROUND_ROBIN)
    work = intake(app, rules)
    first = work.process(raw(1))
    reply = make_mail(
        sender="Buyer 1 <buyer1@firm1.example>",
        message_id="<reply-1@firm1.example>",
        in_reply_to="<lead-1@firm1.example>",
        subject="Re: Enquiry 1",
    )
    result = work.process(RawMessage(data=reply, source="reply", account="local"))
    assert result.outcome.value == "threaded" and result.lead_id == first.lead_id
    assert assigned(app) == ["alice"]


def test_unavailable_executives_are_skipped_then_the_lead_stays_unassigned(
    app: App, tmp_path: Path
) -> None:
    rules = write_rules(
        tmp_path,
        """
executives:
  - {id: alice, name: Alice, email: a@northwind.example, active: false}
  - {id: bob, name: Bob, email: b@northwind.example, capacity: 1}
rules:
  - name: first
    assign: {strategy: round_robin, to: [alice, bob]}
  - name: fallback
    assign: {strategy: load_balancing, to: [alice]}
""",
    )
    work = intake(app, rules)
    work.process(raw(1))
    second = work.process(raw(2))
    assert assigned(app) == ["bob", None]
    assert second.lead_id is not None
    why = explain(app, second.lead_id)
    assert why["executive"] is None and why["rule"] is None
    assert [t["matched"] for t in why["trace"]] == [False, False]
    text = " ".join(" ".join(t["reasons"]) for t in why["trace"])
    assert "alice" in text and "bob" in text


def test_manual_assignment_is_logged_and_checked(app: App, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, ROUND_ROBIN)
    app.rules = RuleBook(rules, reload_seconds=3600)
    lead_id = intake(app, rules).process(raw(1)).lead_id
    assert lead_id is not None
    done = assign_manually(app, lead_id, "carol", "manager@northwind.example")
    assert done == {"lead_id": lead_id, "executive": "carol", "previous": "alice"}
    assert assigned(app) == ["carol"]
    why = explain(app, lead_id)
    assert why["cause"] == "manual" and why["executive"] == "carol"
    with pytest.raises(RuleError, match="no executive 'zoe'"):
        assign_manually(app, lead_id, "zoe", None)
    with pytest.raises(NotFoundError):
        assign_manually(app, 999, "carol", None)


def test_reassignment_moves_leads_off_an_executive_who_became_unavailable(
    app: App, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path, "reassign_unavailable: true\n" + ROUND_ROBIN)
    work = intake(app, rules)
    for n in range(3):
        work.process(raw(n))
    assert assigned(app) == ["alice", "bob", "carol"]
    rules.write_text(
        "reassign_unavailable: true\n"
        + ROUND_ROBIN.replace(
            "email: alice@northwind.example}", "email: a@x.example, active: false}"
        )
    )
    book = RuleBook(rules, reload_seconds=3600)
    current = book.load()
    assert current is not None
    moved = reassign_unavailable(app, current)
    assert len(moved) == 1
    assert "alice" not in assigned(app)
    why = explain(app, moved[0])
    assert why["cause"].startswith("reassigned: alice")


def test_rule_book_reloads_a_changed_file_and_keeps_the_old_on_errors(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, ROUND_ROBIN)
    book = RuleBook(rules, reload_seconds=0.1)
    first = book.load()
    assert first is not None and [r.name for r in first.rules] == ["everyone"]
    rules.write_text(ROUND_ROBIN.replace("name: everyone", "name: all-of-them"))
    import time

    time.sleep(0.15)
    assert [r.name for r in book.current().rules] == ["all-of-them"]  # type: ignore[union-attr]
    rules.write_text(ROUND_ROBIN.replace("strategy: round_robin", "strategy: lottery"))
    time.sleep(0.15)
    assert [r.name for r in book.current().rules] == ["all-of-them"]  # type: ignore[union-attr]


# -- 200 concurrent assignments -----------------------------------------------------------------

COUNT = 200
WORKERS = 4


def _process_share(db_url: str, data: str, rules: str, start: int) -> None:
    settings = settings_for(db_url, Path(data))
    application = App.from_settings(settings)
    try:
        work = Intake(application, assigner=RuleAssigner(RuleBook(Path(rules), 3600)))
        for n in range(start, COUNT, WORKERS):
            assert work.process(raw(n)).outcome.value == "created"
    finally:
        application.close()


def test_concurrent_intakes_never_take_the_same_rotation_slot(db_url: str, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, ROUND_ROBIN)
    settings = settings_for(db_url, tmp_path)
    application = App.from_settings(settings)
    schema.upgrade(application.db.engine)
    try:
        if db_url.startswith("sqlite"):  # threads sharing one engine
            threads = [
                threading.Thread(target=_process_share, args=(db_url, str(tmp_path), str(rules), i))
                for i in range(WORKERS)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:  # processes, as several pollers on several hosts would be
            context = multiprocessing.get_context("spawn")
            procs = [
                context.Process(target=_process_share, args=(db_url, str(tmp_path), str(rules), i))
                for i in range(WORKERS)
            ]
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.join(120)
                assert proc.exitcode == 0
        got = assigned(application)
        with application.db.engine.connect() as conn:
            # Assignment rows are written while the rotation is locked: their ids give the
            # order in which slots were taken (lead ids come from a sequence, not the lock).
            taken = [
                details["executive"]
                for details in conn.scalars(
                    select(_activities.c.details)
                    .where(_activities.c.kind == "assignment")
                    .order_by(_activities.c.id)
                )
            ]
    finally:
        application.close()
    assert len(got) == COUNT
    assert Counter(got) == {"alice": 67, "bob": 67, "carol": 66}
    assert taken == [("alice", "bob", "carol")[i % 3] for i in range(COUNT)]
