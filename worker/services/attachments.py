"""Files attached to a lead by hand, and writing any attachment back out to disk.

Attached files are content addressed in the blob store like a message's attachments; the
name a person (or a sender) gave is only ever used through ``safe_filename``, so saving can
never write outside the folder asked for, whatever the name says (``../../etc/passwd``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from worker.errors import NotFoundError, StoreError, ValidationError
from worker.mail.filetypes import content_type
from worker.services.context import App
from worker.services.notes import check_actor, live_lead, log_change
from worker.store import attachments as store
from worker.store import blobs
from worker.store.blobs import safe_filename


def read_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, or one line saying why not (missing, a folder, unreadable, too big)."""
    try:
        if path.is_dir():
            raise ValidationError(f"{path} is a directory, not a file", str(path))
        size = path.stat().st_size
        if size > max_bytes:
            raise ValidationError(
                f"{path} is {size} bytes, over max_message_bytes ({max_bytes})", str(path)
            )
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise ValidationError(f"{path}: no such file", str(path)) from None
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror or exc}", str(path)) from None
    if len(data) > max_bytes:  # grew since stat (a file still being written)
        raise ValidationError(f"{path} is over max_message_bytes ({max_bytes})", str(path))
    return data


def attach(app: App, lead_id: int, paths: list[Path], actor: str) -> list[dict[str, Any]]:
    """Store the files on the lead, all or none; each one logged in its timeline."""
    who = check_actor(actor)
    limit = app.settings.leads.max_message_bytes
    files = [(path, read_file(path, limit)) for path in paths]  # refuse before writing anything
    with app.db.transaction(write=False) as session:
        lead_id = live_lead(session, lead_id)
    # Blobs first and durable: a row never names bytes that are not there. A blob left by
    # a transaction that then fails is content addressed and harmless.
    stored = app.blobs.put_many(data for _, data in files)
    added: list[dict[str, Any]] = []
    with app.db.transaction() as session:
        lead_id = live_lead(session, lead_id)  # erased or merged meanwhile
        blobs.record(session.connection(), stored.refs)
        for (path, data), digest in zip(files, stored.digests, strict=True):
            name = safe_filename(path.name)
            row = store.add_to_lead(
                session,
                lead_id,
                filename=name,
                content_type=content_type(name, data),
                size=len(data),
                sha256=digest,
            )
            row["by"] = who
            log_change(
                session,
                lead_id,
                kind="attachment",
                summary=f"attached {name} ({len(data)} bytes)",
                actor=who,
                details={
                    "attachment_id": row["id"],
                    "filename": name,
                    "size": len(data),
                    "content_type": row["content_type"],
                    "sha256": digest,
                },
            )
            added.append(row)
    return added


def list_for_lead(app: App, lead_id: int) -> list[dict[str, Any]]:
    with app.db.transaction(write=False) as session:
        return store.for_lead(session, live_lead(session, lead_id))


def save(app: App, attachment_id: int, to: Path, force: bool = False) -> dict[str, Any]:
    """Write the attachment into ``to`` under its sanitised name; returns the row and path.

    The bytes are checked against their hash on read. An existing file is refused unless
    ``force``, and even then a symlink of that name is replaced, never followed.
    """
    with app.db.transaction(write=False) as session:
        row = store.get(session, attachment_id)
    if row is None:
        raise NotFoundError(f"no attachment {attachment_id}", attachment_id)
    try:
        folder = to.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        raise ValidationError(f"{to}: no such directory", str(to)) from None
    except OSError as exc:
        raise ValidationError(f"{to}: {exc.strerror or exc}", str(to)) from None
    if not folder.is_dir():
        raise ValidationError(f"{to} is not a directory", str(to))
    name = safe_filename(row["filename"])
    target = folder / name
    if target.parent != folder or Path(os.path.normpath(target)) != target:
        # safe_filename makes one plain component; this only guards that promise.
        raise ValidationError(f"attachment name {row['filename']!r} is not safe", row["filename"])
    if (target.exists() or target.is_symlink()) and not force:
        raise ValidationError(f"{target} exists (use --force to overwrite it)", str(target))
    try:
        data = app.blobs.get(row["sha256"])
    except StoreError as exc:
        raise StoreError(f"attachment {attachment_id}: {exc}", attachment_id) from None
    _write(target, data, force)
    return {**row, "path": str(target)}


def _write(target: Path, data: bytes, replace: bool) -> None:
    try:
        if not replace:
            # O_EXCL: a file that appeared since the check above is not overwritten either.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            return
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, target)  # replaces a symlink itself, never its target
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except FileExistsError:
        raise ValidationError(
            f"{target} exists (use --force to overwrite it)", str(target)
        ) from None
    except OSError as exc:
        raise ValidationError(
            f"cannot write {target}: {exc.strerror or exc}", str(target)
        ) from None
