"""Outbound SMTP over aiosmtplib: one reused connection, and every outcome sorted for retry.

What the caller needs from a send is not an exception but a decision: was the message
delivered, to whom, and may it be tried again? `SmtpTransport.send` answers with a
`SendResult` whose `outcome` is one of:

- ``delivered``: the server took the message for every recipient (250 after DATA).
- ``partial``: the server took it for some recipients and refused others at RCPT; each
  recipient's reply is in ``recipients`` (refused_temp: 4xx, tried again later for that
  recipient only; refused_perm: 5xx, never again).
- ``temporary``: nothing was delivered and trying later may work: a 4xx reply (421 included),
  a timeout or a lost connection before DATA, a refused or failed connection, a TLS failure, a
  refused login (a password fixed later makes the next attempt work).
- ``permanent``: a 5xx reply to MAIL, to every RCPT, or to the message itself: never retried.
- ``unknown``: the connection was lost, or a reply did not come in time, after the DATA
  command was sent. The server may have received the final dot and delivered the message, or
  may not; the client cannot tell (RFC 5321 section 4.1.1.4 leaves it to the sender). We treat
  it as temporary, so the message is sent again: a connection dropped after the end of DATA and
  before the reply is the one case in which a recipient may get a message twice. Every other
  path delivers at most once. (A drop in the middle of DATA also lands here: the server
  discarded the partial message, so the retry delivers it once.)

TLS and login failures are one line naming the server and the reason, never a traceback and
never the password.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib

from worker.config import SmtpSettings

IDLE_SECONDS = 30.0
"""A connection unused this long is closed before the next send instead of reused: servers
drop idle sessions (Postfix after 300 s) and the first command would fail."""


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    PARTIAL = "partial"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"

    @property
    def retry(self) -> bool:
        """Whether trying again later may deliver what this attempt did not."""
        return self in (Outcome.TEMPORARY, Outcome.UNKNOWN)


class RecipientState(enum.StrEnum):
    ACCEPTED = "accepted"
    REFUSED_TEMP = "refused_temp"
    REFUSED_PERM = "refused_perm"


@dataclass(frozen=True)
class RecipientResult:
    state: RecipientState
    code: int
    reply: str

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "code": self.code, "reply": self.reply}


@dataclass(frozen=True)
class SendResult:
    """What one attempt did. ``reply`` is one line: the server's reply, or what went wrong."""

    outcome: Outcome
    code: int | None
    reply: str
    recipients: dict[str, RecipientResult] = field(default_factory=dict)

    @property
    def retry_recipients(self) -> list[str]:
        """Recipients a later attempt should still send to (the 4xx refusals)."""
        return [a for a, r in self.recipients.items() if r.state is RecipientState.REFUSED_TEMP]

    def results_json(self) -> dict[str, dict[str, Any]]:
        return {address: result.to_json() for address, result in self.recipients.items()}


