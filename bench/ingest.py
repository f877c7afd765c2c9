"""Ingest benchmark: end-to-end messages/s next to bare mail-parser parsing of the same bytes.

Workloads: (a) a generated mbox of small enquiries (``tests.mailgen.write_mbox``, seed 7) and
(b) the dev corpus (``/work/shared/corpus``: every .eml under the category folders). Each run,
on a fresh database and blob dir for each ingest:

- **bare, whole process**: ``python -c BARE_SCRIPT FILES`` — a script that reads the files,
  splits the mbox at its ``From`` lines and calls ``mailparser.parse_from_bytes`` on each
  message; wall clock, start-up included. This is what issue 13's whole-process ratios use.
- **cli**: ``python -m worker ingest --no-progress FILES`` (``worker init`` first, untimed);
  wall clock, start-up included. bare and cli take turns: odd runs bare first, even runs cli
  first, so a drift in the host's load favours neither.
- **bare, in process** and **in-process** ingest (``Intake.process_many`` in this process,
  modules loaded, schema made): the per-message work alone.

New leads are routed with the repo's ``rules/assignment.yaml``, as ``make run`` does. Medians
over ``--runs`` (default 5) of per-run ratios. Targets (issue 13, SQLite, default parse
workers): cli / bare whole-process >= 0.5 on (a) and >= 0.35 on (b); in-process >= 0.8 on (a);
PostgreSQL in-process >= 0.4 on (a). Exit status 1 when one is missed.

Usage: python bench/ingest.py [--count 10000] [--runs 5] [--workdir DIR] [--skip-pg] [--memory]
       [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import mailparser  # noqa: E402

from worker.config import load_settings  # noqa: E402
from worker.services.assignment import rule_book  # noqa: E402
from worker.services.context import App  # noqa: E402
from worker.services.intake import Intake  # noqa: E402
from worker.sources.local import iter_mbox, iter_messages  # noqa: E402
from worker.store.schema import upgrade  # noqa: E402

CORPUS = Path("/work/shared/corpus")
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
# (workload, db) → (whole-process target, in-process target); issue 13.
TARGETS: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("mbox", "sqlite"): (0.5, 0.8),
    ("corpus", "sqlite"): (0.35, None),
    ("mbox", "postgresql"): (None, 0.4),
}
# The bare parse as a user-side script would do it: read, split the mbox, parse each message.
BARE_SCRIPT = """
import sys, mailparser
for path in sys.argv[1:]:
    with open(path, "rb") as fh:
        data = fh.read()
    if data.startswith(b"From "):
        chunks = data.split(b"\\nFrom ")
        for chunk in chunks:
            body = chunk.split(b"\\n", 1)[1] if b"\\n" in chunk else b""
            mailparser.parse_from_bytes(body)
    else:
        mailparser.parse_from_bytes(data)
