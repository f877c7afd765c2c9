"""Mail back from our outbound mail: replies thread and reopen the lead, bounces mark the
address, and mail the executives sent from their own client (a Sent folder) is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.integration.conftest import settings_for
from tests.integration.helpers import make_mail
from worker.mail.message import RawMessage
from worker.mail.parse import parse
from worker.services.context import App
from worker.services.intake import Intake
from worker.services.leads import lead_detail
from worker.services.outbound import ACCOUNT as OUTBOX_ACCOUNT
from worker.store import blobs, inbound, outbox, schema
from worker.store.models import (
    Activity,
    Lead,
    LeadStatus,
    Message,
    OutboxStatus,
    Outcome,
    StatusChange,
    utcnow,
)

OURS = "mail.northwind.example"


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    settings = settings_for(
        db_url,
        tmp_path,
        own_addresses=["sales@northwind.example"],
        own_domains=[OURS],
    )
    application = App.from_settings(settings)
    schema.upgrade(application.db.engine)
    yield application
    application.close()


def raw(data: bytes, account: str = "local", folder: str | None = None) -> RawMessage:
    return RawMessage(data=data, source=f"{account}/{folder or ''}", account=account, folder=folder)


def new_lead(app: App) -> int:
    result = Intake(app).process(raw(make_mail()))
    assert result.outcome is Outcome.CREATED and result.lead_id is not None
    return result.lead_id


def record_outbound(app: App, lead_id: int, message_id: str, to: str, cc: str | None = None) -> int:
    """What services/outbound.py stores for a mail it queues: a direction "out" row on the
    lead (account "outbox") and its outbox row, here as sent; the lead moved to Replied as
    delivery does. Returns the outbox row's id."""
    data = make_mail(
        sender="Alice Seller <alice@northwind.example>",
        to=to,
        cc=cc,
        subject="Re: Quote for 200 office chairs",
        message_id=f"<{message_id}>",
        in_reply_to="<enquiry-1@acme-industrial.example>",
    )
    msg = parse(data)
    row = inbound.message_row(RawMessage(data, "outbox", OUTBOX_ACCOUNT), msg, len(data))
    now = utcnow()
    stored = app.blobs.put(data)
    digest = stored.digests[0]
    with app.db.begin() as conn:
        blobs.record(conn, stored.refs)
        row_id = inbound.insert_message(
            conn,
            {**row, "direction": "out"},
            kind="own",
            outcome="outbound",
            reasons=[],
            raw_sha256=digest,
            lead_id=lead_id,
            now=now,
        )
        inbound.set_lead_status(conn, lead_id, LeadStatus.REPLIED.value, now)
    with app.db.transaction() as session:
        return outbox.insert(
            session,
            lead_id=lead_id,
            message_row_id=row_id,
            message_id=message_id,
            envelope_from="sales@northwind.example",
            recipients=[to, *([cc] if cc else [])],
            subject="Re: Quote for 200 office chairs",
            raw_sha256=digest,
            status=OutboxStatus.SENT,
            sent_at=now,
        )


def status_of(app: App, lead_id: int) -> str:
    return str(lead_detail(app, lead_id)["status"])


def last_cause(app: App, lead_id: int) -> str:
    with app.db.transaction(write=False) as s:
        change = s.scalars(
            select(StatusChange)
            .where(StatusChange.lead_id == lead_id)
            .order_by(StatusChange.id.desc())
        ).first()
        assert change is not None
        return change.cause


def lead_count(app: App) -> int:
    with app.db.transaction(write=False) as s:
        return len(s.scalars(select(Lead.id)).all())


# -- replies ------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["In-Reply-To", "References"])
def test_reply_to_our_outbound_mail_threads_and_reopens(app: App, header: str) -> None:
    lead_id = new_lead(app)
    our_id = f"L{lead_id}-x.1@{OURS}"
    record_outbound(app, lead_id, our_id, "jane@acme-industrial.example")
    assert status_of(app, lead_id) == "Replied"
    reply = make_mail(
        subject="Re: Re: Quote for 200 office chairs",
        message_id="<reply-1@acme-industrial.example>",
        # A client that writes only References still names our mail (its last entry).
        **(
            {"in_reply_to": f"<{our_id}>"}
            if header == "In-Reply-To"
            else {"references": f"<enquiry-1@acme-industrial.example> <{our_id}>"}
        ),
    )
    result = Intake(app).process(raw(reply))
    assert result.outcome is Outcome.THREADED and result.lead_id == lead_id
    assert result.kind == "human"  # our id in its References does not make it our own mail
    assert any("In-Reply-To/References" in r for r in result.reasons)
    assert status_of(app, lead_id) == "Open"
    assert last_cause(app, lead_id) == "reply from jane@acme-industrial.example"


