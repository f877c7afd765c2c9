"""blob packs: blobs become records in append-only pack files, located by the blobs table

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 10:00:00

One file per blob cost a directory entry and a share of an fsync per message (issue 13).
The blobs table maps a sha256 to its record (pack, offset, length). Existing per-file blobs
(``<storage>/blobs/ab/<sha256>``) are copied into a pack here, each checked against its name;
``leadmail init`` passes the blob directory in (``blob_root``) and removes the old files once
this transaction has committed (``BlobStore.sweep_legacy``). A database whose blob directory
is absent, or that is upgraded without one (tests), just gets the table.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)
_BATCH_BYTES = 8 << 20


def upgrade() -> None:
    blobs = op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("pack", sa.String(length=64), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_index("ix_blobs_pack", "blobs", ["pack"])
    root = context.config.attributes.get("blob_root")
    if root is not None and Path(root).is_dir():
        _move_files(Path(root), blobs)


def _move_files(root: Path, blobs: sa.Table) -> None:
    from worker.store.blobs import legacy_files, sha256_hex
    from worker.store.packs import PackWriter

    writer = PackWriter(root / "packs")
    now = datetime.now(UTC)
    batch: list[tuple[str, bytes]] = []
    volume = moved = 0

    def flush() -> None:
        nonlocal batch, volume, moved
        if batch:
            refs = writer.append_many(batch)  # fsynced before this transaction commits
            op.get_bind().execute(
                sa.insert(blobs),
                [
                    {
                        "sha256": r.sha256,
                        "pack": r.pack,
                        "offset": r.offset,
                        "length": r.length,
                        "created_at": now,
                    }
                    for r in refs
                ],
            )
            moved += len(refs)
        batch, volume = [], 0

    try:
        for digest, path in legacy_files(root):
            data = path.read_bytes()
            if sha256_hex(data) != digest:
                log.warning("blob file %s does not match its name: not moved", path)
                continue
            batch.append((digest, data))
            volume += len(data)
            if volume >= _BATCH_BYTES:
                flush()
        flush()
    finally:
        writer.close()
    if moved:
        log.info("moved %d blob files into packs", moved)


def downgrade() -> None:
    root = context.config.attributes.get("blob_root")
    if root is not None and (Path(root) / "packs").is_dir():
        _write_files(Path(root))
    op.drop_index("ix_blobs_pack", table_name="blobs")
    op.drop_table("blobs")


def _write_files(root: Path) -> None:
    """Every blob back to its own file (the layout before 0013), fsynced; packs stay."""
    import os

    from worker.store.packs import BlobRef, fsync_dir, read

    rows = op.get_bind().execute(sa.text('SELECT sha256, pack, "offset", length FROM blobs'))
    for sha256, pack, offset, length in rows:
        data = read(root / "packs", BlobRef(sha256, pack, offset, length))
        directory = root / sha256[:2]
        directory.mkdir(exist_ok=True)
        temp = directory / f".{sha256}.tmp"
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(directory / sha256)
        fsync_dir(directory)
