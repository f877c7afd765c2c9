"""Rule evaluation is bounded: hostile patterns, aliases, nesting and sizes are refused at load
with their line and column, a hostile message cannot make a test slow, and a refused reload
is logged once and keeps the rules in use."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from worker.routing.conditions import Check
from worker.routing.facts import LeadFacts, MessageFacts
from worker.routing.loader import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_NODES,
    Problem,
    RuleFileError,
    load_rules,
    load_rules_file,
)
from worker.routing.patterns import TEXT_LIMIT, PatternError, check_regex, translate
from worker.services.assignment import RuleBook

REPO = Path(__file__).resolve().parents[2]
TEAM = "executives:\n  - id: alice\n  - id: bob\nrules:\n"
ASSIGN = "    assign: {strategy: round_robin, to: [alice]}\n"
LEAD = LeadFacts({"company": "Acme"})


def refused(text: str) -> list[Problem]:
    with pytest.raises(RuleFileError) as caught:
        load_rules(text, "team.yaml")
    return caught.value.problems


def one_problem(text: str) -> Problem:
    found = refused(text)
    assert len(found) == 1, found
    return found[0]


def regex_rule(pattern_yaml: str) -> str:
    return TEAM + f"  - name: a\n    when: {{message: body, regex: {pattern_yaml}}}\n" + ASSIGN


def body_matches(op: str, value: str, body: str) -> bool:
    return Check("message", "body", op, value).evaluate(LEAD, MessageFacts(body=body))[0]


# ------------------------------------------------------------------------- hostile patterns


def test_catastrophic_regex_on_a_long_body_finishes() -> None:
    """`(a+)+$` loads, and a run of 100,000 a's ending in '!' is decided.

    With a backtracking engine this never ends (2**100000 paths); the subprocess's timeout
    turns that hang into a failure instead of a stuck test run.
    """
    script = textwrap.dedent(
        """
        from worker.routing.engine import decide
        from worker.routing.facts import LeadFacts, MessageFacts, RoutingState
        from worker.routing.loader import load_rules
        rules = load_rules('''
        executives: [{id: alice}, {id: bob}]
        rules:
          - name: hostile
            when: {message: body, regex: '(a+)+$'}
            assign: {strategy: round_robin, to: [alice]}
          - name: rest
            assign: {strategy: round_robin, to: [bob]}
        ''')
        when = rules.rules[0].when
        for body in ("a" * 99_999 + "!", "a" * 100_000 + "!", "x aaa"):
            print(when.evaluate(LeadFacts({}), MessageFacts(body=body))[0])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The second body is longer than TEXT_LIMIT: its first 100,000 characters are tested.
    assert done.stdout.split() == ["False", "True", "True"]


@pytest.mark.parametrize(
    ("pattern", "offset", "what"),
    [
        (r"(a+)\1$", 4, r"backreference \1"),
        (r"(?P<w>x)(?P=w)", 8, "backreference (?P=w)"),
        (r"quote(?=s)", 5, "lookahead"),
        (r"quote(?!s)", 5, "negative lookahead"),
        (r"x(?<=a)b", 1, "lookbehind"),
        (r"x(?<!a)b", 1, "lookbehind"),
        (r"(?>ab)c", 0, "atomic group"),
        (r"a++b", 1, "possessive repetition ++"),
        (r"a{2}+b", 1, "possessive repetition {2}+"),
        (r"(a)?(?(1)b|c)", 4, "conditional group"),
        (r"(?x) a b", 2, "the verbose flag"),
        (r"[^\W]", 2, r"\W inside [^...]"),
    ],
)
def test_constructs_re2_lacks_are_refused_at_their_column(
    pattern: str, offset: int, what: str
) -> None:
    problem = one_problem(regex_rule(f"'{pattern}'"))
    quote_column = len("    when: {message: body, regex: ") + 1
    assert (problem.line, problem.column) == (6, quote_column + 1 + offset), problem
    assert f"not supported: {what}" in problem.message
    assert problem.message.endswith("— rule patterns use RE2 syntax")


