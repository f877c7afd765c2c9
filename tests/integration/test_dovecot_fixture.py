"""The Dovecot and proxy fixtures behave like the real server the IMAP poller will meet."""

from __future__ import annotations

import socket

import pytest
from imapclient.exceptions import IMAPClientAbortError, LoginError

from tests.integration.imap_fixtures import DovecotFactory, ProxyFactory
from tests.servers.dovecot import Dovecot


def raw_mail(n: int, body_lines: int = 3) -> bytes:
    lines = [
        b"From: Jane Buyer <jane@acme-industrial.example>",
        b"To: sales@northwind.example",
        f"Subject: enquiry {n}".encode(),
        f"Message-ID: <enquiry-{n}@acme-industrial.example>".encode(),
        b"",
        *(f"line {i} of message {n}: ".encode() + b"x" * 60 for i in range(body_lines)),
        b"",
    ]
    return b"\r\n".join(lines)


def test_login_and_capabilities(dovecot: Dovecot, imap_user: str) -> None:
    with dovecot.session(imap_user) as imap:
        for capability in ("IDLE", "CONDSTORE", "UIDPLUS", "ENABLE"):
            assert imap.has_capability(capability), capability
        imap.enable("CONDSTORE")
        selected = imap.select_folder("INBOX")
    assert selected[b"EXISTS"] == 0
    assert b"HIGHESTMODSEQ" in selected


def test_many_connections_per_user(dovecot: Dovecot, imap_user: str) -> None:
    """Dovecot's default mail_max_userip_connections (10) would refuse the 11th."""
    clients = [dovecot.client(imap_user) for _ in range(15)]
    for imap in clients:
        imap.select_folder("INBOX")
        imap.logout()


def test_wrong_password_is_refused(dovecot: Dovecot, imap_user: str) -> None:
    with pytest.raises(LoginError):
        dovecot.client(imap_user, password="not-the-password")
    # No auth penalty afterwards: the next login is immediate (see the anvil note in dovecot.py).
    with dovecot.session(imap_user) as imap:
        imap.noop()


def test_append_then_peek_leaves_unseen(dovecot: Dovecot, imap_user: str) -> None:
    messages = [raw_mail(1), raw_mail(2)]
    uids = dovecot.append(imap_user, "INBOX", messages, flags=[b"\\Flagged"])
    assert uids == dovecot.uids(imap_user) == [1, 2]
    with dovecot.session(imap_user) as imap:
        imap.select_folder("INBOX")
        fetched = imap.fetch(uids, [b"BODY.PEEK[]"])
    assert [fetched[uid][b"BODY[]"] for uid in uids] == messages
    flags = dovecot.flags(imap_user)
    assert set(flags) == set(uids)
    assert all(b"\\Flagged" in f and b"\\Seen" not in f for f in flags.values())


def test_append_creates_folders_with_slash_hierarchy(dovecot: Dovecot, imap_user: str) -> None:
    for folder in ("Leads/2026", "INBOX.old", "Sent Items"):
        assert dovecot.append(imap_user, folder, [raw_mail(1)]) == [1]
        assert dovecot.uids(imap_user, folder) == [1]
    with dovecot.session(imap_user) as imap:
        assert {delimiter for _flags, delimiter, _name in imap.list_folders()} == {b"/"}


def test_idle_reports_exists(dovecot: Dovecot, imap_user: str) -> None:
    with dovecot.session(imap_user) as watcher:
        watcher.select_folder("INBOX")
        watcher.idle()
        dovecot.append(imap_user, "INBOX", [raw_mail(1)])
        responses = watcher.idle_check(timeout=5)
        watcher.idle_done()
    assert (1, b"EXISTS") in responses


def test_recreated_folder_gets_new_uidvalidity(dovecot: Dovecot, imap_user: str) -> None:
    dovecot.append(imap_user, "Quotes", [raw_mail(1), raw_mail(2)])
    before = dovecot.uidvalidity(imap_user, "Quotes")
    dovecot.delete_folder(imap_user, "Quotes")
    dovecot.create_folder(imap_user, "Quotes")
    assert dovecot.uidvalidity(imap_user, "Quotes") != before
    assert dovecot.uids(imap_user, "Quotes") == []


def test_restart_keeps_mail_and_port(dovecot_factory: DovecotFactory, imap_user: str) -> None:
    server = dovecot_factory()
    port = server.port
    server.append(imap_user, "INBOX", [raw_mail(1), raw_mail(2)])
    validity = server.uidvalidity(imap_user)
    old = server.client(imap_user)
    server.restart()
    assert server.port == port
    assert server.uids(imap_user) == [1, 2]
    assert server.uidvalidity(imap_user) == validity
    with pytest.raises((IMAPClientAbortError, OSError)):
        old.noop()


def test_kill_makes_connections_fail(dovecot_factory: DovecotFactory, imap_user: str) -> None:
    server = dovecot_factory()
    live = server.client(imap_user)
    live.select_folder("INBOX")
    server.kill()
    assert not server.running
    with pytest.raises((IMAPClientAbortError, OSError)):
        live.noop()
    with pytest.raises(ConnectionRefusedError):
        server.client(imap_user)


def test_start_fails_loudly_when_port_is_taken(tmp_path_factory: pytest.TempPathFactory) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = Dovecot(tmp_path_factory.mktemp("dovecot-taken"), port=squatter.getsockname()[1])
        try:
            with pytest.raises(RuntimeError, match="Address already in use"):
                server.start()
        finally:
            server.close()


def test_cut_after_breaks_fetch_mid_stream(
    dovecot: Dovecot, imap_user: str, cutting_proxy: ProxyFactory
) -> None:
    big = [raw_mail(n, body_lines=2000) for n in range(3)]  # ~150 kB each
    uids = dovecot.append(imap_user, "INBOX", big)
    proxy = cutting_proxy(dovecot)

    imap = dovecot.client(imap_user, port=proxy.port)
    imap.select_folder("INBOX")
    proxy.cut_after(200_000)
    with pytest.raises((IMAPClientAbortError, OSError)):
        imap.fetch(uids, [b"BODY.PEEK[]"])
    assert proxy.cuts == 1
    assert not proxy.armed

    with dovecot.session(imap_user) as again:  # direct, to compare
        again.select_folder("INBOX")
        direct = again.fetch(uids, [b"BODY.PEEK[]"])
    retry = dovecot.client(imap_user, port=proxy.port)
    retry.select_folder("INBOX")
    via_proxy = retry.fetch(uids, [b"BODY.PEEK[]"])
    retry.logout()
    assert [via_proxy[uid][b"BODY[]"] for uid in uids] == big
    assert [direct[uid][b"BODY[]"] for uid in uids] == big
    assert proxy.cuts == 1
    assert proxy.connections == 2
    assert all(b"\\Seen" not in f for f in dovecot.flags(imap_user).values())


def test_cut_all_resets_live_connections(
    dovecot: Dovecot, imap_user: str, cutting_proxy: ProxyFactory
) -> None:
    proxy = cutting_proxy(dovecot)
    first = dovecot.client(imap_user, port=proxy.port)
    second = dovecot.client(imap_user, port=proxy.port)
    assert proxy.active == 2
    assert proxy.cut_all() == 2
    for imap in (first, second):
        with pytest.raises((IMAPClientAbortError, OSError)):
            imap.noop()
    with dovecot.session(imap_user) as direct:
        direct.noop()
    after = dovecot.client(imap_user, port=proxy.port)
    after.noop()
    after.logout()
    assert proxy.cuts == 2
