"""Content-addressed blob store for raw messages and attachments, durable before commit.

The bytes are records in append-only pack files (store/packs.py); the ``blobs`` table maps each
sha256 to its record, and every statement on it is here.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    distinct,
    func,
    select,
    update,
)

from worker.errors import StoreError
from worker.store import packs, tables
from worker.store.db import sync_sqlite
from worker.store.packs import BlobRef
from worker.store.upserts import insert_ignoring

__all__ = ["BlobRef", "BlobStore", "Stored", "libc", "safe_filename", "sha256_hex"]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")
_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)
MAX_NAME_BYTES = 200


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_filename(name: str, fallback: str = "attachment.bin") -> str:
    """A name that is one plain path component whatever the sender wrote.

    Attachment names come from strangers: strip directories, control characters, leading
    dots (hidden files, ``..``) and Windows device names, and cap the length in bytes while
    keeping the extension, so that saving under this name can never leave the target folder.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    if not name or _RESERVED.match(name):
        name = f"_{name}" if name else fallback
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 16:
        stem, ext = name, ""
    encoded_ext = (("." + ext) if ext else "").encode()
    budget = MAX_NAME_BYTES - len(encoded_ext)
    stem_bytes = stem.encode()[:budget]
    return stem_bytes.decode("utf-8", "ignore") + encoded_ext.decode()


@dataclass(frozen=True, slots=True)
class Stored:
    """What a put made durable: every item's digest, in order, and the records it appended.

    ``refs`` holds only new records (a digest the database knew already, or one seen earlier in
    the batch, is not written again); the transaction that names them records them
    (``record``), in the same commit.
    """

    digests: list[str]
    refs: list[BlobRef]

    def refs_for(self, digests: Iterable[str]) -> tuple[BlobRef, ...]:
        wanted = set(digests)
        return tuple(ref for ref in self.refs if ref.sha256 in wanted)


@dataclass(frozen=True, slots=True)
class Problem:
    """A referenced blob that ``verify`` could not read back."""

    table: str
    column: str
    sha256: str
    problem: str  # missing | corrupt
    detail: str


@dataclass
class GcReport:
    packs_before: int = 0
    packs_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    packs_compacted: int = 0
    packs_skipped_busy: int = 0
    tails_cut: int = 0
    records_copied: int = 0
    dead_records: int = 0

    @property
    def bytes_reclaimed(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)


Progress = Callable[[int, int], None]  # (done, total)

# Every column that names a blob; ``verify`` reads them all, erase and gc keep what they name.
REFERENCES: tuple[tuple[str, str], ...] = (
    ("messages", "raw_sha256"),
    ("attachments", "sha256"),
    ("outbox", "raw_sha256"),
    ("quarantine", "raw_sha256"),
)

_blobs = tables.blobs


_record_statement = insert_ignoring(_blobs)

_KNOWN = select(_blobs.c.sha256).where(_blobs.c.sha256.in_(bindparam("digests", expanding=True)))
_LOCATE = select(_blobs.c.sha256, _blobs.c.pack, _blobs.c.offset, _blobs.c.length).where(
    _blobs.c.sha256.in_(bindparam("digests", expanding=True))
)
_LOCK_FILE = ".gc.lock"


def record(conn: Connection, refs: Iterable[BlobRef], now: datetime | None = None) -> None:
    """Name these records in the caller's transaction; a digest already named keeps its row."""
    when = now or datetime.now(UTC)
    rows = [
        {
            "sha256": r.sha256,
            "pack": r.pack,
            "offset": r.offset,
            "length": r.length,
            "created_at": when,
        }
        for r in dict((r.sha256, r) for r in refs).values()
    ]
    if rows:
        _record_statement(conn.dialect.name).later_many(conn, rows)


def locate(conn: Connection, digests: Iterable[str]) -> dict[str, BlobRef]:
    listed = sorted(set(digests))
    if not listed:
        return {}
    return {
        row.sha256: BlobRef(row.sha256, row.pack, row.offset, row.length)
        for row in conn.execute(_LOCATE, {"digests": listed})
    }


def forget(conn: Connection, digests: Iterable[str]) -> list[BlobRef]:
    """Delete the rows of these blobs (an erase, in its transaction); their records, which
    the caller zeroes after the commit (``BlobStore.zero``)."""
    found = locate(conn, digests)
    if found:
        conn.execute(delete(_blobs).where(_blobs.c.sha256.in_(sorted(found))))
    return list(found.values())


