"""Conditions of a rule's ``when``: a small immutable tree that evaluates to (matched, reasons).

Leaves (:class:`Check`) test one fact of the lead or the message with one operator; ``AllOf``,
``AnyOf`` and ``Not`` combine them. Everything costly happens when a Check is built, at load:
the regex is compiled, the expected values are normalised and every reason a trace can show is
formatted. Evaluation then only fetches a fact and compares, which keeps a decision over a
100-rule file in the tens of microseconds.

Evaluation is bounded whatever the message holds: text tests run on RE2 in linear time
(worker/routing/patterns.py), and every test looks at no more than ``TEXT_LIMIT`` (100,000)
characters of a text fact — its start, or its end for ``ends_with`` — so a 30 MB body costs
no more than a long email. The loader caps the size of the condition tree.
"""

from __future__ import annotations

import difflib
import functools
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from worker.routing import facts
from worker.routing.facts import LeadFacts, MessageFacts
from worker.routing.patterns import (
    TEXT_LIMIT,
    PatternError,
    check_regex,
    clip,
    literal_test,
    regex_test,
)

Outcome = tuple[bool, tuple[str, ...]]
"""Whether a condition held, and the human-readable evidence either way."""

Scalar = str | int | float | bool
Tester = Callable[["LeadFacts", "MessageFacts | None"], Outcome]

LEAD_FIELDS = frozenset(facts.LEAD_FIELDS)
"""The names a rule's ``field:`` may use besides custom.<key>: routing/facts.py defines them."""
MESSAGE_FACTS = facts.MESSAGE_FACTS
BOOLEAN_FACTS = frozenset({"is_organization", "has_attachment"})
"""Facts that are true/false: only exists, equals and not_equals make sense on them."""

CUSTOM_PREFIX = "custom."
KINDS = ("field", "message", "header")
OPS = (
    "exists",
    "equals",
    "not_equals",
    "in",
    "contains",
    "regex",
    "starts_with",
    "ends_with",
    "gt",
    "gte",
    "lt",
    "lte",
)
TEXT_OPS = frozenset({"contains", "regex", "starts_with", "ends_with"})
NUMBER_OPS: Mapping[str, tuple[str, Callable[[float, float], bool]]] = {
    "gt": (">", operator.gt),
    "gte": (">=", operator.ge),
    "lt": ("<", operator.lt),
    "lte": ("<=", operator.le),
}

CUSTOM_TYPES = ("text", "int", "decimal", "date", "bool", "choice")
NUMERIC_TYPES = frozenset({"int", "decimal"})
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

NO_MESSAGE: Outcome = (False, ("no message",))
_MEMO_LIMIT = 256
_FEW = 16  # items an AllOf joins reasons for by adding tuples (cheapest when few)
ALWAYS: Outcome = (True, ())


class Condition:
    """Base of the condition tree; subclasses are frozen, hashable dataclasses.

    ``test`` is the compiled form, built with the node: a closure over its children's
    closures, so deciding costs about one Python call per node.
    """

    __slots__ = ()
    test: Tester

    def evaluate(self, lead: LeadFacts, message: MessageFacts | None) -> Outcome:
        """(matched, reasons) for this lead and message (None: message tests fail)."""
        return self.test(lead, message)


@dataclass(frozen=True, slots=True)
class AllOf(Condition):
    """Holds when every item holds; fails with the first failing item's reasons."""

    items: tuple[Condition, ...]
    test: Tester = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        tests = tuple(item.test for item in self.items)

        def test(lead: LeadFacts, message: MessageFacts | None) -> Outcome:
            reasons: tuple[str, ...] = ()
            for item_test in tests:
                outcome = item_test(lead, message)
                if not outcome[0]:
                    return outcome
                reasons += outcome[1]
            return True, reasons

        def many(lead: LeadFacts, message: MessageFacts | None) -> Outcome:
            collected: list[str] = []  # tuple + tuple per item would be quadratic in items
            for item_test in tests:
                outcome = item_test(lead, message)
                if not outcome[0]:
                    return outcome
                collected += outcome[1]
            return True, tuple(collected)

        object.__setattr__(self, "test", test if len(tests) <= _FEW else many)


