"""Who made a change: --by, else $LEADMAIL_USER, else the login name."""

from __future__ import annotations

import getpass

import pytest

from worker.cli.context import actor_name


def test_by_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADMAIL_USER", "env-user")
    assert actor_name(" alice ") == "alice"


def test_the_environment_comes_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADMAIL_USER", "env-user")
    assert actor_name(None) == "env-user"
    assert actor_name("  ") == "env-user"


def test_the_login_name_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADMAIL_USER", raising=False)
    monkeypatch.setattr(getpass, "getuser", lambda: "root")
    assert actor_name(None) == "root"

    def no_user() -> str:
        raise KeyError("uid 12345")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert actor_name(None) == "unknown"
