"""One IMAP folder through imapclient: login, our own UID range, batched PEEK fetches, IDLE.

Everything here leaves the mailbox as it was: the folder is opened read-only (EXAMINE) unless
the account asks for a post-action, and bodies are fetched with ``BODY.PEEK[]``. Every
network or protocol failure becomes a FetchError (AuthError for a refused login) whose text
never contains the password.
"""

from __future__ import annotations

import imaplib
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from worker.config import ImapAccount
from worker.errors import AuthError, ConfigError, FetchError
from worker.mail.message import RawMessage

log = logging.getLogger(__name__)

_BODY = b"BODY[]"
_HEADER = b"BODY[HEADER]"
_SIZE = b"RFC822.SIZE"
# idle_check returns [] at once, without raising, when the server closed the connection:
# this many instant empty returns in a row mean the connection is dead.
_INSTANT_EMPTY_LIMIT = 3
# TCP keepalive finds a peer that vanished without a FIN (a dead NAT, a pulled cable) in
# about idle + interval * count seconds instead of at the next IDLE renewal.
_KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}
_NETWORK_ERRORS = (OSError, IMAPClientError, imaplib.IMAP4.error, EOFError)


@dataclass(frozen=True, slots=True)
class FolderState:
    uidvalidity: int
    exists: int
    uidnext: int | None


def password_for(account: ImapAccount, environ: dict[str, str] | None = None) -> str:
    """The account's password from the variable its ``password_env`` names.

    A variable that is not set and one that is set but empty are different mistakes (a
    missing export, an empty secret in a deployment), so each says which one it is.
    """
    env = os.environ if environ is None else environ
    password = env.get(account.password_env)
    if password is None or password == "":
        what = "is not set" if password is None else "is empty"
        raise ConfigError(
            f"account {account.name}: environment variable {account.password_env} "
            f"(password_env) {what}",
            account.password_env,
        )
    return password


