"""`leadmail rules check|explain|test` and `leadmail leads assign`, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import make_mail
from tests.integration.test_cli import Leadmail, assert_user_error

RULES = """\
executives:
  - {id: alice, name: Alice Chan, email: alice@northwind.example}
  - {id: bob, name: Bob Stone, email: bob@northwind.example}
rules:
  - name: companies
    when: {all: [{field: company, exists: true}]}
    assign: {strategy: load_balancing, to: [alice, bob]}
  - name: everyone-else
    assign: {strategy: round_robin, to: [alice, bob]}
"""
BROKEN = """\
executives:
  - {id: alice, name: Alice Chan, email: alice@northwind.example}
rules:
  - name: one
    when: {all: [{field: compnay, exists: true}]}
    assign: {strategy: round_robin, to: [alice, zoe]}
  - name: two
    colour: blue
    assign: {strategy: round_robin, to: [alice]}
"""


@pytest.fixture
def lm(tmp_path: Path) -> Leadmail:
    tool = Leadmail(tmp_path, f"sqlite:///{tmp_path}/leadmail.db")
    tool.rules_file.write_text(RULES)
    return tool


def test_rules_check_valid_and_broken(lm: Leadmail, tmp_path: Path) -> None:
    ok = lm.ok("rules", "check")
    assert ok.stdout.strip() == f"{lm.rules_file}: OK: 2 executives (2 active), 2 rules"
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    result = lm.run("rules", "check", str(broken))
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{broken}:5:")
    assert "compnay" in lines[0]
    assert lines[1].startswith(f"{broken}:6:") and "zoe" in lines[1]
    assert lines[2].startswith(f"{broken}:8:") and "colour" in lines[2]


def test_ingest_assigns_and_explain_tells_why(lm: Leadmail, tmp_path: Path) -> None:
    mail = tmp_path / "in"
    mail.mkdir()
    (mail / "1.eml").write_bytes(make_mail())  # acme-industrial.example: a company
    (mail / "2.eml").write_bytes(
        make_mail(sender="Jo <jo@gmail.com>", message_id="<jo-1@gmail.com>", subject="Hi")
    )
    lm.ok("ingest", str(mail))
    leads = {row["email"]: row for row in lm.json("leads", "list", "--format", "json")}
    company = leads["jane@acme-industrial.example"]
    assert company["assigned_to"] == "alice"
    why = lm.json("rules", "explain", str(company["id"]), "--format", "json")
    assert set(why) >= {"lead_id", "executive", "rule", "trace"}
    assert (why["lead_id"], why["executive"], why["rule"]) == (company["id"], "alice", "companies")
    assert why["trace"][0]["rule"] == "companies" and why["trace"][0]["matched"] is True
    private = leads["jo@gmail.com"]
    why = lm.json("rules", "explain", str(private["id"]), "--format", "json")
    assert [t["matched"] for t in why["trace"]] == [False, True]
    assert why["rule"] == "everyone-else"
    shown = lm.json("leads", "show", str(private["id"]), "--format", "json")
    assert any(e["type"] == "assignment" for e in shown["timeline"])
    table = lm.ok("rules", "explain", str(private["id"])).stdout
    assert "everyone-else" in table and "companies" in table


def test_rules_test_is_a_dry_run(lm: Leadmail, tmp_path: Path) -> None:
    eml = tmp_path / "probe.eml"
    eml.write_bytes(make_mail())
    found = lm.json("rules", "test", str(eml), "--format", "json")
    assert found["outcome"] == "created" and found["executive"] == "alice"
    assert found["rule"] == "companies" and found["trace"][0]["matched"] is True
    assert lm.json("leads", "list", "--format", "json") == []
    other = tmp_path / "other.yaml"
    other.write_text(
        RULES.replace("to: [alice, bob]}\n  - name: everyone", "to: [bob]}\n  - name: everyone")
    )
    found = lm.json("rules", "test", str(eml), "--rules", str(other), "--format", "json")
    assert found["executive"] == "bob"


def test_leads_assign_by_hand(lm: Leadmail, tmp_path: Path) -> None:
    eml = tmp_path / "1.eml"
    eml.write_bytes(make_mail())
    lm.ok("ingest", str(eml))
    result = lm.ok("leads", "assign", "1", "bob", "--by", "manager")
    assert result.stdout.strip() == "lead 1: assigned to bob (was alice)"
    why = lm.json("rules", "explain", "1", "--format", "json")
    assert why["executive"] == "bob" and why["cause"] == "manual"
    assert_user_error(lm.run("leads", "assign", "1", "zoe"), "no executive 'zoe'")
    assert_user_error(lm.run("leads", "assign", "99", "bob"), "no lead 99")


def test_an_invalid_rule_file_stops_ingest_with_its_errors(lm: Leadmail, tmp_path: Path) -> None:
    lm.rules_file.write_text(BROKEN)
    eml = tmp_path / "1.eml"
    eml.write_bytes(make_mail())
    result = lm.run("ingest", str(eml))
    assert result.exit_code == 2
    assert f"leadmail: error: {lm.rules_file}:5:" in result.stderr
    assert lm.json("leads", "list", "--format", "json") == []


HEAD = "executives:\n  - {id: alice}\nrules:\n  - name: one\n"
ASSIGN = "    assign: {strategy: round_robin, to: [alice]}\n"


def _laughs() -> str:
    lines = [HEAD + "    when:", "      all:", "        - &c0 {field: company, exists: true}"]
    lines += [f"        - &c{i} {{all: [*c{i - 1}, *c{i - 1}, *c{i - 1}]}}" for i in range(1, 40)]
    return "\n".join(lines) + "\n" + ASSIGN


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        (
            HEAD + "    when: {message: body, regex: '(a)\\1'}\n" + ASSIGN,
            "5:38",
            "not supported: backreference \\1 — rule patterns use RE2 syntax",
        ),
        (_laughs(), "16:22", "expands to more than 100,000 values at alias *c8"),
        (HEAD + "    when: " + "[" * 10_000 + "]" * 10_000 + "\n" + ASSIGN, "5:108", "deeper"),
        (HEAD + "    when:\n      " + "- " * 10_000 + "x\n" + ASSIGN, "6:201", "deeper"),
        ("[" * 10_000, "1:101", "nested deeper than 100 levels"),
        (HEAD + ASSIGN + "#" * (1 << 20) + "\n", "6:", "the limit"),
    ],
    ids=["backreference", "billion-laughs", "flow-depth", "block-depth", "unclosed", "size"],
)
def test_rules_check_refuses_unbounded_files_one_line_each(
    lm: Leadmail, tmp_path: Path, text: str, where: str, words: str
) -> None:
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(text)
    result = lm.run("rules", "check", str(hostile))
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{hostile}:{where}"), lines[0]
    assert words in lines[0]
    assert "Traceback" not in result.output and "RecursionError" not in result.output


def test_rules_check_lists_every_bad_pattern(lm: Leadmail, tmp_path: Path) -> None:
    hostile = tmp_path / "patterns.yaml"
    hostile.write_text(
        HEAD
        + "    when:\n      any:\n"
        + "        - {message: body, regex: 'quote(?=s)'}\n"
        + "        - {message: subject, regex: '(a+)+$'}\n"
        + "        - {header: X-Tag, regex: 'x(?<!y)z'}\n"
        + ASSIGN
    )
    result = lm.run("rules", "check", str(hostile))
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{hostile}:7:40", f"{hostile}:9:36"]
    assert "lookahead" in lines[0] and "lookbehind" in lines[1]


def test_a_catastrophic_regex_does_not_stop_ingest(lm: Leadmail, tmp_path: Path) -> None:
    """`(a+)+$` on the body of a hostile message: intake goes on and routes the lead.

    A backtracking engine never finishes on this body, so the command runs in a child
    process whose timeout turns that hang into a failure.
    """
    lm.rules_file.write_text(
        "executives:\n  - {id: alice}\n  - {id: bob}\nrules:\n"
        "  - name: hostile\n"
        "    when: {message: body, regex: '(a+)+$'}\n"
        "    assign: {strategy: round_robin, to: [alice]}\n"
        "  - name: rest\n"
        "    assign: {strategy: round_robin, to: [bob]}\n"
    )
    mail = tmp_path / "in"
    mail.mkdir()
    (mail / "1.eml").write_bytes(make_mail(body="a" * 60_000 + "!\n"))
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(lm.config), "ingest", str(mail)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    leads = lm.json("leads", "list", "--format", "json")
    assert [lead["assigned_to"] for lead in leads] == ["bob"]


def test_rules_output_cannot_drive_the_terminal(lm: Leadmail, tmp_path: Path) -> None:
    """A rule file's problems and a dry run's decision print escaped, never as markup."""
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(BROKEN.replace("colour", '"\\e]0;pwned\\a[bold]c[/bold]"'))
    result = lm.run("rules", "check", str(hostile))
    assert result.exit_code == 1
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b]0;pwned\\x07[bold]c[/bold]" in result.stdout

    lm.rules_file.write_text(RULES.replace("name: everyone-else", 'name: "e\\e[2J [red]x[/red]"'))
    eml = tmp_path / "enquiry.eml"
    eml.write_bytes(make_mail(sender="Ann <ann@gmail.com>"))
    shown = lm.ok("rules", "test", str(eml)).stdout
    assert "\x1b" not in shown
    assert "e\\x1b[2J [red]x[/red]" in shown
