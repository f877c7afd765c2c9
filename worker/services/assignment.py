"""Assignment: the rule engine's decisions applied inside the intake transaction.

The engine (worker/routing) is pure; this module gives it the facts and the state it needs
(open leads per executive, round-robin positions, weighted counts), decides what the decision
changes, and has store/routing_state.py write it on the lead, in its timeline and in the
counters, in the same transaction. The SQL is all there. On PostgreSQL every assignment first
locks one row, so concurrent intakes in several processes take rotation slots one after
another; on SQLite the intake transaction is BEGIN IMMEDIATE, which already serialises writers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from worker.config import LeadSettings
from worker.errors import RuleError
from worker.mail.message import InboundMessage
from worker.routing.conditions import DeclaredField
from worker.routing.engine import Decision, decide, eligible, message_facts_tested
from worker.routing.facts import (
    LEAD_COLUMNS,
    LeadRow,
    MessageFacts,
    RoutingState,
    lead_facts,
    message_facts,
)
from worker.routing.loader import CustomFields, RuleFileError, load_rules_file
from worker.routing.schema import RuleSet
from worker.services.context import App
from worker.store import routing_state as store
from worker.store.tables import utcnow

log = logging.getLogger(__name__)


class RuleBook:
    """The rules in use, loaded again when the file changes; a broken new file keeps the old.

    ``current()`` is cheap: it looks at the file's mtime at most every ``reload_seconds``.
    """

    def __init__(
        self, path: Path, reload_seconds: float = 5.0, custom_fields: CustomFields | None = None
    ) -> None:
        self.path = path
        self.reload_seconds = reload_seconds
        self.custom_fields = custom_fields  # declared in the config: custom.NAME is checked
        self._rules: RuleSet | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = float("-inf")  # the first current() looks at the file
        self._lock = threading.Lock()

    def load(self) -> RuleSet | None:
        """Load now; RuleFileError (every problem with its line) when the file is invalid.

        None when the file does not exist: leads then stay unassigned.
        """
        with self._lock:
            stamp = self._file_stamp()
            self._checked = time.monotonic()
            if stamp is None:
                self._rules, self._stamp = None, None
                return None
            self._rules, self._stamp = load_rules_file(self.path, self.custom_fields), stamp
            return self._rules

    def current(self) -> RuleSet | None:
        with self._lock:
            if time.monotonic() - self._checked < self.reload_seconds:
                return self._rules
            self._checked = time.monotonic()
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return self._rules
            # A missing or refused file is logged once, one line per problem, and not read
            # again until it changes: `run` checks every few seconds and must not repeat itself.
            self._stamp = stamp
            if stamp is None:
                log.warning("rule file %s is gone: keeping the rules in use", self.path)
                return self._rules
            try:
                rules = load_rules_file(self.path, self.custom_fields)
            except RuleFileError as exc:
                for problem in exc.problems:
                    log.error("rule file refused, keeping the rules in use: %s", problem)
                return self._rules
            except Exception as exc:  # a bug in the loader must not stop intake either
                log.error(
                    "rule file %s refused, keeping the rules in use: internal error: %s",
                    self.path,
                    " ".join(f"{type(exc).__name__}: {exc}".split()),
                )
                log.debug("rule file %s: traceback", self.path, exc_info=True)
                return self._rules
            log.info("rule file %s reloaded: %d rules", self.path, len(rules.rules))
            self._rules, self._stamp = rules, stamp
            return rules

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size)


def rule_book(app: App) -> RuleBook:
    """The app's one RuleBook, made on first use (so every intake shares its reloads)."""
    if app.rules is None:
        settings = app.settings.rules
        app.rules = RuleBook(
            settings.path, settings.reload_seconds, declared_fields(app.settings.leads)
        )
    assert isinstance(app.rules, RuleBook)
    return app.rules


def declared_fields(settings: LeadSettings) -> CustomFields | None:
    """The config's custom fields as the rule loader checks ``custom.NAME`` (None: none)."""
    if not settings.custom_fields:
        return None
    return {f.name: DeclaredField(f.type, tuple(f.choices)) for f in settings.custom_fields}


@dataclass(frozen=True, slots=True)
class Pending:
    """A new lead's routing, decided before the lead is inserted."""

    rules: RuleSet
    decision: Decision
    now: datetime

    @property
    def executive(self) -> str | None:
        return self.decision.executive


@dataclass(frozen=True, slots=True)
class Applied:
    lead_id: int
    decision: Decision


class RuleAssigner:
    """The intake's Assigner: routes each new lead in the transaction that creates it."""

    def __init__(self, book: RuleBook, clock: Callable[[], datetime] = utcnow) -> None:
        self.book = book
        self.clock = clock
        self.last: Applied | None = None  # for `rules test`: what the dry run decided
        self._language: tuple[RuleSet, bool] | None = None

    def decide_new(
        self,
        conn: Connection,
        msg: InboundMessage,
        lead: LeadRow,
        facts: MessageFacts | None = None,
    ) -> Pending | None:
        """Route a lead about to be inserted (its columns in ``lead``); None without rules.

        Deciding first lets the lead go in with its executive: one UPDATE less per lead.
        Takes the assignment lock (PostgreSQL) until the caller's transaction ends.
        ``facts``: the message's, made by a parse worker (``message_facts``), else made here.
        """
        rules = self.book.current()
        if rules is None:
            return None
        if facts is None:
            facts = message_facts(msg, language=self._tests_language(rules))
        now = self.clock()
        return Pending(rules, _decide_locked(conn, rules, lead, facts, now), now)

    def record_new(self, conn: Connection, lead_id: int, pending: Pending) -> None:
        """Store the decision (timeline, counters) once the lead has its id."""
        _record(conn, pending.rules, lead_id, pending.decision, "rule", pending.now, stored=True)
        self.last = Applied(lead_id, pending.decision)

    def _tests_language(self, rules: RuleSet) -> bool:
        """Guessing the language reads the start of the body: only worth it when a rule asks."""
        if self._language is None or self._language[0] is not rules:
            self._language = (rules, "language" in message_facts_tested(rules))
        return self._language[1]


