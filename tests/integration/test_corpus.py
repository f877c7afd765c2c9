"""Acceptance over the shared corpus: `leadmail ingest --json` of every real message, per backend.

The corpus is ingested once per backend per module (it takes seconds); the tests read that run's
report and database. SOURCES.md and LICENSES/ are not mail and are left out of the assertions.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, create_engine, func, select

from tests.conftest import PgDatabaseFactory
from worker.cli.main import cli
from worker.store.blobs import BlobStore
from worker.store.models import Attachment, Lead, Message, QuarantineEntry

OUTCOMES = {"created", "threaded", "duplicate", "ignored", "quarantined"}
KINDS = {"human", "bounce", "auto_reply", "out_of_office", "list", "report", "own"}
INGEST_KEYS = {"source", "message_id", "outcome", "kind", "lead_id", "reasons"}
MACHINE_FOLDERS = ("bounces", "auto-replies", "reports", "lists")
# What each machine-mail folder must be classified as (lists are only required to make no lead).
MACHINE_KINDS = {
    "bounces": {"bounce"},
    "reports": {"report"},
    "auto-replies": {"auto_reply", "out_of_office"},
}
THAI = "charsets/demisto--eml_contains_image_name_with_Thai_characters.eml"
_MBOX_INDEX = re.compile(r"#\d+$")


@dataclass
class CorpusRun:
    corpus: Path
    config: Path
    storage: Path
    engine: Engine
    result: Result
    rows: list[dict[str, Any]]

    def by_file(self, rows: list[dict[str, Any]] | None = None) -> dict[str, list[dict[str, Any]]]:
        """Rows of .eml files by path relative to the corpus (a file read as mbox is `#N`)."""
        files: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows if rows is None else rows:
            path = Path(_MBOX_INDEX.sub("", row["source"]))
            if path.suffix == ".eml":
                files.setdefault(path.relative_to(self.corpus).as_posix(), []).append(row)
        return files

    def one(self, name: str) -> dict[str, Any]:
        [row] = self.by_file()[name]
        return row

    def ingest(self, *paths: Path) -> tuple[Result, list[dict[str, Any]]]:
        return ingest(self.config, *paths)

    def count(self, model: type) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(model)) or 0)


def ingest(config: Path, *paths: Path) -> tuple[Result, list[dict[str, Any]]]:
    args = ["--config", str(config), "ingest", "--json", *map(str, paths)]
    result = CliRunner().invoke(cli, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError("leadmail ingest crashed") from result.exception
    assert result.exit_code == 0, result.stderr
    return result, [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def corpus_run(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_database: PgDatabaseFactory,
    corpus_dir: Path,
) -> Iterator[CorpusRun]:
    tmp = tmp_path_factory.mktemp(f"corpus-{request.param}")
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp}/leadmail.db"
        else:
            url = stack.enter_context(pg_database())
        storage = tmp / "data"
        config = tmp / "leadmail.toml"
        config.write_text(
            f"[database]\nurl = {json.dumps(url)}\n[storage]\npath = {json.dumps(str(storage))}\n",
            encoding="utf-8",
        )
        result, rows = ingest(config, corpus_dir)
        engine = create_engine(url)
        stack.callback(engine.dispose)
        yield CorpusRun(corpus_dir, config, storage, engine, result, rows)


def corpus_files(corpus: Path) -> set[str]:
    return {p.relative_to(corpus).as_posix() for p in corpus.rglob("*.eml")}


def test_every_message_gets_exactly_one_outcome(corpus_run: CorpusRun) -> None:
    result = corpus_run.result
    assert "Traceback" not in result.output
    assert "internal error" not in result.stderr
    files = corpus_run.by_file()
    expected = corpus_files(corpus_run.corpus)
    assert len(expected) >= 100  # the corpus is there, not an empty folder
    assert set(files) == expected
    several = {name: len(rows) for name, rows in files.items() if len(rows) != 1}
    assert several == {}
    for rows in files.values():
        row = rows[0]
        assert set(row) == INGEST_KEYS
        assert row["outcome"] in OUTCOMES
        if row["outcome"] == "quarantined":
            assert row["kind"] is None and row["lead_id"] is None
        else:
            assert row["kind"] in KINDS
        assert row["reasons"] and all(isinstance(r, str) for r in row["reasons"])
    # The summary on stderr counts what was printed, and every created lead exists.
    counts = Counter(r["outcome"] for r in corpus_run.rows)
    summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
    *logged, last = result.stderr.strip().splitlines()
    assert last == f"{len(corpus_run.rows)} messages: {summary}"
    # Besides the summary, one warning line per quarantined message, naming it and why.
    held = [r for r in corpus_run.rows if r["outcome"] == "quarantined"]
    assert len(logged) == len(held), logged
    for line, row in zip(logged, held, strict=True):
        assert f"WARNING worker.services.intake: quarantined {row['source']}: " in line
    assert corpus_run.count(Lead) == counts["created"]
    created = {r["lead_id"] for r in corpus_run.rows if r["outcome"] == "created"}
    assert len(created) == counts["created"]


def test_machine_mail_never_makes_or_joins_a_lead(corpus_run: CorpusRun) -> None:
    checked = 0
    for name, [row] in corpus_run.by_file().items():
        folder = name.split("/", 1)[0]
        if folder not in MACHINE_FOLDERS:
            continue
        checked += 1
        assert row["outcome"] in {"ignored", "duplicate"}, (name, row)
        if folder in MACHINE_KINDS:
            assert row["kind"] in MACHINE_KINDS[folder], (name, row)
    assert checked >= 25
    # And in the database: no message from those folders sits on a lead.
    with corpus_run.engine.connect() as conn:
        sources = conn.scalars(select(Message.source).where(Message.lead_id.is_not(None))).all()
    on_leads = {
        Path(_MBOX_INDEX.sub("", s)).relative_to(corpus_run.corpus).parts[0]
        for s in sources
        if s and s.startswith(str(corpus_run.corpus))
    }
    assert on_leads.isdisjoint(MACHINE_FOLDERS)


def test_rfc2822_thread_ends_on_one_lead(corpus_run: CorpusRun) -> None:
    first = corpus_run.one("replies/mikel--example01.eml")
    second = corpus_run.one("replies/mikel--example06.eml")
    third = corpus_run.one("replies/mikel--example07.eml")
    assert first["outcome"] == "created"
    assert (second["outcome"], third["outcome"]) == ("threaded", "threaded")
    assert first["lead_id"] == second["lead_id"] == third["lead_id"] is not None
    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(corpus_run.config),
            "leads",
            "show",
            str(first["lead_id"]),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    timeline = json.loads(result.stdout)["timeline"]
    threaded = [e["message_id"] for e in timeline if e["type"] == "message"]
    assert [first["message_id"], second["message_id"], third["message_id"]] == threaded[:3]


def test_thai_attachment_name_is_decoded_and_its_blob_kept(corpus_run: CorpusRun) -> None:
    row = corpus_run.one(THAI)
    assert row["outcome"] == "created"
    source = str(corpus_run.corpus / THAI)
    with corpus_run.engine.connect() as conn:
        attachments = conn.execute(
            select(Attachment.filename, Attachment.sha256, Attachment.size, Attachment.content_type)
            .join(Message, Message.id == Attachment.message_id)
            .where(Message.source == source)
        ).all()
    named = [a for a in attachments if a.filename == "ผ้าห่ม06[4].jpg"]
    assert len(named) == 1, [a.filename for a in attachments]
    attachment = named[0]
    assert attachment.content_type == "image/jpeg"
    data = BlobStore(corpus_run.storage / "blobs", corpus_run.engine).get(attachment.sha256)
    assert len(data) == attachment.size > 0
    assert data[:3] == b"\xff\xd8\xff"  # a JPEG, decoded from base64


def test_ingesting_the_same_paths_again_only_finds_duplicates(corpus_run: CorpusRun) -> None:
    leads, messages = corpus_run.count(Lead), corpus_run.count(Message)
    held = corpus_run.count(QuarantineEntry)
    result, rows = corpus_run.ingest(corpus_run.corpus)
    assert "Traceback" not in result.output
    before = corpus_run.by_file()
    after = corpus_run.by_file(rows)
    assert set(after) == set(before)
    for name, [row] in after.items():
        [first] = before[name]
        if first["outcome"] == "quarantined":
            # Not stored as a message, so not a duplicate: held again, in the same entry.
            assert row["outcome"] == "quarantined", (name, row)
            assert row["reasons"][0].split(":")[0] == first["reasons"][0].split(":")[0]
        else:
            assert row["outcome"] == "duplicate", (name, row)
            assert row["lead_id"] == first["lead_id"], name
    assert (corpus_run.count(Lead), corpus_run.count(Message)) == (leads, messages)
    assert corpus_run.count(QuarantineEntry) == held


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("attachments/cpython--msg_07.eml", "bom"),  # LF, no Message-ID: content hash only
        ("attachments/cpython--msg_07.eml", "crlf"),
        ("attachments/cpython--msg_07.eml", "bom+crlf"),
        (THAI, "bom"),  # CRLF, no Message-ID
        (THAI, "lf"),
        ("attachments/flanker--iphone.eml", "bom+crlf"),  # LF with a Message-ID
    ],
)
def test_bom_and_line_ending_copies_are_duplicates(
    corpus_run: CorpusRun, tmp_path: Path, name: str, change: str
) -> None:
    original = corpus_run.one(name)
    assert original["outcome"] == "created"
    data = (corpus_run.corpus / name).read_bytes()
    if "crlf" in change:
        assert b"\r\n" not in data
        data = data.replace(b"\n", b"\r\n")
    if change == "lf":
        assert b"\r\n" in data
        data = data.replace(b"\r\n", b"\n")
    if "bom" in change:
        data = b"\xef\xbb\xbf" + data
    copy = tmp_path / "copy.eml"
    copy.write_bytes(data)
    messages = corpus_run.count(Message)
    _, [row] = corpus_run.ingest(copy)
    assert row["outcome"] == "duplicate", row
    assert row["lead_id"] == original["lead_id"]
    assert row["message_id"] == original["message_id"]
    assert corpus_run.count(Message) == messages
