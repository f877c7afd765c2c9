"""Peak memory of large messages: parse() alone, one `leadmail ingest`, and a batch of them.

Each measurement runs in fresh subprocesses, so one run's heap cannot hide the next one's peak.
Kinds of message of ``--size-mb`` (default 30) MB, generated:

- ``attachment``: a short text body and one base64 attachment (random bytes) filling the rest;
- ``text``: one 8-bit UTF-8 text/plain body (accented Latin and Thai lines: the stdlib parser
  holds a line with an 8-bit byte as two-byte surrogate characters);
- ``html``: one 8-bit UTF-8 text/html body of table rows (sanitised by nh3, rendered to text);
- ``lines``: one text/plain body of three-byte lines, the stdlib parser's worst case (it keeps
  a str object per line: before the fix, 37 times the message size).

Stages:

- ``parse``: the child reads the .eml, notes its resident size (VmRSS, the message bytes
  included), calls ``worker.mail.parse.parse`` and reports VmHWM; the figure is
  (VmHWM - RSS before the parse) / message size: the memory parse needs on top of the bytes
  it was handed.
- ``ingest``: ``python -m worker ingest FILE`` on a fresh SQLite database and blob dir with
  ``LEADMAIL_INGEST__PARSE_WORKERS=0`` (everything in one process), through the same VmHWM
  wrapper bench/ingest.py uses; the figure is (VmHWM - VmHWM of the same ingest of a small
  message) / message size: what one large message adds to the process's peak, reading it
  from disk included.
- ``batch``: BATCH copies of the message (own Message-IDs) in one ``ingest`` with the default
  parse workers; the figure adds the main process's VmHWM and the largest worker's peak
  (RUSAGE_CHILDREN) once per worker, minus the same for a small message: what a run of
  large messages costs the whole process tree at worst.

Usage: python bench/memory.py [--size-mb 30] [--runs 3] [--kinds attachment,text,html,lines]
       [--stages parse,ingest,batch] [--json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KINDS = ("attachment", "text", "html", "lines")
STAGES = ("parse", "ingest", "batch")
BATCH = 8  # messages of the batch stage

_HEADERS = (
    "From: Ann Example <ann@acme.example>\n"
    "To: sales@ourco.example\n"
    "Subject: Large {kind} message\n"
    "Date: Tue, 01 Jul 2025 10:00:00 +0200\n"
    "Message-ID: <large-{kind}@acme.example>\n"
    "MIME-Version: 1.0\n"
)

_PARSE_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from worker.mail.parse import parse
def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(key)
with open(sys.argv[2], "rb") as fh:
    data = fh.read()
before = status("VmRSS")
message = parse(data)
peak = status("VmHWM")
print(json.dumps({"before_kb": before, "peak_kb": peak, "text": len(message.text),
                  "html": len(message.html), "defects": list(message.defects)}))
"""

# As bench/ingest.py's wrapper: VmHWM of this exec'd image, written at exit.
_INGEST_WRAPPER = """
import atexit, json, os, resource, runpy, sys
def _hwm_kb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("VmHWM")
_pid = os.getpid()
def _report():
    with open(os.environ["BENCH_RUSAGE_OUT"], "w") as fh:
        json.dump({"self_kb": _hwm_kb(),
                   "children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, fh)
atexit.register(lambda: os.getpid() == _pid and _report())
sys.argv = ["worker", *sys.argv[1:]]
runpy.run_module("worker", run_name="__main__", alter_sys=True)
"""


def _lines(rng: random.Random, html: bool) -> list[str]:
    words = ["Grüße", "devis", "chaises", "สวัสดีครับ", "ขอใบเสนอราคา", "quotation", "desk", "née"]
    words += ["order", "price", "delivery", "Bangkok", "München", "café", "ราคา", "100", "units"]
    out = []
    for _ in range(2000):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(6, 14)))
        out.append(
            f"<tr><td>{line}</td><td><b>{rng.randint(1, 999)}</b></td></tr>" if html else line
        )
    return out


