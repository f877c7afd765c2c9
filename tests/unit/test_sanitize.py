"""The one sanitiser: nothing from mail may drive the terminal, JSON stays exact."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.cli.sanitize import csv_cell, json_text, printable, printable_block

# Every character the sanitiser must never let through raw.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
HOSTILE = [
    "\x1b]0;pwned\x07",  # set the window title
    "\x1b[2J",  # clear the screen
    "\r",  # overwrite the line
    "\x9b31m",  # C1 CSI
    "\x1bP+q\x1b\\",  # DCS
    "\x7f",
    "\x85",  # NEL
    "\u2028\u2029",
    "\u202e",  # right-to-left override
    "\u2066\u2069",
    "\x00",
    "\udcff",  # a lone surrogate from a lenient decode
]


@pytest.mark.parametrize("bad", HOSTILE)
def test_printable_escapes_every_hostile_sequence(bad: str) -> None:
    out = printable(f"Jane{bad}Buyer")
    assert UNSAFE.search(out) is None
    assert out.startswith("Jane") and out.endswith("Buyer")
    assert "\n" not in out
    out.encode("utf-8")  # writable on any UTF-8 terminal


def test_printable_shows_what_it_escaped() -> None:
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("x\x9by") == "x\\x9by"
    assert printable("one\ntwo\rthree\tfour") == "one\\ntwo\\rthree\\tfour"
    assert printable("left\u202eright") == "left\\u202eright"
    assert printable("bad\udcffbyte") == "bad\\udcffbyte"


def test_printable_leaves_ordinary_text_alone() -> None:
    for text in (
        "Jane Buyer <jane@acme.example>",
        "สวัสดีครับ ขอใบเสนอราคา",
        "Grüße aus Köln — €200",
        "日本語の件名",
        "שלום",
        "👩‍💻 emoji with a zero-width joiner",
        "[bold red]x[/] is plain text here",
        "C:\\path\\to\\file",
    ):
        assert printable(text) == text


def test_printable_takes_none_and_other_values() -> None:
    assert printable(None) == ""
    assert printable(42) == "42"


def test_printable_block_keeps_lines_and_escapes_the_rest() -> None:
    headers = "From: a\x1b[2J\r\nSubject: b\x07\r\n\tfolded\rover"
    assert printable_block(headers) == "From: a\\x1b[2J\nSubject: b\\x07\n\tfolded\\rover"


def test_csv_cell_strips_controls() -> None:
    assert csv_cell("Jane\x1b]0;pwned\x07 Buyer") == "Jane]0;pwned Buyer"
    assert csv_cell("two\r\nlines\tand\u2028more") == "two lines and more"
    assert csv_cell("x\x9b\u202e\udcffy") == "xy"
    assert csv_cell('สวัสดี, "quoted"') == 'สวัสดี, "quoted"'


@pytest.mark.parametrize("bad", HOSTILE)
def test_json_text_is_exact_and_has_no_raw_controls(bad: str) -> None:
    data = {"name": f"Jane{bad}Buyer", "subject": ["สวัสดี", bad], "n": 1}
    out = json_text(data)
    assert UNSAFE.search(out) is None
    assert json.loads(out) == data
    assert "สวัสดี" in out  # non-ASCII stays readable


@given(st.text())
def test_any_text_prints_safely(text: str) -> None:
    assert UNSAFE.search(printable(text)) is None
    assert UNSAFE.search(printable_block(text).replace("\n", "").replace("\t", "")) is None
    assert UNSAFE.search(csv_cell(text)) is None
    assert json.loads(json_text(text)) == text
    assert UNSAFE.search(json_text(text)) is None


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))))
def test_safe_text_is_unchanged(text: str) -> None:
    text = re.sub("[\u202a-\u202e\u2066-\u2069]", "", text)
    assert printable(text) == text
    assert printable_block(text) == text