def test_backreference_message_names_it() -> None:
    problem = one_problem(regex_rule(r"'(a)\1'"))
    assert str(problem) == (
        r"team.yaml:6:38: not supported: backreference \1 — rule patterns use RE2 syntax"
    )


def test_escaped_or_folded_pattern_is_reported_at_the_scalar() -> None:
    text = TEAM + '  - name: a\n    when: {message: body, regex: "\\x28a)\\\\1"}\n' + ASSIGN
    problem = one_problem(text)
    assert (problem.line, problem.column) == (6, 34)
    assert "backreference" in problem.message


def test_re2_syntax_errors_name_the_pattern() -> None:
    problem = one_problem(regex_rule("'a{1001}'"))
    assert "bad regex /a{1001}/" in problem.message
    assert "RE2" in problem.message


@pytest.mark.parametrize(
    "pattern",
    [
        r"\bquote\b",
        r"^re:",
        r"thanks$",
        r"thanks\Z",
        r"(?m)^total: \d+$",
        r"\d{3}-\d{4}",
        r"\w+@\w+",
        r"[\w.-]+@example\.com",
        r"price\s*:\s*\d+",
        r"\S+\s\S+",
        r"\W",
        r"[\W\d]x",
        r"a{,2}b",
        r"a{,}b",
        r"{literal}",
        r"x{",
        r"a(?#a comment)b",
        r"(?u)caf\u00e9",
        r"\N{LATIN SMALL LETTER E WITH ACUTE}",
        r"\101\0",
        r"[\101-\103]",
        r"(?i:QUOTE)(?-i:x)?",
        r"(?s)a.b",
        r"a.b",
        r"colou?r|color",
        r"(?P<n>\d+)",
        r"[]x]",
        r"[^]x]",
        r"\.(pdf|docx?)$",
        r"ใบเสนอราคา",
        r"\d",
        r"^\s*$",
        r"straße",
        r"[\b]",
    ],
)
def test_patterns_keep_the_meaning_python_gave_them(pattern: str) -> None:
    """Each pattern decides as Python's re with IGNORECASE did, on texts where RE2's own
    ASCII classes, $ and \\Z would differ."""
    texts = [
        "Please QUOTE 20 widgets",
        "re: your order",
        "many thanks\n",
        "many thanks\nbye",
        "thanks",
        "total: ๑๒๓\nnext",
        "call 555-1234",
        "call ๕๕๕-๑๒๓๔",
        "ผู้ขาย@ตัวอย่าง",
        "jane.doe@example.com",
        "price\u00a0:\u2003๔๒",
        "a\u3000b",
        "bb",
        "aab",
        "{literal}",
        "x{",
        "ab",
        "café",
        "CAFÉ",
        "ABC\x00",
        "B",
        "quote",
        "a\nb",
        "color",
        "offer.PDF\n",
        "สนใจ ใบเสนอราคา ครับ",
        "\u00a0\u2003\n",
        "STRASSE",
        "STRAẞE",
        "\x08",
        "",
        "]",
        "x]",
        "_x",
    ]
    python = re.compile(pattern, re.IGNORECASE)
    ours = Check("message", "subject", "regex", pattern)
    for text in texts:
        expected = bool(python.search(text))
        got = ours.evaluate(LEAD, MessageFacts(subject=text))[0] if text.strip() else expected
        assert got == expected, (pattern, text)


def test_unicode_classes_match_python_on_every_bmp_character() -> None:
    r"""\d, \w and \s are rewritten into Unicode classes; on the Basic Multilingual Plane
    they agree with Python's re except where the Unicode versions differ."""
    import unicodedata

    from worker.routing.patterns import regex_test

    for escape in ("d", "w", "s"):
        ours = regex_test(f"^\\{escape}$")
        python = re.compile(f"^\\{escape}$")
        differ = [
            c
            for c in map(chr, range(0xD800))
            if bool(ours(c)) != bool(python.search(c)) and unicodedata.category(c) != "Cn"
        ]
        assert len(differ) < 10, (escape, differ[:20])


