"""The content type of a file a person attaches: from its name, else from its first bytes."""

from __future__ import annotations

import mimetypes

OCTET_STREAM = "application/octet-stream"
# Leading bytes of the formats a salesperson attaches most, for a name without an extension.
_MAGIC = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
)


def content_type(name: str, data: bytes) -> str:
    """From the name's extension, else from the first bytes, else octet-stream."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    if guessed:
        return guessed
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    head = data[:4096]
    if head and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the 4096th byte is still text.
            if exc.start < len(head) - 3:
                return OCTET_STREAM
        return "text/plain"
    return OCTET_STREAM
