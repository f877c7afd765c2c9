"""Address normalisation, free-mail and no-reply detection, web-form relays and organisations."""

from __future__ import annotations

import contextlib
import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import translate

from worker.mail.message import Address, InboundMessage


def _domains(names: Iterable[str], suffixes: Iterable[str]) -> frozenset[str]:
    """Every ``name.suffix`` pair: real regional variants of one provider, written out once."""
    suffix_list = tuple(suffixes)
    return frozenset(f"{name}.{suffix}" for name in names for suffix in suffix_list)


# Regional domains the providers actually operate (checked against their sign-up pages / MX
# records); a wildcard like yahoo.* would wrongly include e.g. yahoo.example or squatted domains.
_YAHOO = _domains(
    ["yahoo"],
    [
        "com", "co.uk", "co.jp", "co.th", "co.in", "co.id", "co.nz", "co.za", "co.kr",
        "com.au", "com.ar", "com.br", "com.cn", "com.hk", "com.mx", "com.my", "com.ph",
        "com.sg", "com.tw", "com.vn", "com.tr", "com.co", "com.pe", "com.ve",
        "ca", "de", "fr", "es", "it", "ie", "in", "gr", "se", "no", "dk", "fi", "pl",
        "ro", "at", "be", "ch", "nl", "pt", "cz", "hu",
    ],
)  # fmt: skip
_HOTMAIL = _domains(
    ["hotmail"],
    [
        "com", "co.uk", "co.jp", "co.th", "co.kr", "co.nz", "co.za", "co.il", "co.in",
        "com.au", "com.ar", "com.br", "com.mx", "com.tr", "com.tw", "com.hk", "com.sg",
        "com.vn", "com.my", "com.ph",
        "fr", "de", "es", "it", "be", "ca", "nl", "se", "dk", "fi", "no", "gr", "at",
        "ch", "cz", "hu", "ie", "pt", "ru", "sg", "rs", "lt", "lv", "sk",
    ],
)  # fmt: skip
_OUTLOOK = _domains(
    ["outlook"],
    [
        "com", "co.uk", "co.jp", "co.th", "co.id", "co.il", "co.nz", "com.au", "com.ar",
        "com.br", "com.tr", "com.vn", "com.gr", "fr", "de", "es", "it", "be", "at", "cl",
        "cz", "dk", "ie", "in", "jp", "kr", "lv", "my", "ph", "pt", "sa", "sg", "sk", "hu",
    ],
)  # fmt: skip
_LIVE = _domains(
    ["live"],
    [
        "com", "co.uk", "co.za", "co.kr", "com.au", "com.ar", "com.mx", "com.sg",
        "com.my", "com.pt", "ca", "fr", "de", "it", "nl", "be", "at", "ch", "dk", "se",
        "no", "fi", "ie", "in", "jp", "cl", "hk", "ru", "cn",
    ],
)  # fmt: skip
_WINDOWSLIVE = frozenset({"windowslive.com", "msn.com", "passport.com"})
_GMX = _domains(["gmx"], ["com", "net", "de", "at", "ch", "fr", "es", "co.uk", "us", "eu", "info"])
_YANDEX = _domains(["yandex"], ["ru", "com", "ua", "by", "kz", "com.tr"])
_PROTON = frozenset({"protonmail.com", "protonmail.ch", "pm.me", "proton.me"})
_FASTMAIL = frozenset({"fastmail.com", "fastmail.fm", "fastmail.net", "fastmail.org"})
_TUTANOTA = frozenset({"tutanota.com", "tutanota.de", "tutamail.com", "tuta.io", "tuta.com"})