def tls_context(account: ImapAccount) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(account.ca_file) if account.ca_file else None)
    if not account.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ImapFolder:
    """A logged-in connection with one folder selected; not thread-safe (one user at a time)."""

    def __init__(
        self, account: ImapAccount, folder: str, password: str, *, readonly: bool | None = None
    ) -> None:
        self.account = account
        self.folder = folder
        # Read-only unless a post-action changes the folder (never in a Sent folder).
        self.readonly = account.post_action == "none" if readonly is None else readonly
        self._password = password
        self._client: IMAPClient | None = None
        self.state: FolderState | None = None
        self._idling = False

    @property
    def where(self) -> str:
        return f"{self.account.name}/{self.folder}"

    # -- connection ---------------------------------------------------------------------

    def connect(self) -> FolderState:
        """Connect, log in and select the folder; returns its UIDVALIDITY and counts."""
        client = self.open()
        try:
            self.state = self._select(client)
        except BaseException:
            self.close()
            raise
        return self.state

    def open(self) -> IMAPClient:
        """Connect and log in, without selecting anything (APPEND needs no selected folder)."""
        account = self.account
        try:
            client = IMAPClient(
                account.host,
                port=account.effective_port,
                use_uid=True,
                ssl=account.security == "ssl",
                ssl_context=tls_context(account) if account.security == "ssl" else None,
                timeout=account.timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise self._untrusted(exc) from None
        except _NETWORK_ERRORS as exc:
            raise FetchError(
                f"{account.name}: cannot connect to {account.host}:{account.effective_port}: "
                f"{_describe(exc)}",
                account.host,
            ) from None
        self._client = client
        try:
            _keepalive(client)
            if account.security == "starttls":
                self._starttls(client)
            self._login(client)
        except BaseException:
            self.close()
            raise
        return client

    def _starttls(self, client: IMAPClient) -> None:
        try:
            client.starttls(tls_context(self.account))
        except ssl.SSLCertVerificationError as exc:
            raise self._untrusted(exc) from None
        except _NETWORK_ERRORS as exc:
            raise FetchError(f"{self.account.name}: STARTTLS failed: {_describe(exc)}") from None

    def _untrusted(self, exc: ssl.SSLCertVerificationError) -> FetchError:
        account = self.account
        return FetchError(
            f"{account.name}: TLS certificate of {account.host} not trusted: "
            f"{exc.verify_message} (set ca_file, or verify_tls = false for a test server)",
            account.host,
        )

    def _login(self, client: IMAPClient) -> None:
        """LOGIN, or AUTHENTICATE PLAIN when the user name or password is not ASCII.

        IMAP's LOGIN takes quoted 7-bit strings (imaplib encodes them as ASCII and would fail
        with an error quoting the password's first non-ASCII character); SASL PLAIN carries
        UTF-8 (RFC 4616). No error text here ever contains the password.
        """
        account = self.account
        password = self._password
        try:
            if _is_ascii(account.username) and _is_ascii(password):
                client.login(account.username, password)
            elif client.has_capability("AUTH=PLAIN"):
                client.plain_login(account.username, password)
            else:
                raise AuthError(
                    f"{account.name}: the user name or password has non-ASCII characters and "
                    f"{account.host} does not offer AUTH=PLAIN, the only way to send them",
                    account.username,
                )
        except LoginError as exc:
            raise AuthError(
                f"{account.name}: login as {account.username} refused by "
                f"{account.host}: {_without(_describe(exc), password)}",
                account.username,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise self._untrusted(exc) from None
        except UnicodeError:  # never str(exc): it quotes the offending character
            raise AuthError(
                f"{account.name}: the user name or password cannot be sent to {account.host}",
                account.username,
            ) from None
        except _NETWORK_ERRORS as exc:
            why = _without(_describe(exc), password)
            raise FetchError(f"{account.name}: login failed: {why}") from None

    def _select(self, client: IMAPClient) -> FolderState:
        try:
            info = client.select_folder(self.folder, readonly=self.readonly)
        except IMAPClientError as exc:
            raise FetchError(f"{self.where}: cannot open folder: {_describe(exc)}") from None
        uidnext = info.get(b"UIDNEXT")
        return FolderState(
            uidvalidity=int(info[b"UIDVALIDITY"]),
            exists=int(info.get(b"EXISTS", 0)),
            uidnext=int(uidnext) if uidnext is not None else None,
        )

    def reselect(self) -> FolderState:
        """Select the folder again: fresh UIDVALIDITY and counts before each sync."""
        self.state = self._select(self.client)
        self.heard_of_new_mail()  # SELECT's own EXISTS is not news
        return self.state

    def heard_of_new_mail(self) -> bool:
        """Whether the server slipped an EXISTS into a reply since the last look.

        Mail that arrives during a sync is announced in an untagged response to whatever
        command runs then; imaplib keeps it aside, and IDLE will not announce it again, so
        without this check such mail would wait for the next IDLE renewal.
        """
        client = self._client
        if client is None:
            return False
        pending = client._imap.untagged_responses
        news = pending.pop("EXISTS", None), pending.pop("RECENT", None)
        return any(news)

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise FetchError(f"{self.where}: not connected")
        return self._client

    def close(self) -> None:
        """Log out politely when the connection still works; never raises."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self._idling:
                client.idle_done()
            client.logout()
        except Exception:  # a dead connection is why we close it
            try:
                client.shutdown()
            except Exception:
                log.debug("shutdown of %s failed", self.where, exc_info=True)
        finally:
            self._idling = False

    # -- reading --------------------------------------------------------------------------

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid``; ``n:*`` always matches the highest UID, so filter it."""
        found = self._call("search", ["UID", f"{last_uid + 1}:*"])
        return sorted(uid for uid in found if uid > last_uid)

    def uids_between(self, first: int, last: int) -> list[int]:
        if last < first:
            return []
        found = self._call("search", ["UID", f"{first}:{last}"])
        return sorted(uid for uid in found if first <= uid <= last)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for chunk in _chunked(uids, 1000):
            data = self._call("fetch", chunk, [_SIZE])
            sizes.update({uid: int(item.get(_SIZE, 0)) for uid, item in data.items()})
        return sizes

    def fetch(
        self, uids: list[int], max_bytes: int, batch: int, batch_bytes: int | None = None
    ) -> Iterator[list[RawMessage]]:
        """Batches of messages in UID order, bodies by PEEK; an over-size one brings its
        headers and its real size only (intake quarantines it). A batch ends at ``batch``
        messages, or at ``batch_bytes`` of them when given (one larger message alone).

        A UID that vanished (expunged meanwhile) is skipped: there is nothing to lose.
        """
        sizes = self.sizes(uids)
        present = [u for u in uids if u in sizes]
        chunks = (
            _chunked(present, batch)
            if batch_bytes is None
            else _chunked_by_size(present, sizes, batch, batch_bytes)
        )
        for chunk in chunks:
            small = [u for u in chunk if sizes[u] <= max_bytes]
            large = [u for u in chunk if sizes[u] > max_bytes]
            bodies = self._call("fetch", small, ["BODY.PEEK[]"]) if small else {}
            heads = self._call("fetch", large, ["BODY.PEEK[HEADER]"]) if large else {}
            out: list[RawMessage] = []
            for uid in chunk:
                if uid in bodies and bodies[uid].get(_BODY) is not None:
                    out.append(self._raw(uid, bytes(bodies[uid][_BODY])))
                elif uid in heads and heads[uid].get(_HEADER) is not None:
                    out.append(self._raw(uid, bytes(heads[uid][_HEADER]), size=sizes[uid]))
            yield out

    def _raw(self, uid: int, data: bytes, size: int | None = None) -> RawMessage:
        assert self.state is not None
        return RawMessage(
            data=data,
            source=f"imap://{self.account.name}/{self.folder};UIDVALIDITY={self.state.uidvalidity};UID={uid}",
            account=self.account.name,
            folder=self.folder,
            uid=uid,
            size=size,
        )

    # -- waiting ----------------------------------------------------------------------------

    @property
    def can_idle(self) -> bool:
        return self.account.idle and self._call("has_capability", "IDLE")

    def idle_wait(self, seconds: float, should_stop: Callable[[], bool], tick: float = 0.5) -> bool:
        """IDLE for up to ``seconds``; True as soon as the server reports new mail.

        Returns early (False) when ``should_stop()`` turns true; checks it every ``tick``.
        """
        client = self.client
        try:
            client.idle()
            self._idling = True
            deadline = time.monotonic() + seconds
            instant_empties = 0
            news = False
            while not news and not should_stop():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = min(tick, left)
                started = time.monotonic()
                responses = client.idle_check(timeout=wait)
                if responses:
                    instant_empties = 0
                    news = any(_is_news(r) for r in responses)
                elif time.monotonic() - started < wait / 4:
                    instant_empties += 1
                    if instant_empties >= _INSTANT_EMPTY_LIMIT:
                        raise FetchError(f"{self.where}: connection closed by the server")
                else:
                    instant_empties = 0
            self._idling = False
            client.idle_done()
            return news
        except FetchError:
            raise
        except _NETWORK_ERRORS as exc:
            why = _describe(exc)
            raise FetchError(f"{self.where}: connection lost during IDLE: {why}") from None

    def noop(self) -> bool:
        """A NOOP that also tells whether the server reported new mail meanwhile."""
        _, responses = self._call("noop")
        return any(_is_news(r) for r in responses)

    # -- after the commit --------------------------------------------------------------------

    def apply_post_action(self, uids: list[int]) -> None:
        action = self.account.post_action
        if action == "none" or not uids:
            return
        target = action.split(":", 1)[1] if action.startswith("move:") else ""
        for chunk in _chunked(uids, 500):
            if action == "flag":
                self._call("add_flags", chunk, [b"\\Flagged"], silent=True)
            else:
                self._move(chunk, target)

    def _move(self, uids: list[int], target: str) -> None:
        if not self._call("folder_exists", target):
            self._call("create_folder", target)
        if self._call("has_capability", "MOVE"):
            self._call("move", uids, target)
            return
        self._call("copy", uids, target)
        self._call("delete_messages", uids, silent=True)
        if self._call("has_capability", "UIDPLUS"):
            self._call("uid_expunge", uids)

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """One imapclient call with its failures as FetchError."""
        try:
            return getattr(self.client, command)(*args, **kwargs)
        except FetchError:
            raise
        except _NETWORK_ERRORS as exc:
            raise FetchError(f"{self.where}: {_describe(exc)}") from None


def _is_news(response: Any) -> bool:
    return (
        isinstance(response, tuple) and len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT")
    )


def _chunked(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _chunked_by_size(
    uids: list[int], sizes: dict[int, int], count: int, volume: int
) -> Iterator[list[int]]:
    chunk: list[int] = []
    total = 0
    for uid in uids:
        size = sizes[uid]
        if chunk and (len(chunk) >= count or total + size > volume):
            yield chunk
            chunk, total = [], 0
        chunk.append(uid)
        total += size
    if chunk:
        yield chunk


class FolderReader:
    """Reads messages of one folder by UID on a connection of its own: what a parse worker
    process uses to fetch the batches it prepares, so that the committing process neither
    waits for FETCH responses nor parses them (imapclient's parser is pure Python).

    Made in the committing process and handed to the worker, which connects on first use.
    Always read-only (EXAMINE, ``BODY.PEEK[]``), whatever the account's post-action: post
    actions stay with the committing process, after the commit. A folder whose UIDVALIDITY
    is no longer ``uidvalidity`` is refused: its UIDs name other messages now.
    """

    def __init__(
        self, account: ImapAccount, folder: str, password: str, uidvalidity: int, max_bytes: int
    ) -> None:
        self.account = account
        self.folder = folder
        self.uidvalidity = uidvalidity
        self.max_bytes = max_bytes
        self._password = password
        self._imap: ImapFolder | None = None

    def __repr__(self) -> str:  # never the password
        return f"FolderReader({self.account.name}/{self.folder}, UIDVALIDITY={self.uidvalidity})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_imap": None}  # a connection does not travel

    def load(self, uids: list[int], batch_bytes: int) -> Iterator[list[RawMessage]]:
        """The messages of ``uids`` in UID order, in batches of at most ``batch_bytes``."""
        imap = self._imap
        if imap is None:
            imap = ImapFolder(self.account, self.folder, self._password, readonly=True)
            state = imap.connect()
            if state.uidvalidity != self.uidvalidity:
                imap.close()
                raise FetchError(
                    f"{imap.where}: UIDVALIDITY changed {self.uidvalidity} -> "
                    f"{state.uidvalidity} while reading",
                    self.uidvalidity,
                )
            self._imap = imap
        try:
            yield from imap.fetch(uids, self.max_bytes, len(uids), batch_bytes)
        except BaseException:
            self.close()  # a failed connection is not used again
            raise

    def close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is not None:
            imap.close()


def _keepalive(client: IMAPClient) -> None:
    sock = client.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in _KEEPALIVE.items():
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    except OSError:
        log.debug("TCP keepalive not available", exc_info=True)


def _is_ascii(text: str) -> bool:
    return text.isascii()


def _without(text: str, secret: str) -> str:
    """``text`` with any copy of ``secret`` blanked: a server may echo what it was sent."""
    return text.replace(secret, "***") if secret else text


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(text, str) and text.startswith("b'") and text.endswith("'"):
        text = text[2:-1]
    first = (text.splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def append_message(
    account: ImapAccount,
    password: str,
    folder: str,
    raw: bytes,
    flags: tuple[bytes, ...] = (b"\\Seen",),
) -> None:
    """APPEND one message to `folder` (created when missing): the copy of a mail we sent that
    the executive's own client shows in its Sent folder. FetchError in one line on failure."""
    target = ImapFolder(account, folder, password)
    client = target.open()
    try:
        if not client.folder_exists(folder):
            client.create_folder(folder)
        client.append(folder, raw, flags=list(flags))
    except _NETWORK_ERRORS as exc:
        raise FetchError(f"{target.where}: APPEND failed: {_describe(exc)}") from None
    finally:
        target.close()
