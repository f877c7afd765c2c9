"""``leads export`` and ``leads import``: leads out to a file and back in, all or nothing.

Three layouts go out. ``erpnext-csv`` has one column per field of ERPNext's Lead doctype, its
header row holding the doctype's *fieldnames* as lead.json spells them (``lead_name``,
``organization_lead``, ``company_name``, ``email_id``, ``status``, ``gender``, ``source``,
``lead_owner``, ``phone``, ``mobile_no``, ``website``, ``territory``, ``type``,
``market_segment``, ``industry``, ``notes``; checked against frappe/erpnext
erpnext/crm/doctype/lead/lead.json). Frappe's Data Import matches a header cell against a
field's label *and* its fieldname (importer.py, ``build_fields_dict_for_column_matching``), so
fieldnames load whatever language the labels are in. A custom field ``budget`` is the column
``custom_budget``: the fieldname Frappe (v15) gives a custom field made with that label, so
it loads where the ERPNext site declares the same field (Data Import skips, with a warning,
a column it does not know). ``csv`` and ``json`` are leadmail's own: the names ``leads show``
prints, with each custom field as ``custom.NAME``.

``lead_owner`` is a link to an ERPNext User, whose name is an email address: the export
writes the executive's email from the rule file (the id when it has none), and the import
of an erpnext-csv takes an executive's email back to its id.

ERPNext's Lead statuses are ours, one for one, and an import takes all nine as the file
says: a lead that was Converted or had a Quotation in the system it comes from stays so (an
export re-imports to the same leads). Its records do not come with it, so nothing derives
another status until a record is made here; mail never moves a Converted lead.

CSV injection: a cell that starts with = + - @ (or a tab or carriage return) would be run as
a formula by a spreadsheet, so the export writes it with a leading apostrophe (``'=1+2``), as
OWASP advises; the import takes that apostrophe off again, so values survive a round trip.

The import reads the erpnext-csv layout (recognised by its ``email_id`` column) or leadmail's
own csv (an ``email`` column), as Excel writes them too (UTF-8 with a byte order mark, CRLF).
Every row is checked first with the validators ``leads add`` uses (services/lead_fields.py);
an address that repeats in the file or already has a lead is a bad row. One bad row and
nothing is imported: each is reported with its line in the file. Otherwise every lead is
inserted in ONE transaction, its first status logged with who imported it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.config import LeadSettings
from worker.errors import ValidationError
from worker.mail.addresses import email_key, organization_domain
from worker.services.context import App
from worker.services.lead_fields import (
    COLUMNS,
    LeadEdit,
    check_text,
    checked_fields,
    custom_value,
    known_status,
    missing_required,
)
from worker.services.leads import list_leads
from worker.store import inbound
from worker.store.lookups import StoreLookups
from worker.store.models import utcnow

FORMATS = ("erpnext-csv", "csv", "json")

# leadmail's name of a field → ERPNext Lead's fieldname (lead.json), in the export's order.
ERPNEXT_FIELDS: Mapping[str, str] = {
    "name": "lead_name",
    "is_organization": "organization_lead",
    "company": "company_name",
    "email": "email_id",
    "status": "status",
    "gender": "gender",
    "source": "source",
    "assigned_to": "lead_owner",
    "phone": "phone",
    "mobile": "mobile_no",
    "website": "website",
    "territory": "territory",
    "lead_type": "type",
    "market_segment": "market_segment",
    "industry": "industry",
    "notes": "notes",
}
OWN_FIELDS = ("id", *ERPNEXT_FIELDS, "created_at")
"""leadmail's own csv/json columns (then custom.NAME); an import ignores id and created_at."""

ERPNEXT_CUSTOM_PREFIX = "custom_"
OWN_CUSTOM_PREFIX = "custom."

