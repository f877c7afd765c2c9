"""One exception tree, so the CLI can tell a user's mistake from a bug."""

from __future__ import annotations


class LeadmailError(Exception):
    """Root of every error leadmail raises on purpose.

    ``value`` carries the offending input so a message can name it; the CLI prints
    ``str(error)`` as one line and exits with ``exit_code``.
    """

    exit_code = 1

    def __init__(self, message: str, value: object = None) -> None:
        super().__init__(message)
        self.value = value


class ConfigError(LeadmailError):
    """A config file, key or value is wrong; names the file and the key."""

    exit_code = 2


class RuleError(LeadmailError):
    """An assignment-rule file is invalid."""

    exit_code = 2


class ValidationError(LeadmailError):
    """Input a person gave is refused: one line, exit 1."""


class ParseError(LeadmailError):
    """A message's bytes cannot be understood well enough to process it."""


class StoreError(LeadmailError):
    """The database or blob store refused an operation."""


class NotFoundError(LeadmailError):
    """A lead, message or quarantine entry that the user named does not exist: a refusal
    like any other (one line, exit 1)."""


class SourceError(LeadmailError):
    """A path or mailbox given as a source cannot be read."""


class FetchError(SourceError):
    """Fetching mail from a server failed (connection, protocol, a folder that is missing)."""


class AuthError(FetchError):
    """The server refused our login: retried slowly, never in a tight loop."""

    exit_code = 4


class LeaseHeldError(StoreError):
    """Another poller works this (account, folder) now."""

    exit_code = 5


class LeaseLostError(StoreError):
    """Our lease on a folder was taken over: stop before committing anything more."""


class SendError(LeadmailError):
    """Sending mail failed."""