def make_message(kind: str, size: int, seed: int = 7) -> bytes:
    """A message of about ``size`` bytes whose bulk is one part of the given kind."""
    rng = random.Random(seed)
    head = _HEADERS.format(kind=kind)
    if kind == "attachment":
        raw = rng.randbytes(size * 3 // 4)
        encoded = base64.encodebytes(raw)  # 76-character lines
        return (
            head.encode()
            + b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
            + b"Content-Type: text/plain; charset=utf-8\n\nPlease find the drawing attached.\n"
            + b"--b\nContent-Type: application/pdf\n"
            + b'Content-Disposition: attachment; filename="drawing.pdf"\n'
            + b"Content-Transfer-Encoding: base64\n\n"
            + encoded
            + b"--b--\n"
        )
    html = kind == "html"
    block = "\n".join(_lines(rng, html)).encode() + b"\n" if kind != "lines" else b"ok\n" * 1000
    body = block * (size // len(block) + 1)
    body = body[: body.rfind(b"\n", 0, size) + 1]
    if html:
        body = b"<html><body><table>\n" + body + b"</table></body></html>\n"
    ctype = "text/html" if html else "text/plain"
    return (
        head.encode()
        + f"Content-Type: {ctype}; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n".encode()
        + body
    )


def measure_parse(path: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PARSE_CHILD, str(REPO), str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def _ingest_peaks_kb(paths: list[Path], workdir: Path, workers: str = "0") -> dict[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADMAIL_")}
    env.update(
        LEADMAIL_DATABASE__URL=f"sqlite:///{workdir / 'leadmail.db'}",
        LEADMAIL_STORAGE__PATH=str(workdir / "blobs"),
        LEADMAIL_RULES__PATH=str(REPO / "rules" / "assignment.yaml"),
        LEADMAIL_INGEST__PARSE_WORKERS=workers,
        LEADMAIL_LEADS__MAX_MESSAGE_BYTES=str(1 << 30),  # measure, do not quarantine
        PYTHONPATH=str(REPO),
        BENCH_RUSAGE_OUT=str(workdir / "rusage.json"),
    )
    subprocess.run(
        [sys.executable, "-m", "worker", "init"],
        env=env,
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [sys.executable, "-c", _INGEST_WRAPPER, "ingest", "--no-progress", *map(str, paths)],
        env=env,
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    peaks: dict[str, int] = json.loads((workdir / "rusage.json").read_text())
    return peaks


def measure_ingest(path: Path, small: Path) -> dict[str, object]:
    with (
        tempfile.TemporaryDirectory(prefix="leadmail-mem-") as a,
        tempfile.TemporaryDirectory(prefix="leadmail-mem-") as b,
    ):
        base = _ingest_peaks_kb([small], Path(a))["self_kb"]
        peak = _ingest_peaks_kb([path], Path(b))["self_kb"]
    return {"before_kb": base, "peak_kb": peak}


def measure_batch(path: Path, small: Path) -> dict[str, object]:
    """BATCH copies (own Message-IDs) through the default parse workers: main + worker peaks."""
    data = path.read_bytes()
    with tempfile.TemporaryDirectory(prefix="leadmail-mem-") as tmp:
        paths = []
        for n in range(BATCH):
            copy = Path(tmp) / f"copy-{n}.eml"
            copy.write_bytes(data.replace(b"Message-ID: <large-", b"Message-ID: <%d-" % n, 1))
            paths.append(copy)
        del data
        with tempfile.TemporaryDirectory(prefix="leadmail-mem-") as a:
            base = _ingest_peaks_kb([small], Path(a), "-1")
        with tempfile.TemporaryDirectory(prefix="leadmail-mem-") as b:
            peaks = _ingest_peaks_kb(paths, Path(b), "-1")
    workers = len(os.sched_getaffinity(0))  # the default: one parse worker per core, up to 4
    total = peaks["self_kb"] + min(4, workers) * peaks["children_kb"]
    return {"before_kb": base["self_kb"] + min(4, workers) * base["children_kb"], "peak_kb": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    size = int(args.size_mb * 1024 * 1024)
    rows = []
    with tempfile.TemporaryDirectory(prefix="leadmail-mem-") as tmp:
        small = Path(tmp) / "small.eml"
        small.write_bytes(make_message("text", 4096))
        for kind in args.kinds.split(","):
            path = Path(tmp) / f"{kind}.eml"
            data = make_message(kind, size)
            path.write_bytes(data)
            del data
            real = path.stat().st_size
            for stage in args.stages.split(","):
                extra = []
                for _ in range(args.runs):
                    measure = {"parse": measure_parse, "ingest": measure_ingest}.get(stage)
                    got = (
                        measure(path)
                        if stage == "parse"
                        else (measure or measure_batch)(path, small)
                    )  # type: ignore[operator]
                    extra.append(int(got["peak_kb"]) - int(got["before_kb"]))  # type: ignore[call-overload]
                median_kb = statistics.median(extra)
                row = {
                    "kind": kind,
                    "stage": stage,
                    "size_mb": round(real / 1024 / 1024, 1),
                    "extra_mb_median": round(median_kb / 1024, 1),
                    "times_size": round(median_kb * 1024 / real, 1),
                    "runs_mb": [round(kb / 1024, 1) for kb in extra],
                }
                rows.append(row)
                if not args.json:
                    print(
                        f"{kind:<10} {stage:<6} {row['size_mb']:>6} MB"
                        f"  peak +{row['extra_mb_median']:>7} MB"
                        f"  = {row['times_size']:>5}x size   runs {row['runs_mb']}",
                        flush=True,
                    )
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