# Columns an import accepts and ignores: what a lead gets anew (its id, when it was made) and
# ERPNext's own bookkeeping in a file exported from ERPNext.
_IGNORED = {
    "erpnext-csv": frozenset(
        {"name", "naming_series", "owner", "creation", "modified", "modified_by", "docstatus"}
    ),
    "csv": frozenset(
        {"id", "created_at", "updated_at", "messages", "organization_domain", "next_contact_date"}
        | {"next_contact_by"}
    ),
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TRUE = frozenset({"1", "yes", "true", "y", "on"})
_FALSE = frozenset({"0", "no", "false", "n", "off", ""})


# -- export ----------------------------------------------------------------------------------


def export_leads(app: App, fmt: str, **filters: Any) -> str:
    """The leads ``leads list`` would show with these filters, as the text of one file."""
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}", fmt)
    declared = [f.name for f in app.settings.leads.custom_fields]
    wanted = [*OWN_FIELDS, *(OWN_CUSTOM_PREFIX + name for name in declared)]
    rows = list_leads(app, fields=wanted, **filters)
    if fmt == "json":
        return json.dumps([{k: row.get(k) for k in wanted} for row in rows], ensure_ascii=False)
    if fmt == "csv":
        return csv_text(wanted, ([_cell(row.get(k)) for k in wanted] for row in rows))
    header = [*ERPNEXT_FIELDS.values(), *(ERPNEXT_CUSTOM_PREFIX + name for name in declared)]
    ours = [*ERPNEXT_FIELDS, *(OWN_CUSTOM_PREFIX + name for name in declared)]
    owners = _owner_emails(app)
    for row in rows:
        owner = row.get("assigned_to")
        row["assigned_to"] = owners.get(owner, owner) if owner else owner
    return csv_text(header, ([_cell(row.get(k)) for k in ours] for row in rows))


def _owner_emails(app: App) -> dict[str, str]:
    """Executive id → email, from the rule file: ERPNext's lead_owner is a User, named by
    its email, where leadmail names an executive by the rule file's id."""
    from worker.services.assignment import rule_book  # the rule engine: only here

    rules = rule_book(app).load()
    if rules is None:
        return {}
    return {e.id: e.email for e in rules.executives.values() if e.email}


def csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A CSV file (RFC 4180: CRLF, quoted where needed), every cell defused for spreadsheets."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([defuse(cell) for cell in row])
    return out.getvalue()


def defuse(cell: str) -> str:
    """A cell a spreadsheet would run as a formula, with an apostrophe in front."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def undefuse(cell: str) -> str:
    """What ``defuse`` wrote, as it was."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_START) else cell


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


# -- import ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BadRow:
    """One refusal: the line of the file it is on, and what is wrong."""

    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


class ImportRefused(ValidationError):
    """A file with bad rows: nothing was imported; ``problems`` says where and why."""

    def __init__(self, message: str, problems: Sequence[BadRow]) -> None:
        super().__init__(message, [str(p) for p in problems])
        self.problems = list(problems)


@dataclass(slots=True)
class _Row:
    line: int
    values: dict[str, Any]
    is_organization: bool
    status: str
    assigned_to: str | None
    custom: dict[str, Any] = field(default_factory=dict)


