"""Every runtime dependency pinned in pyproject.toml earns its place: worker/ imports it.

A pin nothing imports is a supply-chain and upgrade cost for nothing (issue 9 found structlog
and tenacity pinned and unused). The few exceptions are named here with the reason.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Distribution name → the module it is imported as, where the two differ.
_MODULE = {
    "mail-parser": "mailparser",
    "pyyaml": "yaml",
    "google-re2": "re2",
    "markdown-it-py": "markdown_it",
}

# Pinned but not imported by worker/ today, and why.
_NOT_IMPORTED = {
    # SQLAlchemy loads it for postgresql:// URLs; nothing imports it by name.
    "psycopg": "database driver",
    # dramatiq's RedisBroker imports it; nothing imports it by name.
    "redis": "dramatiq's broker (issue 11)",
    # zoneinfo reads it where the system has no zone files ([leads] timezone, issue 12).
    "tzdata": "time zone data for zoneinfo",
}


def _dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = []
    for spec in project["dependencies"]:
        name = re.split(r"[\[=<>!~ ]", spec, maxsplit=1)[0]
        names.append(name.lower())
    return names


def _imported_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "worker").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_every_pinned_dependency_is_pinned_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    loose = [spec for spec in project["dependencies"] if "==" not in spec]
    assert loose == []


def test_every_runtime_dependency_is_used() -> None:
    imported = _imported_modules()
    unused = [
        name
        for name in _dependencies()
        if _MODULE.get(name, name.replace("-", "_")) not in imported and name not in _NOT_IMPORTED
    ]
    assert unused == []


def test_exceptions_are_still_needed() -> None:
    """An exception whose package became imported (or was dropped) is stale: remove it."""
    imported = _imported_modules()
    deps = set(_dependencies())
    stale = [n for n in _NOT_IMPORTED if n not in deps or _MODULE.get(n, n) in imported]
    assert stale == []
