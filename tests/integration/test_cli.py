"""The ``leadmail`` command end to end on each backend: ingest, leads, quarantine, user errors."""

from __future__ import annotations

import csv
import io
import json
import os
import traceback
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.integration.helpers import make_mail
from worker.cli.main import COMMANDS, cli
from worker.store import packs

OUTCOMES = {"created", "threaded", "duplicate", "ignored", "quarantined"}
KINDS = {"human", "bounce", "auto_reply", "out_of_office", "list", "report", "own"}
INGEST_KEYS = {"source", "message_id", "outcome", "kind", "lead_id", "reasons"}
LEAD_KEYS = {
    "id",
    "email",
    "name",
    "company",
    "is_organization",
    "status",
    "source",
    "assigned_to",
    "next_contact_date",
    "next_contact_by",
    "created_at",
    "messages",
}
TIMELINE_TYPES = {"message", "status", "comment", "activity", "assignment"}

ENQUIRY = make_mail()
REPLY = make_mail(
    subject="Re: Quote for 200 office chairs",
    body="We would also need 20 desks.\n",
    message_id="<r1@acme-industrial.example>",
    in_reply_to="<enquiry-1@acme-industrial.example>",
    references="<enquiry-1@acme-industrial.example>",
)
DESKS = make_mail(
    sender="Bob Stone <bob@globex-trading.example>",
    subject="Standing desks for our new office",
    body="Do you deliver to Leeds?\n",
    message_id="<desks-1@globex-trading.example>",
)
AUTO_REPLY = make_mail(
    sender="Carol Out <carol@initech-systems.example>",
    subject="Automatic reply: your catalogue",
    body="I am out of the office until Monday.\n",
    message_id="<ooo-1@initech-systems.example>",
    headers={"Auto-Submitted": "auto-replied"},
)
NOT_MAIL = b"Shopping list\n\n- milk\n- eggs\n"


class Leadmail:
    """``leadmail --config FILE ...`` run in-process against one database and blob store."""

    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.tmp_path = tmp_path
        self.db_url = db_url
        self.storage = tmp_path / "data"
        self.config = tmp_path / "leadmail.toml"
        self.rules_file = tmp_path / "rules.yaml"
        self.write_config()

    def write_config(self, max_message_bytes: int | None = None) -> None:
        lines = [
            "[database]",
            f"url = {json.dumps(self.db_url)}",
            "[storage]",
            f"path = {json.dumps(str(self.storage))}",
            "fsync_batch = 8",
            "[leads]",
            'own_addresses = ["sales@northwind.example"]',
        ]
        if max_message_bytes is not None:
            lines.append(f"max_message_bytes = {max_message_bytes}")
        # A rule file only where a test writes one (rules_file); else leads stay unassigned.
        lines += ["[rules]", f"path = {json.dumps(str(self.rules_file))}"]
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return invoke(["--config", str(self.config), *args], env=env)

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args).stdout)

    def jsonl(self, *args: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.ok(*args).stdout.splitlines()]


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    # Wide enough that rich never folds a name or a subject across lines.
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "200", **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert result.exc_info is not None
        detail = "".join(traceback.format_exception(*result.exc_info))
        raise AssertionError(f"leadmail crashed instead of reporting an error:\n{detail}")
    assert "Traceback" not in result.output
    return result


def assert_user_error(result: Result, *expected: str) -> str:
    """One line on stderr, 'leadmail: error: ...', non-zero exit, nothing on stdout."""
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("leadmail: error: "), lines[0]
    assert result.stdout == ""
    for text in expected:
        assert text in lines[0]
    return lines[0]


