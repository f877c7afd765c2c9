"""IMAP benchmark: ``poll --once`` against bare batched fetch and bare parse, and IDLE latency.

One run against a throwaway local Dovecot 2.3 (``tests/servers/dovecot.py``). ``--count``
generated enquiries (``tests.mailgen.write_mbox``, seed 7) are appended to INBOX of a fresh
user (untimed, in chunks). Then, per run (medians over ``--runs``):

(a) bare fetch: one imapclient connection, ``select_folder(readonly=True)``, ``search ALL``,
    ``fetch(chunk, ["BODY.PEEK[]"])`` in chunks of 100 UIDs (timed from the select on);
(b) bare parse: ``mailparser.parse_from_bytes`` over the fetched bytes in memory;
(c) ``python -m worker --config X poll --once`` on a fresh SQLite db + storage dir (``init``
    first, untimed): subprocess wall clock, and net of the median ``python -m worker poll --help``;
(c') ``python -m worker ingest --no-progress MBOX`` of the same messages, as the mbox they
    were generated as, on a fresh db. (c) and (c') swap places from one run to the next.

After each (c) the ``messages`` table must hold one row per distinct Message-ID (the workload
has ~2 % duplicate deliveries, which intake records as outcome "duplicate" without a row), the
summary line must account for all messages and the cursor must be at the highest UID; (c')
must store the same number of rows. Anything else fails the bench.

Then (d): ``python -m worker --config Y run`` (fresh db, idle = true, a fresh empty mailbox);
once it logs "connected", ``--latency-count`` times: APPEND one message with a unique
Message-ID over a separate, persistent connection (t0 right before APPEND) and poll the SQLite
file read-only every ~2 ms until its ``messages`` row exists (t1); 50-100 ms between samples.
Finally SIGTERM, which must end the process with status 0 within 10 s. As a control, 20
APPENDs are timed to the untagged EXISTS on a bare imapclient connection in IDLE: the floor
this server sets (Dovecot delays mailbox change notifications by about 0.5 s).

Targets: c >= 0.9 x c' (wall clock), p95 latency < 1 s. Exit status 1 when one is missed.

Usage: python bench/imap.py [--count 5000] [--runs 3] [--latency-count 100] [--workdir DIR]
       [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import ingest as ingest_bench  # noqa: E402
from bench.ingest import bare_parse_rate, generate_mbox  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from worker.sources.local import iter_mbox  # noqa: E402

FETCH_CHUNK = 100
APPEND_CHUNK = 500
TARGET_VS_INGEST = 0.9  # c >= 0.9 x c'
TARGET_P95 = 1.0  # seconds
LATENCY_TIMEOUT = 15.0  # a sample that takes longer counts as missed
CONNECT_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
DB_POLL = 0.002
PASSWORD_ENV = "BENCH_IMAP_PASSWORD"
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.IGNORECASE | re.MULTILINE)
_SUMMARY = re.compile(r"(\d+) (created|threaded|duplicate|ignored|quarantined)")


@dataclass
class ThroughputRow:
    runs: int
    messages: int
    stored_rows: int  # messages rows expected (and found) after poll / ingest
    fetch: float  # (a) msg/s
    parse: float  # (b) msg/s
    poll: float  # (c) msg/s, wall clock incl. start-up
    poll_net: float  # (c) minus the median CLI start-up
    ingest: float  # (c') msg/s, wall clock incl. start-up
    ingest_net: float
    poll_vs_fetch: float  # medians of per-run ratios
    poll_vs_parse: float
    poll_vs_ingest: float
    poll_net_vs_ingest_net: float
    poll_outcomes: dict[str, int]
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "PASS" if self.poll_vs_ingest >= TARGET_VS_INGEST else "FAIL"


@dataclass
class LatencyRow:
    samples: int
    missed: int  # no row within LATENCY_TIMEOUT
    p50: float
    p95: float
    max: float
    mean: float
    connect_seconds: float  # from Popen to the "connected" log line
    leads_linked: int  # of the sampled messages, how many rows carry a lead_id
    stop_seconds: float | None  # SIGTERM -> exit
    exit_code: int | None  # None: did not exit within STOP_TIMEOUT (then SIGKILLed)
    bare_idle_p50: float = float("nan")  # control: APPEND -> EXISTS seen by a bare IDLE client
    bare_idle_max: float = float("nan")
    errors_logged: list[str] = field(default_factory=list)  # WARNING/ERROR lines of `run`
    latencies: list[float] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "PASS" if self.missed == 0 and self.p95 < TARGET_P95 else "FAIL"

    @property
    def stop_verdict(self) -> str:
        ok = self.exit_code == 0 and (self.stop_seconds or 0) <= STOP_TIMEOUT
        return "PASS" if ok else "FAIL"


# -- helpers --------------------------------------------------------------------------------


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADMAIL_")}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env[PASSWORD_ENV] = Dovecot.PASSWORD
    return env


def write_config(
    run_dir: Path, port: int, user: str, *, idle: bool = False, account: str = "bench"
) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "config.toml"
    config.write_text(
        f"""\
