"""Content-addressed blob store for raw messages and attachments, durable before commit."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from worker.errors import StoreError

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
        digests: list[str] = []
        pending: dict[str, Path] = {}
        try:
            for data in items:
                digest = sha256_hex(data)
                digests.append(digest)
                if digest not in pending and not self.has(digest):
                    pending[digest] = self._write_temp(data)
            for tmp in pending.values():
                _fsync_path(tmp)
            dirs: set[Path] = set()
            for digest, tmp in pending.items():
                final = self.path_for(digest)
                final.parent.mkdir(exist_ok=True)
                os.replace(tmp, final)
                dirs.add(final.parent)
            for directory in dirs | ({self.root} if dirs else set()):
                _fsync_dir(directory)
        except OSError as exc:
            for tmp in pending.values():
                tmp.unlink(missing_ok=True)
            raise StoreError(f"blob store write failed: {exc.strerror}", str(self.root)) from None
        return digests

    def get(self, digest: str) -> bytes:
        try:
            data = self.path_for(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from {self.root}", digest) from None
        if sha256_hex(data) != digest:
            raise StoreError(f"blob {digest} is corrupt", digest)
        return data

    def _write_temp(self, data: bytes) -> Path:
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return Path(name)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