@dataclass(frozen=True, slots=True)
class AnyOf(Condition):
    """Holds when some item holds (with that item's reasons); else lists why each failed."""

    items: tuple[Condition, ...]
    test: Tester = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        tests = tuple(item.test for item in self.items)
        # Children's outcomes are mostly prebuilt, so few failure combinations occur: memoise
        # the joined text rather than rebuilding it on every evaluation.
        failures: dict[tuple[Outcome, ...], Outcome] = {}

        def test(lead: LeadFacts, message: MessageFacts | None) -> Outcome:
            failed: list[Outcome] = []
            for item_test in tests:
                outcome = item_test(lead, message)
                if outcome[0]:
                    return outcome
                failed.append(outcome)
            key = tuple(failed)
            result = failures.get(key)
            if result is None:
                text = "; ".join(", ".join(why) for _, why in failed)
                result = (False, (f"none of: {text}",))
                if len(failures) < _MEMO_LIMIT:
                    failures[key] = result
            return result

        object.__setattr__(self, "test", test)


@dataclass(frozen=True, slots=True)
class Not(Condition):
    """Inverts its item; the item's own evidence explains the result either way."""

    item: Condition
    test: Tester = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        item_test = self.item.test

        def test(lead: LeadFacts, message: MessageFacts | None) -> Outcome:
            ok, why = item_test(lead, message)
            return not ok, why

        object.__setattr__(self, "test", test)


@dataclass(frozen=True, slots=True)
class Check(Condition):
    """One test: ``kind`` is field/message/header, ``name`` the fact, ``op`` one of OPS.

    Text comparisons ignore case; on a list-valued fact (to, cc, attachment names, a repeated
    header) a test holds when any element passes. A missing or empty fact fails every test
    except ``exists: false`` and ``not_equals``. Building a Check validates it (ValueError).
    """

    kind: str
    name: str
    op: str
    value: Scalar | tuple[Scalar, ...]
    test: Tester = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.value, list):
            object.__setattr__(self, "value", tuple(self.value))
        problem = subject_problem(self.kind, self.name) or value_problem(
            self.kind, self.name, self.op, self.value
        )
        if problem:
            raise ValueError(problem)
        label = f"header {self.name}" if self.kind == "header" else self.name
        object.__setattr__(self, "test", _compile(self.kind, self.name, label, self.op, self.value))


# --------------------------------------------------------------------------------------------
# Validation, shared by the loader (which knows where in the file) and Check (which raises).


def subject_problem(kind: str, name: str) -> str | None:
    """Why ``{kind: name}`` names no fact, or None."""
    if kind == "field":
        if name.startswith(CUSTOM_PREFIX):
            return None if name[len(CUSTOM_PREFIX) :] else "custom fields are named custom.<key>"
        if name not in LEAD_FIELDS:
            return f"unknown field {name!r}{suggest(name, LEAD_FIELDS)}; fields are " + (
                ", ".join(sorted(LEAD_FIELDS)) + " and custom.<key>"
            )
        return None
    if kind == "message":
        if name not in MESSAGE_FACTS:
            return f"unknown message fact {name!r}{suggest(name, MESSAGE_FACTS)}; facts are " + (
                ", ".join(sorted(MESSAGE_FACTS))
            )
        return None
    if kind == "header":
        if not name or ":" in name or any(c.isspace() or not c.isprintable() for c in name):
            return f"bad header name {name!r}"
        return None
    return f"unknown condition kind {kind!r}; use field, message or header"


def value_problem(kind: str, name: str, op: str, value: object) -> str | None:
    """Why ``value`` cannot be the operand of ``op`` on this fact, or None."""
    if op not in OPS:
        return f"unknown operator {op!r}{suggest(op, OPS)}"
    if op == "exists":
        return (
            None if isinstance(value, bool) else f"exists takes true or false, not {kind_of(value)}"
        )
    if kind != "header" and name in BOOLEAN_FACTS:
        if op not in ("equals", "not_equals"):
            return f"{name} is true or false: use exists, equals or not_equals"
        return None if isinstance(value, bool) else f"{op} on {name} takes true or false"
    if op in ("equals", "not_equals"):
        return _scalar_problem(op, value)
    if op == "in":
        if not isinstance(value, list | tuple):
            return f"in takes a list, not {kind_of(value)}"
        if not value:
            return "in needs at least one value"
        return next((p for p in (_scalar_problem("in", v) for v in value) if p), None)
    if op in TEXT_OPS:
        if not isinstance(value, str) or not value:
            return f"{op} takes a non-empty string, not {kind_of(value)}"
        if op == "regex":
            try:
                check_regex(value)
            except PatternError as error:
                return str(error)
        return None
    if isinstance(value, bool) or _finite(value) is None:
        return f"{op} takes a number, not {kind_of(value)}"
    if (kind == "field" and not name.startswith(CUSTOM_PREFIX)) or kind == "message":
        return f"{op} compares numbers; {name} is text (use it on custom.<key> fields or headers)"
    return None


