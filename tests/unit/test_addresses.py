"""Address normalisation, free mail, no-reply and relays, the lead's sender, organisations."""

from __future__ import annotations

import pytest

from worker.mail.addresses import (
    DEFAULT_RELAY_PATTERNS,
    FREE_MAIL_DOMAINS,
    LeadSender,
    SenderPolicy,
    email_key,
    guess_organization,
    is_free_mail,
    is_no_reply,
    is_relay,
    lead_sender,
    no_reply_phrase,
    normalize_email,
    organization_domain,
)
from worker.mail.message import Address, InboundMessage


def _msg(
    from_: tuple[Address, ...] = (),
    reply_to: tuple[Address, ...] = (),
    text: str = "",
    html: str = "",
) -> InboundMessage:
    return InboundMessage(
        message_id="m@x.example",
        content_hash="0" * 64,
        size=0,
        subject="New form submission",
        from_=from_,
        reply_to=reply_to,
        to=(Address("", "sales@ours.example"),),
        text=text,
        html=html,
    )


# --- normalize_email / email_key ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Jane.Doe@ACME.Com", "Jane.Doe@acme.com"),
        ("  <Jane.Doe@ACME.Com>  ", "Jane.Doe@acme.com"),
        ("Jane Doe <jane@Acme.co.UK>", "jane@acme.co.uk"),
        ("mailto:Bob@Example.ORG?subject=Hello", "Bob@example.org"),
        ("MAILTO:bob@example.org", "bob@example.org"),
        ("somchai@ตัวอย่าง.ไทย", "somchai@xn--72c1a1bt4awk9o.xn--o3cw4h"),
        ("user@bücher.de", "user@xn--bcher-kva.de"),
        ("jane@acme.com.", "jane@acme.com"),
        ("not an address", ""),
        ("", ""),
        ("@acme.com", ""),
        ("jane@", ""),
        ("jane doe@acme.com", ""),
        ("jane@acme..com", ""),
        ("jane@-acme.com", ""),
    ],
)
def test_normalize_email(value: str, expected: str) -> None:
    assert normalize_email(value) == expected


def test_email_key_lower_cases_everything() -> None:
    assert email_key("<Jane.Doe@ACME.com>") == "jane.doe@acme.com"
    assert email_key("nonsense") == ""


# --- free mail ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain",
    [
        "gmail.com",
        "GMAIL.COM",
        "googlemail.com",
        "yahoo.co.th",
        "yahoo.co.jp",
        "yahoo.co.uk",
        "hotmail.co.th",
        "outlook.com",
        "live.com",
        "gmx.de",
        "web.de",
        "qq.com",
        "163.com",
        "naver.com",
        "proton.me",
        "protonmail.com",
        "icloud.com",
        "mail.ru",
        "yandex.ru",
        "jane@gmail.com",  # an address is accepted too
        "mx.gmail.com",  # subdomains of a free domain count
    ],
)
def test_free_mail(domain: str) -> None:
    assert is_free_mail(domain)


@pytest.mark.parametrize(
    "domain", ["acme.com", "notgmail.com", "gmail.com.evil.example", "", "scg.co.th"]
)
def test_not_free_mail(domain: str) -> None:
    assert not is_free_mail(domain)


def test_extra_free_mail_from_policy() -> None:
    policy = SenderPolicy(extra_free_mail=frozenset({"isp.example"}))
    assert is_free_mail("mail.isp.example", policy)
    assert not is_free_mail("mail.isp.example")


def test_free_mail_list_is_concrete_domains() -> None:
    assert len(FREE_MAIL_DOMAINS) > 200
    for domain in FREE_MAIL_DOMAINS:
        assert "*" not in domain and "." in domain and domain == domain.lower(), domain