FREE_MAIL_DOMAINS: frozenset[str] = (
    _YAHOO
    | _HOTMAIL
    | _OUTLOOK
    | _LIVE
    | _WINDOWSLIVE
    | _GMX
    | _YANDEX
    | _PROTON
    | _FASTMAIL
    | _TUTANOTA
    | frozenset(
        {
            # Google, Apple, AOL/Verizon media
            "gmail.com", "googlemail.com", "icloud.com", "me.com", "mac.com",
            "aol.com", "aim.com", "aol.co.uk", "aol.de", "aol.fr", "ymail.com",
            "rocketmail.com",
            # Europe
            "web.de", "t-online.de", "freenet.de", "arcor.de", "posteo.de", "posteo.net",
            "mailbox.org", "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr",
            "neuf.fr", "libero.it", "virgilio.it", "tiscali.it", "alice.it", "tin.it",
            "seznam.cz", "centrum.cz", "email.cz", "wp.pl", "o2.pl", "onet.pl", "interia.pl",
            "btinternet.com", "virginmedia.com", "sky.com", "talktalk.net", "ntlworld.com",
            "bluewin.ch", "telenet.be", "skynet.be", "ziggo.nl", "kpnmail.nl", "home.nl",
            "planet.nl", "hetnet.nl", "abv.bg", "inbox.lv", "mail.ee", "freemail.hu",
            "citromail.hu", "sapo.pt", "terra.es", "telefonica.net", "mail.ru", "inbox.ru",
            "list.ru", "bk.ru", "rambler.ru", "ukr.net", "i.ua",
            # North America / Oceania
            "sbcglobal.net", "comcast.net", "verizon.net", "att.net", "bellsouth.net",
            "cox.net", "charter.net", "earthlink.net", "optonline.net", "juno.com",
            "netzero.net", "shaw.ca", "rogers.com", "sympatico.ca", "bigpond.com",
            "bigpond.net.au", "optusnet.com.au", "xtra.co.nz",
            # Asia
            "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net", "sina.com",
            "sina.cn", "sohu.com", "aliyun.com", "139.com", "naver.com", "hanmail.net",
            "daum.net", "nate.com", "rediffmail.com", "docomo.ne.jp", "ezweb.ne.jp",
            "au.com", "softbank.ne.jp", "i.softbank.jp", "nifty.com", "biglobe.ne.jp",
            "ocn.ne.jp", "hinet.net", "pchome.com.tw", "yahoo.com.tw",
            # Independent / privacy providers
            "zoho.com", "zohomail.com", "mail.com", "email.com", "usa.com", "post.com",
            "hey.com", "hushmail.com", "runbox.com", "disroot.org", "gmx.com",
            "inbox.com", "lycos.com", "excite.com",
        }
    )
)  # fmt: skip

DEFAULT_RELAY_PATTERNS: tuple[str, ...] = (
    # generic no-reply senders of web-form plugins and SaaS notifications
    "no-reply@*",
    "noreply@*",
    "no_reply@*",
    "do-not-reply@*",
    "donotreply@*",
    "do_not_reply@*",
    "no-reply-*@*",
    "noreply-*@*",
    # CMS and form builders
    "wordpress@*",
    "forms@*",
    "form@*",
    "webform@*",
    "web-form@*",
    "form-submission@*",
    "formresponses@*",
    "*@formspree.io",
    "*@typeform.io",
    "notifications@typeform.com",
    "*@jotform.com",
    "*@wufoo.com",
    "*@formstack.com",
    "*@cognitoforms.com",
    "*@123formbuilder.com",
    "*@formsubmit.co",
    "*@getform.io",
    "*@hubspot*",
    "*@*.hubspot.com",
    "*@*.hubspotemail.net",
)


@dataclass(frozen=True, slots=True)
class SenderPolicy:
    """Which senders are relays (the real sender is in Reply-To) and extra free-mail domains."""

    relay_patterns: tuple[str, ...] = DEFAULT_RELAY_PATTERNS
    extra_free_mail: frozenset[str] = frozenset()


