"""``leadmail ingest``: .eml files, directories, mbox files and Maildir folders."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from worker.cli.context import Context, pass_ctx, ready_app, ready_rules
from worker.cli.output import echo, to_json
from worker.services.intake import Intake
from worker.sources.local import iter_messages, total_bytes


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per message.")
@click.option("--dry-run", is_flag=True, help="Decide every message but store nothing.")
@click.option("--account", help="Account name to record (default: [ingest] account).")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: on when stderr is a terminal).",
)
@pass_ctx
def ingest(
    ctx: Context,
    paths: tuple[Path, ...],
    as_json: bool,
    dry_run: bool,
    account: str | None,
    progress: bool | None,
) -> None:
    """Ingest local mail: .eml files, directories of them, mbox files, Maildir folders."""
    app = ready_app(ctx)
    ready_rules(app)
    intake = Intake(app, dry_run=dry_run)
    name = account or app.settings.ingest.account
    show = sys.stderr.isatty() if progress is None else progress
    counts: Counter[str] = Counter()
    messages = iter_messages(paths, name)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        disable=not show,
        transient=True,
    ) as bar:
        task = bar.add_task("ingesting", total=total_bytes(paths) or None)
        for result in intake.process_many(messages):
            counts[result.outcome.value] += 1
            bar.advance(task, result.size)
            if as_json:
                click.echo(to_json(result.to_json()))
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing"
    prefix = "dry run: " if dry_run else ""
    echo(f"{prefix}{sum(counts.values())} messages: {summary}", err=as_json)