def test_reply_naming_only_our_token_threads(app: App) -> None:
    """Our Message-ID carries the lead's signed token: a reply threads by it even when the
    row of the mail it answers is not there (another installation's copy, a wiped row)."""
    lead_id = new_lead(app)
    with app.db.begin() as conn:
        inbound.set_lead_status(conn, lead_id, LeadStatus.REPLIED.value, utcnow())
    token_id = f"{app.signer.token(lead_id)}.7f3a@{OURS}"
    reply = make_mail(
        subject="Re: your offer",
        message_id="<reply-2@acme-industrial.example>",
        in_reply_to=f"<{token_id}>",
    )
    result = Intake(app).process(raw(reply))
    assert result.outcome is Outcome.THREADED and result.lead_id == lead_id
    assert any("lead token" in r for r in result.reasons)
    assert status_of(app, lead_id) == "Open"


def test_a_forged_token_buys_no_thread(app: App) -> None:
    lead_id = new_lead(app)
    reply = make_mail(
        sender="Mallory <mallory@evil.example>",
        subject="Re: your offer",
        message_id="<m-1@evil.example>",
        in_reply_to=f"<L{lead_id}-aaaaaaaa.1@{OURS}>",
    )
    result = Intake(app).process(raw(reply))
    assert result.outcome is Outcome.CREATED and result.lead_id != lead_id


def test_out_of_office_answer_to_our_mail_links_but_leaves_status(app: App) -> None:
    lead_id = new_lead(app)
    our_id = f"L{lead_id}-x.2@{OURS}"
    record_outbound(app, lead_id, our_id, "jane@acme-industrial.example")
    away = make_mail(
        subject="Automatic reply: Re: Quote for 200 office chairs",
        message_id="<ooo-1@acme-industrial.example>",
        in_reply_to=f"<{our_id}>",
        headers={"Auto-Submitted": "auto-replied"},
        body="I am out of the office until Monday.\n",
    )
    result = Intake(app).process(raw(away))
    assert result.outcome is Outcome.IGNORED and result.lead_id == lead_id
    assert status_of(app, lead_id) == "Replied"


def test_our_own_message_id_on_the_message_itself_is_own(app: App) -> None:
    """A copy of our own mail coming back in (Bcc to the watched box) is a loop, not a reply."""
    lead_id = new_lead(app)
    loop = make_mail(
        sender="Alice Seller <alice@northwind.example>",
        to="jane@acme-industrial.example",
        message_id=f"<L{lead_id}-x.9@{OURS}>",
        in_reply_to="<enquiry-1@acme-industrial.example>",
    )
    result = Intake(app).process(raw(loop))
    assert result.outcome is Outcome.IGNORED and result.kind == "own"


# -- bounces ------------------------------------------------------------------------------


def bounce(our_id: str, failed: str, action: str = "failed") -> bytes:
    """An Exim-style notice: X-Failed-Recipients, our mail's headers quoted after a marker."""
    return make_mail(
        sender="Mail Delivery System <Mailer-Daemon@mx.northwind.example>",
        to="alice@northwind.example",
        subject="Mail delivery failed: returning message to sender",
        message_id=f"<bounce-{our_id}>",
        headers={"X-Failed-Recipients": failed} if action == "failed" else {},
        body=(
            "This message was created automatically by mail delivery software.\n\n"
            + (
                "A message that you sent could not be delivered to one or more of its\n"
                f"recipients. This is a permanent error. The following address(es) failed:\n\n"
                f"  {failed}\n    550 5.1.1 User unknown\n\n"
                if action == "failed"
                else "Warning: message delayed; still being retried\n\n"
            )
            + "------ This is a copy of the message, including all the headers. ------\n\n"
            f"From: alice@northwind.example\nTo: {failed}\nMessage-ID: <{our_id}>\n\nHello\n"
        ),
    )


def bouncing(app: App, lead_id: int) -> bool:
    with app.db.transaction(write=False) as s:
        lead = s.get(Lead, lead_id)
        assert lead is not None
        return lead.email_bouncing


def bounce_log(app: App, lead_id: int) -> list[str]:
    with app.db.transaction(write=False) as s:
        rows = s.scalars(
            select(Activity).where(Activity.lead_id == lead_id, Activity.kind == "bounce")
        ).all()
        return [a.summary for a in rows]


