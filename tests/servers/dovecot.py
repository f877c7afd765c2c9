"""A throwaway Dovecot IMAP server for integration tests, run without systemd.

The IMAP poller must be tested against a real server: UID/UIDVALIDITY rules, IDLE, CONDSTORE
and flag handling are where fakes lie. Every instance has its own config, sockets, state and
mailboxes; any user name logs in with `Dovecot.PASSWORD`, so a test that uses a fresh user name
has a fresh, empty mailbox on a shared server.

Dovecot refuses to run mail processes as uid 0 ("userdb returned 0 as uid"), even with
``first_valid_uid = 0``. When we are root, mailboxes therefore belong to ``nobody`` and live in
a scratch directory under the system temp dir: pytest's own temp dirs are 0700 root and
``nobody`` could not reach them. ``base_dir`` lives there too, which also keeps unix socket
paths under the 108-byte limit whatever ``--basetemp`` is. As an ordinary user, every Dovecot
service and the mailboxes run as that user instead.

Folders use "/" as hierarchy separator (``Leads/2026``), like Gmail and Exchange.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from imapclient import IMAPClient

DOVECOT_BIN = os.environ.get("LEADMAIL_TEST_DOVECOT", "/usr/sbin/dovecot")
"""The dovecot binary; override with LEADMAIL_TEST_DOVECOT (e.g. a build of another version)."""

START_TIMEOUT = 10.0
"""Seconds to wait for the greeting; a loaded CI box starts Dovecot in well under one."""

_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel picks it; a small race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, read from /proc.

    ``killpg(pgid, 0)`` is not enough: orphaned children that died are zombies until init reaps
    them, and a zombie still counts as a group member.
    """
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:])