_MAILTO = re.compile(r"^mailto:", re.IGNORECASE)
_ANGLE = re.compile(r"<([^<>]*)>")
_LOCAL_OK = re.compile(r"^[^\s@<>()\[\],;:\\\"]+$|^\"[^\"\r\n]+\"$")
_DOMAIN_OK = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
_DOMAIN_LITERAL = re.compile(r"^\[[0-9a-f:.]+\]$")


def _ascii_domain(domain: str) -> str:
    """Lower-cased domain in ASCII (IDNA) form, or '' when it cannot be a domain."""
    domain = domain.strip().rstrip(".").lower()
    if _DOMAIN_LITERAL.match(domain):
        return domain
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return ""
    return domain if _DOMAIN_OK.match(domain) else ""


def normalize_email(value: str) -> str:
    """``'Jane <Jane.Doe@ACME.com>'`` → ``'Jane.Doe@acme.com'``; '' if ``value`` is not an address.

    Strips spaces, angle brackets and ``mailto:`` (with any ``?subject=…``), lower-cases the
    domain (IDNA to ASCII) and keeps the local part's case, which RFC 5321 leaves to the receiver.
    """
    text = value.strip()
    bracketed = _ANGLE.findall(text)
    if bracketed:
        text = bracketed[-1].strip()
    text = _MAILTO.sub("", text).split("?", 1)[0].strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not _LOCAL_OK.match(local):
        return ""
    ascii_domain = _ascii_domain(domain)
    return f"{local}@{ascii_domain}" if ascii_domain else ""


def email_key(value: str) -> str:
    """The fully lower-cased address used for equality and DB lookups ('' if not an address)."""
    if len(value) <= _MAX_CACHED_ADDRESS:
        return _email_key(value)
    return normalize_email(value).lower()


# One verdict asks for the key of the same sender about seven times (lead_sender, the relay
# and no-reply checks, organisation, company). Remembered up to the longest address SMTP
# carries (RFC 5321: 256 octets a path) plus a display name's room, so the cache stays small.
_MAX_CACHED_ADDRESS = 512


@functools.lru_cache(maxsize=4096)
def _email_key(value: str) -> str:
    return normalize_email(value).lower()


def _domain_of(value: str) -> str:
    if "@" in value:
        return email_key(value).rpartition("@")[2]
    return _ascii_domain(value)


def _parents(domain: str) -> Iterable[str]:
    """``a.b.c`` → ``a.b.c``, ``b.c``, ``c``."""
    labels = domain.split(".")
    for i in range(len(labels)):
        yield ".".join(labels[i:])


def is_free_mail(domain: str, policy: SenderPolicy = SenderPolicy()) -> bool:
    """True for a consumer mailbox provider (or a subdomain of one); accepts an address too."""
    name = _domain_of(domain)
    if not name:
        return False
    return any(
        part in FREE_MAIL_DOMAINS or part in policy.extra_free_mail for part in _parents(name)
    )


