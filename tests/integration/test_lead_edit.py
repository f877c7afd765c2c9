"""`leadmail leads add` and `leads set` as a user runs them, on SQLite and PostgreSQL.

Leads made and edited by hand: validated as ERPNext's Lead form, routed by the rules like a
lead from mail, every change in the timeline with who made it; custom fields declared in the
config, checked on the way in and by the rule loader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import make_mail
from tests.integration.test_cli import Leadmail, assert_user_error, write_files

CUSTOM_FIELDS = """
[[leads.custom_fields]]
name = "budget"
type = "decimal"
label = "Budget (EUR)"
[[leads.custom_fields]]
name = "employees"
type = "int"
[[leads.custom_fields]]
name = "tier"
type = "choice"
choices = ["Gold", "Silver", "Bronze"]
[[leads.custom_fields]]
name = "first_contact"
type = "date"
label = "First contact"
[[leads.custom_fields]]
name = "partner"
type = "bool"
[[leads.custom_fields]]
name = "region"
type = "text"
"""
REQUIRED_TIER = CUSTOM_FIELDS.replace('name = "tier"\n', 'name = "tier"\nrequired = true\n')
RULES = """\
executives:
  - {id: alice, name: Alice Chan, email: alice@northwind.example}
  - {id: bob, name: Bob Stone, email: bob@northwind.example}
rules:
  - name: big-budgets
    when: {field: custom.budget, gte: 10000}
    assign: {strategy: round_robin, to: [alice]}
  - name: organisations
    when: {field: is_organization, equals: true}
    assign: {strategy: round_robin, to: [bob]}
