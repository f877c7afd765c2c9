"""Attachments from the CLI on each backend: attach, list, save, leads show, migration 0006."""

from __future__ import annotations

import csv
import io
import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text

from tests.integration.test_cli import Leadmail, assert_user_error, write_files
from worker.config import DatabaseSettings
from worker.store import schema
from worker.store.db import Database

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4
NOTES = b"Delivery: Leeds, dock 4\n"


def mail_with_attachments(files: dict[str, bytes]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Jane Buyer <jane@acme-industrial.example>"
    msg["To"] = "sales@northwind.example"
    msg["Subject"] = "Drawings for the chairs"
    msg["Message-ID"] = "<drawings-1@acme-industrial.example>"
    msg["Date"] = "Mon, 02 Nov 2026 09:30:00 +0000"
    msg.set_content("The drawings are attached.\n")
    for name, data in files.items():
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes()


@pytest.fixture
def lead_id(leadmail: Leadmail, tmp_path: Path) -> int:
    """Jane's mail with one attachment, which made her lead."""
    paths = write_files(
        tmp_path / "in", {"1.eml": mail_with_attachments({"drawing.bin": b"\x00\x01drawing"})}
    )
    rows = leadmail.jsonl("ingest", "--json", *map(str, paths))
    assert rows[0]["outcome"] == "created"
    return int(rows[0]["lead_id"])


def attach(leadmail: Leadmail, lead: int, *files: Path, by: str = "ann") -> list[dict[str, Any]]:
    return leadmail.jsonl("leads", "attach", str(lead), *map(str, files), "--by", by, "--json")


def listing(leadmail: Leadmail, lead: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = leadmail.json("attachments", "list", str(lead), "--format", "json")
    return rows


def test_attach_two_files_list_show_and_save(
    leadmail: Leadmail, lead_id: int, tmp_path: Path
) -> None:
    files = write_files(tmp_path / "mine", {"quote.pdf": PDF, "delivery notes": NOTES})
    added = attach(leadmail, lead_id, *files)
    assert [(a["filename"], a["content_type"], a["size"]) for a in added] == [
        ("quote.pdf", "application/pdf", len(PDF)),
        ("delivery notes", "text/plain", len(NOTES)),  # no extension: sniffed
    ]
    assert all(a["id"] > 0 and a["lead_id"] == lead_id for a in added)

    rows = listing(leadmail, lead_id)
    assert [r["filename"] for r in rows] == ["drawing.bin", "quote.pdf", "delivery notes"]
    from_mail = rows[0]
    assert not from_mail["on_lead"] and from_mail["subject"] == "Drawings for the chairs"
    assert from_mail["message_id"] == "drawings-1@acme-industrial.example"
    assert [r["on_lead"] for r in rows[1:]] == [True, True]

    table = leadmail.ok("attachments", "list", str(lead_id)).stdout
    assert "on the lead" in table and "Drawings for the chairs" in table
    csv_rows = list(
        csv.DictReader(
            io.StringIO(leadmail.ok("attachments", "list", str(lead_id), "--format", "csv").stdout)
        )
    )
    assert [r["filename"] for r in csv_rows] == ["drawing.bin", "quote.pdf", "delivery notes"]

    detail = leadmail.json("leads", "show", str(lead_id), "--format", "json")
    assert [a["id"] for a in detail["attachments"]] == [r["id"] for r in rows]
    logged = [e for e in detail["timeline"] if e.get("kind") == "attachment"]
    assert [(e["actor"], e["details"]["filename"]) for e in logged] == [
        ("ann", "quote.pdf"),
        ("ann", "delivery notes"),
    ]
    shown = leadmail.ok("leads", "show", str(lead_id)).stdout
    assert "quote.pdf (application/pdf" in shown and "on the lead" in shown

    out = tmp_path / "out"
    out.mkdir()
    for row, data in zip(rows, [b"\x00\x01drawing", PDF, NOTES], strict=True):
        saved = leadmail.json("attachments", "save", str(row["id"]), "--to", str(out), "--json")
        assert Path(saved["path"]) == out.resolve() / row["filename"]
        assert Path(saved["path"]).read_bytes() == data


def test_save_defaults_to_current_directory(
    leadmail: Leadmail, lead_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (added,) = attach(leadmail, lead_id, *write_files(tmp_path / "mine", {"a.pdf": PDF}))
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    leadmail.ok("attachments", "save", str(added["id"]))
    assert (here / "a.pdf").read_bytes() == PDF


def test_overwrite_refused_unless_forced(leadmail: Leadmail, lead_id: int, tmp_path: Path) -> None:
    (added,) = attach(leadmail, lead_id, *write_files(tmp_path / "mine", {"a.pdf": PDF}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.pdf").write_bytes(b"mine, keep it")
    result = leadmail.run("attachments", "save", str(added["id"]), "--to", str(out))
    assert result.exit_code == 1
    assert_user_error(result, "exists", "--force")
    assert (out / "a.pdf").read_bytes() == b"mine, keep it"
    # A symlink of that name is replaced, never written through.
    victim = tmp_path / "victim"
    victim.write_bytes(b"outside")
    (out / "a.pdf").unlink()
    (out / "a.pdf").symlink_to(victim)
    assert leadmail.run("attachments", "save", str(added["id"]), "--to", str(out)).exit_code == 1
    leadmail.ok("attachments", "save", str(added["id"]), "--to", str(out), "--force")
    assert (out / "a.pdf").read_bytes() == PDF and not (out / "a.pdf").is_symlink()
    assert victim.read_bytes() == b"outside"


def test_attach_refusals_are_one_line(leadmail: Leadmail, lead_id: int, tmp_path: Path) -> None:
    leadmail.write_config(max_message_bytes=2048)
    big, small = write_files(tmp_path / "mine", {"big.bin": b"x" * 4096, "ok.txt": b"ok"})
    cases = [
        ((str(tmp_path / "missing.pdf"),), "no such file"),
        ((str(tmp_path / "mine"),), "is a directory"),
        ((str(small), str(big)), "max_message_bytes"),
    ]
    for files, expected in cases:
        result = leadmail.run("leads", "attach", str(lead_id), *files)
        assert result.exit_code == 1, files
        assert_user_error(result, expected)
    # All or none: the good file of the refused batch was not stored either.
    assert [r["filename"] for r in listing(leadmail, lead_id)] == ["drawing.bin"]
    assert_user_error(leadmail.run("leads", "attach", "9999", str(small)), "no lead 9999")
    assert_user_error(leadmail.run("attachments", "save", "9999"), "no attachment 9999")
    assert_user_error(leadmail.run("attachments", "list", "9999"), "no lead 9999")


def test_missing_blob_is_one_line(leadmail: Leadmail, lead_id: int, tmp_path: Path) -> None:
    (added,) = attach(leadmail, lead_id, *write_files(tmp_path / "mine", {"a.pdf": PDF}))
    (pack,) = (leadmail.storage / "blobs" / "packs").glob("*.pack")
    content = pack.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    pack.write_bytes(content.replace(PDF, PDF[:-1] + b"?"))  # one byte flipped on disk
    assert_user_error(
        leadmail.run("attachments", "save", str(added["id"]), "--to", str(out)), "corrupt"
    )
    verify = leadmail.run("store", "verify", "--format", "json")
    assert verify.exit_code == 1
    assert [(p["problem"], p["table"], p["sha256"]) for p in json.loads(verify.stdout)] == [
        ("corrupt", "attachments", added["sha256"])
    ]
    pack.unlink()
    result = leadmail.run("attachments", "save", str(added["id"]), "--to", str(out))
    assert result.exit_code == 1
    assert_user_error(result, f"attachment {added['id']}", "missing")
    lines = leadmail.run("store", "verify").stdout.splitlines()
    assert any(line.startswith("missing: attachments.sha256 " + added["sha256"]) for line in lines)
    assert list(out.iterdir()) == []


def test_hostile_names_are_saved_inside_the_folder(
    leadmail: Leadmail, db_url: str, tmp_path: Path
) -> None:
    names = {"../../etc/passwd": b"one", "/tmp/evil.sh": b"two", "..\\..\\win.ini": b"three"}
    paths = write_files(tmp_path / "in", {"1.eml": mail_with_attachments(names)})
    lead = int(leadmail.jsonl("ingest", "--json", *map(str, paths))[0]["lead_id"])
    rows = listing(leadmail, lead)
    # Rows stored before names were sanitised on the way in (or by hand) keep them raw:
    # saving must still land inside the folder.
    db = Database(DatabaseSettings(url=db_url))
    try:
        with db.engine.begin() as conn:
            for row, raw in zip(rows, names, strict=True):
                conn.execute(
                    text("UPDATE attachments SET filename = :f WHERE id = :i"),
                    {"f": raw, "i": row["id"]},
                )
    finally:
        db.dispose()
    out = tmp_path / "deep" / "out"
    out.mkdir(parents=True)
    for row, data in zip(rows, names.values(), strict=True):
        saved = Path(
            leadmail.json("attachments", "save", str(row["id"]), "--to", str(out), "--json")["path"]
        )
        assert saved.parent == out.resolve() and saved.read_bytes() == data
    assert sorted(p.name for p in out.iterdir()) == ["evil.sh", "passwd", "win.ini"]
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["out"]


def test_migration_keeps_message_attachments(
    leadmail: Leadmail, lead_id: int, db_url: str, tmp_path: Path
) -> None:
    """Down to 0004 and up again with a message's attachment in the table."""
    before = listing(leadmail, lead_id)
    db = Database(DatabaseSettings(url=db_url))
    try:
        cfg = schema._alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            cfg.attributes["blob_root"] = leadmail.storage / "blobs"  # back to one file each
            command.downgrade(cfg, "0004")
        with db.engine.connect() as conn:
            columns = {c["name"]: c for c in inspect(conn).get_columns("attachments")}
        assert "lead_id" not in columns and not columns["message_id"]["nullable"]
    finally:
        db.dispose()
    blobs = leadmail.storage / "blobs"
    files = [p for p in blobs.glob("??/*") if p.is_file()]
    assert files  # 0013's downgrade wrote each blob back to a file of its own
    assert leadmail.ok("init").exit_code == 0
    # ... and its upgrade moved them into a pack again, and init removed the files.
    assert not any(p.exists() for p in files)
    assert leadmail.ok("store", "verify").exit_code == 0
    assert listing(leadmail, lead_id) == before
    (added,) = attach(leadmail, lead_id, *write_files(tmp_path / "mine", {"a.pdf": PDF}))
    out = tmp_path / "out"
    out.mkdir()
    leadmail.ok("attachments", "save", str(before[0]["id"]), "--to", str(out))
    assert (out / "drawing.bin").read_bytes() == b"\x00\x01drawing"
    assert added["id"] > before[0]["id"]


def test_an_attachment_has_exactly_one_owner(leadmail: Leadmail, db_url: str, lead_id: int) -> None:
    rows = listing(leadmail, lead_id)
    db = Database(DatabaseSettings(url=db_url))
    try:
        for owners in ("lead_id = :lead", "message_id = NULL"):
            with pytest.raises(Exception, match=r"(?i)check|constraint"), db.engine.begin() as conn:
                conn.execute(
                    text(f"UPDATE attachments SET {owners} WHERE id = :i"),
                    {"lead": lead_id, "i": rows[0]["id"]},
                )
    finally:
        db.dispose()
    assert json.dumps(listing(leadmail, lead_id)) == json.dumps(rows)
