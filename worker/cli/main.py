"""The ``leadmail`` command: global options, error mapping, and the sub-commands."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from worker.cli.context import Context, pause_gc
from worker.cli.logs import setup_logging
from worker.cli.sanitize import printable
from worker.errors import LeadmailError

# `leadmail … | head`: the reader went away. Exit as a process killed by SIGPIPE reports it
# (128 + 13), quietly: nothing is wrong with leadmail, and there is nobody to tell.
EXIT_BROKEN_PIPE = 141

# Each sub-command is imported when it runs: `leadmail leads list` need not load the mail
# parser, the rule engine or the IMAP client, and start-up is most of a short command's time.
# Beside each one, the first paragraph of its help: `leadmail --help` lists every command
# without importing any (a test keeps these equal to the commands' own docstrings).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("worker.cli.init:init", "Create the database, or upgrade it to the newest schema."),
    "ingest": (
        "worker.cli.ingest:ingest",
        "Ingest local mail: .eml files, directories of them, mbox files, Maildir folders.",
    ),
    "poll": (
        "worker.cli.poll:poll",
        "Fetch new mail from the configured accounts: once, or until stopped (IDLE / polling).",
    ),
    "run": (
        "worker.cli.poll:run",
        "Run every configured account, and send queued mail, until SIGINT/SIGTERM (Ctrl-C).",
    ),
    "status": (
        "worker.cli.poll:status",
        "Each account and folder: UIDVALIDITY, last UID, messages waiting, last success/error.",
    ),
    "leads": ("worker.cli.leads:leads", "Leads made from mail."),
    "messages": ("worker.cli.messages:messages", "Stored messages: read one, list a lead's."),
    "rules": ("worker.cli.rules:rules", "Assignment rules: which executive gets each new lead."),
    "quarantine": (
        "worker.cli.quarantine:quarantine",
        "Messages that could not be processed; nothing is ever dropped.",
    ),
    "demo": ("worker.cli.demo:demo", "Demo data for trying leadmail out."),
    "contacts": (
        "worker.cli.contacts:contacts",
        "A lead's contacts: a contact's mail threads onto the lead.",
    ),
    "addresses": ("worker.cli.addresses:addresses", "A lead's postal addresses."),
    "attachments": (
        "worker.cli.attachments:attachments",
        "Files of a lead and of its messages: list them, save one.",
    ),
    "opportunities": (
        "worker.cli.records:opportunities",
        "Opportunities made from leads ('leadmail leads make opportunity ID').",
    ),
    "quotations": (
        "worker.cli.records:quotations",
        "Quotations made from leads ('leadmail leads make quotation ID').",
    ),
    "send": (
        "worker.cli.send:send",
        "Queue a mail to a lead (--lead ID) or an address (--to ADDR).",
    ),
    "outbox": (
        "worker.cli.outbox:outbox",
        "Outbound mail: queued by 'leadmail send', sent by 'leadmail run' or 'dispatch'.",
    ),
    "reminders": (
        "worker.cli.reminders:reminders",
        "Reminders: set with 'leads set --next-contact-date', sent by 'run' or 'dispatch'.",
    ),
    "dispatch": (
        "worker.cli.jobs:dispatch",
        "Send what is due: outbound mail and reminders (cron style with --once).",
    ),
    "worker": (
        "worker.cli.jobs:worker",
        "Work the Redis queue: send outbound mail until SIGINT/SIGTERM (Ctrl-C).",
    ),
    "store": (
        "worker.cli.store:store",
        "The blob store: raw messages and attachments, in pack files.",
    ),
}


class LeadmailGroup(click.Group):
    """Loads sub-commands on demand; maps our errors to one line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = COMMANDS[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their summaries, as click lists them, without importing one."""
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            if name in COMMANDS:
                # A stand-in with the summary as its help: click shortens it as it would
                # the command's own help (the first sentence, cut to fit the width).
                commands.append((name, click.Command(name, help=COMMANDS[name][1])))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                commands.append((name, command))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(name, c.get_short_help_str(limit)) for name, c in commands])

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
    pause_gc()  # until the app is built (cli/context.py): start-up makes no garbage to find
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
