"""Reading leads for people: the list, one lead with its timeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from worker.errors import LeadmailError, NotFoundError, ValidationError
from worker.services.context import App
from worker.store import leads as store
from worker.store.models import LeadStatus

STATUSES = [s.value for s in LeadStatus]


def check_status(status: str) -> str:
    """Accept a status in any case ('do not contact'); refuse an unknown one by name."""
    for known in STATUSES:
        if known.lower() == status.strip().lower():
            return known
    raise LeadmailError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}", status)


# `--field` names people use besides the columns' own (ERPNext's form labels, `leads add`'s
# option names).
FIELD_ALIASES = {
    "type": "lead_type",
    "segment": "market_segment",
    "person_name": "name",
    "lead_name": "name",
    "company_name": "company",
    "domain": "organization_domain",
}
SORT_FIELDS = list(store.SORT_COLUMNS)
FIELD_NAMES = list(store.FIELD_ATTRIBUTES)
UNASSIGNED = "none"


def list_leads(
    app: App,
    status: str | Sequence[str] | None = None,
    limit: int | None = None,
    *,
    assigned_to: str | Sequence[str] = (),
    source: str | Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    search: str | None = None,
    company: str | None = None,
    sort: str | None = None,
    fields: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The leads a person asked for, as summaries (plus the ``fields`` asked for).

    Every value is what a person typed: checked here, refused with one line naming it
    (a date that is no date, a field or sort key that does not exist).
    """
    executives = [name.strip() for name in _many(assigned_to)]
    if any(not name for name in executives):
        raise ValidationError("--assigned-to needs an executive's name, or 'none'", "")
    sources = [name.strip() for name in _many(source)]
    if any(not name for name in sources):
        raise ValidationError("--source needs a source's name (e.g. Email)", "")
    start = parse_when(since, "since") if since is not None else None
    end = parse_when(until, "until", end_of_day=True) if until is not None else None
    if start is not None and end is not None and start > end:
        raise ValidationError(f"--since {since} is after --until {until}", since)
    sort_field, descending = check_sort(sort or "id")
    wanted = store.LeadFilter(
        statuses=tuple(dict.fromkeys(check_status(s) for s in _many(status))),
        assigned_to=tuple(n.lower() for n in executives if n.lower() != UNASSIGNED),
        unassigned=any(n.lower() == UNASSIGNED for n in executives),
        sources=tuple(name.lower() for name in sources),
        since=start,
        until=end,
        search=(search or "").strip() or None,
        company=(company or "").strip() or None,
        sort=sort_field,
        descending=descending,
        limit=limit,
        fields=check_fields(fields, _declared_custom_fields(app)),
    )
    with app.db.transaction(write=False) as session:
        return store.summaries(session, wanted)


def _many(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def parse_when(value: str, option: str, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time as aware UTC; a bare date is its first moment (its last,
    for the end of a range: ``--until 2026-11-30`` includes that day). A time without an
    offset is UTC, as every time leadmail stores."""
    text = value.strip()
    try:
        if len(text) <= 10:  # 2026-11-30 (or 20261130): a whole day
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max if end_of_day else time.min)
        else:
            moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise ValidationError(
            f"--{option}: not a date or date-time: {value!r} (give 2026-11-30 or "
            "2026-11-30T09:30, optionally with +02:00)",
            value,
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def check_sort(value: str) -> tuple[str, bool]:
    """``name`` ascending, ``-name`` descending; an unknown field refused naming the known."""
    text = value.strip().lower()
    descending = text.startswith("-")
    field = text.lstrip("+-")
    if field not in store.SORT_COLUMNS:
        raise ValidationError(
            f"unknown sort field {value!r}; one of: {', '.join(SORT_FIELDS)} "
            "(prefix - for descending, e.g. -created_at)",
            value,
        )
    return field, descending


def check_fields(names: Sequence[str], declared: set[str] | None = None) -> tuple[str, ...]:
    """Each ``--field`` as its public name, duplicates dropped, or ``custom.KEY``.

    ``declared`` holds the custom fields the config declares; when it is None (nothing
    declared) any ``custom.KEY`` is accepted and shows what the leads hold under KEY.
    """
    checked: list[str] = []
    for given in names:
        text = given.strip()
        if text.lower().startswith(store.CUSTOM_PREFIX):
            key = text[len(store.CUSTOM_PREFIX) :].strip()
            if not key or (declared is not None and key not in declared):
                known = ", ".join(sorted(declared or ())) or "none declared"
                raise ValidationError(f"unknown custom field {given!r} (declared: {known})", given)
            checked.append(store.CUSTOM_PREFIX + key)
            continue
        name = FIELD_ALIASES.get(text.lower(), text.lower())
        if name not in store.FIELD_ATTRIBUTES:
            raise ValidationError(
                f"unknown field {given!r}; one of: {', '.join(FIELD_NAMES)}, "
                f"{', '.join(FIELD_ALIASES)} or custom.KEY",
                given,
            )
        checked.append(name)
    return tuple(dict.fromkeys(checked))


def _declared_custom_fields(app: App) -> set[str] | None:
    """The names of the custom fields ``[[leads.custom_fields]]`` declares; None if none."""
    declared = getattr(app.settings.leads, "custom_fields", None) or []
    names = {
        str(getattr(d, "name", None) or (d.get("name") if isinstance(d, dict) else ""))
        for d in declared
    }
    names.discard("")
    return names or None


def lead_detail(app: App, lead_id: int) -> dict[str, Any]:
    with app.db.transaction(write=False) as session:
        messages = store.messages(session, lead_id)
        detail = store.detail(session, lead_id, len(messages))
        if detail is None:
            raise NotFoundError(f"no lead {lead_id}", lead_id)
        detail["timeline"] = _timeline(
            messages,
            store.status_changes(session, lead_id),
            store.comments(session, lead_id),
            store.activities(session, lead_id),
        )
        return detail


# Entries recorded at the same moment (one message's transaction) read in cause order: the
# message, the status it set, the assignment it got.
_TYPE_ORDER = {"message": 0, "status": 1, "assignment": 2, "activity": 3, "comment": 4}


def _timeline(
    messages: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    comments: list[dict[str, Any]],
    activities: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """What happened to the lead, in the order it happened.

    ``at`` is when leadmail recorded each entry (a message: when it was received and
    stored). A message's own Date header is ``date``, shown beside it and never the sort
    key: a sender can write any Date (1999, 2099), and the timeline must not reorder on it.
    """
    keyed: list[tuple[tuple[datetime, int, int], dict[str, Any]]] = []

    def add(kind: str, row: dict[str, Any]) -> None:
        at, row_id = row["at"], row["id"]
        fields = {k: v for k, v in row.items() if k not in ("id", "at")}
        entry = {"at": at.isoformat(), "type": kind, **fields}
        keyed.append(((at, _TYPE_ORDER[kind], row_id), entry))

    for m in messages:
        add("message", m)
    for change in changes:
        add("status", change)
    for comment in comments:
        add("comment", comment)
    for act in activities:
        add("assignment" if act["kind"] == "assignment" else "activity", act)
    keyed.sort(key=lambda pair: pair[0])
    return [entry for _, entry in keyed]
