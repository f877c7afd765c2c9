"""`leadmail demo tour`, which `make run` runs on the demo inbox: once, on a lead from mail."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_cli import Leadmail
from worker.demo import write_demo_inbox
from worker.services.tour import TOUR_LEAD_EMAIL, TOUR_NOTE


def test_the_tour_shows_the_lead_commands_once(leadmail: Leadmail, tmp_path: Path) -> None:
    before = leadmail.ok("demo", "tour").stdout
    assert "no lead for" in before  # nothing polled yet: it says so, and changes nothing

    write_demo_inbox(tmp_path / "demo-inbox")
    leadmail.ok("ingest", "--no-progress", str(tmp_path / "demo-inbox"))
    shown = leadmail.ok("demo", "tour").stdout.splitlines()
    assert shown[0].startswith("leadmail leads note ")
    assert shown[-1].startswith("lead ") and " is now Quotation" in shown[-1]

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

    again = leadmail.ok("demo", "tour").stdout
    assert "already shows it" in again
    detail_again = leadmail.json("leads", "show", str(lead["id"]), "--format", "json")
    assert detail_again["timeline"] == detail["timeline"]
