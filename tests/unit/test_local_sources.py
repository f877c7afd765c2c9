"""Local sources: mbox splitting (streamed, mboxrd), Maildir order, directories."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from worker.errors import SourceError
from worker.sources.local import iter_messages, split_mbox

MBOX = (
    b"From alice@example.com Mon Jan  1 00:00:00 2024\n"
    b"Subject: one\n\nbody\n>From the start\n\n"
    b"From bob@example.com Mon Jan  1 00:00:01 2024\n"
    b"Subject: two\n\nFrom here on, not a separator\n"
)


def test_split_mbox_unescapes_and_separates() -> None:
    parts = list(split_mbox(io.BytesIO(MBOX)))
    assert parts == [
        b"Subject: one\n\nbody\nFrom the start\n",
        b"Subject: two\n\nFrom here on, not a separator\n",
    ]


def test_iter_messages_names_mbox_positions(tmp_path: Path) -> None:
    mbox = tmp_path / "archive.mbox"
    mbox.write_bytes(MBOX)
    sources = [m.source for m in iter_messages([mbox], "local")]
    assert sources == [f"{mbox}#1", f"{mbox}#2"]


def test_maildir_new_and_cur_in_name_order(tmp_path: Path) -> None:
    box = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    (box / "new" / "2.b").write_bytes(b"Subject: b\n\nx\n")
    (box / "cur" / "1.a:2,S").write_bytes(b"Subject: a\n\nx\n")
    (box / "tmp" / "3.c").write_bytes(b"Subject: half-delivered\n\nx\n")
    got = [Path(m.source).name for m in iter_messages([box], "acct")]
    assert got == ["1.a:2,S", "2.b"]


def test_directory_of_eml_files_recurses(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.eml").write_bytes(b"Subject: x\n\n")
    (tmp_path / "y.eml").write_bytes(b"Subject: y\n\n")
    (tmp_path / ".hidden").write_bytes(b"Subject: h\n\n")
    got = sorted(Path(m.source).name for m in iter_messages([tmp_path], "acct"))
    assert got == ["x.eml", "y.eml"]


def test_missing_path_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        list(iter_messages([tmp_path / "missing"], "acct"))
