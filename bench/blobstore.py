"""Blob store designs side by side: one file per blob, append-only packs, bytes in the database.

Issue 13 item 1. The 10,000 messages of ``tests.mailgen.messages(10000, seed=7)`` are stored the
way intake stores them: blobs made durable per batch of ``--batch`` (the ``fsync_batch`` default,
32), then one SQLite transaction per message (WAL, synchronous=NORMAL, as leadmail runs it) that
inserts a message row naming the blob. Three designs:

- **files**: the ``BlobStore`` of before migration 0013, kept below as ``FileStore`` (temp file,
  syncfs, rename into ``root/ab/<sha256>``, syncfs of the directories), then the message row.
- **packs**: ``worker.store.packs.PackWriter`` appends the batch's records to one pack file and
  fdatasyncs once; each message transaction also inserts its ``blobs`` row (sha256, pack, offset,
  length) — the design implemented.
- **db**: no blob write before the transaction; the message transaction inserts the raw bytes into
  a ``blobs`` table (sha256, data) next to the message row.

Each run uses a fresh directory and database on the local disk; the designs alternate within a
run; reported: the median over ``--runs`` of the wall time, split into the blob-write part (done in
the parse workers in leadmail, in parallel) and the commit part (the single committing process),
plus the bytes written to disk. ``sync()`` runs, untimed, before each design.

Usage: python bench/blobstore.py [--count 10000] [--runs 5] [--batch 32] [--pad-kb N]
       [--workdir DIR] [--json]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import itertools
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.mailgen import messages  # noqa: E402
from worker.errors import StoreError  # noqa: E402
from worker.store.blobs import libc, sha256_hex  # noqa: E402
from worker.store.packs import PackWriter  # noqa: E402

MESSAGE_ROW = (
    "CREATE TABLE messages (id INTEGER PRIMARY KEY, message_id TEXT, subject TEXT, "
    "raw_sha256 TEXT, size INTEGER)"
)


# -- today's design before issue 13: one file per blob (worker/store/blobs.py until 0013) ---------

_temp_numbers = itertools.count(1)


class FileStore:
    """Blobs live at ``root/ab/<sha256>``; a blob is only ever written once, atomically.

    ``put_many`` writes every new blob to a temp file, fsyncs the files, renames them into
    place and fsyncs each touched directory once, so a batch pays for its fsyncs together
    and a blob that exists under its final name is always complete.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._known_dirs: set[str] = set()
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create blob store at {root}: {exc.strerror}", root) from None

    def path_for(self, digest: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise StoreError(f"not a sha256 digest: {digest!r}", digest)
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def put(self, data: bytes) -> str:
        return self.put_many([data])[0]

    def put_many(self, items: Iterable[bytes]) -> list[str]:
        # Plain strings, not Path objects, below: a batch of a few hundred small attachments
        # spent more time building paths than writing the files.
        root = str(self.root)
        digests: list[str] = []
        pending: dict[str, str] = {}
        try:
            for data in items:
                digest = sha256_hex(data)
                digests.append(digest)
                if digest in pending or os.path.isfile(f"{root}/{digest[:2]}/{digest}"):
                    continue
                pending[digest] = self._write_temp(data)
            if not pending:
                return digests
            self._sync_files(list(pending.values()))
            dirs: set[str] = set()
            for digest, tmp in pending.items():
                directory = f"{root}/{digest[:2]}"
                if directory not in self._known_dirs:
                    os.makedirs(directory, exist_ok=True)
                    self._known_dirs.add(directory)
                os.replace(tmp, f"{directory}/{digest}")
                dirs.add(directory)
            self._sync_dirs(dirs | {root})
        except BaseException as exc:
            # Whatever failed (a full disk, a failing fsync, an interrupt), no temp file of
            # this batch stays behind; the ones already renamed are complete blobs.
            for tmp in pending.values():
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if isinstance(exc, OSError):
                raise StoreError(
                    f"blob store write failed: {exc.strerror or exc}", str(self.root)
                ) from None
            raise
        return digests

    def sweep(self, max_age: float = 3600.0) -> int:
        """Remove temp files a killed process left behind; returns how many.

        A temp file is renamed into place within seconds, so anything this old belongs to nobody.
        """
        cutoff = time.time() - max_age
        removed = 0
        try:
            entries = list(os.scandir(self._tmp))
        except OSError:
            return 0
        for entry in entries:
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        return removed

    def _sync_files(self, files: list[str]) -> None:
        # One syncfs(2) flushes a whole batch for the price of one fsync; elsewhere, or when
        # it fails, each file is fsynced.
        if len(files) > 1 and _syncfs(self._tmp):
            return
        for file in files:
            _fsync_path(file)

    def _sync_dirs(self, dirs: set[str]) -> None:
        if len(dirs) > 2 and _syncfs(self.root):
            return
        for directory in dirs:
            _fsync_dir(directory)

    def delete(self, digest: str) -> bool:
        """Remove a blob nothing refers to any more (``leads erase``); False if absent.

        The caller checks the database first: a blob is shared by every message or
        attachment with the same bytes.
        """
        try:
            os.unlink(self.path_for(digest))
        except FileNotFoundError:
            return False
        return True

    def get(self, digest: str) -> bytes:
        try:
            data = self.path_for(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from {self.root}", digest) from None
        if sha256_hex(data) != digest:
            raise StoreError(f"blob {digest} is corrupt", digest)
        return data

    def _write_temp(self, data: bytes) -> str:
        # pid + thread + a process-wide counter is unique among writers (pollers run one
        # thread per folder, each may have its own store) and much cheaper than tempfile's
        # random names; O_EXCL guards the rest (a leftover of a killed run with a reused pid).
        while True:
            path = f"{self._tmp}/{os.getpid()}-{threading.get_ident()}-{next(_temp_numbers)}"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_TRUNC, 0o600)
            except FileExistsError:
                continue
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
            except BaseException:
                # Not in the batch's list yet: a short write (disk full) would leave it.
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
            return path


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    lib = libc()
    try:
        func = lib.syncfs if lib is not None else None
    except AttributeError:
        return None
    if func is None:
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int
    return func


_SYNCFS = _load_syncfs()


def _syncfs(path: Path) -> bool:
    """Flush the file system holding ``path`` (Linux syncfs); False if unavailable."""
    if _SYNCFS is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return bool(_SYNCFS(fd) == 0)
    finally:
        os.close(fd)


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
    store = FileStore(work / "blobs")
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
        data = [raw + b"\n" + base64.encodebytes(rng.randbytes(args.pad_kb * 768)) for raw in data]
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
    summary: dict[str, dict[str, Any]] = {
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
        print(
            json.dumps(
                {
                    "count": args.count,
                    "pad_kb": args.pad_kb,
                    "batch": args.batch,
                    "designs": summary,
                },
                indent=2,
            )
        )
        return
    mb = sum(map(len, data)) / 1e6
    print(
        f"{args.count} messages ({mb:.1f} MB), batch {args.batch}, "
        f"median of {args.runs} alternating runs"
    )
    print(f"{'design':<8}{'wall s':>9}{'write s':>9}{'commit s':>10}{'disk MB':>9}")
    for name, row in summary.items():
        print(
            f"{name:<8}{row['wall_s']:>9.2f}{row['blob_write_s']:>9.2f}"
            f"{row['commit_s']:>10.2f}{row['disk_bytes'] / 1e6:>9.1f}"
        )


if __name__ == "__main__":
    main()
