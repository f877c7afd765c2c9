"""Reminder benchmark: due reminders delivered by leadmail against a bare aiosmtplib loop.

One local aiosmtpd sink in a process of its own (``tests.servers.smtp.SmtpProcess``), as in
bench/outbound.py. Per run, on a fresh database each time:

(a) bare: the same reminder mails (composed beforehand by ``worker.mail.reminder``, untimed)
    sent by one ``aiosmtplib.SMTP`` connection in this process, one after the other;
(b) ``python -m worker dispatch --once`` with the memory broker (in-process worker, 4
    threads): subprocess wall clock, start-up included;
(c) two ``python -m worker worker`` processes (``--processes 2 --threads 4``) on a fresh
    redis-server, started and ready before the clock starts; timed from ``dispatch --once``
    (claim + enqueue) until the sink holds every reminder.

The reminders (one lead each, a manual reminder due within the last minute, for one of two
executives of the rule file) are made beforehand, untimed, through ``services.reminders``.
leadmail then does what it does for any due reminder: claim, take the row, read the lead and
its latest messages, compose the mail and its invitation (icalendar), send it over a reused
connection, record the outcome. Every reminder must reach the sink exactly once and end
``sent``; anything else fails the bench.

Targets (issue 12): (b) and (c) each >= 0.5 x (a) in reminders/s, and 10,000 in under 60 s.
Exit status 1 when one is missed.

Usage: python bench/reminders.py [--count 10000] [--runs 1] [--processes 2] [--threads 4]
       [--pg] [--workdir DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiosmtplib  # noqa: E402

from bench.ingest import machine  # noqa: E402
from bench.outbound import check_once, pg_url, run_cli, wait_for, workers_deliver  # noqa: E402
from tests.servers.redis import RedisServer  # noqa: E402
from tests.servers.smtp import SmtpProcess  # noqa: E402
from worker.config import load_settings  # noqa: E402
from worker.mail.message import Address  # noqa: E402
from worker.mail.reminder import ReminderDraft, compose_reminder  # noqa: E402
from worker.services import reminders as service  # noqa: E402
from worker.services.context import App  # noqa: E402
from worker.store import schema  # noqa: E402
from worker.store.models import Lead, table_of  # noqa: E402

SENDER = "sales@northwind.example"
DOMAIN = "northwind.example"
TARGET = 0.5
WITHIN_SECONDS = 60.0
RULES = """\
timezone: Asia/Bangkok
executives:
  - {id: alice, name: Alice Chan, email: alice@northwind.example, timezone: Asia/Bangkok}
  - {id: bob, name: Bob Okafor, email: bob@northwind.example, timezone: Europe/Berlin}
rules: []
"""


@dataclass
class Run:
    bare: float
    dispatch: float
    dispatch_seconds: float
    worker: float
    worker_seconds: float
    db: str

    @property
    def ratio_dispatch(self) -> float:
        return self.dispatch / self.bare

    @property
    def ratio_worker(self) -> float:
        return self.worker / self.bare


def write_config(run_dir: Path, db_url: str, sink: SmtpProcess, broker: str, domain: str) -> Path:
    """A config whose Message-ID domain is ``domain``: every part of every run has its own,
    since reminder ids start at 1 in each fresh database and all share one sink."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = run_dir / "leadmail.toml"
    config.write_text(
        f"""\
[database]
url = {json.dumps(db_url)}
[storage]
path = {json.dumps(str(run_dir / "data"))}
[rules]
path = {json.dumps(str(run_dir / "rules.yaml"))}
[leads]
timezone = "Asia/Bangkok"
own_domains = ["{domain}"]
[smtp]
transport = "smtp"
host = "{sink.host}"
port = {sink.port}
security = "none"
from_address = "{SENDER}"
from_name = "Northwind Sales"
[queue]
broker = "{broker}"
""",
        encoding="utf-8",
    )
    return config


