"""Fixtures for intake tests: an App on each database backend with its own blob store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.delivery_fixtures import (  # noqa: F401 (fixtures)
    redis_server,
    smtp_certificates,
    smtp_factory,
    smtp_server,
)
from tests.integration.imap_fixtures import (  # noqa: F401 (fixtures)
    cutting_proxy,
    dovecot,
    dovecot_factory,
    dovecot_tls,
    imap_user,
)
from tests.integration.test_cli import Leadmail
from worker.config import Settings, load_settings
from worker.services.context import App
from worker.store import schema


def settings_for(db_url: str, tmp_path: Path, **leads: object) -> Settings:
    env = {
        "LEADMAIL_DATABASE__URL": db_url,
        "LEADMAIL_STORAGE__PATH": str(tmp_path / "data"),
        "LEADMAIL_STORAGE__FSYNC_BATCH": "8",
        "LEADMAIL_DATABASE__SQLITE_SYNCHRONOUS": '"normal"',
        # No rule file unless a test writes one: leads stay unassigned.
        "LEADMAIL_RULES__PATH": str(tmp_path / "rules.yaml"),
    }
    for key, value in leads.items():
        env[f"LEADMAIL_LEADS__{key.upper()}"] = repr(value).replace("'", '"')
    return load_settings(environ=env)


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    application = App.from_settings(
        settings_for(db_url, tmp_path, own_addresses=["sales@northwind.example"])
    )
    schema.upgrade(application.db.engine)
    yield application
    application.close()


@pytest.fixture
def leadmail(db_url: str, tmp_path: Path) -> Leadmail:
    """``leadmail --config FILE ...`` in-process against this test's database and store."""
    return Leadmail(tmp_path, db_url)