[database]
url = "sqlite:///{run_dir / "bench.db"}"
[storage]
path = "{run_dir / "data"}"
[[accounts]]
name = "{account}"
kind = "imap"
host = "{Dovecot.HOST}"
port = {port}
security = "none"
username = "{user}"
password_env = "{PASSWORD_ENV}"
folders = ["INBOX"]
batch_size = {FETCH_CHUNK}
idle = {"true" if idle else "false"}
"""
    )
    return config


def run_cli(args: list[str], cwd: Path) -> tuple[float, str]:
    """Wall clock of ``python -m worker ARGS`` and its output; raises when it fails."""
    return ingest_bench.run_cli(args, cli_env(), cwd)


def startup_seconds(cwd: Path, runs: int) -> float:
    return statistics.median(run_cli(["poll", "--help"], cwd)[0] for _ in range(max(3, runs)))


def count_rows(db: Path, sql: str = "SELECT count(*) FROM messages", *params: Any) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


def distinct_ids(messages: list[bytes]) -> int:
    ids = set()
    for data in messages:
        match = _MESSAGE_ID.search(data)
        if match is None:
            raise RuntimeError("generated message without a Message-ID")
        ids.add(match.group(1))
    return len(ids)


def append_all(dovecot: Dovecot, user: str, messages: list[bytes]) -> list[int]:
    uids: list[int] = []
    for start in range(0, len(messages), APPEND_CHUNK):
        uids += dovecot.append(user, "INBOX", messages[start : start + APPEND_CHUNK])
    return uids


# -- (a), (b) ---------------------------------------------------------------------------------


def bare_fetch(dovecot: Dovecot, user: str) -> tuple[float, list[bytes]]:
    """Seconds for select + search ALL + chunked BODY.PEEK[] fetches, and the bodies."""
    imap = dovecot.client(user)
    try:
        start = time.perf_counter()
        imap.select_folder("INBOX", readonly=True)
        uids = sorted(int(u) for u in imap.search("ALL"))
        bodies: list[bytes] = []
        for pos in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[pos : pos + FETCH_CHUNK]
            data = imap.fetch(chunk, ["BODY.PEEK[]"])
            bodies += [bytes(data[uid][b"BODY[]"]) for uid in chunk]
        elapsed = time.perf_counter() - start
    finally:
        with contextlib.suppress(Exception):
            imap.logout()
    return elapsed, bodies


# -- (c), (c') --------------------------------------------------------------------------------


def poll_once(run_dir: Path, port: int, user: str) -> tuple[float, Counter[str], int, int]:
    config = write_config(run_dir, port, user)
    run_cli(["--config", str(config), "init"], run_dir)
    wall, err = run_cli(["--config", str(config), "poll", "--once", "--account", "bench"], run_dir)
    line = next((x for x in err.splitlines() if x.startswith("bench/INBOX:")), "")
    outcomes = Counter({kind: int(n) for n, kind in _SUMMARY.findall(line)})
    db = run_dir / "bench.db"
    last_uid = count_rows(db, "SELECT coalesce(max(last_uid), 0) FROM mailbox_cursors")
    return wall, outcomes, count_rows(db), last_uid


def ingest_mbox(run_dir: Path, port: int, user: str, mbox: Path) -> tuple[float, int]:
    config = write_config(run_dir, port, user)
    run_cli(["--config", str(config), "init"], run_dir)
    wall, _ = run_cli(["--config", str(config), "ingest", "--no-progress", str(mbox)], run_dir)
    return wall, count_rows(run_dir / "bench.db")


def measure_throughput(
    dovecot: Dovecot,
    user: str,
    max_uid: int,
    mbox: Path,
    messages: list[bytes],
    runs: int,
    startup: float,
    workdir: Path,
    log: Callable[[str], None],
) -> ThroughputRow:
    n = len(messages)
    expected_rows = distinct_ids(messages)
    fetch: list[float] = []
    parse: list[float] = []
    poll: list[float] = []
    poll_net: list[float] = []
    ingest: list[float] = []
    ingest_net: list[float] = []
    r_fetch: list[float] = []
    r_parse: list[float] = []
    r_ingest: list[float] = []
    r_net: list[float] = []
    outcomes: Counter[str] = Counter()
    for run in range(1, runs + 1):
        fetch_s, bodies = bare_fetch(dovecot, user)
        if len(bodies) != n:
            raise RuntimeError(f"bare fetch returned {len(bodies)} messages, expected {n}")
        parse_rate = bare_parse_rate(bodies)
        del bodies
        # (c) and (c') alternate which goes first, so a drift in the machine's load does not
        # always favour the same one.
        order = ("poll", "ingest") if run % 2 else ("ingest", "poll")
        for which in order:
            run_dir = workdir / f"{which}-{run}"
            if which == "poll":
                wall, outcomes, rows, last_uid = poll_once(run_dir, dovecot.port, user)
            else:
                ingest_wall, ingest_rows = ingest_mbox(run_dir, dovecot.port, user, mbox)
            shutil.rmtree(run_dir, ignore_errors=True)
        total = sum(outcomes.values())
        if rows != expected_rows or total != n or outcomes["duplicate"] != n - expected_rows:
            raise RuntimeError(
                f"poll --once run {run}: {rows} messages rows (expected {expected_rows} = {n} "
                f"minus {n - expected_rows} duplicates in the workload); summary {dict(outcomes)} "
                f"(total {total}, expected {n})"
            )
        if last_uid != max_uid:
            raise RuntimeError(f"poll --once run {run}: cursor at UID {last_uid}, not {max_uid}")
        if ingest_rows != expected_rows:
            raise RuntimeError(f"ingest run {run}: {ingest_rows} rows, expected {expected_rows}")
        fetch.append(n / fetch_s)
        parse.append(parse_rate)
        poll.append(n / wall)
        poll_net.append(n / max(wall - startup, 1e-9))
        ingest.append(n / ingest_wall)
        ingest_net.append(n / max(ingest_wall - startup, 1e-9))
        r_fetch.append(poll[-1] / fetch[-1])
        r_parse.append(poll[-1] / parse[-1])
        r_ingest.append(poll[-1] / ingest[-1])
        r_net.append(poll_net[-1] / ingest_net[-1])
        log(
            f"  run {run}/{runs}: fetch {fetch[-1]:7.0f}/s  parse {parse_rate:6.0f}/s  "
            f"poll {poll[-1]:5.0f}/s ({wall:5.1f} s)  ingest {ingest[-1]:5.0f}/s "
            f"({ingest_wall:5.1f} s)  poll/ingest {r_ingest[-1]:.3f}"
        )
    med = statistics.median
    return ThroughputRow(
        runs=runs,
        messages=n,
        stored_rows=expected_rows,
        fetch=med(fetch),
        parse=med(parse),
        poll=med(poll),
        poll_net=med(poll_net),
        ingest=med(ingest),
        ingest_net=med(ingest_net),
        poll_vs_fetch=med(r_fetch),
        poll_vs_parse=med(r_parse),
        poll_vs_ingest=med(r_ingest),
        poll_net_vs_ingest_net=med(r_net),
        poll_outcomes=dict(outcomes),
        samples={"fetch": fetch, "parse": parse, "poll": poll, "ingest": ingest},
    )


# -- (d) --------------------------------------------------------------------------------------


class StderrReader(threading.Thread):
    """Drains the `run` process's stderr (so it never blocks) and notes "connected"."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[str] = []
        self.connected = threading.Event()

    def run(self) -> None:
        for raw in self.stream:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if line.endswith(": connected"):
                self.connected.set()


