"""Load a rule file into a RuleSet, reporting every problem with its line and column.

The YAML is composed (``yaml.compose`` with SafeLoader) rather than loaded, so every key and
value keeps its position; scalars are then built with PyYAML's SafeConstructor, which refuses
any tag that could run code. The whole file is checked before anything is raised, so one run
shows every mistake: unknown keys, executives that do not exist, bad regexes, wrong types.

A rule file is bounded before it is believed, so no file can hang or crash the worker (real
files are a few kilobytes, a few thousand values and about ten levels deep):

- ``MAX_FILE_BYTES`` (1 MiB): a larger file is refused at the line where it crosses the limit.
- ``MAX_DEPTH`` (100): lists and mappings nested deeper are refused at the one that crosses
  it, while composing and before descending into it, so no input reaches Python's recursion
  limit (the composer, the checks below and the condition tree all recurse per level). An
  alias counts as deep as the node it names, at the place it is used.
- ``MAX_NODES`` (100,000): the values of the file after alias expansion, counted while
  composing, each alias as many times as it is used. A short file of aliases of aliases
  ("billion laughs") would otherwise make a condition tree of billions of checks, evaluated
  for every lead; it is refused at the alias that crosses the limit.
- ``MAX_PATTERN_STEPS`` (1,000,000): the compiled size of all regexes together (each one is
  capped at patterns.MAX_PROGRAM, 20,000), which bounds the memory of the compiled rules and
  the work of one decision; a real file's patterns come to a few thousand.

Rule patterns (``regex``) are RE2 patterns with Python's meaning kept (worker/routing/
patterns.py): constructs that cannot run in linear time (backreferences, lookaround,
possessive repeats, ...) are refused at their column in the pattern.
"""

from __future__ import annotations

import difflib
import functools
import pathlib
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import cast

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent, Event
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from worker.errors import RuleError
from worker.routing.conditions import (
    CUSTOM_PREFIX,
    KINDS,
    OPS,
    AllOf,
    AnyOf,
    Check,
    Condition,
    DeclaredField,
    Not,
    Scalar,
    custom_name_problem,
    custom_value_problem,
    kind_of,
    subject_problem,
    suggest,
    value_problem,
)
from worker.routing.patterns import PatternError, check_regex
from worker.routing.schema import (
    DAY_NAMES,
    STRATEGIES,
    Assign,
    DateRange,
    Executive,
    Rule,
    RuleSet,
    Schedule,
    day_number,
    parse_hours,
)

