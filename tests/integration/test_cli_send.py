"""``leadmail send`` and ``leadmail outbox`` through the CLI, on each backend.

Queueing only: the dispatcher and the SMTP transport (worker/jobs, worker/transport) are
tested where they live. Here: the lead a mail goes on, its headers, the refusals that queue
nothing, templates, and the outbox commands.
"""

from __future__ import annotations

import json
import stat
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, func, select, update

from tests.integration.helpers import make_mail
from tests.integration.test_cli import ENQUIRY, REPLY, Leadmail, assert_user_error, write_files
from worker.cli.main import cli
from worker.store.blobs import BlobStore
from worker.store.models import Lead, Message, table_of

RULES = """
timezone: UTC
executives:
  - id: alice
    name: Alice Chan
    email: alice@northwind.example
  - id: bob
    name: Bob Okafor
    email: bob@northwind.example
  - id: nomail
    name: No Mail
rules:
  - name: everyone
    assign: {strategy: round_robin, to: [alice, bob]}
"""
JANE = "jane@acme-industrial.example"
PASSWORD = "hunter2-very-secret"


@pytest.fixture
def mail(leadmail: Leadmail, tmp_path: Path) -> Leadmail:
    """The CLI with a rule file, a sender address, a template folder and SMTP credentials."""
    leadmail.rules_file.write_text(RULES, encoding="utf-8")
    templates = tmp_path / "templates"
    templates.mkdir()
    with leadmail.config.open("a", encoding="utf-8") as config:
        config.write(
            "[smtp]\n"
            'from_address = "sales@northwind.example"\n'
            'from_name = "Northwind Sales"\n'
            f"templates_path = {json.dumps(str(templates))}\n"
            'username = "sales@northwind.example"\n'
            'password_env = "LEADMAIL_TEST_SMTP_PASSWORD"\n'
        )
    return leadmail


def send(mail: Leadmail, *args: str) -> dict[str, Any]:
    out = mail.json("send", *args, "--json", "--by", "alice")
    assert isinstance(out, dict)
    return out


def outbox(mail: Leadmail, *args: str) -> list[dict[str, Any]]:
    rows = mail.json("outbox", "list", "--format", "json", *args)
    assert isinstance(rows, list)
    return rows


def raw_of(mail: Leadmail, outbox_id: int) -> EmailMessage:
    shown = mail.json("outbox", "show", str(outbox_id), "--json")
    digest = shown["raw_sha256"]
    engine = create_engine(mail.db_url)
    try:
        raw = BlobStore(mail.storage / "blobs", engine).get(digest)
    finally:
        engine.dispose()
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def count(mail: Leadmail, model: type[Lead] | type[Message]) -> int:
    engine = create_engine(mail.db_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(table_of(model))) or 0)
    finally:
        engine.dispose()


def ingest(mail: Leadmail, tmp_path: Path, *messages: bytes) -> None:
    files = {f"{i:02d}.eml": m for i, m in enumerate(messages)}
    paths = write_files(tmp_path / "in", files)
    mail.ok("ingest", *map(str, paths))


def jane_lead(mail: Leadmail, tmp_path: Path) -> int:
    ingest(mail, tmp_path, ENQUIRY, REPLY)
    (lead,) = mail.json("leads", "list", "--format", "json")
    return int(lead["id"])