# --- no-reply senders -----------------------------------------------------------------------
#
# "Do not reply" in the languages our customers' relays write it, one phrase per entry with
# spaces between its words. Each is folded like the text it is compared with (see _fold) and
# matched as a run of whole tokens, so one entry covers every spelling a mailbox name or display
# name uses: "ne pas répondre" matches ne-pas-repondre@, ne_pas_repondre@, NePasRepondre@,
# ne.pas.repondre+x@ and "Ne pas répondre". Whole tokens keep false positives out: "Noé
# Replyson" is the tokens "noe" + "replyson", never "noreply". Phrases in scripts written without
# spaces (Thai, Japanese, Chinese, Korean) and in Cyrillic, Arabic and Hebrew are matched as
# substrings of the name with its spaces and punctuation removed instead.
_NO_REPLY_PHRASES: tuple[str, ...] = (
    # English
    "no reply", "do not reply", "dont reply", "no answer", "do not answer", "do not respond",
    "dont respond", "no response", "no respond", "unmonitored", "not monitored",
    "bounce only", "send only", "sending only", "outbound only", "notify only",
    # French
    "ne pas repondre", "ne repondez pas", "ne repondre pas", "pas de reponse", "sans reponse",
    "ne pas repondre svp",
    # Spanish, Catalan
    "no responder", "no responda", "no respondas", "no contestar", "no conteste",
    "sin respuesta", "no respondre", "no contestis",
    # Portuguese
    "nao responda", "nao responder", "nao responde", "nao respondas", "sem resposta",
    # German
    "nicht antworten", "nicht beantworten", "keine antwort", "antworten nicht moglich",
    # Italian
    "non rispondere", "non rispondete", "non risponda", "nessuna risposta",
    # Dutch
    "niet beantwoorden", "niet antwoorden", "niet reageren", "geen antwoord", "geen reactie",
    # Swedish, Danish, Norwegian
    "svara inte", "svara ej", "ej svar", "ej svara", "inget svar",
    "ikke svar", "svar ikke", "ikke besvar", "besvar ikke", "ingen svar", "ikke svare",
    # Finnish, Estonian
    "ala vastaa", "ei vastausta", "ara vasta", "mitte vastata",
    # Polish, Czech, Slovak
    "nie odpowiadaj", "nie odpowiadac", "nie odpowiadajcie", "bez odpowiedzi",
    "neodpovidat", "neodpovidejte", "neodpovidej", "neodpovedat", "neodpovedajte",
    # Hungarian, Romanian, Turkish, Greek
    "ne valaszolj", "ne valaszoljon", "nu raspunde", "nu raspundeti",
    "yanitlamayin", "yanitlamayiniz", "cevaplamayin", "cevaplamayiniz", "cevap vermeyin",
    "yanit vermeyin", "μην απαντατε", "μην απαντας", "mi apantate",
    # Indonesian, Malay, Vietnamese, Tagalog
    "jangan balas", "jangan dibalas", "jangan membalas", "tidak perlu dibalas",
    "khong tra loi", "huwag sumagot", "huwag tumugon",
    # Thai, and its common transliterations
    "ห้ามตอบกลับ", "อย่าตอบกลับ", "ไม่ต้องตอบกลับ", "งดตอบกลับ", "โปรดอย่าตอบกลับ",
    "ham top klap", "ham tob klab", "ham tob klub", "ham top klub", "ya top klap",
    "ya tob klab", "mai tong top klap", "mai tong tob klab",
    # Japanese, and romaji
    "返信不可", "返信不要", "返信できません", "返信しないで", "送信専用", "配信専用",
    "henshin fuka", "hensin fuka", "henshin fuyo", "henshin fuyou", "hensin fuyou",
    "soshin senyo", "soshin senyou", "soushin senyou", "sousin senyou", "haishin senyou",
    # Chinese, and pinyin
    "请勿回复", "勿回复", "請勿回覆", "請勿回復", "勿回覆", "不要回复", "无需回复", "無需回覆",
    "qing wu hui fu",  # not "wu hui fu": Wu Huifu is a person's name
    # Korean, and romanisation
    "회신불가", "발신전용", "답장불가", "회신금지", "hoesin bulga", "hoeshin bulga",
    "balsin jeonyong", "balshin jeonyong",
    # Russian, Ukrainian, and transliterations
    "не отвечать", "не отвечайте", "не отвечай", "не відповідати", "не відповідайте",
    "ne otvechat", "ne otvechaite", "ne otvechayte", "ne otvechajte", "ne otvechay",
    "ne vidpovidaty", "ne vidpovidaite",
    # Arabic, Hebrew
    "لا ترد", "لا تقم بالرد", "يرجى عدم الرد", "אין להשיב", "נא לא להשיב", "אל תשיב",
)  # fmt: skip

