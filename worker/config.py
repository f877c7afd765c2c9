"""Settings: a TOML file plus LEADMAIL_<SECTION>__<KEY> env overrides, validated once at start."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from worker.errors import ConfigError

ENV_PREFIX = "LEADMAIL_"
CONFIG_ENV = "LEADMAIL_CONFIG"
DEFAULT_CONFIG_FILE = Path("config.toml")


class _Section(BaseModel):
    # Each model builds its validator when first used, not when defined: a command validates
    # one Settings, whose validator checks every section in it, and building a validator for
    # each of the other models as well was wasted start-up (bench/startup.md). The rules are
    # the same whichever validator applies them.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


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
    # PostgreSQL only, the intake's own commits (inbound mail; outbound, reminders and CLI
    # edits always wait for the disk). "off" is SQLite's NORMAL: a crash of the server can
    # undo the last fraction of a second of commits, mailbox cursor included, so that mail
    # is fetched again; a crash of leadmail loses nothing. "on" waits for a WAL flush at
    # every message's commit.
    postgres_intake_synchronous_commit: Literal["on", "off"] = "off"
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
    # Also the unit of work of a parse worker: 32 keeps both cores busy to the end of a short
    # run (a 135-message folder: -13 % time against 64) for +1.5 % on a 10,000-message mbox.
    fsync_batch: int = Field(default=32, ge=1, le=10_000)
    # Blobs are records in append-only pack files under <path>/blobs/packs; a writer starts a
    # new pack once its own would grow past this size (a single larger blob still fits).
    pack_max_bytes: int = Field(default=1 << 30, ge=1 << 20)


# ERPNext's Gender records, in the order its manual lists them.
DEFAULT_GENDERS = (
    "Male",
    "Female",
    "Genderqueer",
    "Non-Conforming",
    "Other",
    "Prefer not to say",
    "Transgender",
)
CUSTOM_FIELD_TYPES = ("text", "int", "decimal", "date", "bool", "choice")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class CustomFieldSettings(_Section):
    """One ``[[leads.custom_fields]]``: a field of every lead beyond ERPNext's own."""

    # How --field, rules (custom.NAME) and exports name it: a letter, then letters, digits, _.
    name: str
    type: Literal["text", "int", "decimal", "date", "bool", "choice"] = "text"
    # A lead made by hand (leads add) must give it; mail cannot, so leads from mail need not.
    required: bool = False
    # The values a choice field takes (only for type = "choice").
    choices: tuple[str, ...] = ()
    # What `leads show` calls it (default: the name).
    label: str | None = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _FIELD_NAME.match(value):
            raise ValueError("a letter, then letters, digits and _ (at most 64)")
        return value

    @model_validator(mode="after")
    def _choices_for_choice(self) -> CustomFieldSettings:
        if self.type == "choice":
            if not self.choices or any(not c.strip() for c in self.choices):
                raise ValueError(f"choice field {self.name!r} needs choices = [...]")
            folded = [c.strip().casefold() for c in self.choices]
            if len(set(folded)) != len(folded):
                raise ValueError(f"choice field {self.name!r} lists a choice twice")
        elif self.choices:
            raise ValueError(f'choices are only for type = "choice" (field {self.name!r})')
        return self

    @property
    def title(self) -> str:
        """The label people see."""
        return self.label or self.name


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
    # Messages larger than this are quarantined instead of processed (bytes). 32 MiB takes a
    # 23 MiB attachment (base64 adds a third). Parsing needs about 2x a message's size and one
    # process about 3x (bench/memory.py); a bulk ingest with two parse workers holds up to
    # ~17x one message at worst (in-flight batches in the main process, pickled copies in the
    # workers): ~550 MB of messages plus ~200 MB of interpreters, within a 1 GiB machine.
    max_message_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # The genders a lead may have (leads add/set --gender); ERPNext's list by default.
    genders: tuple[str, ...] = DEFAULT_GENDERS
    # Fields of every lead beyond the built-in ones, one [[leads.custom_fields]] table each.
    custom_fields: tuple[CustomFieldSettings, ...] = ()
    # The IANA zone of times typed without an offset (`leads set --next-contact-date
    # "tomorrow 10:00"`), and of reminders' calendar entries for executives without a zone
    # of their own. None: this machine's zone (UTC when it cannot be found); the zone in
    # use is ``zone_name``.
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return _check_zone(value) if value is not None else None

    @property
    def zone_name(self) -> str:
        """``timezone``, or this machine's zone when it is not set."""
        return self.timezone or machine_timezone()

    @model_validator(mode="after")
    def _unique_fields(self) -> LeadSettings:
        seen: set[str] = set()
        for field in self.custom_fields:
            if field.name.casefold() in seen:
                raise ValueError(f"custom field {field.name!r} is declared twice (in any case)")
            seen.add(field.name.casefold())
        genders = [g.strip().casefold() for g in self.genders]
        if any(not g for g in genders) or len(set(genders)) != len(genders):
            raise ValueError("genders: empty or repeated entry")
        return self

    def custom_field(self, name: str) -> CustomFieldSettings | None:
        """The declared field of that name, in any case (names are unique ignoring case)."""
        folded = name.casefold()
        return next((f for f in self.custom_fields if f.name.casefold() == folded), None)


