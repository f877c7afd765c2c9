"""A TCP proxy that can cut its connections on command, to test recovery from network failures.

Killing the server tests a crash; this tests the other half of real life: a connection that
dies in the middle of a response (NAT timeout, Wi-Fi drop, load balancer restart) while the
server stays up.

One thread runs a selector loop over non-blocking sockets and owns every socket, so a cut never
races a read or write in another thread. Other threads talk to it through a command queue and a
wake-up socket pair, and wait for the loop to confirm.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

_CHUNK = 65536
_BUFFER_LIMIT = 1 << 20
"""Stop reading from one side while this much is waiting for the other (back-pressure)."""

_COMMAND_TIMEOUT = 5.0


def _abort(sock: socket.socket) -> None:
    """Close with RST instead of FIN: the peer sees "connection reset", as on a real cut."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's socket, ours to the server, and what is in flight."""

    client: socket.socket
    server: socket.socket
    to_client: bytearray = field(default_factory=bytearray)
    to_server: bytearray = field(default_factory=bytearray)
    client_eof: bool = False
    server_eof: bool = False
    client_shut: bool = False
    server_shut: bool = False
    since_arm: int = 0
    """Server-to-client bytes since `cut_after` was armed."""


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to a target and cuts connections when told to.

    `cut_all()` resets every live connection now; `cut_after(n)` resets the first connection
    whose server-to-client traffic passes n bytes from now, after forwarding exactly n of them.
    Connections made after a cut work normally. When the target refuses, the client's
    connection is reset right after it was accepted.
    """

    HOST = "127.0.0.1"

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.connections = 0
        """Connections accepted since start."""
        self.cuts = 0
        """Connections cut by `cut_all` or `cut_after`."""
        self._listener: socket.socket | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._commands: queue.SimpleQueue[tuple[Callable[[], object], _Reply[object]]] = (
            queue.SimpleQueue()
        )
        self._links: set[_Link] = set()
        self._masks: dict[socket.socket, int] = {}
        self._arm: int | None = None
        self._stopping = False
        self._error: BaseException | None = None

    # -- public API --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("proxy not started")
        return self._port

    @property
    def active(self) -> int:
        """Connections open right now."""
        return len(self._links)

    @property
    def armed(self) -> bool:
        """True while a `cut_after` is waiting for its connection."""
        return self._arm is not None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.HOST, 0))
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self._port = int(listener.getsockname()[1])
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"CuttingProxy:{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Reset every connection, close the listener and join the loop thread.

        Re-raises an exception that killed the loop, so a proxy bug fails the test.
        """
        thread = self._thread
        if thread is None:
            return
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self._call(self._request_stop)
            thread.join(_COMMAND_TIMEOUT)
        self._thread = None
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._wake_r = self._wake_w = None
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError("CuttingProxy loop crashed") from error

    def cut_all(self) -> int:
        """Reset every live connection, both sides; the number cut."""
        return self._call(self._cut_all)

    def cut_after(self, n_bytes: int) -> None:
        """Arm a cut: the first connection to pass n_bytes server-to-client from now is reset.

        Exactly n_bytes of the response are forwarded first (though an RST may make the
        client's kernel drop some of them), so the client sees a response cut off mid-way. One
        cut per call; arming again restarts the count.
        """
        if n_bytes < 0:
            raise ValueError("n_bytes must be >= 0")
        self._call(lambda: self._set_arm(n_bytes))

    def disarm(self) -> None:
        """Cancel a `cut_after` that has not fired yet."""
        self._call(lambda: self._set_arm(None))

    def __enter__(self) -> CuttingProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- commands (run in the loop thread) ---------------------------------------------------

    def _call(self, command: Callable[[], T]) -> T:
        """Run `command` in the loop thread and return its result."""
        if self._thread is None or not self._thread.is_alive() or self._wake_w is None:
            raise RuntimeError("proxy not running")
        reply: _Reply[T] = _Reply()
        self._commands.put((command, reply))  # type: ignore[arg-type]
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if not reply.done.wait(_COMMAND_TIMEOUT) or not reply.ok:
            raise RuntimeError("proxy loop did not answer")
        return reply.value  # type: ignore[return-value]

    def _request_stop(self) -> None:
        self._stopping = True

    def _set_arm(self, n_bytes: int | None) -> None:
        self._arm = n_bytes
        for link in self._links:
            link.since_arm = 0

    def _cut_all(self) -> int:
        count = len(self._links)
        for link in list(self._links):
            self._close(link, abort=True)
        self.cuts += count
        return count

    # -- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        assert self._selector is not None
        try:
            while not self._stopping:
                for key, events in self._selector.select(timeout=1.0):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._run_commands()
                    else:
                        link, side = key.data
                        if link in self._links:
                            self._service(link, side, events)
                for link in list(self._links):
                    self._settle(link)
        except BaseException as exc:  # reported by stop()
            self._error = exc
        finally:
            self._shutdown()

    def _run_commands(self) -> None:
        assert self._wake_r is not None
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)
        while True:
            try:
                command, reply = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                reply.value = command()
                reply.ok = True
            finally:
                reply.done.set()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _addr = self._listener.accept()
            except BlockingIOError:
                return
            self.connections += 1
            try:
                # Blocking connect: the target is local, so this is a few microseconds, and
                # a refused connection is reported at once.
                server = socket.create_connection((self.target_host, self.target_port), timeout=5)
            except OSError:
                _abort(client)
                continue
            for sock in (client, server):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(client=client, server=server)
            self._links.add(link)
            self._settle(link)

    def _service(self, link: _Link, side: str, events: int) -> None:
        src, dst_buf = (
            (link.client, link.to_server) if side == "client" else (link.server, link.to_client)
        )
        if events & selectors.EVENT_WRITE and not self._flush(link, side):
            return
        if not events & selectors.EVENT_READ:
            return
        try:
            data = src.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            self._close(link, abort=True)
            return
        if not data:
            if side == "client":
                link.client_eof = True
            else:
                link.server_eof = True
            return
        if side == "server" and self._arm is not None:
            allowed = self._arm - link.since_arm
            if len(data) > allowed:
                dst_buf += data[:allowed]
                self._flush(link, "client")
                self._arm = None
                self.cuts += 1
                self._close(link, abort=True)
                return
            link.since_arm += len(data)
        dst_buf += data

    def _flush(self, link: _Link, side: str) -> bool:
        """Send what is pending toward `side`; False if the link died."""
        sock, buf = (
            (link.client, link.to_client) if side == "client" else (link.server, link.to_server)
        )
        while buf:
            try:
                sent = sock.send(buf)
            except BlockingIOError:
                return True
            except OSError:
                self._close(link, abort=True)
                return False
            del buf[:sent]
        return True

    def _settle(self, link: _Link) -> None:
        """Forward half-closes, close finished links and update what the selector waits for."""
        if link not in self._links:
            return
        if link.server_eof and not link.to_client and not link.client_shut:
            with contextlib.suppress(OSError):
                link.client.shutdown(socket.SHUT_WR)
            link.client_shut = True
        if link.client_eof and not link.to_server and not link.server_shut:
            with contextlib.suppress(OSError):
                link.server.shutdown(socket.SHUT_WR)
            link.server_shut = True
        if link.client_shut and link.server_shut:
            self._close(link, abort=False)
            return
        client_mask = (
            selectors.EVENT_READ
            if not link.client_eof and len(link.to_server) < _BUFFER_LIMIT
            else 0
        ) | (selectors.EVENT_WRITE if link.to_client else 0)
        server_mask = (
            selectors.EVENT_READ
            if not link.server_eof and len(link.to_client) < _BUFFER_LIMIT
            else 0
        ) | (selectors.EVENT_WRITE if link.to_server else 0)
        self._watch(link.client, client_mask, (link, "client"))
        self._watch(link.server, server_mask, (link, "server"))

    def _watch(self, sock: socket.socket, mask: int, data: object) -> None:
        assert self._selector is not None
        current = self._masks.get(sock, 0)
        if mask == current:
            return
        if current == 0:
            self._selector.register(sock, mask, data)
        elif mask == 0:
            self._selector.unregister(sock)
        else:
            self._selector.modify(sock, mask, data)
        if mask:
            self._masks[sock] = mask
        else:
            self._masks.pop(sock, None)

    def _close(self, link: _Link, *, abort: bool) -> None:
        if link not in self._links:
            return
        self._links.discard(link)
        for sock in (link.client, link.server):
            self._watch(sock, 0, None)
            if abort:
                _abort(sock)
            else:
                sock.close()

    def _shutdown(self) -> None:
        for link in list(self._links):
            self._close(link, abort=True)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        # Answer whoever still waits, e.g. the stop request itself.
        while True:
            try:
                _command, reply = self._commands.get_nowait()
            except queue.Empty:
                break
            reply.done.set()


@dataclass(eq=False)
class _Reply(Generic[T]):
    """A command's result, handed from the loop thread to the caller."""

    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    value: T | None = None
