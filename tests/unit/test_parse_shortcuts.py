"""parse's shortcuts (plain address fields, plain charsets) agree with the code they skip."""

from __future__ import annotations

import email
import email.utils
from email.message import Message
from email.policy import compat32
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from mailparser.const import ADDRESSES_HEADERS
from mailparser.utils import get_addresses

from tests.corpus import CORPUS
from worker.errors import ParseError
from worker.mail.parse import (
    MAX_ADDRESS_TAIL,
    _bounded_address_text,
    _mailparser_facts,
    _plain_address_field,
    _plain_charset,
    _plain_mailboxes,
    normalize,
    readable,
)


def _mailparser_objects(value: Any) -> bool:
    """What parse asked mail-parser before the shortcut: does this field get a diagnostic?"""
    bounded, notes = _bounded_address_text(readable(str(value)))
    diagnostics: list[dict[str, Any]] = []
    get_addresses(bounded if notes else value, defects=diagnostics, decode_names=True)
    return bool(diagnostics)


def _stdlib_mailboxes(text: str) -> list[tuple[str, str]]:
    return [pair for pair in email.utils.getaddresses([text]) if pair != ("", "")]


def _agrees(value: str) -> None:
    """The shortcut's claims about ``value``, checked against the code it replaces."""
    if _plain_address_field(value):
        assert not _mailparser_objects(value), value
    pairs = _plain_mailboxes(value)
    if pairs is not None:
        assert pairs == _stdlib_mailboxes(value), value


def _corpus_headers() -> list[Message]:
    messages = []
    for path in sorted(CORPUS.rglob("*.eml")):
        try:
            data = normalize(path.read_bytes())
        except ParseError:  # not mail: parse refuses it before any header is read
            continue
        messages.append(email.message_from_bytes(data, policy=compat32))
    return messages


CORPUS_MESSAGES = _corpus_headers()


def test_corpus_address_fields_get_mail_parsers_answer() -> None:
    plain = general = 0
    for message in CORPUS_MESSAGES:
        for name, value in message.items():
            if name.lower() not in ADDRESSES_HEADERS:
                continue
            if isinstance(value, str) and _plain_address_field(value):
                plain += 1
                assert not _mailparser_objects(value), value
            else:
                general += 1
            _agrees(readable(str(value)))
    assert plain > 100 and general > 20  # both ways are exercised


def test_corpus_header_facts_match_asking_mail_parser_for_every_field() -> None:
    for message in CORPUS_MESSAGES:
        expected = any(
            _mailparser_objects(value)
            for name, value in message.items()
            if name.lower() in ADDRESSES_HEADERS
        )
        assert ("AddressHeaderDefect" in _mailparser_facts(message)[0]) == expected


PLAIN = [
    "",
    " ",
    ",",
    " , ,",
    "ann@example.com",
    "Ann <ann@example.com>",
    "Ann Lee<ann.lee@mail.example.com>",
    "<ann@example.com>",
    "  ann@example.com , bob@example.org ,",
    "A. Lee <a.b@c.d>, .Lee. <x@y>",
    "Ann\n Lee <ann@example.com>",
    "Ann\r\n\tLee <ann@example.com>",
    "ann@example.com,\n bob@example.org",
    "x!#$%&'*+/?=^_`{|}~-@y.z",
    "'Ann' <ann@example.com>",
    "Ann\t<ann@example.com>\t",
    "= ? <a@b>",
]
NOT_PLAIN = [
    '"Ann" <ann@example.com>',
    '"Lee, Ann" <ann@example.com>',
    "ann@example.com (Ann)",
    "team: ann@example.com;",
    "undisclosed-recipients:;",
    "a\\@b@example.com",
    "ann@[192.0.2.1]",
    "<@relay.example:ann@example.com>",
    "=?utf-8?q?Ann?= <ann@example.com>",
    "ann=?x?=@example.com",
    "a..b@example.com",
    ".ann@example.com",
    "ann.@example.com",
    "ann@example.com.",
    "ann@.example.com",
    "ann@example.com>",
    "<ann@example.com",
    "Ann <ann@example.com> x",
    "Ann <ann@example.com> <bob@example.org>",
    "Ann <ann@example.com>>",
    "Ann <<ann@example.com>",
    "ann@b@example.com",
    "ann @example.com",
    "ann@ example.com",
    "< ann@example.com>",
    "<ann@example.com >",
    "Ann, Lee <ann@example.com>",
    "Ann",
    "Ann@ <ann@example.com>",
    "Ann\nLee <ann@example.com>",
    "ann@example.com\n",
    "Ann\r Lee <ann@example.com>",
    "Ann\x00 <ann@example.com>",
    "Zoë <zoe@example.com>",
    "zoë@example.com",
    "Ann <ann@exämple.com>",
    "Ann\udce9 <ann@example.com>",
    "Ann; Lee <ann@example.com>",
    "Ann [Sales] <ann@example.com>",
    "Ann (Sales) <ann@example.com>",
    "Ann) <ann@example.com>",
    "Ann <ann@example.com>;",
    "@example.com",
    "ann@",
    "<>",
]