def import_leads(
    app: App, data: bytes, actor: str, *, name: str = "file", dry_run: bool = False
) -> dict[str, Any]:
    """Import the leads of one CSV file, all or none (see the module's docstring).

    Returns ``{"imported": N, "ids": [...], "dry_run": bool}``; raises ImportRefused naming
    every bad row, or ValidationError for a file that is not such a CSV at all.
    """
    settings = app.settings.leads
    layout, records = _read(data, name)
    problems: list[BadRow] = []
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    for line, record in records:
        try:
            row = _check(layout, line, record, settings)
        except ValidationError as exc:
            problems.append(BadRow(line, str(exc)))
            continue
        key = email_key(row.values["email"])
        if key in seen:
            email_col = "email_id" if layout == "erpnext-csv" else "email"
            problems.append(
                BadRow(line, f"{email_col}: {row.values['email']} is on line {seen[key]} too")
            )
            continue
        seen[key] = line
        rows.append(row)
    from worker.services.assignment import route, rule_book  # the rule engine: only here

    rules = rule_book(app).load() if rows and not problems else None
    if rules is not None and layout == "erpnext-csv":
        # lead_owner holds an ERPNext user's email: the executive with that email, if any.
        by_email = {e.email.lower(): e.id for e in rules.executives.values() if e.email}
        for row in rows:
            if row.assigned_to:
                row.assigned_to = by_email.get(row.assigned_to.lower(), row.assigned_to)
    now = utcnow()
    ids: list[int] = []
    with app.db.begin() as conn:
        lookups = StoreLookups(conn)
        for row in rows:
            key = email_key(row.values["email"])
            inbound.lock_sender(conn, key)
            existing = lookups.leads_by_address(key)
            if existing:
                problems.append(
                    BadRow(row.line, f"{row.values['email']} already has lead {existing[0]}")
                )
        if problems:
            problems.sort(key=lambda p: p.line)
            bad = len({p.line for p in problems})
            raise ImportRefused(
                f"{name}: {bad} bad row{'s' if bad != 1 else ''} of {len(records)}; "
                "nothing imported",
                problems,
            )
        if dry_run:
            return {"imported": 0, "checked": len(rows), "ids": [], "dry_run": True}
        for row in rows:
            ids.append(_insert(app, conn, row, actor, name, now))
            if rules is not None and row.assigned_to is None:
                route(conn, rules, ids[-1], None, now)
    return {"imported": len(ids), "checked": len(rows), "ids": ids, "dry_run": False}


def _read(data: bytes, name: str) -> tuple[str, list[tuple[int, dict[str, str]]]]:
    """The layout and the rows of a CSV file (each with the line it starts on)."""
    try:
        text = data.decode("utf-8-sig")  # Excel's "CSV UTF-8" begins with a byte order mark
    except UnicodeDecodeError:
        raise ValidationError(f"{name} is not UTF-8 text (save it as CSV UTF-8)", name) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise ValidationError(f"{name} is empty: no header row", name)
        header = [h.strip() for h in header]
        layout = "erpnext-csv" if "email_id" in header else "csv" if "email" in header else ""
        if not layout:
            raise ValidationError(
                f"{name}: no email_id (ERPNext) or email (leadmail) column in the header", name
            )
        repeated = sorted({h for h in header if h and header.count(h) > 1})
        if repeated:
            raise ValidationError(f"{name}: column {repeated[0]!r} appears twice", repeated[0])
        records: list[tuple[int, dict[str, str]]] = []
        start = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells):
                if len(cells) > len(header):
                    extra = BadRow(start, f"{len(cells)} cells but {len(header)} columns")
                    raise ImportRefused(f"{name}: {extra}; nothing imported", [extra])
                records.append((start, dict(zip(header, cells, strict=False))))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ValidationError(f"{name}: line {reader.line_num}: not CSV: {exc}", name) from None
    return layout, records


