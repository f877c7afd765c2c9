"""What a person may write on a lead: the checks of ERPNext's Lead form, and custom fields.

Pure functions over values and the settings: ``leads add``, ``leads set`` (and an import)
call them before any transaction, so every refusal is a ValidationError naming the field and
the value, printed as one line. The names used here are the ones ``leads show --format json``
prints (``company``, ``lead_type``, ...); ``COLUMNS`` maps them onto the ``leads`` columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from worker.errors import ValidationError
from worker.store.tables import LeadStatus

if TYPE_CHECKING:
    from worker.config import CustomFieldSettings, LeadSettings

COLUMNS: Mapping[str, str] = {
    "name": "person_name",
    "company": "company_name",
    "gender": "gender",
    "phone": "phone",
    "mobile": "mobile",
    "website": "website",
    "source": "source",
    "lead_type": "lead_type",
    "market_segment": "market_segment",
    "industry": "industry",
    "territory": "territory",
    "notes": "notes",
}
"""The text fields a person sets, by their shown name, with the column each is stored in."""

_LIMITS: Mapping[str, int] = {
    "name": 255,
    "company": 255,
    "gender": 32,
    "phone": 64,
    "mobile": 64,
    "website": 255,
    "source": 64,
    "lead_type": 64,
    "market_segment": 128,
    "industry": 128,
    "territory": 128,
    "notes": 20_000,
}
"""Longest value of each field: the column's size (models.py), so the database never refuses."""

EMAIL_LIMIT = 320
CUSTOM_TEXT_LIMIT = 2_000

MANUAL_STATUSES = (
    LeadStatus.LEAD,
    LeadStatus.OPEN,
    LeadStatus.REPLIED,
    LeadStatus.INTERESTED,
    LeadStatus.DO_NOT_CONTACT,
)
"""Statuses a person may set; the others follow from the lead's records."""

DERIVED_HOW = {
    LeadStatus.OPPORTUNITY: "an open opportunity: leadmail leads make opportunity {id}",
    LeadStatus.QUOTATION: "an open quotation: leadmail leads make quotation {id}",
    LeadStatus.LOST_QUOTATION: (
        "lost quotations and no open opportunity: leadmail quotations set QUOTATION_ID "
        "--status lost"
    ),
    LeadStatus.CONVERTED: ("a customer or an ordered quotation: leadmail leads make customer {id}"),
}
"""Where each derived status comes from, and the command that makes it."""

# One line of text: no control characters (a newline or an escape would let a value forge
# lines of a listing, and PostgreSQL refuses NUL). Notes may have lines and tabs.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_IN_NOTES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# What Frappe (ERPNext's framework) accepts in a phone field, plus at least one digit.
_PHONE = re.compile(r"[0-9 +_\-,.*#()/]+")
_LOCAL = re.compile(r"[^\s@<>()\[\],;:\\\"]+")
_INT = re.compile(r"[+-]?\d{1,18}")
_DECIMAL = re.compile(r"[+-]?(?:\d{1,30}(?:\.\d{0,12})?|\.\d{1,12})")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})


@dataclass(frozen=True, slots=True)
class LeadEdit:
    """What a person typed for one lead; a field not given is absent, '' clears it.

    ``fields`` is keyed by the names in COLUMNS plus ``email``; ``custom`` holds the
    ``--field KEY=VALUE`` arguments as typed.
    """

    fields: Mapping[str, str] = field(default_factory=dict)
    is_organization: bool | None = None
    custom: tuple[str, ...] = ()


# -- single values -------------------------------------------------------------------------


