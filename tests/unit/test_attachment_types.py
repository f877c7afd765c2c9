"""The content type of a file attached by hand: from its name, else from its first bytes."""

from __future__ import annotations

import pytest

from worker.mail.filetypes import OCTET_STREAM, content_type


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("quote.pdf", b"anything", "application/pdf"),
        ("QUOTE.PDF", b"anything", "application/pdf"),
        ("photo.png", b"", "image/png"),
        ("scan", b"%PDF-1.7\n...", "application/pdf"),
        ("logo", b"\x89PNG\r\n\x1a\n....", "image/png"),
        ("picture", b"\xff\xd8\xff\xe0", "image/jpeg"),
        ("bundle", b"PK\x03\x04rest", "application/zip"),
        ("notes", "Lieferung nach Köln\n".encode(), "text/plain"),
        # A multi-byte character cut at the end of the sniffed head is still text.
        ("long notes", b"a" * 4095 + "é".encode(), "text/plain"),
        ("blob", b"\x00\x01\x02binary", OCTET_STREAM),
        ("latin1", b"caf\xe9 au lait " * 10, OCTET_STREAM),
        ("empty", b"", OCTET_STREAM),
    ],
)
def test_content_type(name: str, data: bytes, expected: str) -> None:
    assert content_type(name, data) == expected
