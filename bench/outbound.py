"""Outbound benchmark: queued mail delivered by leadmail against a bare aiosmtplib loop.

One local aiosmtpd sink in a process of its own (``tests.servers.smtp.SmtpProcess``, plain SMTP,
no auth), recording every message it accepts in a JSON-lines file. Per run (medians over
``--runs``), on a fresh SQLite database each time (``--pg`` adds PostgreSQL rows):

(a) bare: one ``aiosmtplib.SMTP`` connection in this process, ``sendmail`` of the ``--count``
    raw messages one after the other (timed from the first MAIL to the last reply);
(b) ``python -m worker dispatch --once`` with the memory broker (in-process worker, its default
    4 threads): subprocess wall clock, and net of the median ``dispatch --help`` start-up;
(c) ``python -m worker worker --processes P --threads T`` on a fresh redis-server, started and
    ready before the clock starts; timed from ``dispatch --once`` (claim + enqueue, Redis
    broker) until the sink holds every message.

The mails are queued beforehand, untimed, straight through the store (one lead each, the raw
message in the blob store: ``tests.integration.outbound_helpers.queue_mails``); leadmail then
does what it does for any queued mail: take the row, read the blob, send over a connection it
reuses for ``[smtp] max_per_connection`` (default 100) messages, record the outcome and move
the lead to Replied. Each of (b) and (c) must leave every row ``sent`` and the sink must have
each of their Message-IDs exactly once; anything else fails the bench.

Target: (b) and (c) each >= 0.5 x (a) (msg/s, wall clock). Exit status 1 when one is missed.

Usage: python bench/outbound.py [--count 5000] [--runs 3] [--processes 2] [--threads 4]
       [--pg] [--workdir DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiosmtplib  # noqa: E402

from bench.ingest import machine  # noqa: E402
from tests.integration.outbound_helpers import SENDER, queue_mails, raw_message  # noqa: E402
from tests.servers.redis import RedisServer  # noqa: E402
from tests.servers.smtp import SmtpProcess  # noqa: E402
from worker.config import load_settings  # noqa: E402
from worker.services.context import App  # noqa: E402
from worker.store import schema  # noqa: E402

TARGET = 0.5
READY_TIMEOUT = 120.0
DELIVERY_TIMEOUT = 600.0


@dataclass
class Run:
    bare: float
    dispatch: float
    dispatch_net: float
    worker: float
    db: str

    @property
    def ratio_dispatch(self) -> float:
        return self.dispatch / self.bare

    @property
    def ratio_worker(self) -> float:
        return self.worker / self.bare


def cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LEADMAIL_")}


def run_cli(config: Path | None, *args: str) -> tuple[float, str]:
    """Wall clock of ``python -m worker [--config FILE] ARGS`` and its output."""
    where = ["--config", str(config)] if config is not None else []
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "worker", *where, *args],
        env=cli_env(),
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    output = done.stderr.decode(errors="replace") + done.stdout.decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(
            f"leadmail {' '.join(args)} failed ({done.returncode}): {output[-2000:]}"
        )
    return elapsed, output


def write_config(run_dir: Path, db_url: str, sink: SmtpProcess, broker: str) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "leadmail.toml"
    config.write_text(
        f"""\