def check_email(value: str) -> str:
    """A bare address as typed (trimmed), or ValidationError saying what is wrong with it.

    One @, a local part without spaces or brackets, and a domain with a dot that
    normalize_email (the one intake uses) accepts. ``Jane <j@x.example>`` and ``mailto:``
    are refused rather than quietly rewritten: what is stored is what was typed.
    """
    text = value.strip()
    if not text:
        raise ValidationError("an email address is required (--email)", value)
    shown = text if len(text) <= 80 else text[:77] + "..."
    if _CONTROL.search(text) or any(c.isspace() for c in text):
        raise ValidationError(f"email {shown!r} is not an address: it contains spaces", value)
    if text.count("@") != 1:
        raise ValidationError(f"email {shown!r} is not an address: it needs exactly one @", value)
    local, _, domain = text.partition("@")
    if not local or not _LOCAL.fullmatch(local) or ".." in local:
        raise ValidationError(f"email {shown!r} is not an address: bad part before @", value)
    if "." not in domain.strip(".") or domain.endswith(".") or domain.startswith("."):
        raise ValidationError(
            f"email {shown!r} is not an address: the domain needs a dot (name.example)", value
        )
    from worker.mail.addresses import normalize_email  # only when an address is given

    normalized = normalize_email(text)
    if not normalized or normalized.rpartition("@")[0] != local or "?" in domain:
        raise ValidationError(f"email {shown!r} is not an address: bad domain", value)
    if len(text) > EMAIL_LIMIT:
        raise ValidationError(f"email is longer than {EMAIL_LIMIT} characters", value)
    return text


def check_text(name: str, value: str, limit: int | None = None) -> str | None:
    """A field's value trimmed (None when empty), refused when too long or not one line.

    ``notes`` may hold lines and tabs; every other field is one line.
    """
    text = value.strip()
    if not text:
        return None
    control = _CONTROL_IN_NOTES if name == "notes" and limit is None else _CONTROL
    if control.search(text):
        raise ValidationError(f"{name}: control characters or line breaks are not allowed", value)
    limit = limit or _LIMITS.get(name, CUSTOM_TEXT_LIMIT)
    if len(text) > limit:
        raise ValidationError(f"{name} is longer than {limit} characters", value)
    return text


def check_gender(value: str, genders: Iterable[str]) -> str | None:
    """The configured gender it names, in any case; None when empty."""
    text = value.strip()
    if not text:
        return None
    known = tuple(genders)
    for gender in known:
        if gender.strip().casefold() == text.casefold():
            return gender.strip()
    allowed = ", ".join(known) if known else "none are configured ([leads] genders)"
    raise ValidationError(f"unknown gender {text!r}; one of: {allowed}", value)


def check_phone(name: str, value: str) -> str | None:
    """Digits with the separators Frappe allows (+ - . , ( ) # * / space); None when empty."""
    text = check_text(name, value)
    if text is None:
        return None
    if not _PHONE.fullmatch(text) or not any(c.isdigit() for c in text):
        raise ValidationError(
            f"{name} {text!r} is not a phone number (digits, spaces and + - . ( ) # * /)", value
        )
    return text


def check_company(is_organization: bool, company: str | None) -> None:
    """ERPNext: a lead that is an organisation needs the organisation's name."""
    if is_organization and not company:
        raise ValidationError(
            "an organisation needs its company name: give --company NAME (or --no-organization)",
            company,
        )


def known_status(status: str) -> str:
    """One of the nine statuses, by any case of its name (what an import may carry)."""
    wanted = status.strip().casefold()
    for known in LeadStatus:
        if known.value.casefold() == wanted:
            return known.value
    allowed = ", ".join(s.value for s in LeadStatus)
    raise ValidationError(f"unknown status {status.strip()!r}; one of: {allowed}", status)


def status_by_hand(status: str, lead_id: int | str = "ID") -> str:
    """The status a person may set, by any case of its name; a derived one says where from."""
    wanted = status.strip().casefold()
    for known in LeadStatus:
        if known.value.casefold() == wanted:
            break
    else:
        allowed = ", ".join(s.value for s in MANUAL_STATUSES)
        raise ValidationError(f"unknown status {status.strip()!r}; one of: {allowed}", status)
    if known not in MANUAL_STATUSES:
        how = DERIVED_HOW[known].format(id=lead_id)
        raise ValidationError(f"{known.value} is not set by hand; it comes from {how}", status)
    return known.value


