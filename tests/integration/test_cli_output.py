"""What the CLI prints for a person: mail can never drive the terminal, the timeline is in
time order, and a closed pipe ends the command quietly."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import enquiries
from tests.integration.test_cli import Leadmail, write_files, write_mbox

# Raw, any of these would let a message act on the terminal (or fail the write).
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
EVIL_NAME = "\x1b]0;pwned\x07Evil\x1b[2J\x9b31mBoss\x1b[1A"
EVIL_SUBJECT = (
    "[bold red]x[/] [link=https://evil.example]click[/link] \x1b[2J\u202eevil :smile:\x85end"
)
EVIL_ID = "x\x1b[2J@evil.example"


def _encoded(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _mail(
    *,
    name: str = "Jane Buyer",
    subject: str = "Quote for chairs",
    message_id: str = "<q1@acme.example>",
    date: str = "Mon, 02 Nov 2026 09:30:00 +0000",
    extra: str = "",
    sender: str = "jane@acme-industrial.example",
) -> bytes:
    return (
        f"From: {_encoded(name)} <{sender}>\r\n"
        "To: sales@northwind.example\r\n"
        f"Subject: {_encoded(subject)}\r\n"
        f"Message-ID: <{message_id.strip('<>')}>\r\n"
        f"Date: {date}\r\n{extra}"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Could you send a quote for 200 chairs?\r\n"
    ).encode()


HOSTILE = _mail(name=EVIL_NAME, subject=EVIL_SUBJECT, message_id=EVIL_ID)


def assert_safe(*outputs: str) -> None:
    for output in outputs:
        found = UNSAFE.search(output)
        assert found is None, f"raw {found.group()!r} printed" if found else ""


@pytest.fixture
def hostile_lead(leadmail: Leadmail, tmp_path: Path) -> int:
    (path,) = write_files(tmp_path / "in", {"evil.eml": HOSTILE})
    result = leadmail.ok("ingest", str(path))
    assert_safe(result.stdout, result.stderr)
    (lead,) = leadmail.json("leads", "list", "--format", "json")
    return int(lead["id"])


# -- the sanitiser on every format ----------------------------------------------------------


def test_leads_list_table_escapes_a_hostile_name(leadmail: Leadmail, hostile_lead: int) -> None:
    result = leadmail.ok("leads", "list")
    assert_safe(result.stdout, result.stderr)
    assert "\\x1b]0;pwned\\x07Evil\\x1b[2J\\x9b31mBoss" in result.stdout


def test_leads_show_table_escapes_and_prints_markup_literally(
    leadmail: Leadmail, hostile_lead: int
) -> None:
    result = leadmail.ok("leads", "show", str(hostile_lead))
    out = result.stdout
    assert_safe(out, result.stderr)
    assert "\\x1b]0;pwned\\x07Evil" in out
    # rich markup and emoji codes in a subject are text, not styling, links or emoji
    assert "[bold red]x[/] [link=https://evil.example]click[/link]" in out
    assert ":smile:" in out
    assert "\\u202eevil" in out and "\\x85end" in out
    assert "x\\x1b[2J@evil.example" in out  # the Message-ID in the status cause


def test_json_output_is_exact(leadmail: Leadmail, hostile_lead: int) -> None:
    listed = leadmail.ok("leads", "list", "--format", "json")
    shown = leadmail.ok("leads", "show", str(hostile_lead), "--format", "json")
    assert_safe(listed.stdout, shown.stdout)
    assert json.loads(listed.stdout)[0]["name"] == EVIL_NAME
    detail = json.loads(shown.stdout)
    assert detail["name"] == EVIL_NAME
    (message,) = [e for e in detail["timeline"] if e["type"] == "message"]
    assert message["subject"] == EVIL_SUBJECT
    assert message["message_id"] == EVIL_ID


def test_csv_output_strips_controls(leadmail: Leadmail, hostile_lead: int) -> None:
    result = leadmail.ok("leads", "list", "--format", "csv")
    assert_safe(result.stdout)
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["name"] == "]0;pwnedEvil[2J31mBoss[1A"


def test_ingest_json_is_exact_and_safe(leadmail: Leadmail, tmp_path: Path) -> None:
    (path,) = write_files(tmp_path / "in", {"evil.eml": HOSTILE})
    result = leadmail.ok("ingest", "--json", str(path))
    assert_safe(result.stdout, result.stderr)
    assert json.loads(result.stdout)["message_id"] == EVIL_ID


def test_quarantine_list_and_show_escape_names_and_headers(
    leadmail: Leadmail, tmp_path: Path
) -> None:
    not_mail = b"Shopping \x1b]0;pwned\x07 list\r\n\x1b[2J\x9b\n\n- milk\n"
    (path,) = write_files(tmp_path / "in", {"notes\x1b[2J\u202e.txt": not_mail})
    leadmail.ok("ingest", str(path))
    for fmt in ("table", "csv"):
        result = leadmail.ok("quarantine", "list", "--format", fmt)
        assert_safe(result.stdout, result.stderr)
        assert "notes" in result.stdout
    listed = leadmail.ok("quarantine", "list", "--format", "json")
    assert_safe(listed.stdout)
    (entry,) = json.loads(listed.stdout)
    assert entry["source"] == str(path)  # exact
    shown = leadmail.ok("quarantine", "show", str(entry["id"]))
    assert_safe(shown.stdout, shown.stderr)
    assert "Shopping \\x1b]0;pwned\\x07 list" in shown.stdout
    assert "notes\\x1b[2J\\u202e.txt" in shown.stdout
    as_json = leadmail.ok("quarantine", "show", str(entry["id"]), "--format", "json")
    assert_safe(as_json.stdout)
    assert json.loads(as_json.stdout)["source"] == str(path)
    replayed = leadmail.ok("quarantine", "replay", str(entry["id"]))
    assert_safe(replayed.stdout, replayed.stderr)


def test_an_error_naming_a_hostile_path_is_one_safe_line(
    leadmail: Leadmail, tmp_path: Path
) -> None:
    missing = tmp_path / "gone\x1b]0;pwned\x07.mbox"
    result = leadmail.run("ingest", str(missing))
    assert result.exit_code != 0
    assert_safe(result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1


def test_poll_log_lines_escape_what_the_mail_says(leadmail: Leadmail, tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.eml").write_bytes(HOSTILE)
    with leadmail.config.open("a", encoding="utf-8") as config:
        config.write(
            f'[[accounts]]\nname = "local"\nkind = "maildir"\npath = {json.dumps(str(maildir))}\n'
        )
    result = leadmail.run("poll", "--once")
    assert result.exit_code == 0, result.stderr
    assert_safe(result.stdout, result.stderr)
    assert "created x\\x1b[2J@evil.example -> lead #" in result.stderr


# -- the timeline -----------------------------------------------------------------------------


def test_the_timeline_is_in_the_order_things_happened_not_by_date_header(
    leadmail: Leadmail, tmp_path: Path
) -> None:
    # The enquiry claims to come from the future, the reply from the past: received in
    # this order, they must read in this order.
    first = _mail(message_id="<q1@acme.example>", date="Sat, 01 Jan 2099 00:00:00 +0000")
    reply = _mail(
        subject="Re: Quote for chairs",
        message_id="<r1@acme.example>",
        date="Fri, 01 Jan 1999 00:00:00 +0000",
        extra="In-Reply-To: <q1@acme.example>\r\nReferences: <q1@acme.example>\r\n",
    )
    later = _mail(
        subject="Re: Quote for chairs",
        message_id="<r2@acme.example>",
        date="Thu, 01 Jan 1970 00:00:00 +0000",
        extra="In-Reply-To: <r1@acme.example>\r\nReferences: <q1@acme.example>\r\n",
    )
    for name, data in (("1.eml", first), ("2.eml", reply), ("3.eml", later)):
        (path,) = write_files(tmp_path / name.split(".")[0], {name: data})
        leadmail.ok("ingest", str(path))
    (lead,) = leadmail.json("leads", "list", "--format", "json")
    detail = leadmail.json("leads", "show", str(lead["id"]), "--format", "json")
    timeline: list[dict[str, Any]] = detail["timeline"]
    messages = [e for e in timeline if e["type"] == "message"]
    assert [m["message_id"] for m in messages] == [
        "q1@acme.example",
        "r1@acme.example",
        "r2@acme.example",
    ]
    assert [m["date"][:4] for m in messages] == ["2099", "1999", "1970"]
    stamps = [e["at"] for e in timeline]
    assert stamps == sorted(stamps, key=lambda s: s.replace("+00:00", ""))
    # the lead's own history reads in cause order: the enquiry made it, the reply opened it
    kinds = [(e["type"], e.get("message_id") or e.get("to_status")) for e in timeline]
    assert kinds.index(("message", "q1@acme.example")) < kinds.index(("status", "Lead"))
    assert kinds.index(("message", "r1@acme.example")) < kinds.index(("status", "Open"))
    assert all(e["at"] >= messages[0]["at"] for e in timeline)

    table = leadmail.ok("leads", "show", str(lead["id"])).stdout
    rows = [line for line in table.splitlines() if "Quote for chairs" in line]
    assert len(rows) == 3
    assert "2099-01-01 00:00:00" in rows[0] and "1999-01-01 00:00:00" in rows[1]
    assert "1970-01-01 00:00:00" in rows[2]


# -- a closed pipe ------------------------------------------------------------------------------


@pytest.fixture
def many_leads(tmp_path: Path) -> Path:
    """A SQLite database with 1,200 leads (every listing is twice a pipe buffer); its config."""
    leadmail = Leadmail(tmp_path, f"sqlite:///{tmp_path / 'leads.sqlite'}")
    mbox = write_mbox(tmp_path / "many.mbox", enquiries(1200))
    leadmail.ok("ingest", str(mbox))
    return leadmail.config


def _closed_early(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run leadmail with stdout into a pipe whose reader goes away after one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADMAIL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert first
    return subprocess.CompletedProcess(proc.args, proc.returncode, first.decode(), err)


@pytest.mark.parametrize(
    "args",
    [
        ["leads", "list"],
        ["leads", "list", "--format", "json"],
        ["leads", "list", "--format", "csv"],
    ],
    ids=["table", "json", "csv"],
)
def test_a_closed_pipe_ends_a_listing_quietly(many_leads: Path, args: list[str]) -> None:
    done = _closed_early(many_leads, *args)
    assert done.stderr == ""
    # 141 when a write met the closed pipe; 0 when the listing went out in one write
    # (CPython then reports a short write, not the error).
    assert done.returncode in (0, 141)


def test_a_closed_pipe_stops_ingest_quietly(tmp_path: Path) -> None:
    leadmail = Leadmail(tmp_path, f"sqlite:///{tmp_path / 'leads.sqlite'}")
    mbox = write_mbox(tmp_path / "many.mbox", enquiries(400))
    done = _closed_early(leadmail.config, "ingest", "--json", str(mbox))
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert "Exception ignored" not in done.stderr
    assert done.returncode == 141
    assert json.loads(done.stdout)["outcome"] == "created"


def test_quarantine_show_prints_only_the_headers_of_a_crlf_message(
    leadmail: Leadmail, tmp_path: Path
) -> None:
    huge = _mail(subject="Too big") + b"body line\r\n" * 500
    (path,) = write_files(tmp_path / "in", {"big.eml": huge})
    leadmail.write_config(max_message_bytes=1024)
    leadmail.ok("ingest", str(path))
    (entry,) = leadmail.json("quarantine", "list", "--format", "json")
    shown = leadmail.ok("quarantine", "show", str(entry["id"]))
    assert "Subject: =?utf-8?b?" in shown.stdout
    assert "Could you send a quote" not in shown.stdout and "body line" not in shown.stdout
    assert "\\r" not in shown.stdout