def schedule(config: Path, count: int, domain: str) -> set[str]:
    """`count` leads with a manual reminder due now, on a fresh schema; their Message-IDs."""
    app = App.from_settings(load_settings(config))
    leads = table_of(Lead)
    now = datetime.now(UTC)
    ids: list[int] = []
    try:
        schema.upgrade(app.db.engine)
        with app.db.begin() as conn:
            for n in range(count):
                email = f"buyer{n}@firm{n}.example"
                lead_id = conn.execute(
                    leads.insert().returning(leads.c.id),
                    {
                        "email": email,
                        "email_key": email,
                        "person_name": f"Buyer {n}",
                        "company_name": f"Firm {n} Ltd",
                        "status": "Open",
                        "assigned_to": "alice" if n % 2 else "bob",
                        "custom_fields": {},
                        "created_at": now,
                        "updated_at": now,
                    },
                ).scalar_one()
                due = now - timedelta(seconds=n % 60)
                who = "alice" if n % 2 else "bob"
                ids.append(
                    service.schedule(conn, lead_id, "manual", due, who, "bench", "Call back")
                )
    finally:
        app.close()
    return {f"reminder-{i}-0@{domain}" for i in ids}


def bare_rate(sink: SmtpProcess, count: int, tag: str) -> float:
    """(a): the same kind of reminder mail, composed beforehand, over one connection."""
    base = ReminderDraft(
        reminder_id=0,
        kind="manual",
        method="REQUEST",
        uid="bench@leadmail",
        sequence=0,
        due_at=datetime.now(UTC),
        zone="Asia/Bangkok",
        organizer=Address("Northwind Sales", SENDER),
        attendee=Address("Alice Chan", "alice@northwind.example"),
        id_domain=f"bare-{tag}.{DOMAIN}",
        lead_id=0,
        lead_name="Buyer",
        company="Firm Ltd",
        status="Open",
        owner="alice",
        lead_email="buyer@firm.example",
        note="Call back",
        cause="bench",
    )
    mails = [
        compose_reminder(replace(base, reminder_id=n, lead_id=n, uid=f"bench-{tag}-{n}@leadmail"))
        for n in range(count)
    ]

    async def send_all() -> float:
        smtp = aiosmtplib.SMTP(hostname=sink.host, port=sink.port, start_tls=False, timeout=60)
        await smtp.connect()
        start = time.perf_counter()
        for mail in mails:
            await smtp.sendmail(SENDER, ["alice@northwind.example"], mail.raw)
        elapsed = time.perf_counter() - start
        await smtp.quit()
        return elapsed

    elapsed = asyncio.run(send_all())
    ids = {m.message_id for m in mails}
    check_once(wait_for(sink, ids, 60), ids, "bare")
    return count / elapsed


def dispatch_rate(
    run_dir: Path, db_url: str, sink: SmtpProcess, count: int, domain: str
) -> tuple[float, float]:
    """(b): `dispatch --once` on the memory broker; wall clock of the subprocess."""
    config = write_config(run_dir, db_url, sink, "memory", domain)
    ids = schedule(config, count, domain)
    elapsed, output = run_cli(config, "dispatch", "--once")
    if f"dispatched {count} job(s): {count} sent" not in output:
        raise RuntimeError(f"dispatch --once did not send everything: {output[-500:]}")
    check_once(wait_for(sink, ids, 60), ids, "dispatch --once")
    return count / elapsed, elapsed


def worker_rate(
    run_dir: Path,
    db_url: str,
    sink: SmtpProcess,
    count: int,
    domain: str,
    processes: int,
    threads: int,
) -> tuple[float, float]:
    """(c): `leadmail worker` processes on Redis, from `dispatch --once` to the last delivery."""
    with RedisServer(run_dir / "redis") as redis:
        config = write_config(run_dir, db_url, sink, redis.url, domain)
        ids = schedule(config, count, domain)
        elapsed = workers_deliver(run_dir, config, sink, ids, processes, threads)
    return count / elapsed, elapsed


