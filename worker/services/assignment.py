"""Assignment: the rule engine's decisions applied inside the intake transaction.

The engine (worker/routing) is pure; this module gives it the state it needs (open leads
per executive, round-robin positions, weighted counts), stores what it decided on the lead
and in its timeline, and moves the counters in the same transaction. On PostgreSQL every
assignment first locks one row, so concurrent intakes in several processes take rotation
slots one after another; on SQLite the intake transaction is BEGIN IMMEDIATE, which already
serialises writers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from worker.errors import NotFoundError, RuleError
from worker.mail.addresses import email_key
from worker.mail.language import guess_language
from worker.mail.message import InboundMessage
from worker.routing.engine import (
    Decision,
    LeadFacts,
    MessageFacts,
    RoutingState,
    decide,
    eligible,
    message_facts_tested,
)
from worker.routing.loader import RuleFileError, load_rules_file
from worker.routing.schema import RuleSet
from worker.services.context import App
from worker.store.fast import FastStatement
from worker.store.models import (
    Activity,
    Lead,
    LeadLoad,
    LeadStatus,
    RoutingCounter,
    table_of,
    utcnow,
)

log = logging.getLogger(__name__)

_leads = table_of(Lead)
_activities = table_of(Activity)
_counters = table_of(RoutingCounter)
_load = table_of(LeadLoad)

# Leads an executive still works on: what capacity and load balancing count. Migration
# 0004's triggers count the same statuses into lead_load.
OPEN_STATUSES = (
    LeadStatus.LEAD,
    LeadStatus.OPEN,
    LeadStatus.REPLIED,
    LeadStatus.OPPORTUNITY,
    LeadStatus.QUOTATION,
    LeadStatus.INTERESTED,
)
_NEXT = "#next"
_LOCK = ("*", "lock")
_TAKE_LOCK = FastStatement(
    select(_counters.c.value)
    .where(_counters.c.scope == _LOCK[0], _counters.c.key == _LOCK[1])
    .with_for_update()
)

# Every new lead runs these; prebuilt and run on the driver's cursor (store/fast.py), they
# cost a fraction of building and executing Core statements per lead.
_LEAD_FACT_COLUMNS = (
    "company_name",
    "email",
    "person_name",
    "status",
    "source",
    "lead_type",
    "market_segment",
    "industry",
    "territory",
    "gender",
    "is_organization",
    "phone",
    "custom_fields",
)
_LEAD_FACTS = FastStatement(
    select(*(_leads.c[name] for name in _LEAD_FACT_COLUMNS)).where(_leads.c.id == bindparam("b_id"))
)
_COUNTERS = FastStatement(
    select(_counters.c.scope, _counters.c.key, _counters.c.value).where(
        _counters.c.scope != _LOCK[0]
    )
)
# Kept by triggers on leads (migration 0004): one small table read instead of a count.
_LEAD_LOAD = FastStatement(select(_load.c.executive, _load.c.open_leads))
_SET_EXECUTIVE = FastStatement(
    update(_leads)
    .where(_leads.c.id == bindparam("b_id"))
    .values(assigned_to=bindparam("b_executive"), updated_at=bindparam("b_now"))
)
_INSERT_ACTIVITY = FastStatement(insert(_activities))


def _counter_upsert(dialect_insert: Any, increment: bool) -> FastStatement:
    statement = dialect_insert(_counters).values(
        scope=bindparam("b_scope"), key=bindparam("b_key"), value=bindparam("b_value")
    )
    value = _counters.c.value + 1 if increment else statement.excluded.value
    return FastStatement(
        statement.on_conflict_do_update(
            index_elements=[_counters.c.scope, _counters.c.key], set_={"value": value}
        )
    )


_SET_COUNTER = {
    "sqlite": _counter_upsert(sqlite_insert, increment=False),
    "postgresql": _counter_upsert(pg_insert, increment=False),
}
_BUMP_COUNTER = {
    "sqlite": _counter_upsert(sqlite_insert, increment=True),
    "postgresql": _counter_upsert(pg_insert, increment=True),
}


class RuleBook:
    """The rules in use, loaded again when the file changes; a broken new file keeps the old.

    ``current()`` is cheap: it looks at the file's mtime at most every ``reload_seconds``.
    """

    def __init__(self, path: Path, reload_seconds: float = 5.0) -> None:
        self.path = path
        self.reload_seconds = reload_seconds
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
            self._rules, self._stamp = load_rules_file(self.path), stamp
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
                rules = load_rules_file(self.path)
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
        app.rules = RuleBook(settings.path, settings.reload_seconds)
    assert isinstance(app.rules, RuleBook)
    return app.rules


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
        self, conn: Connection, msg: InboundMessage, lead: Mapping[str, Any]
    ) -> Pending | None:
        """Route a lead about to be inserted (its columns in ``lead``); None without rules.

        Deciding first lets the lead go in with its executive: one UPDATE less per lead.
        Takes the assignment lock (PostgreSQL) until the caller's transaction ends.
        """
        rules = self.book.current()
        if rules is None:
            return None
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
    row = _LEAD_FACTS.one(conn, {"b_id": lead_id})
    lead = dict(zip(_LEAD_FACT_COLUMNS, row, strict=True))
    decision = _decide_locked(conn, rules, lead, message, now)
    if decision.executive is not None or record_unassigned:
        _record(conn, rules, lead_id, decision, cause, now)
    return decision


def _decide_locked(
    conn: Connection,
    rules: RuleSet,
    lead: Mapping[str, Any],
    message: MessageFacts | None,
    now: datetime,
) -> Decision:
    """The engine's decision on the state read under the assignment lock."""
    _lock(conn)
    return decide(rules, lead_facts(lead), message, routing_state(conn), now)