# --- no-reply and relays --------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        "noreply@site.example",
        "no-reply@site.example",
        "No_Reply@site.example",
        "do-not-reply@site.example",
        "donotreply@site.example",
        "MAILER-DAEMON@mx.example",
        "postmaster@acme.example",
        "bounces+1234@mg.example",
        "sales-bounces@lists.example",
        "noreply-forms@webflow.example",
    ],
)
def test_no_reply(email: str) -> None:
    assert is_no_reply(email)


@pytest.mark.parametrize(
    "email", ["jane@acme.example", "noreen@acme.example", "replies@acme.example"]
)
def test_not_no_reply(email: str) -> None:
    assert not is_no_reply(email)


@pytest.mark.parametrize(
    "email",
    [
        "noreply@shop.example",
        "No-Reply@Shop.example",
        "wordpress@shop.example",
        "forms@shop.example",
        "x1@formspree.io",
        "notifications@typeform.com",
        "form@jotform.com",
        "no-reply@wufoo.com",
        "noreply@notifications.hubspot.com",
    ],
)
def test_default_relays(email: str) -> None:
    assert is_relay(email, SenderPolicy())


def test_not_relay() -> None:
    assert not is_relay("jane@acme.example", SenderPolicy())
    assert not is_relay("", SenderPolicy())
    assert not is_relay("noreply@shop.example", SenderPolicy(relay_patterns=()))


def test_custom_relay_patterns() -> None:
    policy = SenderPolicy(relay_patterns=(*DEFAULT_RELAY_PATTERNS, "leads@*.crm.example"))
    assert is_relay("Leads@eu.crm.example", policy)


# --- lead_sender ----------------------------------------------------------------------------

JANE = Address("Jane Doe", "jane@acme.co.uk")
RELAY = Address("My Shop", "noreply@shop.example")


def test_lead_sender_is_from() -> None:
    assert lead_sender(_msg(from_=(JANE,))) == LeadSender(JANE, "From")


def test_web_form_notification_uses_reply_to() -> None:
    result = lead_sender(_msg(from_=(RELAY,), reply_to=(JANE,)))
    assert result.address == JANE
    assert result.reason == "Reply-To (From noreply@shop.example is a relay)"


def test_person_with_reply_to_keeps_from() -> None:
    other = Address("", "jane.private@gmail.com")
    assert lead_sender(_msg(from_=(JANE,), reply_to=(other,))).address == JANE


def test_relay_without_reply_to_reads_the_form_fields() -> None:
    text = (
        "You have a new submission from Contact Us:\n\n"
        "Name: Somchai Jaidee\n"
        "Email: Somchai@SCG.co.th\n"
        "Phone: +66 2 123 4567\n"
        "Message: Please quote 200 units.\n"
    )
    result = lead_sender(_msg(from_=(Address("", "wordpress@shop.example"),), text=text))
    assert result.address == Address("Somchai Jaidee", "Somchai@scg.co.th")
    assert "Email:" in result.reason and "wordpress@shop.example" in result.reason


@pytest.mark.parametrize(
    "line",
    [
        "E-mail: jane@acme.co.uk",
        "Your email: jane@acme.co.uk",
        "Email Address: <jane@acme.co.uk>",
        "*Email:* mailto:jane@acme.co.uk",
    ],
)
def test_form_email_labels(line: str) -> None:
    result = lead_sender(_msg(from_=(RELAY,), text=f"New lead\n{line}\n"))
    assert result.address is not None
    assert result.address.email == "jane@acme.co.uk"


def test_form_fields_in_html_only_notification() -> None:
    html = "<table><tr><td><b>Email:</b> jane@acme.co.uk</td></tr></table>"
    result = lead_sender(_msg(from_=(RELAY,), html=html))
    assert result.address is not None and result.address.email == "jane@acme.co.uk"


def test_relay_reply_to_that_is_itself_no_reply_is_ignored() -> None:
    msg = _msg(from_=(RELAY,), reply_to=(RELAY,), text="Email: jane@acme.co.uk\n")
    result = lead_sender(msg)
    assert result.address is not None and result.address.email == "jane@acme.co.uk"


