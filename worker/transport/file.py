"""The file transport: each outbound message becomes an .eml file instead of an SMTP send.

For the embedded demo and for trying leadmail without a mail server: the folder shows exactly
what would have been sent. Files are named by a hash of the Message-ID, so sending the same
message again (a retry after an unknown outcome) overwrites the file instead of adding a second
one, and each is written to a temp file, fsynced and renamed, so a reader never sees half a
message.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from worker.transport.smtp import Outcome, RecipientResult, RecipientState, SendResult, one_line


def file_name(message_id: str) -> str:
    """The .eml name of a message: stable for one Message-ID, safe whatever the id holds."""
    bare = message_id.strip().strip("<>")
    return hashlib.sha256(bare.encode("utf-8", "surrogatepass")).hexdigest()[:32] + ".eml"


class FileTransport:
    """Writes messages into ``directory`` (created on first use)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, message_id: str) -> Path:
        return self.directory / file_name(message_id)

    def send(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes, message_id: str
    ) -> SendResult:
        target = self.path_for(message_id)
        temp = self.directory / f".{target.name}.{os.getpid()}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with temp.open("wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            reason = f"cannot write {target}: {one_line(exc.strerror or exc)}"
            return SendResult(Outcome.TEMPORARY, None, reason)
        accepted = RecipientResult(RecipientState.ACCEPTED, 250, f"written to {target.name}")
        return SendResult(
            Outcome.DELIVERED,
            250,
            f"written to {target}",
            {address: accepted for address in recipients},
        )

    def close(self) -> None:
        """Nothing to close; here so both transports can be used alike."""
