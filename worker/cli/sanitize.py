"""The one sanitiser for everything leadmail prints for a person.

Names, subjects, Message-IDs, file names and reasons come from strangers' mail. Printed raw,
an ESC or a C1 CSI (``\\x9b``) in a From name clears the screen, fakes lines or sets the
window title; a carriage return overwrites what was printed; a bidi override reverses the
rest of a line; a lone surrogate (left by a lenient decode) makes the write itself fail.
Every table, line and log record goes through :func:`printable` (one line) or
:func:`printable_block` (several lines); JSON goes through :func:`json_text`, which keeps the
data exact; CSV cells go through :func:`csv_cell`, which drops such characters.

Pure functions: str in, str out, no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

# What a terminal may act on or that hides/reorders text: C0 controls, DEL and C1 controls
# (Unicode category Cc), the line and paragraph separators, the bidi embeddings, overrides
# and isolates ("Trojan Source"), and lone surrogates. Zero-width joiners and spaces are
# left alone: Thai, Persian, Indic scripts and emoji sequences use them, and they drive
# nothing in a terminal.
_OTHERS = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_LINE = re.compile(f"[\x00-\x1f{_OTHERS}]")
_UNSAFE_BLOCK = re.compile(f"[\x00-\x08\x0b-\x1f{_OTHERS}]")  # keeps tab and newline
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# json.dumps already escapes C0 controls; these it writes raw when ensure_ascii is off.
_JSON_UNSAFE = re.compile(f"[{_OTHERS}]")
_CSV_SPACE = re.compile("[\t\n\x0b\x0c\r\x85\u2028\u2029]+")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """One line for a terminal: every unsafe character, newlines included, shown escaped
    (``"\\x1b"``, ``"\\n"``, ``"\\u202e"``), so it is visible and drives nothing."""
    text = "" if value is None else str(value)
    return _UNSAFE_LINE.sub(_escape, text)


def printable_block(value: object) -> str:
    """Several lines for a terminal: newlines and tabs kept (CRLF becomes LF), every other
    unsafe character shown escaped as in :func:`printable`."""
    text = "" if value is None else str(value)
    return _UNSAFE_BLOCK.sub(_escape, text.replace("\r\n", "\n"))


def csv_cell(value: str) -> str:
    """A CSV cell for a spreadsheet: line breaks and tabs become one space, every other
    unsafe character is dropped."""
    return _UNSAFE_LINE.sub("", _CSV_SPACE.sub(" ", value))


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_text(data: Any) -> str:
    """JSON that is exact and safe on a terminal.

    Non-ASCII stays readable (ensure_ascii off), but the characters json.dumps would then
    write raw (DEL, C1, separators, bidi controls, lone surrogates) are written as ``\\uXXXX``
    escapes: ``json.loads`` gives back exactly the original string. They can only appear
    inside JSON strings, where such an escape is valid.
    """
    return _JSON_UNSAFE.sub(_json_escape, json.dumps(data, ensure_ascii=False, default=str))