def test_relay_with_nothing_better_falls_back_to_from() -> None:
    result = lead_sender(_msg(from_=(RELAY,), text="Someone filled in the form."))
    assert result.address == RELAY
    assert result.reason.startswith("From (")


def test_no_from() -> None:
    assert lead_sender(_msg(reply_to=(JANE,))) == LeadSender(JANE, "Reply-To (no usable From)")
    assert lead_sender(_msg()).address is None


# --- no-reply in every language (issue 9, item 6) ------------------------------------------

# Local parts that say "do not reply", each language with several separators and cases.
NO_REPLY_LOCALS = [
    # English variants
    "donotreply", "do-not-reply", "Do_Not_Reply", "no_reply", "no.reply", "noreply+tag",
    "noreply2", "NoReplyShop", "orders-noreply", "dont-reply", "bounce-only", "bounceonly",
    "no-answer", "unmonitored",
    # French
    "ne-pas-repondre", "nepasrepondre", "NePasRepondre", "ne_pas_repondre", "ne.pas.repondre",
    "ne-repondez-pas", "ne-pas-repondre+commande",
    # Spanish
    "no-responder", "noresponder", "no_responda", "NO-CONTESTAR",
    # Portuguese
    "nao-responda", "naoresponda", "nao-responder", "nao_responder", "NaoResponda",
    # German
    "nicht-antworten", "nichtantworten", "bitte-nicht-antworten", "keine-antwort",
    "keineantwort", "Keine.Antwort",
    # Italian
    "non-rispondere", "nonrispondere", "non_rispondere",
    # Dutch
    "niet-beantwoorden", "nietbeantwoorden", "geen-antwoord", "geenantwoord",
    # Swedish, Danish, Norwegian
    "svara-inte", "svarainte", "ej-svar", "ejsvar", "ikke-svar", "ikkesvar", "svar-ikke",
    "svarikke",
    # Polish, Czech, Turkish, Finnish, Romanian
    "nie-odpowiadaj", "nieodpowiadac", "nie_odpowiadac", "neodpovidat", "neodpovidejte",
    "yanitlamayin", "ala-vastaa", "alavastaa", "ei-vastausta", "nu-raspunde", "nuraspunde",
    # Indonesian / Malay, Thai transliterated and in Thai script
    "jangan-balas", "janganbalas", "ham-top-klap", "hamtobklab", "ห้ามตอบกลับ", "อย่าตอบกลับ",
    # Japanese, Chinese, Korean, Russian transliterated
    "henshin-fuka", "henshinfuka", "soshin-senyo", "qing-wu-hui-fu", "hoesin-bulga",
    "balsin.jeonyong", "ne-otvechat", "neotvechat",
    # machine mailboxes
    "mailer-daemon", "postmaster", "bounces+1234-lead=client.example", "list-bounces",
]  # fmt: skip


@pytest.mark.parametrize("local", NO_REPLY_LOCALS)
def test_no_reply_local_parts_in_many_languages(local: str) -> None:
    assert is_no_reply(f"{local}@shop.example"), local


NO_REPLY_NAMES = [
    "Do Not Reply", "NoReply", "Ne pas répondre", "NE PAS RÉPONDRE - Boutique",
    "No responder", "Não responda", "Bitte nicht antworten", "Non rispondere",
    "Niet beantwoorden", "Svara inte", "Ikke svar", "Nie odpowiadaj", "Neodpovídat",
    "Yanıtlamayın", "Älä vastaa", "Nu răspundeți", "Jangan balas", "ห้ามตอบกลับ",
    "อย่าตอบกลับ (ร้านค้า)", "返信不可", "【送信専用】ショップ", "ショップ(返信不要)",
    "请勿回复", "勿回复", "請勿回覆", "회신불가", "발신전용", "회신 불가 메일", "Не отвечать",
    "Пожалуйста, не отвечайте", "Ｎｏ－Ｒｅｐｌｙ",
]  # fmt: skip


