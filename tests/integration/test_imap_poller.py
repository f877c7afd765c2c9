"""The IMAP poller against a real Dovecot: every fault ends with every message stored once."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.integration.helpers import enquiries, make_mail
from tests.integration.imap_fixtures import DovecotFactory, ProxyFactory
from tests.servers.dovecot import Dovecot
from worker.config import ImapAccount, load_settings
from worker.errors import AuthError, FetchError, LeaseHeldError
from worker.poller import ImapWorker
from worker.services.context import App
from worker.sources.imap import FolderReader, ImapFolder
from worker.store import cursors, schema
from worker.store.models import Message, QuarantineEntry, table_of

PASSWORD_ENV = "LEADMAIL_TEST_IMAP_PASSWORD"
_messages = table_of(Message)


@pytest.fixture
def imap_app(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv(PASSWORD_ENV, Dovecot.PASSWORD)
    settings = load_settings(
        environ={
            "LEADMAIL_DATABASE__URL": db_url,
            "LEADMAIL_STORAGE__PATH": str(tmp_path / "data"),
            "LEADMAIL_POLLER__RECONNECT_MIN_SECONDS": "0.05",
            "LEADMAIL_POLLER__RECONNECT_MAX_SECONDS": "0.3",
            "LEADMAIL_POLLER__LEASE_SECONDS": "30",
            "LEADMAIL_RULES__PATH": str(tmp_path / "rules.yaml"),
        }
    )
    application = App.from_settings(settings)
    schema.upgrade(application.db.engine)
    yield application
    application.close()


def account(server: Dovecot, user: str, port: int | None = None, **extra: object) -> ImapAccount:
    return ImapAccount.model_validate(
        {
            "name": "sales",
            "kind": "imap",
            "host": server.host,
            "port": port or server.port,
            "security": "none",
            "username": user,
            "password_env": PASSWORD_ENV,
            "batch_size": 10,
            "timeout": 10,
            **extra,
        }
    )


def stored_ids(app: App) -> list[str]:
    with app.db.engine.connect() as conn:
        return list(conn.scalars(select(_messages.c.message_id).order_by(_messages.c.id)))


def assert_each_once(app: App, count: int, start: int = 0) -> None:
    ids = stored_ids(app)
    expected = {f"enquiry-{n}@firm{n}.example" for n in range(start, start + count)}
    assert len(ids) == len(set(ids)), "a message was stored twice"
    assert set(ids) == expected


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Running:
    """A worker's run_forever in a thread, stopped (and checked to stop) at the end."""

    def __init__(self, worker: ImapWorker) -> None:
        self.worker = worker
        self.thread = threading.Thread(target=worker.run_forever, daemon=True)

    def __enter__(self) -> ImapWorker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.stop.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the poller did not stop"


def test_append_becomes_lead_and_the_mailbox_is_untouched(
    imap_app: App, dovecot: Dovecot, imap_user: str
) -> None:
    dovecot.append(imap_user, "INBOX", enquiries(3))
    dovecot.append(imap_user, "INBOX", enquiries(1, start=3), flags=(b"\\Seen",))
    before = dovecot.flags(imap_user)
    worker = ImapWorker(imap_app, account(dovecot, imap_user), "INBOX")
    report = worker.run_once()
    assert report.outcomes == {"created": 4}
    assert_each_once(imap_app, 4)
    after = dovecot.flags(imap_user)
    strip = {uid: set(f) - {b"\\Recent"} for uid, f in before.items()}
    assert {uid: set(f) - {b"\\Recent"} for uid, f in after.items()} == strip
    assert not any(b"\\Seen" in f for uid, f in after.items() if uid != max(after))
    with imap_app.db.engine.connect() as conn:
        cursor = cursors.load(conn, "sales", "INBOX")
    assert cursor is not None
    assert cursor.last_uid == max(after)
    assert cursor.uidvalidity == dovecot.uidvalidity(imap_user)
    assert cursor.lease_holder is None  # released after --once
    assert worker.run_once().processed == 0


def test_idle_delivers_within_seconds(imap_app: App, dovecot: Dovecot, imap_user: str) -> None:
    dovecot.append(imap_user, "INBOX", enquiries(1))
    worker = ImapWorker(imap_app, account(dovecot, imap_user), "INBOX")
    with Running(worker):
        wait_for(lambda: len(stored_ids(imap_app)) == 1)
        started = time.monotonic()
        dovecot.append(imap_user, "INBOX", enquiries(2, start=1))
        wait_for(lambda: len(stored_ids(imap_app)) == 3, timeout=5)
        # Dovecot batches IDLE notifications for about half a second; polling would take 60 s.
        assert time.monotonic() - started < 5
    assert_each_once(imap_app, 3)
    with imap_app.db.engine.connect() as conn:
        assert cursors.load(conn, "sales", "INBOX").lease_holder is None  # type: ignore[union-attr]