def test_bounce_of_our_mail_marks_outbox_row_and_lead_address(app: App) -> None:
    lead_id = new_lead(app)
    our_id = f"L{lead_id}-x.4@{OURS}"
    outbox_id = record_outbound(app, lead_id, our_id, "Jane Buyer <jane@acme-industrial.example>")
    result = Intake(app).process(raw(bounce(our_id, "jane@acme-industrial.example")))
    assert result.outcome is Outcome.IGNORED and result.kind == "bounce"
    assert result.lead_id == lead_id
    assert f"bounce marks lead(s) {lead_id} as bouncing" in result.reasons
    with app.db.transaction(write=False) as session:
        row = outbox.get(session, outbox_id)
        assert row is not None
        assert row["status"] == "bounced"
        assert row["last_error"].startswith(f"bounce bounce-{our_id}")
        sent = session.scalars(select(Message).where(Message.message_id == our_id)).one()
        assert sent.bounced
    assert bouncing(app, lead_id)
    assert bounce_log(app, lead_id) == [
        f"mail {our_id} bounced: jane@acme-industrial.example failed; "
        "the address is marked bouncing"
    ]
    # In `leads show`: the bounce on the timeline, after our mail, and the flag.
    detail = lead_detail(app, lead_id)
    assert detail["email_bouncing"] is True
    assert [e["type"] for e in detail["timeline"]][-2:] == ["message", "activity"]


def test_bounce_of_a_cc_colleague_leaves_the_leads_address_alone(app: App) -> None:
    lead_id = new_lead(app)
    our_id = f"L{lead_id}-x.5@{OURS}"
    outbox_id = record_outbound(
        app, lead_id, our_id, "jane@acme-industrial.example", cc="bob@acme-industrial.example"
    )
    result = Intake(app).process(raw(bounce(our_id, "bob@acme-industrial.example")))
    assert result.lead_id == lead_id
    assert not bouncing(app, lead_id)
    with app.db.transaction(write=False) as session:
        assert (outbox.get(session, outbox_id) or {})["status"] == "bounced"
    [line] = bounce_log(app, lead_id)
    assert "bob@acme-industrial.example failed, not the lead's address" in line


def test_delay_notice_links_but_marks_nothing(app: App) -> None:
    lead_id = new_lead(app)
    our_id = f"L{lead_id}-x.6@{OURS}"
    outbox_id = record_outbound(app, lead_id, our_id, "jane@acme-industrial.example")
    result = Intake(app).process(
        raw(bounce(our_id, "jane@acme-industrial.example", action="delayed"))
    )
    assert result.kind == "bounce" and result.lead_id == lead_id
    assert not bouncing(app, lead_id)
    with app.db.transaction(write=False) as session:
        assert (outbox.get(session, outbox_id) or {})["status"] == "sent"
    assert bounce_log(app, lead_id) == []


def test_bounce_of_mail_from_the_sent_folder_marks_the_lead(app: App) -> None:
    """Mail the executive sent from their own client has no outbox row; its bounce still
    marks the lead's address."""
    lead_id = new_lead(app)
    assert sent(app, sent_mail()) is Outcome.THREADED
    Intake(app).process(raw(bounce("sent-1@northwind.example", "jane@acme-industrial.example")))
    assert bouncing(app, lead_id)


def test_bounce_naming_mail_we_never_sent_marks_nothing(app: App) -> None:
    lead_id = new_lead(app)
    result = Intake(app).process(
        raw(bounce("someone-else@elsewhere.example", "jane@acme-industrial.example"))
    )
    assert result.lead_id is None
    assert not bouncing(app, lead_id)


# -- Sent folders ---------------------------------------------------------------------------


def sent_mail(
    to: str = "Jane Buyer <jane@acme-industrial.example>",
    message_id: str = "<sent-1@northwind.example>",
    **extra: str,
) -> bytes:
    return make_mail(
        sender="Alice Seller <alice@northwind.example>",
        to=to,
        subject="Re: Quote for 200 office chairs",
        message_id=message_id,
        body="Dear Jane, our offer is attached.\n",
        **extra,  # type: ignore[arg-type]
    )


def sent(app: App, data: bytes) -> Outcome | None:
    result = Intake(app, sent=True).process(raw(data, "sales", "Sent"))
    return result.outcome


def out_rows(app: App) -> list[Message]:
    with app.db.transaction(write=False) as s:
        rows = s.scalars(select(Message).where(Message.direction == "out")).all()
        s.expunge_all()
        return list(rows)


def test_sent_mail_to_the_lead_is_outbound_and_moves_it_to_replied(app: App) -> None:
    lead_id = new_lead(app)
    result = Intake(app, sent=True).process(raw(sent_mail(), "sales", "Sent"))
    assert result.outcome is Outcome.THREADED and result.lead_id == lead_id
    assert result.kind == "own"
    [row] = out_rows(app)
    assert (row.lead_id, row.account, row.folder, row.outcome) == (
        lead_id,
        "sales",
        "Sent",
        "threaded",
    )
    assert status_of(app, lead_id) == "Replied"
    assert last_cause(app, lead_id) == ("sent mail sent-1@northwind.example found in sales/Sent")
    timeline = lead_detail(app, lead_id)["timeline"]
    assert [e["direction"] for e in timeline if e["type"] == "message"] == ["in", "out"]
    # The executive is one of us, not a participant of the lead.
    with app.db.begin() as conn:
        assert not inbound.is_contact(conn, lead_id, "alice@northwind.example")