@dataclass(frozen=True, slots=True)
class DeclaredField:
    """A custom field the config declares ([[leads.custom_fields]]): its type and choices.

    Given to the loader, it turns a typo in ``custom.NAME`` or a comparison that can never
    hold (``gt`` on a text field, a choice that is not one) into an error at load instead of
    a rule that silently never matches.
    """

    type: str
    choices: tuple[str, ...] = ()


def custom_name_problem(name: str, declared: Mapping[str, DeclaredField]) -> str | None:
    """Why ``custom.KEY`` names no declared custom field, or None."""
    key = name[len(CUSTOM_PREFIX) :]
    if key in declared:
        return None
    names = ", ".join(sorted(declared))
    return f"unknown custom field {key!r}{suggest(key, declared)}; declared: {names}"


def custom_value_problem(name: str, op: str, value: object, declared: DeclaredField) -> str | None:
    """Why ``op``/``value`` cannot hold for a lead's value of this declared field, or None.

    Called after ``value_problem`` accepted the operand's shape; this checks it against the
    field's type: numbers for int/decimal, true/false for bool, ISO dates, known choices.
    """
    kind = declared.type
    what = f"{name} is {'an' if kind == 'int' else 'a'} {kind} field"
    if op == "exists":
        return None
    if op in NUMBER_OPS:
        return None if kind in NUMERIC_TYPES else f"{op} compares numbers; {what}"
    if kind == "bool":
        if op not in ("equals", "not_equals"):
            return f"{what}: use exists, equals or not_equals"
        return None if isinstance(value, bool) else f"{what}: {op} takes true or false"
    if op in TEXT_OPS:
        return None
    for item in value if isinstance(value, tuple | list) else (value,):
        problem = _declared_item_problem(what, op, item, declared)
        if problem:
            return problem
    return None


def _declared_item_problem(what: str, op: str, item: object, declared: DeclaredField) -> str | None:
    kind = declared.type
    if kind in NUMERIC_TYPES:
        number = _number(item)
        if number is None:
            return f"{what}: {op} takes a number, not {kind_of(item)}"
        if kind == "int" and not number.is_integer():
            return f"{what}: {op} takes a whole number, not {kind_of(item)}"
    elif kind == "date":
        if not isinstance(item, str) or not _ISO_DATE.fullmatch(item.strip()):
            return f"{what}: {op} takes a quoted date like '2026-12-20', not {kind_of(item)}"
        try:
            date.fromisoformat(item.strip())
        except ValueError:
            return f"{what}: {item!r} is not a date"
    elif kind == "choice":
        choices = {c.casefold() for c in declared.choices}
        if not isinstance(item, str) or item.strip().casefold() not in choices:
            shown = item if isinstance(item, str) else _text(item)
            return (
                f"{what}: {shown!r} is not one of its choices{suggest(shown, declared.choices)}"
                f" ({', '.join(declared.choices)})"
            )
    return None


def _scalar_problem(op: str, value: object) -> str | None:
    if isinstance(value, str | bool):
        return None
    if isinstance(value, int | float):
        return None if _finite(value) is not None else f"{op} takes a finite number"
    hint = " (quote dates)" if isinstance(value, date) else ""
    return f"{op} takes a string, number or true/false, not {kind_of(value)}{hint}"