def one_run(workdir: Path, sink: SmtpProcess, args: argparse.Namespace, run: int, db: str) -> Run:
    run_dir = workdir / f"run-{run}-{db}"
    shutil.rmtree(run_dir, ignore_errors=True)

    def url(part: str) -> contextlib.AbstractContextManager[str]:
        if db == "postgresql":
            return pg_url(100 + run * 10 + (part == "c"))
        return contextlib.nullcontext(f"sqlite:///{run_dir / part / 'bench.db'}")

    bare = bare_rate(sink, args.count, f"{run}{db[0]}")
    with url("b") as db_url:
        dispatch, dispatch_seconds = dispatch_rate(
            run_dir / "b", db_url, sink, args.count, f"b{run}{db}.{DOMAIN}"
        )
    with url("c") as db_url:
        worker, worker_seconds = worker_rate(
            run_dir / "c",
            db_url,
            sink,
            args.count,
            f"c{run}{db}.{DOMAIN}",
            args.processes,
            args.threads,
        )
    return Run(bare, dispatch, dispatch_seconds, worker, worker_seconds, db)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1, help="runs of (a)-(c) (median)")
    parser.add_argument("--processes", type=int, default=2, help="leadmail worker --processes")
    parser.add_argument("--threads", type=int, default=4, help="leadmail worker --threads")
    parser.add_argument("--pg", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    args = parser.parse_args()

    def log(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="leadmail-bench-reminders-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"machine": machine(), "count": args.count, "runs": []}
    result["machine"]["loadavg_start"] = os.getloadavg()
    runs: list[Run] = []
    with SmtpProcess(workdir / "sink") as sink:
        for run in range(args.runs):
            for db in ["sqlite"] + (["postgresql"] if args.pg else []):
                row = one_run(workdir, sink, args, run, db)
                runs.append(row)
                log(
                    f"run {run + 1} {db:10} bare {row.bare:6.0f}/s  dispatch --once "
                    f"{row.dispatch:6.0f}/s ({row.dispatch_seconds:5.1f} s, "
                    f"{row.ratio_dispatch:.2f}x)  worker {row.worker:6.0f}/s "
                    f"({row.worker_seconds:5.1f} s, {row.ratio_worker:.2f}x)"
                )
    result["runs"] = [
        asdict(r) | {"ratio_dispatch": r.ratio_dispatch, "ratio_worker": r.ratio_worker}
        for r in runs
    ]
    result["machine"]["loadavg_end"] = os.getloadavg()
    failed = False
    summary = {}
    for db in sorted({r.db for r in runs}):
        mine = [r for r in runs if r.db == db]
        med = {
            key: statistics.median(getattr(r, key) for r in mine)
            for key in (
                "bare",
                "dispatch",
                "dispatch_seconds",
                "worker",
                "worker_seconds",
                "ratio_dispatch",
                "ratio_worker",
            )
        }
        summary[db] = med
        ratios = all(med[k] >= TARGET for k in ("ratio_dispatch", "ratio_worker"))
        # Scaled to 10,000 when --count is smaller (the rate is what counts).
        fast = all(
            med[k] * 10_000 / args.count < WITHIN_SECONDS
            for k in ("dispatch_seconds", "worker_seconds")
        )
        failed |= not (ratios and fast)
        log(
            f"median {db:10} bare {med['bare']:6.0f}/s  dispatch --once {med['dispatch']:6.0f}/s "
            f"({med['ratio_dispatch']:.2f}x)  worker {med['worker']:6.0f}/s "
            f"({med['ratio_worker']:.2f}x)  >= {TARGET}x: {'met' if ratios else 'MISSED'}; "
            f"10,000 in < {WITHIN_SECONDS:.0f} s: {'met' if fast else 'MISSED'}"
        )
    result["median"] = summary
    log(json.dumps(result["machine"]))
    if args.json:
        print(json.dumps(result, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