@pytest.mark.parametrize("value", PLAIN)
def test_plain_fields_take_the_shortcut(value: str) -> None:
    assert _plain_address_field(value)
    _agrees(value)
    if "\n" not in value:
        assert _plain_mailboxes(value) == _stdlib_mailboxes(value)


@pytest.mark.parametrize("value", NOT_PLAIN)
def test_other_fields_go_the_general_way(value: str) -> None:
    assert not _plain_address_field(value)
    assert _plain_mailboxes(value) is None or "=?" in value
    _agrees(value)


def test_a_long_field_goes_the_general_way_as_it_is_cut_before_mail_parser_sees_it() -> None:
    # Cut at an "@", the tail's first item is one mail-parser objects to.
    head = ",".join(f"someone{i}@example.com" for i in range(2000))
    value = next(
        v for v in (f"{head},z@{'y' * k}.com" for k in range(30)) if v[-MAX_ADDRESS_TAIL] == "@"
    )
    assert not _plain_address_field(value)
    assert _mailparser_objects(value)


_ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
_atom = st.text(_ATEXT, min_size=1, max_size=6)
_dot_atom = st.lists(_atom, min_size=1, max_size=3).map(".".join)
_addr_spec = st.builds(lambda local, domain: f"{local}@{domain}", _dot_atom, _dot_atom)
_blanks = st.text(" \t", max_size=2)
_phrase = st.text(_ATEXT + ". \t", max_size=12)
_plain_item = st.one_of(
    st.builds(lambda a, b, c: a + b + c, _blanks, _addr_spec, _blanks),
    st.builds(lambda p, a, b: f"{p}<{a}>{b}", _phrase, _addr_spec, _blanks),
    _blanks,
)
# "=?" could start an encoded-word, which mail-parser decodes: such a field is never plain.
_plain_field = (
    st.lists(_plain_item, min_size=1, max_size=4).map(",".join).filter(lambda v: "=?" not in v)
)
# Pieces near the edge of the plain grammar, and the characters that end it.
_PIECES = [
    *"ab.@<>,:;()[]\"\\ \t=?'é\x00",
    "\n ",
    "\n",
    "\r\n\t",
    "\r",
    "\udce9",
    "=?utf-8?q?x?=",
    "=?utf-8?b?QW5u?=",
    "ann@example.com",
    "Ann Lee <ann@example.com>",
    "<ann@example.com>",
    "x.y",
    "g:",
]
_near_field = st.lists(st.sampled_from(_PIECES), max_size=14).map("".join)


@given(_plain_field)
@hypothesis_settings(max_examples=300, deadline=None)
def test_generated_plain_fields_take_the_shortcut_and_agree(value: str) -> None:
    assert _plain_address_field(value)
    _agrees(value)