# -- custom fields -------------------------------------------------------------------------


def parse_field_args(arguments: Iterable[str]) -> list[tuple[str, str]]:
    """``--field KEY=VALUE`` arguments as (key, value) pairs, refused without '='."""
    pairs: list[tuple[str, str]] = []
    for argument in arguments:
        key, equals, value = argument.partition("=")
        if not equals or not key.strip():
            raise ValidationError(f"--field takes NAME=VALUE, not {argument!r}", argument)
        pairs.append((key.strip(), value))
    return pairs


def custom_value(declared: CustomFieldSettings, raw: str) -> Any:
    """``raw`` as the field's type stores it: int, bool, or text (decimal exact, date ISO).

    None when empty (the field is cleared). ValidationError names the field and its type.
    """
    text = raw.strip()
    if not text:
        return None
    kind, name = declared.type, declared.name
    if kind == "text":
        return check_text(name, raw, CUSTOM_TEXT_LIMIT)
    if kind == "int":
        if not _INT.fullmatch(text):
            raise ValidationError(f"{name} is an int field: {text!r} is not a whole number", raw)
        return int(text)
    if kind == "decimal":
        if not _DECIMAL.fullmatch(text):
            raise ValidationError(f"{name} is a decimal field: {text!r} is not a number", raw)
        try:
            return format(Decimal(text), "f")
        except InvalidOperation:  # the pattern leaves nothing Decimal refuses; to be sure
            raise ValidationError(
                f"{name} is a decimal field: {text!r} is not a number", raw
            ) from None
    if kind == "date":
        try:
            if not _ISO_DATE.fullmatch(text):
                raise ValueError(text)
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValidationError(
                f"{name} is a date field: {text!r} is not a date like 2026-12-20", raw
            ) from None
    if kind == "bool":
        folded = text.casefold()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
        raise ValidationError(f"{name} is a bool field: {text!r} is not yes/no or true/false", raw)
    for choice in declared.choices:
        if choice.strip().casefold() == text.casefold():
            return choice.strip()
    raise ValidationError(
        f"{name} is a choice field: {text!r} is not one of {', '.join(declared.choices)}", raw
    )


def custom_values(settings: LeadSettings, arguments: Iterable[str]) -> dict[str, Any]:
    """The ``--field`` arguments checked and typed, by declared name (None: clear it)."""
    values: dict[str, Any] = {}
    for key, raw in parse_field_args(arguments):
        declared = settings.custom_field(key)
        if declared is None:
            names = ", ".join(f.name for f in settings.custom_fields)
            known = f"declared: {names}" if names else "none are declared ([[leads.custom_fields]])"
            raise ValidationError(f"unknown custom field {key!r}; {known}", key)
        values[declared.name] = custom_value(declared, raw)
    return values


def missing_required(settings: LeadSettings, values: Mapping[str, Any]) -> None:
    """Refuse a lead made by hand without a required custom field."""
    for declared in settings.custom_fields:
        if declared.required and values.get(declared.name) in (None, ""):
            raise ValidationError(
                f"custom field {declared.name!r} is required: give --field {declared.name}=VALUE",
                declared.name,
            )


# -- a whole edit ----------------------------------------------------------------------------


def checked_fields(edit: LeadEdit, settings: LeadSettings) -> dict[str, Any]:
    """Every given field checked, by shown name (``email`` included; None clears a field)."""
    out: dict[str, Any] = {}
    for name, raw in edit.fields.items():
        if name == "email":
            out[name] = check_email(raw)
        elif name == "gender":
            out[name] = check_gender(raw, settings.genders)
        elif name in ("phone", "mobile"):
            out[name] = check_phone(name, raw)
        elif name in COLUMNS:
            out[name] = check_text(name, raw)
        else:  # a programming error, not a user's
            raise KeyError(name)
    return out
