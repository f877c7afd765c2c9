"""Text tests of rules (regex, contains, starts_with, ends_with) on RE2, in linear time.

A rule file is written by a person and a message body by anyone. Python's ``re`` backtracks, so
one pattern such as ``(a+)+$`` against a long run of ``a`` in a hostile body never finishes and
stops intake. RE2 (google-re2) matches in time linear in the text whatever the pattern, so every
text test runs on RE2, and every text test looks at no more than :data:`TEXT_LIMIT` characters
of a fact: even linear work is bounded on a 30 MB body.

Rule patterns were written for Python's ``re`` and keep its meaning where RE2 differs:

- ``\\d``, ``\\w``, ``\\s`` (and ``\\D``, ``\\W``, ``\\S``) are Unicode-aware, as in Python
  (Thai digits are ``\\d``, Thai letters ``\\w``); RE2's are ASCII-only, so they are rewritten
  into Unicode classes.
- ``$`` also matches before a final newline, as in Python (bodies usually end with one);
  ``\\Z`` is the very end (RE2's ``\\z``); ``a{,3}`` means ``a{0,3}``; ``{`` that starts no
  repetition is a literal; ``\\uXXXX``, ``\\UXXXXXXXX``, ``\\N{NAME}`` and octal escapes name
  characters; ``(?#...)`` is a comment; the ``(?u)`` flag is the default and is dropped.
- Case is ignored (Unicode simple case folding), as ``re.IGNORECASE`` did; ``(?-i:...)``
  turns it back on for part of a pattern.

What RE2 cannot do in linear time is refused at load, with its offset in the pattern:
backreferences (``\\1``, ``(?P=name)``), lookahead and lookbehind, atomic groups and possessive
repeats, conditional groups, and the verbose/ASCII/locale flags; so is a pattern that compiles
to more than MAX_PROGRAM steps. RE2-only syntax (``\\p{L}``, ``\\x{41}``, ``\\z``,
``(?<name>...)``, ``[[:alpha:]]``) is accepted, since RE2 is what runs.

Known differences left (a randomised comparison with ``re`` finds no others): ``\\b`` and
``\\B`` are RE2's ASCII word boundaries (RE2 has no Unicode one); Python's special case that
folds the Turkish dotless ı and dotted İ onto i/I is not made; and ``$`` followed by something
that must match the final newline itself (``$\\n``) does not match.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from typing import Any

import re2

TEXT_LIMIT = 100_000
"""Characters of one text fact a test looks at: the first ones (the last for ends_with).
A long sales email is about 20,000 characters; a 30 MB body costs at most this much per test."""

MAX_PROGRAM = 20_000
"""Largest compiled pattern (RE2's program size, in instructions) a rule may use. A match
costs at worst about text length × program size, and memory grows with it. Ordinary
patterns are a few dozen; each Unicode \\w is about 1,350 (a Unicode letter class)."""

_SPACE = (
    r"\t-\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}"
    r"\x{205f}\x{3000}"
)
"""Python's Unicode whitespace (str.isspace), as RE2 class items."""
_WORD = r"\p{L}\p{N}_"
"""Python's Unicode word characters (str.isalnum or _), as RE2 class items."""
_IN_CLASS = {"d": r"\p{Nd}", "D": r"\P{Nd}", "w": _WORD, "s": _SPACE}
_OUTSIDE = {
    "d": r"\p{Nd}",
    "D": r"\P{Nd}",
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
    "Z": r"\z",
}
_NEGATED_IN_CLASS = {"W": f"[^{_WORD}]", "S": f"[^{_SPACE}]"}
_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"
_FLAGS_REFUSED = {
    "x": "the verbose flag (?x); write the pattern without spaces and comments",
    "a": "the ASCII-only flag (?a)",
    "L": "the locale flag (?L)",
}
_RE2_HINT = " — rule patterns use RE2 syntax"

_ANCHOR = re2._re2.RE2.Anchor  # the wrapper's own enum: UNANCHORED, ANCHOR_START, ANCHOR_BOTH

TextTest = Callable[[str], bool]


class PatternError(ValueError):
    """A pattern RE2 cannot run; ``offset`` is where in the pattern (0-based) it goes wrong,
    None when RE2 refused it without saying where."""

    def __init__(self, message: str, pattern: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.pattern = pattern
        self.offset = offset


def regex_test(pattern: str) -> TextTest:
    """A search for ``pattern`` (ignoring case) in the first TEXT_LIMIT characters of a text."""
    return _searcher(_compile(translate(pattern), pattern), _ANCHOR.UNANCHORED, head=True)


def literal_test(op: str, value: str) -> TextTest:
    """contains / starts_with / ends_with ``value``, ignoring case, as a linear-time test.

    ASCII text against an ASCII value (domains, most names and subjects) takes a C-level
    path: lower-casing decides case-insensitive equality of ASCII exactly as RE2 (and
    re.IGNORECASE) do, and is several times cheaper than a call into RE2. Any other text
    goes to RE2.
    """
    if op not in ("contains", "starts_with", "ends_with"):
        raise ValueError(f"not a text operator: {op!r}")
    quoted = re2.escape(value) + (r"\z" if op == "ends_with" else "")
    try:
        compiled = _compile(quoted, value)
    except PatternError:
        message = f"{op}: the value ({len(value):,} characters) is too long or not text"
        raise PatternError(message, value) from None
    anchor = _ANCHOR.ANCHOR_START if op == "starts_with" else _ANCHOR.UNANCHORED
    slow = _searcher(compiled, anchor, head=op != "ends_with")
    if not value.isascii():
        return slow
    lowered = value.lower()
    if op == "contains":

        def contains(text: str) -> bool:
            if not text.isascii():  # O(1): CPython keeps the flag
                return slow(text)
            if len(text) > TEXT_LIMIT:
                text = text[:TEXT_LIMIT]
            return lowered in text.lower()

        return contains
    # ASCII lower-casing keeps lengths, so only the value's length of text is looked at.
    width = len(lowered)
    if op == "starts_with":

        def starts_with(text: str) -> bool:
            if not text.isascii():
                return slow(text)
            return text[:width].lower() == lowered

        return starts_with

    def ends_with(text: str) -> bool:
        if not text.isascii():
            return slow(text)
        return text[-width:].lower() == lowered

    return ends_with


def check_regex(pattern: str) -> int:
    """Raise PatternError if ``pattern`` cannot be a rule's regex; else its program size."""
    size: int = _compile(translate(pattern), pattern).ProgramSize()
    return size


def clip(text: str, head: bool = True) -> str:
    """At most TEXT_LIMIT characters of ``text``: its start, or its end when ``head`` is false."""
    if len(text) <= TEXT_LIMIT:
        return text
    return text[:TEXT_LIMIT] if head else text[-TEXT_LIMIT:]


@functools.lru_cache(maxsize=512)
def _compile(translated: str, pattern: str) -> Any:
    """The RE2 program (immutable, safe to share between threads); a rule file often repeats
    a pattern, and a Check is compiled once when validated and once when built.

    It is the binding's RE2 object (google-re2 is pinned), not the ``re``-like wrapper:
    the wrapper's search() builds a match object with character offsets, about 4 µs a call
    against 0.8 µs for RE2's own Match, and every rule test runs on every new lead."""
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    options.never_capture = True  # tests only ask whether a match exists: faster
    compiled = re2._re2.RE2(translated.encode("utf-8", "surrogatepass"), options)
    if not compiled.ok():
        reason = compiled.error()
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        what, _, fragment = reason.partition(": ")
        if fragment and fragment not in pattern:  # RE2 quotes the rewritten pattern: hide it
            reason = what
        raise PatternError(f"bad regex /{pattern}/: {reason}{_RE2_HINT}", pattern)
    size = compiled.ProgramSize()
    if size > MAX_PROGRAM:
        message = (
            f"bad regex /{pattern}/: too complex ({size:,} steps compiled, the limit is "
            f"{MAX_PROGRAM:,}); use smaller repetition counts"
        )
        raise PatternError(message, pattern)
    return compiled


def _searcher(compiled: Any, anchor: Any, head: bool) -> TextTest:
    match = compiled.Match

    def test(text: str) -> bool:
        if len(text) > TEXT_LIMIT:
            text = text[:TEXT_LIMIT] if head else text[-TEXT_LIMIT:]
        try:
            data = text.encode()
        except UnicodeEncodeError:  # a lone surrogate left by a lax decoder: not a character
            data = text.encode("utf-8", "replace")
        found: bool = match(anchor, data, 0, len(data))[0][0] >= 0
        return found

    return test


# --------------------------------------------------------------------------------------------
# Python re syntax → RE2 syntax with the same meaning.


def translate(pattern: str) -> str:
    """``pattern`` (Python ``re`` syntax) as an RE2 pattern that means the same.

    Raises PatternError at the first construct RE2 lacks. Anything else that is not valid is
    passed on for RE2 to refuse with its own message.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    repeated = False  # the last token was a repetition: a "+" after it would be possessive
    repeat_start = 0
    while i < n:
        c = pattern[i]
        was_repeated, repeated = repeated, False
        if c == "\\":
            piece, i = _escape(pattern, i, in_class=False)
            out.append(piece)
        elif c == "[":
            piece, i = _char_class(pattern, i)
            out.append(piece)
        elif c == "(" and pattern.startswith("(?", i):
            piece, i = _group(pattern, i)
            out.append(piece)
        elif c in "*+?":
            if was_repeated and c == "+":
                what = f"possessive repetition {pattern[repeat_start : i + 1]}"
                _refuse(pattern, repeat_start, what)
            out.append(c)
            if not was_repeated:  # else "?" makes the repetition lazy, and ends it
                repeated, repeat_start = True, i
            i += 1
        elif c == "{":
            piece, end = _braces(pattern, i)
            out.append(piece)
            repeated, repeat_start = end > i + 1, i
            i = end
        elif c == "$":
            out.append(r"(?:$|\n\z)")  # Python's $ also matches before a final newline
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _refuse(pattern: str, offset: int, what: str) -> None:
    raise PatternError(f"not supported: {what}{_RE2_HINT}", pattern, offset)


def _braces(pattern: str, i: int) -> tuple[str, int]:
    """A ``{m,n}`` repetition (normalised: ``{,n}`` is ``{0,n}``), or a literal ``{``."""
    j = i + 1
    n = len(pattern)
    low_end = j
    while low_end < n and pattern[low_end].isascii() and pattern[low_end].isdigit():
        low_end += 1
    low = pattern[j:low_end]
    k = low_end
    comma = k < n and pattern[k] == ","
    high = low
    if comma:
        k += 1
        high_end = k
        while high_end < n and pattern[high_end].isascii() and pattern[high_end].isdigit():
            high_end += 1
        high = pattern[k:high_end]
        k = high_end
    if k >= n or pattern[k] != "}" or (not comma and not low):
        return r"\{", i + 1
    if comma:
        return "{" + (low or "0") + "," + high + "}", k + 1
    return "{" + low + "}", k + 1


def _group(pattern: str, i: int) -> tuple[str, int]:
    """A ``(?...`` group opening: kept, rewritten or refused."""
    rest = pattern[i + 2 : i + 4]
    if rest.startswith(":"):
        return "(?:", i + 3
    if rest.startswith("P<"):
        return "(?P<", i + 4
    if rest.startswith("P="):
        end = pattern.find(")", i)
        shown = pattern[i : end + 1] if end >= 0 else pattern[i:]
        _refuse(pattern, i, f"backreference {shown}")
    if rest.startswith("="):
        _refuse(pattern, i, "lookahead (?=...)")
    if rest.startswith("!"):
        _refuse(pattern, i, "negative lookahead (?!...)")
    if rest.startswith(("<=", "<!")):
        _refuse(pattern, i, f"lookbehind (?{rest}...)")
    if rest.startswith(">"):
        _refuse(pattern, i, "atomic group (?>...)")
    if rest.startswith("("):
        _refuse(pattern, i, "conditional group (?(...)...)")
    if rest.startswith("#"):
        end = pattern.find(")", i)
        return ("", end + 1) if end >= 0 else (pattern[i:], len(pattern))
    if rest.startswith("<"):
        return "(?<", i + 3  # a named group, RE2 style
    j = i + 2
    flags: list[str] = []
    while j < len(pattern) and pattern[j] in "aiLmsuxU-":
        flag = pattern[j]
        if flag in _FLAGS_REFUSED:
            _refuse(pattern, j, _FLAGS_REFUSED[flag])
        if flag != "u":
            flags.append(flag)
        j += 1
    if j < len(pattern) and pattern[j] in ":)":
        kept = "".join(flags)
        if kept in ("", "-"):
            return ("(?:", j + 1) if pattern[j] == ":" else ("", j + 1)
        return f"(?{kept}{pattern[j]}", j + 1
    return "(?", i + 2  # not a group RE2 knows either: let it say why


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """The escape at ``pattern[i]`` (a backslash) in RE2 syntax, and the index after it."""
    if i + 1 >= len(pattern):
        return "\\", i + 1  # RE2 refuses a trailing backslash
    c = pattern[i + 1]
    end = i + 2
    if c == "Q" and not in_class:  # RE2's \Q...\E quoting: copied as it is
        stop = pattern.find("\\E", end)
        stop = len(pattern) if stop < 0 else stop + 2
        return pattern[i:stop], stop
    if c in _OCTAL and (c == "0" or in_class or _is_octal3(pattern, i + 1)):
        digits = c
        while end < len(pattern) and len(digits) < 3 and pattern[end] in _OCTAL:
            digits += pattern[end]
            end += 1
        return _char(int(digits, 8)), end
    if c.isascii() and c.isdigit():
        while end < len(pattern) and len(pattern[i + 1 : end]) < 2 and pattern[end].isdigit():
            end += 1
        _refuse(pattern, i, f"backreference {pattern[i:end]}")
    if c in "uU":
        width = 4 if c == "u" else 8
        digits = pattern[end : end + width]
        if len(digits) == width and all(d in _HEX for d in digits):
            return _char(int(digits, 16)), end + width
        return pattern[i:end], end  # RE2 refuses it, as Python would
    if c in "pPx" and pattern.startswith("{", end):  # RE2's \p{Greek}, \x{41}: copied whole
        close = pattern.find("}", end)
        stop = len(pattern) if close < 0 else close + 1
        return pattern[i:stop], stop
    if c == "N" and pattern.startswith("{", end):
        close = pattern.find("}", end)
        name = pattern[end + 1 : close] if close >= 0 else ""
        try:
            return _char(ord(unicodedata.lookup(name))), close + 1
        except KeyError:
            raise PatternError(
                f"bad regex /{pattern}/: unknown character name {name!r}", pattern, i
            ) from None
    if in_class:
        if c == "b":
            return r"\x{8}", end  # backspace, as in Python
        if c in _IN_CLASS:
            return _IN_CLASS[c], end
    elif c in _OUTSIDE:
        return _OUTSIDE[c], end
    if not c.isascii():
        return c, end  # an escaped non-ASCII character is itself; RE2 refuses the escape
    return pattern[i:end], end


def _is_octal3(pattern: str, j: int) -> bool:
    """Python reads \\ddd (three octal digits) as a character, fewer digits as a group number."""
    return len(pattern) >= j + 3 and all(d in _OCTAL for d in pattern[j : j + 3])


def _char(code: int) -> str:
    return f"\\x{{{code:x}}}"


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """A ``[...]`` set: Python's escapes rewritten; \\W or \\S in it become an alternation."""
    j = i + 1
    negated = pattern.startswith("^", j)
    if negated:
        j += 1
    items: list[str] = []
    extra: list[str] = []
    first = True
    while j < len(pattern):
        c = pattern[j]
        if c == "]" and not first:
            break
        first = False
        if c == "\\":
            if pattern[j + 1 : j + 2] in _NEGATED_IN_CLASS:
                if negated:
                    _refuse(pattern, j, f"{pattern[j : j + 2]} inside [^...]")
                extra.append(_NEGATED_IN_CLASS[pattern[j + 1]])
                j += 2
                continue
            piece, j = _escape(pattern, j, in_class=True)
            items.append(piece)
        elif c == "[" and pattern.startswith("[:", j):  # an RE2 POSIX class: copy it whole
            close = pattern.find(":]", j + 2)
            stop = j + 1 if close < 0 else close + 2
            items.append(pattern[j:stop])
            j = stop
        else:
            items.append(c)
            j += 1
    if j >= len(pattern):  # unterminated: RE2 says "missing ]"
        return pattern[i:], len(pattern)
    body = "".join(items)
    whole = ("[^" if negated else "[") + body + "]"
    if not extra:
        return whole, j + 1
    return "(?:" + "|".join(([whole] if body else []) + extra) + ")", j + 1