def latency_message(index: int, tag: str) -> tuple[bytes, str]:
    message_id = f"lat-{tag}-{index}-{uuid.uuid4().hex[:8]}@bench.example"
    msg = EmailMessage()
    msg["From"] = f"Latency Tester {index} <tester{index}@latency{index}.example>"
    msg["To"] = "sales@northwind.example"
    msg["Subject"] = f"Quote request {index}: 40 standing desks"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content(
        "Hello,\n\nCould you send a quote for 40 standing desks and delivery times?\n\n"
        f"Best regards,\nLatency Tester {index}\n"
    )
    return msg.as_bytes(), message_id


def bare_idle_latency(dovecot: Dovecot, count: int) -> list[float]:
    """Control for (d): APPEND -> untagged EXISTS on a plain imapclient connection in IDLE.

    The floor that any IDLE-driven poller sees on this server (Dovecot batches mailbox change
    notifications).
    """
    user = f"idle-bare-{os.getpid()}"
    watcher = dovecot.client(user)
    appender = dovecot.client(user)
    found: list[float] = []
    try:
        watcher.select_folder("INBOX", readonly=True)
        watcher.idle()
        for index in range(count):
            data, _ = latency_message(index, f"bare{os.getpid()}")
            t0 = time.perf_counter()
            appender.append("INBOX", data)
            deadline = t0 + LATENCY_TIMEOUT
            while time.perf_counter() < deadline:
                responses = watcher.idle_check(timeout=1.0)
                if any(isinstance(r, tuple) and b"EXISTS" in r for r in responses):
                    found.append(time.perf_counter() - t0)
                    break
            time.sleep(0.05)
        watcher.idle_done()
    finally:
        for client in (watcher, appender):
            with contextlib.suppress(Exception):
                client.logout()
    return found