def test_polling_without_idle(imap_app: App, dovecot: Dovecot, imap_user: str) -> None:
    worker = ImapWorker(imap_app, account(dovecot, imap_user, idle=False, poll_interval=1), "INBOX")
    with Running(worker):
        time.sleep(0.3)
        dovecot.append(imap_user, "INBOX", enquiries(2))
        wait_for(lambda: len(stored_ids(imap_app)) == 2, timeout=6)
    assert_each_once(imap_app, 2)


def test_server_killed_and_restarted_mid_run(
    imap_app: App, dovecot_factory: DovecotFactory, imap_user: str
) -> None:
    server = dovecot_factory()
    server.append(imap_user, "INBOX", enquiries(2))
    worker = ImapWorker(imap_app, account(server, imap_user), "INBOX")
    with Running(worker):
        wait_for(lambda: len(stored_ids(imap_app)) == 2)
        server.kill()
        time.sleep(0.5)  # the poller notices and retries against a dead port
        server.start()
        server.append(imap_user, "INBOX", enquiries(3, start=2))
        wait_for(lambda: len(stored_ids(imap_app)) == 5, timeout=20)
    assert_each_once(imap_app, 5)
    with imap_app.db.engine.connect() as conn:
        cursor = cursors.load(conn, "sales", "INBOX")
    assert cursor is not None and cursor.last_error is not None  # the outage was recorded


def test_connection_cut_in_the_middle_of_a_batch_fetch(
    imap_app: App, dovecot: Dovecot, imap_user: str, cutting_proxy: ProxyFactory
) -> None:
    dovecot.append(imap_user, "INBOX", enquiries(40))
    proxy = cutting_proxy(dovecot)
    worker = ImapWorker(imap_app, account(dovecot, imap_user, port=proxy.port), "INBOX")
    # Greeting, login, select, search and sizes are a few KB; each message is ~0.6 KB: the cut
    # lands inside the second or third 10-message FETCH.
    proxy.cut_after(12_000)
    with pytest.raises(FetchError):
        worker.run_once()
    assert proxy.cuts == 1
    partial = len(stored_ids(imap_app))
    assert 0 < partial < 40, partial
    assert worker.run_once().processed == 40 - partial
    assert_each_once(imap_app, 40)


def test_new_uidvalidity_resyncs_without_duplicates(
    imap_app: App, dovecot: Dovecot, imap_user: str
) -> None:
    folder = "Enquiries"
    dovecot.append(imap_user, folder, enquiries(3))
    worker = ImapWorker(imap_app, account(dovecot, imap_user, folders=[folder]), folder)
    assert worker.run_once().outcomes == {"created": 3}
    old = dovecot.uidvalidity(imap_user, folder)
    dovecot.delete_folder(imap_user, folder)
    dovecot.append(imap_user, folder, enquiries(4))  # the same three again, plus one
    assert dovecot.uidvalidity(imap_user, folder) != old
    report = worker.run_once()
    assert report.resynced
    assert report.outcomes == {"duplicate": 3, "created": 1}
    assert_each_once(imap_app, 4)


def test_two_pollers_on_one_folder_store_each_message_once(
    imap_app: App, dovecot: Dovecot, imap_user: str
) -> None:
    dovecot.append(imap_user, "INBOX", enquiries(20))
    first = ImapWorker(imap_app, account(dovecot, imap_user), "INBOX", holder="poller-a")
    second = ImapWorker(imap_app, account(dovecot, imap_user), "INBOX", holder="poller-b")
    with Running(first), Running(second):
        wait_for(lambda: len(stored_ids(imap_app)) == 20)
        dovecot.append(imap_user, "INBOX", enquiries(10, start=20))
        wait_for(lambda: len(stored_ids(imap_app)) == 30)
        time.sleep(0.5)
    assert_each_once(imap_app, 30)
    with imap_app.db.engine.connect() as conn:
        outcomes = set(conn.scalars(select(_messages.c.outcome)))
    assert outcomes == {"created"}  # nobody even tried a message the other one had


