"""Fixtures for delivery tests: real aiosmtpd servers and a real redis-server.

Both are cheap to start (a thread; a process answering PING in milliseconds), so every test
gets its own and may script, stop or flush it freely. They fail, never skip, when they cannot
start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers.redis import RedisServer
from tests.servers.smtp import Mode, SmtpServer
from tests.servers.tls import Certificates, make_certificates

__all__ = ["redis_server", "smtp_certificates", "smtp_factory", "smtp_server"]

SmtpFactory = Callable[..., SmtpServer]


@pytest.fixture(scope="session")
def smtp_certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """One throwaway CA + server certificate for every TLS SMTP server of the session."""
    return make_certificates(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def smtp_factory(tmp_path: Path, smtp_certificates: Certificates) -> Iterator[SmtpFactory]:
    """``smtp_factory(mode="plain"|"starttls"|"ssl", auth=None)``: started servers, all stopped
    at test end."""
    servers: list[SmtpServer] = []

    def make(mode: Mode = "plain", **kwargs: object) -> SmtpServer:
        server = SmtpServer(
            tmp_path / f"smtp-{len(servers)}",
            mode,
            certificates=smtp_certificates,
            **kwargs,  # type: ignore[arg-type]
        )
        servers.append(server)
        try:
            server.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def smtp_server(smtp_factory: SmtpFactory) -> SmtpServer:
    """A plain SMTP server without AUTH, recording what it accepts in ``sink``."""
    return smtp_factory("plain")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private, empty redis-server (no persistence), stopped by its pid at test end."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()