@functools.cache
def machine_timezone() -> str:
    """This machine's IANA zone name: $TZ, /etc/timezone, or the /etc/localtime link; UTC
    when none of them names a zone (a container without tzdata configured)."""
    candidates: list[str] = []
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        candidates.append(tz)
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        candidates.append(target.split("zoneinfo/", 1)[1])
    for name in candidates:
        try:
            return _check_zone(name)
        except ValueError:
            continue
    return "UTC"


def _check_zone(value: str) -> str:
    """An IANA zone name zoneinfo knows (``Asia/Bangkok``, ``UTC``)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = value.strip()
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError("an IANA time zone name such as Asia/Bangkok or UTC")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as Asia/Bangkok)"
        ) from None
    return name


class IngestSettings(_Section):
    # Account name recorded for messages ingested from local files (dedup is per account).
    account: str = "local"
    # Worker processes that parse and write blobs while the main process commits; 0 parses
    # in the main process. -1 means one per core (at most 4).
    parse_workers: int = Field(default=-1, ge=-1, le=64)


class RulesSettings(_Section):
    # The assignment-rule file (YAML). When it does not exist, leads stay unassigned.
    path: Path = Path("rules/assignment.yaml")
    # `leadmail run` looks at the file this often and loads it again when it changed; an
    # invalid new file is refused (its errors logged) and the rules in use are kept.
    reload_seconds: float = Field(default=5.0, ge=0.1, le=3600)


class PollerSettings(_Section):
    # A poller holds a lease on each (account, folder) it works; another poller takes over
    # when the holder has not renewed it for this long (a killed process, a dead host).
    lease_seconds: float = Field(default=60.0, ge=5, le=3600)
    # IDLE is renewed this often; servers may drop an IDLE after 30 minutes (RFC 2177).
    idle_renew_seconds: float = Field(default=1440.0, ge=10, le=1500)
    # Reconnect after a failure: exponential backoff from the first to the last value, with
    # jitter, so a fleet of pollers does not hammer a server that just came back.
    reconnect_min_seconds: float = Field(default=1.0, ge=0.05, le=3600)
    reconnect_max_seconds: float = Field(default=300.0, ge=0.05, le=86400)
    # A refused login is retried this often, never in a tight loop (account lock-outs).
    auth_retry_seconds: float = Field(default=600.0, ge=1, le=86400)


def _sent_folder_names(value: tuple[str, ...]) -> tuple[str, ...]:
    if any(not f.strip() for f in value):
        raise ValueError("an empty folder name")
    if len(set(value)) != len(value):
        raise ValueError("a folder is listed twice")
    return value


_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_POST_ACTION = re.compile(r"^(none|flag|move:.+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:\[\]]+\.[^@\s<>\"(),;:\[\]]+$")


class _Account(_Section):
    # Recorded on every message; Message-ID dedup is per account.
    name: str
    # Larger messages are quarantined with their headers (default: leads.max_message_bytes).
    max_message_bytes: int | None = Field(default=None, ge=1024)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _ACCOUNT_NAME.match(value):
            raise ValueError("use letters, digits and . _ @ - (at most 128)")
        return value


class ImapAccount(_Account):
    kind: Literal["imap"]
    host: str
    # Default: 993 for ssl, 143 for starttls and none.
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "ssl"
    verify_tls: bool = True
    # A CA bundle to verify the server with instead of the system's (self-signed servers).
    ca_file: Path | None = None
    username: str
    # The environment variable holding the password; the password itself never goes here.
    password_env: str
    folders: tuple[str, ...] = ("INBOX",)
    # Folders holding mail the executives sent from their own mail client ("Sent"): read as
    # outbound mail on the lead it threads to or was sent to; never a new lead, never sent.
    sent_folders: tuple[str, ...] = ()
    idle: bool = True
    poll_interval: float = Field(default=60.0, ge=1, le=86400)
    batch_size: int = Field(default=100, ge=1, le=10_000)
    # none: the mailbox is never changed (the folder is opened read-only). flag: set \Flagged
    # on each processed message. move:FOLDER: move it there. Applied only after the commit.
    post_action: str = "none"
    # Seconds a network read may block before the connection is treated as dead.
    timeout: float = Field(default=60.0, ge=1, le=3600)

    @field_validator("post_action")
    @classmethod
    def _known_action(cls, value: str) -> str:
        if not _POST_ACTION.match(value):
            raise ValueError("use none, flag or move:FOLDER")
        return value

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        # A password pasted here by mistake is refused without being shown (the error of a
        # key named *password* hides its value), not looked up and then echoed as a name.
        if not _ENV_NAME.match(value):
            raise ValueError("the name of an environment variable (letters, digits, _)")
        return value

    @field_validator("folders")
    @classmethod
    def _some_folders(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not f.strip() for f in value):
            raise ValueError("list at least one folder name")
        if len(set(value)) != len(value):
            raise ValueError("a folder is listed twice")
        return value

    @field_validator("sent_folders")
    @classmethod
    def _plain_sent_folders(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _sent_folder_names(value)

    @model_validator(mode="after")
    def _sent_apart(self) -> ImapAccount:
        both = sorted(set(self.folders) & set(self.sent_folders))
        if both:
            raise ValueError(f"{both[0]!r} is listed in both folders and sent_folders")
        return self

    @property
    def watched(self) -> tuple[tuple[str, bool], ...]:
        """Every (folder, is_sent) a poller works: the inbound folders, then the Sent ones."""
        return (*((f, False) for f in self.folders), *((f, True) for f in self.sent_folders))

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.security == "ssl" else 143)


class MaildirAccount(_Account):
    kind: Literal["maildir"]
    path: Path
    # How often the Maildir is scanned for new files, in seconds.
    poll_interval: float = Field(default=2.0, ge=0.1, le=86400)
    batch_size: int = Field(default=100, ge=1, le=10_000)
    # Maildir++ sub-folders of sent mail ("Sent" is <path>/.Sent): read as outbound mail, and
    # left out of the inbound scan of ``path``.
    sent_folders: tuple[str, ...] = ()

    @field_validator("sent_folders")
    @classmethod
    def _plain_sent_folders(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        value = _sent_folder_names(value)
        for name in value:
            if "/" in name or "\\" in name or name.strip(".") in ("", "."):
                raise ValueError(f"{name!r}: a Maildir++ folder name such as Sent")
        return value

    def sent_path(self, name: str) -> Path:
        """The directory of a Maildir++ folder: ``Sent`` and ``.Sent`` are both <path>/.Sent."""
        return self.path / (name if name.startswith(".") else f".{name}")

    @property
    def folders(self) -> tuple[str, ...]:
        return (str(self.path),)

    @property
    def watched(self) -> tuple[tuple[str, bool], ...]:
        """Every (folder, is_sent) a poller works: the Maildir, then its Sent folders."""
        sent = ((str(self.sent_path(n)), True) for n in self.sent_folders)
        return ((str(self.path), False), *sent)


Account = Annotated[ImapAccount | MaildirAccount, Field(discriminator="kind")]


class SmtpSettings(_Section):
    """How outbound mail leaves: an SMTP server, or .eml files in a folder."""

    # file: each outgoing message is written as an .eml into file_path (the demo, and trying
    # leadmail without a server); smtp: sent to host:port. A newcomer has no server yet.
    transport: Literal["smtp", "file"] = "file"
    file_path: Path = Path("leadmail-outbox")
    host: str = "localhost"
    # Default: 465 for ssl, 587 for starttls, 25 for none.
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "starttls"
    verify_tls: bool = True
    # A CA bundle to verify the server with instead of the system's (self-signed servers).
    ca_file: Path | None = None
    # No username: no AUTH.
    username: str | None = None
    # The environment variable holding the password; the password itself never goes here.
    password_env: str | None = None
    # The envelope sender, and the From of mail no executive sends (or whose executive has
    # no address in the rule file).
    from_address: str | None = None
    from_name: str | None = None
    # Seconds a connect, a command or a reply may take before the attempt counts as failed.
    timeout: float = Field(default=60.0, ge=1, le=3600)
    # Messages sent over one SMTP session before reconnecting.
    max_per_connection: int = Field(default=100, ge=1, le=100_000)
    # Where `leadmail send --template NAME` finds NAME (a Jinja2 file, sandboxed).
    templates_path: Path = Path("templates")
    # Put the lead's signed tag ([#L42-abcdefgh]) at the end of the subject: replies from
    # clients that drop In-Reply-To/References still thread by their subject.
    subject_tag: bool = True
    # After a successful send, copy the message over IMAP to this "ACCOUNT/FOLDER" (an
    # [[accounts]] name and a folder in it), so the executive's own client shows it.
    sent_copy: str | None = None
    # Temporary failures (4xx, timeouts, dropped connections) are retried this many times in
    # all, with exponential backoff and jitter between these bounds; then the mail is failed.
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_min_seconds: float = Field(default=30.0, ge=0.01, le=86400)
    backoff_max_seconds: float = Field(default=3600.0, ge=0.01, le=7 * 86400)

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("the name of an environment variable (letters, digits, _)")
        return value

    @field_validator("from_address")
    @classmethod
    def _plain_address(cls, value: str | None) -> str | None:
        if value is not None and not _ADDRESS.match(value):
            raise ValueError("one plain address such as sales@example.com")
        return value

    @field_validator("from_name")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in "\r\n\0"):
            raise ValueError("one line, without CR, LF or NUL")
        return value

    @field_validator("sent_copy")
    @classmethod
    def _account_and_folder(cls, value: str | None) -> str | None:
        if value is not None:
            account, _, folder = value.partition("/")
            if not account or not folder.strip():
                raise ValueError('"ACCOUNT/FOLDER", e.g. "sales/Sent"')
        return value

    @model_validator(mode="after")
    def _sane_backoff(self) -> SmtpSettings:
        if self.backoff_min_seconds > self.backoff_max_seconds:
            raise ValueError("smtp.backoff_min_seconds exceeds backoff_max_seconds")
        if self.username is not None and self.password_env is None:
            raise ValueError("smtp.username needs password_env (the env var with the password)")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"ssl": 465, "starttls": 587, "none": 25}[self.security]

    @property
    def sent_copy_target(self) -> tuple[str, str] | None:
        """(account, folder) of ``sent_copy``, or None."""
        if self.sent_copy is None:
            return None
        account, _, folder = self.sent_copy.partition("/")
        return account, folder


class QueueSettings(_Section):
    # memory: dramatiq's in-process broker, worked by `leadmail run` itself (one machine);
    # redis://host:port/db: Redis, worked by `leadmail worker` processes on any host.
    broker: str = "memory"
    # How often the dispatcher looks for due work (outbound mail, reminders), in seconds.
    dispatch_seconds: float = Field(default=10.0, ge=0.05, le=3600)
    # A claimed row not finished after this long (its worker died, Redis lost the message)
    # is claimed and enqueued again. Longer than the slowest send, timeouts and all.
    stuck_seconds: float = Field(default=600.0, ge=1, le=86400)
    # Rows claimed per dispatcher round trip.
    batch: int = Field(default=500, ge=1, le=100_000)

    @field_validator("broker")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        if value != "memory" and not value.startswith(("redis://", "rediss://")):
            raise ValueError('use "memory" or "redis://host:port/db"')
        return value


class AutoreplySettings(_Section):
    # Acknowledge each new lead made from a human message with one mail through the outbox
    # (never to bounces, auto-replies, lists or no-reply senders; RFC 3834 headers).
    enabled: bool = False
    # The template (in smtp.templates_path) of the acknowledgement; needed when enabled.
    template: str = "autoreply.txt"
    # At most one acknowledgement per address in this many hours.
    min_interval_hours: float = Field(default=24.0, ge=0, le=24 * 365)


_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS_RANGE = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class FollowupSettings(_Section):
    """Reminders the dispatcher makes by itself (issue 12): each is an ordinary reminder to a
    person, made once per lead and cause and cancelled when the cause goes away."""

    # A new lead whose executive has not written to it within this many working hours:
    # remind the executive. 0 turns the rule off.
    first_response_hours: float = Field(default=0.0, ge=0, le=24 * 365)
    # Still no answer this many working hours after the lead came: also remind escalate_to
    # (a manager). 0 turns the rule off.
    escalate_after_hours: float = Field(default=0.0, ge=0, le=24 * 365)
    # Who gets the escalation: an executive id from the rule file, or an email address.
    escalate_to: str | None = None
    # Our last outbound mail to a lead unanswered for this many days: remind the lead's owner
    # to follow up. 0 turns the rule off.
    no_reply_days: float = Field(default=0.0, ge=0, le=365)
    # A human reply from the lead cancels its pending manual reminder (Next Contact Date)
    # too; false keeps it (the executive still wants to call).
    cancel_on_reply: bool = False
    # Working hours, in the rule file's schedule vocabulary: the days (mon..sun) and the
    # hours ("09:00-18:00", end exclusive) that first_response_hours and
    # escalate_after_hours count; outside them the clock stops.
    working_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    working_hours: str = "09:00-18:00"
    # The zone of working_days/working_hours (default: [leads] timezone).
    working_timezone: str | None = None
    # A follow-up reminder that would have been due more than this many days ago is not
    # made: after a long outage, when a rule is first turned on, or when an old mailbox is
    # ingested, nobody is reminded of old leads. Also bounds what each tick looks at.
    catch_up_days: float = Field(default=7.0, gt=0, le=365)

    @field_validator("working_days")
    @classmethod
    def _known_days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        days = tuple(d.strip().lower() for d in value)
        if not days:
            raise ValueError("list at least one day")
        for day in days:
            if day not in _DAY_NAMES:
                raise ValueError(f"unknown day {day!r}; use {', '.join(_DAY_NAMES)}")
        if len(set(days)) != len(days):
            raise ValueError("a day is listed twice")
        return days

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = _HOURS_RANGE.match(value.strip())
        bad = match is None
        if match is not None:
            start, end = (int(match[1]), int(match[2])), (int(match[3]), int(match[4]))
            bad = start == end or start[0] == 24 or (end[0] == 24 and end[1] != 0)
        if bad:
            raise ValueError('hours like "09:00-18:00" (start and end differ, 24:00 at most)')
        return value.strip()

    @field_validator("working_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return _check_zone(value) if value is not None else None

    @field_validator("escalate_to")
    @classmethod
    def _who(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        if not text or any(c in text for c in "\r\n\0"):
            raise ValueError("an executive id or one email address")
        return text

    @model_validator(mode="after")
    def _escalation(self) -> FollowupSettings:
        if self.escalate_after_hours and self.escalate_to is None:
            raise ValueError("followups.escalate_after_hours needs escalate_to")
        return self


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"


class Settings(_Section):
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    leads: LeadSettings = Field(default_factory=LeadSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    poller: PollerSettings = Field(default_factory=PollerSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    autoreply: AutoreplySettings = Field(default_factory=AutoreplySettings)
    followups: FollowupSettings = Field(default_factory=FollowupSettings)
    accounts: tuple[Account, ...] = ()
    source_file: Path | None = None  # where these settings came from, for messages

    @model_validator(mode="after")
    def _unique_accounts(self) -> Settings:
        names = [a.name for a in self.accounts]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"account name {name!r} is used twice")
        if self.poller.reconnect_min_seconds > self.poller.reconnect_max_seconds:
            raise ValueError("poller.reconnect_min_seconds exceeds reconnect_max_seconds")
        target = self.smtp.sent_copy_target
        if target is not None and not any(
            a.name == target[0] and isinstance(a, ImapAccount) for a in self.accounts
        ):
            raise ValueError(f"smtp.sent_copy names no IMAP account: {target[0]!r}")
        return self

    def account(self, name: str) -> ImapAccount | MaildirAccount:
        for account in self.accounts:
            if account.name == name:
                return account
        known = ", ".join(a.name for a in self.accounts) or "none configured"
        raise ConfigError(f"no account named {name!r} ({known})", value=name)

    def is_sent_folder(self, account: str, folder: str | None) -> bool:
        """Whether mail from this account's folder is our own sent mail (``sent_folders``)."""
        return any(a.name == account and (folder, True) in a.watched for a in self.accounts)


