"""Maildir accounts are watched like IMAP folders: new files become leads, once each."""

from __future__ import annotations

import itertools
from pathlib import Path

from sqlalchemy import func, select

from tests.integration.helpers import make_mail
from worker.config import MaildirAccount
from worker.poller import MaildirWorker
from worker.services.context import App
from worker.store.models import Message, table_of

_names = itertools.count(1_790_000_000)


def _maildir(root: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def _deliver(maildir: Path, data: bytes, sub: str = "new", flags: str = "") -> Path:
    name = f"{next(_names)}.M1P1.test"
    if sub == "cur":
        name += f":2,{flags}"
    path = maildir / sub / name
    path.write_bytes(data)
    return path


def _count(app: App) -> int:
    with app.db.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table_of(Message))) or 0


def _worker(app: App, path: Path) -> MaildirWorker:
    account = MaildirAccount(name="box", kind="maildir", path=path)
    return MaildirWorker(app, account)


def _mail(n: int) -> bytes:
    return make_mail(
        sender=f"Buyer {n} <buyer{n}@company{n}.example>",
        message_id=f"<m{n}@company{n}.example>",
        subject=f"Enquiry {n}",
    )


def test_new_files_become_leads_and_each_is_processed_once(app: App, tmp_path: Path) -> None:
    box = _maildir(tmp_path / "box")
    for n in range(3):
        _deliver(box, _mail(n))
    worker = _worker(app, box)
    first = worker.run_once()
    assert first.outcomes == {"created": 3}
    assert worker.run_once().processed == 0
    moved = _deliver(box, _mail(3))
    # A mail client moves it to cur/ and flags it: same message, not a new one.
    moved.rename(box / "cur" / f"{moved.name}:2,S")
    _deliver(box, _mail(4), sub="cur", flags="S")
    assert worker.run_once().outcomes == {"created": 2}
    assert worker.run_once().processed == 0
    assert _count(app) == 5


def test_restarted_watcher_skips_stored_files_without_parsing(app: App, tmp_path: Path) -> None:
    box = _maildir(tmp_path / "box")
    for n in range(4):
        _deliver(box, _mail(n))
    assert _worker(app, box).run_once().outcomes == {"created": 4}
    _deliver(box, _mail(9))
    again = _worker(app, box).run_once()  # a new process knows nothing of the first
    assert again.known == 4
    assert again.outcomes == {"created": 1}
    assert _count(app) == 5


def test_the_maildir_is_never_changed(app: App, tmp_path: Path) -> None:
    box = _maildir(tmp_path / "box")
    paths = [_deliver(box, _mail(n)) for n in range(3)]
    before = sorted(p.name for p in (box / "new").iterdir()), list((box / "cur").iterdir())
    _worker(app, box).run_once()
    after = sorted(p.name for p in (box / "new").iterdir()), list((box / "cur").iterdir())
    assert before == after
    assert all(p.exists() for p in paths)


def test_maildir_plus_plus_subfolders_are_watched(app: App, tmp_path: Path) -> None:
    box = _maildir(tmp_path / "box")
    sub = _maildir(box / ".Enquiries")
    _deliver(box, _mail(1))
    _deliver(sub, _mail(2))
    assert _worker(app, box).run_once().outcomes == {"created": 2}
