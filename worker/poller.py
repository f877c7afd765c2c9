"""Pollers: one worker per (account, folder), each holding a database lease on its folder.

``run_once`` syncs a folder and returns (tests, ``leadmail poll --once``); ``run_forever``
waits for mail with IDLE (or polls), reconnects with backoff and jitter after any failure,
retries a refused login slowly, stands by while another poller holds the lease, and on stop
finishes the message in hand, releases the lease and returns.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection

from worker.config import ImapAccount, MaildirAccount, Settings
from worker.errors import AuthError, LeadmailError, LeaseHeldError, LeaseLostError
from worker.mail.message import RawMessage
from worker.services.context import App
from worker.services.intake import Intake, IntakeResult
from worker.services.preparation import FIRST_BATCH, default_workers
from worker.sources.imap import FolderReader, ImapFolder, password_for
from worker.sources.maildir import MaildirFile, MaildirWatch
from worker.store import cursors

log = logging.getLogger(__name__)

OnResult = Callable[[IntakeResult], None]


def holder_id() -> str:
    """Who holds a lease: readable in `leadmail status`, unique per process run."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class SyncReport:
    account: str
    folder: str
    found: int = 0  # messages beyond the cursor when the sync began
    outcomes: Counter[str] = field(default_factory=Counter)
    uidvalidity: int | None = None
    last_uid: int = 0
    resynced: bool = False  # UIDVALIDITY changed: the folder was read again from the start
    known: int = 0  # Maildir files whose bytes were stored before (not processed again)
    label: str = ""  # how to name the folder to people (default account/folder)

    @property
    def processed(self) -> int:
        return sum(self.outcomes.values())

    def summary(self) -> str:
        parts = ", ".join(f"{n} {o}" for o, n in sorted(self.outcomes.items())) or "nothing new"
        extra = " (new UIDVALIDITY: folder read again)" if self.resynced else ""
        return f"{self.label or f'{self.account}/{self.folder}'}: {parts}{extra}"


class Backoff:
    """Exponential backoff with full jitter: waits are random in [min, current]."""

    def __init__(self, first: float, last: float) -> None:
        self.first = first
        self.last = last
        self.current = first

    def next(self) -> float:
        wait = random.uniform(self.first, self.current)
        self.current = min(self.last, self.current * 2)
        return wait

    def reset(self) -> None:
        self.current = self.first


