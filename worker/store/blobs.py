"""Content-addressed blob store for raw messages and attachments, durable before commit."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import itertools
import os
import re
import threading
import time
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from worker.errors import StoreError

_temp_numbers = itertools.count(1)  # next() is atomic under the GIL

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


class BlobStore:
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


def libc() -> ctypes.CDLL | None:
    """The C library already loaded in this process (dlopen(NULL)).

    ctypes.util.find_library would run ldconfig in a subprocess, on every start-up.
    """
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


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