TOP_KEYS = ("timezone", "reassign_unavailable", "executives", "rules")
EXECUTIVE_KEYS = ("id", "name", "email", "active", "away", "capacity", "weight", "timezone")
AWAY_KEYS = ("from", "to")
RULE_KEYS = ("name", "priority", "when", "assign", "schedule")
ASSIGN_KEYS = ("strategy", "to", "field", "map")
SCHEDULE_KEYS = ("days", "hours", "timezone")
COMBINATORS = ("all", "any", "not")
CONDITION_KEYS = (*COMBINATORS, *KINDS, *OPS)
NEEDS_TO = frozenset({"round_robin", "load_balancing", "weighted"})

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 100
MAX_NODES = 100_000
MAX_PATTERN_STEPS = 1_000_000


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in a rule file, at a 1-based line and column."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class RuleFileError(RuleError):
    """A rule file is invalid; ``problems`` lists every mistake found, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(
            "\n".join(str(p) for p in self.problems),
            value=self.problems[0].file if self.problems else None,
        )


CustomFields = Mapping[str, DeclaredField]
"""The custom fields the config declares, by name: ``custom.NAME`` in a rule must be one."""


def load_rules_file(path: pathlib.Path, custom_fields: CustomFields | None = None) -> RuleSet:
    """Read and load ``path``; a missing or unreadable file is a problem at 1:1 like any other.

    At most MAX_FILE_BYTES + 1 bytes are read, so even a device or a huge file costs little.
    ``custom_fields``: see ``load_rules``.
    """
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise RuleFileError([Problem(str(path), 1, 1, "no such rule file")]) from None
    except OSError as error:
        message = f"cannot read the rule file: {error.strerror or error}"
        raise RuleFileError([Problem(str(path), 1, 1, message)]) from None
    if len(data) > MAX_FILE_BYTES:
        head = data[:MAX_FILE_BYTES].decode("utf-8", "ignore")
        raise RuleFileError([_too_big(str(path), head)])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        message = f"not UTF-8 text (byte {error.start}: {error.reason})"
        raise RuleFileError([Problem(str(path), 1, 1, message)]) from None
    return load_rules(text, str(path), custom_fields)


def _too_big(source: str, head: str) -> Problem:
    """The file-size problem, at the line and column where the limit is crossed."""
    line = head.count("\n") + 1
    column = len(head) - (head.rfind("\n") + 1) + 1
    message = (
        f"the rule file is larger than {MAX_FILE_BYTES:,} bytes (1 MiB), the limit; "
        "real rule files are a few kilobytes"
    )
    return Problem(source, line, column, message)


def load_rules(
    text: str, source: str = "<rules>", custom_fields: CustomFields | None = None
) -> RuleSet:
    """Parse and check a rule file; raise RuleFileError listing every problem found.

    With ``custom_fields`` (the config declares some), every ``custom.NAME`` a rule tests or
    routes by must be declared, and its operator and values must suit the field's type.
    """
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        head = text.encode("utf-8", "surrogatepass")[:MAX_FILE_BYTES]
        raise RuleFileError([_too_big(source, head.decode("utf-8", "ignore"))])
    try:
        root = yaml.compose(text, Loader=_BoundedLoader)
    except _Unbounded as error:
        problem = Problem(source, error.line, error.column, error.message)
        raise RuleFileError([problem]) from None
    except RecursionError:  # the caps above make this unreachable; never a traceback if not
        message = f"the rule file nests too deeply (the limit is {MAX_DEPTH} levels)"
        raise RuleFileError([Problem(source, 1, 1, message)]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        detail = error.problem or error.context or "invalid YAML"
        if error.context and error.problem:
            detail = f"{error.problem} ({error.context})"
        raise RuleFileError([Problem(source, *where, f"YAML syntax error: {detail}")]) from None
    except yaml.reader.ReaderError as error:  # a control character: no mark, an offset
        position = error.position
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        character = error.character
        shown = chr(character) if isinstance(character, int) else str(character)
        message = f"YAML error: character {shown!r} is not allowed"
        raise RuleFileError([Problem(source, line, column, message)]) from None
    except yaml.YAMLError as error:
        one_line = " ".join(str(error).split())
        raise RuleFileError([Problem(source, 1, 1, f"YAML error: {one_line}")]) from None
    if root is None:
        raise RuleFileError([Problem(source, 1, 1, "the rule file is empty")])
    reader = _Reader(source, text, custom_fields or None)
    try:
        ruleset = reader.ruleset(root)
    except RecursionError:  # as above: the depth cap keeps the walk far from the limit
        message = f"the rule file nests too deeply (the limit is {MAX_DEPTH} levels)"
        raise RuleFileError([Problem(source, 1, 1, message)]) from None
    if reader.problems or ruleset is None:
        problems = sorted(reader.problems, key=lambda p: (p.line, p.column))
        raise RuleFileError(problems or [Problem(source, 1, 1, "invalid rule file")])
    return ruleset


class _Unbounded(Exception):
    """A cap was crossed while composing, at the start of ``event`` (1-based line, column)."""

    def __init__(self, message: str, event: Event) -> None:
        super().__init__(message)
        self.message = message
        mark = event.start_mark
        self.line, self.column = (mark.line + 1, mark.column + 1) if mark else (1, 1)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer enforces MAX_DEPTH and MAX_NODES as it goes.

    The depth is checked before the composer descends into a collection (its recursion is
    the first that input could drive); every composed node counts once and every alias
    counts the expanded size of the node it names, so a file is refused at the alias that
    would cross MAX_NODES, long before anything of that size exists.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node): (expanded nodes, depth)
        self._deepest = 0  # the deepest level reached inside the node being composed

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event: Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            # A node still being composed (a recursive alias) counts once; the reader
            # reports the cycle where it matters.
            size, depth = self._sizes.get(id(node), (1, 0))
            self._count(size, event, event.anchor)
            if self._depth + depth > MAX_DEPTH:
                raise _Unbounded(
                    f"alias *{event.anchor} nests deeper than {MAX_DEPTH} levels "
                    f"(it names {depth} levels of lists and mappings)",
                    event,
                )
            self._deepest = max(self._deepest, self._depth + depth)
            return node
        start = self._nodes
        collection = isinstance(event, CollectionStartEvent)
        if collection:
            if self._depth >= MAX_DEPTH:
                raise _Unbounded(
                    f"lists and mappings nested deeper than {MAX_DEPTH} levels; "
                    "real rule files need about ten",
                    event,
                )
            self._depth += 1
        self._count(1, event)
        outer = self._deepest
        self._deepest = self._depth
        try:
            node = super().compose_node(parent, index)
        finally:
            if collection:
                self._depth -= 1
        height = self._deepest - self._depth
        self._deepest = max(outer, self._deepest)
        self._sizes[id(node)] = (self._nodes - start, height)
        return node

    def _count(self, size: int, event: Event, alias: str | None = None) -> None:
        self._nodes += size
        if self._nodes <= MAX_NODES:
            return
        if alias is None:
            message = (
                f"the rule file has more than {MAX_NODES:,} values (lists, mappings and "
                "scalars), the limit; real rule files have a few thousand"
            )
        else:
            message = (
                f"the rule file expands to more than {MAX_NODES:,} values at alias *{alias} "
                "(an alias counts the values it names each time it is used)"
            )
        raise _Unbounded(message, event)


class _Reader:
    """Walks the composed YAML, builds the RuleSet and collects problems instead of raising."""

    def __init__(
        self, source: str, text: str = "", custom_fields: CustomFields | None = None
    ) -> None:
        self.source = source
        self.text = text
        self.custom_fields = custom_fields
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()
        self._conditions: dict[int, Condition | None] = {}
        self._composing: set[int] = set()
        self._misspelled: set[tuple[int, str]] = set()
        self._pattern_steps = 0  # compiled size of every regex so far (MAX_PATTERN_STEPS)

    # ---------------------------------------------------------------------------- basics

    def report(self, node: Node, message: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(self.source, mark.line + 1, mark.column + 1, message))

    def report_in(self, node: Node, offset: int | None, message: str) -> None:
        """Report at character ``offset`` of a scalar's value when the file spells the value
        as it is (a one-line plain or quoted scalar without escapes); else at the scalar."""
        start, end = node.start_mark, node.end_mark
        raw = self.text[start.index : end.index]
        quoted = getattr(node, "style", None) in ("'", '"')
        inner = raw[1:-1] if quoted and len(raw) >= 2 else raw
        if offset is not None and inner == node.value and "\n" not in inner:
            line, column = start.line + 1, start.column + 1 + int(quoted) + offset
        else:
            line, column = start.line + 1, start.column + 1
        self.problems.append(Problem(self.source, line, column, message))

    def value(self, node: Node) -> object:
        """The Python value of a node (SafeConstructor: no tags that build objects)."""
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as error:
            self.report(node, f"unsupported value: {getattr(error, 'problem', None) or error}")
        except ValueError as error:  # e.g. a timestamp-looking 2026-13-45
            self.report(node, f"bad value {getattr(node, 'value', '')!r}: {error}")
        return _INVALID

    def mapping(self, node: Node, what: str, keys: Sequence[str]) -> dict[str, tuple[Node, Node]]:
        """The node's entries by key; unknown, duplicate and non-string keys are reported."""
        if not isinstance(node, MappingNode):
            self.report(node, f"{what} must be a mapping, not {self.describe(node)}")
            return {}
        if node.tag != _MAP_TAG:
            self.report(node, f"unsupported YAML tag {node.tag!r} on {what}")
        entries: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.report(key_node, "merge keys (<<) are not supported; repeat the keys")
                continue
            key = self.value(key_node) if isinstance(key_node, ScalarNode) else _INVALID
            if not isinstance(key, str):
                self.report(key_node, f"{what}: keys must be names, not {self.describe(key_node)}")
            elif key not in keys:
                allowed = ", ".join(keys)
                hint = suggest(key, keys)
                self.report(key_node, f"unknown key {key!r} in {what}{hint}; allowed: {allowed}")
                for near in difflib.get_close_matches(key, keys, n=1):
                    self._misspelled.add((id(node), near))
            elif key in entries:
                self.report(key_node, f"duplicate key {key!r} in {what}")
            else:
                entries[key] = (key_node, value_node)
        return entries

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.report(node, f"{what} must be a list, not {self.describe(node)}")
            return None
        if node.tag != _SEQ_TAG:
            self.report(node, f"unsupported YAML tag {node.tag!r} on {what}")
        return list(node.value)

    def missing(self, node: Node, key: str, message: str) -> None:
        """Report a missing key, unless a misspelling of it was reported in that mapping."""
        if (id(node), key) not in self._misspelled:
            self.report(node, message)

    def describe(self, node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        try:
            return kind_of(self._constructor.construct_object(node))
        except (yaml.YAMLError, ValueError):
            return f"a value tagged {node.tag!r}"

    def string(self, node: Node, what: str) -> str | None:
        value = self.value(node) if isinstance(node, ScalarNode) else _INVALID
        if isinstance(value, str) and value.strip():
            return value.strip()
        if not _reported(node, value):
            self.report(node, f"{what} must be a non-empty string, not {self.describe(node)}")
        return None

    def boolean(self, node: Node, what: str) -> bool | None:
        value = self.value(node) if isinstance(node, ScalarNode) else _INVALID
        if isinstance(value, bool):
            return value
        if _reported(node, value):
            return None
        self.report(node, f"{what} must be true or false, not {self.describe(node)}")
        return None

    def integer(self, node: Node, what: str, minimum: int | None = None) -> int | None:
        value = self.value(node) if isinstance(node, ScalarNode) else _INVALID
        if _reported(node, value):
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            if minimum is None or value >= minimum:
                return value
            self.report(node, f"{what} must be at least {minimum}, not {value}")
            return None
        self.report(node, f"{what} must be a whole number, not {self.describe(node)}")
        return None

    def day(self, node: Node, what: str) -> date | None:
        value = self.value(node) if isinstance(node, ScalarNode) else _INVALID
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        elif isinstance(value, date) and not isinstance(value, datetime):
            return value
        elif _reported(node, value):
            return None
        self.report(node, f"{what} must be a date like 2026-12-20, not {self.describe(node)}")
        return None

    def timezone(self, node: Node, what: str) -> str | None:
        name = self.string(node, what)
        if name is None:
            return None
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            hint = suggest(name, _zone_names())
            self.report(node, f"unknown timezone {name!r}{hint}")
            return None
        return name

    # ---------------------------------------------------------------------------- the file

    def ruleset(self, root: Node) -> RuleSet | None:
        top = self.mapping(root, "the rule file", TOP_KEYS)
        if not isinstance(root, MappingNode):
            return None
        timezone = "UTC"
        if "timezone" in top:
            timezone = self.timezone(top["timezone"][1], "timezone") or "UTC"
        reassign = False
        if "reassign_unavailable" in top:
            reassign = bool(self.boolean(top["reassign_unavailable"][1], "reassign_unavailable"))
        executives: dict[str, Executive] = {}
        if "executives" in top:
            executives = self.executives(top["executives"][1])
        else:
            self.missing(
                root, "executives", "missing key 'executives': the rule file must list the team"
            )
        rules: list[Rule] = []
        if "rules" in top:
            rules = self.rules(top["rules"][1], executives, timezone)
        else:
            self.missing(root, "rules", "missing key 'rules'")
        ordered = tuple(sorted(rules, key=lambda rule: -rule.priority))
        return RuleSet(executives, ordered, timezone, reassign, self.source)

    def executives(self, node: Node) -> dict[str, Executive]:
        executives: dict[str, Executive] = {}
        first_line: dict[str, int] = {}
        for item in self.sequence(node, "executives") or []:
            executive = self.executive(item)
            if executive is None:
                continue
            if executive.id in executives:
                id_node = self.mapping_entry(item, "id")
                self.report(
                    id_node or item,
                    f"duplicate executive id {executive.id!r} "
                    f"(first at line {first_line[executive.id]})",
                )
                continue
            executives[executive.id] = executive
            first_line[executive.id] = item.start_mark.line + 1
        return executives

    @staticmethod
    def mapping_entry(node: Node, key: str) -> Node | None:
        """The value node for ``key`` in a mapping node, found without reporting anything."""
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == key:
                    found: Node = value_node
                    return found
        return None

    def executive(self, node: Node) -> Executive | None:
        entries = self.mapping(node, "an executive", EXECUTIVE_KEYS)
        if not isinstance(node, MappingNode):
            return None
        if "id" not in entries:
            self.missing(node, "id", "an executive needs an id")
            return None
        id_node = entries["id"][1]
        executive_id = self.string(id_node, "id")
        if executive_id is None:
            return None
        if any(c.isspace() for c in executive_id):
            self.report(id_node, f"executive id {executive_id!r} must not contain spaces")
        name = executive_id
        if "name" in entries:
            name = self.string(entries["name"][1], "name") or executive_id
        email: str | None = None
        if "email" in entries:
            email = self.string(entries["email"][1], "email")
            if email is not None and (email.count("@") != 1 or " " in email):
                self.report(entries["email"][1], f"email {email!r} is not an address")
        active = True
        if "active" in entries:
            active = self.boolean(entries["active"][1], "active") is not False
        away: list[DateRange] = []
        if "away" in entries:
            for item in self.sequence(entries["away"][1], "away") or []:
                period = self.away(item)
                if period is not None:
                    away.append(period)
        capacity: int | None = None
        if "capacity" in entries:
            capacity_node = entries["capacity"][1]
            if not (isinstance(capacity_node, ScalarNode) and self.value(capacity_node) is None):
                capacity = self.integer(capacity_node, "capacity", minimum=0)
        weight = 1
        if "weight" in entries:
            weight = self.integer(entries["weight"][1], "weight", minimum=1) or 1
        zone_name: str | None = None
        if "timezone" in entries:
            zone_name = self.timezone(entries["timezone"][1], "timezone")
        return Executive(
            executive_id, name, email, active, tuple(away), capacity, weight, zone_name
        )

    def away(self, node: Node) -> DateRange | None:
        entries = self.mapping(node, "an away period", AWAY_KEYS)
        if not isinstance(node, MappingNode):
            return None
        missing = [k for k in AWAY_KEYS if k not in entries]
        if missing:
            self.report(node, "an away period needs from and to (inclusive dates)")
            return None
        start = self.day(entries["from"][1], "from")
        end = self.day(entries["to"][1], "to")
        if start is None or end is None:
            return None
        if end < start:
            self.report(entries["to"][1], f"away ends ({end}) before it starts ({start})")
            return None
        return DateRange(start, end)

    # ---------------------------------------------------------------------------- rules

    def rules(self, node: Node, executives: dict[str, Executive], timezone: str) -> list[Rule]:
        rules: list[Rule] = []
        first_line: dict[str, int] = {}
        for item in self.sequence(node, "rules") or []:
            line = item.start_mark.line + 1
            rule = self.rule(item, executives, timezone)
            name_node = self.mapping_entry(item, "name")
            name = rule.name if rule is not None else None
            if name is None and isinstance(name_node, ScalarNode):
                raw = self.value(name_node)
                name = raw.strip() if isinstance(raw, str) else None
            if name is not None and name_node is not None:
                if name in first_line:
                    self.report(
                        name_node,
                        f"duplicate rule name {name!r} (first at line {first_line[name]})",
                    )
                    continue
                first_line[name] = line
            if rule is not None:
                rules.append(rule)
        return rules

    def rule(self, node: Node, executives: dict[str, Executive], timezone: str) -> Rule | None:
        before = len(self.problems)
        entries = self.mapping(node, "a rule", RULE_KEYS)
        if not isinstance(node, MappingNode):
            return None
        name: str | None = None
        if "name" in entries:
            name = self.string(entries["name"][1], "rule name")
        else:
            self.missing(node, "name", "a rule needs a name")
        priority = 0
        if "priority" in entries:
            priority = self.integer(entries["priority"][1], "priority") or 0
        when: Condition | None = None
        if "when" in entries:
            when = self.condition(entries["when"][1])
        assign: Assign | None = None
        if "assign" in entries:
            assign = self.assign(entries["assign"][1], executives)
        else:
            self.missing(
                node,
                "assign",
                f"rule {name or '?'!r} needs an assign: {{strategy: ..., to: [...]}}",
            )
        schedule: Schedule | None = None
        if "schedule" in entries:
            schedule = self.schedule(entries["schedule"][1], timezone)
        if name is None or assign is None or len(self.problems) > before:
            return None
        return Rule(name, priority, when, assign, schedule, node.start_mark.line + 1)

    def assign(self, node: Node, executives: dict[str, Executive]) -> Assign | None:
        before = len(self.problems)
        entries = self.mapping(node, "assign", ASSIGN_KEYS)
        if not isinstance(node, MappingNode):
            return None
        strategy: str | None = None
        if "strategy" not in entries:
            self.missing(
                node, "strategy", f"assign needs a strategy: one of {', '.join(STRATEGIES)}"
            )
        else:
            strategy_node = entries["strategy"][1]
            strategy = self.string(strategy_node, "strategy")
            if strategy is not None and strategy not in STRATEGIES:
                self.report(
                    strategy_node,
                    f"unknown strategy {strategy!r}{suggest(strategy, STRATEGIES)}; "
                    f"use one of {', '.join(STRATEGIES)}",
                )
                strategy = None
        to: list[str] = []
        if "to" in entries:
            to = self.executive_list(entries["to"][1], executives)
        if strategy in NEEDS_TO and "to" not in entries:
            self.missing(node, "to", f"{strategy} needs 'to': the executives to choose from")
        elif "to" in entries and not to and len(self.problems) == before:
            self.report(
                entries["to"][1], f"{strategy or 'assign'} needs at least one executive in 'to'"
            )
        field_name: str | None = None
        if "field" in entries:
            field_node = entries["field"][1]
            field_name = self.string(field_node, "field")
            if field_name is not None:
                problem = subject_problem("field", field_name) or self.custom_problem(field_name)
                if problem:
                    self.report(field_node, problem)
            if strategy is not None and strategy != "by_field":
                self.report(entries["field"][0], "field is only used by the by_field strategy")
        elif strategy == "by_field":
            self.missing(
                node, "field", "by_field needs 'field': the lead field that names the executive"
            )
        pairs: list[tuple[str, str]] = []
        if "map" in entries:
            if strategy is not None and strategy != "by_field":
                self.report(entries["map"][0], "map is only used by the by_field strategy")
            pairs = self.field_map(entries["map"][1], executives, to if "to" in entries else None)
        if strategy is None or len(self.problems) > before:
            return None
        return Assign(strategy, tuple(to), field_name, tuple(pairs))

    def executive_list(self, node: Node, executives: dict[str, Executive]) -> list[str]:
        ids: list[str] = []
        for item in self.sequence(node, "to") or []:
            executive_id = self.string(item, "an executive id")
            if executive_id is None:
                continue
            if executive_id not in executives:
                self.report(item, self.unknown_executive(executive_id, executives, "to"))
            elif executive_id in ids:
                self.report(item, f"executive {executive_id!r} is listed twice in to")
            else:
                ids.append(executive_id)
        return ids

    @staticmethod
    def unknown_executive(executive_id: str, executives: dict[str, Executive], where: str) -> str:
        known = ", ".join(executives) or "none"
        hint = suggest(executive_id, executives)
        return f"unknown executive {executive_id!r} in {where}{hint}; executives: {known}"

    def field_map(
        self, node: Node, executives: dict[str, Executive], to: list[str] | None
    ) -> list[tuple[str, str]]:
        if not isinstance(node, MappingNode):
            self.report(
                node, f"map must be a mapping of value: executive, not {self.describe(node)}"
            )
            return []
        if not node.value:
            self.report(node, "map needs at least one value: executive pair")
        pairs: list[tuple[str, str]] = []
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = self.value(key_node) if isinstance(key_node, ScalarNode) else _INVALID
            if isinstance(key, bool):
                key = "true" if key else "false"
            elif isinstance(key, int | float | date):
                key = str(key)
            if not isinstance(key, str) or not key.strip():
                self.report(
                    key_node, f"map keys must be field values, not {self.describe(key_node)}"
                )
                continue
            if key.casefold() in seen:
                self.report(key_node, f"map lists {key!r} twice")
                continue
            seen.add(key.casefold())
            executive_id = self.string(value_node, "a map target")
            if executive_id is None:
                continue
            if executive_id not in executives:
                self.report(value_node, self.unknown_executive(executive_id, executives, "map"))
            elif to is not None and executive_id not in to:
                self.report(value_node, f"map sends {key!r} to {executive_id!r}, who is not in to")
            else:
                pairs.append((key, executive_id))
        return pairs

    def schedule(self, node: Node, timezone: str) -> Schedule | None:
        before = len(self.problems)
        entries = self.mapping(node, "schedule", SCHEDULE_KEYS)
        if not isinstance(node, MappingNode):
            return None
        if "days" not in entries and "hours" not in entries and len(self.problems) == before:
            self.report(node, "a schedule needs days, hours or both")
        days = frozenset(range(7))
        if "days" in entries:
            days = self.days(entries["days"][1])
        start: time | None = None
        end: time | None = None
        if "hours" in entries:
            start, end = self.hours(entries["hours"][1])
        zone_name = timezone
        if "timezone" in entries:
            zone_name = self.timezone(entries["timezone"][1], "schedule timezone") or timezone
        if len(self.problems) > before:
            return None
        return Schedule(days, start, end, zone_name)

    def days(self, node: Node) -> frozenset[int]:
        days: set[int] = set()
        items = self.sequence(node, "days")
        if items is not None and not items:
            self.report(node, "days needs at least one day")
        for item in items or []:
            name = self.string(item, "a day")
            if name is None:
                continue
            day = day_number(name)
            if day is None:
                self.report(item, f"unknown day {name!r}; use {', '.join(DAY_NAMES)}")
            else:
                days.add(day)
        return frozenset(days)

    def hours(self, node: Node) -> tuple[time | None, time | None]:
        text = self.string(node, "hours")
        if text is None:
            return None, None
        try:
            return parse_hours(text)
        except ValueError as error:
            self.report(node, str(error))
            return None, None

    def custom_problem(self, name: str) -> str | None:
        """Why ``custom.NAME`` is not a declared custom field (when the config declares any)."""
        if self.custom_fields is None or not name.startswith(CUSTOM_PREFIX):
            return None
        return custom_name_problem(name, self.custom_fields)

    def declared(self, name: str) -> DeclaredField | None:
        if self.custom_fields is None or not name.startswith(CUSTOM_PREFIX):
            return None
        return self.custom_fields.get(name[len(CUSTOM_PREFIX) :])

    # ---------------------------------------------------------------------------- conditions

    def condition(self, node: Node) -> Condition | None:
        """A condition; memoised per node so YAML aliases cannot make the walk exponential."""
        key = id(node)
        if key in self._conditions:
            return self._conditions[key]
        if key in self._composing:
            self.report(node, "a condition contains itself (recursive alias)")
            return None
        self._composing.add(key)
        try:
            result = self._condition(node)
        finally:
            self._composing.discard(key)
        self._conditions[key] = result
        return result

    def _condition(self, node: Node) -> Condition | None:
        before = len(self.problems)
        entries = self.mapping(node, "a condition", CONDITION_KEYS)
        if not isinstance(node, MappingNode):
            return None
        clean = len(self.problems) == before
        combinators = [k for k in COMBINATORS if k in entries]
        if combinators:
            extra = [entries[k][0] for k in entries if k != combinators[0]]
            if extra:
                self.report(
                    min(extra, key=_position),
                    f"a condition with {combinators[0]!r} has no other keys; nest them inside",
                )
                return None
            return self.combinator(combinators[0], entries[combinators[0]][1])
        subjects = [k for k in KINDS if k in entries]
        ops = [k for k in OPS if k in entries]
        if len(subjects) != 1:
            if subjects:
                self.report(
                    entries[subjects[1]][0], "a condition tests one fact; combine with all/any"
                )
            elif clean:
                self.report(node, "a condition needs field, message or header (or all/any/not)")
            return None
        kind = subjects[0]
        name_node = entries[kind][1]
        name = self.string(name_node, kind)
        if name is not None:
            problem = subject_problem(kind, name) or (
                self.custom_problem(name) if kind == "field" else None
            )
            if problem:
                self.report(name_node, problem)
                name = None
        if len(ops) != 1:
            if ops:
                self.report(entries[ops[1]][0], "one operator per condition; combine with all/any")
            elif clean:
                self.report(node, f"a condition needs an operator: one of {', '.join(OPS)}")
            return None
        op = ops[0]
        value_node = entries[op][1]
        value = self.value(value_node)
        if value is _INVALID:
            return None
        if op == "regex" and isinstance(value, str) and value:
            try:
                self._pattern_steps += check_regex(value)
            except PatternError as error:
                self.report_in(value_node, error.offset, str(error))
                return None
            if self._pattern_steps > MAX_PATTERN_STEPS:
                self.report(
                    value_node,
                    f"the rule file's patterns compile to more than {MAX_PATTERN_STEPS:,} "
                    "steps together, the limit; use fewer or simpler patterns",
                )
                self._pattern_steps = -(1 << 62)  # said once is enough
                return None
        # A refused name was reported already: check only the operand's shape, not what the
        # unknown fact would make of it ("gt compares numbers; '' is text").
        problem = (
            value_problem(kind, name, op, value)
            if name
            else value_problem("header", "-", op, value)
        )
        declared = self.declared(name) if kind == "field" and name else None
        if not problem and declared is not None:
            assert name is not None
            problem = custom_value_problem(name, op, value, declared)
        if problem:
            self.report(value_node, problem)
            return None
        if name is None:
            return None
        try:
            return Check(kind, name, op, cast(Scalar | tuple[Scalar, ...], value))
        except ValueError as error:
            self.report(value_node, str(error))
            return None

    def combinator(self, key: str, node: Node) -> Condition | None:
        if key == "not":
            item = self.condition(node)
            return None if item is None else Not(item)
        items = self.sequence(node, key)
        if items is None:
            return None
        if not items:
            self.report(node, f"{key} needs at least one condition")
            return None
        children = [self.condition(item) for item in items]
        parts = tuple(child for child in children if child is not None)
        if len(parts) != len(children):
            return None
        return AllOf(parts) if key == "all" else AnyOf(parts)


@functools.cache
def _zone_names() -> frozenset[str]:
    """Every zone name, for suggestions; reading them walks the tz database, so only once."""
    return frozenset(zoneinfo.available_timezones())


def _reported(node: Node, value: object) -> bool:
    """A scalar whose construction failed was reported by ``value()`` already."""
    return value is _INVALID and isinstance(node, ScalarNode)


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line, node.start_mark.column


class _Invalid:
    """Marks a value that was already reported, so callers do not report it twice."""


_INVALID = _Invalid()
