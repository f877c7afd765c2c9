"""``leads set --next-contact-date`` and ``leadmail reminders`` through the CLI, on each backend.

Setting, moving and clearing the reminder, the refusals (one line, exit 1), the lead's
columns and timeline, and the statuses that cancel reminders. Sending is tested in
test_reminder_delivery.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cli import ENQUIRY, REPLY, Leadmail, assert_user_error, write_files

RULES = """
timezone: UTC
executives:
  - id: alice
    name: Alice Chan
    email: alice@northwind.example
    timezone: Europe/Berlin
  - id: bob
    name: Bob Okafor
    email: bob@northwind.example
  - id: gone
    name: Gone Away
    email: gone@northwind.example
    active: false
rules:
  - name: everyone
    assign: {strategy: round_robin, to: [alice]}
"""
BANGKOK = {"LEADMAIL_LEADS__TIMEZONE": "Asia/Bangkok"}


@pytest.fixture
def team(leadmail: Leadmail) -> Leadmail:
    leadmail.rules_file.write_text(RULES, encoding="utf-8")
    return leadmail


def _lead(team: Leadmail, email: str = "jane@acme.example") -> int:
    lead = team.json("leads", "add", "--email", email, "--name", "Jane Roe", "--json")
    return int(lead["id"])


def _set(team: Leadmail, lead: int, *args: str) -> dict[str, Any]:
    result = team.run("leads", "set", str(lead), *args, "--by", "bob", "--json", env=BANGKOK)
    assert result.exit_code == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def _reminders(team: Leadmail, *args: str) -> list[dict[str, Any]]:
    rows = team.json("reminders", "list", "--format", "json", *args)
    assert isinstance(rows, list)
    return rows


def test_set_move_and_clear_the_next_contact(team: Leadmail) -> None:
    lead = _lead(team)
    out = _set(team, lead, "--next-contact-date", "2099-12-01 10:00", "--note", "call her")
    # 10:00 in Asia/Bangkok ([leads] timezone) is 03:00 UTC; the lead's owner by default.
    assert out["next_contact_date"].startswith("2099-12-01T03:00")
    assert out["next_contact_by"] == "alice"
    assert set(out["changes"]) >= {"next_contact_date", "next_contact_by"}
    (reminder,) = out["reminders"]
    assert (reminder["kind"], reminder["executive"], reminder["note"]) == (
        "manual",
        "alice",
        "call her",
    )
    # Moved: the same reminder, another time and executive; the note stays.
    moved = _set(
        team, lead, "--next-contact-date", "2099-12-02T09:00+00:00", "--next-contact-by", "bob"
    )
    (again,) = moved["reminders"]
    assert again["id"] == reminder["id"]
    assert (again["due_at"], again["executive"], again["note"]) == (
        "2099-12-02T09:00:00+00:00",
        "bob",
        "call her",
    )
    rows = _reminders(team)
    assert [r["id"] for r in rows] == [reminder["id"]]
    assert _reminders(team, "--executive", "alice") == []
    assert _reminders(team, "--due") == []
    # `leads show` lists it, and its timeline has the changes.
    shown = team.run("leads", "show", str(lead), env=BANGKOK).stdout
    assert f"{reminder['id']}: manual for bob at 2099-12-02 16:00 +07 (pending): call her" in shown
    detail = team.json("leads", "show", str(lead), "--format", "json")
    summaries = [e.get("summary", "") for e in detail["timeline"] if e["type"] == "activity"]
    assert sum("reminder" in s for s in summaries) == 2
    # Cleared: the reminder is cancelled, the columns empty.
    cleared = _set(team, lead, "--clear-next-contact")
    assert cleared["next_contact_date"] is None and cleared["reminders"] == []
    assert _reminders(team) == []
    (row,) = _reminders(team, "--status", "cancelled")
    assert row["id"] == reminder["id"]
    shown_one = team.json("reminders", "show", str(row["id"]), "--json")
    assert shown_one["status"] == "cancelled" and shown_one["log"]


def test_relative_times_and_csv_table_output(team: Leadmail) -> None:
    lead = _lead(team)
    before = datetime.now(UTC)
    out = _set(team, lead, "--next-contact-date", "+3d")
    due = datetime.fromisoformat(out["next_contact_date"])
    assert timedelta(days=3) - timedelta(seconds=5) < due - before < timedelta(days=3, hours=1)
    csv = team.ok("reminders", "list", "--format", "csv").stdout.splitlines()
    assert csv[0].startswith("id,lead_id,kind,executive,due_at,status")
    assert len(csv) == 2
    table = team.ok("reminders", "list").stdout
    assert "1 reminders" in table and "alice" in table


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--next-contact-date", "2001-01-01 10:00"], "in the past"),
        (["--next-contact-date", "soonish"], "cannot read 'soonish'"),
        (["--next-contact-date", "+1d", "--next-contact-by", "nobody"], "unknown executive"),
        (["--next-contact-date", "+1d", "--next-contact-by", "gone"], "inactive"),
        (["--note", "hello"], "no next contact to change"),
        (["--clear-next-contact", "--next-contact-date", "+1d"], "cannot go with"),
        (
            ["--status", "Do Not Contact", "--next-contact-date", "+1d"],
            "Do Not Contact: it gets no reminders",
        ),
    ],
)
def test_refusals_are_one_line_and_change_nothing(
    team: Leadmail, args: list[str], expected: str
) -> None:
    lead = _lead(team)
    result = team.run("leads", "set", str(lead), *args, "--by", "bob", env=BANGKOK)
    assert result.exit_code == 1
    assert_user_error(result, expected)
    assert _reminders(team, "--status", "all") == []
    assert team.json("leads", "show", str(lead), "--format", "json")["status"] == "Lead"


def test_do_not_contact_and_converted_cancel_and_refuse(team: Leadmail) -> None:
    lead = _lead(team)
    _set(team, lead, "--next-contact-date", "+1d")
    _set(team, lead, "--status", "Do Not Contact")
    assert _reminders(team) == []
    assert [r["status"] for r in _reminders(team, "--status", "all")] == ["cancelled"]
    result = team.run("leads", "set", str(lead), "--next-contact-date", "+2d", env=BANGKOK)
    assert_user_error(result, "is Do Not Contact")
    # A customer made from the lead converts it: its reminder goes.
    other = _lead(team, "joe@acme.example")
    _set(team, other, "--next-contact-date", "+1d")
    team.ok("leads", "make", "customer", str(other), "--by", "bob")
    assert team.json("leads", "show", str(other), "--format", "json")["status"] == "Converted"
    assert _reminders(team) == []
    result = team.run("leads", "set", str(other), "--next-contact-date", "+2d", env=BANGKOK)
    assert_user_error(result, "is Converted")


def test_reminders_cancel_and_merge(team: Leadmail) -> None:
    a = _lead(team)
    b = _lead(team, "joe@acme.example")
    _set(team, a, "--next-contact-date", "+1d")
    _set(team, b, "--next-contact-date", "+2d")
    (ra,) = _reminders(team, "--lead", str(a))
    (rb,) = _reminders(team, "--lead", str(b))
    # B merged into A: A keeps its own reminder, B's is cancelled.
    team.ok("leads", "merge", str(a), str(b), "--by", "bob")
    live = _reminders(team)
    assert [r["id"] for r in live] == [ra["id"]]
    out = team.ok("reminders", "cancel", str(ra["id"]), "--by", "bob").stdout
    assert "cancelled" in out
    assert team.json("leads", "show", str(a), "--format", "json")["next_contact_date"] is None
    assert_user_error(team.run("reminders", "cancel", str(ra["id"])), "nothing to cancel")
    assert_user_error(team.run("reminders", "show", "999"), "no reminder 999")
    assert rb["id"] != ra["id"]


@pytest.mark.parametrize("cancel_on_reply", [False, True])
def test_a_reply_from_the_lead_cancels_only_with_cancel_on_reply(
    team: Leadmail, tmp_path: Path, cancel_on_reply: bool
) -> None:
    env = {**BANGKOK, "LEADMAIL_FOLLOWUPS__CANCEL_ON_REPLY": str(cancel_on_reply).lower()}
    (enquiry,) = write_files(tmp_path / "a", {"enquiry.eml": ENQUIRY})
    assert team.run("ingest", str(enquiry), env=env).exit_code == 0
    (lead,) = team.json("leads", "list", "--format", "json")
    result = team.run(
        "leads", "set", str(lead["id"]), "--next-contact-date", "+2d", "--by", "bob", env=env
    )
    assert result.exit_code == 0, result.stderr
    (reply,) = write_files(tmp_path / "b", {"reply.eml": REPLY})
    assert team.run("ingest", str(reply), env=env).exit_code == 0
    detail = team.json("leads", "show", str(lead["id"]), "--format", "json")
    assert detail["status"] == "Open"  # the reply threaded onto the lead
    left = _reminders(team)
    if cancel_on_reply:
        assert left == []
        (row,) = _reminders(team, "--status", "cancelled")
        shown = team.json("reminders", "show", str(row["id"]), "--json")
        assert "reply from jane@acme-industrial.example" in json.dumps(shown["log"])
    else:
        assert [r["kind"] for r in left] == ["manual"]
