"""A lead's contacts (the people at a B2B customer) and postal addresses.

Every change is logged in the lead's timeline with who made it. A contact's address threads
its mail onto the lead (threading looks contacts up by address), so a contact's address
belongs to one lead at most once.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from email.utils import getaddresses
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.errors import NotFoundError, ValidationError
from worker.mail.addresses import email_key, is_no_reply, is_relay, normalize_email
from worker.services.context import App
from worker.services.notes import live_lead, log_change, optional_text, required_text
from worker.store import contacts as store
from worker.store import notes as lead_store

ADDRESS_TYPES = ("billing", "shipping", "office")

# ISO 3166-1 alpha-2: all 249 officially assigned codes (the list tzdata ships as iso3166.tab).
# Python has none built in, and a dependency for one frozenset is not worth it.
# fmt: off
COUNTRIES = frozenset((
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX",
    "AZ", "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ",
    "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK",
    "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM",
    "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR",
    "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS",
    "GT", "GU", "GW", "GY", "HK", "HM", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN",
    "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN",
    "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV",
    "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ",
    "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI",
    "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM",
    "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW", "SA", "SB", "SC",
    "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST", "SV",
    "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR",
    "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
))
# fmt: on

# A bare address: something@domain.tld, no spaces or brackets (a display name goes in --name).
_NOT_IN_ADDRESS = r"[^\s\x00-\x1f\x7f@<>(),;:\"\[\]]"
_BARE_ADDRESS = re.compile(rf"^{_NOT_IN_ADDRESS}+@{_NOT_IN_ADDRESS}+\.{_NOT_IN_ADDRESS}+$")
_ADDRESS_MAX = 320  # RFC 5321's limit, and the column's

# Messages whose people are not the customer's: a bounce's sender is a mail server, a mailing
# list's is the list.
_NOT_PEOPLE = {"bounce", "auto_reply", "out_of_office", "list", "report"}


def check_email(value: str) -> tuple[str, str]:
    """The address as given (normalised) and its key; refuses anything but one bare address."""
    text = value.strip()
    normal = normalize_email(text) if _BARE_ADDRESS.match(text) else ""
    if not normal or len(normal) > _ADDRESS_MAX:
        raise ValidationError(f"not an email address: {value!r}", value)
    return normal, email_key(normal)


def check_country(value: str) -> str:
    code = value.strip().upper()
    if code not in COUNTRIES:
        raise ValidationError(
            f"unknown country {value!r}: give an ISO 3166 alpha-2 code such as GB, DE or US",
            value,
        )
    return code


def check_address_type(value: str) -> str:
    kind = value.strip().lower()
    if kind not in ADDRESS_TYPES:
        raise ValidationError(
            f"unknown address type {value!r}; one of: {', '.join(ADDRESS_TYPES)}", value
        )
    return kind


def _lead(session: Session, lead_id: int) -> dict[str, Any]:
    identity = lead_store.lead_identity(session, lead_id)
    if identity is None:
        raise NotFoundError(f"no lead {lead_id}", lead_id)
    return identity


def _own_keys(app: App) -> set[str]:
    """Our own addresses: the configured ones and each IMAP account's login when it is one."""
    keys = set(app.own.addresses)
    for account in app.settings.accounts:
        username = getattr(account, "username", "")
        if username and "@" in username:
            keys.add(email_key(username))
    return keys - {""}


# -- contacts ---------------------------------------------------------------------------------


def list_contacts(app: App, lead_id: int) -> list[dict[str, Any]]:
    with app.db.transaction(write=False) as session:
        lead_id = live_lead(session, lead_id)
        return store.contacts(session, lead_id)


def _insert_contact(
    session: Session,
    lead_id: int,
    *,
    email: str,
    key: str,
    name: str | None,
    phone: str | None,
    designation: str | None,
    primary: bool,
    actor: str,
    how: str,
) -> dict[str, Any]:
    if key in store.contact_keys(session, lead_id):
        raise ValidationError(f"{email} is already a contact of lead {lead_id}", email)
    try:
        row = store.add_contact(
            session,
            lead_id,
            name=name,
            email=email,
            email_key=key,
            phone=phone,
            designation=designation,
            primary=primary,
            now=datetime.now(UTC),
        )
    except IntegrityError:
        # Someone added the same address between our check and the insert (migration
        # 0009's unique key): the same answer as the check gives.
        raise ValidationError(f"{email} is already a contact of lead {lead_id}", email) from None
    who = f"{name} <{email}>" if name else email
    log_change(
        session,
        lead_id,
        kind="contact",
        summary=f"contact {who} {how}" + (" (primary)" if primary else ""),
        actor=actor,
        details={"action": "added", "contact_id": row["id"], "email": email},
    )
    return row


def add_contact(
    app: App,
    lead_id: int,
    *,
    email: str,
    actor: str,
    name: str | None = None,
    phone: str | None = None,
    designation: str | None = None,
    primary: bool = False,
) -> dict[str, Any]:
    address, key = check_email(email)
    with app.db.transaction() as session:
        lead_id = live_lead(session, lead_id)
        return _insert_contact(
            session,
            lead_id,
            email=address,
            key=key,
            name=optional_text(name, "--name", 255),
            phone=optional_text(phone, "--phone", 64),
            designation=optional_text(designation, "--designation", 128),
            primary=primary,
            actor=actor,
            how="added",
        )


def remove_contact(app: App, contact_id: int, actor: str) -> dict[str, Any]:
    with app.db.transaction() as session:
        row = store.contact(session, contact_id)
        if row is None:
            raise NotFoundError(f"no contact {contact_id}", contact_id)
        store.remove_contact(session, contact_id)
        log_change(
            session,
            row["lead_id"],
            kind="contact",
            summary=f"contact {row['email']} removed",
            actor=actor,
            details={"action": "removed", "contact_id": contact_id, "email": row["email"]},
        )
        return row


