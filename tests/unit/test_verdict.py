"""judge(): is this a lead and whose, decided from a message's bytes alone (no server)."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.corpus import CORPUS
from worker.errors import ParseError
from worker.mail.addresses import is_no_reply
from worker.mail.classify import Kind, OwnIdentity
from worker.mail.parse import parse
from worker.mail.verdict import MailPolicy, Verdict, judge

OURS = MailPolicy(
    own=OwnIdentity(
        addresses=frozenset({"sales@northwind.example"}),
        message_id_domains=frozenset({"northwind.example"}),
    )
)
HUMAN = "no bounce, report, auto-reply, list or loop evidence"


def mail(
    sender: str | None = "Jane Buyer <jane@acme-industrial.example>",
    *,
    subject: str = "Quote for 200 office chairs",
    body: str = "Hello, could you send a quote for 200 chairs?\n",
    message_id: str = "<enquiry-1@acme-industrial.example>",
    **headers: str,
) -> bytes:
    msg = EmailMessage()
    if sender is not None:
        msg["From"] = sender
    msg["To"] = "sales@northwind.example"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def verdict_of(data: bytes, policy: MailPolicy = OURS) -> Verdict:
    return judge(parse(data), policy)


def test_an_enquiry_is_a_lead_from_its_sender() -> None:
    verdict = verdict_of(mail())
    assert verdict.kind is Kind.HUMAN
    assert verdict.may_lead and not verdict.follows_thread
    sender = verdict.sender
    assert sender.address is not None and sender.address.name == "Jane Buyer"
    assert sender.key == "jane@acme-industrial.example"
    assert (sender.org, sender.company) == ("acme-industrial.example", "Acme Industrial")
    assert sender.found_by == "From"
    assert verdict.reasons == (HUMAN,)


def test_free_mail_sender_has_no_organisation() -> None:
    verdict = verdict_of(mail("Ben <Ben.Okafor@GMail.com>"))
    assert verdict.may_lead
    assert verdict.sender.key == "ben.okafor@gmail.com"
    assert (verdict.sender.org, verdict.sender.company) == (None, None)


def test_a_web_form_relay_gives_the_lead_to_the_reply_to() -> None:
    data = mail(
        "Website <no-reply@forms.example>",
        subject="New contact form submission",
        Reply_To="Somchai <somchai@siam-trading.example>",
    )
    verdict = verdict_of(data)
    assert verdict.may_lead
    assert verdict.sender.key == "somchai@siam-trading.example"
    assert verdict.sender.org == "siam-trading.example"
    assert verdict.reasons == (
        HUMAN,
        "sender: Reply-To (From no-reply@forms.example is a relay)",
    )


def test_a_relay_that_names_nobody_is_no_lead() -> None:
    verdict = verdict_of(mail("Notifier <no-reply@saas.example>", body="Nothing to see.\n"))
    assert verdict.kind is Kind.HUMAN
    assert not verdict.may_lead and not verdict.follows_thread
    assert verdict.reasons[-1] == (
        "sender no-reply@saas.example is a no-reply address: nobody to contact"
    )


def test_a_sender_no_reply_by_display_name_only_is_no_lead() -> None:
    """The address looks like a mailbox; the name says nobody reads it."""
    verdict = verdict_of(mail("ห้ามตอบกลับ <info@shop.example>", body="Your order shipped.\n"))
    assert not verdict.may_lead
    assert verdict.reasons[-1].endswith("is a no-reply address: nobody to contact")


@pytest.mark.parametrize(
    "relay",
    [
        "Formulaire <ne-pas-repondre@site.example>",
        "Formulario <no-responder@site.example>",
        "Formulário <nao-responda@site.example>",
        "Kontaktformular <nicht-antworten@site.example>",
        "Modulo <non-rispondere@site.example>",
        "Formulier <niet-beantwoorden@site.example>",
        "お問い合わせ 返信不可 <form@site.example>",
    ],
)
def test_a_relay_in_any_language_gives_the_lead_to_the_reply_to(relay: str) -> None:
    verdict = verdict_of(mail(relay, Reply_To="Ana Lima <ana@lima-foods.example>"))
    assert verdict.may_lead
    assert verdict.sender.key == "ana@lima-foods.example"


def test_spam_is_no_lead_whoever_sent_it() -> None:
    verdict = verdict_of(mail(X_Spam_Flag="YES"))
    assert verdict.kind is Kind.HUMAN and verdict.classification.spam
    assert not verdict.may_lead and not verdict.follows_thread
    assert verdict.reasons[-1] == "spam: not a lead"
    assert verdict.sender.key == "jane@acme-industrial.example"  # still known, for the record


def test_no_sender_address_is_no_lead() -> None:
    verdict = verdict_of(mail(None))
    assert verdict.sender.address is None and verdict.sender.key == ""
    assert not verdict.may_lead
    assert verdict.reasons[-1] == "no sender address"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (
            mail(
                "Mail Delivery System <MAILER-DAEMON@mx.acme-industrial.example>",
                subject="Undelivered Mail Returned to Sender",
                body="This is the mail system. I'm sorry to have to inform you that your "
                "message could not be delivered to one or more recipients.\n",
            ),
            Kind.BOUNCE,
        ),
        (mail(subject="Automatic reply: Quote", Auto_Submitted="auto-replied"), Kind.AUTO_REPLY),
        (mail(List_Id="<news.list.example>", List_Unsubscribe="<mailto:u@x>"), Kind.LIST),
        (mail("Sales <sales@northwind.example>"), Kind.OWN),
    ],
    ids=["bounce", "auto-reply", "list", "own"],
)
def test_machine_mail_is_never_a_lead_but_follows_its_thread(data: bytes, kind: Kind) -> None:
    verdict = verdict_of(data)
    assert verdict.kind is kind
    assert not verdict.may_lead and verdict.follows_thread
    assert verdict.reasons[-1] == f"{kind.value}: never a lead"


def test_a_form_on_our_own_site_is_a_lead_for_the_outside_sender() -> None:
    data = mail(
        "Website <no-reply@northwind.example>",
        subject="Contact form",
        message_id="<form-1@northwind.example>",
        Reply_To="Ana <ana@client-co.example>",
    )
    verdict = verdict_of(data)
    assert verdict.kind is Kind.HUMAN
    assert verdict.may_lead
    assert verdict.sender.key == "ana@client-co.example"
    assert "relay for an outside sender" in verdict.reasons
    # Without a relay our own domain's mail stays ours.
    own = verdict_of(mail("Bob <bob@northwind.example>", message_id="<o2@northwind.example>"))
    assert own.kind is Kind.OWN and not own.may_lead


def test_the_policy_decides_who_we_are() -> None:
    data = mail("Sales <sales@northwind.example>")
    assert verdict_of(data, MailPolicy()).may_lead  # a stranger's address without a policy
    assert not verdict_of(data, OURS).may_lead


def _corpus() -> list[Path]:
    return sorted(CORPUS.rglob("*.eml"))


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_corpus_verdict_is_consistent(path: Path) -> None:
    """A lead only from human, non-spam mail with an answerable sender; always with reasons."""
    try:
        msg = parse(path.read_bytes())
    except ParseError:
        return  # not mail at all: quarantined before any verdict
    verdict = judge(msg, OURS)
    assert verdict.reasons
    assert verdict.follows_thread == (verdict.kind is not Kind.HUMAN)
    if verdict.may_lead:
        assert verdict.kind is Kind.HUMAN and not verdict.classification.spam
        assert verdict.sender.address is not None and verdict.sender.key
        assert not is_no_reply(verdict.sender.key)
    else:
        assert verdict.reasons[-1].endswith(
            ("never a lead", "not a lead", "no sender address", "nobody to contact")
        )
