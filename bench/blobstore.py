"""Blob store designs side by side: one file per blob, append-only packs, bytes in the database.

Issue 13 item 1. The 10,000 messages of ``tests.mailgen.messages(10000, seed=7)`` are stored the
way intake stores them: blobs made durable per batch of ``--batch`` (the ``fsync_batch`` default,
32), then one SQLite transaction per message (WAL, synchronous=NORMAL, as leadmail runs it) that
inserts a message row naming the blob. Three designs:

- **files**: today's ``BlobStore`` (temp file, syncfs, rename into ``root/ab/<sha256>``, syncfs of
  the directories), then the message row.
- **packs**: ``worker.store.packs.PackWriter`` appends the batch's records to one pack file and
  fdatasyncs once; each message transaction also inserts its ``blobs`` row (sha256, pack, offset,
  length) — the design implemented.
- **db**: no blob write before the transaction; the message transaction inserts the raw bytes into
  a ``blobs`` table (sha256, data) next to the message row.

Each run uses a fresh directory and database on the local disk; the designs alternate within a
run; reported: the median over ``--runs`` of the wall time, split into the blob-write part (done in
the parse workers in leadmail, in parallel) and the commit part (the single committing process),
plus the bytes written to disk. ``sync()`` runs, untimed, before each design.

Usage: python bench/blobstore.py [--count 10000] [--runs 5] [--batch 32] [--pad-kb N] [--workdir DIR]
       [--json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.mailgen import messages  # noqa: E402
from worker.store.blobs import BlobStore, sha256_hex  # noqa: E402
from worker.store.packs import PackWriter  # noqa: E402

MESSAGE_ROW = (
    "CREATE TABLE messages (id INTEGER PRIMARY KEY, message_id TEXT, subject TEXT, "
    "raw_sha256 TEXT, size INTEGER)"
)


def _db(path: Path, extra: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=10000")
    conn.execute(MESSAGE_ROW)
    conn.execute(extra)
    return conn


def _insert_message(conn: sqlite3.Connection, n: int, digest: str, size: int) -> None:
    conn.execute(
        "INSERT INTO messages (message_id, subject, raw_sha256, size) VALUES (?, ?, ?, ?)",
        (f"<{n}@bench>", "subject", digest, size),
    )


def run_files(work: Path, data: list[bytes], batch: int) -> tuple[float, float]:
    store = BlobStore(work / "blobs")
    conn = _db(work / "db.sqlite", "CREATE TABLE unused (x)")
    write = commit = 0.0
    for start in range(0, len(data), batch):
        chunk = data[start : start + batch]
        t0 = time.perf_counter()
        digests = store.put_many(chunk)
        t1 = time.perf_counter()
        for i, (raw, digest) in enumerate(zip(chunk, digests, strict=True)):
            conn.execute("BEGIN IMMEDIATE")
            _insert_message(conn, start + i, digest, len(raw))
            conn.execute("COMMIT")
        t2 = time.perf_counter()
        write, commit = write + t1 - t0, commit + t2 - t1
    conn.close()
    return write, commit


def run_packs(work: Path, data: list[bytes], batch: int) -> tuple[float, float]:
    (work / "packs").mkdir()
    writer = PackWriter(work / "packs")
    conn = _db(
        work / "db.sqlite",
        "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, pack TEXT, offset INTEGER, "
        "length INTEGER, created_at TEXT)",
    )
    write = commit = 0.0
    for start in range(0, len(data), batch):
        chunk = data[start : start + batch]
        t0 = time.perf_counter()
        refs = writer.append_many([(sha256_hex(raw), raw) for raw in chunk])
        t1 = time.perf_counter()
        for i, (raw, ref) in enumerate(zip(chunk, refs, strict=True)):
            conn.execute("BEGIN IMMEDIATE")
            _insert_message(conn, start + i, ref.sha256, len(raw))
            conn.execute(
                "INSERT INTO blobs VALUES (?, ?, ?, ?, 'now') ON CONFLICT DO NOTHING",
                (ref.sha256, ref.pack, ref.offset, ref.length),
            )
            conn.execute("COMMIT")
        t2 = time.perf_counter()
        write, commit = write + t1 - t0, commit + t2 - t1
    writer.close()
    conn.close()
    return write, commit


def run_db(work: Path, data: list[bytes], batch: int) -> tuple[float, float]:
    conn = _db(
        work / "db.sqlite", "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL)"
    )
    commit = 0.0
    for n, raw in enumerate(data):
        t0 = time.perf_counter()
        digest = sha256_hex(raw)
        conn.execute("BEGIN IMMEDIATE")
        _insert_message(conn, n, digest, len(raw))
        conn.execute("INSERT INTO blobs VALUES (?, ?) ON CONFLICT DO NOTHING", (digest, raw))
        conn.execute("COMMIT")
        commit += time.perf_counter() - t0
    conn.close()
    return 0.0, commit


DESIGNS: dict[str, Callable[[Path, list[bytes], int], tuple[float, float]]] = {
    "files": run_files,
    "packs": run_packs,
    "db": run_db,
}


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--pad-kb", type=int, default=0, help="add this many KB of base64 text to each message"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data = messages(args.count, seed=7)
    if args.pad_kb:
        rng = random.Random(7)
        data = [
            raw + b"\n" + base64.encodebytes(rng.randbytes(args.pad_kb * 768)) for raw in data
        ]
    results: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name in DESIGNS}
    base = Path(tempfile.mkdtemp(prefix="bench-blobs-", dir=args.workdir))
    try:
        for run in range(args.runs):
            order = list(DESIGNS) if run % 2 == 0 else list(reversed(DESIGNS))
            for name in order:
                work = base / f"{name}-{run}"
                work.mkdir()
                os.sync()
                t0 = time.perf_counter()
                write, commit = DESIGNS[name](work, data, args.batch)
                wall = time.perf_counter() - t0
                results[name].append((wall, write, commit, _disk_bytes(work)))
                shutil.rmtree(work)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    summary = {
        name: {
            "wall_s": statistics.median(r[0] for r in rows),
            "blob_write_s": statistics.median(r[1] for r in rows),
            "commit_s": statistics.median(r[2] for r in rows),
            "disk_bytes": statistics.median(r[3] for r in rows),
            "runs": [round(r[0], 3) for r in rows],
        }
        for name, rows in results.items()
    }
    if args.json:
        print(json.dumps({"count": args.count, "pad_kb": args.pad_kb, "batch": args.batch, "designs": summary}, indent=2))
        return
    mb = sum(map(len, data)) / 1e6
    print(f"{args.count} messages ({mb:.1f} MB), batch {args.batch}, median of {args.runs} alternating runs")
    print(f"{'design':<8}{'wall s':>9}{'write s':>9}{'commit s':>10}{'disk MB':>9}")
    for name, row in summary.items():
        print(
            f"{name:<8}{row['wall_s']:>9.2f}{row['blob_write_s']:>9.2f}"
            f"{row['commit_s']:>10.2f}{row['disk_bytes'] / 1e6:>9.1f}"
        )


if __name__ == "__main__":
    main()
