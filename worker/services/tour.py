"""The demo tour: the lead commands a sales executive uses, shown once on the demo leads.

`make run` polls the demo inbox once, runs this, then starts `leadmail run`: a newcomer sees a
note, a logged call, a contact, an opportunity and a quotation (and the statuses they derive)
on a lead that came from mail, one mail queued to it (which `leadmail run` then sends:
the demo config's file transport writes it to leadmail-outbox/), and a Next Contact Date a
minute ahead (its reminder, with a calendar invitation, lands there too), without typing
anything.
It runs once per database: a lead that already carries the tour's note is left as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime

from worker.errors import ValidationError
from worker.services import contacts, notes, outbound, records
from worker.services.context import App
from worker.services.lead_fields import LeadEdit
from worker.services.leads import lead_detail, list_leads, set_lead
from worker.services.reminders import NextContact

# The demo inbox's wholesale enquiry (worker/demo.py): a B2B lead with a reply thread.
TOUR_LEAD_EMAIL = "priya.nair@greenleafmarkets.example"
TOUR_ACTOR = "demo"
TOUR_NOTE = "Demo tour: wholesale enquiry, wants a quote for the autumn range."


def run_tour(app: App) -> list[str]:
    """What the tour did, one line each (the commands a person would type for it)."""
    found = list_leads(app, search=TOUR_LEAD_EMAIL)
    if not found:
        return [f"demo tour: no lead for {TOUR_LEAD_EMAIL} yet (poll the demo inbox first)"]
    lead_id = int(found[0]["id"])
    detail = lead_detail(app, lead_id)
    if any(e.get("text") == TOUR_NOTE for e in detail["timeline"] if e["type"] == "comment"):
        return [f"demo tour: lead {lead_id} already shows it (leadmail leads show {lead_id})"]
    call_at = datetime.now(UTC).isoformat(timespec="seconds")
    notes.add_note(app, lead_id, TOUR_NOTE, TOUR_ACTOR)
    notes.add_activity(
        app,
        lead_id,
        kind="call",
        at=call_at,
        summary="Called Priya about volumes and delivery",
        actor=TOUR_ACTOR,
        duration="15",
        outcome="Send a quotation this week",
    )
    contacts.add_contact(
        app,
        lead_id,
        email="purchasing@greenleafmarkets.example",
        name="Greenleaf Purchasing",
        actor=TOUR_ACTOR,
    )
    opportunity = records.make_opportunity(
        app, lead_id, actor=TOUR_ACTOR, title="Autumn range", amount="12500", currency="EUR"
    )
    quotation = records.make_quotation(
        app, lead_id, actor=TOUR_ACTOR, amount="12500.00", currency="EUR"
    )
    mail = _queue_mail(app, lead_id)
    reminder = _set_reminder(app, lead_id)
    status = lead_detail(app, lead_id)["status"]
    return [
        f'leadmail leads note {lead_id} "{TOUR_NOTE}"',
        f"leadmail leads activity {lead_id} --kind call --at {call_at} --duration 15 ...",
        f"leadmail contacts add {lead_id} --email purchasing@greenleafmarkets.example",
        f"leadmail leads make opportunity {lead_id} --amount 12500 --currency EUR"
        f"  -> opportunity {opportunity['id']}",
        f"leadmail leads make quotation {lead_id} --amount 12500.00 --currency EUR"
        f"  -> quotation {quotation['id']}",
        *mail,
        *reminder,
        f"lead {lead_id} is now {status}: leadmail leads show {lead_id}",
    ]


TOUR_SUBJECT = "Your quotation for the autumn range"
TOUR_BODY = """Dear Priya,

thank you for your call. As promised, our quotation for the **autumn range**:

- 12,500.00 EUR for the volumes we discussed
- delivery within two weeks of your order

Kind regards
"""


TOUR_REMINDER = "+1m"
TOUR_REMINDER_NOTE = "Call Priya: did the quotation arrive?"


def _set_reminder(app: App, lead_id: int) -> list[str]:
    """A Next Contact Date a minute ahead for the lead's executive: `leadmail run` mails
    them the reminder with its calendar invitation (leadmail-outbox/, file transport)."""
    request = NextContact(TOUR_REMINDER, note=TOUR_REMINDER_NOTE)
    try:
        lead = set_lead(app, lead_id, LeadEdit(), None, TOUR_ACTOR, next_contact=request)
    except ValidationError as exc:  # unassigned lead, no rule file: the rest still shows
        return [f"demo tour: no reminder: {exc}"]
    ids = [r["id"] for r in lead.get("reminders") or []]
    return [
        f'leadmail leads set {lead_id} --next-contact-date {TOUR_REMINDER} --note "..."'
        f"  -> reminder {ids[0] if ids else '?'} for {lead['next_contact_by']}",
        "leadmail reminders list  (in a minute leadmail run mails it, with its .ics, to "
        f"{app.settings.smtp.file_path}/)",
    ]


def _queue_mail(app: App, lead_id: int) -> list[str]:
    """One mail to the lead, from its executive, threaded onto its conversation."""
    request = outbound.SendRequest(
        subject=TOUR_SUBJECT, body=TOUR_BODY, lead_id=lead_id, markdown=True, actor=TOUR_ACTOR
    )
    try:
        queued = outbound.queue_mail(app, request)
    except ValidationError as exc:  # no sender address configured: the rest still shows
        return [f"demo tour: no outbound mail: {exc}"]
    return [
        f'leadmail send --lead {lead_id} --subject "{TOUR_SUBJECT}" --markdown --body ...'
        f"  -> outbox {queued.outbox_id} <{queued.message_id}>",
        "leadmail outbox list  (leadmail run sends it; see leadmail outbox show "
        f"{queued.outbox_id})",
    ]
