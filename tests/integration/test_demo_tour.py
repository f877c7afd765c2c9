"""`leadmail demo tour`, which `make run` runs on the demo inbox: once, on a lead from mail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.integration.test_cli import Leadmail
from worker.demo import write_demo_inbox
from worker.services.tour import TOUR_LEAD_EMAIL, TOUR_NOTE


def test_the_tour_shows_the_lead_commands_once(leadmail: Leadmail, tmp_path: Path) -> None:
    before = leadmail.ok("demo", "tour").stdout
    assert "no lead for" in before  # nothing polled yet: it says so, and changes nothing

    with leadmail.config.open("a", encoding="utf-8") as config:
        config.write('[smtp]\nfrom_address = "sales@northwind.example"\n')
    write_demo_inbox(tmp_path / "demo-inbox")
    leadmail.ok("ingest", "--no-progress", str(tmp_path / "demo-inbox"))
    shown = leadmail.ok("demo", "tour").stdout.splitlines()
    assert shown[0].startswith("leadmail leads note ")
    assert shown[-1].startswith("lead ") and " is now Quotation" in shown[-1]
    assert any(line.startswith("leadmail send --lead ") for line in shown)

    (lead,) = [
        r
        for r in leadmail.json("leads", "list", "--format", "json")
        if r["email"] == TOUR_LEAD_EMAIL
    ]
    detail = leadmail.json("leads", "show", str(lead["id"]), "--format", "json")
    assert detail["status"] == "Quotation"
    kinds = [e["type"] for e in detail["timeline"]]
    assert kinds.count("comment") == 1 and "activity" in kinds
    assert any(e.get("text") == TOUR_NOTE for e in detail["timeline"])
    assert {c["email"] for c in detail["contacts"]} >= {"purchasing@greenleafmarkets.example"}
    # One mail queued to the lead, threaded onto its conversation, for `leadmail run` to send.
    (queued,) = leadmail.json("outbox", "list", "--format", "json")
    assert (queued["lead_id"], queued["status"]) == (lead["id"], "pending")
    assert queued["recipients"] == [TOUR_LEAD_EMAIL]
    sent = [e for e in detail["timeline"] if e["type"] == "message" and e["direction"] == "out"]
    assert [e["outbox_status"] for e in sent] == ["pending"]

    again = leadmail.ok("demo", "tour").stdout
    assert "already shows it" in again
    detail_again = leadmail.json("leads", "show", str(lead["id"]), "--format", "json")
    assert detail_again["timeline"] == detail["timeline"]


def test_the_tour_sets_a_reminder_a_minute_ahead(leadmail: Leadmail, tmp_path: Path) -> None:
    """With the demo team's rule file the tour lead has an executive, who gets a reminder."""
    root = Path(__file__).resolve().parents[2]
    leadmail.rules_file.write_text((root / "rules" / "assignment.yaml").read_text())
    with leadmail.config.open("a", encoding="utf-8") as config:
        config.write('[smtp]\nfrom_address = "sales@northwind.example"\n')
    write_demo_inbox(tmp_path / "demo-inbox")
    leadmail.ok("ingest", "--no-progress", str(tmp_path / "demo-inbox"))
    before = datetime.now(UTC)
    shown = leadmail.ok("demo", "tour").stdout
    assert "--next-contact-date +1m" in shown and "leadmail reminders list" in shown
    (reminder,) = leadmail.json("reminders", "list", "--format", "json")
    due = datetime.fromisoformat(reminder["due_at"])
    assert timedelta(seconds=50) < due - before < timedelta(seconds=70)
    lead = leadmail.json("leads", "show", str(reminder["lead_id"]), "--format", "json")
    assert lead["email"] == TOUR_LEAD_EMAIL
    assert reminder["executive"] == lead["assigned_to"] == lead["next_contact_by"]