def test_send_to_a_new_address_makes_a_routed_lead(mail: Leadmail) -> None:
    queued = send(
        mail,
        "--to",
        "Somchai Jaidee <somchai@siam-office.example>",
        "--subject",
        "Chairs?",
        "--body",
        "Hello Somchai,\nwe saw your tender.\n",
    )
    assert set(queued) == {"outbox_id", "message_id", "lead_id", "status"}
    assert queued["status"] == "pending"
    lead = mail.json("leads", "show", str(queued["lead_id"]), "--format", "json")
    assert (lead["email"], lead["source"], lead["status"]) == (
        "somchai@siam-office.example",
        "Outbound",
        "Lead",
    )
    assert lead["assigned_to"] == "alice"  # the round-robin rule, as for a lead from mail
    assert lead["name"] == "Somchai Jaidee"
    (row,) = outbox(mail)
    assert row["id"] == queued["outbox_id"] and row["message_id"] == queued["message_id"]
    assert (row["status"], row["executive"], row["recipients"]) == (
        "pending",
        "alice",
        ["somchai@siam-office.example"],
    )
    msg = raw_of(mail, queued["outbox_id"])
    assert msg["Message-ID"] == f"<{queued['message_id']}>"
    assert msg["From"] == "Alice Chan <alice@northwind.example>"
    assert msg["To"] == "Somchai Jaidee <somchai@siam-office.example>"
    assert msg["Subject"].startswith("Chairs? [#L") and msg["In-Reply-To"] is None
    assert queued["message_id"].startswith(f"L{queued['lead_id']}-")
    assert queued["message_id"].endswith("@northwind.example")
    # The lead shows the mail: direction out, its outbox state and recipients.
    shown = mail.json("leads", "show", str(queued["lead_id"]), "--format", "json")
    messages = [e for e in shown["timeline"] if e["type"] == "message"]
    assert [(m["direction"], m["outbox_status"], m["recipients"]) for m in messages] == [
        ("out", "pending", ["somchai@siam-office.example"])
    ]
    text = mail.ok("leads", "show", str(queued["lead_id"])).stdout
    assert "[outbound, pending]" in text and "to somchai@siam-office.example" in text


def test_send_to_a_known_address_uses_its_lead(mail: Leadmail, tmp_path: Path) -> None:
    lead_id = jane_lead(mail, tmp_path)
    leads_before = count(mail, Lead)
    queued = send(mail, "--to", JANE.upper(), "--subject", "Your quote", "--body", "Attached.")
    assert queued["lead_id"] == lead_id
    assert count(mail, Lead) == leads_before


def test_send_to_a_lead_threads_onto_its_latest_message(mail: Leadmail, tmp_path: Path) -> None:
    lead_id = jane_lead(mail, tmp_path)
    queued = send(
        mail, "--lead", str(lead_id), "--subject", "Re: Quote", "--body", "Here it is.",
        "--cc", "Tom <tom@acme-industrial.example>", "--as", "bob",
    )  # fmt: skip
    msg = raw_of(mail, queued["outbox_id"])
    assert msg["In-Reply-To"] == "<r1@acme-industrial.example>"
    assert msg["References"] == "<enquiry-1@acme-industrial.example> <r1@acme-industrial.example>"
    assert msg["From"] == "Bob Okafor <bob@northwind.example>"
    assert msg["To"] == f"Jane Buyer <{JANE}>"
    assert msg["Cc"] == "Tom <tom@acme-industrial.example>"
    (row,) = outbox(mail, "--lead", str(lead_id))
    assert row["recipients"] == [JANE, "tom@acme-industrial.example"]
    assert row["executive"] == "bob"
    # A reply to it (quoting our Message-ID) threads back onto the same lead, from Tom too:
    # the Cc made him a participant.
    reply = make_mail(
        sender="Tom <tom@acme-industrial.example>",
        subject="Re: Re: Quote",
        message_id="<r2@acme-industrial.example>",
        in_reply_to=f"<{queued['message_id']}>",
        references=f"<{queued['message_id']}>",
    )
    ingest(mail, tmp_path / "more", reply)
    messages = mail.json("messages", "list", "--lead", str(lead_id), "--format", "json")
    assert [m["direction"] for m in messages] == ["in", "in", "out", "in"]


