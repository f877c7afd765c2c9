"""The store owns every SQL statement; services, the CLI, the poller and sources hold none.

ARCHITECTURE.md's layout rule, checked on the source: outside worker/store, SQLAlchemy may be
named only for the types a transaction is passed around as and the errors it raises, never
to build a statement (select, insert, update, delete, text, func, bindparam …).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parents[2] / "worker"

# What a module outside the store may take from SQLAlchemy: a connection to pass on, and
# the exceptions to catch.
_ALLOWED = {"sqlalchemy": {"Connection"}, "sqlalchemy.exc": {"*"}, "sqlalchemy.orm": {"Session"}}

_OUTSIDE_STORE = sorted(
    p for p in WORKER.rglob("*.py") if "store" not in p.relative_to(WORKER).parts
)


def _sqlalchemy_names(path: Path) -> list[str]:
    """Every SQLAlchemy name the module imports that is not in _ALLOWED, as 'module.name'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            allowed = _ALLOWED.get(node.module or "", set())
            found += [
                f"{node.module}.{a.name}"
                for a in node.names
                if "*" not in allowed and a.name not in allowed
            ]
    return found


@pytest.mark.parametrize("path", _OUTSIDE_STORE, ids=lambda p: str(p.relative_to(WORKER)))
def test_no_sql_outside_the_store(path: Path) -> None:
    assert _sqlalchemy_names(path) == []


def test_the_check_sees_a_statement_builder(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from sqlalchemy import Connection, select\nimport sqlalchemy.sql\n")
    assert _sqlalchemy_names(module) == ["sqlalchemy.select", "sqlalchemy.sql"]