def _people(session: Session, lead_id: int) -> dict[str, dict[str, Any]]:
    """Everyone on the lead's mail (From, To, Cc) by key: address, a name, message count."""
    seen: dict[str, dict[str, Any]] = {}
    counts: Counter[str] = Counter()
    for message in store.message_people(session, lead_id):
        if message["kind"] in _NOT_PEOPLE:
            continue
        pairs: list[tuple[str, str]] = []
        if message["sender"]:
            pairs.append((message["sender_name"] or "", message["sender"]))
        recipients = message["recipients"]
        for field in ("to", "cc"):
            values = recipients.get(field) or []
            pairs += getaddresses([str(v) for v in values])
        in_this: set[str] = set()
        for name, raw in pairs:
            address = normalize_email(raw)
            key = email_key(address) if address else ""
            if not key:
                continue
            person = seen.setdefault(key, {"email": address, "name": None})
            if name.strip() and not person["name"]:
                person["name"] = name.strip()
            in_this.add(key)
        counts.update(in_this)
    for key in store.participant_keys(session, lead_id):
        seen.setdefault(key, {"email": key, "name": None})
    for key, person in seen.items():
        person["messages"] = counts[key]
    return seen


def _suggestions(app: App, session: Session, lead_id: int) -> list[dict[str, Any]]:
    lead = _lead(session, lead_id)  # the caller resolved a merged lead's id (live_lead)
    skip = store.contact_keys(session, lead_id) | _own_keys(app) | {lead["email_key"] or ""}
    # Nobody reads a web form's relay address or a no-reply mailbox: not a person to add.
    rows = [
        {"email": p["email"], "name": p["name"], "messages": p["messages"]}
        for key, p in _people(session, lead_id).items()
        if key not in skip
        and not is_relay(key, app.sender_policy)
        and not is_no_reply(key, p["name"] or "")
    ]
    rows.sort(key=lambda r: (-r["messages"], r["email"].lower()))
    return rows


def suggest_contacts(app: App, lead_id: int) -> list[dict[str, Any]]:
    """People on the lead's mail who are not its contacts, its own address or ours, and
    not a machine (a form relay, a no-reply mailbox)."""
    with app.db.transaction(write=False) as session:
        return _suggestions(app, session, live_lead(session, lead_id))


def accept_contacts(
    app: App, lead_id: int, addresses: list[str], *, accept_all: bool, actor: str
) -> list[dict[str, Any]]:
    """Make suggested people contacts: all of them, or the addresses named."""
    if accept_all == bool(addresses):
        raise ValidationError("name the addresses to accept, or give --all (not both)", addresses)
    with app.db.transaction() as session:
        lead_id = live_lead(session, lead_id)
        suggested = {email_key(s["email"]): s for s in _suggestions(app, session, lead_id)}
        if accept_all:
            chosen = list(suggested.values())
        else:
            chosen = []
            for given in dict.fromkeys(addresses):
                _, key = check_email(given)
                if key not in suggested:
                    raise ValidationError(
                        f"{given} is not among lead {lead_id}'s suggestions "
                        f"(see 'leadmail contacts suggest {lead_id}'; 'contacts add' takes anyone)",
                        given,
                    )
                chosen.append(suggested[key])
        return [
            _insert_contact(
                session,
                lead_id,
                email=person["email"],
                key=email_key(person["email"]),
                name=person["name"],
                phone=None,
                designation=None,
                primary=False,
                actor=actor,
                how="accepted from the lead's mail",
            )
            for person in chosen
        ]


# -- postal addresses -------------------------------------------------------------------------


def list_addresses(app: App, lead_id: int) -> list[dict[str, Any]]:
    with app.db.transaction(write=False) as session:
        lead_id = live_lead(session, lead_id)
        return store.addresses(session, lead_id)


def _one_line(row: dict[str, Any]) -> str:
    parts = (row["line1"], row["line2"], row["city"], row["state"], row["postcode"], row["country"])
    return ", ".join(p for p in parts if p)


def add_address(
    app: App,
    lead_id: int,
    *,
    address_type: str,
    line1: str,
    city: str,
    country: str,
    actor: str,
    line2: str | None = None,
    state: str | None = None,
    postcode: str | None = None,
) -> dict[str, Any]:
    fields = {
        "type": check_address_type(address_type),
        "line1": required_text(line1, "--line1", 255),
        "line2": optional_text(line2, "--line2", 255),
        "city": required_text(city, "--city", 128),
        "state": optional_text(state, "--state", 128),
        "postcode": optional_text(postcode, "--postcode", 32),
        "country": check_country(country),
    }
    with app.db.transaction() as session:
        lead_id = live_lead(session, lead_id)
        row = store.add_address(session, lead_id, fields)
        log_change(
            session,
            lead_id,
            kind="address",
            summary=f"{row['type']} address added: {_one_line(row)}",
            actor=actor,
            details={"action": "added", "address_id": row["id"]},
        )
        return row


def remove_address(app: App, address_id: int, actor: str) -> dict[str, Any]:
    with app.db.transaction() as session:
        row = store.address(session, address_id)
        if row is None:
            raise NotFoundError(f"no address {address_id}", address_id)
        store.remove_address(session, address_id)
        log_change(
            session,
            row["lead_id"],
            kind="address",
            summary=f"{row['type']} address removed: {_one_line(row)}",
            actor=actor,
            details={"action": "removed", "address_id": address_id},
        )
        return row