def test_the_leads_answer_to_sent_mail_reopens_it(app: App) -> None:
    lead_id = new_lead(app)
    assert sent(app, sent_mail()) is Outcome.THREADED
    answer = make_mail(
        subject="Re: Re: Quote for 200 office chairs",
        message_id="<answer-1@acme-industrial.example>",
        in_reply_to="<sent-1@northwind.example>",
    )
    result = Intake(app).process(raw(answer))
    assert result.outcome is Outcome.THREADED and result.lead_id == lead_id
    assert status_of(app, lead_id) == "Open"


def test_sent_mail_to_nobody_we_know_makes_no_lead(app: App) -> None:
    result = Intake(app, sent=True).process(raw(sent_mail(to="bob@supplier.example")))
    assert result.outcome is Outcome.IGNORED and result.lead_id is None
    assert "thread: sent mail to no lead" in result.reasons
    assert lead_count(app) == 0
    [row] = out_rows(app)
    assert row.outcome == "ignored"


def test_leadmails_own_copy_in_the_sent_folder_is_not_recorded_twice(app: App) -> None:
    lead_id = new_lead(app)
    our_id = f"L{lead_id}-x.3@{OURS}"
    record_outbound(app, lead_id, our_id, "jane@acme-industrial.example")
    result = Intake(app, sent=True).process(raw(sent_mail(message_id=f"<{our_id}>")))
    assert result.outcome is Outcome.DUPLICATE and result.lead_id == lead_id
    assert result.reasons[0].startswith("leadmail's own outbound mail")
    assert len(out_rows(app)) == 1
    # Read again (a new UIDVALIDITY), a Sent-folder message is a duplicate too.
    assert sent(app, sent_mail(message_id="<sent-2@northwind.example>")) is Outcome.THREADED
    again = Intake(app, sent=True).process(
        raw(sent_mail(message_id="<sent-2@northwind.example>", cc="x@y.example"))
    )
    assert again.outcome is Outcome.DUPLICATE
    assert again.reasons[0].startswith("sent mail already recorded")


def test_sent_mail_threads_by_reference_and_to_a_contact(app: App) -> None:
    lead_id = new_lead(app)
    # To a colleague at the lead's company, out of any thread: the colleague is nobody's
    # address, and the company's domain alone never picks a lead.
    colleague = sent_mail(to="bob@acme-industrial.example", message_id="<sent-3@northwind.example>")
    assert sent(app, colleague) is Outcome.IGNORED
    # The same colleague in a reply to the lead's thread: threaded, and it is the lead's side.
    threaded = sent_mail(
        to="bob@acme-industrial.example",
        message_id="<sent-4@northwind.example>",
        in_reply_to="<enquiry-1@acme-industrial.example>",
    )
    assert sent(app, threaded) is Outcome.THREADED
    assert status_of(app, lead_id) == "Replied"


def test_sent_forward_to_an_outsider_stays_on_the_lead_without_a_status_change(
    app: App,
) -> None:
    lead_id = new_lead(app)
    forward = sent_mail(
        to="carol@logistics.example",
        message_id="<sent-5@northwind.example>",
        references="<enquiry-1@acme-industrial.example>",
    )
    result = Intake(app, sent=True).process(raw(forward))
    assert result.outcome is Outcome.THREADED and result.lead_id == lead_id
    assert "not sent to the lead's side: no status change" in result.reasons
    assert status_of(app, lead_id) == "Lead"


def test_sent_mail_never_moves_a_closed_lead(app: App) -> None:
    lead_id = new_lead(app)
    with app.db.begin() as conn:
        inbound.set_lead_status(conn, lead_id, LeadStatus.DO_NOT_CONTACT.value, utcnow())
    assert sent(app, sent_mail()) is Outcome.THREADED
    assert status_of(app, lead_id) == "Do Not Contact"


def test_sent_mail_to_a_contact_of_the_lead_finds_the_lead(app: App) -> None:
    lead_id = new_lead(app)
    with app.db.begin() as conn:
        inbound.add_contact(
            conn,
            lead_id,
            name="Bob",
            email="bob@acme-industrial.example",
            email_key="bob@acme-industrial.example",
            now=utcnow(),
        )
    result = Intake(app, sent=True).process(raw(sent_mail(to="Bob <bob@acme-industrial.example>")))
    assert result.outcome is Outcome.THREADED and result.lead_id == lead_id
    assert f"thread: sent to bob@acme-industrial.example, of lead {lead_id}" in result.reasons
    assert status_of(app, lead_id) == "Replied"