"""


class Edits(Leadmail):
    """A Leadmail whose config declares custom fields (and, when given, genders)."""

    def __init__(self, tmp_path: Path, db_url: str, custom: str = CUSTOM_FIELDS) -> None:
        self.custom = custom
        self.genders: list[str] | None = None
        super().__init__(tmp_path, db_url)

    def write_config(self, max_message_bytes: int | None = None) -> None:
        super().write_config(max_message_bytes)
        text = self.config.read_text(encoding="utf-8")
        if self.genders is not None:
            text = text.replace("[leads]\n", f"[leads]\ngenders = {json.dumps(self.genders)}\n")
        self.config.write_text(text + self.custom, encoding="utf-8")

    def add(self, *args: str) -> dict[str, Any]:
        lead = self.json("leads", "add", "--json", *args)
        assert isinstance(lead, dict)
        return lead

    def show(self, lead_id: int) -> dict[str, Any]:
        lead = self.json("leads", "show", str(lead_id), "--format", "json")
        assert isinstance(lead, dict)
        return lead

    def lead_count(self) -> int:
        return len(self.json("leads", "list", "--format", "json"))


@pytest.fixture
def lm(db_url: str, tmp_path: Path) -> Edits:
    return Edits(tmp_path, db_url)


def _entries(lead: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in lead["timeline"] if e["type"] == kind]


# -- leads add ---------------------------------------------------------------------------------


def test_add_prints_the_new_lead_with_every_field(lm: Edits) -> None:
    lead = lm.add(
        "--email", "Jane.Doe@Acme-Industrial.example",
        "--name", "Jane Doe",
        "--organization", "--company", "Acme Industrial",
        "--gender", "female",
        "--phone", "+44 20 7946 0958",
        "--mobile", "+44 7700 900123",
        "--website", "https://acme-industrial.example",
        "--type", "Client",
        "--segment", "Manufacturing",
        "--industry", "Furniture",
        "--territory", "United Kingdom",
        "--notes", "Met at the Leeds fair.\nWants a call in March.",
        "--field", "budget=25000.50",
        "--field", "employees=120",
        "--field", "tier=gold",
        "--field", "first_contact=2026-11-02",
        "--field", "partner=yes",
        "--by", "alice",
    )  # fmt: skip
    assert isinstance(lead["id"], int)
    expected = {
        "email": "Jane.Doe@Acme-Industrial.example",
        "name": "Jane Doe",
        "is_organization": True,
        "company": "Acme Industrial",
        "gender": "Female",
        "phone": "+44 20 7946 0958",
        "mobile": "+44 7700 900123",
        "website": "https://acme-industrial.example",
        "source": "Manual",
        "lead_type": "Client",
        "market_segment": "Manufacturing",
        "industry": "Furniture",
        "territory": "United Kingdom",
        "notes": "Met at the Leeds fair.\nWants a call in March.",
        "status": "Lead",
        "assigned_to": None,
        "organization_domain": "acme-industrial.example",
    }
    assert {k: lead[k] for k in expected} == expected
    # Typed: int and bool as such, decimal as exact text, date ISO, choice as declared.
    assert lead["custom_fields"] == {
        "budget": "25000.50",
        "employees": 120,
        "tier": "Gold",
        "first_contact": "2026-11-02",
        "partner": True,
    }
    shown = lm.show(lead["id"])
    assert [(s["from_status"], s["to_status"], s["cause"]) for s in _entries(shown, "status")] == [
        (None, "Lead", "created by hand by alice")
    ]
    listed = lm.json("leads", "list", "--format", "json")
    assert [(row["id"], row["source"]) for row in listed] == [(lead["id"], "Manual")]


def test_add_takes_a_given_source_and_the_actor_from_the_environment(lm: Edits) -> None:
    result = lm.run(
        "leads", "add", "--email", "max@globex.example", "--source", "Trade fair", "--json",
        env={"LEADMAIL_USER": "carol"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    lead = json.loads(result.stdout)
    assert lead["source"] == "Trade fair"
    causes = [s["cause"] for s in _entries(lm.show(lead["id"]), "status")]
    assert causes == ["created by hand by carol"]


def test_add_without_json_prints_one_line(lm: Edits) -> None:
    out = lm.ok("leads", "add", "--email", "max@globex.example", "--by", "alice").stdout
    assert out == "lead 1 created: max@globex.example (Lead, unassigned)\n"


def test_the_rules_route_a_lead_made_by_hand(lm: Edits) -> None:
    lm.rules_file.write_text(RULES)
    big = lm.add("--email", "cfo@initech.example", "--field", "budget=50000", "--by", "alice")
    org = lm.add("--email", "info@globex.example", "--organization", "--company", "Globex")
    small = lm.add("--email", "sam@hooli.example", "--field", "budget=500")
    assert (big["assigned_to"], org["assigned_to"], small["assigned_to"]) == ("alice", "bob", None)
    assignment = _entries(lm.show(big["id"]), "assignment")
    assert [a["summary"] for a in assignment] == ["assigned to alice by rule big-budgets"]
    explained = lm.json("rules", "explain", str(small["id"]), "--format", "json")
    assert explained["executive"] is None and "no rule assigned" in explained["reason"]


def test_an_address_that_has_a_lead_is_refused_naming_it(lm: Edits, tmp_path: Path) -> None:
    # A lead made from mail first: the same address typed in again (in another case).
    inbox = write_files(tmp_path / "inbox", {"enquiry.eml": make_mail()})[0].parent
    lm.ok("ingest", str(inbox))
    result = lm.run("leads", "add", "--email", "JANE@acme-industrial.example")
    assert result.exit_code == 1
    assert_user_error(
        result,
        "JANE@acme-industrial.example already has lead 1; --allow-duplicate to add another",
    )
    assert lm.lead_count() == 1
    second = lm.add("--email", "JANE@acme-industrial.example", "--allow-duplicate")
    assert second["id"] == 2 and second["related_lead_id"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "an email address is required (--email)"),
        (("--email", "jane"), "'jane' is not an address: it needs exactly one @"),
        (("--email", "jane@@acme.example"), "it needs exactly one @"),
        (("--email", "jane@acme"), "the domain needs a dot"),
        (("--email", "jane doe@acme.example"), "it contains spaces"),
        (("--email", "jane@acme.example\r\nBcc: x@y.example"), "it contains spaces"),
        (("--email", "Jane <jane@acme.example>"), "is not an address"),
        (("--email", "mailto:jane@acme.example"), "bad part before @"),
        (("--email", "jane@acme..example"), "is not an address"),
        (("--email", "j@x.example", "--organization"), "an organisation needs its company name"),
        (("--email", "j@x.example", "--gender", "robot"), "unknown gender 'robot'; one of: Male"),
        (("--email", "j@x.example", "--phone", "call me"), "phone 'call me' is not a phone"),
        (("--email", "j@x.example", "--name", "a\x1b[2Jb"), "name: control characters"),
        (("--email", "j@x.example", "--name", "x" * 256), "name is longer than 255 characters"),
        (("--email", "j@x.example", "--field", "budgt=5"), "unknown custom field 'budgt'"),
        (("--email", "j@x.example", "--field", "budget"), "--field takes NAME=VALUE"),
        (("--email", "j@x.example", "--field", "budget=lots"), "budget is a decimal field"),
        (("--email", "j@x.example", "--field", "employees=1.5"), "employees is an int field"),
        (("--email", "j@x.example", "--field", "tier=Platinum"), "tier is a choice field"),
        (("--email", "j@x.example", "--field", "partner=maybe"), "partner is a bool field"),
        (("--email", "j@x.example", "--field", "first_contact=2/11/2026"), "is a date field"),
        (("--email", "j@x.example", "--field", "first_contact=2026-02-30"), "is a date field"),
    ],
)
def test_add_refusals_are_one_line_and_make_nothing(
    lm: Edits, args: tuple[str, ...], message: str
) -> None:
    result = lm.run("leads", "add", *args)
    assert result.exit_code == 1
    assert_user_error(result, message)
    assert lm.lead_count() == 0


def test_a_required_custom_field_is_needed_on_add_only(db_url: str, tmp_path: Path) -> None:
    lm = Edits(tmp_path, db_url, custom=REQUIRED_TIER)
    result = lm.run("leads", "add", "--email", "j@x.example")
    assert result.exit_code == 1
    assert_user_error(result, "custom field 'tier' is required: give --field tier=VALUE")
    lead = lm.add("--email", "j@x.example", "--field", "tier=Silver")
    assert lm.json("leads", "set", str(lead["id"]), "--phone", "123", "--json")["changes"] == {
        "phone": [None, "123"]
    }
    cleared = lm.run("leads", "set", str(lead["id"]), "--field", "tier=")
    assert cleared.exit_code == 1
    assert_user_error(cleared, "custom field 'tier' is required: it cannot be cleared")


def test_genders_come_from_the_config(db_url: str, tmp_path: Path) -> None:
    lm = Edits(tmp_path, db_url)
    lm.genders = ["Woman", "Man", "Non-binary"]
    lm.write_config()
    assert lm.add("--email", "a@x.example", "--gender", "non-BINARY")["gender"] == "Non-binary"
    result = lm.run("leads", "add", "--email", "b@x.example", "--gender", "Male")
    assert result.exit_code == 1
    assert_user_error(result, "unknown gender 'Male'; one of: Woman, Man, Non-binary")


# -- leads set ---------------------------------------------------------------------------------


def test_set_changes_only_the_given_fields_and_logs_who(lm: Edits) -> None:
    lead = lm.add(
        "--email", "jane@acme.example", "--name", "Jane", "--phone", "111",
        "--industry", "Furniture", "--field", "budget=100", "--field", "region=North",
    )  # fmt: skip
    changed = lm.json(
        "leads", "set", str(lead["id"]),
        "--organization", "--company", "Acme Ltd",
        "--phone", "+44 20 7946 0958",
        "--industry", "",
        "--field", "budget=2500.5",
        "--field", "region=",
        "--status", "interested",
        "--by", "carol", "--json",
    )  # fmt: skip
    assert changed["changes"] == {
        "is_organization": [False, True],
        "company": [None, "Acme Ltd"],
        "phone": ["111", "+44 20 7946 0958"],
        "industry": ["Furniture", None],
        "custom.budget": ["100", "2500.5"],
        "custom.region": ["North", None],
        "status": ["Lead", "Interested"],
    }
    shown = lm.show(lead["id"])
    assert shown["name"] == "Jane" and shown["email"] == "jane@acme.example"  # untouched
    assert shown["status"] == "Interested" and shown["industry"] is None
    assert shown["custom_fields"] == {"budget": "2500.5"}
    edits = [a for a in _entries(shown, "activity") if a["kind"] == "edit"]
    assert len(edits) == 1
    assert edits[0]["actor"] == "carol"
    assert edits[0]["details"] == {k: v for k, v in changed["changes"].items() if k != "status"}
    assert edits[0]["summary"].startswith("by carol: is_organization no → yes; company ∅ →")
    assert edits[0]["at"]
    statuses = [(s["from_status"], s["to_status"], s["cause"]) for s in _entries(shown, "status")]
    assert statuses[-1] == ("Lead", "Interested", "set by hand by carol")


def test_set_without_a_change_logs_nothing(lm: Edits) -> None:
    lead = lm.add("--email", "jane@acme.example", "--phone", "111", "--by", "alice")
    before = lm.show(lead["id"])["timeline"]
    out = lm.ok("leads", "set", str(lead["id"]), "--phone", " 111 ", "--status", "Lead").stdout
    assert out == f"lead {lead['id']}: nothing changed (it has these values already)\n"
    assert lm.show(lead["id"])["timeline"] == before
    one_line = lm.ok("leads", "set", str(lead["id"]), "--phone", "222", "--by", "bob").stdout
    assert one_line == f"lead {lead['id']}: changed phone\n"


def test_set_works_on_a_lead_made_from_mail(lm: Edits, tmp_path: Path) -> None:
    inbox = write_files(tmp_path / "inbox", {"enquiry.eml": make_mail()})[0].parent
    lm.ok("ingest", str(inbox))
    changed = lm.json("leads", "set", "1", "--status", "Do Not Contact", "--by", "bob", "--json")
    assert changed["status"] == "Do Not Contact"
    assert changed["changes"] == {"status": ["Lead", "Do Not Contact"]}


def test_a_new_email_moves_the_lead_s_address(lm: Edits, tmp_path: Path) -> None:
    """Mail from the new address threads onto the lead: its key follows the email."""
    lead = lm.add("--email", "old@initech.example")
    lm.ok("leads", "set", str(lead["id"]), "--email", "Bill@Initrode.example", "--by", "alice")
    shown = lm.show(lead["id"])
    assert shown["email"] == "Bill@Initrode.example"
    assert shown["organization_domain"] == "initrode.example"
    mail = make_mail(sender="Bill <bill@initrode.example>", message_id="<b1@initrode.example>")
    inbox = write_files(tmp_path / "inbox", {"bill.eml": mail})[0].parent
    [row] = lm.jsonl("ingest", "--json", str(inbox))
    assert (row["outcome"], row["lead_id"]) == ("threaded", lead["id"])


def test_a_new_email_another_lead_has_is_refused(lm: Edits) -> None:
    lm.add("--email", "jane@acme.example")
    other = lm.add("--email", "max@globex.example")
    result = lm.run("leads", "set", str(other["id"]), "--email", "Jane@ACME.example")
    assert result.exit_code == 1
    assert_user_error(result, "Jane@ACME.example already has lead 1; --allow-duplicate")
    assert lm.show(other["id"])["email"] == "max@globex.example"
    lm.ok("leads", "set", str(other["id"]), "--email", "Jane@ACME.example", "--allow-duplicate")
    assert lm.show(other["id"])["email"] == "Jane@ACME.example"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("Converted", "Converted is not set by hand; it comes from a customer or an ordered "
         "quotation: leadmail leads make customer 1"),
        ("opportunity", "Opportunity is not set by hand; it comes from an open opportunity: "
         "leadmail leads make opportunity 1"),
        ("Quotation", "leadmail leads make quotation 1"),
        ("lost quotation", "Lost Quotation is not set by hand"),
        ("Closed", "unknown status 'Closed'; one of: Lead, Open, Replied, Interested, "
         "Do Not Contact"),
    ],
)  # fmt: skip
def test_derived_statuses_are_refused_saying_how_to_get_them(
    lm: Edits, status: str, message: str
) -> None:
    lm.add("--email", "jane@acme.example")
    result = lm.run("leads", "set", "1", "--status", status)
    assert result.exit_code == 1
    assert_user_error(result, message)
    assert lm.show(1)["status"] == "Lead"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--organization",), "an organisation needs its company name"),
        (("--email", "not-an-address"), "is not an address"),
        (("--gender", "robot"), "unknown gender"),
        (("--field", "tier=Platinum"), "tier is a choice field"),
        (("--field", "nope=1"), "unknown custom field 'nope'"),
        ((), "nothing to change"),
    ],
)
def test_set_refusals_are_one_line_and_change_nothing(
    lm: Edits, args: tuple[str, ...], message: str
) -> None:
    lm.add("--email", "jane@acme.example", "--phone", "111")
    before = lm.show(1)
    result = lm.run("leads", "set", "1", "--phone", "222", *args) if args else None
    if result is None:
        result = lm.run("leads", "set", "1")
    assert result.exit_code == 1
    assert_user_error(result, message)
    assert lm.show(1) == before


def test_an_organisation_cannot_lose_its_company(lm: Edits) -> None:
    lm.add("--email", "info@globex.example", "--organization", "--company", "Globex")
    result = lm.run("leads", "set", "1", "--company", "")
    assert result.exit_code == 1
    assert_user_error(result, "an organisation needs its company name")
    changed = lm.json("leads", "set", "1", "--no-organization", "--company", "", "--json")
    assert changed["changes"] == {"is_organization": [True, False], "company": ["Globex", None]}


def test_set_an_unknown_lead(lm: Edits) -> None:
    result = lm.run("leads", "set", "7", "--phone", "1")
    assert_user_error(result, "no lead 7")


# -- custom fields shown and used by rules -------------------------------------------------


def test_show_prints_every_field_and_custom_fields_under_their_labels(lm: Edits) -> None:
    lm.add(
        "--email", "j@x.example", "--gender", "Other", "--mobile", "+44 7700 900123",
        "--website", "https://x.example", "--territory", "Yorkshire",
        "--field", "budget=1250", "--field", "first_contact=2026-01-05",
    )  # fmt: skip
    out = lm.ok("leads", "show", "1").stdout
    for shown in ("Other", "+44 7700 900123", "https://x.example", "Yorkshire"):
        assert shown in out
    assert "Budget (EUR)" in out and "1250" in out
    assert "First contact" in out and "2026-01-05" in out
    assert "custom_fields" not in out


def test_rules_naming_an_undeclared_custom_field_are_refused(lm: Edits) -> None:
    lm.rules_file.write_text(
        RULES.replace("custom.budget, gte: 10000", "custom.budgte, gte: 10000")
        + "  - name: regions\n"
        + "    when: {field: custom.region, gt: 5}\n"
        + "    assign: {strategy: round_robin, to: [bob]}\n"
    )
    result = lm.run("rules", "check")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    path = str(lm.rules_file)
    assert lines == [
        f"{path}:6:19: unknown custom field 'budgte' (did you mean 'budget'?); declared: "
        "budget, employees, first_contact, partner, region, tier",
        f"{path}:12:38: gt compares numbers; custom.region is a text field",
    ]
    refused = lm.run("leads", "add", "--email", "j@x.example")
    assert refused.exit_code == 2 and "unknown custom field 'budgte'" in refused.stderr
    assert lm.lead_count() == 0


def test_without_declarations_rules_may_name_any_custom_field(db_url: str, tmp_path: Path) -> None:
    lm = Edits(tmp_path, db_url, custom="")
    lm.rules_file.write_text(RULES.replace("custom.budget", "custom.anything"))
    assert lm.run("rules", "check").exit_code == 0
    result = lm.run("leads", "add", "--email", "j@x.example", "--field", "anything=1")
    assert_user_error(result, "unknown custom field 'anything'; none are declared")


def test_a_bad_declaration_is_refused_at_start(db_url: str, tmp_path: Path) -> None:
    lm = Edits(tmp_path, db_url, custom='[[leads.custom_fields]]\nname = "tier"\ntype = "choice"\n')
    result = lm.run("leads", "list")
    assert result.exit_code == 2
    assert_user_error(result, "leads.custom_fields[0]", "choice field 'tier' needs choices")