class FolderWorker(ABC):
    """What every folder worker shares: the lease, the cursor, intake and the supervision."""

    def __init__(
        self,
        app: App,
        account: ImapAccount | MaildirAccount,
        folder: str,
        *,
        holder: str | None = None,
        stop: threading.Event | None = None,
        on_result: OnResult | None = None,
        parse_workers: int = 0,
        sent: bool = False,
    ) -> None:
        self.app = app
        self.account = account
        self.folder = folder
        # A Sent folder: its mail is the executives' own, recorded as outbound (intake).
        self.sent = sent
        self.holder = holder or holder_id()
        self.stop = stop or threading.Event()
        self.on_result = on_result
        self.parse_workers = parse_workers
        self.poller = app.settings.poller
        self.max_bytes = account.max_message_bytes or app.settings.leads.max_message_bytes
        self._renewed = 0.0

    @property
    def where(self) -> str:
        return f"{self.account.name}/{self.folder}"

    # -- to be provided ---------------------------------------------------------------------

    @abstractmethod
    def connect(self) -> None:
        """Open the source (log in and select, or check the Maildir)."""

    @abstractmethod
    def disconnect(self) -> None:
        """Close it; never raises."""

    @abstractmethod
    def sync(self) -> SyncReport:
        """Process everything new, one transaction per message."""

    @abstractmethod
    def wait_for_mail(self) -> None:
        """Block until new mail may be there, the stop flag is set, or it is time to look."""

    # -- running ------------------------------------------------------------------------------

    def run_once(self) -> SyncReport:
        """Take the lease, sync once, give the lease back. LeaseHeldError when it is taken."""
        self.acquire()
        try:
            self.connect()
            try:
                return self.sync()
            finally:
                self.disconnect()
        except LeadmailError as exc:
            self.record_error(exc)
            raise
        finally:
            self.release()

    def run_forever(self) -> None:
        backoff = Backoff(self.poller.reconnect_min_seconds, self.poller.reconnect_max_seconds)
        standby_logged = False
        while not self.stop.is_set():
            try:
                self.acquire()
                standby_logged = False
                self.connect()
                log.info("%s: connected", self.where)
                self.sync()
                backoff.reset()
                while not self.stop.is_set():
                    self.wait_for_mail()
                    if not self.stop.is_set():
                        self.sync()
            except LeaseHeldError as exc:
                if not standby_logged:
                    log.info("%s: standing by: %s", self.where, exc)
                    standby_logged = True
                self.pause(self.poller.lease_seconds / 3)
            except LeaseLostError as exc:
                log.warning("%s: %s; standing by", self.where, exc)
                self.pause(self.poller.lease_seconds / 3)
            except AuthError as exc:
                self.record_error(exc)
                retry = self.poller.auth_retry_seconds
                log.error("%s (next try in %.0f s)", exc, retry)
                self.pause(retry)
            except Exception as exc:  # the poller must outlive any one failure
                self.record_error(exc)
                wait = backoff.next()
                if isinstance(exc, LeadmailError):
                    log.warning("%s (reconnecting in %.1f s)", exc, wait)
                else:
                    log.exception("%s: unexpected failure (retrying in %.1f s)", self.where, wait)
                self.pause(wait)
            finally:
                self.disconnect()
        self.release()

    def pause(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def sleep(self, seconds: float, tick: float = 0.5) -> None:
        """Wait between polls, keeping the lease alive; returns early on stop."""
        deadline = time.monotonic() + seconds
        while not self.heartbeat():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(tick, left))

    # -- lease and cursor ----------------------------------------------------------------------

    def acquire(self) -> cursors.Cursor:
        with self.app.db.begin() as conn:
            cursor = cursors.acquire(
                conn, self.account.name, self.folder, self.holder, self.poller.lease_seconds
            )
        self._renewed = time.monotonic()
        return cursor

    def heartbeat(self) -> bool:
        """Renew the lease when a third of it is gone; True when the worker should stop."""
        if time.monotonic() - self._renewed >= self.poller.lease_seconds / 3:
            with self.app.db.begin() as conn:
                cursors.renew(
                    conn, self.account.name, self.folder, self.holder, self.poller.lease_seconds
                )
            self._renewed = time.monotonic()
        return self.stop.is_set()

    def release(self) -> None:
        try:
            with self.app.db.begin() as conn:
                cursors.release(conn, self.account.name, self.folder, self.holder)
        except Exception:  # the lease expires by itself; never mask the real error
            log.warning("%s: could not release the lease", self.where, exc_info=True)

    def record_error(self, exc: BaseException) -> None:
        text = str(exc) if isinstance(exc, LeadmailError) else f"{type(exc).__name__}: {exc}"
        try:
            with self.app.db.begin() as conn:
                cursors.record_error(conn, self.account.name, self.folder, text)
        except Exception:
            log.debug("%s: could not record the error", self.where, exc_info=True)

    def advance(self, uidvalidity: int | None) -> Callable[[Connection, RawMessage], None]:
        """The in-transaction step of each message: cursor forward, lease checked and renewed."""
        ttl = self.poller.lease_seconds

        def step(conn: Connection, raw: RawMessage) -> None:
            cursors.advance(
                conn, self.account.name, self.folder, self.holder, uidvalidity, raw.uid or 0, ttl
            )

        return step

    def process(
        self, raws: Iterator[RawMessage], count: int, report: SyncReport, uidvalidity: int | None
    ) -> None:
        """Run messages through intake, one transaction each; stops between messages."""
        intake = Intake(self.app, max_bytes=self.max_bytes, sent=self.sent)
        # Batches the size of a FETCH: each is processed as soon as it has arrived.
        results = intake.process_many(
            raws,
            batch=self.account.batch_size,
            workers=self.workers_for(count),
            in_transaction=self.advance(uidvalidity),
        )
        self.consume(results, report)

    def workers_for(self, count: int) -> int:
        """Worker processes pay off for a backlog; a message or two from IDLE is faster here."""
        return self.parse_workers if count > 2 * self.account.batch_size else 0

    def consume(self, results: Iterator[IntakeResult], report: SyncReport) -> None:
        """Count the outcomes as they are committed; stops between messages."""
        try:
            for result in results:
                report.outcomes[result.outcome.value] += 1
                self._renewed = time.monotonic()  # advance() renewed the lease
                if self.on_result is not None:
                    self.on_result(result)
                if self.stop.is_set():
                    break
        finally:
            results.close()  # type: ignore[attr-defined]


