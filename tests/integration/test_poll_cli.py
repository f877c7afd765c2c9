"""`leadmail poll`, `run` and `status` as a user runs them, against a real Dovecot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from imapclient import IMAPClient
from sqlalchemy import create_engine, text

from tests.integration.helpers import enquiries
from tests.servers.dovecot import Dovecot

PASSWORD_ENV = "SALES_IMAP_PASSWORD"


def write_config(tmp_path: Path, db_url: str, server: Dovecot, user: str, **extra: str) -> Path:
    lines = [
        "[database]",
        f'url = "{db_url}"',
        "[storage]",
        f'path = "{tmp_path / "data"}"',
        "[poller]",
        "lease_seconds = 6.0",
        "reconnect_min_seconds = 0.1",
        "reconnect_max_seconds = 0.5",
        "[[accounts]]",
        'name = "sales"',
        'kind = "imap"',
        f'host = "{server.host}"',
        f"port = {server.port}",
        'security = "none"',
        f'username = "{user}"',
        f'password_env = "{PASSWORD_ENV}"',
        "batch_size = 20",
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def env(password: str = Dovecot.PASSWORD) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEADMAIL_")}
    base.update({PASSWORD_ENV: password, "LEADMAIL_SECRET": "poll-cli-test-secret-0123456789"})
    return base


def leadmail(config: Path, *args: str, password: str = Dovecot.PASSWORD) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "--config", str(config), *args],
        env=env(password),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _mails(count: int, start: int = 0) -> list[bytes]:
    return enquiries(count, start, tag="cli")


def message_ids(db_url: str) -> list[str]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.scalars(text("SELECT message_id FROM messages")))
    except Exception:  # the schema may not exist yet
        return []
    finally:
        engine.dispose()


def test_poll_once_prints_json_and_status_shows_the_cursor(
    db_url: str, tmp_path: Path, dovecot: Dovecot, imap_user: str
) -> None:
    uids = dovecot.append(imap_user, "INBOX", _mails(3))
    config = write_config(tmp_path, db_url, dovecot, imap_user)
    proc = leadmail(config, "poll", "--once", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["outcome"] for r in lines] == ["created"] * 3
    assert lines[0]["source"].startswith("imap://sales/INBOX;UIDVALIDITY=")
    assert "sales/INBOX: 3 created" in err
    status = leadmail(config, "status", "--format", "json")
    out, err = status.communicate(timeout=60)
    assert status.returncode == 0, err
    (row,) = json.loads(out)
    assert row["account"] == "sales" and row["folder"] == "INBOX"
    assert row["uidvalidity"] == dovecot.uidvalidity(imap_user)
    assert row["last_uid"] == max(uids) and row["waiting"] == 0
    assert row["last_success_at"] and row["last_error"] is None
    dovecot.append(imap_user, "INBOX", _mails(2, start=3))
    live = leadmail(config, "status", "--live", "--format", "json")
    out, err = live.communicate(timeout=60)
    assert live.returncode == 0, err
    assert json.loads(out)[0]["waiting"] == 2


def test_wrong_password_is_one_clear_line(
    db_url: str, tmp_path: Path, dovecot: Dovecot, imap_user: str
) -> None:
    config = write_config(tmp_path, db_url, dovecot, imap_user)
    proc = leadmail(config, "poll", "--once", password="not-the-password-42")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4
    assert err.strip().splitlines() == [
        f"leadmail: error: sales: login as {imap_user} refused by 127.0.0.1: "
        "LoginError: [AUTHENTICATIONFAILED] Authentication failed."
    ]
    assert "not-the-password-42" not in out + err


def test_missing_password_env_is_a_config_error(
    db_url: str, tmp_path: Path, dovecot: Dovecot, imap_user: str
) -> None:
    config = write_config(tmp_path, db_url, dovecot, imap_user)
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(config), "poll", "--once"],
        env={k: v for k, v in env().items() if k != PASSWORD_ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"environment variable {PASSWORD_ENV} (password_env) is not set" in proc.stderr


def test_poller_sigkilled_mid_batch_then_rerun_stores_each_message_once(
    db_url: str, tmp_path: Path, dovecot: Dovecot, imap_user: str
) -> None:
    count = 400
    dovecot.append(imap_user, "INBOX", _mails(count))
    before = dovecot.flags(imap_user)
    config = write_config(tmp_path, db_url, dovecot, imap_user)
    proc = leadmail(config, "poll", "--once", "--json")
    assert proc.stdout is not None
    for _ in range(120):
        assert proc.stdout.readline(), proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partial = len(message_ids(db_url))
    assert 120 <= partial < count, partial
    # The lease of the killed poller still lives: a new one waits for it or is told so.
    rerun = leadmail(config, "poll", "--once")
    _, err = rerun.communicate(timeout=60)
    if "skipped sales/INBOX" in err:
        time.sleep(6.5)  # lease_seconds
        rerun = leadmail(config, "poll", "--once")
        _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    ids = message_ids(db_url)
    assert len(ids) == len(set(ids)) == count
    assert dovecot.flags(imap_user).keys() == before.keys()
    assert not any(b"\\Seen" in f for f in dovecot.flags(imap_user).values())


def test_run_stops_cleanly_on_sigterm_and_two_runs_share_the_work(
    db_url: str, tmp_path: Path, dovecot: Dovecot, imap_user: str
) -> None:
    config = write_config(tmp_path, db_url, dovecot, imap_user)
    subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(config), "init"],
        env=env(),
        check=True,
        capture_output=True,
    )
    first, second = leadmail(config, "run"), leadmail(config, "run")
    try:
        dovecot.append(imap_user, "INBOX", _mails(30))
        deadline = time.monotonic() + 30
        while len(message_ids(db_url)) < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        # The holder dies without a word; the other one takes over when its lease expires.
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        dovecot.append(imap_user, "INBOX", _mails(10, start=30))
        deadline = time.monotonic() + 30
        while len(message_ids(db_url)) < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
    _, err = second.communicate(timeout=20)
    assert second.returncode == 0, err
    assert "leadmail stopped" in err
    ids = message_ids(db_url)
    assert len(ids) == len(set(ids)) == 40


def test_run_without_accounts_says_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/x.db"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(config), "run"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "no [[accounts]] configured" in proc.stderr


def test_run_watches_the_demo_maildir_of_make_run(tmp_path: Path) -> None:
    """`make run`: the example config's Maildir account, a file dropped in, SIGTERM."""
    repo = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-m", "worker", "demo", "write", str(tmp_path / "demo-inbox")],
        env=env(),
        check=True,
        capture_output=True,
    )
    config = tmp_path / "config.toml"
    config.write_text(
        (repo / "config.example.toml")
        .read_text()
        .replace('url = "sqlite:///leadmail.db"', f'url = "sqlite:///{tmp_path}/demo.db"')
        .replace('path = "leadmail-data"', f'path = "{tmp_path}/data"')
        .replace('path = "demo-inbox"', f'path = "{tmp_path}/demo-inbox"')
    )
    db_url = f"sqlite:///{tmp_path}/demo.db"
    proc = leadmail(config, "run")
    try:
        deadline = time.monotonic() + 30
        while len(message_ids(db_url)) < 12 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(message_ids(db_url)) == 12
        (tmp_path / "demo-inbox" / "new" / "1790000001.M9P9.test").write_bytes(
            _mails(1, start=500)[0]
        )
        deadline = time.monotonic() + 15
        while len(message_ids(db_url)) < 13 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "created cli-500@firm500.example -> lead #" in err
    assert "leadmail stopped" in err
    assert len(message_ids(db_url)) == 13