def write_files(directory: Path, files: dict[str, bytes]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    separator = b"From jane@acme-industrial.example Mon Nov  2 09:30:00 2026\n"
    path.write_bytes(b"".join(separator + m + b"\n" for m in messages))
    return path


def by_source(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    assert len({r["source"] for r in rows}) == len(rows), "a source was reported twice"
    return {r["source"]: r for r in rows}


def stored_blobs(storage: Path) -> list[str]:
    """The digests of the readable (not erased) records in the blob store's packs."""
    directory = storage / "blobs" / "packs"
    digests: list[str] = []
    for name in packs.pack_names(directory):
        fd = os.open(directory / name, os.O_RDONLY)
        try:
            digests += [r.digest.hex() for r in packs.iter_live(fd)]
        finally:
            os.close(fd)
    return digests


def pack_bytes(storage: Path) -> bytes:
    directory = storage / "blobs" / "packs"
    return b"".join((directory / name).read_bytes() for name in packs.pack_names(directory))


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """A directory of .eml files: an enquiry, its reply, a second enquiry, an auto-reply."""
    directory = tmp_path / "inbox"
    write_files(
        directory,
        {
            "01-enquiry.eml": ENQUIRY,
            "02-reply.eml": REPLY,
            "03-desks.eml": DESKS,
            "04-auto-reply.eml": AUTO_REPLY,
        },
    )
    return directory


@pytest.fixture
def ingested(leadmail: Leadmail, inbox: Path) -> dict[str, dict[str, Any]]:
    """The inbox ingested; the JSON result of each message by file name."""
    rows = leadmail.jsonl("ingest", "--json", str(inbox))
    return {Path(r["source"]).name: r for r in rows}


# -- init -----------------------------------------------------------------------------------


def test_every_lazy_command_resolves_and_help_lists_it() -> None:
    runner = CliRunner()
    for name in COMMANDS:
        command = cli.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None and command.name == name
    listing = runner.invoke(cli, ["--help"])
    assert listing.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in listing.output
    unknown = runner.invoke(cli, ["lead", "list"])
    assert unknown.exit_code == 2 and "No such command 'lead'" in unknown.output


def test_init_creates_then_reports_up_to_date(leadmail: Leadmail) -> None:
    first = leadmail.ok("init")
    assert first.stdout.startswith("database created (schema ")
    second = leadmail.ok("init")
    assert second.stdout.startswith("database is up to date (schema ")
    # Same schema revision named both times.
    assert first.stdout.split("schema ")[1] == second.stdout.split("schema ")[1]
    assert leadmail.json("leads", "list", "--format", "json") == []


# -- ingest ---------------------------------------------------------------------------------


def test_ingest_json_contract_on_a_directory_of_eml_files(leadmail: Leadmail, inbox: Path) -> None:
    result = leadmail.ok("ingest", "--json", str(inbox))
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert set(row) == INGEST_KEYS
        assert row["outcome"] in OUTCOMES
        assert row["kind"] in KINDS
        assert row["lead_id"] is None or isinstance(row["lead_id"], int)
        assert isinstance(row["reasons"], list) and row["reasons"]
        assert all(isinstance(r, str) for r in row["reasons"])
    got = by_source(rows)
    enquiry = got[str(inbox / "01-enquiry.eml")]
    reply = got[str(inbox / "02-reply.eml")]
    desks = got[str(inbox / "03-desks.eml")]
    auto = got[str(inbox / "04-auto-reply.eml")]
    assert (enquiry["outcome"], enquiry["kind"]) == ("created", "human")
    assert enquiry["message_id"] == "enquiry-1@acme-industrial.example"
    assert (reply["outcome"], reply["lead_id"]) == ("threaded", enquiry["lead_id"])
    assert desks["outcome"] == "created" and desks["lead_id"] not in (None, enquiry["lead_id"])
    assert auto["outcome"] == "ignored" and auto["kind"] in {"auto_reply", "out_of_office"}
    assert auto["lead_id"] is None
    # With --json the summary goes to stderr so stdout stays one JSON object per line.
    assert result.stderr.strip() == "4 messages: 2 created, 1 ignored, 1 threaded"


def test_ingest_without_json_prints_a_summary(leadmail: Leadmail, inbox: Path) -> None:
    result = leadmail.ok("ingest", str(inbox))
    assert result.stdout.strip() == "4 messages: 2 created, 1 ignored, 1 threaded"
    again = leadmail.ok("ingest", str(inbox))
    assert again.stdout.strip() == "4 messages: 4 duplicate"


def test_ingest_mbox_reports_numbered_sources(leadmail: Leadmail, tmp_path: Path) -> None:
    mbox = write_mbox(tmp_path / "sales.mbox", [ENQUIRY, REPLY, DESKS])
    rows = leadmail.jsonl("ingest", "--json", str(mbox))
    assert [r["source"] for r in rows] == [f"{mbox}#1", f"{mbox}#2", f"{mbox}#3"]
    assert [r["outcome"] for r in rows] == ["created", "threaded", "created"]
    assert rows[0]["lead_id"] == rows[1]["lead_id"] != rows[2]["lead_id"]
    leads = leadmail.json("leads", "list", "--format", "json")
    assert [(lead["email"], lead["messages"]) for lead in leads] == [
        ("jane@acme-industrial.example", 2),
        ("bob@globex-trading.example", 1),
    ]


def test_ingest_maildir(leadmail: Leadmail, tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    (maildir / "tmp").mkdir(parents=True)
    (maildir / "tmp" / "1762075800.M9P9.host").write_bytes(DESKS)  # still being delivered
    write_files(maildir / "cur", {"1762075800.M1P1.host:2,S": ENQUIRY})
    write_files(maildir / "new", {"1762075900.M2P2.host": REPLY})
    rows = leadmail.jsonl("ingest", "--json", str(maildir))
    assert [(Path(r["source"]).name, r["outcome"]) for r in rows] == [
        ("1762075800.M1P1.host:2,S", "created"),
        ("1762075900.M2P2.host", "threaded"),
    ]
    assert rows[0]["lead_id"] == rows[1]["lead_id"]
    leads = leadmail.json("leads", "list", "--format", "json")
    assert [(lead["email"], lead["status"]) for lead in leads] == [
        ("jane@acme-industrial.example", "Open")
    ]


def test_dry_run_reports_outcomes_and_stores_nothing(
    leadmail: Leadmail, inbox: Path, tmp_path: Path
) -> None:
    junk = write_files(tmp_path / "other", {"notes.txt": NOT_MAIL})[0]
    result = leadmail.ok("ingest", "--dry-run", "--json", str(inbox / "01-enquiry.eml"), str(junk))
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["outcome"], r["kind"]) for r in rows] == [
        ("created", "human"),
        ("quarantined", None),
    ]
    assert rows[0]["message_id"] == "enquiry-1@acme-industrial.example"
    assert result.stderr.strip() == "dry run: 2 messages: 1 created, 1 quarantined"
    assert leadmail.json("leads", "list", "--format", "json") == []
    assert leadmail.json("quarantine", "list", "--all", "--format", "json") == []
    assert stored_blobs(leadmail.storage) == []
    # Nothing was remembered: the real run still creates the lead.
    real = leadmail.jsonl("ingest", "--json", str(inbox / "01-enquiry.eml"))
    assert real[0]["outcome"] == "created"
    assert len(leadmail.json("leads", "list", "--format", "json")) == 1


def test_dry_run_predicts_the_real_run(leadmail: Leadmail, tmp_path: Path) -> None:
    directory = tmp_path / "batch"
    write_files(directory, {"1.eml": ENQUIRY, "2.eml": REPLY, "3.eml": ENQUIRY})
    dry = leadmail.jsonl("ingest", "--dry-run", "--json", str(directory))
    real = leadmail.jsonl("ingest", "--json", str(directory))
    assert [r["outcome"] for r in real] == ["created", "threaded", "duplicate"]
    assert [r["outcome"] for r in dry] == [r["outcome"] for r in real]


def test_ingest_a_missing_path_among_good_ones_ingests_nothing(
    leadmail: Leadmail, inbox: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-folder"
    result = leadmail.run("ingest", str(inbox), str(missing))
    assert_user_error(result, "no such file or directory", str(missing))
    assert leadmail.json("leads", "list", "--format", "json") == []


# -- leads ----------------------------------------------------------------------------------


def test_leads_list_json(leadmail: Leadmail, ingested: dict[str, dict[str, Any]]) -> None:
    leads = leadmail.json("leads", "list", "--format", "json")
    assert isinstance(leads, list) and len(leads) == 2
    for lead in leads:
        assert set(lead) >= LEAD_KEYS
    jane, bob = leads
    assert jane["id"] == ingested["01-enquiry.eml"]["lead_id"]
    assert bob["id"] == ingested["03-desks.eml"]["lead_id"]
    assert (jane["email"], jane["name"], jane["status"], jane["messages"]) == (
        "jane@acme-industrial.example",
        "Jane Buyer",
        "Open",  # her reply came in after the enquiry
        2,
    )
    assert (bob["email"], bob["name"], bob["status"], bob["messages"]) == (
        "bob@globex-trading.example",
        "Bob Stone",
        "Lead",
        1,
    )
    assert jane["source"] == "Email" and jane["company"]
    assert isinstance(jane["is_organization"], bool)
    assert isinstance(jane["created_at"], str) and jane["created_at"][:4].isdigit()
    limited = leadmail.json("leads", "list", "--format", "json", "--limit", "1")
    assert [lead["id"] for lead in limited] == [jane["id"]]


def test_leads_list_csv(leadmail: Leadmail, ingested: dict[str, dict[str, Any]]) -> None:
    out = leadmail.ok("leads", "list", "--format", "csv").stdout
    reader = csv.DictReader(io.StringIO(out))
    assert reader.fieldnames is not None and set(reader.fieldnames) >= LEAD_KEYS
    rows = list(reader)
    assert [(r["email"], r["name"], r["status"], r["messages"]) for r in rows] == [
        ("jane@acme-industrial.example", "Jane Buyer", "Open", "2"),
        ("bob@globex-trading.example", "Bob Stone", "Lead", "1"),
    ]
    assert [int(r["id"]) for r in rows] == [
        ingested["01-enquiry.eml"]["lead_id"],
        ingested["03-desks.eml"]["lead_id"],
    ]


def test_leads_list_csv_with_no_leads_is_just_a_header(leadmail: Leadmail) -> None:
    out = leadmail.ok("leads", "list", "--format", "csv").stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert len(rows) == 1 and set(rows[0]) >= LEAD_KEYS


def test_leads_list_table_prints_names(
    leadmail: Leadmail, ingested: dict[str, dict[str, Any]]
) -> None:
    out = leadmail.ok("leads", "list").stdout
    for text in ("Jane Buyer", "Bob Stone", "jane@acme-industrial.example", "2 leads"):
        assert text in out
    assert "Carol" not in out  # the auto-reply made no lead


def test_leads_list_status_filter(leadmail: Leadmail, ingested: dict[str, dict[str, Any]]) -> None:
    open_ = leadmail.json("leads", "list", "--status", "Open", "--format", "json")
    assert [lead["email"] for lead in open_] == ["jane@acme-industrial.example"]
    new = leadmail.json("leads", "list", "--status", "lead", "--format", "json")
    assert [lead["email"] for lead in new] == ["bob@globex-trading.example"]
    none = leadmail.json("leads", "list", "--status", "Do Not Contact", "--format", "json")
    assert none == []


def test_leads_show_json_has_fields_and_timeline(
    leadmail: Leadmail, ingested: dict[str, dict[str, Any]]
) -> None:
    lead_id = ingested["01-enquiry.eml"]["lead_id"]
    detail = leadmail.json("leads", "show", str(lead_id), "--format", "json")
    assert set(detail) >= LEAD_KEYS
    assert (detail["id"], detail["email"], detail["status"]) == (
        lead_id,
        "jane@acme-industrial.example",
        "Open",
    )
    timeline = detail["timeline"]
    assert isinstance(timeline, list) and timeline
    for entry in timeline:
        assert entry["type"] in TIMELINE_TYPES
        assert isinstance(entry["at"], str) and entry["at"]
    messages = [e for e in timeline if e["type"] == "message"]
    assert [
        (m["direction"], m["message_id"], m["subject"], m["kind"], m["outcome"]) for m in messages
    ] == [
        (
            "in",
            "enquiry-1@acme-industrial.example",
            "Quote for 200 office chairs",
            "human",
            "created",
        ),
        (
            "in",
            "r1@acme-industrial.example",
            "Re: Quote for 200 office chairs",
            "human",
            "threaded",
        ),
    ]
    statuses = [(e["from_status"], e["to_status"]) for e in timeline if e["type"] == "status"]
    assert statuses == [(None, "Lead"), ("Lead", "Open")]


def test_leads_show_table_prints_the_timeline(
    leadmail: Leadmail, ingested: dict[str, dict[str, Any]]
) -> None:
    lead_id = ingested["01-enquiry.eml"]["lead_id"]
    out = leadmail.ok("leads", "show", str(lead_id)).stdout
    for text in (
        "jane@acme-industrial.example",
        "Jane Buyer",
        "timeline",
        "Quote for 200 office chairs",
        "Re: Quote for 200 office chairs",
        "Lead → Open",
    ):
        assert text in out
    assert "Standing desks" not in out  # Bob's enquiry is on his own lead


# -- quarantine -----------------------------------------------------------------------------


def test_quarantine_list_show_and_replay(leadmail: Leadmail, tmp_path: Path) -> None:
    junk = write_files(tmp_path / "other", {"notes.txt": NOT_MAIL})[0]
    rows = leadmail.jsonl("ingest", "--json", str(junk))
    assert len(rows) == 1
    row = rows[0]
    assert (row["source"], row["outcome"], row["kind"], row["lead_id"]) == (
        str(junk),
        "quarantined",
        None,
        None,
    )
    assert row["reasons"][0].startswith("quarantined #")

    entries = leadmail.json("quarantine", "list", "--format", "json")
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["source"], entry["status"], entry["attempts"]) == (str(junk), "held", 1)
    assert "not a mail message" in entry["reason"]
    assert row["reasons"][0].startswith(f"quarantined #{entry['id']}: ")

    table = leadmail.ok("quarantine", "list").stdout
    # A long temp path folds inside its cell: look for the file name's stem only.
    assert str(entry["id"]) in table and "notes" in table and "not a mail message" in table
    csv_rows = list(
        csv.DictReader(io.StringIO(leadmail.ok("quarantine", "list", "--format", "csv").stdout))
    )
    assert [(r["id"], r["source"], r["status"]) for r in csv_rows] == [
        (str(entry["id"]), str(junk), "held")
    ]

    shown = leadmail.ok("quarantine", "show", str(entry["id"])).stdout
    assert "not a mail message" in shown and "Shopping list" in shown
    shown_json = leadmail.json("quarantine", "show", str(entry["id"]), "--format", "json")
    assert shown_json["reason"] == entry["reason"]
    assert shown_json["headers"].startswith("Shopping list")

    # Still not mail: replaying keeps it held, in the same entry, one more attempt.
    replayed = leadmail.ok("quarantine", "replay", str(entry["id"])).stdout
    assert replayed.startswith(f"{junk}: quarantined")
    replayed_all = leadmail.jsonl("quarantine", "replay", "--all", "--json")
    assert [(r["source"], r["outcome"]) for r in replayed_all] == [(str(junk), "quarantined")]
    after = leadmail.json("quarantine", "list", "--format", "json")
    assert [(e["id"], e["status"], e["attempts"]) for e in after] == [(entry["id"], "held", 3)]


def test_quarantine_replay_after_the_cause_is_fixed(leadmail: Leadmail, tmp_path: Path) -> None:
    leadmail.write_config(max_message_bytes=1024)
    big = make_mail(body="Please quote for the attached list.\n" + "chair model X-200\n" * 200)
    path = write_files(tmp_path / "in", {"big.eml": big})[0]
    rows = leadmail.jsonl("ingest", "--json", str(path))
    assert rows[0]["outcome"] == "quarantined"
    assert "max_message_bytes" in rows[0]["reasons"][0]
    [entry] = leadmail.json("quarantine", "list", "--format", "json")

    leadmail.write_config()  # the default limit
    replayed = leadmail.jsonl("quarantine", "replay", "--all", "--json")
    assert [(r["source"], r["outcome"], r["kind"]) for r in replayed] == [
        (str(path), "created", "human")
    ]
    assert leadmail.json("quarantine", "list", "--format", "json") == []
    [done] = leadmail.json("quarantine", "list", "--all", "--format", "json")
    assert (done["id"], done["status"], done["replay_outcome"]) == (
        entry["id"],
        "replayed",
        "created",
    )
    leads = leadmail.json("leads", "list", "--format", "json")
    assert [(lead["id"], lead["email"]) for lead in leads] == [
        (replayed[0]["lead_id"], "jane@acme-industrial.example")
    ]
    assert leadmail.ok("quarantine", "replay", "--all").stdout.strip() == "nothing to replay"


def test_quarantine_list_with_nothing_held(leadmail: Leadmail) -> None:
    assert leadmail.json("quarantine", "list", "--format", "json") == []
    rows = list(
        csv.reader(io.StringIO(leadmail.ok("quarantine", "list", "--format", "csv").stdout))
    )
    assert len(rows) == 1 and {"id", "reason", "source"} <= set(rows[0])


@pytest.mark.parametrize("args", [["1", "--all"], []], ids=["both", "neither"])
def test_quarantine_replay_needs_an_id_or_all(leadmail: Leadmail, args: list[str]) -> None:
    result = leadmail.run("quarantine", "replay", *args)
    assert result.exit_code == 2
    assert "give an entry id or --all" in result.stderr


# -- settings from the environment ----------------------------------------------------------


def test_env_vars_configure_database_and_storage(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config.toml here
    storage = tmp_path / "env-data"
    env = {"LEADMAIL_DATABASE__URL": db_url, "LEADMAIL_STORAGE__PATH": str(storage)}
    path = write_files(tmp_path / "in", {"enquiry.eml": ENQUIRY})[0]
    assert invoke(["init"], env=env).stdout.startswith("database created")
    rows = [
        json.loads(x) for x in invoke(["ingest", "--json", str(path)], env=env).stdout.splitlines()
    ]
    assert [r["outcome"] for r in rows] == ["created"]
    assert len(stored_blobs(storage)) == 1  # the raw message, under the configured path
    leads = json.loads(invoke(["leads", "list", "--format", "json"], env=env).stdout)
    assert [lead["email"] for lead in leads] == ["jane@acme-industrial.example"]


# -- user errors ----------------------------------------------------------------------------


def test_unknown_lead_id(leadmail: Leadmail, ingested: dict[str, dict[str, Any]]) -> None:
    for fmt in ("table", "json"):
        result = leadmail.run("leads", "show", "9999", "--format", fmt)
        assert_user_error(result, "9999")
        assert result.exit_code == 1


def test_unknown_quarantine_id(leadmail: Leadmail) -> None:
    for args in (["show", "4242"], ["show", "4242", "--format", "json"], ["replay", "4242"]):
        result = leadmail.run("quarantine", *args)
        assert_user_error(result, "4242")
        assert result.exit_code == 1


@pytest.mark.parametrize("number", ["0", "2147483648", "99999999999999999999"])
@pytest.mark.parametrize(
    "command", [["leads", "show"], ["quarantine", "show"], ["quarantine", "replay"]]
)
def test_ids_out_of_range_are_refused_as_input(
    leadmail: Leadmail, command: list[str], number: str
) -> None:
    # Beyond the INTEGER columns the driver itself failed ("internal error") before the fix.
    result = leadmail.run(*command, number)
    assert result.exit_code == 2
    assert "Invalid value" in result.stderr and number in result.stderr
    assert "internal error" not in result.stderr


def test_an_unexpected_error_is_one_line_and_debug_shows_it(
    leadmail: Leadmail, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("driver said no\n[SQL: SELECT secret FROM leads]")

    monkeypatch.setattr("worker.cli.leads.list_leads", broken)
    result = leadmail.run("leads", "list")
    assert result.exit_code == 70
    assert result.stderr.strip().splitlines() == [
        "leadmail: internal error: RuntimeError: driver said no "
        "(run with --debug for the traceback)"
    ]
    debug = CliRunner().invoke(cli, ["--config", str(leadmail.config), "--debug", "leads", "list"])
    assert isinstance(debug.exception, RuntimeError)


def test_missing_ingest_path(leadmail: Leadmail, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.mbox"
    result = leadmail.run("ingest", "--json", str(missing))
    assert_user_error(result, str(missing))


def test_unknown_status_is_a_usage_error(leadmail: Leadmail) -> None:
    result = leadmail.run("leads", "list", "--status", "Pending")
    assert result.exit_code == 2
    assert "Invalid value for '--status'" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[database]\nurll = 1\n", "unknown key 'database.urll'"),
        ("[database]\nurl = 1\n", "database.url"),
        ('[database]\nurl = "mysql://db.example/leads"\n', "database.url"),
        ('[storage]\nfsync_batch = "many"\n', "storage.fsync_batch"),
        ("[database\n", "leadmail.toml"),
    ],
    ids=["unknown-key", "wrong-type", "unsupported-db", "not-a-number", "toml-syntax"],
)
@pytest.mark.parametrize("command", [["init"], ["leads", "list"], ["ingest", "."]])
def test_bad_config_is_one_line(
    tmp_path: Path, toml: str, expected: str, command: list[str]
) -> None:
    config = tmp_path / "leadmail.toml"
    config.write_text(toml, encoding="utf-8")
    result = invoke(["--config", str(config), *command])
    line = assert_user_error(result, expected, str(config))
    assert result.exit_code == 2, line


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    result = invoke(["--config", str(missing), "leads", "list"])
    assert_user_error(result, "config file not found", str(missing))


@pytest.mark.parametrize("command", [["init"], ["leads", "list"], ["ingest", "."]])
def test_unreachable_postgres_is_one_line_without_the_password(
    tmp_path: Path, command: list[str]
) -> None:
    env = {
        "LEADMAIL_DATABASE__URL": "postgresql://u:s3cret@127.0.0.1:1/x",
        "LEADMAIL_STORAGE__PATH": str(tmp_path / "data"),
    }
    result = invoke(["--config", str(_empty_config(tmp_path)), *command], env=env)
    assert_user_error(result, "database unreachable")
    assert "s3cret" not in result.output


def test_unreachable_postgres_without_password(tmp_path: Path) -> None:
    env = {
        "LEADMAIL_DATABASE__URL": "postgresql://postgres@127.0.0.1:1/x",
        "LEADMAIL_STORAGE__PATH": str(tmp_path / "data"),
    }
    result = invoke(["--config", str(_empty_config(tmp_path)), "leads", "list"], env=env)
    assert_user_error(result, "database unreachable")


def test_malformed_database_url_is_a_user_error(tmp_path: Path) -> None:
    env = {
        "LEADMAIL_DATABASE__URL": "postgresql://u:s3cret@127.0.0.1:x/db",
        "LEADMAIL_STORAGE__PATH": str(tmp_path / "data"),
    }
    result = invoke(["--config", str(_empty_config(tmp_path)), "leads", "list"], env=env)
    assert "s3cret" not in result.output
    assert_user_error(result, "database")


def _empty_config(tmp_path: Path) -> Path:
    config = tmp_path / "empty.toml"
    config.write_text("", encoding="utf-8")
    return config