def test_re2_only_syntax_is_kept_whole() -> None:
    from worker.routing.patterns import regex_test

    assert translate(r"\p{Thai}{3}\x{41}\P{L}") == r"\p{Thai}{3}\x{41}\P{L}"
    assert regex_test(r"^\p{Thai}{4}\x{41}$")("ครับa")  # ค ร ั บ: four code points
    assert not regex_test(r"^\p{Thai}{3}$")("abc")
    assert regex_test(r"[\p{Greek}x]{2}")("αβ")


def test_too_complex_patterns_are_refused() -> None:
    problem = one_problem(regex_rule(r"'\w{300}x'"))
    assert (problem.line, problem.column) == (6, 34)
    assert "too complex" in problem.message and "the limit is 20,000" in problem.message


def test_all_patterns_together_are_capped() -> None:
    rules = "".join(
        f"  - name: r{i}\n    when: {{message: body, regex: '\\w{{14}}{i}'}}\n" + ASSIGN
        for i in range(60)
    )
    found = refused(TEAM + rules)
    assert len(found) == 1, found
    assert "patterns compile to more than 1,000,000 steps together" in found[0].message
    assert (found[0].line - 6) % 3 == 0, found  # at a pattern
    assert found[0].line > 6 + 3 * 40  # about 19,000 steps each: only the fifties cross


def test_translate_rewrites_only_what_differs() -> None:
    assert translate("quote") == "quote"
    assert translate(r"a\Z") == r"a\z"
    assert translate(r"a{,3}") == "a{0,3}"
    assert translate("a$") == r"a(?:$|\n\z)"
    assert translate(r"\(\)\.") == r"\(\)\."
    with pytest.raises(PatternError) as caught:
        check_regex(r"x(a)\1")
    assert caught.value.offset == 4


# ------------------------------------------------------------------------- hostile rule files


def billion_laughs(levels: int = 40) -> str:
    lines = [TEAM + "  - name: a", "    when:", "      all:"]
    lines.append("        - &c0 {field: company, exists: true}")
    for i in range(1, levels):
        lines.append(f"        - &c{i} {{all: [*c{i - 1}, *c{i - 1}, *c{i - 1}]}}")
    return "\n".join(lines) + "\n" + ASSIGN


def test_alias_expansion_is_capped_at_the_alias_that_crosses_it() -> None:
    problem = one_problem(billion_laughs())
    # Each level triples: &c0 to &c8 hold about 64,000 values, &c8 alone 42,645, so the
    # first *c8 in &c9 (line 17) crosses 100,000.
    assert problem.line == 17, problem
    assert problem.column == len("        - &c9 {all: [") + 1, problem
    assert f"more than {MAX_NODES:,} values at alias *c8" in problem.message


def test_a_short_file_of_aliases_that_stays_under_the_cap_loads() -> None:
    rules = load_rules(billion_laughs(levels=8))  # 3**7 checks: fine
    assert rules.rules[0].when is not None


def test_list_of_aliases_to_a_big_list_is_counted_per_use() -> None:
    big = "[" + ", ".join(["x"] * 5_000) + "]"
    uses = ", ".join(["*big"] * 30)
    text = TEAM + f"  - name: a\n    when: {{field: company, in: &big {big}}}\n" + ASSIGN
    text += f"  - name: b\n    when: {{any: [{uses}]}}\n" + ASSIGN
    problem = one_problem(text)
    assert "alias *big" in problem.message
    assert problem.line == 9


def test_deep_flow_nesting_is_refused_at_the_level_that_crosses_the_cap() -> None:
    text = TEAM + "  - name: a\n    when: " + "[" * 10_000 + "]" * 10_000 + "\n" + ASSIGN
    problem = one_problem(text)
    # Three levels are open above `when` (the file, rules, the rule).
    assert (problem.line, problem.column) == (6, len("    when: ") + 1 + MAX_DEPTH - 3)
    assert f"nested deeper than {MAX_DEPTH} levels" in problem.message


def test_deep_flow_conditions_are_refused() -> None:
    text = TEAM + "  - name: a\n    when: " + "{not: " * 10_000 + "x" + "}" * 10_000 + "\n"
    problem = one_problem(text + ASSIGN)
    assert problem.line == 6
    assert "nested deeper" in problem.message


