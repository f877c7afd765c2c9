"""A throwaway certificate authority and a server certificate for 127.0.0.1 / localhost.

Test servers that speak TLS (the SMTP server; Dovecot makes its own the same way) need a
certificate a client can verify: the client trusts ``ca`` (its ``ca_file``), and a client that
does not trust it must refuse the connection, which is how "certificates are verified" is tested.
"""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    """Paths of a CA certificate and a server certificate + key it signed."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """An SSL context a server presents the certificate with (no client certificates)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_certificates(directory: Path) -> Certificates:
    """Create (once per directory) a CA and a server certificate valid for two days."""
    directory.mkdir(parents=True, exist_ok=True)
    found = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    if found.cert.is_file() and found.key.is_file():
        return found
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    # EC keys: an RSA-2048 pair takes openssl seconds on a small machine, P-256 milliseconds.
    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl(
        "req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=leadmail test CA",
    )  # fmt: skip
    openssl(
        "req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.cnf",
    )  # fmt: skip
    return found
