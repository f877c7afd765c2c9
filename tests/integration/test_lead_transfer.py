"""`leadmail leads export` and `leads import` as a user runs them, on SQLite and PostgreSQL.

An erpnext-csv export re-imports into an empty database with the same leads; a file with one
bad row imports nothing and names every bad row by its line; Excel's CSV (BOM, CRLF) loads;
cells a spreadsheet would run as formulas are defused on the way out and restored on the way in.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_lead_edit import RULES, Edits

# Every fieldname the erpnext-csv header uses exists in ERPNext's Lead doctype (lead.json).
ERPNEXT_LEAD_FIELDNAMES = {
    "organization_lead", "naming_series", "lead_name", "company_name", "email_id", "status",
    "gender", "source", "customer", "campaign_name", "image", "lead_owner", "contact_by",
    "contact_date", "ends_on", "notes", "phone", "salutation", "mobile_no", "fax", "website",
    "territory", "type", "market_segment", "industry", "request_type", "company",
    "unsubscribed", "blog_subscriber",
}  # fmt: skip
COMPARED = ["email", "name", "company", "is_organization", "status", "source", "gender",
            "phone", "mobile", "website", "territory", "lead_type", "market_segment",
            "industry", "notes", "assigned_to", "custom_fields"]  # fmt: skip


@pytest.fixture
def lm(db_url: str, tmp_path: Path) -> Edits:
    (tmp_path / "a").mkdir()
    return Edits(tmp_path / "a", db_url)


@pytest.fixture
def empty(db_url: str, tmp_path: Path, pg_database: Any) -> Iterator[Edits]:
    """A second leadmail on an empty database of the same backend, same config."""
    (tmp_path / "b").mkdir()
    if db_url.startswith("sqlite"):
        target = Edits(tmp_path / "b", f"sqlite:///{tmp_path / 'b' / 'empty.db'}")
        target.ok("init")
        yield target
        return
    with pg_database() as url:
        target = Edits(tmp_path / "b", url)
        target.ok("init")
        yield target


def _leads(lm: Edits) -> list[dict[str, Any]]:
    rows = lm.json("leads", "list", "--format", "json")
    return [lm.show(row["id"]) for row in rows]


def _same(lead: dict[str, Any]) -> dict[str, Any]:
    return {key: lead.get(key) for key in COMPARED}


def _add_some(lm: Edits) -> None:
    lm.add("--email", "jane@acme.example", "--name", "Jane Doe", "--organization",
           "--company", "Acme, Ltd.", "--gender", "Female", "--phone", "+44 20 7946 0958",
           "--website", "https://acme.example", "--type", "Client", "--segment", "Upper Income",
           "--industry", "Manufacturing", "--territory", "UK", "--source", "Advertisement",
           "--notes", "two\nlines, \"quoted\"", "--field", "budget=12500.50",
           "--field", "employees=42", "--field", "tier=Gold",
           "--field", "first_contact=2026-11-02", "--field", "partner=yes",
           "--field", "region==SUM(A1)")  # fmt: skip
    lead = lm.add("--email", "bob@person.example", "--name", "@Bob", "--mobile", "0700 1")
    lm.ok("leads", "set", str(lead["id"]), "--status", "Do Not Contact")
    lm.add("--email", "zoe@z.example", "--field", "partner=no")
    # Statuses that records gave: an export carries them and an import keeps them.
    won = lm.add("--email", "max@won.example", "--name", "Max")
    lm.ok("leads", "make", "customer", str(won["id"]))
    quoted = lm.add("--email", "quinn@quoted.example")
    lm.ok("leads", "make", "quotation", str(quoted["id"]))


def test_erpnext_csv_round_trip_into_an_empty_database(
    lm: Edits, empty: Edits, tmp_path: Path
) -> None:
    _add_some(lm)
    before = [_same(lead) for lead in _leads(lm)]
    out = tmp_path / "leads.csv"
    lm.ok("leads", "export", "--output", str(out))
    text = out.read_text(encoding="utf-8")
    header = next(csv.reader(io.StringIO(text)))
    assert {h for h in header if not h.startswith("custom_")} <= ERPNEXT_LEAD_FIELDNAMES
    assert "custom_budget" in header and "lead_name" in header and "email_id" in header
    # Formula cells are defused for spreadsheets: '=SUM(A1) and '@Bob, not =SUM(A1) and @Bob.
    assert "'=SUM(A1)" in text and "'@Bob" in text and "'+44 20 7946 0958" in text

    target = empty
    done = target.json("leads", "import", str(out), "--json", "--by", "carol")
    assert done["imported"] == 5 and len(done["ids"]) == 5
    after = [_same(lead) for lead in _leads(target)]
    assert after == before
    assert {lead["status"] for lead in after} >= {"Converted", "Quotation"}
    status_log = [e for e in target.show(done["ids"][1])["timeline"] if e["type"] == "status"]
    assert "carol" in status_log[-1]["cause"]


def test_leadmail_csv_round_trip(lm: Edits, empty: Edits, tmp_path: Path) -> None:
    _add_some(lm)
    before = [_same(lead) for lead in _leads(lm)]
    out = tmp_path / "own.csv"
    lm.ok("leads", "export", "--format", "csv", "--output", str(out))
    assert "custom.budget" in out.read_text(encoding="utf-8").splitlines()[0]
    target = empty
    target.ok("leads", "import", str(out))
    assert [_same(lead) for lead in _leads(target)] == before


def test_json_export_has_custom_columns(lm: Edits) -> None:
    _add_some(lm)
    rows = json.loads(lm.ok("leads", "export", "--format", "json", "--status", "Lead").stdout)
    assert [r["email"] for r in rows] == ["jane@acme.example", "zoe@z.example"]
    assert rows[0]["custom.tier"] == "Gold" and rows[1]["custom.partner"] is False


BAD_FILE = (
    "lead_name,organization_lead,company_name,email_id,status,gender,custom_employees\r\n"
    "Good One,0,,good@a.example,Lead,,1\r\n"  # line 2
    "Bad Mail,0,,x@,Lead,,\r\n"  # line 3
    "Org,1,,org@a.example,Open,,\r\n"  # line 4
    "Conv,0,,conv@a.example,Won,,\r\n"  # line 5
    '"multi\nline",0,,multi@a.example,Lead,Robot,\r\n'  # lines 6-7
    "Dup,0,,GOOD@a.example,Lead,,\r\n"  # line 8
    "Typed,0,,typed@a.example,Lead,,many\r\n"  # line 9
    "Gendered,0,,g@a.example,Lead,Robot,\r\n"  # line 10
    "No Mail,0,,,Lead,,\r\n"  # line 11
)


def test_a_file_with_bad_rows_imports_nothing_and_names_each_line(
    lm: Edits, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(BAD_FILE.encode("utf-8"))
    result = lm.run("leads", "import", str(path))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("line 3: email_id: 'x@' is not an address")
    assert lines[1].startswith("line 4: company_name: an organisation")
    assert lines[2].startswith("line 5: status: unknown status 'Won'")
    assert lines[3].startswith("line 6: lead_name: control characters or line breaks")
    assert lines[4].startswith("line 8: email_id: GOOD@a.example is on line 2 too")
    assert lines[5].startswith("line 9: custom_employees: ")
    assert lines[6].startswith("line 10: gender: unknown gender 'Robot'")
    assert lines[7] == "line 11: email_id: an email address is required"
    assert len(lines) == 9
    assert lines[-1].startswith("leadmail: error: ") and "nothing imported" in lines[-1]
    assert lm.json("leads", "list", "--format", "json") == []


def test_an_address_that_already_has_a_lead_refuses_the_whole_file(
    lm: Edits, tmp_path: Path
) -> None:
    lm.add("--email", "old@a.example")
    path = tmp_path / "dup.csv"
    path.write_text("email_id,lead_name\nnew@a.example,New\nOLD@a.example,Old\n")
    result = lm.run("leads", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith("line 3: OLD@a.example already has lead")
    assert len(lm.json("leads", "list", "--format", "json")) == 1


def test_excel_csv_with_bom_and_crlf_imports(lm: Edits, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    text = (
        "lead_name,email_id,status,notes,custom_region\r\n"
        "Åsa Öberg,asa@b.example,Open,'=1+2,'-x\r\n"
    )
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    dry = lm.json("leads", "import", str(path), "--dry-run", "--json")
    assert dry["dry_run"] is True and dry["imported"] == 0
    assert lm.json("leads", "list", "--format", "json") == []
    done = lm.json("leads", "import", str(path), "--json")
    lead = lm.show(done["ids"][0])
    assert (lead["name"], lead["email"], lead["status"]) == ("Åsa Öberg", "asa@b.example", "Open")
    assert lead["notes"] == "=1+2" and lead["custom_fields"] == {"region": "-x"}


def test_unknown_columns_and_custom_fields_are_refused(lm: Edits, tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("email_id,custom_nope\na@c.example,1\n")
    result = lm.run("leads", "import", str(path))
    assert result.exit_code == 1 and "line 2: custom_nope: unknown custom field" in result.stderr
    path.write_text("email,color\na@c.example,red\n")
    result = lm.run("leads", "import", str(path))
    assert result.exit_code == 1 and "unknown column 'color'" in result.stderr


def test_erpnext_lead_owner_is_the_executives_email_both_ways(
    lm: Edits, empty: Edits, tmp_path: Path
) -> None:
    """ERPNext's lead_owner links a User by email; leadmail's owner is the rule file's id."""
    for side in (lm, empty):
        side.rules_file.write_text(RULES, encoding="utf-8")
    big = lm.add("--email", "big@spender.example", "--field", "budget=50000")
    assert lm.show(big["id"])["assigned_to"] == "alice"
    lm.add("--email", "free@agent.example")
    out = tmp_path / "owned.csv"
    lm.ok("leads", "export", "--output", str(out))
    rows = {r["email_id"]: r for r in csv.DictReader(io.StringIO(out.read_text("utf-8")))}
    assert rows["big@spender.example"]["lead_owner"] == "alice@northwind.example"
    assert rows["free@agent.example"]["lead_owner"] == ""
    # leadmail's own csv keeps the id.
    own = lm.ok("leads", "export", "--format", "csv").stdout
    assert "alice@northwind.example" not in own and ",alice," in own

    empty.ok("leads", "import", str(out))
    imported = {r["email"]: r for r in empty.json("leads", "list", "--format", "json")}
    assert imported["big@spender.example"]["assigned_to"] == "alice"