"""
MEMORY_COUNTS = (2_000, 10_000, 30_000)
MIN_PARSE_SECONDS = 1.0  # repeat the bare parse of a small workload until it takes this long

# Runs the real CLI module and reports its own peak RSS and that of its reaped children. The
# process's own peak is VmHWM (this exec'd image only): ru_maxrss of RUSAGE_SELF would carry over
# the high-water mark of the bench process it was forked from, across exec.
_RUSAGE_WRAPPER = """
import atexit, json, os, resource, runpy, sys
def _hwm_kb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
def _report():
    with open(os.environ["BENCH_RUSAGE_OUT"], "w") as fh:
        json.dump({"self_kb": _hwm_kb(),
                   "children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, fh)
_pid = os.getpid()
atexit.register(lambda: os.getpid() == _pid and _report())
sys.argv = ["worker", *sys.argv[1:]]
runpy.run_module("worker", run_name="__main__", alter_sys=True)
"""


@dataclass
class Workload:
    name: str  # "mbox" or "corpus"
    paths: list[Path]  # what the CLI and iter_messages are given
    messages: list[bytes]  # the same message bytes, for the bare parse

    @property
    def count(self) -> int:
        return len(self.messages)


@dataclass
class Config:
    db: str  # "sqlite" or "postgresql"
    workers: str  # "default" (-1, one per core) or "0"


@dataclass
class Row:
    workload: str
    messages: int
    db: str
    parse_workers: str
    runs: int
    bare_parse: float  # msg/s, median, in process
    bare_process: float  # msg/s, median, the bare script as a whole process
    cli: float  # msg/s, subprocess wall clock incl. start-up, median
    cli_net: float  # msg/s, the same minus the median CLI start-up
    in_process: float  # msg/s, median
    ratio_cli: float  # median of per-run ratios (each run against its own bare parse)
    ratio_process: float  # cli / bare, both whole processes (issue 13's ratio)
    ratio_cli_net: float
    ratio_in_process: float
    cli_ceiling: float  # the cli× that zero per-message cost would give: n / start-up / bare
    target: float | None  # whole-process target (cli / bare script)
    target_in_process: float | None
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        checks = [
            (self.ratio_process, self.target),
            (self.ratio_in_process, self.target_in_process),
        ]
        if all(target is None for _, target in checks):
            return "info"
        met = all(value >= target for value, target in checks if target is not None)
        return "PASS" if met else "FAIL"


@dataclass
class MemoryRow:
    messages: int
    mbox_bytes: int
    parse_workers: str
    seconds: float
    main_kb: int  # peak RSS of the CLI process itself
    children_kb: int  # largest peak RSS among its reaped children (parse workers)
    tree_kb: int  # wait4() of the CLI: max of it and reaped descendants (an upper bound)


# -- workloads --------------------------------------------------------------------------------


def generate_mbox(workdir: Path, count: int, seed: int = 7) -> Path:
    """Written by a child process, so that generating it does not grow this one (whose peak RSS
    a forked CLI would otherwise report as its own ``ru_maxrss``)."""
    path = workdir / f"enquiries-{count}.mbox"
    if not path.exists():
        code = (
            f"import sys; sys.path.insert(0, {str(REPO)!r}); from pathlib import Path; "
            "from tests.mailgen import write_mbox; "
            f"write_mbox(Path({str(path)!r}), {count}, {seed})"
        )
        subprocess.run([sys.executable, "-c", code], check=True)
    return path


def mbox_workload(workdir: Path, count: int, seed: int = 7) -> Workload:
    path = generate_mbox(workdir, count, seed)
    messages = [raw.data for raw in iter_mbox(path, "local")]
    return Workload("mbox", [path], messages)


def corpus_workload(root: Path) -> Workload:
    files = sorted(
        p
        for p in root.rglob("*.eml")
        if p.is_file() and "LICENSES" not in p.relative_to(root).parts
    )
    if not files:
        raise SystemExit(f"no .eml files under {root}")
    return Workload("corpus", files, [p.read_bytes() for p in files])


# -- measurements -----------------------------------------------------------------------------


def bare_parse_rate(messages: list[bytes]) -> float:
    """mail-parser alone over bytes already in memory; small inputs are parsed repeatedly."""
    parsed = 0
    start = time.perf_counter()
    while True:
        for data in messages:
            mailparser.parse_from_bytes(data)
        parsed += len(messages)
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_PARSE_SECONDS:
            return parsed / elapsed


def bare_script_seconds(workload: Workload, cwd: Path) -> float:
    """Wall clock of the bare parse as a script of its own (start-up and reading included)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", BARE_SCRIPT, *map(str, workload.paths)],
        env=env,
        cwd=cwd,
        check=True,
    )
    return time.perf_counter() - start


def leadmail_env(db_url: str, storage: Path, workers: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADMAIL_")}
    env["LEADMAIL_DATABASE__URL"] = db_url
    env["LEADMAIL_STORAGE__PATH"] = str(storage)
    env["LEADMAIL_RULES__PATH"] = str(REPO / "rules" / "assignment.yaml")
    if workers != "default":
        env["LEADMAIL_INGEST__PARSE_WORKERS"] = workers
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """Wall clock of ``python -m worker ARGS`` and its stderr + stdout; raises when it fails."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    err = done.stderr.decode(errors="replace")
    out = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(
            f"worker {' '.join(args)[:200]} failed ({done.returncode}): {err[-2000:]}{out[-1000:]}"
        )
    return elapsed, err + out


def startup_seconds(cwd: Path, runs: int) -> float:
    env = leadmail_env("sqlite:///" + str(cwd / "unused.db"), cwd / "unused", "default")
    runs = max(3, runs)
    return statistics.median(run_cli(["ingest", "--help"], env, cwd)[0] for _ in range(runs))


class Databases:
    """Fresh databases: a new SQLite file, or a throwaway PostgreSQL database, per run."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pg_name = f"leadmail_bench_{os.getpid()}"
        self._serial = 0

    @contextlib.contextmanager
    def fresh(self, db: str) -> Iterator[tuple[str, Path]]:
        self._serial += 1
        run_dir = self.workdir / f"run-{self._serial}"
        run_dir.mkdir()
        try:
            if db == "sqlite":
                yield "sqlite:///" + str(run_dir / "leadmail.db"), run_dir / "data"
            else:
                self._pg("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                self._pg("CREATE DATABASE {}")
                try:
                    yield PG_URL.format(name=self.pg_name), run_dir / "data"
                finally:
                    self._pg("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def _pg(self, template: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql.SQL(template).format(sql.Identifier(self.pg_name)))


def cli_ingest_seconds(workload: Workload, url: str, storage: Path, workers: str) -> float:
    env = leadmail_env(url, storage, workers)
    cwd = storage.parent  # no stray config.toml is picked up
    run_cli(["init"], env, cwd)
    settle()
    return run_cli(["ingest", "--no-progress", *map(str, workload.paths)], env, cwd)[0]


def settle() -> None:
    """Flush what earlier runs left to write back, so no run pays for the one before it.

    The blob store's syncfs flushes the whole file system, the previous run's files too.
    """
    os.sync()


def in_process_seconds(workload: Workload, url: str, storage: Path, workers: str) -> float:
    environ = leadmail_env(url, storage, workers)
    environ = {k: v for k, v in environ.items() if k.startswith("LEADMAIL_")}
    app = App.from_settings(load_settings(environ=environ))
    try:
        upgrade(app.db.engine)
        rule_book(app).load()  # as `leadmail ingest` does before its first message
        intake = Intake(app)
        settle()
        start = time.perf_counter()
        count = sum(1 for _ in intake.process_many(iter_messages(workload.paths, "local")))
        elapsed = time.perf_counter() - start
    finally:
        app.close()
    if count != workload.count:
        raise RuntimeError(f"in-process ingest saw {count} messages, expected {workload.count}")
    return elapsed


def measure(
    workload: Workload,
    config: Config,
    runs: int,
    dbs: Databases,
    startup: float,
    log: Callable[[str], None],
) -> Row:
    bare: list[float] = []
    cli: list[float] = []
    cli_net: list[float] = []
    inproc: list[float] = []
    r_cli: list[float] = []
    r_net: list[float] = []
    r_in: list[float] = []
    n = workload.count
    process: list[float] = []
    r_process: list[float] = []
    for run in range(1, runs + 1):
        parse = bare_parse_rate(workload.messages)
        with dbs.fresh(config.db) as (url, storage):
            if run % 2:
                script = bare_script_seconds(workload, storage.parent)
                wall = cli_ingest_seconds(workload, url, storage, config.workers)
            else:
                wall = cli_ingest_seconds(workload, url, storage, config.workers)
                script = bare_script_seconds(workload, storage.parent)
        process.append(n / script)
        r_process.append(script / wall)
        with dbs.fresh(config.db) as (url, storage):
            inside = in_process_seconds(workload, url, storage, config.workers)
        net = max(wall - startup, 1e-9)
        bare.append(parse)
        cli.append(n / wall)
        cli_net.append(n / net)
        inproc.append(n / inside)
        r_cli.append(n / wall / parse)
        r_net.append(n / net / parse)
        r_in.append(n / inside / parse)
        log(
            f"  {workload.name:6} {config.db:10} workers={config.workers:7} run {run}/{runs}: "
            f"bare {parse:7.0f}/s  bare script {n / script:6.0f}/s  cli {n / wall:6.0f}/s "
            f"({script / wall:.2f}x)  in-process {n / inside:6.0f}/s ({n / inside / parse:.2f}x)"
        )
    med = statistics.median
    targets = (
        TARGETS.get((workload.name, config.db), (None, None))
        if config.workers == "default"
        else (None, None)
    )
    return Row(
        workload=workload.name,
        messages=n,
        db=config.db,
        parse_workers=config.workers,
        runs=runs,
        bare_parse=med(bare),
        cli=med(cli),
        cli_net=med(cli_net),
        in_process=med(inproc),
        ratio_cli=med(r_cli),
        ratio_cli_net=med(r_net),
        ratio_in_process=med(r_in),
        cli_ceiling=med(n / startup / rate for rate in bare),
        # The targets are for the product as shipped: SQLite, default parse workers.
        bare_process=med(process),
        ratio_process=med(r_process),
        # The targets are for the product as shipped: default parse workers.
        target=targets[0],
        target_in_process=targets[1],
        samples={"bare_parse": bare, "bare_process": process, "cli": cli, "in_process": inproc},
    )


def measure_memory(
    workdir: Path, counts: tuple[int, ...], workers: str, dbs: Databases
) -> list[MemoryRow]:
    rows: list[MemoryRow] = []
    for count in counts:
        path = generate_mbox(workdir, count)
        with dbs.fresh("sqlite") as (url, storage):
            env = leadmail_env(url, storage, workers)
            cwd = storage.parent
            run_cli(["init"], env, cwd)
            out = cwd / "rusage.json"
            env["BENCH_RUSAGE_OUT"] = str(out)
            start = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-c", _RUSAGE_WRAPPER, "ingest", "--no-progress", str(path)],
                env=env,
                cwd=cwd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            seconds = time.perf_counter() - start
            assert proc.stderr is not None
            err = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
            if proc.returncode != 0:
                raise RuntimeError(f"ingest failed ({proc.returncode}): {err[-2000:]}")
            own = json.loads(out.read_text())
            rows.append(
                MemoryRow(
                    messages=count,
                    mbox_bytes=path.stat().st_size,
                    parse_workers=workers,
                    seconds=seconds,
                    main_kb=int(own["self_kb"]),
                    children_kb=int(own["children_kb"]),
                    tree_kb=int(usage.ru_maxrss),
                )
            )
    return rows


# -- machine and report -----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    return info


def print_table(rows: list[Row], startup: float, out: Callable[[str], None]) -> None:
    out(f"CLI start-up (python -m worker ingest --help, median): {startup:.2f} s")
    head = (
        f"{'workload':8} {'msgs':>6} {'db':10} {'workers':7} {'script/s':>8} {'cli/s':>7} "
        f"{'process×':>8} {'target':>6} {'bare/s':>7} {'inproc/s':>8} {'inproc×':>7} "
        f"{'target':>6} verdict"
    )
    out(head)
    out("-" * len(head))
    for r in rows:
        target = f"{r.target:.2f}" if r.target is not None else "-"
        target_in = f"{r.target_in_process:.2f}" if r.target_in_process is not None else "-"
        out(
            f"{r.workload:8} {r.messages:>6} {r.db:10} {r.parse_workers:7} {r.bare_process:8.0f} "
            f"{r.cli:7.0f} {r.ratio_process:8.3f} {target:>6} {r.bare_parse:7.0f} "
            f"{r.in_process:8.0f} {r.ratio_in_process:7.3f} {target_in:>6} {r.verdict}"
        )
    out("script = the bare parse as a whole process; cli = `worker ingest`, whole process;")
    out("process× = cli / script (medians of per-run ratios); bare and inproc = the same work")
    out("in this process, modules loaded; inproc× = inproc / bare.")


def print_memory(rows: list[MemoryRow], out: Callable[[str], None]) -> None:
    out(f"{'msgs':>6} {'mbox MB':>8} {'workers':7} {'secs':>7} {'main MB':>8} {'child MB':>9}")
    for m in rows:
        out(
            f"{m.messages:>6} {m.mbox_bytes / 1e6:8.1f} {m.parse_workers:7} {m.seconds:7.1f} "
            f"{m.main_kb / 1024:8.1f} {m.children_kb / 1024:9.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="messages in the mbox (a)")
    parser.add_argument("--runs", type=int, default=5, help="runs per configuration (median)")
    parser.add_argument("--workdir", type=Path, help="where temp files go (default: a tmp dir)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="dev corpus root (b)")
    parser.add_argument("--skip-pg", action="store_true", help="SQLite only")
    parser.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument(
        "--workers",
        choices=["default", "0", "both"],
        default="both",
        help="parse_workers settings to measure",
    )
    parser.add_argument(
        "--memory", action="store_true", help="also peak RSS for 2k/10k/30k-message mboxes"
    )
    parser.add_argument("--memory-only", action="store_true", help="only the peak RSS measurement")
    parser.add_argument(
        "--memory-counts",
        type=lambda text: tuple(int(x) for x in text.split(",")),
        default=MEMORY_COUNTS,
        help="mbox sizes for --memory (comma-separated; default 2000,10000,30000)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    args = parser.parse_args(argv)
    # As the CLI does (worker/cli/main.py): mail-parser's per-part warnings are noise here.
    logging.getLogger("mailparser").setLevel(logging.ERROR)

    def log(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    base = args.workdir.resolve() if args.workdir else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="leadmail-bench-", dir=base))
    os.chdir(workdir)  # load_settings() would read a ./config.toml
    result: dict[str, Any] = {"machine": machine(), "rows": [], "memory": []}
    try:
        dbs = Databases(workdir)
        workers = ["default", "0"] if args.workers == "both" else [args.workers]
        startup = startup_seconds(workdir, args.runs)
        result["startup_seconds"] = startup
        rows: list[Row] = []
        if not args.memory_only:
            mbox = mbox_workload(workdir, args.count)
            corpus = corpus_workload(args.corpus)
            log(
                f"mbox: {mbox.count} messages, {sum(map(len, mbox.messages)) / 1e6:.1f} MB; "
                f"corpus: {corpus.count} messages"
            )
            backends = [] if args.skip_sqlite else ["sqlite"]
            backends += [] if args.skip_pg else ["postgresql"]
            for db in backends:
                for count in workers:
                    for workload in (mbox, corpus):
                        config = Config(db, count)
                        rows.append(measure(workload, config, args.runs, dbs, startup, log))
        memory: list[MemoryRow] = []
        if args.memory or args.memory_only:
            for count in workers:
                memory += measure_memory(workdir, args.memory_counts, count, dbs)
        result["machine"]["loadavg_end"] = os.getloadavg()
        result["rows"] = [{**asdict(r), "verdict": r.verdict} for r in rows]
        result["memory"] = [asdict(m) for m in memory]
        bench_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["bench_process_maxrss_kb"] = bench_self
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            log("")
            log(json.dumps(result["machine"]))
            if rows:
                print_table(rows, startup, log)
            if memory:
                log("")
                print_memory(memory, log)
        failed = any(r.verdict == "FAIL" for r in rows)
        return 1 if failed else 0
    finally:
        os.chdir(REPO)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