def _lock(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE has serialised this transaction already
    if _TAKE_LOCK.first(conn, {}) is not None:
        return
    # Migration 0003 creates the row; should it be gone, make it again (once) and lock it.
    conn.execute(
        pg_insert(_counters).values(scope=_LOCK[0], key=_LOCK[1], value=0).on_conflict_do_nothing()
    )
    _TAKE_LOCK.first(conn, {})


class OpenLeadCounts(Mapping[str, int]):
    """Open leads per executive, read only when a rule asks (capacity, load balancing)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._counts: dict[str, int] | None = None

    def _load(self) -> dict[str, int]:
        if self._counts is None:
            rows = _LEAD_LOAD.rows(self._conn, {})
            self._counts = {executive: int(count) for executive, count in rows if count}
        return self._counts

    def __getitem__(self, key: str) -> int:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def routing_state(conn: Connection) -> RoutingState:
    open_leads = OpenLeadCounts(conn)
    rotation: dict[str, int] = {}
    assigned: dict[tuple[str, str], int] = {}
    for scope, key, value in _COUNTERS.rows(conn, {}):
        if key == _NEXT:
            rotation[scope] = int(value)
        else:
            assigned[(scope, key)] = int(value)
    return RoutingState(open_leads=open_leads, rotation=rotation, assigned=assigned)


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
        _SET_EXECUTIVE.run(conn, {"b_id": lead_id, "b_executive": decision.executive, "b_now": now})
    if decision.rotation is not None:
        _set_counter(conn, decision.rotation[0], _NEXT, decision.rotation[1])
    if decision.executive is not None and decision.rule is not None:
        rule = next((r for r in rules.rules if r.name == decision.rule), None)
        if rule is not None and rule.assign.strategy == "weighted":
            _bump_counter(conn, decision.rule, decision.executive)
    summary = (
        f"assigned to {decision.executive} by rule {decision.rule}"
        if decision.executive is not None
        else f"not assigned: {decision.reason}"
    )
    _INSERT_ACTIVITY.run(
        conn,
        {
            "lead_id": lead_id,
            "kind": "assignment",
            "summary": summary[:2000],
            "actor": None if cause == "rule" else cause,
            "details": {**decision.to_json(), "cause": cause, "rules_file": rules.source},
            "due_date": None,
            "at": now,
        },
    )


def _set_counter(conn: Connection, scope: str, key: str, value: int) -> None:
    params = {"b_scope": scope[:255], "b_key": key[:255], "b_value": value}
    _SET_COUNTER[conn.dialect.name].run(conn, params)


def _bump_counter(conn: Connection, scope: str, key: str) -> None:
    params = {"b_scope": scope[:255], "b_key": key[:255], "b_value": 1}
    _BUMP_COUNTER[conn.dialect.name].run(conn, params)


# -- facts for the engine -----------------------------------------------------------------------


def lead_facts(lead: Mapping[str, Any]) -> LeadFacts:
    """The engine's view of a lead, from its columns (``_LEAD_FACT_COLUMNS``; absent = None)."""
    email = lead.get("email") or ""
    return LeadFacts(
        fields={
            "company": lead.get("company_name"),
            "email": email or None,
            "email_domain": email_key(email).rpartition("@")[2] or None if email else None,
            "name": lead.get("person_name"),
            "status": lead.get("status"),
            "source": lead.get("source"),
            "lead_type": lead.get("lead_type"),
            "market_segment": lead.get("market_segment"),
            "industry": lead.get("industry"),
            "territory": lead.get("territory"),
            "gender": lead.get("gender"),
            "is_organization": bool(lead.get("is_organization")),
            "phone": lead.get("phone"),
            "custom": dict(lead.get("custom_fields") or {}),
        }
    )


def message_facts(msg: InboundMessage, language: bool = True) -> MessageFacts:
    sender = email_key(msg.from_address.email) if msg.from_address else ""
    return MessageFacts(
        sender=sender,
        sender_domain=sender.rpartition("@")[2],
        subject=msg.subject,
        body=msg.text,
        to=tuple(email_key(a.email) for a in msg.to),
        cc=tuple(email_key(a.email) for a in msg.cc),
        charset=msg.charsets,
        language=guess_language(msg) if language else "",
        has_attachment=any(not a.inline for a in msg.attachments),
        attachment_names=tuple(a.filename for a in msg.attachments if a.filename),
        headers=dict(msg.headers),
    )


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
        before = conn.scalar(select(_leads.c.assigned_to).where(_leads.c.id == lead_id))
        exists = conn.scalar(select(_leads.c.id).where(_leads.c.id == lead_id))
        if exists is None:
            raise NotFoundError(f"no lead {lead_id}", lead_id)
        conn.execute(
            update(_leads)
            .where(_leads.c.id == lead_id)
            .values(assigned_to=executive, updated_at=now)
        )
        who = actor or "a user"
        conn.execute(
            insert(_activities).values(
                lead_id=lead_id,
                kind="assignment",
                summary=f"assigned to {executive} by hand (was {before or 'unassigned'})",
                actor=actor,
                details={
                    "executive": executive,
                    "rule": None,
                    "reason": f"manual assignment by {who}",
                    "trace": [],
                    "cause": "manual",
                    "previous": before,
                },
                due_date=None,
                at=now,
            )
        )
    return {"lead_id": lead_id, "executive": executive, "previous": before}


def explain(app: App, lead_id: int) -> dict[str, Any]:
    """`rules explain`: the last assignment decision of a lead, with its trace."""
    with app.db.engine.connect() as conn:
        if conn.scalar(select(_leads.c.id).where(_leads.c.id == lead_id)) is None:
            raise NotFoundError(f"no lead {lead_id}", lead_id)
        row = conn.execute(
            select(_activities.c.details, _activities.c.at)
            .where(_activities.c.lead_id == lead_id, _activities.c.kind == "assignment")
            .order_by(_activities.c.at.desc(), _activities.c.id.desc())
            .limit(1)
        ).first()
        assigned = conn.scalar(select(_leads.c.assigned_to).where(_leads.c.id == lead_id))
    if row is None:
        return {
            "lead_id": lead_id,
            "executive": assigned,
            "rule": None,
            "reason": "no assignment was recorded for this lead",
            "trace": [],
            "at": None,
        }
    details = dict(row.details or {})
    return {
        "lead_id": lead_id,
        "executive": details.get("executive"),
        "rule": details.get("rule"),
        "reason": details.get("reason"),
        "cause": details.get("cause"),
        "trace": details.get("trace", []),
        "at": row.at.isoformat(),
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
        rows = conn.execute(
            select(_leads.c.id, _leads.c.assigned_to).where(
                _leads.c.assigned_to.is_not(None), _leads.c.status.in_(OPEN_STATUSES)
            )
        ).all()
    unavailable: dict[str, str] = {}
    for executive_id in {r.assigned_to for r in rows}:
        executive = rules.executive(executive_id)
        if executive is None:
            continue  # assigned by hand to someone outside the file: leave it
        ok, why = eligible(executive, RoutingState(), now, rules.timezone)
        if not ok:
            unavailable[executive_id] = why
    for row in rows:
        if row.assigned_to not in unavailable:
            continue
        with app.db.begin() as conn:
            cause = f"reassigned: {row.assigned_to} {unavailable[row.assigned_to]}"
            decision = route(conn, rules, row.id, None, now, cause, record_unassigned=False)
            if decision.executive is not None:
                moved.append(row.id)
    return moved