@pytest.mark.parametrize("name", NO_REPLY_NAMES)
def test_no_reply_display_names_in_many_languages(name: str) -> None:
    assert no_reply_phrase(name) is not None, name
    assert is_no_reply("info@shop.example", name)
    assert not is_no_reply("info@shop.example")  # the address alone is a person's inbox


@pytest.mark.parametrize(
    ("email", "name"),
    [
        ("noe.replyson@acme.example", "Noé Replyson"),
        ("reply@acme.example", ""),
        ("norepa@acme.example", ""),
        ("noreen@acme.example", "Noreen Ply"),
        ("replies@acme.example", "Replies"),
        ("svar@acme.example", "Svar Consulting"),
        ("nora.eply@acme.example", "Nora Eply"),
        ("antworten@acme.example", "Antworten GmbH"),
        ("huifu.wu@acme.example", "Wu Huifu"),  # a person's name, not pinyin "do not reply"
        ("ala.nowak@acme.example", "Ala Nowak"),
        ("balas@acme.example", "Budi Balas"),
        ("jane.bounce.smith@acme.example", "Jane Bounce-Smith"),
        ("info@shop.example", "ตอบกลับ ร้านค้า"),  # "reply", not "do not reply"
        ("info@shop.example", "返信受付"),
        ("responder@acme.example", "Auto Responder Pricing"),
        ("noresp@acme.example", ""),
    ],
)
def test_people_are_not_no_reply(email: str, name: str) -> None:
    assert not is_no_reply(email, name)


@pytest.mark.parametrize(
    "relay",
    [
        Address("Boutique", "ne-pas-repondre@boutique.example.fr"),
        Address("", "NoResponder@tienda.example.es"),
        Address("Loja", "nao-responda@loja.example.com.br"),
        Address("Shop", "nicht.antworten@shop.example.de"),
        Address("Negozio", "non_rispondere@negozio.example.it"),
        Address("Winkel", "niet-beantwoorden@winkel.example.nl"),
        Address("ห้ามตอบกลับ", "info@shop.example.co.th"),
        Address("返信不可", "info@shop.example.co.jp"),
        Address("", "henshin-fuka@shop.example.co.jp"),
        Address("请勿回复", "service@shop.example.cn"),
        Address("Не отвечайте", "robot@shop.example.ru"),
        Address("Form", "noreply+form-7@forms.example"),
    ],
    ids=lambda a: a.name or a.email,
)
def test_no_reply_relay_in_any_language_gives_the_lead_to_reply_to(relay: Address) -> None:
    result = lead_sender(_msg(from_=(relay,), reply_to=(JANE,)))
    assert result.address == JANE, result
    assert result.reason.startswith(f"Reply-To (From {relay.email} is a ")
    assert not result.no_reply


def test_reply_to_with_a_no_reply_display_name_is_not_usable() -> None:
    relay = Address("", "ne-pas-repondre@boutique.example.fr")
    unusable = Address("Ne pas répondre", "contact@boutique.example.fr")
    msg = _msg(from_=(relay,), reply_to=(unusable, JANE))
    assert lead_sender(msg).address == JANE


def test_no_reply_relay_without_reply_to_reads_the_form() -> None:
    text = (
        "お名前：山田 太郎\nメールアドレス：taro.yamada@example.co.jp\nお問い合わせ内容：見積もり\n"
    )
    msg = _msg(from_=(Address("返信不可", "info@shop.example.co.jp"),), text=text)
    result = lead_sender(msg)
    assert result.address == Address("山田 太郎", "taro.yamada@example.co.jp")
    assert "body 'Email:' field" in result.reason


def test_no_reply_sender_that_names_nobody_is_flagged() -> None:
    sender = Address("ห้ามตอบกลับ", "info@shop.example.co.th")
    result = lead_sender(_msg(from_=(sender,), text="มีคำสั่งซื้อใหม่"))
    assert result.address == sender
    assert result.no_reply
    assert "no-reply" in result.reason
    assert not lead_sender(_msg(from_=(JANE,))).no_reply


