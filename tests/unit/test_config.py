"""Config: file discovery, env overrides, one clear line naming a bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import load_settings
from worker.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.database.url == "sqlite:///leadmail.db"
    assert settings.storage.path == Path("leadmail-data")


def test_example_config_is_valid_and_documents_every_key() -> None:
    settings = load_settings(ROOT / "config.example.toml", environ={})
    text = (ROOT / "config.example.toml").read_text()
    for section_name, section in settings:
        if section_name == "source_file":
            continue
        assert f"[{section_name}]" in text
        for key in type(section).model_fields:
            assert f"\n{key} = " in text, f"{section_name}.{key} undocumented"


def test_env_overrides_file(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('[database]\nurl = "sqlite:///a.db"\n')
    settings = load_settings(
        file,
        environ={
            "LEADMAIL_DATABASE__URL": "sqlite:///b.db",
            "LEADMAIL_STORAGE__FSYNC_BATCH": "7",
            "LEADMAIL_LEADS__FREE_MAIL_DOMAINS": '["corp-mail.example"]',
        },
    )
    assert settings.database.url == "sqlite:///b.db"
    assert settings.storage.fsync_batch == 7
    assert settings.leads.free_mail_domains == ("corp-mail.example",)


def test_config_env_var_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('[ingest]\naccount = "sales"\n')
    assert load_settings(environ={"LEADMAIL_CONFIG": str(file)}).ingest.account == "sales"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[database]\nurll = 'x'\n", "unknown key 'database.urll'"),
        ("[storage]\nfsync_batch = 0\n", "storage.fsync_batch"),
        ("[database]\nurl = 'mysql://x'\n", "database.url"),
        ("[database\n", "c.toml"),
        ("[nonsense]\na = 1\n", "unknown key 'nonsense'"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path: Path, content: str, needle: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings(file, environ={})
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
