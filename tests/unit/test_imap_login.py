"""IMAP credentials: the password variable, non-ASCII passwords, and errors that never
show a character of the password."""

from __future__ import annotations

import imaplib
from typing import Any

import pytest
from imapclient.exceptions import LoginError

from worker.config import ImapAccount
from worker.errors import AuthError, ConfigError, FetchError
from worker.sources.imap import ImapFolder, password_for

PASSWORD = "Pässwörd-ñ-รหัส"


def _account(**extra: Any) -> ImapAccount:
    return ImapAccount.model_validate(
        {
            "name": "sales",
            "kind": "imap",
            "host": "imap.example",
            "username": "sales@example.com",
            "password_env": "SALES_PW",
            **extra,
        }
    )


def test_a_missing_password_variable_is_not_set() -> None:
    with pytest.raises(ConfigError) as caught:
        password_for(_account(), {})
    assert str(caught.value) == (
        "account sales: environment variable SALES_PW (password_env) is not set"
    )


def test_an_empty_password_variable_is_empty() -> None:
    with pytest.raises(ConfigError) as caught:
        password_for(_account(), {"SALES_PW": ""})
    assert str(caught.value) == (
        "account sales: environment variable SALES_PW (password_env) is empty"
    )
    assert caught.value.exit_code == 2


def test_a_password_of_spaces_is_a_password() -> None:
    assert password_for(_account(), {"SALES_PW": "  "}) == "  "


class FakeClient:
    """What _login needs of an IMAPClient; records how it was asked to log in."""

    def __init__(self, capabilities: tuple[str, ...] = ("IMAP4REV1", "AUTH=PLAIN")) -> None:
        self.capabilities = capabilities
        self.calls: list[tuple[str, str, str]] = []
        self.refuse: str | None = None

    def has_capability(self, name: str) -> bool:
        return name in self.capabilities

    def login(self, username: str, password: str) -> None:
        self.calls.append(("login", username, password))
        password.encode("ascii")  # what imaplib does with LOGIN's arguments
        if self.refuse:
            raise LoginError(self.refuse)

    def plain_login(self, identity: str, password: str) -> None:
        self.calls.append(("plain", identity, password))
        if self.refuse:
            raise LoginError(self.refuse)


def _login(client: FakeClient, password: str = PASSWORD) -> None:
    ImapFolder(_account(), "INBOX", password)._login(client)  # type: ignore[arg-type]


def test_an_ascii_password_uses_login() -> None:
    client = FakeClient()
    _login(client, "s3cret")
    assert client.calls == [("login", "sales@example.com", "s3cret")]


def test_a_non_ascii_password_uses_authenticate_plain() -> None:
    client = FakeClient()
    _login(client)
    assert client.calls == [("plain", "sales@example.com", PASSWORD)]


def test_without_auth_plain_a_non_ascii_password_is_one_clear_line() -> None:
    client = FakeClient(capabilities=("IMAP4REV1",))
    with pytest.raises(AuthError) as caught:
        _login(client)
    message = str(caught.value)
    assert "non-ASCII" in message and "AUTH=PLAIN" in message
    assert "\n" not in message
    assert not any(char in message for char in "äöñรหัส")
    assert client.calls == []


def test_a_refusal_that_echoes_the_password_is_blanked() -> None:
    client = FakeClient()
    client.refuse = f"[AUTHENTICATIONFAILED] bad credentials {PASSWORD}"
    with pytest.raises(AuthError) as caught:
        _login(client)
    assert PASSWORD not in str(caught.value)
    assert "[AUTHENTICATIONFAILED] bad credentials ***" in str(caught.value)


def test_an_encoding_failure_never_quotes_the_password() -> None:
    class AsciiOnly(FakeClient):
        def plain_login(self, identity: str, password: str) -> None:
            password.encode("ascii")

    with pytest.raises(AuthError) as caught:
        _login(AsciiOnly())
    assert str(caught.value) == ("sales: the user name or password cannot be sent to imap.example")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_protocol_error_during_login_never_echoes_the_password() -> None:
    class Broken(FakeClient):
        def plain_login(self, identity: str, password: str) -> None:
            raise imaplib.IMAP4.abort(f"socket error: sent {password}")

    with pytest.raises(FetchError) as caught:
        _login(Broken())
    assert PASSWORD not in str(caught.value)