# The [sections] of Settings. load_settings gives each missing one as an empty table, so the
# one validator of Settings fills in its defaults (see _Section).
_SECTIONS = tuple(
    name
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, _Section)
)


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the file the user meant, apply env overrides, validate; ConfigError names the key."""
    env = dict(os.environ if environ is None else environ)
    file = _choose_file(path, env)
    data = _read_toml(file) if file else {}
    _apply_env(data, env)
    label = str(file) if file else "defaults"
    try:
        settings = Settings.model_validate(
            {**{name: {} for name in _SECTIONS}, **data, "source_file": file}
        )
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
    key = _key_name(err["loc"])
    if err["type"] == "extra_forbidden":
        hint = " (passwords come from the env var named by password_env)" if "pass" in key else ""
        return f"{label}: unknown key {key!r}{hint}"
    value = err.get("input")
    hidden = isinstance(value, dict) or any(w in key for w in ("secret", "password"))
    shown = "" if hidden else f" (got {value!r})"
    return f"{label}: {key}: {err['msg']}{shown}"


def _key_name(loc: tuple[int | str, ...]) -> str:
    """accounts.0.imap.host -> accounts[0].host: the discriminator is no key of the file."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
        elif (
            i >= 2
            and loc[0] == "accounts"
            and isinstance(loc[i - 1], int)
            and part
            in (
                "imap",
                "maildir",
            )
        ):
            continue
        else:
            parts.append(part)
    return ".".join(parts) or "(root)"
