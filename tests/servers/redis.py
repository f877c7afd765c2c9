"""A throwaway redis-server on a free loopback port, for the dramatiq broker in tests.

No persistence (``--save '' --appendonly no``): a restart or FLUSHALL loses every queued
message, which is exactly what the exactly-once tests do to it on purpose. Stopped by its own
pid, never by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import ClassVar

import redis

from tests.servers.dovecot import free_port

REDIS_BIN = os.environ.get("LEADMAIL_TEST_REDIS", shutil.which("redis-server") or "redis-server")
"""The redis-server binary; override with LEADMAIL_TEST_REDIS."""

START_TIMEOUT = 10.0


class RedisServer:
    """One redis-server process; `restart()` keeps the port (and loses the data)."""

    HOST: ClassVar[str] = "127.0.0.1"

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return self.HOST

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = free_port(self.HOST)
        return self._port

    @property
    def url(self) -> str:
        """The broker URL for ``[queue] broker`` (database 0)."""
        return f"redis://{self.HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.root / "redis.log"

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.HOST, port=self.port, socket_timeout=5)

    def start(self) -> None:
        """Start and wait for PONG; RuntimeError (never a skip) when it does not come."""
        if self.running:
            raise RuntimeError(f"redis-server already running (pid {self.pid})")
        if not (Path(REDIS_BIN).is_file() or shutil.which(REDIS_BIN)):
            raise RuntimeError(
                f"redis-server not found ({REDIS_BIN}): run `make services` "
                "(Debian: apt-get install redis-server)"
            )
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [REDIS_BIN, *self._arguments()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(f"redis-server exited with status {code}\n{self._log_tail()}")
            with contextlib.suppress(redis.RedisError), self.client() as probe:
                if probe.ping():
                    return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer PING\n{self._log_tail()}")
            time.sleep(0.01)

    def _arguments(self) -> list[str]:
        options = {
            "port": str(self.port),
            "bind": self.HOST,
            "save": "",
            "appendonly": "no",
            "dir": str(self.root),
            "daemonize": "no",
        }
        return [part for key, value in options.items() for part in (f"--{key}", value)]

    def flushall(self) -> None:
        """Forget every key: every queued dramatiq message is gone."""
        with self.client() as conn:
            conn.flushall()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM by pid, then SIGKILL if it lingers."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None

    def kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._proc = None

    def restart(self) -> None:
        """Kill (a crash) and start again on the same port, empty."""
        self.kill()
        self.start()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
