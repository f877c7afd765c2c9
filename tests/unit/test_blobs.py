"""Blob store: content addressing over packs, reads that verify, erasure, gc, safe names."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from worker.errors import StoreError
from worker.store import blobs, packs
from worker.store.blobs import BlobStore, safe_filename, sha256_hex
from worker.store.models import Base


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    Base.metadata.create_all(engine)
    return engine


def _store(tmp_path: Path, engine: Engine, **kwargs: int) -> BlobStore:
    return BlobStore(tmp_path / "blobs", engine, **kwargs)


def _put(store: BlobStore, engine: Engine, items: list[bytes]) -> list[str]:
    """A put and the transaction that names its records, as intake does it."""
    stored = store.put_many(items)
    with engine.begin() as conn:
        blobs.record(conn, stored.refs)
    return stored.digests


def test_put_get_and_dedup(tmp_path: Path, engine: Engine) -> None:
    store = _store(tmp_path, engine)
    stored = store.put_many([b"one", b"two", b"one"])
    assert stored.digests == [sha256_hex(b"one"), sha256_hex(b"two"), sha256_hex(b"one")]
    assert [r.sha256 for r in stored.refs] == [sha256_hex(b"one"), sha256_hex(b"two")]
    with engine.begin() as conn:
        blobs.record(conn, stored.refs)
    assert store.get(stored.digests[0]) == b"one"
    assert store.get(stored.digests[1]) == b"two"
    # Known to the database: not written again.
    again = store.put_many([b"one", b"three"])
    assert [r.sha256 for r in again.refs] == [sha256_hex(b"three")]
    assert len(packs.pack_names(store.packs)) == 1
    store.close()


def test_unnamed_corrupt_or_missing_blob_is_reported(tmp_path: Path, engine: Engine) -> None:
    store = _store(tmp_path, engine)
    unnamed = store.put_many([b"never committed"]).digests[0]
    with pytest.raises(StoreError, match="missing"):
        store.get(unnamed)  # its transaction never ran: no row, not a blob
    digest = _put(store, engine, [b"hello"])[0]
    store.close()
    pack = store.packs / packs.pack_names(store.packs)[0]
    data = bytearray(pack.read_bytes())
    data[-1] ^= 0xFF
    pack.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        store.get(digest)
    with pytest.raises(StoreError, match="missing"):
        store.get("0" * 64)
    with pytest.raises(StoreError, match="not a sha256"):
        store.get("../../etc/passwd")


def test_zero_erases_in_place_and_gc_reclaims(tmp_path: Path, engine: Engine) -> None:
    store = _store(tmp_path, engine)
    keep, gone = _put(store, engine, [b"keep me" * 100, b"erase me" * 100])
    with engine.begin() as conn:
        records = blobs.forget(conn, [gone])
    assert store.zero(records) == 1
    store.close()
    pack = store.packs / packs.pack_names(store.packs)[0]
    content = pack.read_bytes()
    assert b"erase me" not in content and bytes.fromhex(gone) not in content
    assert b"keep me" in content
    with pytest.raises(StoreError, match="missing"):
        store.get(gone)
    assert store.verify() == (0, [])  # no table refers to either: nothing to check
    report = store.gc()
    assert report.packs_compacted == 1 and report.records_copied == 1
    assert report.bytes_reclaimed > 0
    assert not pack.exists()
    assert store.get(keep) == b"keep me" * 100
    (remaining,) = packs.pack_names(store.packs)
    assert b"erase me" not in (store.packs / remaining).read_bytes()
    assert store.gc().packs_compacted == 0  # nothing left to reclaim


def test_gc_reclaims_orphaned_records_and_leaves_a_busy_pack(
    tmp_path: Path, engine: Engine
) -> None:
    store = _store(tmp_path, engine)
    _put(store, engine, [b"named"])
    store.put_many([b"orphan: its transaction never committed"])
    other = BlobStore(tmp_path / "blobs", engine)
    _put(other, engine, [b"in a pack another writer holds"])
    report = store.gc()
    assert report.packs_skipped_busy == 1 and report.packs_compacted == 1
    assert store.get(sha256_hex(b"named")) == b"named"
    assert store.get(sha256_hex(b"in a pack another writer holds"))
    other.close()


def test_discard_zeroes_only_unnamed_records(tmp_path: Path, engine: Engine) -> None:
    store = _store(tmp_path, engine)
    stored = store.put_many([b"named by another message", b"nobody's"])
    with engine.begin() as conn:
        blobs.record(conn, stored.refs[:1])
    assert store.discard(stored.refs) == 1
    assert store.get(stored.digests[0]) == b"named by another message"
    store.close()
    content = b"".join((store.packs / n).read_bytes() for n in packs.pack_names(store.packs))
    assert b"nobody's" not in content


def test_has_says_whether_a_blob_is_named(tmp_path: Path, engine: Engine) -> None:
    store = _store(tmp_path, engine)
    digest = _put(store, engine, [b"fine"])[0]
    assert store.has(digest) and not store.has("1" * 64)


def test_legacy_files_are_swept_once_named(tmp_path: Path, engine: Engine) -> None:
    store = _store(tmp_path, engine)
    digest = sha256_hex(b"old blob")
    old = tmp_path / "blobs" / digest[:2] / digest
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old blob")
    (tmp_path / "blobs" / "tmp").mkdir()
    (tmp_path / "blobs" / "tmp" / "123-1-1").write_bytes(b"half a blob of a killed run")
    assert list(store.legacy_files()) == [(digest, old)]
    assert store.sweep_legacy() == 0  # not in a pack yet: kept
    _put(store, engine, [b"old blob"])
    assert store.sweep_legacy() == 1
    assert not old.exists() and not old.parent.exists()
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == ["packs"]


def test_a_failed_write_leaves_the_pack_as_it_was(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path, engine)
    digest = _put(store, engine, [b"first"])[0]

    def full_disk(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("worker.store.packs.os.fdatasync", full_disk)
    with pytest.raises(StoreError, match="No space left on device"):
        store.put_many([b"second", b"third"])
    monkeypatch.undo()
    name = packs.pack_names(store.packs)[0]
    fd = os.open(store.packs / name, os.O_RDONLY)
    try:
        records, end = packs.scan(fd)
    finally:
        os.close(fd)
    assert [r.digest.hex() for r in records] == [digest]
    assert end == os.path.getsize(store.packs / name)
    assert _put(store, engine, [b"second"]) == [sha256_hex(b"second")]
    assert store.get(sha256_hex(b"second")) == b"second"


def test_a_writer_rolls_over_to_a_new_pack(tmp_path: Path, engine: Engine) -> None:
    store = BlobStore(tmp_path / "blobs", engine, pack_max_bytes=200)
    digests = _put(store, engine, [b"a" * 120])
    digests += _put(store, engine, [b"b" * 120])
    assert len(packs.pack_names(store.packs)) == 2
    assert [store.get(d) for d in digests] == [b"a" * 120, b"b" * 120]


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