class ImapWorker(FolderWorker):
    account: ImapAccount

    def __init__(self, app: App, account: ImapAccount, folder: str, **kwargs: object) -> None:
        super().__init__(app, account, folder, **kwargs)  # type: ignore[arg-type]
        self.imap: ImapFolder | None = None

    def connect(self) -> None:
        self.disconnect()
        readonly = True if self.sent else None
        imap = ImapFolder(self.account, self.folder, password_for(self.account), readonly=readonly)
        imap.connect()
        self.imap = imap

    def disconnect(self) -> None:
        if self.imap is not None:
            self.imap.close()
            self.imap = None

    def sync(self) -> SyncReport:
        imap = self.imap
        assert imap is not None
        state = imap.reselect()
        with self.app.db.begin() as conn:
            cursor = cursors.acquire(
                conn, self.account.name, self.folder, self.holder, self.poller.lease_seconds
            )
            report = SyncReport(self.account.name, self.folder, uidvalidity=state.uidvalidity)
            if cursor.uidvalidity != state.uidvalidity:
                if cursor.uidvalidity is not None:
                    log.warning(
                        "%s: UIDVALIDITY changed %s -> %s: reading the folder again "
                        "(messages already stored are recognised as duplicates)",
                        self.where,
                        cursor.uidvalidity,
                        state.uidvalidity,
                    )
                    report.resynced = True
                cursors.reset(conn, self.account.name, self.folder, self.holder, state.uidvalidity)
                cursor = cursors.load(conn, self.account.name, self.folder)  # type: ignore[assignment]
        self._renewed = time.monotonic()
        self._post_actions(cursor.post_action_uid, cursor.last_uid)
        uids = imap.uids_after(cursor.last_uid)
        report.found = len(uids)
        workers = self.workers_for(len(uids))
        if workers:
            self._process_in_workers(uids, workers, report, state.uidvalidity)
            # This connection sent nothing while the workers fetched, so mail that arrived
            # meanwhile was announced to nobody, and IDLE will not announce it: a NOOP asks,
            # and wait_for_mail finds the answer (heard_of_new_mail).
            imap.noop()
        elif uids:
            raws = self._fetch(imap, uids)
            self.process(raws, len(uids), report, state.uidvalidity)
        with self.app.db.begin() as conn:
            done = cursors.load(conn, self.account.name, self.folder)
            assert done is not None
            report.last_uid = done.last_uid
            waiting = len([u for u in uids if u > done.last_uid])
            cursors.record_success(conn, self.account.name, self.folder, waiting)
        self._post_actions(done.post_action_uid, done.last_uid)
        if report.processed:
            log.info("%s", report.summary())
        return report

    def _process_in_workers(
        self, uids: list[int], workers: int, report: SyncReport, uidvalidity: int
    ) -> None:
        """A backlog: each parse worker fetches the batch it parses on a connection of its
        own, so that this process, which commits every message, spends nothing on FETCH."""
        reader = FolderReader(
            self.account, self.folder, password_for(self.account), uidvalidity, self.max_bytes
        )
        intake = Intake(self.app, max_bytes=self.max_bytes, sent=self.sent)
        results = intake.process_loaded(
            reader,
            self._uid_batches(uids),
            workers,
            in_transaction=self.advance(uidvalidity),
        )
        self.consume(results, report)

    def _uid_batches(self, uids: list[int]) -> Iterator[list[int]]:
        """Batches of ``batch_size`` UIDs; the first ones small (4, 8, 16 …) so that the
        first commits need not wait for a whole batch to be fetched and parsed."""
        size, start = min(FIRST_BATCH, self.account.batch_size), 0
        while start < len(uids) and not self.stop.is_set():
            yield uids[start : start + size]
            start += size
            size = min(size * 2, self.account.batch_size)

    def _fetch(self, imap: ImapFolder, uids: list[int]) -> Iterator[RawMessage]:
        for batch in imap.fetch(uids, self.max_bytes, self.account.batch_size):
            if self.stop.is_set():
                return
            yield from batch

    def _post_actions(self, done_uid: int, last_uid: int) -> None:
        """Apply the post-action to committed messages it has not been applied to yet.

        Never in a Sent folder: the post-action is for the mail that arrives.
        """
        if self.account.post_action == "none" or self.sent or last_uid <= done_uid:
            return
        assert self.imap is not None
        pending = self.imap.uids_between(done_uid + 1, last_uid)
        # A moved message is gone from this folder: its commit must outlive a power cut.
        self.app.db.sync()
        self.imap.apply_post_action(pending)
        with self.app.db.begin() as conn:
            cursors.post_actions_done(conn, self.account.name, self.folder, last_uid)

    def wait_for_mail(self) -> None:
        imap = self.imap
        assert imap is not None
        if imap.heard_of_new_mail():
            return  # announced while we were busy: look again before waiting
        if imap.can_idle:
            imap.idle_wait(self.poller.idle_renew_seconds, self.heartbeat)
            return
        self.sleep(self.account.poll_interval)