def test_markdown_and_attachments(mail: Leadmail, tmp_path: Path) -> None:
    lead_id = jane_lead(mail, tmp_path)
    (pdf,) = write_files(tmp_path / "files", {"ใบเสนอราคา.pdf": b"%PDF-1.4 quote"})
    queued = send(
        mail, "--lead", str(lead_id), "--subject", "ใบเสนอราคา", "--body", "**200** chairs",
        "--markdown", "--attach", str(pdf),
    )  # fmt: skip
    msg = raw_of(mail, queued["outbox_id"])
    html = msg.get_body(("html",))
    assert html is not None and "<strong>200</strong>" in html.get_content()
    (part,) = msg.iter_attachments()
    assert (part.get_filename(), part.get_content_type()) == ("ใบเสนอราคา.pdf", "application/pdf")
    shown = mail.ok("outbox", "show", str(queued["outbox_id"])).stdout
    assert "[attachment: ใบเสนอราคา.pdf (application/pdf)]" in shown
    assert "**200** chairs" in shown


def _assert_refused(mail: Leadmail, result: Result, *needles: str) -> None:
    line = assert_user_error(result, *needles)
    assert result.exit_code == 1, line
    assert outbox(mail) == []


def test_refusals_queue_nothing(mail: Leadmail, tmp_path: Path) -> None:
    lead_id = jane_lead(mail, tmp_path)
    messages, leads = count(mail, Message), count(mail, Lead)
    base = ("send", "--lead", str(lead_id), "--body", "x")
    cases = [
        ((*base, "--subject", "Quote\r\nBcc: everyone@example.com"), "Subject: CR, LF or NUL"),
        ((*base, "--subject", "Quote\nBcc: x@example.com"), "header injection"),
        (("send", "--lead", "999", "--subject", "s", "--body", "x"), "no lead 999"),
        ((*base, "--subject", "s", "--as", "mallory"), "unknown executive 'mallory'"),
        ((*base, "--subject", "s", "--attach", str(tmp_path / "nope.pdf")), "nope.pdf"),
        ((*base, "--subject", "s", "--cc", "not-an-address"), "--cc 'not-an-address'"),
        ((*base, "--subject", "s", "--cc", "a@x.example\r\nBcc: b@y.example"), "Cc: CR"),
        ((*base, "--subject", "s", "--reason", "why"), "--reason goes with --force"),
        (("send", "--subject", "s", "--body", "x"), "exactly one of --lead ID and --to"),
        ((*base, "--subject", "s", "--template", "t.txt"), "give one of --body, --template"),
        (("send", "--to", "x@new.example", "--subject", "s", "--as", "nobody", "--body", "x"),
         "unknown executive"),
    ]  # fmt: skip
    for args, needle in cases:
        _assert_refused(mail, mail.run(*args), needle)
    # The refused --to made no lead either (its transaction was rolled back).
    assert (count(mail, Message), count(mail, Lead)) == (messages, leads)


def test_do_not_contact_needs_force_and_a_reason(mail: Leadmail, tmp_path: Path) -> None:
    lead_id = jane_lead(mail, tmp_path)
    mail.ok("leads", "set", str(lead_id), "--status", "Do Not Contact", "--by", "carol")
    base = ("send", "--lead", str(lead_id), "--subject", "s", "--body", "x")
    _assert_refused(mail, mail.run(*base), f"lead {lead_id} is Do Not Contact")
    _assert_refused(mail, mail.run(*base, "--force"), "Do Not Contact")
    _assert_refused(mail, mail.run("send", "--to", JANE, *base[3:]), "Do Not Contact")
    queued = send(mail, *base[1:], "--force", "--reason", "they asked for the invoice")
    (row,) = outbox(mail)
    assert row["id"] == queued["outbox_id"]
    shown = mail.json("leads", "show", str(lead_id), "--format", "json")
    forced = [e for e in shown["timeline"] if e["type"] == "activity" and e["kind"] == "outbound"]
    assert len(forced) == 1
    assert "Do Not Contact" in forced[0]["summary"]
    assert "they asked for the invoice" in forced[0]["summary"]
    assert mail.json("outbox", "show", str(row["id"]), "--json")["reason"] == (
        "they asked for the invoice"
    )
    assert shown["status"] == "Do Not Contact"


