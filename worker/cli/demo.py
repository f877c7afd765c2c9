"""``leadmail demo``: write the demo inbox that `make run` ingests."""

from __future__ import annotations

from pathlib import Path

import click

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
