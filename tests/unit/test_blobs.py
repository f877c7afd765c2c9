"""Blob store: content addressing, atomic writes, names that cannot escape."""

from __future__ import annotations

from pathlib import Path

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
