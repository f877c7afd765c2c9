"""The composition root: settings turned into the database, blob store and mail policies."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.errors import ConfigError
from worker.store.db import Database

if TYPE_CHECKING:
    from worker.config import Settings
    from worker.mail.addresses import SenderPolicy
    from worker.mail.classify import OwnIdentity
    from worker.mail.threading import TokenSigner
    from worker.store.blobs import BlobStore

SECRET_FILE = "secret.key"  # noqa: S105 (a file name)


@dataclass
class App:
    """Everything a service needs, built once from validated settings and passed down."""

    settings: Settings
    db: Database
    secret: bytes
    """What signs lead tokens (``signer``)."""
    # The assignment rules in use (services.assignment.RuleBook), made on first use.
    rules: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> App:
        return cls(
            settings=settings,
            db=Database(settings.database),
            secret=load_secret(settings.storage.path, settings.leads.secret_env),
        )

    # The blob store and the mail policies are made on first use: the modules they come from
    # are a good part of start-up, and listings (`leads list`, `leads show`) use none of them.

    @cached_property
    def blobs(self) -> BlobStore:
        from worker.store.blobs import BlobStore

        storage = self.settings.storage
        return BlobStore(storage.path / "blobs", self.db.engine, storage.pack_max_bytes)

    @cached_property
    def signer(self) -> TokenSigner:
        from worker.mail.threading import TokenSigner

        return TokenSigner(self.secret)

    @cached_property
    def sender_policy(self) -> SenderPolicy:
        from worker.mail.addresses import DEFAULT_RELAY_PATTERNS, SenderPolicy

        leads = self.settings.leads
        return SenderPolicy(
            relay_patterns=(*DEFAULT_RELAY_PATTERNS, *leads.relay_patterns),
            extra_free_mail=frozenset(d.lower() for d in leads.free_mail_domains),
        )

    @cached_property
    def own(self) -> OwnIdentity:
        from worker.mail.addresses import email_key
        from worker.mail.classify import OwnIdentity

        leads = self.settings.leads
        return OwnIdentity(
            addresses=frozenset(email_key(a) for a in leads.own_addresses),
            message_id_domains=frozenset(d.lower() for d in leads.own_domains),
        )

    def close(self) -> None:
        if "blobs" in self.__dict__:  # made (cached_property keeps it there)
            self.blobs.close()
        self.db.dispose()


def load_secret(storage: Path, env_name: str) -> bytes:
    """The token-signing secret: from the env var, else made once and kept beside the blobs."""
    value = os.environ.get(env_name)
    if value:
        if len(value) < 16:
            raise ConfigError(f"{env_name} must hold at least 16 characters", value=env_name)
        return value.encode()
    path = storage / SECRET_FILE
    try:
        if path.is_file():
            return path.read_bytes().strip()
        storage.mkdir(parents=True, exist_ok=True)
        fresh = secrets.token_hex(32).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(fresh)
        return fresh
    except FileExistsError:
        return path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot use storage.path {storage}: {exc.strerror}", storage) from None
