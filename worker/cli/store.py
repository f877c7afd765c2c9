"""``leadmail store``: check the blob store against the database, and compact its packs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from worker.cli.context import Context, pass_ctx, ready_app
from worker.cli.output import echo, emit, format_option, to_json
from worker.services import storage as service

PROBLEM_COLUMNS = ["problem", "table", "column", "sha256", "detail"]
progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: on when stderr is a terminal).",
)


@click.group()
def store() -> None:
    """The blob store: raw messages and attachments, in pack files."""


@contextmanager
def _bar(description: str, show: bool | None) -> Iterator[Callable[[int, int], None]]:
    visible = sys.stderr.isatty() if show is None else show
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        disable=not visible,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


@store.command("verify")
@format_option
@progress_option
@pass_ctx
def verify_command(ctx: Context, fmt: str, progress: bool | None) -> None:
    """Read back every blob the database refers to; exit 1 with one line per problem."""
    app = ready_app(ctx)
    with _bar("verifying", progress) as advance:
        checked, problems = service.verify(app, advance)
    if fmt == "table":
        for p in problems:
            echo(f"{p['problem']}: {p['table']}.{p['column']} {p['sha256']}: {p['detail']}")
    else:
        emit(problems, PROBLEM_COLUMNS, fmt)
    click.echo(f"{checked} blob references checked, {len(problems)} problems", err=True)
    if problems:
        sys.exit(1)


@store.command("gc")
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.1,
    show_default=True,
    help="Rewrite a pack once this share of its bytes is dead (0: any dead byte).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@progress_option
@pass_ctx
def gc_command(ctx: Context, threshold: float, as_json: bool, progress: bool | None) -> None:
    """Compact packs: rewrite live records into new packs, reclaiming erased and orphaned ones.

    Erased mail is unreadable at once (its records are zeroed); this gives the space back.
    """
    app = ready_app(ctx)
    with _bar("compacting", progress) as advance:
        report = service.gc(app, advance, threshold)
    if as_json:
        click.echo(to_json(report))
        return
    click.echo(
        f"packs: {report['packs_before']} -> {report['packs_after']} "
        f"({report['packs_compacted']} compacted, {report['packs_skipped_busy']} busy, "
        f"{report['tails_cut']} torn tails cut); "
        f"bytes: {report['bytes_before']} -> {report['bytes_after']} "
        f"({report['bytes_reclaimed']} reclaimed); "
        f"{report['records_copied']} records copied, {report['dead_records']} dead dropped"
    )
