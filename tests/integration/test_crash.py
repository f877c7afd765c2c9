"""A 2,000-message mbox ingest killed with SIGKILL and run again ends as if never killed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.mailgen import write_mbox

COUNT = 2000


def _env(db_url: str, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADMAIL_")}
    env.update(
        LEADMAIL_DATABASE__URL=db_url,
        LEADMAIL_STORAGE__PATH=str(data),
        LEADMAIL_SECRET="crash-test-secret-0123456789",
    )
    return env


def _ingest(db_url: str, data: Path, mbox: Path, kill_after: float | None = None) -> int:
    cmd = [sys.executable, "-m", "worker", "ingest", "--json", "--no-progress", str(mbox)]
    proc = subprocess.Popen(
        cmd, env=_env(db_url, data), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    if kill_after is None:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
        return len(out.splitlines())
    # Kill once it is demonstrably mid-run: after some messages have been reported.
    assert proc.stdout is not None
    seen = 0
    deadline = time.monotonic() + 300
    while seen < kill_after and time.monotonic() < deadline:
        if not proc.stdout.readline():
            break
        seen += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    _assert_no_orphans(str(mbox))
    return seen


def _assert_no_orphans(marker: str) -> None:
    """Worker processes of the killed ingest must die with it."""
    deadline = time.monotonic() + 10
    while True:
        alive = []
        for status in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if marker.encode() in status.read_bytes():
                    alive.append(status.parent.name)
            except OSError:
                continue
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not alive, f"ingest workers outlived the killed parent: {alive}"


def _state(db_url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        leads = conn.execute(
            text("SELECT email, status, person_name, company_name FROM leads ORDER BY email")
        ).all()
        messages = conn.execute(
            text(
                "SELECT m.message_id, m.kind, m.outcome, l.email FROM messages m "
                "LEFT JOIN leads l ON l.id = m.lead_id ORDER BY m.message_id"
            )
        ).all()
    engine.dispose()
    return [tuple(r) for r in leads], [tuple(r) for r in messages]


def test_sigkill_mid_ingest_then_rerun_matches_uninterrupted(
    db_url: str,
    tmp_path: Path,
    pg_database,  # type: ignore[no-untyped-def]
) -> None:
    mbox = tmp_path / "big.mbox"
    write_mbox(mbox, COUNT)
    # The reference: an uninterrupted run into a database of its own on the same backend.
    if db_url.startswith("sqlite"):
        reference_ctx = None
        reference_url = f"sqlite:///{tmp_path}/reference.db"
    else:
        reference_ctx = pg_database()
        reference_url = reference_ctx.__enter__()
    try:
        assert _ingest(reference_url, tmp_path / "ref-data", mbox) == COUNT
        expected = _state(reference_url)

        kill_at = random.Random().randint(50, COUNT - 200)
        seen = _ingest(db_url, tmp_path / "data", mbox, kill_after=kill_at)
        assert seen >= 1
        _, partial_messages = _state(db_url)
        assert 0 < len(partial_messages) < len(expected[1]), "the kill did not land mid-run"
        assert _ingest(db_url, tmp_path / "data", mbox) == COUNT
        got = _state(db_url)
        assert got[0] == expected[0], f"leads differ after kill at {kill_at}"
        assert got[1] == expected[1], f"messages differ after kill at {kill_at}"
        assert len(got[0]) > 1000
    finally:
        if reference_ctx is not None:
            reference_ctx.__exit__(None, None, None)
