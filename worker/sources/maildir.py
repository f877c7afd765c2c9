"""A watched Maildir: which files appeared since the last look.

A Maildir has no UIDs; a message's file name before the ``:2,`` info part is unique and
stays the same when a mail client moves it from new/ to cur/ or changes its flags, so that
is the key we remember. The folder itself is never changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from worker.errors import SourceError
from worker.mail.message import RawMessage
from worker.sources.local import MAILDIR_SUBDIRS, is_maildir


@dataclass(frozen=True, slots=True)
class MaildirFile:
    key: str
    path: Path


def unique_name(name: str) -> str:
    for separator in (":2,", "!2,", ";2,"):  # ":" on Unix, "!"/";" where ":" is not allowed
        if separator in name:
            return name.split(separator, 1)[0]
    return name


class MaildirWatch:
    """Remembers the files it handed out; ``scan`` returns only the new ones."""

    def __init__(
        self,
        path: Path,
        account: str,
        skip: frozenset[Path] = frozenset(),
        folder: str | None = None,
    ) -> None:
        self.path = path
        self.account = account
        self.folder = folder  # recorded on each message (a Sent folder's, for a replay)
        self.skip = skip  # sub-folders read by a watch of their own (Sent folders)
        self._seen: set[str] = set()

    def check(self) -> None:
        if not is_maildir(self.path):
            raise SourceError(f"{self.path}: not a Maildir (needs cur/ and new/)", str(self.path))

    def scan(self) -> list[MaildirFile]:
        self.check()
        fresh = [f for f in self._files(self.path, "") if f.key not in self._seen]
        # Maildir names start with the delivery time: sorting gives arrival order.
        return sorted(fresh, key=lambda f: f.path.name)

    def _files(self, folder: Path, prefix: str) -> Iterator[MaildirFile]:
        for sub in MAILDIR_SUBDIRS:
            try:
                entries = list((folder / sub).iterdir())
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                yield MaildirFile(prefix + unique_name(entry.name), entry)
        try:
            children = sorted(folder.iterdir())
        except OSError:
            return
        for child in children:
            if child in self.skip:
                continue
            if child.name.startswith(".") and child.name not in (".", "..") and is_maildir(child):
                yield from self._files(child, f"{prefix}{child.name}/")

    def read(self, file: MaildirFile) -> RawMessage | None:
        """The file's bytes, or None when it was moved or deleted since the scan."""
        for candidate in self._candidates(file):
            try:
                data = candidate.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise SourceError(
                    f"cannot read {candidate}: {exc.strerror}", str(candidate)
                ) from None
            return RawMessage(
                data=data, source=str(candidate), account=self.account, folder=self.folder
            )
        return None

    def _candidates(self, file: MaildirFile) -> Iterator[Path]:
        yield file.path
        # A client may have moved it from new/ to cur/ (adding flags) in between.
        base = unique_name(file.path.name)
        folder = file.path.parent.parent
        for sub in MAILDIR_SUBDIRS:
            try:
                for entry in (folder / sub).iterdir():
                    if unique_name(entry.name) == base and entry != file.path:
                        yield entry
            except OSError:
                continue

    def mark(self, key: str) -> None:
        self._seen.add(key)

    def unseen(self, files: list[MaildirFile]) -> int:
        return sum(1 for f in files if f.key not in self._seen)
