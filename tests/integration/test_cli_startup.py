"""Start-up: ``leadmail --help`` imports no command, short commands import only what they use.

Behaviour checks, not timings (bench/startup.py measures those): which modules a fresh
process has loaded after a command, and that the help listing made without importing the
commands reads exactly as click's own listing of the imported commands.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from tests.integration.helpers import make_mail
from worker.cli.main import COMMANDS, cli

REPO = Path(__file__).resolve().parents[2]

# Libraries that no listing needs: the mail parser and what mail understanding uses, the
# queue, SMTP, calendars, templates, the migration tool, IMAP.
HEAVY = frozenset(
    {
        "mailparser",
        "nh3",
        "dramatiq",
        "redis",
        "aiosmtplib",
        "icalendar",
        "jinja2",
        "markdown_it",
        "alembic",
        "imapclient",
    }
)
# What `--help` must not load either: no command module, no database or settings library.
HELP_HEAVY = HEAVY | {"sqlalchemy", "pydantic", "rich", "yaml", "re2", "psycopg"}
# The listings read through Core statements over worker/store/tables.py: no ORM, no models,
# no PostgreSQL dialect on SQLite, no mail understanding or rule engine.
LISTING_ABSENT = frozenset(
    {"sqlalchemy.orm", "worker.store.models", "sqlalchemy.dialects.postgresql", "psycopg"}
)
# Nor the blob store (App makes it on first use) and what it alone imports.
LISTING_ABSENT_STORE = frozenset(
    {"worker.store.blobs", "worker.store.packs", "worker.store.upserts", "ctypes"}
)

_PROBE = """
import gc, json, sys
from worker.cli.main import main
report = sys.argv.pop(1)
try:
    main()
except SystemExit as done:
    code = done.code
tables = sys.modules.get("worker.store.tables")
config = sys.modules.get("worker.config")
built = sorted(
    name
    for name, model in vars(config).items()
    if isinstance(model, type) and issubclass(model, config._Section)
    and model.__pydantic_complete__
) if config else []
with open(report, "w") as out:
    json.dump(
        {
            "code": code,
            "modules": sorted(sys.modules),
            "gc_enabled": gc.isenabled(),
            "gc_frozen": gc.get_freeze_count(),
            "config_models_built": built,
            "tables_built": sorted(tables._metadata.tables) if tables else [],
        },
        out,
    )
"""


def loaded_after(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh ``leadmail ARGS`` process has imported when it exits."""
    return set(probe(tmp_path, *args, env=env)["modules"])


def probe(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """What a fresh ``leadmail ARGS`` process reports when it exits: its modules, the
    garbage collector's state and which settings models built a validator."""
    report = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), *args],
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(report.read_text())
    assert data["code"] in (0, None), done.stderr
    return data


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_help_imports_no_command_and_no_heavy_library(tmp_path: Path) -> None:
    modules = loaded_after(tmp_path, "--help")
    assert top_level(modules) & HELP_HEAVY == set()
    ours = {m for m in modules if m.startswith("worker.")}
    assert ours <= {
        "worker.cli",
        "worker.cli.main",
        "worker.cli.context",
        "worker.cli.logs",
        "worker.cli.sanitize",
        "worker.errors",
    }


@pytest.fixture
def demo_db(tmp_path: Path) -> dict[str, str]:
    """A SQLite database with one lead from mail; the environment that points at it."""
    env = {
        "LEADMAIL_DATABASE__URL": f"sqlite:///{tmp_path / 'leadmail.db'}",
        "LEADMAIL_STORAGE__PATH": str(tmp_path / "data"),
    }
    mail = tmp_path / "enquiry.eml"
    mail.write_bytes(make_mail())
    for args in (["init"], ["ingest", "--no-progress", str(mail)]):
        subprocess.run(
            [sys.executable, "-m", "worker", *args],
            cwd=tmp_path,
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
    return env


@pytest.mark.parametrize("args", [["leads", "list"], ["leads", "show", "1"]])
def test_lead_listings_import_no_heavy_library(
    tmp_path: Path, demo_db: dict[str, str], args: list[str]
) -> None:
    report = probe(tmp_path, *args, env=demo_db)
    modules = set(report["modules"])
    assert top_level(modules) & HEAVY == set()
    assert modules & (LISTING_ABSENT | LISTING_ABSENT_STORE) == set()
    assert {m for m in modules if m.startswith(("worker.mail", "worker.routing"))} == set()
    # One validator checks the whole config: the sections' own are never built.
    assert report["config_models_built"] == ["Settings"]
    # Only the tables it reads (and what their foreign keys name) are built.
    if args == ["leads", "list"]:
        assert report["tables_built"] == ["leads", "messages"]
    else:
        unread = {"quarantine", "blobs", "mailbox_cursors", "routing_counters", "lead_load"}
        assert unread & set(report["tables_built"]) == set()


def test_tables_are_built_on_first_use_and_metadata_holds_them_all() -> None:
    """A table is built when first named, with the tables its foreign keys point to;
    ``metadata`` (alembic, the ORM, create_all) is never handed out without all of them."""
    code = (
        "import worker.store.tables as t\n"
        "assert not t._metadata.tables\n"
        "t.attachments\n"
        "assert sorted(t._metadata.tables) == ['attachments', 'leads', 'messages'], "
        "sorted(t._metadata.tables)\n"
        "assert t.attachments is t.attachments and t.metadata.tables['leads'] is t.leads\n"
        "print(len(t.metadata.tables))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "22"


def test_startup_pauses_the_collector_until_the_app_is_built(
    tmp_path: Path, demo_db: dict[str, str]
) -> None:
    """main() pauses the cyclic GC while the libraries load; building the app freezes what
    start-up made and turns collection back on for the command's own work."""
    report = probe(tmp_path, "leads", "list", env=demo_db)
    assert report["gc_enabled"] is True
    assert report["gc_frozen"] > 10_000


def test_ingest_on_sqlite_imports_no_orm_no_migrations_no_postgresql(
    tmp_path: Path, demo_db: dict[str, str]
) -> None:
    """Intake runs on Core statements: every ingest, poll and run skips the ORM's mappers,
    alembic (the schema check reads the version table) and the PostgreSQL dialect."""
    mail = tmp_path / "reply.eml"
    mail.write_bytes(make_mail(sender="Bob <bob@other.example>", message_id="<r@other.example>"))
    modules = loaded_after(tmp_path, "ingest", "--no-progress", str(mail), env=demo_db)
    assert "worker.services.intake" in modules and "mailparser" in modules
    assert modules & (LISTING_ABSENT | {"alembic"}) == set()


def _eager_listing(width: int) -> str:
    """click's own command listing, every command imported."""
    ctx = click.Context(cli, info_name="leadmail", terminal_width=width)
    formatter = ctx.make_formatter()
    click.Group.format_commands(cli, ctx, formatter)
    return formatter.getvalue()


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_help_listing_reads_as_clicks_own(width: int) -> None:
    ctx = click.Context(cli, info_name="leadmail", terminal_width=width)
    formatter = ctx.make_formatter()
    cli.format_commands(ctx, formatter)
    assert formatter.getvalue() == _eager_listing(width)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_summary_is_the_commands_first_paragraph(name: str) -> None:
    """A command whose docstring changed needs its summary in COMMANDS changed too."""
    target, summary = COMMANDS[name]
    module, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    assert command.short_help is None
    assert summary == " ".join((command.help or "").partition("\n\n")[0].split())