def test_the_password_never_shows_even_in_debug_logs(
    db_url: str, tmp_path: Path, dovecot: Dovecot, imap_user: str
) -> None:
    dovecot.append(imap_user, "INBOX", _mails(1))
    config = write_config(tmp_path, db_url, dovecot, imap_user)
    proc = leadmail(config, "--debug", "poll", "--once", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "LOGIN" in err or "login" in err.lower()  # the debug log did cover the login
    assert Dovecot.PASSWORD not in out + err


ONE_EXEC = """\
executives:
  - {{id: {who}, name: {who}}}
rules:
  - name: all
    assign: {{strategy: round_robin, to: [{who}]}}
"""


def test_run_reloads_a_changed_rule_file_and_keeps_the_old_one_when_broken(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    for sub in ("cur", "new", "tmp"):
        (inbox / sub).mkdir(parents=True)
    rules = tmp_path / "rules.yaml"
    rules.write_text(ONE_EXEC.format(who="alice"))
    db_url = f"sqlite:///{tmp_path}/run.db"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[storage]\npath = "{tmp_path}/data"\n'
        f'[rules]\npath = "{rules}"\nreload_seconds = 0.2\n'
        f'[[accounts]]\nname = "box"\nkind = "maildir"\npath = "{inbox}"\npoll_interval = 0.2\n'
    )

    def deliver(n: int) -> None:
        (inbox / "new" / f"17900000{n:02d}.M1P1.test").write_bytes(_mails(1, start=n)[0])

    def assigned() -> list[str | None]:
        engine = create_engine(db_url)
        try:
            with engine.connect() as conn:
                return list(conn.scalars(text("SELECT assigned_to FROM leads ORDER BY id")))
        except Exception:
            return []
        finally:
            engine.dispose()

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 20
        while len(assigned()) < count and time.monotonic() < deadline:
            time.sleep(0.1)

    proc = leadmail(config, "run")
    try:
        deliver(1)
        wait_for(1)
        rules.write_text(ONE_EXEC.format(who="bob"))
        time.sleep(0.6)
        deliver(2)
        wait_for(2)
        rules.write_text("rules: [oops\n")
        time.sleep(0.6)
        deliver(3)
        wait_for(3)
    finally:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert assigned() == ["alice", "bob", "bob"]
    assert "rule file" in err and "reloaded" in err
    # The refused file is reported once, one line per problem with its position.
    refused = [line for line in err.splitlines() if "rule file refused" in line]
    assert len(refused) == 1, err
    assert f"keeping the rules in use: {rules}:2:1: YAML syntax error" in refused[0]
    assert "Traceback" not in err


class Utf8Dovecot(Dovecot):
    """A Dovecot whose one password is not ASCII (a static passdb takes it as UTF-8)."""

    PASSWORD: ClassVar[str] = "Pässwörd-ñ-รหัส"

    def client(
        self, user: str, *, password: str | None = None, port: int | None = None
    ) -> IMAPClient:
        imap = IMAPClient(self.HOST, port=port or self.port, ssl=False, timeout=10)
        imap.plain_login(user, self.PASSWORD if password is None else password)
        return imap


@pytest.fixture
def utf8_dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    server = Utf8Dovecot(tmp_path_factory.mktemp("dovecot-utf8"))
    try:
        server.start()
    except RuntimeError as exc:
        server.close()
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.close()


def test_a_non_ascii_password_logs_in(
    db_url: str, tmp_path: Path, utf8_dovecot: Dovecot, imap_user: str
) -> None:
    utf8_dovecot.append(imap_user, "INBOX", _mails(2))
    config = write_config(tmp_path, db_url, utf8_dovecot, imap_user)
    proc = leadmail(config, "--debug", "poll", "--once", "--json", password=Utf8Dovecot.PASSWORD)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [json.loads(line)["outcome"] for line in out.splitlines()] == ["created"] * 2
    assert Utf8Dovecot.PASSWORD not in out + err


def test_a_wrong_non_ascii_password_is_one_line_without_it(
    db_url: str, tmp_path: Path, utf8_dovecot: Dovecot, imap_user: str
) -> None:
    config = write_config(tmp_path, db_url, utf8_dovecot, imap_user)
    wrong = "Fälsch-ñ-ผิด"
    proc = leadmail(config, "poll", "--once", password=wrong)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4
    (line,) = err.strip().splitlines()
    assert line.startswith(f"leadmail: error: sales: login as {imap_user} refused by 127.0.0.1: ")
    assert not any(char in out + err for char in "äñผิด")


def test_an_empty_password_variable_says_so(
    db_url: str, tmp_path: Path, dovecot: Dovecot, imap_user: str
) -> None:
    config = write_config(tmp_path, db_url, dovecot, imap_user)
    proc = leadmail(config, "poll", "--once", password="")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert out == ""
    assert err.strip().splitlines() == [
        f"leadmail: error: account sales: environment variable {PASSWORD_ENV} "
        "(password_env) is empty"
    ]