def measure_latency(
    dovecot: Dovecot, workdir: Path, count: int, log: Callable[[str], None]
) -> LatencyRow:
    user = f"idle-{os.getpid()}"
    run_dir = workdir / "latency"
    config = write_config(run_dir, dovecot.port, user, idle=True)
    run_cli(["--config", str(config), "init"], run_dir)
    db = run_dir / "bench.db"
    rng = random.Random(7)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "--config", str(config), "run"],
        env=cli_env(),
        cwd=run_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    reader = StderrReader(proc.stderr)
    reader.start()
    latencies: list[float] = []
    missed = 0
    stop_seconds: float | None = None
    exit_code: int | None = None
    connect_seconds = float("nan")
    ids: list[str] = []
    try:
        if not reader.connected.wait(CONNECT_TIMEOUT):
            raise RuntimeError(
                f"`run` did not log 'connected' within {CONNECT_TIMEOUT:.0f} s:\n"
                + "\n".join(reader.lines[-20:])
            )
        connect_seconds = time.perf_counter() - started
        time.sleep(1.0)  # the initial sync of the empty folder, then IDLE
        reader_db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
        imap = dovecot.client(user)
        try:
            for index in range(count):
                data, message_id = latency_message(index, str(os.getpid()))
                ids.append(message_id)
                t0 = time.perf_counter()
                imap.append("INBOX", data)
                deadline = t0 + LATENCY_TIMEOUT
                while True:
                    row = reader_db.execute(
                        "SELECT 1 FROM messages WHERE message_id = ?", (message_id,)
                    ).fetchone()
                    now = time.perf_counter()
                    if row is not None:
                        latencies.append(now - t0)
                        break
                    if now > deadline:
                        missed += 1
                        log(f"  latency sample {index}: no row after {LATENCY_TIMEOUT:.0f} s")
                        break
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"`run` exited ({proc.returncode}) during the latency test:\n"
                            + "\n".join(reader.lines[-20:])
                        )
                    time.sleep(DB_POLL)
                if (index + 1) % 25 == 0:
                    recent = latencies[-25:] or [float("nan")]
                    log(
                        f"  latency {index + 1}/{count}: last 25 median "
                        f"{statistics.median(recent) * 1000:.0f} ms"
                    )
                time.sleep(rng.uniform(0.05, 0.1))
        finally:
            with contextlib.suppress(Exception):
                imap.logout()
        marks = ",".join("?" * len(ids))
        leads_linked = int(
            reader_db.execute(
                "SELECT count(*) FROM messages"
                f" WHERE lead_id IS NOT NULL AND message_id IN ({marks})",
                ids,
            ).fetchone()[0]
        )
        reader_db.close()
        stop_start = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            exit_code = proc.wait(STOP_TIMEOUT)
            stop_seconds = time.perf_counter() - stop_start
        except subprocess.TimeoutExpired:
            log(f"  `run` did not exit within {STOP_TIMEOUT:.0f} s of SIGTERM: killed")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
    control = sorted(bare_idle_latency(dovecot, 20)) or [float("nan")]
    errors = [x for x in reader.lines if " WARNING " in x or " ERROR " in x or "Traceback" in x]
    ordered = sorted(latencies) or [float("nan")]
    return LatencyRow(
        samples=len(latencies),
        missed=missed,
        p50=statistics.median(ordered),
        p95=ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))],
        max=ordered[-1],
        mean=statistics.fmean(ordered),
        connect_seconds=connect_seconds,
        leads_linked=leads_linked,
        stop_seconds=stop_seconds,
        exit_code=exit_code,
        bare_idle_p50=statistics.median(control),
        bare_idle_max=control[-1],
        errors_logged=errors,
        latencies=latencies,
    )