@given(st.one_of(_near_field, _plain_field.map(lambda v: v.replace(" ", "\n ", 1))))
@hypothesis_settings(max_examples=600, deadline=None)
@example("Ann <ann@example.com>")
@example('"Ann" <ann@example.com>')
def test_generated_fields_near_the_edge_agree(value: str) -> None:
    _agrees(value)


# --- Content-Type charset and file names (_MimeView.of) -------------------------------------


def _stand_in(headers: list[tuple[str, str]]) -> Message:
    """The two-header Message _MimeView.of asks the stdlib."""
    stand_in = Message()
    for name, text in headers:
        stand_in[name] = text
    return stand_in


def _charset_agrees(content_type: str) -> None:
    found = _plain_charset(content_type)
    if found is not None:
        stand_in = _stand_in([("Content-Type", content_type)])
        assert found == stand_in.get_content_charset(), content_type


def _filename_agrees(headers: list[tuple[str, str]]) -> None:
    # _MimeView.of asks for a file name only when one of the headers holds "name".
    if not any("name" in text.lower() for _, text in headers):
        assert _stand_in(headers).get_filename() is None, headers


def test_corpus_content_types_get_the_stdlibs_charset() -> None:
    plain = 0
    for message in CORPUS_MESSAGES:
        for part in message.walk():
            headers = [
                (k, readable(str(v)))
                for k, v in part.raw_items()
                if k.lower() in ("content-type", "content-disposition")
            ]
            content_type = next((t for k, t in headers if k.lower() == "content-type"), None)
            if content_type is not None:
                plain += _plain_charset(content_type) is not None
                _charset_agrees(content_type)
            _filename_agrees(headers)
    assert plain > 50


@pytest.mark.parametrize(
    ("content_type", "charset"),
    [
        ('text/plain; charset="utf-8"', "utf-8"),
        ("text/plain;charset=UTF-8", "utf-8"),
        ("TEXT/HTML ; CHARSET = ISO-8859-1 ;", "iso-8859-1"),
        ("text/plain; charset=Shift_JIS", "shift_jis"),
        ('text/plain; charset="utf-8', None),
        ('text/plain; charset=utf-8"', None),
        ("text/plain; charset*=utf-8''", None),
        ("text/plain; charset*0=utf; charset*1=-8", None),
        ("text/plain; format=flowed; charset=utf-8", None),
        ("text/plain; charset=utf-8; format=flowed", None),
        ("text/plain; charset=utf-8; charset=latin1", None),
        ("charset=utf-8; charset=latin1", None),
        ("text/plain; charſet=utf-8", None),
        ("text/plain; charset=utf\\-8", None),
        ("text/plain; charset=(c)utf-8", None),
        ("text/plain; charset=", None),
        ("text/plain", None),
    ],
)
def test_plain_charset_is_read_only_where_it_is_plain(
    content_type: str, charset: str | None
) -> None:
    assert _plain_charset(content_type) == charset
    _charset_agrees(content_type)


_CT_PIECES = [
    *"tx/;=\"'\\ *()",
    "text/plain",
    "charset",
    "CHARSET",
    "utf-8",
    "iso-8859-1",
    "; ",
    "*0",
    "*1*",
    "name",
    "filename",
    "NAME*=utf-8''a%20b",
    "ſ",
    "\u212a",
]
_content_type = st.lists(st.sampled_from(_CT_PIECES), max_size=12).map("".join)


@given(st.one_of(_content_type, _content_type.map(lambda v: f"text/plain; charset={v}")))
@hypothesis_settings(max_examples=500, deadline=None)
def test_generated_content_types_agree(content_type: str) -> None:
    _charset_agrees(content_type)


@given(_content_type, _content_type)
@hypothesis_settings(max_examples=300, deadline=None)
def test_a_file_name_needs_name_in_a_header(content_type: str, disposition: str) -> None:
    _filename_agrees([("Content-Type", content_type), ("Content-Disposition", disposition)])