# Mailboxes of machines (bounce handlers, daemons, responders): a no-reply local part, but only
# as its first or last token ("bounces+123@", "list-bounces@"), since "jane.bounce.smith" exists.
_MACHINE_LOCAL = re.compile(
    r"""^(?:mailer[-_.]?daemon | mail[-_.]?daemon | postmaster | bounces? | auto[-_.]?reply
          | auto[-_.]?responder | autoresponse)(?:[-+_.=].*)?$
      | ^.+[-+_.](?:bounces? | mailer[-_.]?daemon)$
    """,
    re.IGNORECASE | re.VERBOSE,
)
_LETTER_MAP = str.maketrans({"ı": "i", "ł": "l", "ø": "o", "đ": "d", "æ": "ae", "œ": "oe"})
_MAX_NAME = 256  # a display name or local part longer than any real one is looked at this far
_MAX_RUN = 6  # tokens in the longest phrase
_ASCII_TOKEN = re.compile(r"[a-z0-9]+")


def _fold(text: str) -> str:
    """Case, width and accents folded: 'Ne-pas-RÉPONDRE' → 'ne-pas-repondre', 'ｎｏ' → 'no'.

    Combining marks are dropped in every script (Thai vowel and tone marks too): the phrases are
    folded the same way, so they still match, and a sender who leaves a mark out matches as well.
    """
    text = text[:_MAX_NAME]
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text).casefold().translate(_LETTER_MAP)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", text)


def _tokens(folded: str) -> list[str]:
    """Runs of letters and digits; every other character (- _ . + space, punctuation) splits."""
    if folded.isascii():
        return _ASCII_TOKEN.findall(folded)
    tokens: list[str] = []
    current: list[str] = []
    for char in folded:
        if char.isalnum():
            current.append(char)
        elif current:
            tokens.append("".join(current))
            current = []
    if current:
        tokens.append("".join(current))
    return tokens


