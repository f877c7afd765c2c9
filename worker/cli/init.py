"""``leadmail init``: create or upgrade the database."""

from __future__ import annotations

import click

from worker.cli.context import Context, pass_ctx
from worker.store import schema


@click.command()
@pass_ctx
def init(ctx: Context) -> None:
    """Create the database, or upgrade it to the newest schema."""
    app = ctx.app
    app.db.check()
    before, after = schema.upgrade(app.db.engine, blob_root=app.blobs.root)
    app.blobs.sweep_legacy()  # blob files of before 0013, now in a pack and committed
    if before == after:
        click.echo(f"database is up to date (schema {after})")
    elif before is None:
        click.echo(f"database created (schema {after})")
    else:
        click.echo(f"database upgraded from schema {before} to {after}")
