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


def _assert_blobs_verify(db_url: str, data: Path) -> None:
    """`leadmail store verify`: every blob a row names is there and hashes right."""
    cmd = [sys.executable, "-m", "worker", "store", "verify", "--no-progress"]
    done = subprocess.run(cmd, env=_env(db_url, data), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert done.stdout == b""
    assert done.stderr.decode().endswith(" 0 problems\n")


# Runs `python -m worker ingest …` with os.pwrite (only the pack writer uses it) replaced: the
# KILL_AT_WRITE-th call in any process writes half its records, then SIGKILLs the whole
# process group — the ingest and its parse workers — as a power cut or the OOM killer might.
_KILLING_WRITER = """
import os, runpy, signal, sys
real, calls, limit = os.pwrite, [0], int(os.environ["KILL_AT_WRITE"])
def pwrite(fd, data, offset):
    calls[0] += 1
    if calls[0] >= limit:
        real(fd, bytes(data[: max(1, len(data) // 2)]), offset)
        os.killpg(0, signal.SIGKILL)
    return real(fd, data, offset)
os.pwrite = pwrite
sys.argv = ["worker", *sys.argv[1:]]
runpy.run_module("worker", run_name="__main__")
"""


def _ingest_killed_in_a_write(db_url: str, data: Path, mbox: Path, at_write: int) -> None:
    cmd = [sys.executable, "-c", _KILLING_WRITER, "ingest", "--no-progress", str(mbox)]
    env = {**_env(db_url, data), "KILL_AT_WRITE": str(at_write)}
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=600, start_new_session=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    _assert_no_orphans(str(mbox))


def _torn_packs(data: Path) -> list[str]:
    from worker.store import packs

    directory = data / "blobs" / "packs"
    torn = []
    for name in packs.pack_names(directory):
        fd = os.open(directory / name, os.O_RDONLY)
        try:
            _, end = packs.scan(fd)
            if end < os.fstat(fd).st_size:
                torn.append(name)
        finally:
            os.close(fd)
    return torn


def test_sigkill_during_blob_writes_loses_and_corrupts_nothing(
    db_url: str,
    tmp_path: Path,
    pg_database,  # type: ignore[no-untyped-def]
) -> None:
    mbox = tmp_path / "big.mbox"
    write_mbox(mbox, COUNT)
    expected = _reference_state(db_url, tmp_path, pg_database, mbox)
    rng = random.Random()
    writes = [rng.randint(2, 12), rng.randint(2, 12), rng.randint(2, 12)]
    for number, at_write in enumerate(writes):
        _ingest_killed_in_a_write(db_url, tmp_path / "data", mbox, at_write)
        if number == 0:
            assert _torn_packs(tmp_path / "data"), "the kill left no torn record"
    assert _ingest(db_url, tmp_path / "data", mbox) == COUNT
    got = _state(db_url)
    assert got == expected, f"state differs after kills at writes {writes}"
    _assert_blobs_verify(db_url, tmp_path / "data")
    # gc drops what the killed runs wrote and never committed; every blob still reads.
    gc = [sys.executable, "-m", "worker", "store", "gc", "--json", "--no-progress"]
    done = subprocess.run(gc, env=_env(db_url, tmp_path / "data"), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert _torn_packs(tmp_path / "data") == []
    _assert_blobs_verify(db_url, tmp_path / "data")


def _reference_state(
    db_url: str,
    tmp_path: Path,
    pg_database,  # type: ignore[no-untyped-def]
    mbox: Path,
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """What an uninterrupted ingest of ``mbox`` leaves, in a database of its own on the same
    backend (dropped again on PostgreSQL)."""
    if db_url.startswith("sqlite"):
        reference_url = f"sqlite:///{tmp_path}/reference.db"
        assert _ingest(reference_url, tmp_path / "ref-data", mbox) == COUNT
        return _state(reference_url)
    with pg_database() as reference_url:
        assert _ingest(reference_url, tmp_path / "ref-data", mbox) == COUNT
        return _state(reference_url)


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
    expected = _reference_state(db_url, tmp_path, pg_database, mbox)

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
    _assert_blobs_verify(db_url, tmp_path / "data")
