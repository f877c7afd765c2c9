"""Fixtures for tests against a real Dovecot IMAP server (see tests/servers/dovecot.py).

One server per test session (per xdist worker) serves every test that only reads and writes
mail: each test gets its own user name, hence its own empty mailbox. Tests that kill or restart
the server take a private one from `dovecot_factory`, so they cannot break their neighbours.
The fixtures fail, never skip, when Dovecot cannot start.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.servers.dovecot import Dovecot
from tests.servers.tcpproxy import CuttingProxy

__all__ = ["cutting_proxy", "dovecot", "dovecot_factory", "dovecot_tls", "imap_user"]

DovecotFactory = Callable[[], Dovecot]
ProxyFactory = Callable[[Dovecot], CuttingProxy]


def _started(server: Dovecot) -> Dovecot:
    try:
        server.start()
    except RuntimeError as exc:
        server.close()
        pytest.fail(str(exc), pytrace=False)
    return server


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """The shared server; do not kill or restart it (use `dovecot_factory` for that)."""
    server = _started(Dovecot(tmp_path_factory.mktemp("dovecot")))
    yield server
    server.close()


@pytest.fixture(scope="session")
def dovecot_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """A server with a certificate from its own throwaway CA (imaps on ``tls_port``,
    STARTTLS on ``port``); trust ``ca_path`` to verify it."""
    server = _started(Dovecot(tmp_path_factory.mktemp("dovecot-tls"), tls=True))
    yield server
    server.close()


@pytest.fixture
def dovecot_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotFactory]:
    """Private, started servers for tests that kill or restart them; all closed at test end."""
    servers: list[Dovecot] = []

    def make() -> Dovecot:
        server = Dovecot(tmp_path_factory.mktemp("dovecot-private"))
        servers.append(server)
        return _started(server)

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def imap_user() -> str:
    """A user name nobody used before, so the test starts with an empty mailbox."""
    return f"u-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cutting_proxy() -> Iterator[ProxyFactory]:
    """Started `CuttingProxy`s in front of a server; all stopped at test end."""
    proxies: list[CuttingProxy] = []

    def make(server: Dovecot) -> CuttingProxy:
        proxy = CuttingProxy(server.host, server.port)
        proxies.append(proxy)
        proxy.start()
        return proxy

    yield make
    errors = []
    for proxy in proxies:
        try:
            proxy.stop()
        except RuntimeError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
