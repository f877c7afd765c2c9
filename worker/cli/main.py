"""The ``leadmail`` command: global options, error mapping, and the sub-commands."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from worker.config import Settings, load_settings
from worker.errors import LeadmailError
from worker.services.context import App


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
            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = App.from_settings(self.settings)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


pass_ctx = click.make_pass_decorator(Context)


class LeadmailGroup(click.Group):
    """Maps our errors to one line and an exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LeadmailError as exc:
            click.echo(f"leadmail: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("leadmail: interrupted", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:
            if ctx.obj is not None and getattr(ctx.obj, "debug", False):
                raise
            click.echo(
                f"leadmail: internal error: {type(exc).__name__}: {exc} "
                "(run with --debug for the traceback)",
                err=True,
            )
            sys.exit(70)


@click.group(cls=LeadmailGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (default: $LEADMAIL_CONFIG, else ./config.toml, else built-in defaults).",
)
@click.option("--debug", is_flag=True, envvar="LEADMAIL_DEBUG", help="Show tracebacks.")
@click.version_option(package_name="leadmail")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """leadmail turns a sales mailbox into CRM leads."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Context(config_path, debug)
    ctx.call_on_close(ctx.obj.close)


def _register() -> None:
    from worker.cli import demo, ingest, init, leads, quarantine

    for module in (init, ingest, leads, quarantine, demo):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="leadmail", auto_envvar_prefix=None if os.environ else None)


def ready_app(ctx: Context) -> App:
    """The app with a usable schema: created on first use, refused when it is outdated."""
    from worker.errors import StoreError
    from worker.store import schema

    app = ctx.app
    app.db.check()
    current = schema.current_revision(app.db.engine)
    if current is None:
        schema.upgrade(app.db.engine)
    elif current != schema.head_revision():
        raise StoreError(
            f"database schema {current} is not the newest ({schema.head_revision()}): "
            "run 'leadmail init' to upgrade", current)
    return app
