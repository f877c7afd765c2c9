"""A message's language, guessed cheaply: a declared Content-Language, else the script used.

Routing rules ask for "Thai enquiries to Somchai"; the script of the subject and body answers
that for the languages whose script is their own, with no model and no dependency.
"""

from __future__ import annotations

import re

from worker.mail.message import InboundMessage

# (first, last code point, language) for scripts used by essentially one language.
_SCRIPTS: tuple[tuple[int, int, str], ...] = (
    (0x0E00, 0x0E7F, "th"),
    (0x3040, 0x30FF, "ja"),  # kana: Japanese even when kanji are mixed in
    (0xAC00, 0xD7AF, "ko"),
    (0x1100, 0x11FF, "ko"),
    (0x0590, 0x05FF, "he"),
    (0x0370, 0x03FF, "el"),
    (0x0980, 0x09FF, "bn"),
    (0x0900, 0x097F, "hi"),
    (0x0B80, 0x0BFF, "ta"),
    (0x0600, 0x06FF, "ar"),
    (0x0400, 0x04FF, "ru"),
    (0x4E00, 0x9FFF, "zh"),  # Han without kana: Chinese
)
_SAMPLE = 2000  # characters looked at: the start of a message says what language it is in
_MIN_SHARE = 0.2  # of the letters, for a script to name the language
# Below U+0370 are Latin and IPA only: text without a later character names no language,
# which one regex search tells without the per-character loop (most mail is like that).
_BEYOND_LATIN = re.compile("[\u0370-\U0010ffff]")


def guess_language(msg: InboundMessage) -> str:
    """An ISO 639-1 code, or '' when nothing says (Latin-script text is not guessed)."""
    declared = msg.header("content-language").split(",")[0].strip().lower()
    if declared:
        return declared.split("-")[0][:8]
    return script_language(f"{msg.subject}\n{msg.text[:_SAMPLE]}")


def script_language(text: str) -> str:
    if _BEYOND_LATIN.search(text) is None:
        return ""
    counts: dict[str, int] = {}
    letters = 0
    for char in text:
        if not char.isalpha():
            continue
        letters += 1
        code = ord(char)
        if code < 0x0370:
            continue
        for first, last, language in _SCRIPTS:
            if first <= code <= last:
                counts[language] = counts.get(language, 0) + 1
                break
    if not letters or not counts:
        return ""
    if counts.get("ja"):  # kana anywhere: Japanese, its kanji counted with it
        counts["ja"] += counts.pop("zh", 0)
    language, count = max(counts.items(), key=lambda item: item[1])
    return language if count / letters >= _MIN_SHARE else ""
