"""`leadmail run` sends queued mail by itself: dispatcher + in-process worker (memory broker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.test_cli import invoke
from worker.transport.file import file_name


def wait_for(path: Path, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_run_sends_what_is_queued_before_and_while_it_runs(tmp_path: Path) -> None:
    maildir = tmp_path / "inbox"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    outbox = tmp_path / "outbox"
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path}/leadmail.db"
[storage]
path = "{tmp_path / "data"}"
[rules]
path = "{tmp_path / "rules.yaml"}"
[smtp]
transport = "file"
file_path = "{outbox}"
from_address = "sales@northwind.example"
[queue]
dispatch_seconds = 0.2
[[accounts]]
name = "inbox"
kind = "maildir"
path = "{maildir}"
"""
    )

    def send(to: str) -> str:
        mail = ("--to", to, "--subject", "Hello", "--body", "Hi\n", "--json", "--by", "alice")
        result = invoke(["--config", str(config), "send", *mail])
        assert result.exit_code == 0, result.stderr
        return str(json.loads(result.stdout)["message_id"])

    before = send("jane@acme-industrial.example")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADMAIL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "--config", str(config), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(outbox / file_name(before))
        during = send("bob@globex-trading.example")
        assert wait_for(outbox / file_name(during))
    finally:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "leadmail stopped" in err
    assert f"{before}: sent (attempt 1)" in err
    assert sorted(p.name for p in outbox.iterdir()) == sorted(
        file_name(m) for m in (before, during)
    )
    listed = invoke(["--config", str(config), "outbox", "list", "--format", "json"])
    assert {row["status"] for row in json.loads(listed.stdout)} == {"sent"}
