"""The ``leadmail`` command: global options, error mapping, and the sub-commands."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from worker.cli.context import Context
from worker.cli.logs import setup_logging
from worker.cli.sanitize import printable
from worker.errors import LeadmailError

# `leadmail … | head`: the reader went away. Exit as a process killed by SIGPIPE reports it
# (128 + 13), quietly: nothing is wrong with leadmail, and there is nobody to tell.
EXIT_BROKEN_PIPE = 141

# Each sub-command is imported when it runs: `leadmail leads list` need not load the mail
# parser, the rule engine or the IMAP client, and start-up is most of a short command's time.
COMMANDS = {
    "init": "worker.cli.init:init",
    "ingest": "worker.cli.ingest:ingest",
    "poll": "worker.cli.poll:poll",
    "run": "worker.cli.poll:run",
    "status": "worker.cli.poll:status",
    "leads": "worker.cli.leads:leads",
    "messages": "worker.cli.messages:messages",
    "rules": "worker.cli.rules:rules",
    "quarantine": "worker.cli.quarantine:quarantine",
    "demo": "worker.cli.demo:demo",
    "contacts": "worker.cli.contacts:contacts",
    "addresses": "worker.cli.addresses:addresses",
    "attachments": "worker.cli.attachments:attachments",
    "opportunities": "worker.cli.records:opportunities",
    "quotations": "worker.cli.records:quotations",
    "send": "worker.cli.send:send",
    "outbox": "worker.cli.outbox:outbox",
    "reminders": "worker.cli.reminders:reminders",
    "dispatch": "worker.cli.jobs:dispatch",
    "worker": "worker.cli.jobs:worker",
    "store": "worker.cli.store:store",
}


class LeadmailGroup(click.Group):
    """Loads sub-commands on demand; maps our errors to one line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            quiet_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
        except LeadmailError as exc:
            click.echo(f"leadmail: error: {printable(exc)}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("leadmail: interrupted", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:
            if ctx.obj is not None and getattr(ctx.obj, "debug", False):
                raise
            # One line: a driver error's text goes on with the SQL and its parameters.
            first_line = (str(exc).strip().splitlines() or [""])[0]
            click.echo(
                f"leadmail: internal error: {type(exc).__name__}: {printable(first_line)} "
                "(run with --debug for the traceback)",
                err=True,
            )
            sys.exit(70)


@click.group(cls=LeadmailGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (default: $LEADMAIL_CONFIG, else ./config.toml, else built-in defaults).",
)
@click.option("--debug", is_flag=True, envvar="LEADMAIL_DEBUG", help="Show tracebacks.")
@click.version_option(package_name="leadmail")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """leadmail turns a sales mailbox into CRM leads."""
    setup_logging(
        logging.WARNING, debug=debug, fmt="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ctx.obj = Context(config_path, debug)
    ctx.call_on_close(ctx.obj.close)


def quiet_stdout() -> None:
    """Point stdout at /dev/null: what Python still holds for the closed pipe is flushed at
    exit, and would fail there with a second BrokenPipeError printed as a traceback."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test runner's buffer)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fileno)
    finally:
        os.close(devnull)


def main() -> None:
    try:
        cli(prog_name="leadmail")
    except SystemExit as done:
        # Output still buffered goes out now, where a closed pipe can be told apart.
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            quiet_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
        raise done from None
