"""Local mail files: .eml files, directories of them, mbox files and Maildir folders, streamed."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from worker.errors import SourceError
from worker.mail.message import RawMessage

# A separator is "From " + sender + a date with a time; a body line that merely starts with
# "From " (unescaped by a sloppy writer) is not one.
_MBOX_FROM = re.compile(rb"^From \S+ +.*\d{1,2}:\d{2}")
_ESCAPED_FROM = re.compile(rb"^>+From ")
MAILDIR_SUBDIRS = ("cur", "new")
SKIP_NAMES = {".DS_Store", "Thumbs.db"}
# Files met while walking a directory that are certainly not mail (named files always count).
SKIP_SUFFIXES = {
    ".md",
    ".json",
    ".py",
    ".pyc",
    ".toml",
    ".yaml",
    ".yml",
    ".gz",
    ".zip",
    ".pdf",
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".csv",
    ".db",
}


def is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in MAILDIR_SUBDIRS)


def looks_like_mbox(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in {".mbox", ".mbx"}:
        return True
    if suffix == ".eml":  # one message, even with an mbox "From " line in front of it
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(5)
    except OSError:
        return False
    return head == b"From "


def total_bytes(paths: Iterable[Path]) -> int:
    """Roughly how many bytes ``iter_messages`` will deliver, for a progress bar."""
    total = 0
    for file in _files(paths):
        try:
            total += file.stat().st_size
        except OSError:
            continue
    return total


def iter_messages(paths: Iterable[Path], account: str) -> Iterator[RawMessage]:
    """Every message under ``paths`` in a stable order, one at a time (memory stays flat)."""
    for path in paths:
        if not path.exists():
            raise SourceError(f"no such file or directory: {path}", str(path))
    for file in _files(paths):
        if looks_like_mbox(file):
            yield from iter_mbox(file, account)
        else:
            yield RawMessage(data=_read(file), source=str(file), account=account)


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path
        elif is_maildir(path):
            yield from _maildir_files(path)
        elif path.is_dir():
            yield from _tree_files(path)


def _maildir_files(path: Path) -> Iterator[Path]:
    # Maildir names start with the delivery time, so a sort is arrival order.
    for sub in MAILDIR_SUBDIRS:
        yield from sorted(p for p in (path / sub).iterdir() if _wanted(p))
    for child in sorted(path.iterdir()):
        if child.name.startswith(".") and is_maildir(child):  # Maildir++ subfolders
            yield from _maildir_files(child)


def _tree_files(path: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(path):
        dirs.sort()
        here = Path(root)
        if here != path and is_maildir(here):
            dirs[:] = []
            yield from _maildir_files(here)
            continue
        dirs[:] = [d for d in dirs if d != "tmp" or not is_maildir(here)]
        for name in sorted(files):
            file = here / name
            if _wanted(file) and file.suffix.lower() not in SKIP_SUFFIXES:
                yield file


def _wanted(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.name not in SKIP_NAMES


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {file}: {exc.strerror}", str(file)) from None


def iter_mbox(file: Path, account: str) -> Iterator[RawMessage]:
    """Split an mbox on its "From " lines without loading it (mboxrd unescaping)."""
    try:
        handle = file.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot read {file}: {exc.strerror}", str(file)) from None
    with handle:
        for index, data in enumerate(split_mbox(handle), start=1):
            yield RawMessage(data=data, source=f"{file}#{index}", account=account)


def split_mbox(handle: BinaryIO) -> Iterator[bytes]:
    lines: list[bytes] = []
    previous_blank = True
    started = False
    for line in handle:
        if previous_blank and (_MBOX_FROM.match(line) or (not started and line[:5] == b"From ")):
            if started and lines:
                yield _finish(lines)
            lines = []
            started = True
            previous_blank = False
            continue
        previous_blank = line in (b"\n", b"\r\n")
        if not started:
            continue
        if _ESCAPED_FROM.match(line):
            line = line[1:]
        lines.append(line)
    if started and lines:
        yield _finish(lines)


def _finish(lines: list[bytes]) -> bytes:
    # The blank line before the next "From " belongs to the mbox, not to the message.
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    return b"".join(lines)