def one_line(text: object, limit: int = 500) -> str:
    """A reply or error as one line of bounded length (multi-line replies are joined)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _state_for(code: int) -> RecipientState:
    return RecipientState.REFUSED_TEMP if 400 <= code < 500 else RecipientState.REFUSED_PERM


def _outcome_for(code: int) -> Outcome:
    return Outcome.TEMPORARY if 400 <= code < 500 else Outcome.PERMANENT


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind `exc`: aiosmtplib raises it bare during STARTTLS and wraps it in
    SMTPConnectError for implicit TLS."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _unaccepted(results: dict[str, RecipientResult]) -> dict[str, RecipientResult]:
    """The refusals only: a 250 to RCPT means nothing until the server accepted the message
    after DATA, so an aborted transaction leaves those recipients still to send to."""
    return {a: r for a, r in results.items() if r.state is not RecipientState.ACCEPTED}


class SmtpTransport:
    """One SMTP session, reused for up to ``max_per_connection`` messages.

    Not thread-safe: give each worker thread its own (with its own event loop, see
    `SyncSmtpTransport`). The password is held, never shown: not in repr, errors or logs.
    """

    def __init__(self, settings: SmtpSettings, password: str | None = None) -> None:
        self.settings = settings
        self._password = password
        self._smtp: aiosmtplib.SMTP | None = None
        self._sent_on_connection = 0
        self._last_used = 0.0
        self.connections = 0  # sessions opened, for tests and the benchmark

    def __repr__(self) -> str:
        s = self.settings
        return f"SmtpTransport({s.host}:{s.effective_port}, security={s.security})"

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.effective_port}"

    def _tls_context(self) -> ssl.SSLContext | None:
        s = self.settings
        if s.security == "none":
            return None
        if not s.verify_tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.effective_port,
            timeout=s.timeout,
            use_tls=s.security == "ssl",
            start_tls=s.security == "starttls",
            tls_context=self._tls_context(),
            validate_certs=s.verify_tls,
        )
        await smtp.connect()
        self.connections += 1
        if s.username is not None:
            await smtp.login(s.username, self._password or "")
        return smtp

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        self._sent_on_connection = 0
        if smtp is None:
            return
        try:
            if smtp.is_connected:
                await asyncio.wait_for(smtp.quit(), timeout=min(5.0, self.settings.timeout))
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            pass
        finally:
            smtp.close()

    def _drop(self) -> None:
        """Forget the session after an error: the next send connects afresh."""
        smtp, self._smtp = self._smtp, None
        self._sent_on_connection = 0
        if smtp is not None:
            smtp.close()

    async def _session(self) -> tuple[aiosmtplib.SMTP, bool]:
        """A connected session and whether it was reused (not opened for this message)."""
        stale = time.monotonic() - self._last_used > IDLE_SECONDS
        full = self._sent_on_connection >= self.settings.max_per_connection
        if self._smtp is not None and (full or stale or not self._smtp.is_connected):
            await self.close()
        if self._smtp is not None:
            return self._smtp, True
        self._smtp = await self._connect()
        return self._smtp, False

    async def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> SendResult:
        """Send one message to `recipients`; never raises for what the server or network does."""
        if not recipients:
            return SendResult(Outcome.PERMANENT, None, "no recipients")
        try:
            try:
                smtp, reused = await self._session()
            except BaseException as exc:
                self._drop()
                return self._connect_failure(exc)
            result = await self._transaction(smtp, envelope_from, recipients, raw)
            if reused and result.outcome is Outcome.TEMPORARY and result.code is None:
                # The server closed the idle session under us before MAIL: nothing was sent.
                # Once more on a fresh connection, which is what the caller would do anyway.
                self._drop()
                try:
                    smtp, _ = await self._session()
                except BaseException as exc:
                    self._drop()
                    return self._connect_failure(exc)
                result = await self._transaction(smtp, envelope_from, recipients, raw)
            return result
        finally:
            self._last_used = time.monotonic()

    def _connect_failure(self, exc: BaseException) -> SendResult:
        """Connecting, TLS or login failed: one line that says which, and where."""
        where = self.where
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            user = self.settings.username
            return SendResult(
                Outcome.TEMPORARY,
                exc.code,
                f"SMTP login as {user} refused by {where}: {exc.code} {one_line(exc.message)}",
            )
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            return SendResult(Outcome.TEMPORARY, None, f"{where}: {one_line(exc)}")
        tls_error = _ssl_cause(exc)
        if tls_error is not None:
            if isinstance(tls_error, ssl.SSLCertVerificationError):
                reason = f"certificate verify failed: {tls_error.verify_message}"
                if self.settings.ca_file is None:
                    reason += " (a private CA? set [smtp] ca_file)"
            else:
                reason = str(tls_error.reason or tls_error)
            return SendResult(
                Outcome.TEMPORARY, None, f"TLS with {where} failed: {one_line(reason)}"
            )
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            outcome = _outcome_for(exc.code)
            return SendResult(outcome, exc.code, f"{where}: {exc.code} {one_line(exc.message)}")
        if isinstance(exc, TimeoutError):
            return SendResult(Outcome.TEMPORARY, None, f"{where}: timed out connecting")
        if isinstance(exc, aiosmtplib.SMTPException | OSError):
            return SendResult(Outcome.TEMPORARY, None, f"cannot reach {where}: {one_line(exc)}")
        raise exc

    async def _transaction(
        self, smtp: aiosmtplib.SMTP, envelope_from: str, recipients: Sequence[str], raw: bytes
    ) -> SendResult:
        """MAIL, RCPT per recipient, DATA; each refusal classified where it happens."""
        results: dict[str, RecipientResult] = {}
        stage = "MAIL"
        try:
            # Internationalised addresses (RFC 6531) need SMTPUTF8; without it a server cannot
            # take them, and only those recipients are refused.
            utf8 = not all(a.isascii() for a in (envelope_from, *recipients))
            if utf8 and smtp.is_ehlo_or_helo_needed:
                await smtp.ehlo()  # the extensions are known after EHLO
            utf8 = utf8 and smtp.supports_extension("smtputf8")
            encoding = "utf-8" if utf8 else "ascii"
            await smtp.mail(envelope_from, options=["SMTPUTF8"] if utf8 else [], encoding=encoding)
            stage = "RCPT"
            for address in recipients:
                if not (utf8 or address.isascii()):
                    results[address] = RecipientResult(
                        RecipientState.REFUSED_PERM,
                        0,
                        f"not sent: {self.where} does not offer SMTPUTF8 for this address",
                    )
                    continue
                try:
                    reply = await smtp.rcpt(address, encoding=encoding)
                except aiosmtplib.SMTPRecipientRefused as refusal:
                    results[address] = RecipientResult(
                        _state_for(refusal.code), refusal.code, one_line(refusal.message)
                    )
                    if refusal.code == 421:  # the server is closing the session
                        raise
                else:
                    results[address] = RecipientResult(
                        RecipientState.ACCEPTED, reply.code, one_line(reply.message)
                    )
            accepted = [a for a, r in results.items() if r.state is RecipientState.ACCEPTED]
            if not accepted:
                await self._reset(smtp)
                codes = [r.code for r in results.values()]
                worst = next((c for c in codes if 400 <= c < 500), codes[0])
                first = next(r for r in results.values() if r.code == worst)
                return SendResult(
                    _outcome_for(worst),
                    worst,
                    f"every recipient refused: {worst} {first.reply}",
                    results,
                )
            stage = "DATA"
            response = await smtp.data(raw)
        except aiosmtplib.SMTPResponseException as exc:
            if stage == "DATA":
                # The message itself was refused: no recipient has it.
                state = _state_for(exc.code)
                for address, result in results.items():
                    if result.state is RecipientState.ACCEPTED:
                        results[address] = RecipientResult(state, exc.code, one_line(exc.message))
            if exc.code == 421 or not smtp.is_connected:
                self._drop()
            else:
                await self._reset(smtp)
            return SendResult(
                _outcome_for(exc.code),
                exc.code,
                f"{stage}: {exc.code} {one_line(exc.message)}",
                _unaccepted(results),
            )
        except aiosmtplib.SMTPNotSupported as exc:
            # An address needs SMTPUTF8 and the server does not offer it: no retry helps.
            await self._reset(smtp)
            return SendResult(
                Outcome.PERMANENT, None, f"{stage}: {one_line(exc)}", _unaccepted(results)
            )
        except (ValueError, UnicodeError) as exc:  # an address aiosmtplib will not put on the wire
            await self._reset(smtp)
            return SendResult(
                Outcome.PERMANENT,
                None,
                f"{stage}: address cannot be sent: {one_line(exc)}",
                _unaccepted(results),
            )
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            self._drop()
            what = "timed out" if isinstance(exc, TimeoutError) else f"connection lost ({exc})"
            if stage == "DATA":
                return SendResult(
                    Outcome.UNKNOWN,
                    None,
                    f"DATA: {one_line(what)} before the server's reply: it may have the message",
                    _unaccepted(results),
                )
            return SendResult(
                Outcome.TEMPORARY, None, f"{stage}: {one_line(what)}", _unaccepted(results)
            )
        self._sent_on_connection += 1
        if smtp.is_connected and self._sent_on_connection >= self.settings.max_per_connection:
            await self.close()
        refused = {a: r for a, r in results.items() if r.state is not RecipientState.ACCEPTED}
        if refused:
            first_address, first = next(iter(refused.items()))
            return SendResult(
                Outcome.PARTIAL,
                first.code,
                f"{len(refused)} of {len(results)} recipients refused, first {first_address}: "
                f"{first.code} {first.reply}",
                results,
            )
        return SendResult(
            Outcome.DELIVERED,
            response.code,
            f"{response.code} {one_line(response.message)}",
            results,
        )

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        """RSET after a refusal so the session can carry the next message; drop it if not."""
        try:
            await smtp.rset()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            self._drop()


class SyncSmtpTransport:
    """`SmtpTransport` for a thread that is not async (a dramatiq worker thread).

    Each instance owns an event loop; one instance per thread.
    """

    def __init__(self, settings: SmtpSettings, password: str | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self.transport = SmtpTransport(settings, password)

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> SendResult:
        try:
            return self._loop.run_until_complete(
                self.transport.send(envelope_from, recipients, raw)
            )
        except BaseException:
            self.transport._drop()  # whatever broke, the next send starts a fresh session
            raise

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._loop.run_until_complete(self.transport.close())
        finally:
            self._loop.close()
