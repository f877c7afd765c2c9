"""A real SMTP server (aiosmtpd) for delivery tests: plain, STARTTLS + AUTH, or implicit TLS.

The SMTP transport must be tested against a server that speaks the protocol, because the
interesting cases are protocol cases: a 452 for one recipient and 250 for the others, a 421
that closes the session, a connection that dies in the middle of DATA or after its final dot.
`SmtpServer` runs aiosmtpd's `Controller` on a free loopback port in a thread of the test
process (it outlives any worker process a test kills); its `script` says how to answer, and its
`sink` records every message the server accepted, so a test counts deliveries per Message-ID.

`python -m tests.servers.smtp --port N --sink FILE` runs the same server in its own process
(the benchmark uses it so that the sink does not share an interpreter with the client it
measures); the sink is then a JSON-lines file that `read_sink` counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.dovecot import free_port
from tests.servers.tls import Certificates, make_certificates

Mode = Literal["plain", "starttls", "ssl"]
Stage = Literal["mail", "rcpt", "data"]

DROP_MID_DATA = "drop-mid-data"
"""Script reply: answer DATA with 354, read one line of the message, then reset the connection.
The server never saw the final dot, so it delivers nothing (RFC 5321 4.1.1.4)."""

DROP_AFTER_DATA = "drop-after-data"
"""Script reply: take the whole message (it is delivered: the sink records it), then reset the
connection before the 250 reply. The client cannot know the message arrived."""

START_TIMEOUT = 10.0

# aiosmtpd logs every connection at INFO; a test that sets up leadmail's logging would print
# those lines from the server thread.
logging.getLogger("mail.log").setLevel(logging.WARNING)


@dataclass
class Rule:
    """How to answer one stage: ``reply`` for the next ``times`` matching commands (None: always).

    ``match`` narrows the rule: the sender for ``mail``, the recipient for ``rcpt``, a recipient
    or the Message-ID (without angle brackets) for ``data``; None matches everything.
    """

    stage: Stage
    reply: str
    match: str | None = None
    times: int | None = 1
    used: int = 0


class Script:
    """The answers a test wants, consulted by the server thread; thread-safe."""

    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._lock = threading.Lock()

    def add(
        self, stage: Stage, reply: str, *, match: str | None = None, times: int | None = 1
    ) -> Rule:
        """Answer `stage` with `reply` (an SMTP reply line or DROP_*) `times` times."""
        rule = Rule(stage, reply, match.lower() if match else None, times)
        if reply == DROP_MID_DATA and stage != "data":
            raise ValueError("DROP_MID_DATA is a reply to the data stage")
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def answer(self, stage: Stage, keys: tuple[str, ...], *, mid_data: bool = False) -> str | None:
        """The scripted reply for this command, consuming one use of the rule; None: normal.

        DROP_MID_DATA rules are asked for when DATA starts (``mid_data``), before the message
        is read; every other data rule once the whole message is in.
        """
        lowered = {k.lower() for k in keys}
        with self._lock:
            for rule in self._rules:
                if rule.stage != stage or (rule.match is not None and rule.match not in lowered):
                    continue
                if (rule.reply == DROP_MID_DATA) != mid_data:
                    continue
                if rule.times is not None and rule.used >= rule.times:
                    continue
                rule.used += 1
                return rule.reply
        return None


@dataclass(frozen=True)
class Delivery:
    """One message the server accepted (or, for DROP_AFTER_DATA, took and did not confirm)."""

    message_id: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    size: int
    connection: int
    tls: bool
    login: str | None
    confirmed: bool
    raw: bytes | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "size": self.size,
            "connection": self.connection,
            "tls": self.tls,
            "login": self.login,
            "confirmed": self.confirmed,
        }


class Sink:
    """Every message the server received, in order; optionally appended to a JSON-lines file."""

    def __init__(self, keep_raw: bool = True, file: Path | None = None) -> None:
        self.keep_raw = keep_raw
        self.file = file
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._handle = file.open("a", encoding="utf-8") if file is not None else None

    def record(self, delivery: Delivery) -> None:
        with self._changed:
            self._deliveries.append(delivery)
            if self._handle is not None:
                self._handle.write(json.dumps(delivery.to_json()) + "\n")
                self._handle.flush()
            self._changed.notify_all()

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._deliveries)

    def by_message_id(self) -> Counter[str]:
        """How many times each Message-ID arrived (more than 1 is a duplicate)."""
        return Counter(d.message_id for d in self.deliveries)

    def find(self, message_id: str) -> list[Delivery]:
        wanted = message_id.strip("<>")
        return [d for d in self.deliveries if d.message_id == wanted]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least `count` messages arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._deliveries) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def clear(self) -> None:
        with self._lock:
            self._deliveries.clear()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_sink(path: Path) -> Counter[str]:
    """Deliveries per Message-ID recorded in a sink file (a server in another process)."""
    counts: Counter[str] = Counter()
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                counts[json.loads(line)["message_id"]] += 1
    return counts


def header_message_id(content: bytes) -> str:
    """The Message-ID header without angle brackets ("" when there is none)."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(content)
    return str(headers.get("Message-ID", "")).strip().strip("<>")


