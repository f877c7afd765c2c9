"""The CLI's shared state: settings and app built lazily from --config."""

from __future__ import annotations

import gc
import getpass
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from worker.errors import StoreError

if TYPE_CHECKING:
    from worker.config import Settings
    from worker.services.context import App

# The config, database and rule modules are imported when first needed, not at start-up:
# `leadmail --help` and a mistyped command answer without loading SQLAlchemy or pydantic.

# Start-up makes some 100,000 objects that live as long as the process (the modules of
# SQLAlchemy, pydantic and rich, the tables, the settings models), and the cyclic garbage
# collector would walk them over and over while they are made: about 140 collections and a
# tenth of `leadmail leads list` here (bench/startup.md). So `main()` pauses it, and the
# first use of the app ends the pause: what start-up made is frozen (kept out of every later
# collection, as for a long `leadmail run` it should be, and out of the full one the
# interpreter makes at exit; the few hundred cyclic leftovers of the imports stay), and
# collection goes on as usual for the command's own work. A command
# that never builds the app (`rules check`, `demo write`, `--help`) is short and bounded and
# ends with the collector still paused; reference counting frees its memory all the same.
_gc_paused = False


def pause_gc() -> None:
    """Called by ``main()`` before the command is parsed: no cyclic collection during
    start-up. Tests calling the click group directly never pause it."""
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def end_startup() -> None:
    """Freeze what start-up made and let the collector run again (when main() paused it)."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


class Context:
    """Lazily built settings and app, so `--help` works without a config or a database."""

    def __init__(self, config_path: Path | None, debug: bool) -> None:
        self.config_path = config_path
        self.debug = debug
        self._settings: Settings | None = None
        self._app: App | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from worker.config import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def app(self) -> App:
        if self._app is None:
            from worker.services.context import App

            self._app = App.from_settings(self.settings)
            end_startup()
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


pass_ctx = click.make_pass_decorator(Context)


_F = TypeVar("_F", bound=Callable[..., object])


def by_option(command: _F) -> _F:
    """``--by NAME``: who made a change, recorded with it in the lead's timeline."""
    option = click.option(
        "--by",
        "actor",
        metavar="NAME",
        help="Who does this, as the timeline records it (default: $LEADMAIL_USER, else the "
        "login name).",
    )
    return option(command)


def actor_name(given: str | None) -> str:
    """``--by``, else $LEADMAIL_USER, else the operating system's login name."""
    for candidate in (given, os.environ.get("LEADMAIL_USER")):
        if candidate and candidate.strip():
            return candidate.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name for this uid (a bare container)
        return "unknown"


# Ids are INTEGER columns (int4 on PostgreSQL): a larger number would fail inside the driver
# as an internal error instead of being refused as input.
ROW_ID = click.IntRange(min=1, max=2**31 - 1)


def ready_app(ctx: Context) -> App:
    """The app with a usable schema: created on first use, refused when it is outdated."""
    from worker.store import schema

    app = ctx.app
    app.db.check()
    current = schema.current_revision(app.db.engine)
    if current is None:
        schema.upgrade(app.db.engine, blob_root=app.blobs.root)
        app.blobs.sweep_legacy()
    elif current != schema.head_revision():
        raise StoreError(
            f"database schema {current} is not the newest ({schema.head_revision()}): "
            "run 'leadmail init' to upgrade",
            current,
        )
    return app


def ready_rules(app: App) -> None:
    """Refuse to start on an invalid rule file: every error with its file, line and column."""
    from worker.services.assignment import rule_book

    rule_book(app).load()