def test_a_held_folder_is_refused_to_a_second_run_once(
    imap_app: App, dovecot: Dovecot, imap_user: str
) -> None:
    holder = ImapWorker(imap_app, account(dovecot, imap_user), "INBOX", holder="a")
    holder.acquire()
    other = ImapWorker(imap_app, account(dovecot, imap_user), "INBOX", holder="b")
    with pytest.raises(LeaseHeldError, match="worked by a"):
        other.run_once()


def test_wrong_password_is_an_auth_error_retried_slowly(
    imap_app: App, dovecot: Dovecot, imap_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong-password")
    worker = ImapWorker(imap_app, account(dovecot, imap_user), "INBOX")
    with pytest.raises(AuthError, match=f"login as {imap_user} refused") as info:
        worker.run_once()
    assert "wrong-password" not in str(info.value)
    attempts: list[float] = []
    original = ImapWorker.connect

    def counting(self: ImapWorker) -> None:
        attempts.append(time.monotonic())
        original(self)

    monkeypatch.setattr(ImapWorker, "connect", counting)
    with Running(ImapWorker(imap_app, account(dovecot, imap_user), "INBOX")):
        time.sleep(2.5)
    assert len(attempts) == 1  # auth_retry_seconds (600) later, not in a loop
    with imap_app.db.engine.connect() as conn:
        error = cursors.load(conn, "sales", "INBOX").last_error  # type: ignore[union-attr]
    assert error is not None and "refused" in error


def test_oversize_message_is_quarantined_with_its_headers(
    imap_app: App, dovecot: Dovecot, imap_user: str
) -> None:
    big = make_mail(
        message_id="<huge@firm.example>", body="x" * 200 + "\n" + ("y" * 70 + "\n") * 400
    )
    dovecot.append(imap_user, "INBOX", [*enquiries(1), big, *enquiries(1, start=1)])
    worker = ImapWorker(imap_app, account(dovecot, imap_user, max_message_bytes=8192), "INBOX")
    report = worker.run_once()
    assert report.outcomes == {"created": 2, "quarantined": 1}
    with imap_app.db.engine.connect() as conn:
        entry = conn.execute(select(table_of(QuarantineEntry))).one()
        cursor = cursors.load(conn, "sales", "INBOX")
    assert "exceeds max_message_bytes (8192)" in entry.reason
    assert entry.size == len(big) or entry.size > 8192
    held = imap_app.blobs.get(entry.raw_sha256)
    assert b"Message-ID: <huge@firm.example>" in held and b"yyyy" not in held
    assert cursor is not None and cursor.last_uid == 3


def test_a_backlog_is_fetched_by_the_parse_workers_and_the_mailbox_is_untouched(
    imap_app: App, dovecot: Dovecot, imap_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = make_mail(
        message_id="<huge@firm.example>", body="x" * 200 + "\n" + ("y" * 70 + "\n") * 400
    )
    dovecot.append(imap_user, "INBOX", [*enquiries(20), big, *enquiries(25, start=20)])
    before = dovecot.flags(imap_user)

    def not_here(*_args: object) -> None:
        raise AssertionError("a backlog is fetched by the workers, not the committing process")

    monkeypatch.setattr(ImapWorker, "_fetch", not_here)
    worker = ImapWorker(
        imap_app,
        account(dovecot, imap_user, max_message_bytes=8192),
        "INBOX",
        parse_workers=2,
    )
    report = worker.run_once()
    assert report.outcomes == {"created": 45, "quarantined": 1}
    assert_each_once(imap_app, 45)
    with imap_app.db.engine.connect() as conn:
        entry = conn.execute(select(table_of(QuarantineEntry))).one()
        cursor = cursors.load(conn, "sales", "INBOX")
    assert "exceeds max_message_bytes (8192)" in entry.reason
    held = imap_app.blobs.get(entry.raw_sha256)
    assert b"Message-ID: <huge@firm.example>" in held and b"yyyy" not in held
    assert cursor is not None and cursor.last_uid == max(before)
    # EXAMINE and BODY.PEEK[] in the workers too (\Recent belongs to whoever looked first).
    after = dovecot.flags(imap_user)
    assert {u: set(f) - {b"\\Recent"} for u, f in after.items()} == {
        u: set(f) - {b"\\Recent"} for u, f in before.items()
    }


def test_a_worker_that_cannot_fetch_ends_the_sync_and_loses_nothing(
    imap_app: App, dovecot: Dovecot, imap_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dovecot.append(imap_user, "INBOX", enquiries(30))
    original = FolderReader.load

    def refuse(self: FolderReader, uids: list[int], batch_bytes: int) -> Iterator[list[object]]:
        if max(uids) > 12:
            raise FetchError("sales/INBOX: connection reset")
        yield from original(self, uids, batch_bytes)

    monkeypatch.setattr(FolderReader, "load", refuse)  # before the workers fork
    worker = ImapWorker(imap_app, account(dovecot, imap_user), "INBOX", parse_workers=2)
    with pytest.raises(FetchError, match="connection reset"):
        worker.run_once()
    with imap_app.db.engine.connect() as conn:
        cursor = cursors.load(conn, "sales", "INBOX")
    done = len(stored_ids(imap_app))
    assert cursor is not None and cursor.last_uid == done <= 12
    assert cursor.last_error is not None and "connection reset" in cursor.last_error
    monkeypatch.setattr(FolderReader, "load", original)
    assert worker.run_once().outcomes == {"created": 30 - done}
    assert_each_once(imap_app, 30)


def test_a_folder_reader_reads_by_uid_in_bounded_batches_and_checks_uidvalidity(
    dovecot: Dovecot, imap_user: str
) -> None:
    mails = enquiries(6)
    uids = dovecot.append(imap_user, "INBOX", mails)
    acct = account(dovecot, imap_user)
    uidvalidity = dovecot.uidvalidity(imap_user)
    reader = FolderReader(acct, "INBOX", Dovecot.PASSWORD, uidvalidity, 1 << 20)
    assert Dovecot.PASSWORD not in repr(reader)
    try:
        wanted = [uids[0], uids[2], uids[3], uids[5], max(uids) + 7]  # the last never existed
        largest = max(len(m.replace(b"\n", b"\r\n")) for m in mails)  # RFC822.SIZE: CRLF
        batches = list(reader.load(wanted, batch_bytes=largest * 2 + 1))
        assert [[raw.uid for raw in batch] for batch in batches] == [wanted[:2], wanted[2:4]]
        assert batches[0][1].data == mails[2].replace(b"\n", b"\r\n")
        assert batches[0][0].source.endswith(f";UIDVALIDITY={uidvalidity};UID={uids[0]}")
        # A copy travels without the connection (it opens its own).
        copy = pickle.loads(pickle.dumps(reader))
        assert [raw.uid for batch in copy.load(uids[:1], 1 << 20) for raw in batch] == uids[:1]
        copy.close()
    finally:
        reader.close()
    stale = FolderReader(acct, "INBOX", Dovecot.PASSWORD, uidvalidity + 1, 1 << 20)
    with pytest.raises(FetchError, match="UIDVALIDITY changed"):
        list(stale.load(uids, 1 << 20))
    assert not any(b"\\Seen" in f for f in dovecot.flags(imap_user).values())


@pytest.mark.parametrize("action", ["flag", "move:Processed"])
def test_post_action_after_commit(
    imap_app: App, dovecot: Dovecot, imap_user: str, action: str
) -> None:
    uids = dovecot.append(imap_user, "INBOX", enquiries(3))
    worker = ImapWorker(imap_app, account(dovecot, imap_user, post_action=action), "INBOX")
    assert worker.run_once().outcomes == {"created": 3}
    if action == "flag":
        flags = dovecot.flags(imap_user)
        assert all(b"\\Flagged" in flags[uid] and b"\\Seen" not in flags[uid] for uid in uids)
    else:
        assert dovecot.uids(imap_user) == []
        assert len(dovecot.uids(imap_user, "Processed")) == 3
    with imap_app.db.engine.connect() as conn:
        cursor = cursors.load(conn, "sales", "INBOX")
    assert cursor is not None and cursor.post_action_uid == max(uids)


def test_commits_are_made_durable_before_the_post_action(
    imap_app: App, dovecot: Dovecot, imap_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dovecot.append(imap_user, "INBOX", enquiries(2))
    worker = ImapWorker(imap_app, account(dovecot, imap_user, post_action="move:Done"), "INBOX")
    events: list[str] = []
    real_sync, real_apply = imap_app.db.sync, ImapFolder.apply_post_action

    def sync() -> None:
        events.append("sync")
        real_sync()

    def apply(self: ImapFolder, uids: list[int]) -> None:
        events.append(f"move {len(uids)}")
        real_apply(self, uids)

    monkeypatch.setattr(imap_app.db, "sync", sync)
    monkeypatch.setattr(ImapFolder, "apply_post_action", apply)
    assert worker.run_once().outcomes == {"created": 2}
    assert events == ["sync", "move 2"]
    assert len(dovecot.uids(imap_user, "Done")) == 2


def test_post_action_missed_by_a_crash_is_applied_next_time(
    imap_app: App, dovecot: Dovecot, imap_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uids = dovecot.append(imap_user, "INBOX", enquiries(2))
    worker = ImapWorker(imap_app, account(dovecot, imap_user, post_action="flag"), "INBOX")

    def crash(self: object, uids: list[int]) -> None:
        raise FetchError("connection lost after the commit")

    with monkeypatch.context() as patch:
        patch.setattr("worker.sources.imap.ImapFolder.apply_post_action", crash)
        with pytest.raises(FetchError):
            worker.run_once()
    assert len(stored_ids(imap_app)) == 2
    assert not any(b"\\Flagged" in f for f in dovecot.flags(imap_user).values())
    assert worker.run_once().processed == 0
    flags = dovecot.flags(imap_user)
    assert all(b"\\Flagged" in flags[uid] for uid in uids)


def test_mail_announced_during_a_sync_is_not_left_for_the_next_idle(
    imap_app: App, dovecot: Dovecot, imap_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dovecot announces mail that lands mid-sync in the reply to our FETCH; IDLE will not
    announce it again, so the poller must notice it there."""
    from worker.sources.imap import ImapFolder

    dovecot.append(imap_user, "INBOX", enquiries(1))
    original = ImapFolder.fetch
    calls: list[int] = []

    def fetch_while_mail_arrives(self: ImapFolder, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if not calls:
            dovecot.append(imap_user, "INBOX", enquiries(1, start=1))
            time.sleep(0.6)  # past Dovecot's notification batching
        calls.append(1)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ImapFolder, "fetch", fetch_while_mail_arrives)
    worker = ImapWorker(imap_app, account(dovecot, imap_user), "INBOX")
    with Running(worker):
        wait_for(lambda: len(stored_ids(imap_app)) == 2, timeout=8)
    assert_each_once(imap_app, 2)


def test_mail_that_lands_while_the_workers_fetch_a_backlog_is_not_left_for_the_next_idle(
    imap_app: App, dovecot: Dovecot, imap_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poller's own connection is silent while the workers fetch: no FETCH reply carries
    the news, so it must ask before it IDLEs."""
    dovecot.append(imap_user, "INBOX", enquiries(30))
    original = ImapWorker._uid_batches

    def batches_while_mail_arrives(self: ImapWorker, uids: list[int]) -> Iterator[list[int]]:
        for index, batch in enumerate(original(self, uids)):
            if index == 1:
                dovecot.append(imap_user, "INBOX", enquiries(1, start=30))
                time.sleep(0.6)  # past Dovecot's notification batching
            yield batch

    monkeypatch.setattr(ImapWorker, "_uid_batches", batches_while_mail_arrives)
    worker = ImapWorker(imap_app, account(dovecot, imap_user), "INBOX", parse_workers=2)
    with Running(worker):
        wait_for(lambda: len(stored_ids(imap_app)) == 31, timeout=10)
    assert_each_once(imap_app, 31)


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_certificates_are_verified(
    imap_app: App, dovecot_tls: Dovecot, imap_user: str, security: str
) -> None:
    dovecot_tls.append(imap_user, "INBOX", enquiries(1))
    port = dovecot_tls.tls_port if security == "ssl" else dovecot_tls.port
    untrusted = account(dovecot_tls, imap_user, port=port, security=security)
    with pytest.raises(FetchError, match="not trusted") as info:
        ImapWorker(imap_app, untrusted, "INBOX").run_once()
    assert "set ca_file" in str(info.value)
    trusted = account(
        dovecot_tls, imap_user, port=port, security=security, ca_file=str(dovecot_tls.ca_path)
    )
    assert ImapWorker(imap_app, trusted, "INBOX").run_once().outcomes == {"created": 1}


def test_verify_tls_false_accepts_an_unknown_certificate(
    imap_app: App, dovecot_tls: Dovecot, imap_user: str
) -> None:
    dovecot_tls.append(imap_user, "INBOX", enquiries(1))
    insecure = account(
        dovecot_tls, imap_user, port=dovecot_tls.tls_port, security="ssl", verify_tls=False
    )
    assert ImapWorker(imap_app, insecure, "INBOX").run_once().outcomes == {"created": 1}