class _ScriptedSMTP(SMTP):
    """aiosmtpd's SMTP session with the script's drops and 421's "close after reply"."""

    def __init__(self, owner: SmtpServer, handler: Any, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            # Implicit TLS: aiosmtpd only knows STARTTLS as TLS and warns about AUTH without it.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            super().__init__(handler, **kwargs)
        self.owner = owner
        self.connection_no = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.connection_no:  # STARTTLS calls this again for the same session
            self.connection_no = self.owner._next_connection()
        super().connection_made(transport)

    async def push(self, status: Any) -> None:
        await super().push(status)
        text = status.decode() if isinstance(status, bytes) else str(status)
        if text.startswith("421") and self.transport is not None:
            # 421: "closing transmission channel" (RFC 5321 3.8); a real server hangs up.
            self.transport.close()

    async def smtp_DATA(self, arg: str) -> None:
        envelope = self.envelope
        if envelope is not None and envelope.rcpt_tos and not arg:
            keys = tuple(envelope.rcpt_tos)
            if self.owner.script.answer("data", keys, mid_data=True) is not None:
                await self.push("354 End data with <CR><LF>.<CR><LF>")
                await self._reader.readuntil(b"\r\n")
                self.owner.drops += 1
                if self.transport is not None:
                    self.transport.abort()
                return
        await super().smtp_DATA(arg)


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        reply = self.owner.script.answer("mail", (address,))
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.owner.script.answer("rcpt", (address,))
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message_id = header_message_id(content)
        reply = self.owner.script.answer("data", (*envelope.rcpt_tos, message_id))
        if reply is not None and reply != DROP_AFTER_DATA:
            return reply
        confirmed = reply is None
        login = session.auth_data
        delivery = Delivery(
            message_id=message_id,
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            size=len(content),
            connection=getattr(server, "connection_no", 0),
            tls=session.ssl is not None or self.owner.mode == "ssl",
            login=login.decode() if isinstance(login, bytes) else None,
            confirmed=confirmed,
            raw=content if self.owner.sink.keep_raw else None,
        )
        self.owner.sink.record(delivery)
        if not confirmed:
            self.owner.drops += 1
            if server.transport is not None:
                server.transport.abort()
        return "250 OK"


class _Controller(Controller):
    def __init__(self, owner: SmtpServer, **kwargs: Any) -> None:
        self.owner = owner
        super().__init__(_Handler(owner), **kwargs)

    def factory(self) -> SMTP:
        return _ScriptedSMTP(self.owner, self.handler, **self.SMTP_kwargs)


class SmtpServer:
    """One aiosmtpd server in a thread: ``plain``, ``starttls`` (+ AUTH), or ``ssl`` (implicit).

    With ``auth`` (default for the TLS modes), mail is refused until the client logged in as
    `USER` with `PASSWORD`; AUTH is only offered after TLS. `connections` counts SMTP sessions,
    so a test can see how many messages went over one connection.
    """

    USER: ClassVar[str] = "sender@northwind.example"
    PASSWORD: ClassVar[str] = "smtp-s3cret-pw"
    HOST: ClassVar[str] = "127.0.0.1"

    def __init__(
        self,
        root: Path,
        mode: Mode = "plain",
        *,
        auth: bool | None = None,
        keep_raw: bool = True,
        sink_file: Path | None = None,
        port: int | None = None,
        certificates: Certificates | None = None,
        smtputf8: bool = True,
    ) -> None:
        self.root = Path(root)
        self.mode = mode
        self.smtputf8 = smtputf8
        self.auth = mode != "plain" if auth is None else auth
        self.script = Script()
        self.sink = Sink(keep_raw=keep_raw, file=sink_file)
        self.connections = 0
        self.drops = 0
        self._port = port
        self._controller: _Controller | None = None
        self._certs = certificates
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return self.HOST

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = free_port(self.HOST)
        return self._port

    @property
    def certificates(self) -> Certificates:
        if self._certs is None:
            self._certs = make_certificates(self.root / "tls")
        return self._certs

    @property
    def ca_path(self) -> Path:
        """Trust this CA file to verify the server's certificate."""
        return self.certificates.ca

    @property
    def running(self) -> bool:
        return self._controller is not None

    def _next_connection(self) -> int:
        with self._lock:
            self.connections += 1
            return self.connections

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.USER
            and data.password.decode() == self.PASSWORD
        ):
            return AuthResult(success=True, auth_data=data.login)
        # handled=False: aiosmtpd answers 535 itself (handled=True would leave the client
        # waiting for a reply nobody sends).
        return AuthResult(success=False, handled=False)

    def start(self) -> None:
        """Listen and wait until the server greets; RuntimeError (never a skip) if it cannot."""
        if self._controller is not None:
            raise RuntimeError("SMTP server already running")
        kwargs: dict[str, Any] = {
            "hostname": self.HOST,
            "port": self.port,
            "server_hostname": "smtp.test.example",
            "ready_timeout": START_TIMEOUT,
            "decode_data": False,
            "data_size_limit": 64 * 1024 * 1024,
            "enable_SMTPUTF8": self.smtputf8,
        }
        if self.mode == "ssl":
            kwargs["ssl_context"] = self.certificates.server_context()
        elif self.mode == "starttls":
            kwargs["tls_context"] = self.certificates.server_context()
            kwargs["require_starttls"] = True
        if self.auth:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            # aiosmtpd only counts STARTTLS as TLS; implicit TLS is encrypted from the start.
            kwargs["auth_require_tls"] = self.mode == "starttls"
        controller = _Controller(self, **kwargs)
        try:
            controller.start()
        except Exception as exc:
            raise RuntimeError(
                f"SMTP server could not start on {self.HOST}:{self.port}: {exc}"
            ) from exc
        self._controller = controller
        # The controller's own readiness probe was a connection too; tests count theirs only.
        with self._lock:
            self.connections = 0

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def close(self) -> None:
        self.stop()
        self.sink.close()

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SmtpProcess:
    """`SmtpServer` (plain, no auth) in a process of its own; the sink is a JSON-lines file."""

    def __init__(self, root: Path, *, port: int | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.sink_file = self.root / "sink.jsonl"
        self.port = port or free_port(SmtpServer.HOST)
        self.host = SmtpServer.HOST
        self._proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.servers.smtp", "--port", str(self.port)),
                *("--sink", str(self.sink_file), "--root", str(self.root)),
            ],
            stdout=subprocess.PIPE,
            stderr=(self.root / "stderr.log").open("ab"),
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"SMTP sink process did not start: {line!r}")

    def counts(self) -> Counter[str]:
        return read_sink(self.sink_file)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> SmtpProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def _until_signalled() -> Iterator[threading.Event]:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    yield stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A plain SMTP sink for benchmarks and tests")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sink", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args(argv)
    server = SmtpServer(args.root, "plain", keep_raw=False, sink_file=args.sink, port=args.port)
    with _until_signalled() as stop, server:
        print(f"ready {server.port}", flush=True)
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