# -- machine and report -----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """bench/ingest.py's machine description plus the Dovecot version."""
    info = ingest_bench.machine()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["/usr/sbin/dovecot", "--version"], capture_output=True, text=True, check=False
        )
        info["dovecot"] = done.stdout.strip()
    return info


def print_report(
    row: ThroughputRow | None,
    lat: LatencyRow | None,
    startup: float,
    mb: float,
    out: Callable[[str], None],
) -> None:
    out(f"CLI start-up (python -m worker poll --help, median): {startup:.2f} s")
    if row is not None:
        out(
            f"{row.messages} messages ({mb:.1f} MB as fetched), {row.stored_rows} messages rows "
            f"expected and found after each poll/ingest; poll outcomes {row.poll_outcomes}"
        )
        head = f"{'measure':44} {'msg/s':>8} {'net msg/s':>10}"
        out(head)
        out("-" * len(head))
        out(f"{'(a) bare fetch, BODY.PEEK[] x 100':44} {row.fetch:8.0f} {'':>10}")
        out(f"{'(b) bare mailparser.parse_from_bytes':44} {row.parse:8.0f} {'':>10}")
        out(f"{'(c) worker poll --once':44} {row.poll:8.0f} {row.poll_net:10.0f}")
        label = "(c') worker ingest --no-progress MBOX"
        out(f"{label:44} {row.ingest:8.0f} {row.ingest_net:10.0f}")
        out("")
        out(f"c/a  = {row.poll_vs_fetch:.3f}")
        out(f"c/b  = {row.poll_vs_parse:.3f}")
        out(
            f"c/c' = {row.poll_vs_ingest:.3f} (net of start-up {row.poll_net_vs_ingest_net:.3f})"
            f"  target >= {TARGET_VS_INGEST}  {row.verdict}"
        )
    if lat is not None:
        out("")
        out(
            f"(d) APPEND -> messages row committed, `run` with IDLE: {lat.samples} samples, "
            f"{lat.missed} missed; connected {lat.connect_seconds:.2f} s after start"
        )
        out(
            f"    p50 {lat.p50 * 1000:.0f} ms  p95 {lat.p95 * 1000:.0f} ms  max "
            f"{lat.max * 1000:.0f} ms  mean {lat.mean * 1000:.0f} ms  target p95 < "
            f"{TARGET_P95:.0f} s  {lat.verdict}"
        )
        out(
            f"    control, bare imapclient IDLE (APPEND -> EXISTS), 20 samples: p50 "
            f"{lat.bare_idle_p50 * 1000:.0f} ms  max {lat.bare_idle_max * 1000:.0f} ms"
        )
        out(f"    messages with a lead: {lat.leads_linked} of {lat.samples + lat.missed}")
        stop = f"{lat.stop_seconds:.2f} s" if lat.stop_seconds is not None else "no exit"
        out(f"    SIGTERM: exit {lat.exit_code} after {stop}  {lat.stop_verdict}")
        if lat.errors_logged:
            out(f"    `run` logged {len(lat.errors_logged)} warning/error lines, e.g.:")
            for line in lat.errors_logged[:5]:
                out(f"      {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5_000, help="messages in the mailbox")
    parser.add_argument("--runs", type=int, default=3, help="runs of (a)-(c') (median)")
    parser.add_argument("--latency-count", type=int, default=100, help="samples for (d)")
    parser.add_argument("--workdir", type=Path, help="where temp files go (default: a tmp dir)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    args = parser.parse_args(argv)
    logging.getLogger("mailparser").setLevel(logging.ERROR)

    def log(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    base = args.workdir.resolve() if args.workdir else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="leadmail-bench-imap-", dir=base))
    os.chdir(workdir)  # no stray ./config.toml is read
    result: dict[str, Any] = {"machine": machine()}
    dovecot = Dovecot(workdir / "dovecot")
    row: ThroughputRow | None = None
    lat: LatencyRow | None = None
    try:
        dovecot.start()
        startup = startup_seconds(workdir, args.runs)
        result["startup_seconds"] = startup
        mbox = generate_mbox(workdir, args.count)
        messages = [raw.data for raw in iter_mbox(mbox, "local")]
        user = f"bench-{os.getpid()}"
        start = time.perf_counter()
        uids = append_all(dovecot, user, messages)
        log(
            f"appended {len(uids)} messages ({sum(map(len, messages)) / 1e6:.1f} MB) in "
            f"{time.perf_counter() - start:.1f} s (not timed); Dovecot on port {dovecot.port}"
        )
        _, fetched = bare_fetch(dovecot, user)
        mb = sum(map(len, fetched)) / 1e6
        del fetched
        row = measure_throughput(
            dovecot, user, max(uids), mbox, messages, args.runs, startup, workdir, log
        )
        lat = measure_latency(dovecot, workdir, args.latency_count, log)
        result["machine"]["loadavg_end"] = os.getloadavg()
        result["throughput"] = {**asdict(row), "verdict": row.verdict, "fetched_mb": mb}
        result["latency"] = {
            **asdict(lat),
            "verdict": lat.verdict,
            "stop_verdict": lat.stop_verdict,
        }
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            log("")
            log(json.dumps(result["machine"]))
            print_report(row, lat, startup, mb, log)
        failed = row.verdict == "FAIL" or lat.verdict == "FAIL" or lat.stop_verdict == "FAIL"
        return 1 if failed else 0
    finally:
        dovecot.close()
        os.chdir(REPO)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
