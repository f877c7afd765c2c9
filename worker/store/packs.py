"""Append-only pack files: the on-disk format of the blob store (no database here).

A pack is a sequence of records, each a fixed header and the blob's bytes::

    magic b"LMB1" | length: u64 big-endian | sha256: 32 bytes | payload (length bytes)

One writer process appends to a pack at a time: it holds an exclusive ``flock`` on the file
while it has it open, so its own idea of the end is the truth, and ``gc`` and tail recovery
only touch packs nobody holds. A batch of records is written with one ``pwrite`` and made
durable with one ``fdatasync`` before any transaction names them. A record is addressed by
(pack name, offset of its header, payload length); a reader checks the header and the
payload's sha256, so a torn or overwritten record can never be returned as a blob.

Erasure zeroes a record's digest and payload in place but keeps magic and length, so the
pack stays walkable: a record with an all-zero digest is dead.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from worker.errors import StoreError

MAGIC = b"LMB1"
HEADER = struct.Struct(">4sQ32s")
HEADER_SIZE = HEADER.size  # 44
SUFFIX = ".pack"
DEAD = bytes(32)
DEFAULT_MAX_BYTES = 1 << 30  # a writer starts a new pack once its own reaches 1 GiB
_CHUNK = 1 << 20  # reads, copies and zeroing go this many bytes at a time


class BlobRef(NamedTuple):
    """Where a blob's record is: a tuple, cheap to pickle back from a parse worker."""

    sha256: str
    pack: str
    offset: int  # of the record's header
    length: int  # of the payload


class Record(NamedTuple):
    offset: int
    length: int
    digest: bytes  # raw 32 bytes; DEAD once erased


def header(digest: str, length: int) -> bytes:
    return HEADER.pack(MAGIC, length, bytes.fromhex(digest))


def is_pack_name(name: str) -> bool:
    return name.endswith(SUFFIX) and "/" not in name and not name.startswith(".")


def scan(fd: int, size: int | None = None) -> tuple[list[Record], int]:
    """The complete records of a pack and the offset where the complete ones end.

    Stops at the first header that is short, has the wrong magic or claims more bytes than
    the file holds: that is a torn tail (a writer killed mid-append), never a record a
    transaction named, since those were fsynced before their commit.
    """
    end = os.fstat(fd).st_size if size is None else size
    records: list[Record] = []
    offset = 0
    # Headers are read through a window of _CHUNK bytes: small records need one read per
    # thousands of them, not one each (a writer scans its pack when it takes it).
    window, window_start = b"", 0
    while offset + HEADER_SIZE <= end:
        at = offset - window_start
        if at < 0 or at + HEADER_SIZE > len(window):
            window, window_start, at = os.pread(fd, _CHUNK, offset), offset, 0
        raw = window[at : at + HEADER_SIZE]
        if len(raw) < HEADER_SIZE:
            break
        magic, length, digest = HEADER.unpack(raw)
        if magic != MAGIC or offset + HEADER_SIZE + length > end:
            break
        records.append(Record(offset, length, digest))
        offset += HEADER_SIZE + length
    return records, offset