def route(
    conn: Connection,
    rules: RuleSet,
    lead_id: int,
    message: MessageFacts | None,
    now: datetime,
    cause: str = "rule",
    record_unassigned: bool = True,
) -> Decision:
    """Decide and record an existing lead's executive; the caller's transaction commits it."""
    lead = store.lead_columns(conn, lead_id, LEAD_COLUMNS)
    decision = _decide_locked(conn, rules, lead, message, now)
    if decision.executive is not None or record_unassigned:
        _record(conn, rules, lead_id, decision, cause, now)
    return decision


def _decide_locked(
    conn: Connection,
    rules: RuleSet,
    lead: LeadRow,
    message: MessageFacts | None,
    now: datetime,
) -> Decision:
    """The engine's decision on the state read under the assignment lock."""
    store.lock(conn)
    return decide(rules, lead_facts(lead), message, routing_state(conn), now)


def routing_state(conn: Connection) -> RoutingState:
    """The engine's view of the stored state; open leads are read only if a rule asks."""
    rotation, assigned = store.counters(conn)
    return RoutingState(open_leads=store.OpenLeadCounts(conn), rotation=rotation, assigned=assigned)


def _record(
    conn: Connection,
    rules: RuleSet,
    lead_id: int,
    decision: Decision,
    cause: str,
    now: datetime,
    stored: bool = False,
) -> None:
    """The decision's effects; ``stored`` when the lead was inserted with its executive."""
    if decision.executive is not None and not stored:
        store.set_executive(conn, lead_id, decision.executive, now)
    if decision.rotation is not None:
        store.set_rotation(conn, *decision.rotation)
    if decision.executive is not None and decision.rule is not None:
        rule = next((r for r in rules.rules if r.name == decision.rule), None)
        if rule is not None and rule.assign.strategy == "weighted":
            store.count_assigned(conn, decision.rule, decision.executive)
    summary = (
        f"assigned to {decision.executive} by rule {decision.rule}"
        if decision.executive is not None
        else f"not assigned: {decision.reason}"
    )
    store.record_assignment(
        conn,
        lead_id,
        summary[:2000],
        actor=None if cause == "rule" else cause,
        details={**decision.to_json(), "cause": cause, "rules_file": rules.source},
        now=now,
    )


# -- facts for the engine -----------------------------------------------------------------------


# -- use cases outside intake --------------------------------------------------------------------


def assign_manually(app: App, lead_id: int, executive: str, actor: str | None) -> dict[str, Any]:
    """`leads assign`: a person overrides the rules; logged in the lead's timeline."""
    rules = rule_book(app).load()
    if rules is not None and rules.executive(executive) is None:
        known = ", ".join(rules.executives) or "none"
        raise RuleError(
            f"no executive {executive!r} in {rules.source} (known: {known})", value=executive
        )
    now = utcnow()
    with app.db.begin() as conn:
        before = store.assignee(conn, lead_id)
        store.set_executive(conn, lead_id, executive, now)
        who = actor or "a user"
        store.record_assignment(
            conn,
            lead_id,
            f"assigned to {executive} by hand (was {before or 'unassigned'})",
            actor=actor,
            details={
                "executive": executive,
                "rule": None,
                "reason": f"manual assignment by {who}",
                "trace": [],
                "cause": "manual",
                "previous": before,
            },
            now=now,
        )
    return {"lead_id": lead_id, "executive": executive, "previous": before}


def explain(app: App, lead_id: int) -> dict[str, Any]:
    """`rules explain`: the last assignment decision of a lead, with its trace."""
    with app.db.engine.connect() as conn:
        assigned = store.assignee(conn, lead_id)
        last = store.last_assignment(conn, lead_id)
    if last is None:
        return {
            "lead_id": lead_id,
            "executive": assigned,
            "rule": None,
            "reason": "no assignment was recorded for this lead",
            "trace": [],
            "at": None,
        }
    details, at = last
    return {
        "lead_id": lead_id,
        "executive": details.get("executive"),
        "rule": details.get("rule"),
        "reason": details.get("reason"),
        "cause": details.get("cause"),
        "trace": details.get("trace", []),
        "at": at.isoformat(),
    }


def reassign_unavailable(app: App, rules: RuleSet, now: datetime | None = None) -> list[int]:
    """Route again the open leads whose executive is inactive or away (rules opt in).

    Capacity does not count here: a full executive keeps the leads they have.
    """
    if not rules.reassign_unavailable:
        return []
    now = now or utcnow()
    moved: list[int] = []
    with app.db.engine.connect() as conn:
        leads = store.open_assigned_leads(conn)
    unavailable: dict[str, str] = {}
    for executive_id in {executive for _, executive in leads}:
        executive = rules.executive(executive_id)
        if executive is None:
            continue  # assigned by hand to someone outside the file: leave it
        ok, why = eligible(executive, RoutingState(), now, rules.timezone)
        if not ok:
            unavailable[executive_id] = why
    for lead_id, executive_id in leads:
        if executive_id not in unavailable:
            continue
        with app.db.begin() as conn:
            cause = f"reassigned: {executive_id} {unavailable[executive_id]}"
            decision = route(conn, rules, lead_id, None, now, cause, record_unassigned=False)
            if decision.executive is not None:
                moved.append(lead_id)
    return moved
