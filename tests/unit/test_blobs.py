"""Blob store: content addressing, atomic writes, names that cannot escape."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from worker.errors import StoreError
from worker.store.blobs import BlobStore, safe_filename, sha256_hex


def test_put_get_and_dedup(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    digests = store.put_many([b"one", b"two", b"one"])
    assert digests == [sha256_hex(b"one"), sha256_hex(b"two"), sha256_hex(b"one")]
    assert store.get(digests[0]) == b"one"
    assert store.path_for(digests[1]).parent.name == digests[1][:2]
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_corrupt_or_missing_blob_is_reported(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put(b"hello")
    store.path_for(digest).write_bytes(b"tampered")
    with pytest.raises(StoreError, match="corrupt"):
        store.get(digest)
    with pytest.raises(StoreError, match="missing"):
        store.get("0" * 64)
    with pytest.raises(StoreError, match="not a sha256"):
        store.get("../../etc/passwd")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\evil.exe", "evil.exe"),
        ("..", "attachment.bin"),
        ("", "attachment.bin"),
        (".bashrc", "bashrc"),
        ("con.txt", "_con.txt"),
        ("ผ้าห่ม06[4].jpg", "ผ้าห่ม06[4].jpg"),
        ("a\x00b\r\nc.pdf", "a_b_c.pdf"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_caps_length_and_keeps_extension(tmp_path: Path) -> None:
    name = safe_filename("ก" * 300 + ".pdf")
    assert name.endswith(".pdf") and len(name.encode()) <= 200
    (tmp_path / name).write_bytes(b"x")  # the file system accepts it
    assert (tmp_path / name).parent == tmp_path


def test_stale_temp_files_of_killed_runs_are_swept(tmp_path: Path) -> None:
    import os
    import time

    from worker.store.blobs import BlobStore

    store = BlobStore(tmp_path / "blobs")
    digest = store.put(b"kept")
    orphan = tmp_path / "blobs" / "tmp" / "12345-1-1"  # a killed writer's temp file
    orphan.write_bytes(b"half a blob")
    assert store.sweep() == 0  # young: maybe still in flight
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    assert store.sweep() == 1
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    assert store.get(digest) == b"kept"


class _FullDisk:
    """A file handle that writes half of what it is given, then finds the disk full."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def write(self, data: bytes) -> int:
        self._handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_a_short_write_removes_its_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(tmp_path / "blobs")
    real_fdopen = os.fdopen
    monkeypatch.setattr(
        "worker.store.blobs.os.fdopen", lambda fd, mode: _FullDisk(real_fdopen(fd, mode))
    )
    with pytest.raises(StoreError, match="No space left on device"):
        store.put_many([b"first message", b"second message"])
    assert _leftovers(tmp_path / "blobs") == []


@pytest.mark.parametrize(
    "failure",
    [OSError(errno.EIO, "Input/output error"), RuntimeError("interrupted"), KeyboardInterrupt()],
    ids=["io-error", "other-error", "interrupt"],
)
@pytest.mark.parametrize("count", [1, 3])
def test_a_failed_fsync_removes_every_temp_file_of_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException, count: int
) -> None:
    store = BlobStore(tmp_path / "blobs")

    def failing_sync(*_args: object) -> None:
        raise failure

    monkeypatch.setattr("worker.store.blobs.os.fsync", failing_sync)
    monkeypatch.setattr("worker.store.blobs._syncfs", lambda _path: False)
    expected = StoreError if isinstance(failure, OSError) else type(failure)
    with pytest.raises(expected):
        store.put_many([f"message {n}".encode() for n in range(count)])
    assert _leftovers(tmp_path / "blobs") == []


def test_a_failed_rename_removes_the_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(tmp_path / "blobs")

    def failing_replace(*_args: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("worker.store.blobs.os.replace", failing_replace)
    with pytest.raises(StoreError, match="Permission denied"):
        store.put_many([b"one", b"two"])
    assert _leftovers(tmp_path / "blobs") == []
