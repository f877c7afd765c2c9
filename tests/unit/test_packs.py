"""Pack format: framing, torn tails cut at start-up, zeroing in place, one writer per pack."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from worker.errors import StoreError
from worker.store import packs
from worker.store.packs import HEADER_SIZE, MAGIC, PackWriter


def _items(*payloads: bytes) -> list[tuple[str, bytes]]:
    return [(hashlib.sha256(p).hexdigest(), p) for p in payloads]


def _only_pack(directory: Path) -> Path:
    (name,) = packs.pack_names(directory)
    return directory / name


def test_records_are_framed_and_read_back(tmp_path: Path) -> None:
    writer = PackWriter(tmp_path)
    refs = writer.append_many(_items(b"first", b"", b"third" * 1000))
    writer.close()
    pack = _only_pack(tmp_path)
    raw = pack.read_bytes()
    assert raw[:4] == MAGIC
    assert int.from_bytes(raw[4:12], "big") == len(b"first")
    assert raw[12:44] == hashlib.sha256(b"first").digest()
    assert raw[44:49] == b"first"
    assert [r.offset for r in refs] == [0, HEADER_SIZE + 5, 2 * HEADER_SIZE + 5]
    assert [packs.read(tmp_path, r) for r in refs] == [b"first", b"", b"third" * 1000]
    assert len(raw) == 3 * HEADER_SIZE + 5 + 5000


def test_a_read_checks_header_and_hash(tmp_path: Path) -> None:
    writer = PackWriter(tmp_path)
    ref = writer.append_many(_items(b"payload"))[0]
    writer.close()
    with pytest.raises(StoreError, match="corrupt"):
        packs.read(tmp_path, ref._replace(sha256="0" * 64))  # asks for other bytes
    with pytest.raises(StoreError, match="corrupt"):
        packs.read(tmp_path, ref._replace(length=3))
    pack = _only_pack(tmp_path)
    data = bytearray(pack.read_bytes())
    data[HEADER_SIZE] ^= 1
    pack.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        packs.read(tmp_path, ref)
    with pytest.raises(StoreError, match="missing"):
        packs.read(tmp_path, ref._replace(pack="nope.pack"))


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 3])
def test_a_torn_tail_is_cut_when_a_writer_takes_the_pack(tmp_path: Path, cut: int) -> None:
    writer = PackWriter(tmp_path)
    kept = writer.append_many(_items(b"kept one", b"kept two"))
    writer.close()
    pack = _only_pack(tmp_path)
    whole = pack.stat().st_size
    # A writer killed mid-append: part of a header, or a header and part of its payload.
    torn = packs.header(hashlib.sha256(b"torn record").hexdigest(), 11) + b"torn record"
    with pack.open("ab") as handle:
        handle.write(torn[:cut])
    writer = PackWriter(tmp_path)
    added = writer.append_many(_items(b"after"))
    writer.close()
    assert pack.stat().st_size == whole + HEADER_SIZE + 5
    assert added[0].offset == whole
    assert [packs.read(tmp_path, r) for r in (*kept, *added)] == [
        b"kept one",
        b"kept two",
        b"after",
    ]


def test_a_last_record_with_bad_bytes_is_cut(tmp_path: Path) -> None:
    writer = PackWriter(tmp_path)
    first = writer.append_many(_items(b"kept"))[0]
    writer.append_many(_items(b"lost in a power cut"))
    writer.close()
    pack = _only_pack(tmp_path)
    data = bytearray(pack.read_bytes())
    data[-5:] = bytes(5)  # length in place, bytes never reached the disk
    pack.write_bytes(bytes(data))
    fd = os.open(pack, os.O_RDWR)
    try:
        assert packs.recover(fd) == HEADER_SIZE + 4
    finally:
        os.close(fd)
    assert packs.read(tmp_path, first) == b"kept"


def test_wrong_magic_ends_the_scan(tmp_path: Path) -> None:
    writer = PackWriter(tmp_path)
    writer.append_many(_items(b"one"))
    writer.close()
    pack = _only_pack(tmp_path)
    with pack.open("ab") as handle:
        handle.write(b"XXXX" + bytes(HEADER_SIZE))
    fd = os.open(pack, os.O_RDONLY)
    try:
        records, end = packs.scan(fd)
    finally:
        os.close(fd)
    assert len(records) == 1 and end == HEADER_SIZE + 3


def test_zeroing_keeps_the_pack_walkable(tmp_path: Path) -> None:
    writer = PackWriter(tmp_path)
    one, two, three = writer.append_many(_items(b"one", b"secret two", b"three"))
    writer.close()
    assert packs.zero(tmp_path, [two]) == 1
    pack = _only_pack(tmp_path)
    raw = pack.read_bytes()
    assert b"secret two" not in raw and hashlib.sha256(b"secret two").digest() not in raw
    fd = os.open(pack, os.O_RDONLY)
    try:
        records, end = packs.scan(fd)
        live = list(packs.iter_live(fd))
    finally:
        os.close(fd)
    assert end == len(raw) and len(records) == 3
    assert [r.offset for r in live] == [one.offset, three.offset]
    with pytest.raises(StoreError, match="corrupt"):
        packs.read(tmp_path, two)
    assert packs.read(tmp_path, three) == b"three"


def test_one_writer_per_pack(tmp_path: Path) -> None:
    first, second = PackWriter(tmp_path), PackWriter(tmp_path)
    a = first.append_many(_items(b"a"))[0]
    b = second.append_many(_items(b"b"))[0]
    assert a.pack != b.pack  # the first one's pack is locked
    first.close()
    third = PackWriter(tmp_path)
    c = third.append_many(_items(b"c"))[0]
    assert c.pack == a.pack and c.offset == HEADER_SIZE + 1  # free again: appended to
    second.close()
    third.close()


def test_a_full_pack_is_not_appended_to(tmp_path: Path) -> None:
    writer = PackWriter(tmp_path, max_bytes=100)
    a = writer.append_many(_items(b"x" * 50))[0]
    writer.close()
    writer = PackWriter(tmp_path, max_bytes=100)
    b = writer.append_many(_items(b"y" * 50))[0]
    writer.close()
    assert a.pack != b.pack


def test_scan_reads_headers_across_its_read_window(tmp_path: Path) -> None:
    payloads = [bytes([n % 251]) * (n * 997 % 70_000) for n in range(120)]  # > 1 MiB in all
    writer = PackWriter(tmp_path)
    refs = writer.append_many(_items(*payloads))
    writer.close()
    fd = os.open(_only_pack(tmp_path), os.O_RDONLY)
    try:
        records, end = packs.scan(fd)
    finally:
        os.close(fd)
    assert [(r.offset, r.length) for r in records] == [(r.offset, r.length) for r in refs]
    assert end == sum(HEADER_SIZE + len(p) for p in payloads) > 1 << 20
