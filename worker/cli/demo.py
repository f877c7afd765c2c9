"""``leadmail demo``: write the demo inbox that `make run` ingests, and show a tour of it."""

from __future__ import annotations

from pathlib import Path

import click

from worker.cli.context import Context, pass_ctx, ready_app
from worker.cli.output import echo


@click.group()
def demo() -> None:
    """Demo data for trying leadmail out."""


@demo.command("write")
@click.argument("path", type=click.Path(path_type=Path, file_okay=False), default="demo-inbox")
def write_command(path: Path) -> None:
    """Write a small Maildir of realistic sales mail to PATH (idempotent)."""
    from worker.demo import write_demo_inbox

    count = write_demo_inbox(path)
    echo(f"demo inbox: {count} messages in {path}")


@demo.command("tour")
@pass_ctx
def tour_command(ctx: Context) -> None:
    """Show the lead commands on a demo lead: a note, a call, a contact, an opportunity and
    a quotation (once per database; `make run` runs it after polling the demo inbox)."""
    from worker.services.tour import run_tour

    for line in run_tour(ready_app(ctx)):
        echo(line)
