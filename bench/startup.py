"""Start-up benchmark: whole-process wall time of short commands, as a user runs them.

A temp directory gets the demo database of `make run` (``demo write``, ``init``, ``poll --once``,
``demo tour``), then each command runs ``--runs`` times, the commands alternating, as
``python -m worker --config CONFIG ...`` with stdout and stderr to /dev/null. Printed: the
median, min and max wall time and the median CPU time (user + system: what a busy machine
changes least) of each command against the target (0.3 s wall); the floors (``python -c
pass``, and importing click, SQLAlchemy and rich, or pydantic, in the same interpreter); and
the import time of each command by package, from one ``python -X importtime`` run.

Bytecode: an installed leadmail has its modules compiled (.pyc); a source checkout run with
PYTHONDONTWRITEBYTECODE=1 (as on the development machines) compiles every module it imports,
every time. By default every process here gets a fresh PYTHONPYCACHEPREFIX (filled by the
untimed warm-up run) and bytecode writing on, as a user has it; ``--no-bytecode-cache`` keeps
the environment as it is, to see what compiling costs.

``--compare REV``: the same commands also run from the worker/ package of git revision REV
(``git archive`` into a temp dir, put first on PYTHONPATH), alternating with this tree's, so a
busy machine slows both alike; its rows are marked ``@REV``. The database is made by this tree.

Usage: python bench/startup.py [--runs 11] [--top 12] [--keep DIR] [--no-bytecode-cache]
                               [--compare REV] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 0.3

COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "leads list": ["leads", "list"],
    "leads show 3": ["leads", "show", "3"],
}
# What no listing can go below: the interpreter, and the libraries a listing must load to
# parse its options, query through SQLAlchemy and print a rich table; and the settings
# library, which every command that reads the config loads.
FLOORS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "import click": ["-c", "import click"],
    "import sqlalchemy,pydantic": ["-c", "import sqlalchemy, pydantic"],
    "import click,sqlalchemy,rich": ["-c", "import click, sqlalchemy, rich.table"],
    # `import pydantic` alone is lazy: a model needs BaseModel's machinery, and the first
    # model class defined imports the rest (fields, types, annotated_types, the plugins'
    # entry points) and builds a validator.
    "from pydantic import BaseModel": ["-c", "from pydantic import BaseModel"],
    "one pydantic model": [
        "-c",
        "from pydantic import BaseModel\nclass M(BaseModel):\n    x: int = 0\nM()",
    ],
    # Everything a listing must load, no leadmail code: the sum of the above in one process.
    "all of them": [
        "-c",
        "import click, sqlalchemy, rich.table\nfrom pydantic import BaseModel\n"
        "class M(BaseModel):\n    x: int = 0\nM()",
    ],
}


def leadmail(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "worker", "--config", str(workdir / "config.toml"), *args]


def prepare(workdir: Path) -> None:
    """The demo database of `make run`, in workdir (rule file and config copied in)."""
    shutil.copy(REPO / "config.example.toml", workdir / "config.toml")
    shutil.copytree(REPO / "rules", workdir / "rules")
    for step in (
        ["demo", "write", "demo-inbox"],
        ["init"],
        ["poll", "--once", "--account", "demo"],
        ["demo", "tour"],
    ):
        subprocess.run(leadmail(workdir, *step), cwd=workdir, check=True, capture_output=True)


ENV = dict(os.environ)


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall, cpu) seconds of one run; cpu is the child's user + system time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, env=env or ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def top_imports(argv: list[str], cwd: Path, top: int) -> list[tuple[str, int]]:
    """Import time (µs) spent in each top-level package's own modules (the sum of their
    ``self`` times), from one ``-X importtime`` run; ``worker`` is split by sub-package."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    totals: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line[len("import time:") :].split("|")
        parts = name.strip().split(".")
        package = ".".join(parts[:2]) if parts[0] == "worker" else parts[0]
        totals[package] = totals.get(package, 0) + int(own)
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--keep", type=Path, help="Use (and keep) this directory.")
    parser.add_argument(
        "--no-bytecode-cache",
        dest="bytecode_cache",
        action="store_false",
        help="Keep PYTHONDONTWRITEBYTECODE and PYTHONPYCACHEPREFIX as the environment has them.",
    )
    parser.add_argument("--compare", metavar="REV", help="Also time git revision REV, alternating.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.bytecode_cache:
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        ENV["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="leadmail-pyc-")

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="leadmail-startup-"))
    workdir.mkdir(parents=True, exist_ok=True)
    other = Path(tempfile.mkdtemp(prefix="leadmail-rev-")) if args.compare else None
    try:
        if not (workdir / "leadmail.db").exists():
            prepare(workdir)
        argvs = {name: [sys.executable, *extra] for name, extra in FLOORS.items()}
        argvs |= {name: leadmail(workdir, *extra) for name, extra in COMMANDS.items()}
        envs = dict.fromkeys(argvs, ENV)
        if other is not None:
            checkout(args.compare, other)
            env = ENV | {"PYTHONPATH": str(other)}
            for name, extra in COMMANDS.items():
                argvs[f"{name} @{args.compare}"] = leadmail(workdir, *extra)
                envs[f"{name} @{args.compare}"] = env
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in argvs}
        for name, argv in argvs.items():  # warm the page cache and the .pyc files, untimed
            timed(argv, workdir, envs[name])
        for _ in range(args.runs):
            for name, argv in argvs.items():
                runs[name].append(timed(argv, workdir, envs[name]))
        imports = {name: top_imports(argvs[name], workdir, args.top) for name in COMMANDS}
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
        if other is not None:
            shutil.rmtree(other, ignore_errors=True)
        if args.bytecode_cache:
            shutil.rmtree(ENV["PYTHONPYCACHEPREFIX"], ignore_errors=True)

    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "load": os.getloadavg(),
        },
        "bytecode_cache": args.bytecode_cache or not os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "runs": args.runs,
        "wall_s": {
            name: {
                "median": statistics.median(wall for wall, _ in times),
                "min": min(wall for wall, _ in times),
                "max": max(wall for wall, _ in times),
                "cpu_median": statistics.median(cpu for _, cpu in times),
            }
            for name, times in runs.items()
        },
        "imports_us": imports,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    missed = [n for n in COMMANDS if result["wall_s"][n]["median"] >= TARGET_S]
    return 1 if missed else 0