class BlobStore:
    """Blobs are records in append-only packs under ``root/packs``; the ``blobs`` table says
    where each one is (store/packs.py has the format).

    Each process appends to a pack of its own (an exclusive flock), one fdatasync per batch.
    Without an engine (unit tests, benches) nothing is known beforehand and reads need refs.
    """

    def __init__(
        self,
        root: Path,
        engine: Engine | None = None,
        pack_max_bytes: int = packs.DEFAULT_MAX_BYTES,
    ) -> None:
        self.root = root
        self.packs = root / "packs"
        self.engine = engine
        self.pack_max_bytes = pack_max_bytes
        self._writer: packs.PackWriter | None = None
        self._pid = os.getpid()
        # Pollers run a thread per folder on one store: one append at a time.
        self._lock = threading.Lock()
        try:
            self.packs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create blob store at {root}: {exc.strerror}", root) from None

    def spec(self) -> tuple[str, str | None, int]:
        """What another process needs to open this store: root, database URL, pack size."""
        url = self.engine.url.render_as_string(hide_password=False) if self.engine else None
        return str(self.root), url, self.pack_max_bytes

    @classmethod
    def from_spec(cls, spec: tuple[str, str | None, int]) -> BlobStore:
        """The store in a forked parse worker, with an engine of its own (the parent's
        connections must not be used across a fork)."""
        root, url, max_bytes = spec
        return cls(Path(root), create_engine(url) if url is not None else None, max_bytes)

    # -- writing ----------------------------------------------------------------------

    def put(self, data: bytes) -> Stored:
        return self.put_many([data])

    def put_many(self, items: Iterable[bytes]) -> Stored:
        """Make these blobs durable (one fdatasync), each distinct new one written once."""
        digests: list[str] = []
        pending: dict[str, bytes] = {}
        for data in items:
            digest = sha256_hex(data)
            digests.append(digest)
            pending.setdefault(digest, data)
        for digest in self.known(pending):
            del pending[digest]
        if not pending:
            return Stored(digests, [])
        with self._lock:
            refs = self._pack_writer().append_many(list(pending.items()))
        return Stored(digests, refs)

    def known(self, digests: Iterable[str]) -> set[str]:
        """The digests among these the database has a blob for already."""
        listed = sorted(set(digests))
        if self.engine is None or not listed:
            return set()
        with self.engine.connect() as conn:
            return set(conn.scalars(_KNOWN, {"digests": listed}))

    def _pack_writer(self) -> packs.PackWriter:
        if self._writer is None or self._pid != os.getpid():
            # A forked child never appends to its parent's pack: it takes one of its own.
            self._writer = packs.PackWriter(self.packs, self.pack_max_bytes)
            self._pid = os.getpid()
        return self._writer

    def close(self) -> None:
        with self._lock:
            if self._writer is not None and self._pid == os.getpid():
                self._writer.close()
            self._writer = None

    # -- reading ----------------------------------------------------------------------

    def get(self, digest: str) -> bytes:
        """The blob's bytes, checked against its sha256."""
        if not _DIGEST.fullmatch(digest):
            raise StoreError(f"not a sha256 digest: {digest!r}", digest)
        for attempt in range(2):
            ref = self._locate(digest)
            try:
                return packs.read(self.packs, ref)
            except StoreError:
                # gc may have moved the record between our look-up and the read: look again.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def has(self, digest: str) -> bool:
        if self.engine is None:
            return False
        with self.engine.connect() as conn:
            return digest in locate(conn, [digest])

    def _locate(self, digest: str) -> BlobRef:
        if self.engine is None:
            raise StoreError(f"blob {digest}: no database to find it in", digest)
        with self.engine.connect() as conn:
            ref = locate(conn, [digest]).get(digest)
        if ref is None:
            raise StoreError(f"blob {digest} is missing from {self.root}", digest)
        return ref

    # -- erasing ----------------------------------------------------------------------

    def zero(self, refs: Sequence[BlobRef]) -> int:
        """Overwrite these records with zeros in place (their rows are gone, committed)."""
        if not refs:
            return 0
        with self._gc_lock():
            return packs.zero(self.packs, refs)

    def discard(self, refs: Sequence[BlobRef]) -> int:
        """Zero those of these new records that no committed row names (mail of an erased
        lead, written before its transaction found that out)."""
        if not refs or self.engine is None:
            return 0
        with self.engine.connect() as conn:
            named = locate(conn, (r.sha256 for r in refs))
        unnamed = [r for r in refs if named.get(r.sha256) != r]
        return self.zero(unnamed)

    @contextlib.contextmanager
    def _gc_lock(self) -> Iterator[None]:
        """gc against zeroing: a record gc is copying must not be erased behind its back."""
        fd = os.open(self.packs / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- checking and compacting --------------------------------------------------------

    def verify(self, progress: Progress | None = None) -> tuple[int, list[Problem]]:
        """Read back every blob a row refers to; (blobs checked, problems).

        Streams each referencing column's distinct digests and looks them up in chunks, so
        memory stays flat in the size of the database (a blob named from two tables is
        read twice).
        """
        engine = self._engine()
        problems: list[Problem] = []
        columns = [(name, tables.metadata.tables[name].c[column]) for name, column in REFERENCES]
        with engine.connect() as conn:
            total = sum(
                conn.scalar(select(func.count(distinct(col))).where(col.is_not(None))) or 0
                for _, col in columns
            )
        done = 0
        for table_name, col in columns:
            query = select(col).where(col.is_not(None)).distinct().order_by(col)
            with engine.connect() as conn, engine.connect() as lookup:
                rows = conn.execution_options(yield_per=_VERIFY_CHUNK).scalars(query)
                for chunk in rows.partitions():
                    found = locate(lookup, chunk)
                    for digest in chunk:
                        failure = self._check(digest, found.get(digest))
                        if failure is not None:
                            problems.append(Problem(table_name, col.name, digest, *failure))
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        return done, problems

    def _check(self, digest: str, ref: BlobRef | None) -> tuple[str, str] | None:
        if ref is None:
            return "missing", f"blob {digest} is missing from {self.root}"
        try:
            packs.read(self.packs, ref)
        except StoreError as exc:
            return ("missing" if "missing" in str(exc) else "corrupt"), str(exc)
        return None

    def gc(self, progress: Progress | None = None, threshold: float = 0.1) -> GcReport:
        """Rewrite each pack whose dead bytes (erased or orphaned records) are at least
        ``threshold`` of its size with its live records only, and remove it; a torn tail is
        cut either way. Packs a live writer holds are left for next time."""
        engine = self._engine()
        self.close()  # our own pack is compacted like any other
        report = GcReport()
        names = packs.pack_names(self.packs)
        report.packs_before = len(names)
        report.bytes_before = sum(_size(self.packs / n) for n in names)
        with self._gc_lock():
            for done, name in enumerate(names, 1):
                self._compact(engine, name, report, threshold)
                if progress is not None:
                    progress(done, len(names))
        after = packs.pack_names(self.packs)
        report.packs_after = len(after)
        report.bytes_after = sum(_size(self.packs / n) for n in after)
        return report

    def _compact(self, engine: Engine, name: str, report: GcReport, threshold: float) -> None:
        path = self.packs / name
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            if not packs.try_lock(fd):
                report.packs_skipped_busy += 1
                return
            size = os.fstat(fd).st_size
            if packs.recover(fd) < size:  # what a killed writer left half written
                report.tails_cut += 1
                size = os.fstat(fd).st_size
            records, _ = packs.scan(fd, size)
            with engine.connect() as conn:
                rows = conn.execute(
                    select(_blobs.c.sha256, _blobs.c.offset, _blobs.c.length).where(
                        _blobs.c.pack == name
                    )
                ).all()
            live = {(row.offset, row.length): row.sha256 for row in rows}
            keep = [r for r in records if live.get((r.offset, r.length)) == r.digest.hex()]
            used = sum(packs.HEADER_SIZE + r.length for r in keep)
            dead = size - used
            if size > 0 and len(keep) == len(rows) and (dead == 0 or dead < threshold * size):
                return  # nothing to reclaim, or not worth a rewrite yet
            if len(keep) != len(rows):
                # A row names a record this pack does not hold as named: leave the pack to
                # `store verify` rather than drop what might be someone's last copy.
                log.warning("gc: pack %s does not match its rows; left as it is", name)
                return
            moves = self._copy(fd, name, keep)
            vanished: list[BlobRef] = []
            with engine.begin() as conn:
                for old, new in moves:
                    result = conn.execute(
                        update(_blobs)
                        .where(
                            _blobs.c.sha256 == old.sha256,
                            _blobs.c.pack == old.pack,
                            _blobs.c.offset == old.offset,
                        )
                        .values(pack=new.pack, offset=new.offset)
                    )
                    if result.rowcount == 0:
                        vanished.append(new)  # erased while we copied: not kept anywhere
            # The new places must survive a power cut before the old pack goes (SQLite runs
            # with synchronous=NORMAL).
            sync_sqlite(engine)
            packs.zero(self.packs, vanished)
            os.unlink(path)
            packs.fsync_dir(self.packs)
            report.packs_compacted += 1
            report.records_copied += len(moves) - len(vanished)
            report.dead_records += len(records) - len(keep)
        finally:
            os.close(fd)

    def _copy(self, fd: int, name: str, keep: list[packs.Record]) -> list[tuple[BlobRef, BlobRef]]:
        if not keep:
            return []
        writer = packs.PackWriter(self.packs, self.pack_max_bytes, fresh=True)
        moves: list[tuple[BlobRef, BlobRef]] = []
        try:
            batch: list[tuple[BlobRef, bytes]] = []
            volume = 0
            for record in keep:
                old = BlobRef(record.digest.hex(), name, record.offset, record.length)
                data = packs.read_payload(fd, record.offset + packs.HEADER_SIZE, record.length)
                if sha256_hex(data) != old.sha256:
                    raise StoreError(f"gc: blob {old.sha256} is corrupt in pack {name}", name)
                batch.append((old, data))
                volume += len(data)
                if volume >= _GC_BATCH_BYTES:
                    moves.extend(_append(writer, batch))
                    batch, volume = [], 0
            moves.extend(_append(writer, batch))
        finally:
            writer.close()
        return moves

    def _engine(self) -> Engine:
        if self.engine is None:
            raise StoreError("the blob store needs its database for this", str(self.root))
        return self.engine

    # -- the per-file store of before migration 0013 -------------------------------------

    def legacy_files(self) -> Iterator[tuple[str, Path]]:
        """(digest, path) of each blob file of the old layout, ``root/ab/<sha256>``."""
        return legacy_files(self.root)

    def sweep_legacy(self) -> int:
        """Remove the old per-file blobs migration 0013 copied into a pack (it cannot remove
        them itself: its transaction might still roll back); returns how many."""
        removed = 0
        if self.engine is None:
            return 0
        found = list(legacy_files(self.root))
        if found:
            sync_sqlite(self.engine)  # 0013's commit, durable before its source files go
        for start in range(0, len(found), 500):
            chunk = found[start : start + 500]
            with self.engine.connect() as conn:
                named = locate(conn, (d for d, _ in chunk))
            for digest, path in chunk:
                if digest in named:
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed += 1
        with contextlib.suppress(OSError):
            # Temp files of the old layout that a killed run left: never named by anything.
            for leftover in (self.root / "tmp").iterdir():
                leftover.unlink()
        for entry in [*self.root.iterdir(), self.root / "tmp"]:
            if (entry.is_dir() and _LEGACY_DIR.fullmatch(entry.name)) or entry.name == "tmp":
                with contextlib.suppress(OSError):
                    entry.rmdir()  # only when empty
        return removed


_GC_BATCH_BYTES = 8 << 20
_VERIFY_CHUNK = 500
_DIGEST = re.compile(r"[0-9a-f]{64}")
_LEGACY_DIR = re.compile(r"[0-9a-f]{2}")


def _append(
    writer: packs.PackWriter, batch: list[tuple[BlobRef, bytes]]
) -> list[tuple[BlobRef, BlobRef]]:
    if not batch:
        return []
    refs = writer.append_many([(old.sha256, data) for old, data in batch])
    return [(old, new) for (old, _), new in zip(batch, refs, strict=True)]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def legacy_files(root: Path) -> Iterator[tuple[str, Path]]:
    try:
        dirs = sorted(
            (e for e in os.scandir(root) if e.is_dir() and _LEGACY_DIR.fullmatch(e.name)),
            key=lambda e: e.name,
        )
    except FileNotFoundError:
        return
    for directory in dirs:
        for entry in sorted(os.scandir(directory.path), key=lambda e: e.name):
            if _DIGEST.fullmatch(entry.name) and entry.is_file():
                yield entry.name, Path(entry.path)


def libc() -> ctypes.CDLL | None:
    """The C library already loaded in this process (dlopen(NULL)).

    ctypes.util.find_library would run ldconfig in a subprocess, on every start-up.
    """
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