def _check(layout: str, line: int, record: Mapping[str, str], settings: LeadSettings) -> _Row:
    """One row checked like ``leads add``; ValidationError names the column and the value."""
    erpnext = layout == "erpnext-csv"
    ours_by_column = {v: k for k, v in ERPNEXT_FIELDS.items()} if erpnext else {}
    fields: dict[str, str] = {}
    custom: dict[str, Any] = {}
    flags: dict[str, str] = {}
    for column, raw in record.items():
        cell = undefuse(raw)
        if not column or column in _IGNORED[layout]:
            continue
        ours = ours_by_column.get(column, column) if erpnext else column
        custom_name = _custom_name(column, erpnext)
        if custom_name is not None:
            declared = settings.custom_field(custom_name)
            if declared is None:
                names = ", ".join(f.name for f in settings.custom_fields) or "none"
                raise ValidationError(f"{column}: unknown custom field (declared: {names})", column)
            value = _in_column(column, custom_value, declared, cell)
            if value is not None:
                custom[declared.name] = value
        elif ours in ("is_organization", "status", "assigned_to"):
            flags[ours] = cell
        elif ours == "email" or ours in COLUMNS:
            fields[ours] = cell
        else:
            known = ", ".join(ERPNEXT_FIELDS.values() if erpnext else ERPNEXT_FIELDS)
            raise ValidationError(f"unknown column {column!r}; known: {known}", column)
    email_col = "email_id" if erpnext else "email"
    values: dict[str, Any] = {}
    for ours, cell in fields.items():
        if ours == "email" and not cell.strip():
            continue  # refused below, in words for a file rather than for --email
        column = ERPNEXT_FIELDS[ours] if erpnext else ours
        edit = LeadEdit(fields={ours: cell})
        values.update(_in_column(column, checked_fields, edit, settings, name=ours))
    if not values.get("email"):
        raise ValidationError(f"{email_col}: an email address is required", None)
    org_col = "organization_lead" if erpnext else "is_organization"
    is_organization = _flag(org_col, flags.get("is_organization", ""))
    company_col = "company_name" if erpnext else "company"
    if is_organization and not values.get("company"):  # ERPNext's rule, as check_company
        raise ValidationError(
            f"{company_col}: an organisation ({org_col} = 1) needs its company name", None
        )
    status = flags.get("status", "").strip()
    status = _in_column("status", known_status, status) if status else "Lead"
    owner_col = "lead_owner" if erpnext else "assigned_to"
    owner = _in_column(
        owner_col, check_text, owner_col, flags.get("assigned_to", ""), name=owner_col
    )
    missing_required(settings, custom)
    return _Row(line, values, is_organization, status, owner, custom)


def _in_column(column: str, check: Callable[..., Any], *args: Any, name: str = "") -> Any:
    """``check(*args)``, its refusal led by the file's column: ``email_id: 'x@' is not ...``.

    The validators name a field as ``leads add`` does (``email 'x@' ...``); that name, when
    the message starts with it, gives way to the column's.
    """
    try:
        return check(*args)
    except ValidationError as exc:
        message = str(exc)
        for lead in (f"{name}: ", f"{name} ") if name else ():
            if message.startswith(lead):
                message = message[len(lead) :]
                break
        if message.startswith(f"{column}: "):
            raise
        raise ValidationError(f"{column}: {message}", exc.value) from None


def _custom_name(column: str, erpnext: bool) -> str | None:
    if column.startswith(OWN_CUSTOM_PREFIX):
        return column[len(OWN_CUSTOM_PREFIX) :]
    if erpnext and column.startswith(ERPNEXT_CUSTOM_PREFIX):
        return column[len(ERPNEXT_CUSTOM_PREFIX) :]
    return None


def _flag(column: str, cell: str) -> bool:
    folded = cell.strip().casefold()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValidationError(f"{column}: {cell.strip()!r} is not 1/0 (yes/no)", cell)


def _insert(app: App, conn: Any, row: _Row, actor: str, name: str, now: Any) -> int:
    """One checked row as a new lead, its first status logged with who imported it."""
    values = row.values
    email = values["email"]
    columns = inbound.new_lead_columns(
        person_name=values.get("name"),
        email=email,
        email_key=email_key(email),
        organization_domain=organization_domain(email, app.sender_policy),
        company_name=values.get("company"),
        status=row.status,
        source=values.get("source"),
        related_lead_id=None,
        now=now,
    )
    for key, value in values.items():
        if key in COLUMNS and key not in ("name", "company", "source"):
            columns[COLUMNS[key]] = value
    columns.update(
        is_organization=row.is_organization, custom_fields=row.custom, assigned_to=row.assigned_to
    )
    lead_id = inbound.insert_lead(conn, columns)
    inbound.log_status_change(
        conn,
        lead_id,
        before=None,
        to=row.status,
        cause=f"imported from {name} (line {row.line}) by {actor}",
        message_row_id=None,
        now=now,
    )
    return lead_id
