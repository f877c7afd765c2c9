"""Settings: a TOML file plus LEADMAIL_<SECTION>__<KEY> env overrides, validated once at start."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from worker.errors import ConfigError

ENV_PREFIX = "LEADMAIL_"
CONFIG_ENV = "LEADMAIL_CONFIG"
DEFAULT_CONFIG_FILE = Path("config.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str = "sqlite:///leadmail.db"
    # SQLite only. NORMAL (WAL) survives any process crash; a power cut can undo the last
    # commits, but the mailbox cursor lives in the same database and is undone with them, so
    # those messages are fetched again (blobs are fsynced before every commit). FULL fsyncs
    # each commit as well, at several times the cost per message.
    sqlite_synchronous: Literal["full", "normal"] = "normal"
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    # SQLite only: copy the WAL back into the database every this many pages. SQLite's own
    # 1,000 checkpoints (and fsyncs) every few dozen messages during a bulk ingest.
    sqlite_wal_autocheckpoint: int = Field(default=10_000, ge=0)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError(f"unsupported database {scheme!r}: use sqlite:/// or postgresql://")
        return value


class StorageSettings(_Section):
    path: Path = Path("leadmail-data")
    # Blob writes are fsynced in groups of this many before the commits that refer to them.
    fsync_batch: int = Field(default=64, ge=1, le=10_000)


class LeadSettings(_Section):
    # fnmatch globs on the From address of web-form/notification relays; for these the
    # Reply-To (or the Email: field of the form) is the real sender. Added to the built-in list.
    relay_patterns: tuple[str, ...] = ()
    # Domains treated as free mail in addition to the built-in list (no organisation guessed).
    free_mail_domains: tuple[str, ...] = ()
    # Our own addresses and Message-ID domains: mail from them is a loop, never a lead.
    own_addresses: tuple[str, ...] = ()
    own_domains: tuple[str, ...] = ()
    # Source recorded on leads made from mail.
    default_source: str = "Email"
    # Env var holding the secret that signs lead tokens ([#L12-xxxx]); when unset, a random
    # secret is created once in the storage directory.
    secret_env: str = "LEADMAIL_SECRET"  # noqa: S105 (the name of an env var)
    # Messages larger than this are quarantined instead of processed (bytes).
    max_message_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)


class IngestSettings(_Section):
    # Account name recorded for messages ingested from local files (dedup is per account).
    account: str = "local"
    # Worker processes that parse and write blobs while the main process commits; 0 parses
    # in the main process. -1 means one per core (at most 4).
    parse_workers: int = Field(default=-1, ge=-1, le=64)


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = StorageSettings()
    leads: LeadSettings = LeadSettings()
    ingest: IngestSettings = IngestSettings()
    logging: LoggingSettings = LoggingSettings()
    source_file: Path | None = None  # where these settings came from, for messages


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the file the user meant, apply env overrides, validate; ConfigError names the key."""
    env = dict(os.environ if environ is None else environ)
    file = _choose_file(path, env)
    data = _read_toml(file) if file else {}
    _apply_env(data, env)
    label = str(file) if file else "defaults"
    try:
        settings = Settings.model_validate({**data, "source_file": file})
    except ValidationError as exc:
        raise ConfigError(_first_error(label, exc), value=label) from None
    return settings


def _choose_file(path: Path | None, env: dict[str, str]) -> Path | None:
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}", value=str(path))
        return path
    if env.get(CONFIG_ENV):
        named = Path(env[CONFIG_ENV])
        if not named.is_file():
            raise ConfigError(f"{CONFIG_ENV} names a missing file: {named}", value=str(named))
        return named
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: {exc}", value=str(file)) from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}", value=str(file)) from None


def _apply_env(data: dict[str, Any], env: dict[str, str]) -> None:
    """LEADMAIL_DATABASE__URL=... sets [database] url; values are TOML literals or strings."""
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if not section or not key or section == "test":
            continue
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{name}: [{section}] is not a table", value=name)
        target[key] = _env_value(raw)


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _first_error(label: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(root)"
    if err["type"] == "extra_forbidden":
        return f"{label}: unknown key {key!r}"
    value = err.get("input")
    shown = "" if isinstance(value, dict) or "secret" in key else f" (got {value!r})"
    return f"{label}: {key}: {err['msg']}{shown}"