def kind_of(value: object) -> str:
    """A value's YAML-level type, for messages: 'a string', 'a list', ..."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, date):
        return f"a date ({value.isoformat()})"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def suggest(word: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close option exists: typos are the usual mistake."""
    close = difflib.get_close_matches(word, sorted(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------------------------
# Compilation: getters, matchers and reason text, built once per Check.


def show(value: object) -> str:
    """A value as a trace shows it: strings quoted, booleans as YAML spells them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _reasons(label: str, op: str, value: object) -> tuple[str, str]:
    """(reason when the test holds, reason when it fails on a present value)."""
    if op == "exists":
        yes, no = f"{label} exists", f"{label}: no value"
        return (yes, no) if value else (no, yes)
    shown = show(value)
    if op == "equals":
        return f"{label} equals {shown}", f"{label} does not equal {shown}"
    if op == "not_equals":
        return f"{label} does not equal {shown}", f"{label} equals {shown}"
    if op == "in":
        return f"{label} in {shown}", f"{label} not in {shown}"
    if op == "regex":
        return f"{label} matches /{value}/", f"{label} does not match /{value}/"
    if op in NUMBER_OPS:
        symbol = NUMBER_OPS[op][0]
        return f"{label} {symbol} {shown}", f"{label} is not {symbol} {shown}"
    verb, negated = {
        "contains": ("contains", "does not contain"),
        "starts_with": ("starts with", "does not start with"),
        "ends_with": ("ends with", "does not end with"),
    }[op]
    return f"{label} {verb} {shown}", f"{label} {negated} {shown}"


@functools.lru_cache(maxsize=256)
def lead_getter(name: str) -> Callable[[Mapping[str, object]], object]:
    """Reads lead field ``name`` (or ``custom.<key>``) from LeadFacts.fields, for by_field."""
    if name.startswith(CUSTOM_PREFIX):
        custom_key = name[len(CUSTOM_PREFIX) :]

        def custom(fields: Mapping[str, object]) -> object:
            values = fields.get("custom")
            if values.__class__ is dict:  # the usual case, without an ABC isinstance
                return values.get(custom_key)
            return values.get(custom_key) if isinstance(values, Mapping) else None

        return custom
    if name == "email_domain":
        return _email_domain
    return operator.methodcaller("get", name)


def present(value: object) -> tuple[object, ...]:
    """The present items of a fact (None, '' and whitespace dropped), as conditions see them."""
    return _items(value)


def _email_domain(fields: Mapping[str, object]) -> object:
    """The stored domain, else the part of the email after @: callers need not fill both."""
    domain = fields.get("email_domain")
    if domain:
        return domain
    email = fields.get("email")
    if isinstance(email, str) and "@" in email:
        return email.rpartition("@")[2]
    return None


_FROM_LEAD, _FROM_MESSAGE, _FROM_HEADERS = 0, 1, 2


def _fetcher(source: int, name: str) -> Callable[[Any], object]:
    """Reads the fact from lead.fields, from MessageFacts, or from its headers (lower-case)."""
    if source == _FROM_LEAD:
        return lead_getter(name)
    if source == _FROM_MESSAGE:
        return operator.attrgetter(name)
    return operator.methodcaller("get", name.lower())


def _compile(kind: str, name: str, label: str, op: str, value: object) -> Tester:
    """One Check as a single closure: fetch the fact, compare, return a prebuilt outcome.

    Fetching is inlined (not a separate getter closure) and a plain string, the usual fact,
    takes a fast path: this function body is what runs most often when deciding.
    """
    source = {"field": _FROM_LEAD, "message": _FROM_MESSAGE}.get(kind, _FROM_HEADERS)
    get = _fetcher(source, name)
    passed, failed = _reasons(label, op, value)
    on_hit: Outcome = (True, (passed,))
    on_miss: Outcome = (False, (failed,))
    missing: Outcome = (False, (f"{label}: no value",))

    if op == "exists":
        if_present, if_absent = (on_hit, on_miss) if value else (on_miss, on_hit)

        def exists(lead: LeadFacts, message: MessageFacts | None) -> Outcome:
            if source == _FROM_LEAD:
                raw = get(lead.fields)
            elif message is None:
                return NO_MESSAGE
            else:
                raw = get(message if source == _FROM_MESSAGE else message.headers)
            if raw.__class__ is str:
                if len(raw) > TEXT_LIMIT:
                    raw = raw[:TEXT_LIMIT]
                return if_absent if not raw or raw.isspace() else if_present
            return if_present if _items(raw) else if_absent

        return exists

    if op == "not_equals":
        # Holds unless some item equals: a missing value does not equal anything.
        on_hit, on_miss = (False, (failed,)), (True, (passed,))
        missing = (True, (f"{label}: no value",))
    one_text, fold, one = _predicates(op, value)
    head = op != "ends_with"
    limit = TEXT_LIMIT

    def test(lead: LeadFacts, message: MessageFacts | None) -> Outcome:
        if source == _FROM_LEAD:
            raw = get(lead.fields)
        elif message is None:
            return NO_MESSAGE
        else:
            raw = get(message if source == _FROM_MESSAGE else message.headers)
        if raw.__class__ is str:
            if len(raw) > limit:  # bounded work on any body: see TEXT_LIMIT
                raw = clip(raw, head)
            if not raw or raw.isspace():
                return missing
            return on_hit if one_text(raw.casefold() if fold else raw) else on_miss
        if raw.__class__ is tuple or raw.__class__ is list:
            seen = False
            for item in raw:
                if item is None or (item.__class__ is str and (not item or item.isspace())):
                    continue
                if one(item):
                    return on_hit
                seen = True
            return on_miss if seen else missing
        items = _items(raw)
        if not items:
            return missing
        for item in items:
            if one(item):
                return on_hit
        return on_miss

    return test


TextTest = Callable[[str], object]
"""A truthy/falsy test of one text item: C-level where possible (an RE2 match or
frozenset.__contains__), since it runs for every rule on every lead."""


def _predicates(op: str, value: object) -> tuple[TextTest, bool, Callable[[object], bool]]:
    """(test of a string item, whether it wants the text casefolded, test of any item)."""
    if op in ("equals", "not_equals", "in"):
        return _equality(value if isinstance(value, tuple) else (value,))
    if op in NUMBER_OPS:
        assert isinstance(value, int | float)
        compare, limit = NUMBER_OPS[op][1], float(value)  # finite: checked at load

        def number(item: object) -> bool:
            n = _number(item)
            return n is not None and compare(n, limit)

        return number, False, number
    assert isinstance(value, str)
    # RE2, linear in the text, and each test clips the text to TEXT_LIMIT itself.
    one_text: TextTest = regex_test(value) if op == "regex" else literal_test(op, value)

    def one(item: object) -> bool:
        return bool(one_text(_text(item)))

    return one_text, False, one


def _equality(expected: tuple[object, ...]) -> tuple[TextTest, bool, Callable[[object], bool]]:
    """Equality with any expected value: text ignoring case, numbers by value, booleans as is.

    Text that reads as a number equals that number, and "true"/"false" equal the booleans,
    since custom fields from web forms arrive as text.
    """
    texts = frozenset(
        ("true" if v else "false") if isinstance(v, bool) else str(v).casefold() for v in expected
    )
    numbers = frozenset(
        n for v in expected if not isinstance(v, bool) and (n := _finite(v)) is not None
    )
    booleans = frozenset(v for v in expected if isinstance(v, bool))

    def folded_text(folded: str) -> bool:
        return folded in texts or _number(folded) in numbers

    one_text: TextTest = folded_text if numbers else texts.__contains__

    def one(item: object) -> bool:
        if isinstance(item, str):
            if len(item) > TEXT_LIMIT:
                item = item[:TEXT_LIMIT]
            return bool(one_text(item.casefold()))
        if isinstance(item, bool):
            return item in booleans or ("true" if item else "false") in texts
        if isinstance(item, int | float):
            return _finite(item) in numbers or str(item) in texts
        return str(item).casefold() in texts

    return one_text, True, one


def _items(value: object) -> tuple[object, ...]:
    """The fact as a tuple of present values: None, '' and whitespace count as missing."""
    if isinstance(value, str):
        return (value,) if value and not value.isspace() else ()
    if value is None:
        return ()
    if isinstance(value, tuple | list | set | frozenset):
        return tuple(v for v in value if v is not None and not (isinstance(v, str) and _blank(v)))
    return (value,)


def _blank(text: str) -> bool:
    return not text or text.isspace()


def _text(item: object) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, bool):
        return "true" if item else "false"
    return str(item)


def _number(item: object) -> float | None:
    """A fact item as a number: numbers, and text that reads as one; never booleans."""
    if isinstance(item, bool):
        return None
    if isinstance(item, str):
        try:
            return _finite(float(clip(item)))
        except ValueError:
            return None
    return _finite(item)


def _finite(value: object) -> float | None:
    """``value`` as a finite float, or None (not a number, NaN, infinite, or too large)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None