def read_payload(fd: int, offset: int, length: int) -> bytes:
    parts: list[bytes] = []
    position, remaining = offset, length
    while remaining > 0:
        chunk = os.pread(fd, min(remaining, 1 << 26), position)
        if not chunk:
            break
        parts.append(chunk)
        position += len(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def read(directory: Path, ref: BlobRef) -> bytes:
    """The blob at ``ref``, checked against its header and its sha256."""
    try:
        fd = os.open(directory / ref.pack, os.O_RDONLY)
    except FileNotFoundError:
        raise StoreError(f"blob {ref.sha256}: pack {ref.pack} is missing", ref.sha256) from None
    try:
        raw = os.pread(fd, HEADER_SIZE, ref.offset)
        data = read_payload(fd, ref.offset + HEADER_SIZE, ref.length)
    finally:
        os.close(fd)
    if len(raw) < HEADER_SIZE:
        raise StoreError(f"blob {ref.sha256} is missing from pack {ref.pack}", ref.sha256)
    magic, length, digest = HEADER.unpack(raw)
    if (
        magic != MAGIC
        or length != ref.length
        or digest.hex() != ref.sha256
        or len(data) != ref.length
        or hashlib.sha256(data).hexdigest() != ref.sha256
    ):
        raise StoreError(f"blob {ref.sha256} is corrupt in pack {ref.pack}", ref.sha256)
    return data


def zero(directory: Path, refs: Sequence[BlobRef]) -> int:
    """Overwrite these records' digests and payloads with zeros in place, fsynced; returns
    how many were found. The header's magic and length stay, so the pack stays walkable."""
    done = 0
    by_pack: dict[str, list[BlobRef]] = {}
    for ref in refs:
        by_pack.setdefault(ref.pack, []).append(ref)
    for pack, items in by_pack.items():
        try:
            fd = os.open(directory / pack, os.O_WRONLY)
        except FileNotFoundError:
            continue
        try:
            for ref in items:
                size = os.fstat(fd).st_size
                if ref.offset + HEADER_SIZE + ref.length > size:
                    continue
                os.pwrite(fd, DEAD, ref.offset + 12)
                position, remaining = ref.offset + HEADER_SIZE, ref.length
                while remaining > 0:
                    step = min(remaining, _CHUNK)
                    position += os.pwrite(fd, bytes(step), position)
                    remaining -= step
                done += 1
            os.fsync(fd)
        finally:
            os.close(fd)
    return done


def try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def recover(fd: int) -> int:
    """Cut a torn tail off a pack this process holds locked; returns the new end.

    The last complete record's hash is checked too: a power cut may leave a record of the
    last, unfinished batch with its length in place but its bytes missing.
    """
    size = os.fstat(fd).st_size
    records, end = scan(fd, size)
    if records:
        last = records[-1]
        if last.digest != DEAD:
            data = read_payload(fd, last.offset + HEADER_SIZE, last.length)
            if hashlib.sha256(data).digest() != last.digest:
                end = last.offset
    if end < size:
        os.ftruncate(fd, end)
        os.fsync(fd)
    return end


def new_name() -> str:
    return f"{time.time_ns():x}-{secrets.token_hex(4)}{SUFFIX}"


def pack_names(directory: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(directory) if is_pack_name(e.name))
    except FileNotFoundError:
        return []


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PackWriter:
    """Appends batches of records to a pack this process holds (flock) until ``close``."""

    def __init__(
        self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES, *, fresh: bool = False
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.fresh = fresh  # always start a new pack (gc writes its copies to one of its own)
        self._fd: int | None = None
        self._name = ""
        self._end = 0

    @property
    def pack(self) -> str:
        return self._name

    def append_many(self, items: Sequence[tuple[str, bytes]]) -> list[BlobRef]:
        """Append (sha256, bytes) records and fdatasync once; their refs, in order."""
        if not items:
            return []
        size = sum(HEADER_SIZE + len(data) for _, data in items)
        fd = self._writable(size)
        refs: list[BlobRef] = []
        parts: list[bytes] = []
        offset = self._end
        for digest, data in items:
            refs.append(BlobRef(digest, self._name, offset, len(data)))
            parts.append(header(digest, len(data)))
            parts.append(data)
            offset += HEADER_SIZE + len(data)
        buffer = b"".join(parts)
        del parts
        try:
            view = memoryview(buffer)
            position = self._end
            while view:
                written = os.pwrite(fd, view, position)
                position += written
                view = view[written:]
            os.fdatasync(fd)
        except BaseException as exc:
            # A full disk, a failing fsync, an interrupt: cut what this batch wrote, so the
            # pack ends with a complete record and the next batch goes on from there.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._end)
            if isinstance(exc, OSError):
                raise StoreError(
                    f"blob store write failed: {exc.strerror or exc}", str(self.directory)
                ) from None
            raise
        self._end = offset
        return refs

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None
            self._name = ""

    def _writable(self, size: int) -> int:
        if self._fd is not None and (self._end == 0 or self._end + size <= self.max_bytes):
            return self._fd
        self.close()
        try:
            self._acquire(size)
        except OSError as exc:
            raise StoreError(
                f"cannot open a pack in {self.directory}: {exc.strerror or exc}",
                str(self.directory),
            ) from None
        assert self._fd is not None  # set by _acquire
        return self._fd

    def _acquire(self, size: int) -> None:
        """Take a pack with room that no live writer holds (mending its tail), or a new one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in [] if self.fresh else pack_names(self.directory):
            path = self.directory / name
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue  # gc removed it
            if os.fstat(fd).st_size + size > self.max_bytes or not try_lock(fd):
                os.close(fd)
                continue
            if not path.exists():  # gc compacted and removed it before we locked it
                os.close(fd)
                continue
            self._fd, self._name, self._end = fd, name, recover(fd)
            return
        while True:
            name = new_name()
            try:
                fd = os.open(self.directory / name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            # Another writer may lock a pack between its creation and our lock, and gc may
            # remove an empty unlocked one: only a pack we hold and that still exists is ours.
            if try_lock(fd) and (self.directory / name).exists():
                break
            os.close(fd)
        fsync_dir(self.directory)
        self._fd, self._name, self._end = fd, name, 0


def iter_live(fd: int) -> Iterator[Record]:
    records, _ = scan(fd)
    return (r for r in records if r.digest != DEAD)
