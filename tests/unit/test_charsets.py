"""Charset aliases and the never-raising decode."""

from __future__ import annotations

import codecs

import pytest

from worker.mail import charsets

THAI = "ผ้าห่ม สวัสดีครับ"


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("windows-874", "cp874"),
        ("X-Windows-874", "cp874"),
        ("TIS-620", "cp874"),
        ("tis620", "cp874"),
        ("iso-8859-11", "cp874"),
        ("ISO8859-11", "cp874"),
        ("ks_c_5601-1987", "cp949"),
        ("x-mac-cyrillic", "mac-cyrillic"),
        ("gb2312", "gb18030"),
        ("GBK", "gb18030"),
        ("x-sjis", "cp932"),
        ("Shift_JIS", "cp932"),
        ("unicode-1-1-utf-7", "utf-7"),
        ("x-euc-jp", "euc_jp"),
        ("koi8-r", "koi8-r"),
        ('"utf-8"', "utf-8"),
    ],
)
def test_codec_for_maps_mail_labels(label: str, codec: str) -> None:
    assert charsets.codec_for(label) == codecs.lookup(codec).name


@pytest.mark.parametrize(
    "label", [None, "", "us-ascii", "fakescii", "base64", "rot13", "zlib", "x\x00y"]
)
def test_codec_for_refuses_unknown_ascii_and_non_text_codecs(label: str | None) -> None:
    assert charsets.codec_for(label) is None


def test_stdlib_understands_the_new_labels_after_import() -> None:
    # The email package decodes RFC 2231 parameters through codecs.lookup itself.
    assert codecs.lookup("windows-874").name == "cp874"
    assert codecs.lookup("x-mac-cyrillic").name == "mac-cyrillic"
    assert "\u0e1c".encode("cp874").decode("windows-874") == "\u0e1c"


def test_every_alias_target_is_a_real_codec() -> None:
    for label in charsets._ALIASES:
        assert charsets.codec_for(label) is not None, label


def test_decode_thai_windows_874() -> None:
    assert charsets.decode(THAI.encode("cp874"), "windows-874") == THAI


def test_decode_cp874_extras_under_tis_620_label() -> None:
    # Outlook writes windows-874 smart quotes under "tis-620"; Python's tis_620 rejects them.
    data = "“ไทย”".encode("cp874")
    assert charsets.decode(data, "tis-620") == "“ไทย”"


@pytest.mark.parametrize(
    ("text", "codec", "label"),
    [
        ("こんにちは、世界", "iso2022_jp", "iso-2022-jp"),
        ("こんにちは", "cp932", "shift_jis"),
        ("한국말로 하는 것", "cp949", "ks_c_5601-1987"),
        ("똠방각하", "cp949", "euc-kr"),  # 똠 exists only in the cp949 extension
        ("Привет, мир", "koi8_r", "koi8-r"),
        ("Привет, мир", "cp1251", "windows-1251"),
        ("Привет", "mac_cyrillic", "x-mac-cyrillic"),
        ("代开各地增值税发票", "gb18030", "gb2312"),
        ("Hi Mom -☺-!", "utf_7", "unicode-1-1-utf-7"),
    ],
)
def test_decode_declared_charsets(text: str, codec: str, label: str) -> None:
    assert charsets.decode(text.encode(codec), label) == text


def test_seven_bit_charsets_are_decoded_even_though_bytes_are_ascii() -> None:
    data = "テスト".encode("iso2022_jp")
    assert data.isascii()
    assert charsets.decode(data, "ISO-2022-JP") == "テスト"


def test_undeclared_falls_back_to_utf8_then_cp1252() -> None:
    assert charsets.decode("café".encode(), None) == "café"
    assert charsets.decode("café €".encode("cp1252"), None) == "café €"
    assert charsets.decode("café".encode("cp1252"), "us-ascii") == "café"


def test_unknown_charset_is_treated_as_undeclared() -> None:
    assert charsets.decode("naïve".encode(), "fakescii") == "naïve"


def test_mislabelled_utf8_is_rescued_when_the_declared_charset_fails() -> None:
    assert charsets.decode("Юникод".encode(), "iso-2022-jp") == "Юникод"


def test_one_broken_byte_costs_one_character() -> None:
    broken = "Юникод запрещен".encode() + b"\xf1"
    assert charsets.decode(broken, None) == "Юникод запрещен\ufffd"
    assert charsets.decode(broken, "utf-8") == "Юникод запрещен\ufffd"


def test_fallbacks_are_tried_in_order() -> None:
    data = "日本語".encode("cp932")
    assert charsets.decode(data, None, fallbacks=("utf-8", "shift_jis")) == "日本語"


def test_decode_never_raises_and_returns_storable_text() -> None:
    for data in (bytes(range(256)), b"\xff\xfe\x00\xd8", b"\x1b$B\xff"):
        for label in (None, "utf-8", "utf-16", "iso-2022-jp", "base64", "bogus"):
            text = charsets.decode(data, label)
            text.encode("utf-8")  # no lone surrogates
            assert "\x00" not in text


def test_clean_replaces_surrogates_and_nul() -> None:
    assert charsets.clean("a\udcffb\x00c") == "a\ufffdb\ufffdc"
    assert charsets.clean("plain") == "plain"