def test_deep_block_nesting_is_refused() -> None:
    text = TEAM + "  - name: a\n    when:\n      " + "- " * 10_000 + "x\n" + ASSIGN
    problem = one_problem(text)
    assert (problem.line, problem.column) == (7, 7 + 2 * (MAX_DEPTH - 3))
    assert "nested deeper" in problem.message
    block = [TEAM + "  - name: a", "    when:"]
    block += [" " * (6 + level) + "not:" for level in range(1_000)]
    problem = one_problem("\n".join(block) + " {field: company, exists: true}\n" + ASSIGN)
    assert (problem.line, problem.column) == (7 + MAX_DEPTH - 3, 6 + MAX_DEPTH - 3 + 1)


def test_unclosed_deep_nesting_is_refused_not_a_recursion_error() -> None:
    problem = one_problem("[" * 10_000)
    assert (problem.line, problem.column) == (1, MAX_DEPTH + 1)


def test_alias_counts_as_deep_as_what_it_names() -> None:
    half = MAX_DEPTH // 2 + 5
    deep = "{not: " * half + "{field: company, exists: true}" + "}" * half
    text = TEAM + f"  - name: a\n    when: &deep {deep}\n" + ASSIGN
    text += "  - name: b\n    when: " + "{not: " * half + "*deep" + "}" * half + "\n" + ASSIGN
    problem = one_problem(text)
    assert problem.line == 9
    assert "alias *deep nests deeper than" in problem.message


def test_nesting_at_the_cap_loads_and_evaluates() -> None:
    depth = MAX_DEPTH - 4  # the file, rules, the rule: three levels; the check: one
    when = "{not: " * depth + "{field: company, exists: true}" + "}" * depth
    rules = load_rules(TEAM + f"  - name: a\n    when: {when}\n" + ASSIGN)
    condition = rules.rules[0].when
    assert condition is not None
    assert condition.evaluate(LEAD, None)[0] is (depth % 2 == 0)


