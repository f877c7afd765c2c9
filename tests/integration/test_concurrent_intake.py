"""Two intake processes at once: mail from one new address makes exactly one lead.

Two ``leadmail ingest`` processes read two mboxes holding one message from each of the same
1,500 senders (different Message-IDs, same order, so they race on every sender). Whichever
process comes second for a sender must thread onto the lead the first made: no duplicate
lead, nothing quarantined, no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text

from tests.integration.helpers import make_mail
from worker.config import Settings, load_settings
from worker.mail.message import RawMessage
from worker.services.context import App
from worker.services.intake import Intake, IntakeResult
from worker.store import schema
from worker.store.models import Outcome

SENDERS = 1500
WHEN = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
_FREE = ("gmail.com", "yahoo.com", "outlook.com")


def _address(n: int) -> str:
    # Three in four at a company domain (some colleagues share one), the rest on free mail.
    domain = _FREE[n % 3] if n % 4 == 0 else f"firm{n % 211}.example"
    return f"buyer.{n}@{domain}"


def _write_mbox(path: Path, tag: str, senders: int = SENDERS) -> None:
    with path.open("wb") as handle:
        for n in range(senders):
            msg = EmailMessage()
            msg["From"] = f"Buyer {n} <{_address(n)}>"
            msg["To"] = "sales@northwind.example"
            msg["Subject"] = f"Enquiry {n} ({tag})"
            msg["Date"] = format_datetime(WHEN)
            msg["Message-ID"] = f"<{tag}-{n}@sender.example>"
            msg.set_content(f"Hello, please quote item {n}. ({tag})\n")
            handle.write(b"From sender@example.com Mon Jan  5 08:00:00 2026\n")
            handle.write(msg.as_bytes())
            handle.write(b"\n")


ROUND_ROBIN = """
executives:
  - {id: alice, name: Alice}
  - {id: bob, name: Bob}
rules:
  - name: everyone
    assign: {strategy: round_robin, to: [alice, bob]}
