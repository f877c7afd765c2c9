"""Start-up benchmark: whole-process wall time of short commands, as a user runs them.

A temp directory gets the demo database of `make run` (``demo write``, ``init``, ``poll --once``,
``demo tour``), then each command runs ``--runs`` times, the commands alternating, as
``python -m worker --config CONFIG ...`` with stdout and stderr to /dev/null. Printed: the
median, min and max wall time of each command against the target (0.3 s), the floor (``python -c
pass`` and ``python -c 'import click'`` in the same interpreter), and the import time of each
command by package, from one ``python -X importtime`` run.

Usage: python bench/startup.py [--runs 11] [--top 12] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
FLOORS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "python -c 'import click'": ["-c", "import click"],
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


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}")
    return elapsed


def top_imports(argv: list[str], cwd: Path, top: int) -> list[tuple[str, int]]:
    """Import time (µs) spent in each top-level package's own modules (the sum of their
    ``self`` times), from one ``-X importtime`` run; ``worker`` is split by sub-package."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        cwd=cwd,
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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="leadmail-startup-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if not (workdir / "leadmail.db").exists():
            prepare(workdir)
        runs: dict[str, list[float]] = {name: [] for name in [*FLOORS, *COMMANDS]}
        argvs = {name: [sys.executable, *extra] for name, extra in FLOORS.items()}
        argvs |= {name: leadmail(workdir, *extra) for name, extra in COMMANDS.items()}
        for argv in argvs.values():  # warm the page cache and the .pyc files, untimed
            timed(argv, workdir)
        for _ in range(args.runs):
            for name, argv in argvs.items():
                runs[name].append(timed(argv, workdir))
        imports = {name: top_imports(argvs[name], workdir, args.top) for name in COMMANDS}
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)

    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "load": os.getloadavg(),
        },
        "runs": args.runs,
        "wall_s": {
            name: {
                "median": statistics.median(times),
                "min": min(times),
                "max": max(times),
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
    print(f"\nwall time over {result['runs']} runs (target < {TARGET_S} s for the commands)")
    print(f"{'command':<28} {'median':>8} {'min':>8} {'max':>8}  verdict")
    for name, wall in result["wall_s"].items():
        verdict = "" if name in FLOORS else ("ok" if wall["median"] < TARGET_S else "MISSED")
        print(f"{name:<28} {wall['median']:8.3f} {wall['min']:8.3f} {wall['max']:8.3f}  {verdict}")
    for name, top in result["imports_us"].items():
        print(
            f"\nlargest imports of `leadmail {name}` (ms of own import time, one -X importtime run)"
        )
        print("  " + ", ".join(f"{package} {us / 1000:.0f}" for package, us in top))


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