def report(result: dict[str, Any]) -> None:
    machine = result["machine"]
    load = ", ".join(f"{x:.2f}" for x in machine["load"])
    print(f"{machine['cpus']} CPUs, {machine['cpu']}, Python {machine['python']}, load {load}")
    cached = "cached (.pyc)" if result["bytecode_cache"] else "compiled at every start"
    print(f"bytecode: {cached}")
    print(f"\nseconds over {result['runs']} runs (target: wall median < {TARGET_S} s)")
    print(f"{'command':<32} {'wall':>7} {'min':>7} {'max':>7} {'cpu':>7}  verdict")
    for name, wall in result["wall_s"].items():
        verdict = "" if name in FLOORS or "@" in name else "MISSED"
        if name in COMMANDS and wall["median"] < TARGET_S:
            verdict = "ok"
        print(
            f"{name:<32} {wall['median']:7.3f} {wall['min']:7.3f} {wall['max']:7.3f}"
            f" {wall['cpu_median']:7.3f}  {verdict}"
        )
    for name, top in result["imports_us"].items():
        print(
            f"\nlargest imports of `leadmail {name}` (ms of own import time, one -X importtime run)"
        )
        print("  " + ", ".join(f"{package} {us / 1000:.0f}" for package, us in top))


def checkout(rev: str, into: Path) -> None:
    """The worker/ package of git revision ``rev``, unpacked into ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "worker"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