def test_a_bouncing_address_needs_force(mail: Leadmail, tmp_path: Path) -> None:
    lead_id = jane_lead(mail, tmp_path)
    engine = create_engine(mail.db_url)
    try:
        with engine.begin() as conn:
            conn.execute(update(table_of(Lead)).values(email_bouncing=True))
    finally:
        engine.dispose()
    base = ("send", "--lead", str(lead_id), "--subject", "s", "--body", "x")
    _assert_refused(mail, mail.run(*base), "marked bouncing", JANE)
    send(mail, *base[1:], "--force")
    assert len(outbox(mail)) == 1


def test_templates_render_lead_fields_and_refuse_a_missing_variable(
    mail: Leadmail, tmp_path: Path
) -> None:
    lead_id = jane_lead(mail, tmp_path)
    mail.ok("leads", "set", str(lead_id), "--company", "Acme Industrial", "--by", "x")
    templates = tmp_path / "templates"
    (templates / "quote.txt").write_text(
        "Dear {{ name }},\n\nour quote for {{ company }}: {{ amount }} EUR.\n"
        "{{ executive.name }}\n",
        encoding="utf-8",
    )
    (templates / "phone.txt").write_text("We will call {{ phone }}.\n", encoding="utf-8")
    (templates / "escape.txt").write_text("{{ ''.__class__.__mro__ }}\n", encoding="utf-8")
    base = ("--lead", str(lead_id), "--subject", "Quote")
    queued = send(mail, *base, "--template", "quote.txt", "--var", "amount=1,250.00")
    body = mail.json("outbox", "show", str(queued["outbox_id"]), "--json")["body"]
    assert body.replace("\r\n", "\n") == (
        "Dear Jane Buyer,\n\nour quote for Acme Industrial: 1,250.00 EUR.\nAlice Chan\n"
    )
    before = outbox(mail)
    for args, needle in (
        (("--template", "quote.txt"), "'amount' is undefined"),
        (("--template", "phone.txt"), "'phone' is undefined"),
        (("--template", "missing.txt"), "no template 'missing.txt'"),
        (("--template", "../leadmail.toml"), "no template"),
        (("--template", "escape.txt"), "template escape.txt"),
        (("--template", "quote.txt", "--var", "novalue"), "--var 'novalue'"),
    ):
        result = mail.run("send", *base, *args)
        assert_user_error(result, needle)
        assert result.exit_code == 1
        assert outbox(mail) == before