class Dovecot:
    """One private Dovecot master process and everything it owns.

    `restart()` keeps mailboxes and port; `close()` (and the context manager) stops the server
    and deletes the mailboxes.
    """

    PASSWORD: ClassVar[str] = "s3cret-pw"
    """Every user name logs in with this password; anything else fails."""

    HOST: ClassVar[str] = "127.0.0.1"

    def __init__(self, root: Path, port: int | None = None, tls: bool = False) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self._tls_port: int | None = None
        self._port = port
        self._port_fixed = port is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._scratch: Path | None = None
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._mail_uid, self._mail_gid = nobody.pw_uid, nobody.pw_gid
        else:
            self._mail_uid, self._mail_gid = os.getuid(), os.getgid()

    # -- paths -------------------------------------------------------------------------------

    @property
    def conf_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        """Dovecot's own log (errors and info); the first place to look when a test fails."""
        return self.root / "dovecot.log"

    @property
    def stderr_path(self) -> Path:
        """Output before logging is set up, e.g. configuration errors."""
        return self.root / "dovecot.stderr"

    @property
    def mail_root(self) -> Path:
        """Parent of the users' home directories (``<mail_root>/<user>/Maildir``)."""
        return self._scratch_dir() / "mail"

    @property
    def ca_path(self) -> Path:
        """The CA that signed the server's certificate (tls=True): trust it to verify."""
        return self.root / "tls" / "ca.pem"

    @property
    def tls_port(self) -> int:
        """The implicit-TLS (imaps) port of a tls=True server; the plain port offers STARTTLS."""
        if self._tls_port is None:
            self._tls_port = free_port(self.HOST)
        return self._tls_port

    def _make_certificates(self) -> Path:
        """A throwaway CA and a server certificate for 127.0.0.1/localhost, via openssl."""
        tls = self.root / "tls"
        if (tls / "server.pem").is_file():
            return tls
        tls.mkdir(exist_ok=True)
        (tls / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=tls, check=True, capture_output=True)

        openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=leadmail test CA",
        )
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        )
        openssl(
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
        )
        return tls

    def _ssl_config(self) -> tuple[str, str]:
        """(the ssl settings, the imaps listener) for the config."""
        if not self.tls:
            return "ssl = no", "inet_listener imaps {\n    port = 0\n  }"
        tls = self._make_certificates()
        settings = f"ssl = yes\nssl_cert = <{tls / 'server.pem'}\nssl_key = <{tls / 'server.key'}"
        listener = (
            "inet_listener imaps {\n"
            f"    address = {self.HOST}\n    port = {self.tls_port}\n    ssl = yes\n  }}"
        )
        return settings, listener

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = free_port(self.HOST)
        return self._port

    @property
    def host(self) -> str:
        return self.HOST

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The end of the log and of stderr, for error messages."""
        return (
            f"--- {self.log_path} ---\n{_tail(self.log_path, lines)}\n"
            f"--- {self.stderr_path} ---\n{_tail(self.stderr_path, lines)}"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the master and wait for an IMAP greeting; RuntimeError (never a skip) if not.

        An automatically chosen port that turns out to be taken is replaced by another one; a
        port that was given, or that a previous start used, is kept (restart promises the same
        port).
        """
        if self.running:
            raise RuntimeError(f"Dovecot already running (pid {self.pid})")
        for _attempt in range(3):
            try:
                self._start_once()
                self._port_fixed = True
                return
            except _PortTaken:
                if self._port_fixed:
                    raise RuntimeError(
                        f"Dovecot could not bind port {self._port}\n{self.log_tail()}"
                    ) from None
                self._port = free_port(self.HOST)
        raise RuntimeError(f"Dovecot found no free port\n{self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful SIGTERM to the master, then SIGKILL to whatever is left of its group.

        Connected imap processes can outlive the master, so the group is always swept.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group and wait until no member is left.

        Waiting matters: until the last member has exited, the listening socket is still
        open and a restart on the same port would fail with "Address already in use".
        """
        proc = self._proc
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the master leads its own group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5.0
        while members := _group_members(pgid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Dovecot processes {members} survived SIGKILL")
            time.sleep(0.01)
        self._proc = None

    def restart(self) -> None:
        """Kill (like a crash or an OOM kill) and start again on the same port."""
        self.kill()
        self.start()

    def close(self) -> None:
        """Stop the server for good and delete the mailboxes and sockets."""
        self.kill()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _scratch_dir(self) -> Path:
        if self._scratch is None:
            scratch = Path(tempfile.mkdtemp(prefix="leadmail-dovecot-"))
            scratch.chmod(0o711)  # the mail user must traverse it, not list it
            mail = scratch / "mail"
            mail.mkdir(mode=0o700)
            os.chown(mail, self._mail_uid, self._mail_gid)
            link = self.root / "mail"
            if link.is_symlink():
                link.unlink()
            link.symlink_to(mail)  # so the mailboxes can be found from the test's tmp dir
            self._scratch = scratch
        return self._scratch

    def _write_config(self) -> None:
        scratch = self._scratch_dir()
        state = self.root / "state"
        state.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            users = chroot = ""
        else:  # unprivileged: every service runs as us, and chroot needs root
            me = pwd.getpwuid(os.getuid()).pw_name
            group = grp.getgrgid(os.getgid()).gr_name
            users = (
                f"default_login_user = {me}\ndefault_internal_user = {me}\n"
                f"default_internal_group = {group}\n"
            )
            chroot = "chroot =\n  "
        ssl_settings, imaps_listener = self._ssl_config()
        self.conf_path.write_text(
            f"""\
# Written by tests/servers/dovecot.py; throwaway test server.
protocols = imap
listen = {self.HOST}
base_dir = {scratch / "run"}
state_dir = {state}
log_path = {self.log_path}
info_log_path = {self.log_path}
{users}
{ssl_settings}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
first_valid_uid = 1
# A wrong password is answered after auth_failure_delay (default 2 s; 0 still means up to
# 0.5 s, the auth process checks its failure queue twice a second).
auth_failure_delay = 0
# "/" as hierarchy separator (Gmail, Exchange and most Dovecot installs use it; the maildir
# default is "."), and LAYOUT=fs so folder names may contain dots ("INBOX.old", "v1.2").
mail_location = maildir:~/Maildir:LAYOUT=fs
namespace inbox {{
  inbox = yes
  separator = /
}}
mail_fsync = never
# Default 10: tests open many connections per user from 127.0.0.1.
mail_max_userip_connections = 100

passdb {{
  driver = static
  args = password={self.PASSWORD}
}}
userdb {{
  driver = static
  args = uid={self._mail_uid} gid={self._mail_gid} home={scratch / "mail"}/%u
}}

# Without this, one failed login starts anvil's "auth penalty" for 127.0.0.1: every later
# login from it, correct ones too, waits 2 s, then 4, 8, up to 15 s. Neither
# login_trusted_networks nor a "nodelay" passdb field lifts it in 2.3 (static passdb drops its
# fields on a password mismatch); with the anvil socket disabled, the auth process turns the
# penalty off.
service anvil {{
  {chroot}unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

service imap-login {{
  inet_listener imap {{
    address = {self.HOST}
    port = {self.port}
  }}
  {imaps_listener}
  {chroot}process_min_avail = 1
}}
"""
        )

    def _start_once(self) -> None:
        self._write_config()
        offsets = {path: _size(path) for path in (self.log_path, self.stderr_path)}
        with self.stderr_path.open("ab") as err:
            self._proc = subprocess.Popen(
                [DOVECOT_BIN, "-F", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.kill()
                if any("Address already in use" in _tail_from(p, o) for p, o in offsets.items()):
                    raise _PortTaken
                raise RuntimeError(f"Dovecot exited with status {code}\n{self.log_tail()}")
            if self._greets():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"Dovecot gave no IMAP greeting on {self.HOST}:{self.port} within "
                    f"{START_TIMEOUT:.0f} s\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def _greets(self) -> bool:
        """True when the port accepts a connection and answers ``* OK``."""
        try:
            with socket.create_connection((self.HOST, self.port), timeout=1.0) as sock:
                line = sock.makefile("rb").readline(4096)
        except OSError:
            return False
        return line.startswith(b"* OK")

    # -- IMAP helpers ------------------------------------------------------------------------

    def client(
        self, user: str, *, password: str | None = None, port: int | None = None
    ) -> IMAPClient:
        """A logged-in client; `port` lets a test go through a proxy in front of the server."""
        imap = IMAPClient(self.HOST, port=port or self.port, ssl=False, timeout=10)
        try:
            imap.login(user, self.PASSWORD if password is None else password)
        except BaseException:
            with contextlib.suppress(Exception):
                imap.shutdown()
            raise
        return imap

    @contextlib.contextmanager
    def session(self, user: str) -> Iterator[IMAPClient]:
        """`client()` that logs out at the end."""
        imap = self.client(user)
        try:
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def append(
        self,
        user: str,
        folder: str,
        messages: Iterable[bytes],
        flags: Iterable[bytes | str] = (),
    ) -> list[int]:
        """Append over one connection (creating the folder if missing); the new UIDs."""
        flag_list = list(flags)
        uids = []
        with self.session(user) as imap:
            if not imap.folder_exists(folder):
                imap.create_folder(folder)
            for message in messages:
                response = imap.append(folder, message, flags=flag_list)
                match = _APPENDUID.search(response)
                if match is None:
                    raise RuntimeError(f"APPEND answered without APPENDUID: {response!r}")
                uids.append(int(match.group(1)))
        return uids

    def uids(self, user: str, folder: str = "INBOX") -> list[int]:
        """All UIDs in the folder, ascending (read-only select: no flag changes)."""
        with self.session(user) as imap:
            imap.select_folder(folder, readonly=True)
            return sorted(int(uid) for uid in imap.search("ALL"))

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """Flags of every message by UID.

        Includes ``\\Recent`` while this is the first session to see a message: Dovecot still
        implements it, so compare with it removed when it does not matter.
        """
        with self.session(user) as imap:
            imap.select_folder(folder, readonly=True)
            found = imap.search("ALL")
            if not found:
                return {}
            return {int(uid): tuple(f) for uid, f in imap.get_flags(found).items()}

    def create_folder(self, user: str, folder: str) -> None:
        with self.session(user) as imap:
            imap.create_folder(folder)

    def delete_folder(self, user: str, folder: str) -> None:
        with self.session(user) as imap:
            imap.delete_folder(folder)

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.session(user) as imap:
            status = imap.folder_status(folder, [b"UIDVALIDITY"])
            return int(status[b"UIDVALIDITY"])


class _PortTaken(Exception):
    """The master could not bind its listener; `start` may pick another port."""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail_from(path: Path, offset: int) -> str:
    """What was logged after `offset`, so an old failure in the log does not count again."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""