class MaildirWorker(FolderWorker):
    account: MaildirAccount

    def __init__(
        self, app: App, account: MaildirAccount, path: Path | None = None, **kwargs: object
    ) -> None:
        """The Maildir of ``account``, or one of its Sent folders at ``path`` (``sent=True``)."""
        folder = path or account.path
        super().__init__(app, account, str(folder), **kwargs)  # type: ignore[arg-type]
        # The inbound scan leaves the Sent folders to their own workers.
        skip = frozenset() if path else frozenset(map(account.sent_path, account.sent_folders))
        # A Sent folder's messages name it, so that a quarantined one replays as sent mail.
        self.watch = MaildirWatch(folder, account.name, skip, str(folder) if self.sent else None)
        self._keys: dict[str, str] = {}  # source path -> Maildir key, until its outcome

    @property
    def where(self) -> str:
        return f"{self.account.name} (Maildir {self.folder})"

    def connect(self) -> None:
        self.watch.check()

    def disconnect(self) -> None:
        pass

    def sync(self) -> SyncReport:
        report = SyncReport(self.account.name, self.folder, label=self.where)
        files = self.watch.scan()
        report.found = len(files)
        if files:
            self.process(self._unknown(files, report), len(files), report, None)
        self._keys.clear()
        with self.app.db.begin() as conn:
            # What this scan found and a stop left unprocessed; newer files are the next scan's.
            waiting = self.watch.unseen(files)
            cursors.record_success(conn, self.account.name, self.folder, waiting)
        if report.processed:
            log.info("%s", report.summary())
        return report

    def _unknown(self, files: list[MaildirFile], report: SyncReport) -> Iterator[RawMessage]:
        """The files' messages, minus those stored before (recognised by their bytes)."""
        intake = Intake(self.app, max_bytes=self.max_bytes, sent=self.sent)
        for start in range(0, len(files), self.account.batch_size):
            if self.stop.is_set():
                return
            chunk = files[start : start + self.account.batch_size]
            read = [(f, self.watch.read(f)) for f in chunk]
            present = [(f, raw) for f, raw in read if raw is not None]
            for f, raw in read:
                if raw is None:
                    self.watch.mark(f.key)  # gone before we read it: nothing to process
            known = intake.known([raw for _, raw in present])
            for index, (f, raw) in enumerate(present):
                if index in known:
                    self.watch.mark(f.key)
                    report.known += 1
                    continue
                self._keys[raw.source] = f.key
                yield raw

    def process(
        self, raws: Iterator[RawMessage], count: int, report: SyncReport, uidvalidity: int | None
    ) -> None:
        outer = self.on_result

        def remember(result: IntakeResult) -> None:
            # Only a message with an outcome is remembered: one cut short by a stop or a
            # lost lease is read again on the next scan.
            key = self._keys.pop(result.source, None)
            if key is not None:
                self.watch.mark(key)
            if outer is not None:
                outer(result)

        self.on_result = remember
        try:
            super().process(raws, count, report, uidvalidity)
        finally:
            self.on_result = outer

    def wait_for_mail(self) -> None:
        self.sleep(self.account.poll_interval)


def workers_for(
    app: App,
    settings: Settings,
    names: tuple[str, ...] = (),
    *,
    stop: threading.Event | None = None,
    on_result: OnResult | None = None,
    holder: str | None = None,
) -> list[FolderWorker]:
    """One worker per folder of the named accounts (all accounts when none are named),
    Sent folders included."""
    accounts = [settings.account(n) for n in names] if names else list(settings.accounts)
    holder = holder or holder_id()
    found: list[FolderWorker] = []
    for account in accounts:
        if isinstance(account, MaildirAccount):
            found.append(MaildirWorker(app, account, holder=holder, stop=stop, on_result=on_result))
            for name in account.sent_folders:
                found.append(
                    MaildirWorker(
                        app,
                        account,
                        account.sent_path(name),
                        sent=True,
                        holder=holder,
                        stop=stop,
                        on_result=on_result,
                    )
                )
            continue
        for folder, sent in account.watched:
            found.append(
                ImapWorker(
                    app, account, folder, sent=sent, holder=holder, stop=stop, on_result=on_result
                )
            )
    # Worker processes are forked; forking a process with several busy threads is unsafe,
    # so only a single folder worker parses in a pool.
    if len(found) == 1:
        found[0].parse_workers = default_workers()
    return found


class Poller:
    """Runs folder workers in threads until ``stop`` is set; then waits for each to finish."""

    def __init__(self, workers: list[FolderWorker], stop: threading.Event) -> None:
        self.workers = workers
        self.stop = stop
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for worker in self.workers:
            thread = threading.Thread(
                target=worker.run_forever, name=f"poll {worker.where}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wait(self, every: float = 0.5, tick: Callable[[], None] | None = None) -> None:
        """Until stopped, calling ``tick`` every ``every`` seconds (housekeeping); then each
        worker finishes its message in hand and lets go."""
        while not self.stop.is_set() and any(t.is_alive() for t in self._threads):
            self.stop.wait(every)
            if tick is not None and not self.stop.is_set():
                try:
                    tick()
                except Exception:
                    log.exception("housekeeping failed")
        self.stop.set()
        for thread in self._threads:
            thread.join()

    def start_and_wait(self, every: float = 0.5, tick: Callable[[], None] | None = None) -> None:
        self.start()
        self.wait(every, tick)