def test_body_from_a_file_stdin_and_the_editor(
    mail: Leadmail, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead_id = jane_lead(mail, tmp_path)
    (body_file,) = write_files(tmp_path / "b", {"body.txt": b"From a file.\n"})
    base = ("--config", str(mail.config), "send", "--lead", str(lead_id), "--subject", "s")
    runner = CliRunner()
    from_file = runner.invoke(cli, [*base, "--body-file", str(body_file), "--json"])
    piped = runner.invoke(cli, [*base, "--json"], input="Piped in.\n")
    empty = runner.invoke(cli, [*base], input="")
    assert from_file.exit_code == 0 and piped.exit_code == 0, piped.output
    assert empty.exit_code == 1 and "no body" in empty.stderr
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nprintf 'From the editor.\\n# a comment\\n' > \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr("worker.cli.send.stdin_is_terminal", lambda: True)
    edited = runner.invoke(cli, [*base, "--json"], env={"EDITOR": str(editor), "VISUAL": ""})
    assert edited.exit_code == 0, edited.output
    bodies = []
    for result in (from_file, piped, edited):
        shown = mail.json("outbox", "show", str(json.loads(result.stdout)["outbox_id"]), "--json")
        bodies.append(shown["body"].replace("\r\n", "\n"))
    assert bodies == ["From a file.\n", "Piped in.\n", "From the editor.\n"]
    quitter = tmp_path / "quit.sh"
    quitter.write_text("#!/bin/sh\nexit 0\n")
    quitter.chmod(quitter.stat().st_mode | stat.S_IXUSR)
    unsaved = runner.invoke(cli, list(base), env={"EDITOR": str(quitter), "VISUAL": ""})
    assert unsaved.exit_code == 1 and "without saving" in unsaved.stderr
    assert len(outbox(mail)) == 3


def test_outbox_cancel_and_retry(mail: Leadmail, tmp_path: Path, db_url: str) -> None:
    lead_id = jane_lead(mail, tmp_path)
    first = send(mail, "--lead", str(lead_id), "--subject", "one", "--body", "1")
    second = send(mail, "--lead", str(lead_id), "--subject", "two", "--body", "2")
    out = mail.ok("outbox", "cancel", str(first["outbox_id"]), "--by", "alice").stdout
    assert out.strip() == f"outbox {first['outbox_id']}: cancelled <{first['message_id']}>"
    again = mail.run("outbox", "cancel", str(first["outbox_id"]))
    assert_user_error(again, "is cancelled: only a pending or claimed mail can be cancelled")
    assert again.exit_code == 1
    assert_user_error(mail.run("outbox", "retry", str(second["outbox_id"])), "is pending")
    assert_user_error(mail.run("outbox", "show", "999"), "no outbox mail 999")
    # The delivery gave up on the second one; a person sends it again.
    from worker.config import load_settings
    from worker.services import outbound
    from worker.services.context import App
    from worker.store import outbox as store

    app = App.from_settings(load_settings(mail.config, environ={}))
    try:
        from datetime import timedelta

        from worker.store.models import utcnow

        assert store.claim_due(app.db.engine, utcnow() + timedelta(seconds=1), 600, 10) == [
            second["outbox_id"]
        ]
        with app.db.begin() as conn:
            assert store.take(conn, second["outbox_id"], utcnow()) is not None
        assert outbound.failed(
            app,
            second["outbox_id"],
            "550 5.1.1 <jane@acme-industrial.example>: no such user",
            {JANE: {"state": "refused_perm", "code": 550, "reply": "no such user"}},
            {"code": 550, "reply": "5.1.1 no such user", "outcome": "failed"},
        )
    finally:
        app.close()
    assert_user_error(mail.run("outbox", "cancel", str(second["outbox_id"])), "is failed")
    shown = mail.ok("outbox", "show", str(second["outbox_id"])).stdout
    assert "550 5.1.1 no such user" in shown and "Attempt 1:" in shown
    assert f"Message-ID: <{second['message_id']}>" in shown
    retried = mail.json("outbox", "retry", str(second["outbox_id"]), "--json", "--by", "bob")
    assert (retried["status"], retried["attempts"]) == ("pending", 1)
    rows = {r["id"]: r["status"] for r in outbox(mail)}
    assert rows == {first["outbox_id"]: "cancelled", second["outbox_id"]: "pending"}
    assert [r["id"] for r in outbox(mail, "--status", "cancelled")] == [first["outbox_id"]]
    csv = mail.ok("outbox", "list", "--format", "csv").stdout.splitlines()
    assert csv[0].startswith("id,status,lead_id,executive,recipients,subject")
    assert len(csv) == 3
    table = mail.ok("outbox", "list").stdout
    assert "2 outbound mails" in table
    timeline = mail.json("leads", "show", str(lead_id), "--format", "json")["timeline"]
    logged = [e["summary"] for e in timeline if e["type"] == "activity"]
    assert any("cancelled" in s for s in logged) and any("retried" in s for s in logged)


def test_the_smtp_password_is_never_printed(mail: Leadmail, tmp_path: Path) -> None:
    lead_id = jane_lead(mail, tmp_path)
    env = {"LEADMAIL_TEST_SMTP_PASSWORD": PASSWORD}
    outputs = [
        mail.run("send", "--lead", str(lead_id), "--subject", "s", "--body", "x", "--json",
                 env=env),
        mail.run("send", "--lead", str(lead_id), "--subject", "s\nBcc: x@y", "--body", "x",
                 env=env),
        mail.run("outbox", "list", "--format", "json", env=env),
        mail.run("outbox", "show", "1", env=env),
        mail.run("outbox", "show", "1", "--json", env=env),
    ]  # fmt: skip
    for result in outputs:
        assert PASSWORD not in result.stdout and PASSWORD not in result.stderr
    assert PASSWORD not in mail.config.read_text()
