"""Config: file discovery, env overrides, one clear line naming a bad key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.config import (
    DEFAULT_GENDERS,
    CustomFieldSettings,
    ImapAccount,
    LeadSettings,
    MaildirAccount,
    load_settings,
)
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
        if section_name in ("source_file", "accounts"):
            continue
        assert f"[{section_name}]" in text
        for key, field in type(section).model_fields.items():
            documented = f"\n{key} = " in text or f"\n# [[{section_name}.{key}]]" in text
            # A key without a value by default is shown commented out, with an example.
            documented = documented or (field.default is None and f"\n# {key} = " in text)
            assert documented, f"{section_name}.{key} undocumented"
    assert "[[accounts]]" in text
    for model in (ImapAccount, MaildirAccount):
        for key in model.model_fields:
            assert f"\n{key} = " in text or f"\n# {key} = " in text, f"accounts.{key} undocumented"


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


IMAP = """
[[accounts]]
name = "sales"
kind = "imap"
host = "imap.example.com"
username = "sales@example.com"
password_env = "IMAP_PASSWORD"
"""


def test_imap_account_defaults(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text(IMAP)
    (account,) = load_settings(file, environ={}).accounts
    assert isinstance(account, ImapAccount)
    assert account.folders == ("INBOX",)
    assert (account.security, account.effective_port, account.verify_tls) == ("ssl", 993, True)
    assert (account.idle, account.poll_interval, account.batch_size) == (True, 60.0, 100)
    assert account.post_action == "none"


def test_starttls_port_default(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text(IMAP + 'security = "starttls"\n')
    assert load_settings(file, environ={}).accounts[0].effective_port == 143  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ('password = "hunter2"\n', "unknown key 'accounts[0].password'"),
        ('post_action = "delete"\n', "accounts[0].post_action"),
        ("folders = []\n", "accounts[0].folders"),
        ('security = "tls"\n', "accounts[0].security"),
        ("port = 0\n", "accounts[0].port"),
        ('[[accounts]]\nname = "sales"\nkind = "maildir"\npath = "x"\n', "used twice"),
        ('[[accounts]]\nname = "x"\nkind = "pop3"\n', "accounts[1]"),
        ('[[accounts]]\nname = "bad name"\nkind = "maildir"\npath = "x"\n', "accounts[1].name"),
    ],
)
def test_bad_account_is_one_line_naming_the_key(tmp_path: Path, extra: str, needle: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(IMAP + extra)
    with pytest.raises(ConfigError) as info:
        load_settings(file, environ={})
    assert needle in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "\n" not in str(info.value)


def test_account_lookup_names_the_known_ones(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text(IMAP)
    settings = load_settings(file, environ={})
    assert settings.account("sales").name == "sales"
    with pytest.raises(ConfigError, match="no account named 'nope' \\(sales\\)"):
        settings.account("nope")


def test_a_password_pasted_into_password_env_is_refused_without_showing_it(
    tmp_path: Path,
) -> None:
    file = tmp_path / "c.toml"
    file.write_text(IMAP.replace('"IMAP_PASSWORD"', '"Tr0ub4dor&3!"'))
    with pytest.raises(ConfigError) as caught:
        load_settings(file, environ={})
    message = str(caught.value)
    assert "accounts[0].password_env" in message
    assert "Tr0ub4dor" not in message and "\n" not in message


def _custom_example() -> str:
    """The commented [[leads.custom_fields]] example of config.example.toml, uncommented."""
    lines = (ROOT / "config.example.toml").read_text().splitlines()
    start = lines.index("# [[leads.custom_fields]]")
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    return "\n".join(block) + "\n"


def test_the_custom_field_example_loads_when_uncommented(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text("[leads]\n" + _custom_example())
    fields = load_settings(file, environ={}).leads.custom_fields
    assert [(f.name, f.type, f.title) for f in fields] == [
        ("budget", "decimal", "Budget (EUR)"),
        ("employees", "int", "employees"),
        ("tier", "choice", "tier"),
    ]
    assert fields[2].choices == ("Gold", "Silver", "Bronze")
    for key in CustomFieldSettings.model_fields:
        assert f"\n# {key} = " in (ROOT / "config.example.toml").read_text(), key


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ('name = "tier"\ntype = "choice"\n', "choice field 'tier' needs choices"),
        ('name = "tier"\ntype = "choice"\nchoices = ["a", "A"]\n', "lists a choice twice"),
        ('name = "x"\nchoices = ["a"]\n', 'choices are only for type = "choice"'),
        ('name = "x"\ntype = "money"\n', "leads.custom_fields[0].type"),
        ('name = "2x"\n', "leads.custom_fields[0].name"),
        ('name = "a b"\n', "a letter, then letters, digits and _"),
        ('type = "int"\n', "leads.custom_fields[0].name: Field required"),
        ('name = "x"\ncolour = "red"\n', "unknown key 'leads.custom_fields[0].colour'"),
        (
            'name = "budget"\n[[leads.custom_fields]]\nname = "Budget"\n',
            "custom field 'Budget' is declared twice",
        ),
    ],
)
def test_bad_custom_field_declarations_name_the_key(
    tmp_path: Path, tables: str, message: str
) -> None:
    file = tmp_path / "c.toml"
    file.write_text("[[leads.custom_fields]]\n" + tables)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(file, environ={})


def test_genders_are_erpnext_s_by_default_and_configurable(tmp_path: Path) -> None:
    assert LeadSettings().genders == DEFAULT_GENDERS
    file = tmp_path / "c.toml"
    file.write_text('[leads]\ngenders = ["Woman", "Man"]\n')
    assert load_settings(file, environ={}).leads.genders == ("Woman", "Man")
    file.write_text('[leads]\ngenders = ["Woman", "woman"]\n')
    with pytest.raises(ConfigError, match="genders: empty or repeated entry"):
        load_settings(file, environ={})


def test_outbound_defaults_need_no_server(tmp_path: Path) -> None:
    settings = load_settings(environ={"LEADMAIL_CONFIG": str(_write(tmp_path, ""))})
    smtp, queue = settings.smtp, settings.queue
    assert (smtp.transport, smtp.file_path) == ("file", Path("leadmail-outbox"))
    assert (smtp.security, smtp.effective_port, smtp.verify_tls) == ("starttls", 587, True)
    assert smtp.subject_tag and smtp.sent_copy_target is None
    assert (queue.broker, queue.dispatch_seconds <= 15) == ("memory", True)
    assert settings.autoreply.enabled is False


def _write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "c.toml"
    file.write_text(text)
    return file


@pytest.mark.parametrize(("security", "port"), [("ssl", 465), ("starttls", 587), ("none", 25)])
def test_smtp_port_follows_security(tmp_path: Path, security: str, port: int) -> None:
    file = _write(tmp_path, f'[smtp]\nsecurity = "{security}"\n')
    assert load_settings(file, environ={}).smtp.effective_port == port


def test_sent_copy_names_an_imap_account(tmp_path: Path) -> None:
    file = _write(tmp_path, '[smtp]\nsent_copy = "sales/Sent Items"\n' + IMAP)
    assert load_settings(file, environ={}).smtp.sent_copy_target == ("sales", "Sent Items")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('[smtp]\npassword = "hunter2"\n', "unknown key 'smtp.password'"),
        ('[smtp]\npassword_env = "hunter2 x"\n', "smtp.password_env"),
        ('[smtp]\nusername = "u"\n', "needs password_env"),
        ('[smtp]\ntransport = "sendmail"\n', "smtp.transport"),
        ('[smtp]\nsecurity = "tls"\n', "smtp.security"),
        ('[smtp]\nfrom_address = "Sales <s@x.example>"\n', "smtp.from_address"),
        ('[smtp]\nfrom_name = "a\\nBcc: x@y.example"\n', "smtp.from_name"),
        ('[smtp]\nsent_copy = "Sent"\n', "smtp.sent_copy"),
        ('[smtp]\nsent_copy = "nobody/Sent"\n', "no IMAP account: 'nobody'"),
        ("[smtp]\nbackoff_min_seconds = 10.0\nbackoff_max_seconds = 1.0\n", "backoff_min"),
        ("[smtp]\nmax_per_connection = 0\n", "smtp.max_per_connection"),
        ('[queue]\nbroker = "amqp://x"\n', "queue.broker"),
        ("[queue]\ndispatch_seconds = 0\n", "queue.dispatch_seconds"),
        ("[autoreply]\nmin_interval_hours = -1\n", "autoreply.min_interval_hours"),
    ],
)
def test_bad_outbound_config_is_one_line(tmp_path: Path, content: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, content), environ={})
    assert needle in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "\n" not in str(info.value)


def test_queue_broker_from_env(tmp_path: Path) -> None:
    env = {"LEADMAIL_QUEUE__BROKER": "redis://127.0.0.1:6390/0", "LEADMAIL_SMTP__PORT": "2525"}
    settings = load_settings(_write(tmp_path, ""), environ=env)
    assert settings.queue.broker == "redis://127.0.0.1:6390/0"
    assert settings.smtp.effective_port == 2525