@pytest.mark.parametrize(
    ("line", "name_line"),
    [
        ("Adresse e-mail : jane@acme.co.uk", "Nom : Jane Doe"),
        ("Courriel: jane@acme.co.uk", "Votre nom: Jane Doe"),
        ("Correo electrónico: jane@acme.co.uk", "Nombre: Jane Doe"),
        ("E-Mail-Adresse: jane@acme.co.uk", "Name: Jane Doe"),
        ("Indirizzo email: jane@acme.co.uk", "Nome: Jane Doe"),
        ("Endereço de e-mail: jane@acme.co.uk", "Nome: Jane Doe"),
        ("E-mailadres: jane@acme.co.uk", "Naam: Jane Doe"),
        ("E-post: jane@acme.co.uk", "Namn: Jane Doe"),
        ("Sähköposti: jane@acme.co.uk", "Nimi: Jane Doe"),
        ("Adres e-mail: jane@acme.co.uk", "Imię i nazwisko: Jane Doe"),
        ("E-posta: jane@acme.co.uk", "Ad Soyad: Jane Doe"),
        ("อีเมล: jane@acme.co.uk", "ชื่อ-นามสกุล: Jane Doe"),
        ("邮箱：jane@acme.co.uk", "姓名：Jane Doe"),
        ("이메일: jane@acme.co.uk", "이름: Jane Doe"),
        ("Электронная почта: jane@acme.co.uk", "Имя: Jane Doe"),
    ],
)
def test_form_fields_in_many_languages(line: str, name_line: str) -> None:
    relay = Address("", "ne-pas-repondre@forms.example")
    result = lead_sender(_msg(from_=(relay,), text=f"Nouveau message\n{name_line}\n{line}\n"))
    assert result.address == Address("Jane Doe", "jane@acme.co.uk"), line


def test_form_field_skips_our_own_mailbox() -> None:
    text = "Sent to email: sales@ours.example\nYour email: jane@acme.co.uk\n"
    result = lead_sender(_msg(from_=(RELAY,), text=text))
    assert result.address is not None and result.address.email == "jane@acme.co.uk"


# --- organisations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "domain", "name"),
    [
        ("jane@sales.acme.co.uk", "acme.co.uk", "Acme"),
        ("jane@acme-corp.com", "acme-corp.com", "Acme Corp"),
        ("somchai@siamcement.co.th", "siamcement.co.th", "Siamcement"),
        ("officer@mof.go.th", "mof.go.th", "Mof"),
        ("student@chula.ac.th", "chula.ac.th", "Chula"),
        ("taro@tokyo-gas.co.jp", "tokyo-gas.co.jp", "Tokyo Gas"),
        ("x@ntt.or.jp", "ntt.or.jp", "Ntt"),
        ("bruce@shop.woolworths.com.au", "woolworths.com.au", "Woolworths"),
        ("ana@natura.com.br", "natura.com.br", "Natura"),
        ("Jane@Mail.Example.ORG", "example.org", "Example"),
    ],
)
def test_organization(email: str, domain: str, name: str) -> None:
    assert organization_domain(email, SenderPolicy()) == domain
    assert guess_organization(email) == name


@pytest.mark.parametrize(
    "email", ["jane@gmail.com", "somchai@yahoo.co.th", "x@hotmail.co.th", "y@mail.yahoo.co.jp"]
)
def test_free_mail_has_no_organization(email: str) -> None:
    assert organization_domain(email, SenderPolicy()) is None
    assert guess_organization(email) is None


@pytest.mark.parametrize("email", ["", "nonsense", "x@co.uk", "x@localhost", "x@[192.0.2.1]"])
def test_no_organization_without_a_registrable_domain(email: str) -> None:
    assert organization_domain(email, SenderPolicy()) is None
    assert guess_organization(email) is None