def _phrase_sets(phrases: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
    """(joined Latin phrases, those long enough to find glued to a word, other-script phrases)."""
    latin: set[str] = set()
    other: set[str] = set()
    for phrase in phrases:
        joined = "".join(_tokens(_fold(phrase)))
        (latin if joined.isascii() else other).add(joined)
    # Seven letters and up ("noreply", "nepasrepondre") are never the start or end of a word, so
    # "noreplyshop" and "shopnoreply" count; shorter ones ("ejsvar") only as whole tokens.
    glued = tuple(sorted(p for p in latin if len(p) >= 7))
    return frozenset(latin), glued, tuple(sorted(other))


_LATIN_PHRASES, _GLUED_PHRASES, _SCRIPT_PHRASES = _phrase_sets(_NO_REPLY_PHRASES)
_GLUED = re.compile(
    "^(?:{0})|(?:{0})$".format("|".join(map(re.escape, sorted(_GLUED_PHRASES, key=len)[::-1])))
)


def no_reply_phrase(text: str) -> str | None:
    """The "do not reply" phrase (folded) in a local part or display name; else None.

    The text is folded and split into tokens; a run of consecutive tokens (trailing digits
    allowed, "noreply2") that spells a known phrase, a single token that starts or ends with a
    long one, or a phrase of another script inside the text without spaces is a hit.
    """
    return _no_reply_phrase(text[:_MAX_NAME]) if text else None


@functools.lru_cache(maxsize=4096)  # the same senders write again; keys are at most _MAX_NAME
def _no_reply_phrase(text: str) -> str | None:
    tokens = _tokens(_fold(text))
    for i in range(len(tokens)):
        joined = ""
        for j in range(i, min(len(tokens), i + _MAX_RUN)):
            joined += tokens[j]
            if joined in _LATIN_PHRASES or joined.rstrip("0123456789") in _LATIN_PHRASES:
                return " ".join(tokens[i : j + 1])
    for token in tokens:
        if len(token) > 7 and token.isascii() and _GLUED.search(token):
            return token
    compact = "".join(tokens)
    if not compact.isascii():
        for phrase in _SCRIPT_PHRASES:
            if phrase in compact:
                return phrase
    return None


def is_no_reply(email: str, name: str = "") -> bool:
    """True for a sender nobody reads: a "do not reply" mailbox in any language (no-reply,
    ne-pas-repondre, 返信不可 …) in the local part or the display ``name``, or a machine's
    mailbox (mailer-daemon, postmaster, bounces+VERP)."""
    local = email_key(email).rpartition("@")[0] or email.strip().lower()
    if local and (_MACHINE_LOCAL.match(local) or no_reply_phrase(local)):
        return True
    return bool(name) and no_reply_phrase(name) is not None


@functools.lru_cache(maxsize=32)
def _relay_matcher(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    # One compiled alternation per policy: fnmatch would re-run each glob per address.
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{translate(p.lower())})" for p in patterns))


def is_relay(email: str, policy: SenderPolicy) -> bool:
    """True when ``email`` matches a relay glob: a sender whose Reply-To is the real person."""
    key = email_key(email)
    matcher = _relay_matcher(policy.relay_patterns)
    return bool(key and matcher and matcher.match(key))


@dataclass(frozen=True, slots=True)
class LeadSender:
    """The person a lead is about and how we decided it.

    ``no_reply`` is True when the chosen address is one nobody reads (a relay or no-reply sender
    that named no one else): there is nobody to contact, so it must not become a lead. It also
    covers a sender that is no-reply by display name only ("ห้ามตอบกลับ <info@shop.example>"),
    which the address alone cannot show.
    """

    address: Address | None
    reason: str
    no_reply: bool = False


_EMAIL_IN_TEXT = (
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
# A form field label naming the submitter's address, in the languages form plugins are set up in:
# "Email", "Your e-mail address", "Adresse e-mail", "Correo electrónico", "E-Mail-Adresse",
# "Indirizzo email", "E-post", "Sähköposti", "メールアドレス", "电子邮件", "이메일", "อีเมล" …
# At most a few words around the keyword, so a sentence ending in "email:" is not a label.
_MAIL_LABEL = (
    r"(?:e-?mail|mail|courriel|correo|e-?post|e-?posta|posta\s+elettronica|sahkoposti"
    r"|sähköposti|surel|emel|почта|пошта|e-?майл|имейл|ηλεκτρονικό\s+ταχυδρομείο|email"
    r"|メール|メールアドレス|邮箱|郵箱|邮件|郵件|電郵|信箱|이메일|메일|อีเมล|อีเมล์)"
)
_LABEL_WORDS = r"[^\r\n:：=@<>]{0,24}?"
_FORM_EMAIL = re.compile(
    r"^[ \t*>|-]*" + _LABEL_WORDS + _MAIL_LABEL + _LABEL_WORDS + r"[ \t*]*[:：=][ \t*]*"
    r"(?:\[|<|mailto:)?(" + _EMAIL_IN_TEXT + r")",
    re.IGNORECASE | re.MULTILINE,
)
_FORM_NAME = re.compile(
    r"^[ \t*>|-]*(?:your[ \t]+|full[ \t]+|contact[ \t]+|votre[ \t]+|tu[ \t]+|su[ \t]+|ihr[ \t]+)?"
    r"(?:name|nom|nombre|nome|naam|navn|namn|nimi|imi[eę](?:[ \t]+i[ \t]+nazwisko)?|jm[eé]no"
    r"|n[eé]v|nume|nama|ad[ \t]+soyad|ad[ıi]|имя|фио|ім'я|όνομα|お?名前|氏名|姓名|名字|이름|성명"
    r"|ชื่อ(?:[ \t-]*นามสกุล)?|ชื่อ-สกุล)"
    r"[ \t*]*[:：=][ \t*]*([^\r\n<>@]{1,80})$",
    re.IGNORECASE | re.MULTILINE,
)
_TAG = re.compile(r"<[^>]*>")
_BR = re.compile(r"<(?:br|/p|/div|/tr|/li)\b[^>]*>", re.IGNORECASE)


def _html_to_lines(html: str) -> str:
    return _TAG.sub(" ", _BR.sub("\n", html))


def _form_field_sender(msg: InboundMessage, relay: str, policy: SenderPolicy) -> Address | None:
    """The submitter's address from an 'Email: …' line of a web-form notification body.

    Our own mailbox (the form mails To us, and some bodies repeat it: "Sent to: sales@…") and
    addresses nobody reads are skipped, so the first other address in a mail-labelled field wins.
    """
    ours = {email_key(a.email) for a in (*msg.to, *msg.cc)}
    for body in (msg.text, _html_to_lines(msg.html[:100_000]) if msg.html else ""):
        head = body[:20_000]
        # Only lines with an address can hold the field: the label pattern runs on those alone.
        lines = (line for line in head.splitlines() if "@" in line)
        for match in filter(None, map(_FORM_EMAIL.match, lines)):
            email = normalize_email(match.group(1))
            key = email.lower()
            if (
                not email
                or key == email_key(relay)
                or key in ours
                or is_no_reply(key)
                or is_relay(key, policy)
            ):
                continue
            name_match = _FORM_NAME.search(head)
            name = " ".join(name_match.group(1).split()) if name_match else ""
            return Address(name, email)
    return None


def _unreadable(address: Address, policy: SenderPolicy) -> str | None:
    """Why nobody reads ``address`` (a relay glob, a no-reply name or mailbox), or None."""
    if is_relay(address.email, policy):
        return "a relay"
    local = email_key(address.email).rpartition("@")[0]
    if local and (_MACHINE_LOCAL.match(local) or no_reply_phrase(local)):
        return "a no-reply address"
    if no_reply_phrase(address.name) is not None:
        return f"a no-reply sender (display name {' '.join(address.name.split())[:60]!r})"
    return None


def lead_sender(msg: InboundMessage, policy: SenderPolicy = SenderPolicy()) -> LeadSender:
    """Who the lead is: From, or the real person behind a web-form relay (Reply-To / body field).

    A From that nobody reads — a relay glob of the policy, or a "do not reply" local part or
    display name in any language — hands the lead to the first usable Reply-To, else to the
    form's e-mail field in the body; with neither it stays on From, marked ``no_reply``.
    """
    sender = msg.from_address
    usable_reply_to = [
        a for a in msg.reply_to if email_key(a.email) and _unreadable(a, policy) is None
    ]
    if sender is None or not email_key(sender.email):
        if usable_reply_to:
            return LeadSender(usable_reply_to[0], "Reply-To (no usable From)")
        return LeadSender(None, "no From or Reply-To address")
    why = _unreadable(sender, policy)
    if why is None:
        return LeadSender(sender, "From")
    if usable_reply_to:
        return LeadSender(usable_reply_to[0], f"Reply-To (From {sender.email} is {why})")
    machine = _MACHINE_LOCAL.match(email_key(sender.email).rpartition("@")[0])
    # A mail system's own mailbox (a bounce) quotes other people's mail: no form to read there.
    found = None if machine else _form_field_sender(msg, sender.email, policy)
    if found is not None:
        return LeadSender(
            found, f"body 'Email:' field (From {sender.email} is {why} without Reply-To)"
        )
    return LeadSender(
        sender, f"From ({sender.email} is {why} but names no other sender)", no_reply=True
    )


# Second-level public suffixes under which organisations register (a practical subset of the
# Public Suffix List: country code SLDs used by businesses). Single-label TLDs need no entry.
_MULTI_PART_SUFFIXES: frozenset[str] = frozenset(
    {
        "co.uk", "org.uk", "ac.uk", "gov.uk", "ltd.uk", "plc.uk", "me.uk", "net.uk",
        "sch.uk", "nhs.uk", "police.uk",
        "co.th", "ac.th", "go.th", "or.th", "in.th", "mi.th", "net.th",
        "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp", "ad.jp", "ed.jp", "gr.jp", "lg.jp",
        "com.au", "net.au", "org.au", "edu.au", "gov.au", "asn.au", "id.au",
        "co.nz", "org.nz", "net.nz", "ac.nz", "govt.nz", "school.nz",
        "com.br", "net.br", "org.br", "gov.br", "edu.br", "ind.br",
        "co.za", "org.za", "gov.za", "ac.za", "net.za",
        "co.in", "net.in", "org.in", "firm.in", "gen.in", "ind.in", "ac.in", "gov.in",
        "com.cn", "net.cn", "org.cn", "gov.cn", "edu.cn", "ac.cn",
        "com.hk", "org.hk", "net.hk", "edu.hk", "gov.hk",
        "com.tw", "org.tw", "net.tw", "edu.tw", "gov.tw", "idv.tw",
        "com.sg", "org.sg", "net.sg", "edu.sg", "gov.sg",
        "com.my", "org.my", "net.my", "edu.my", "gov.my",
        "co.id", "or.id", "ac.id", "go.id", "web.id",
        "com.ph", "org.ph", "net.ph", "edu.ph", "gov.ph",
        "com.vn", "net.vn", "org.vn", "edu.vn", "gov.vn",
        "co.kr", "or.kr", "ac.kr", "go.kr", "ne.kr", "re.kr",
        "co.il", "org.il", "ac.il", "gov.il", "net.il",
        "com.mx", "org.mx", "gob.mx", "edu.mx", "net.mx",
        "com.ar", "org.ar", "gob.ar", "net.ar", "com.co", "org.co", "gov.co",
        "com.pe", "org.pe", "gob.pe", "com.ve", "co.ve", "com.uy", "com.ec",
        "com.tr", "org.tr", "net.tr", "gov.tr", "edu.tr", "gen.tr",
        "com.sa", "org.sa", "gov.sa", "com.eg", "org.eg", "gov.eg", "co.ae", "gov.ae",
        "com.pk", "org.pk", "gov.pk", "com.bd", "org.bd", "com.lk", "org.lk", "com.np",
        "co.ke", "or.ke", "com.ng", "org.ng", "gov.ng", "co.tz", "co.ug", "com.gh",
        "com.ua", "org.ua", "net.ua", "com.ru", "org.ru", "com.pl", "net.pl", "org.pl",
        "co.at", "or.at", "ac.at", "gv.at", "com.es", "org.es", "com.pt", "com.gr",
        "com.cy", "com.mt", "co.hu", "com.ro", "co.rs",
    }
)  # fmt: skip


_DOMAIN_LABEL_WORDS = re.compile(r"[-_]+")


def organization_domain(email: str, policy: SenderPolicy = SenderPolicy()) -> str | None:
    """Registrable domain of an address ('acme.co.uk'); None for free mail or no domain."""
    domain = _domain_of(email)
    if not domain or domain.startswith("[") or is_free_mail(domain, policy):
        return None
    labels = domain.split(".")
    if len(labels) < 2:
        return None
    suffix_len = 2 if ".".join(labels[-2:]) in _MULTI_PART_SUFFIXES else 1
    if len(labels) <= suffix_len:
        return None
    return ".".join(labels[-(suffix_len + 1) :])


def guess_organization(email: str, policy: SenderPolicy = SenderPolicy()) -> str | None:
    """A display name for the sender's organisation: 'acme-corp.com' → 'Acme Corp'."""
    registrable = organization_domain(email, policy)
    return organization_name(registrable) if registrable is not None else None


def organization_name(registrable: str) -> str | None:
    """The display name guess_organization makes of a registrable domain ('acme-corp.com')."""
    label = registrable.split(".", 1)[0]
    if label.startswith("xn--"):
        with contextlib.suppress(UnicodeError):
            label = label.encode("ascii").decode("idna")
    words = _DOMAIN_LABEL_WORDS.split(label)
    return " ".join(w[:1].upper() + w[1:] for w in words if w) or None
