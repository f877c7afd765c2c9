"""Charset labels as real mail spells them, mapped to Python codecs; decoding that never raises."""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Sequence

# Labels seen in mail → the Python codec to use. Targets are supersets where the labelled
# charset is routinely written by software that emits the superset (Outlook writes cp874 bytes
# under "windows-874" / "tis-620", cp949 under "ks_c_5601-1987", GBK under "gb2312", ...).
# Keys are compared after _normalize(), so "ISO-8859-11", "iso8859_11" and "iso885911" are one key.
_ALIASES: dict[str, str] = {
    # Thai
    "windows-874": "cp874",
    "x-windows-874": "cp874",
    "cp-874": "cp874",
    "ms874": "cp874",
    "ibm874": "cp874",
    "tis-620": "cp874",
    "tis620": "cp874",
    "tis-620-2533": "cp874",
    "iso-8859-11": "cp874",
    "iso8859-11": "cp874",
    # Korean
    "ks_c_5601-1987": "cp949",
    "ks_c_5601-1989": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "ksc_5601": "cp949",
    "euc-kr": "cp949",
    "x-euc-kr": "cp949",
    "windows-949": "cp949",
    "uhc": "cp949",
    # Simplified Chinese
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "windows-936": "gb18030",
    # Traditional Chinese
    "big5": "cp950",
    "x-x-big5": "cp950",
    "big-5": "cp950",
    "windows-950": "cp950",
    # Japanese
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "ms932": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "x-ms-cp932": "cp932",
    "csshiftjis": "cp932",
    "x-euc-jp": "euc_jp",
    "x-euc": "euc_jp",
    "eucjp": "euc_jp",
    "cseucpkdfmtjapanese": "euc_jp",
    # Cyrillic
    "x-mac-cyrillic": "mac_cyrillic",
    "x-mac-ukrainian": "mac_cyrillic",
    "koi8r": "koi8_r",
    "koi8u": "koi8_u",
    "x-cp1251": "cp1251",
    # Western: mail labelled latin-1 is, in practice, windows-1252 (as in the WHATWG table)
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    # Hebrew/Arabic logical-order variants share the visual-order tables
    "iso-8859-8-i": "iso8859_8",
    "iso-8859-8-e": "iso8859_8",
    "iso-8859-6-i": "iso8859_6",
    "iso-8859-6-e": "iso8859_6",
    # Unicode
    "unicode-1-1-utf-7": "utf_7",
    "x-utf-7": "utf_7",
    "utf7": "utf_7",
    "x-utf-8": "utf_8",
    "utf8": "utf_8",
}

# Declared as ASCII but routinely carrying 8-bit text: treat as "no declaration".
_UNDECLARED = frozenset({"usascii", "ascii", "ansix341968", "us", "646", "iso646us"})

DEFAULT_FALLBACKS: tuple[str, ...] = ("utf-8", "cp1252")

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_SURROGATES_AND_NUL = re.compile("[\ud800-\udfff\x00]")


def _normalize(label: str) -> str:
    """Reduce a label to lower-case alphanumerics, so spelling variants share one key."""
    return _NON_ALNUM.sub("", label.strip().strip("\"'").lower())


_TABLE: dict[str, str] = {_normalize(label): codec for label, codec in _ALIASES.items()}


@functools.lru_cache(maxsize=512)
def codec_for(charset: str | None) -> str | None:
    """The Python codec name for a charset label, or None if unknown, not text, or ASCII.

    ASCII labels give None on purpose: callers then try UTF-8 and windows-1252, which decode
    ASCII identically and also rescue the 8-bit text that is often mislabelled as ASCII.
    """
    if not charset:
        return None
    key = _normalize(charset)
    if not key or key in _UNDECLARED:
        return None
    name = _TABLE.get(key, charset.strip().strip("\"'"))
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a NUL in the label
        return None
    # base64, zlib, rot13 ... are codecs too; a sender must not pick one as a "charset".
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _search(name: str) -> codecs.CodecInfo | None:
    """Codec search hook so the stdlib email package understands the labels in _ALIASES too.

    Python consults it only for names it does not know itself (windows-874, x-mac-cyrillic ...),
    so it adds names and never changes the meaning of an existing one.
    """
    target = _TABLE.get(_normalize(name))
    if target is None:
        return None
    return codecs.lookup(target)


codecs.register(_search)


def clean(text: str) -> str:
    """Replace lone surrogates and NULs with U+FFFD: neither can be stored or printed as UTF-8."""
    if text.isascii() and "\x00" not in text:
        return text
    return _SURROGATES_AND_NUL.sub("\ufffd", text)


@functools.lru_cache(maxsize=128)
def _ascii_compatible(codec: str) -> bool:
    """Whether ASCII bytes mean ASCII text in ``codec``; false for ISO-2022-*, UTF-7, HZ, UTF-16."""
    # Escape sequences of ISO-2022 ("ESC $ B"), UTF-7 ("+AGE-") and HZ ("~{"): ASCII
    # bytes that only an ASCII-compatible codec passes through unchanged.
    probe = b"\x1b$B$3\x1b(B +AGEA- ~{<:~} ok"
    return _try(probe, codec) == probe.decode("ascii")


def _try(data: bytes, codec: str) -> str | None:
    """Strict decode, or None. Any exception counts as failure: some codecs raise oddly."""
    try:
        return data.decode(codec)
    except (LookupError, ValueError):
        return None


def decode(
    data: bytes, charset: str | None = None, fallbacks: Sequence[str | None] = DEFAULT_FALLBACKS
) -> str:
    """Decode bytes from mail; never raises and never returns lone surrogates.

    Valid UTF-8 wins over a declared ASCII-compatible charset: legacy text is practically never
    valid UTF-8 by accident, while UTF-8 under a stale label (x-mac-cyrillic, iso-8859-1) is
    common. Otherwise the declared charset, then the declared charset with replacement
    characters, because one bad byte should not turn a whole Korean or Thai text into
    windows-1252 mojibake. Without a usable declaration: each of ``fallbacks``, then latin-1,
    which accepts any byte.
    """
    declared = codec_for(charset)
    if data.isascii() and (declared is None or _ascii_compatible(declared)):
        return clean(data.decode("ascii"))
    if declared is not None:
        ascii_based = _ascii_compatible(declared)
        for codec in ("utf-8", declared) if ascii_based else (declared, "utf-8"):
            text = _try(data, codec)
            if text is not None:
                return clean(text)
        return clean(data.decode(declared, "replace"))
    for label in fallbacks:
        fallback = codec_for(label)
        if fallback is None:
            continue
        text = _try(data, fallback) if fallback != "utf-8" else _mostly_utf8(data)
        if text is not None:
            return clean(text)
    return clean(data.decode("latin-1"))


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 text, tolerating a few broken bytes, or None if the bytes do not look like UTF-8.

    Mailers truncate multi-byte characters; one bad byte in a Cyrillic name should cost one
    character, not turn the whole name into windows-1252 mojibake. Text in a legacy charset
    yields far more invalid sequences than valid ones, so the ratio tells the two apart.
    """
    text = _try(data, "utf-8")
    if text is not None:
        return text
    text = data.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = sum(1 for char in text if char > "\x7f") - bad
    return text if good >= 2 * bad else None