[database]
url = {json.dumps(db_url)}
[storage]
path = {json.dumps(str(run_dir / "data"))}
[rules]
path = {json.dumps(str(run_dir / "no-rules.yaml"))}
[smtp]
transport = "smtp"
host = "{sink.host}"
port = {sink.port}
security = "none"
from_address = "{SENDER}"
[queue]
broker = "{broker}"
""",
        encoding="utf-8",
    )
    return config


def queue(config: Path, count: int, tag: str) -> set[str]:
    """`count` outbox rows on a fresh schema; their Message-IDs."""
    app = App.from_settings(load_settings(config))
    try:
        schema.upgrade(app.db.engine)
        return {m["message_id"] for m in queue_mails(app, count, tag=tag)}
    finally:
        app.close()


class SinkReader:
    """Deliveries per Message-ID, read incrementally from the sink's JSON-lines file: the
    bench polls it while workers send, and must not compete with them for the CPU."""

    def __init__(self, sink: SmtpProcess) -> None:
        self.path = sink.sink_file
        self.offset = 0
        self.partial = b""
        self.counts: Counter[str] = Counter()

    def read(self) -> Counter[str]:
        if not self.path.is_file():
            return self.counts
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if line.strip():
                self.counts[json.loads(line)["message_id"]] += 1
        return self.counts


_readers: dict[Path, SinkReader] = {}


def wait_for(sink: SmtpProcess, ids: set[str], timeout: float) -> Counter[str]:
    reader = _readers.setdefault(sink.sink_file, SinkReader(sink))
    deadline = time.monotonic() + timeout
    while True:
        counts = reader.read()
        if all(m in counts for m in ids):
            return counts
        if time.monotonic() > deadline:
            missing = sum(1 for m in ids if m not in counts)
            raise RuntimeError(f"{missing} of {len(ids)} messages never reached the sink")
        time.sleep(0.2)


def check_once(counts: Counter[str], ids: set[str], what: str) -> None:
    twice = [m for m in ids if counts[m] != 1]
    if twice:
        raise RuntimeError(f"{what}: {len(twice)} message(s) not delivered exactly once")


def bare_rate(sink: SmtpProcess, count: int, tag: str) -> float:
    """(a): aiosmtplib over one connection, the same kind of message, in this process."""
    raws = [
        raw_message(f"bare-{tag}-{n}@northwind.example", [f"buyer{n}@firm{n}.example"], f"x {n}")
        for n in range(count)
    ]

    async def send_all() -> float:
        smtp = aiosmtplib.SMTP(hostname=sink.host, port=sink.port, start_tls=False, timeout=60)
        await smtp.connect()
        start = time.perf_counter()
        for n, raw in enumerate(raws):
            await smtp.sendmail(SENDER, [f"buyer{n}@firm{n}.example"], raw)
        elapsed = time.perf_counter() - start
        await smtp.quit()
        return elapsed

    elapsed = asyncio.run(send_all())
    ids = {f"bare-{tag}-{n}@northwind.example" for n in range(count)}
    check_once(wait_for(sink, ids, 60), ids, "bare")
    return count / elapsed


def dispatch_rate(run_dir: Path, db_url: str, sink: SmtpProcess, count: int, tag: str) -> float:
    """(b): `dispatch --once` on the memory broker; wall clock of the subprocess."""
    config = write_config(run_dir, db_url, sink, "memory")
    ids = queue(config, count, tag)
    elapsed, output = run_cli(config, "dispatch", "--once")
    if f"dispatched {count} job(s): {count} sent" not in output:
        raise RuntimeError(f"dispatch --once did not send everything: {output[-500:]}")
    check_once(wait_for(sink, ids, 30), ids, "dispatch --once")
    return count / elapsed


def workers_deliver(
    run_dir: Path, config: Path, sink: SmtpProcess, ids: set[str], processes: int, threads: int
) -> float:
    """Seconds from `dispatch --once` until `leadmail worker` processes, started and ready
    beforehand (untimed), have delivered every id; each id must arrive exactly once."""
    log_path = run_dir / "worker.log"
    options = ("--processes", str(processes), "--threads", str(threads))
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "--config", str(config), "worker", *options],
            env=cli_env(),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while log_path.read_text(errors="replace").count(" thread(s) on ") < processes:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"workers did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        start = time.perf_counter()
        run_cli(config, "dispatch", "--once")
        counts = wait_for(sink, ids, DELIVERY_TIMEOUT)
        elapsed = time.perf_counter() - start
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    check_once(counts, ids, "leadmail worker")
    return elapsed


def worker_rate(
    run_dir: Path,
    db_url: str,
    sink: SmtpProcess,
    count: int,
    tag: str,
    processes: int,
    threads: int,
) -> float:
    """(c): `leadmail worker` processes on Redis, from `dispatch --once` to the last delivery."""
    with RedisServer(run_dir / "redis") as redis:
        config = write_config(run_dir, db_url, sink, redis.url)
        ids = queue(config, count, tag)
        elapsed = workers_deliver(run_dir, config, sink, ids, processes, threads)
    return count / elapsed


@contextlib.contextmanager
def pg_url(run: int) -> Any:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(
        os.environ.get("LEADMAIL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    admin = admin.set(drivername="postgresql")
    name = f"leadmail_bench_outbound_{os.getpid()}_{run}"
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def one_run(workdir: Path, sink: SmtpProcess, args: argparse.Namespace, run: int, db: str) -> Run:
    run_dir = workdir / f"run-{run}-{db}"
    shutil.rmtree(run_dir, ignore_errors=True)

    def url(part: str) -> contextlib.AbstractContextManager[str]:
        if db == "postgresql":
            return pg_url(run * 10 + (part == "c"))
        return contextlib.nullcontext(f"sqlite:///{run_dir / part / 'bench.db'}")

    bare = bare_rate(sink, args.count, f"{run}{db[0]}")
    with url("b") as db_url:
        dispatch = dispatch_rate(run_dir / "b", db_url, sink, args.count, f"b{run}{db[0]}")
    with url("c") as db_url:
        worker = worker_rate(
            run_dir / "c", db_url, sink, args.count, f"c{run}{db[0]}", args.processes, args.threads
        )
    return Run(bare=bare, dispatch=dispatch, dispatch_net=0.0, worker=worker, db=db)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3, help="runs of (a)-(c) (median)")
    parser.add_argument("--processes", type=int, default=2, help="leadmail worker --processes")
    parser.add_argument("--threads", type=int, default=4, help="leadmail worker --threads")
    parser.add_argument("--pg", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    args = parser.parse_args()

    def log(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="leadmail-bench-outbound-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"machine": machine(), "count": args.count, "runs": []}
    startup = statistics.median(run_cli(None, "dispatch", "--help")[0] for _ in range(3))
    result["startup_seconds"] = startup
    log(f"CLI start-up (dispatch --help, median of 3): {startup:.2f} s")
    runs: list[Run] = []
    with SmtpProcess(workdir / "sink") as sink:
        for run in range(args.runs):
            for db in ["sqlite"] + (["postgresql"] if args.pg else []):
                row = one_run(workdir, sink, args, run, db)
                row.dispatch_net = args.count / max(args.count / row.dispatch - startup, 1e-6)
                runs.append(row)
                log(
                    f"run {run + 1} {db:10} bare {row.bare:7.0f}/s  dispatch --once "
                    f"{row.dispatch:6.0f}/s (net {row.dispatch_net:6.0f}/s, "
                    f"{row.ratio_dispatch:.2f}x)  worker {row.worker:6.0f}/s "
                    f"({row.ratio_worker:.2f}x)"
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
            "bare": statistics.median(r.bare for r in mine),
            "dispatch": statistics.median(r.dispatch for r in mine),
            "dispatch_net": statistics.median(r.dispatch_net for r in mine),
            "worker": statistics.median(r.worker for r in mine),
            "ratio_dispatch": statistics.median(r.ratio_dispatch for r in mine),
            "ratio_worker": statistics.median(r.ratio_worker for r in mine),
        }
        summary[db] = med
        verdict = all(med[k] >= TARGET for k in ("ratio_dispatch", "ratio_worker"))
        failed |= not verdict
        log(
            f"median {db:10} bare {med['bare']:7.0f}/s  dispatch --once {med['dispatch']:6.0f}/s "
            f"({med['ratio_dispatch']:.2f}x)  worker {med['worker']:6.0f}/s "
            f"({med['ratio_worker']:.2f}x)  target >= {TARGET}x: {'met' if verdict else 'MISSED'}"
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
