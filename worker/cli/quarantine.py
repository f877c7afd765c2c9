"""``leadmail quarantine``: messages that failed, why, and replaying them."""

from __future__ import annotations

import click

from worker.cli.context import ROW_ID, Context, pass_ctx, ready_app
from worker.cli.output import echo, emit, format_option, to_json
from worker.cli.sanitize import printable_block
from worker.services import quarantine as service

COLUMNS = ["id", "status", "source", "error_type", "reason", "attempts", "created_at"]


@click.group()
def quarantine() -> None:
    """Messages that could not be processed; nothing is ever dropped."""


@quarantine.command("list")
@click.option("--all", "include_all", is_flag=True, help="Include entries already replayed.")
@format_option
@pass_ctx
def list_command(ctx: Context, include_all: bool, fmt: str) -> None:
    """List quarantined messages."""
    rows = service.list_entries(ready_app(ctx), include_replayed=include_all)
    emit(rows, COLUMNS if fmt != "json" else list(rows[0]) if rows else COLUMNS, fmt)


@quarantine.command("show")
@click.argument("entry_id", type=ROW_ID)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@pass_ctx
def show_command(ctx: Context, entry_id: int, fmt: str) -> None:
    """Show one entry with its reason and the message's headers."""
    row = service.show_entry(ready_app(ctx), entry_id)
    if fmt == "json":
        click.echo(to_json(row))
        return
    for key, value in row.items():
        if key != "headers":
            echo(f"{key:>14}: {'' if value is None else value}")
    click.echo("\n" + printable_block(row["headers"]))


@quarantine.command("replay")
@click.argument("entry_id", type=ROW_ID, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every held entry.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
@pass_ctx
def replay_command(ctx: Context, entry_id: int | None, replay_all: bool, as_json: bool) -> None:
    """Run a quarantined message (or --all) through intake again."""
    if (entry_id is None) == (not replay_all):
        raise click.UsageError("give an entry id or --all (not both)")
    app = ready_app(ctx)
    results = service.replay_all(app) if replay_all else [service.replay(app, entry_id or 0)]
    for result in results:
        if as_json:
            click.echo(to_json(result.to_json()))
        else:
            lead = f" lead {result.lead_id}" if result.lead_id else ""
            echo(f"{result.source}: {result.outcome.value}{lead} ({'; '.join(result.reasons)})")
    if not results:
        click.echo("nothing to replay")