def test_an_oversized_file_is_refused_where_it_crosses_the_limit(tmp_path: Path) -> None:
    line = "# " + "x" * 97 + "\n"  # 100 bytes a line
    text = TEAM + line * (MAX_FILE_BYTES // 100 + 1)
    problem = one_problem(text)
    crossing = MAX_FILE_BYTES - len(TEAM)
    assert (problem.line, problem.column) == (5 + crossing // 100, crossing % 100 + 1)
    assert "1,048,576 bytes" in problem.message
    path = tmp_path / "big.yaml"
    path.write_text(text)
    with pytest.raises(RuleFileError) as caught:
        load_rules_file(path)
    assert [(p.line, p.column) for p in caught.value.problems] == [(problem.line, problem.column)]
    assert caught.value.problems[0].file == str(path)


def test_a_file_just_under_the_limit_loads() -> None:
    text = TEAM + "  - name: a\n" + ASSIGN
    padding = MAX_FILE_BYTES - len(text.encode())
    rules = load_rules(text + "#" * (padding - 1) + "\n")
    assert len(rules.rules) == 1


# ------------------------------------------------------------------------- hostile messages


def test_text_tests_look_at_the_first_text_limit_characters() -> None:
    filler = "lorem ipsum " * (TEXT_LIMIT // 12 + 10)
    assert body_matches("contains", "invoice", "invoice " + filler)
    assert not body_matches("contains", "invoice", filler + " invoice")
    assert not body_matches("regex", r"invoice\s+\d+", filler + " invoice 42")
    assert body_matches("ends_with", "regards", filler + " regards")
    assert body_matches("starts_with", "dear", "Dear " + filler)


def test_blank_and_equality_tests_are_bounded_too() -> None:
    spaces = " " * (TEXT_LIMIT + 10) + "x"
    assert not Check("message", "body", "exists", True).evaluate(LEAD, MessageFacts(body=spaces))[0]
    assert not body_matches("equals", "x", "x" * (TEXT_LIMIT * 3))
    assert body_matches("not_equals", "x", "x" * (TEXT_LIMIT * 3))


def test_thirty_megabyte_body_against_every_text_test() -> None:
    body = ("a" * 999 + "!") * 30_000  # 30 MB
    for op, value in [
        ("regex", "(a+)+$"),
        ("regex", r"(\w+\s?)*x"),
        ("contains", "a" * 500 + "b"),
        ("starts_with", "a" * 2000 + "b"),
        ("ends_with", "b"),
        ("equals", "a"),
        ("in", ["a", "b"]),
    ]:
        check = Check("message", "body", op, tuple(value) if isinstance(value, list) else value)
        assert not check.evaluate(LEAD, MessageFacts(body=body))[0], op


# ------------------------------------------------------------------------- reload


GOOD = TEAM + "  - name: a\n" + ASSIGN
BAD = (
    TEAM + "  - name: a\n    when: {message: body, regex: '(a)\\1'}\n" + ASSIGN + "    colour: x\n"
)


def _touch(path: Path, text: str, tick: int) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + tick * 1_000_000_000))


def test_a_refused_reload_logs_once_and_keeps_the_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rules.yaml"
    _touch(path, GOOD, 0)
    book = RuleBook(path, reload_seconds=0.1)
    book.reload_seconds = 0  # every current() looks at the file
    first = book.load()
    assert first is not None
    caplog.set_level(logging.DEBUG, logger="worker.services.assignment")

    _touch(path, BAD, 1)
    for _ in range(5):
        assert book.current() is first
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(": ", 1)[1] for r in errors] == [
        f"{path}:6:38: not supported: backreference \\1 — rule patterns use RE2 syntax",
        f"{path}:8:5: unknown key 'colour' in a rule; allowed: name, priority, when, assign, "
        "schedule",
    ]
    assert all("\n" not in r.getMessage() and r.exc_info is None for r in caplog.records)

    caplog.clear()
    _touch(path, "[" * 10_000, 2)  # changed again: checked again, still refused, once
    for _ in range(3):
        assert book.current() is first
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert f"{path}:1:{MAX_DEPTH + 1}: lists and mappings nested deeper" in errors[0]

    caplog.clear()
    _touch(path, GOOD.replace("name: a", "name: b"), 3)
    reloaded = book.current()
    assert reloaded is not None and reloaded is not first
    assert reloaded.rules[0].name == "b"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_loader_crash_on_reload_is_one_line_and_keeps_the_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rules.yaml"
    _touch(path, GOOD, 0)
    book = RuleBook(path)
    book.reload_seconds = 0
    first = book.load()

    def crash(_: Path, *declared: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("worker.services.assignment.load_rules_file", crash)
    caplog.set_level(logging.INFO, logger="worker.services.assignment")
    _touch(path, GOOD + "\n", 1)
    for _ in range(3):
        assert book.current() is first
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "internal error: RecursionError: maximum recursion depth exceeded" in (
        errors[0].getMessage()
    )
    assert errors[0].exc_info is None


@pytest.mark.parametrize("op", ["contains", "starts_with", "ends_with"])
def test_literal_tests_decide_as_re_ignorecase_did(op: str) -> None:
    """ASCII text takes a lower-casing path, other text RE2: both as re.IGNORECASE did."""
    from worker.routing.patterns import literal_test

    values = ["acme", "ACME Ltd", ".co.th", "1", "a.b", "(x)", "straße", "café", "ก", "k", "s"]
    texts = [
        "Acme Ltd",
        "acme",
        "x.CO.TH",
        "ACME LTD.",
        "a.b",
        "axb",
        "(X)",
        "STRASSE",
        "Straße",
        "CAFÉ",
        "café au lait",
        "กขค",
        "\u212a",
        "ſ",
        "K",
        "S",
        "",
        "1x1",
    ]
    shapes = {"contains": "{}", "starts_with": r"\A{}", "ends_with": r"{}\Z"}
    for value in values:
        ours = literal_test(op, value)
        python = re.compile(shapes[op].format(re.escape(value)), re.IGNORECASE)
        for text in texts:
            assert ours(text) == bool(python.search(text)), (op, value, text)