"""


def _env(db_url: str, data: Path, rules: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADMAIL_")}
    env.update(
        LEADMAIL_DATABASE__URL=db_url,
        LEADMAIL_STORAGE__PATH=str(data),
        LEADMAIL_SECRET="concurrency-test-secret-0123456789",
        LEADMAIL_RULES__PATH=str(rules),
    )
    return env


def _run_ingests(env: dict[str, str], mboxes: list[Path]) -> dict[str, int]:
    """Start one ``leadmail ingest --json`` per mbox at once; outcome counts of them all."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "worker", "ingest", "--json", "--no-progress", str(mbox)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for mbox in mboxes
    ]
    outputs = [proc.communicate(timeout=900) for proc in procs]
    outcomes: dict[str, int] = {}
    for proc, (out, err) in zip(procs, outputs, strict=True):
        stderr = err.decode(errors="replace")
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr and "internal error" not in stderr, stderr
        for line in out.splitlines():
            outcome = json.loads(line)["outcome"]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _counts(db_url: str) -> tuple[int, int, int]:
    """(leads, distinct lead addresses, quarantine entries)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            leads, addresses = conn.execute(
                text("SELECT count(*), count(DISTINCT email_key) FROM leads")
            ).one()
            quarantined = conn.scalar(text("SELECT count(*) FROM quarantine"))
    finally:
        engine.dispose()
    return int(leads), int(addresses), int(quarantined or 0)


@pytest.mark.parametrize("routing", ["unassigned", "round_robin"])
def test_two_processes_on_the_same_new_senders_make_one_lead_each(
    db_url: str, tmp_path: Path, routing: str
) -> None:
    # With rules, every new lead also waits for the routing lock: a much wider window
    # between "do we know this sender?" and the commit.
    rules = tmp_path / "rules.yaml"
    if routing == "round_robin":
        rules.write_text(ROUND_ROBIN)
    env = _env(db_url, tmp_path / "data", rules)
    # The schema exists before both start: this test is about intake, not first-run set-up.
    app = App.from_settings(load_settings(environ=env))
    schema.upgrade(app.db.engine)
    app.close()
    mboxes = [tmp_path / "a.mbox", tmp_path / "b.mbox"]
    _write_mbox(mboxes[0], "a")
    _write_mbox(mboxes[1], "b")
    assert _run_ingests(env, mboxes) == {"created": SENDERS, "threaded": SENDERS}
    assert _counts(db_url) == (SENDERS, SENDERS, 0)


def test_two_first_runs_on_an_empty_database_both_succeed(db_url: str, tmp_path: Path) -> None:
    """Both find no schema: one creates it, the other waits for it and then uses it."""
    env = _env(db_url, tmp_path / "data", tmp_path / "rules.yaml")
    mboxes = [tmp_path / "a.mbox", tmp_path / "b.mbox"]
    _write_mbox(mboxes[0], "a", senders=50)
    _write_mbox(mboxes[1], "b", senders=50)
    assert _run_ingests(env, mboxes) == {"created": 50, "threaded": 50}
    assert _counts(db_url) == (50, 50, 0)


def _process_in_thread(settings: Settings, data: bytes, hold: threading.Event | None) -> Thread:
    """Intake of one message in a thread of its own (own App, own connection).

    With ``hold``, the message's transaction waits inside, after its lead is written and
    before it commits, until the event is set.
    """
    entered = threading.Event()

    def in_transaction(_conn: Connection) -> None:
        entered.set()
        if hold is not None:
            assert hold.wait(60)

    def work() -> None:
        app = App.from_settings(settings)
        try:
            thread.result = Intake(app).process(RawMessage(data, "t.eml", "local"), in_transaction)
        finally:
            entered.set()
            app.close()

    thread = Thread(target=work)
    thread.entered = entered
    thread.start()
    return thread


class Thread(threading.Thread):
    result: IntakeResult | None = None
    entered: threading.Event


def _race(settings: Settings, first_data: bytes, second_data: bytes) -> tuple[IntakeResult, ...]:
    """The first message's transaction holds before its commit while the second one runs.

    The second gets two seconds to run to its end if nothing holds it back (the defects these
    tests guard against); then the first commits, and both results are returned.
    """
    release = threading.Event()
    first = _process_in_thread(settings, first_data, release)
    try:
        assert first.entered.wait(60)
        second = _process_in_thread(settings, second_data, None)
        second.join(timeout=2)
    finally:
        release.set()
    first.join(60)
    second.join(60)
    assert first.result is not None and second.result is not None
    return first.result, second.result


def test_a_second_message_from_a_new_sender_waits_for_the_first_lead(app: App, db_url: str) -> None:
    """Deterministic form of the race: the first transaction has made the lead, uncommitted.

    The second one, from the same address, must wait for it and thread onto that lead; it
    must not find the address unknown and make a second lead.
    """
    first, second = _race(
        app.settings,
        make_mail(message_id="<m1@acme.example>"),
        make_mail(message_id="<m2@acme.example>", subject="Another one"),
    )
    assert first.outcome is Outcome.CREATED
    assert second.outcome is Outcome.THREADED
    assert second.lead_id == first.lead_id
    with app.db.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM leads")) == 1


M0 = "<m0@acme-industrial.example>"


def test_two_replies_to_one_lead_at_once_move_its_status_once(app: App) -> None:
    """Two of a lead's people answer at the same moment: one Lead → Open change, not two."""
    first_mail = make_mail(message_id="<m0@acme-industrial.example>")
    assert Intake(app).process(RawMessage(first_mail, "0.eml", "local")).outcome is Outcome.CREATED
    reply = make_mail(message_id="<r1@acme-industrial.example>", in_reply_to=M0, references=M0)
    colleague = make_mail(
        sender="Bob Buyer <bob@acme-industrial.example>",
        message_id="<r2@acme-industrial.example>",
        in_reply_to=M0,
        references=M0,
    )
    first, second = _race(app.settings, reply, colleague)
    assert (first.outcome, second.outcome) == (Outcome.THREADED, Outcome.THREADED)
    with app.db.engine.connect() as conn:
        changes = conn.execute(text("SELECT from_status, to_status FROM status_changes")).all()
    assert sorted(changes, key=str) == sorted([(None, "Lead"), ("Lead", "Open")], key=str)


def test_the_same_message_twice_at_once_is_stored_once_and_reported_duplicate(
    app: App,
) -> None:
    """The loser of the unique-key race on the Message-ID is a duplicate, not quarantined.

    A message with no sender takes no sender lock, so on PostgreSQL the second insert
    waits on the unique index and then fails: intake must see that as SQLAlchemy's
    IntegrityError (whatever cursor ran the insert) and find the stored copy on retry.
    """
    data = make_mail(sender="", message_id="<same@nowhere.example>")
    first, second = _race(app.settings, data, data)
    assert first.outcome is Outcome.IGNORED
    assert second.outcome is Outcome.DUPLICATE, second.reasons
    with app.db.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM messages")) == 1
        assert conn.scalar(text("SELECT count(*) FROM quarantine")) == 0
