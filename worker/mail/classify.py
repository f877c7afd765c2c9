"""What kind of mail a message is (person, bounce, auto-reply, report, list, our own loop) and why.

Each rule is a small named predicate over a parsed message that returns the evidence it found
(a human-readable reason naming the header or text) or None. Rules are grouped in stages that run
in a fixed order and the first stage with a hit decides the kind (ARCHITECTURE.md, "Classify"):
bounce → report → auto-reply / out-of-office → list → own → human. Every hit of the deciding
stage is kept as a reason, so "why is this not a lead" is always answerable.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from worker.mail.addresses import email_key, is_no_reply
from worker.mail.message import InboundMessage


class Kind(enum.StrEnum):
    HUMAN = "human"
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    OUT_OF_OFFICE = "out_of_office"
    LIST = "list"
    REPORT = "report"
    OWN = "own"


@dataclass(frozen=True, slots=True)
class OwnIdentity:
    """Who "we" are: the mailbox account addresses and the domains of our outbound Message-IDs."""

    addresses: frozenset[str] = frozenset()
    message_id_domains: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Classification:
    """The decided kind, the evidence for it, and what a bounce or report points back to."""

    kind: Kind
    reasons: tuple[str, ...]
    bounced_message_ids: tuple[str, ...] = ()
    failed_recipients: tuple[str, ...] = ()
    spam: bool = False


# --------------------------------------------------------------------------------------------
# The message as the rules see it: computed once per message, all cheap header work.


class _View:
    __slots__ = (
        "_returned",
        "_wording",
        "from_email",
        "from_key",
        "from_local",
        "from_name",
        "msg",
        "own",
        "subject",
    )

    def __init__(self, msg: InboundMessage, own: OwnIdentity) -> None:
        self.msg = msg
        self.own = own
        self.subject = " ".join(msg.subject[:1_000].split())  # a 16 KB subject exists in the wild
        sender = msg.from_address
        self.from_email = sender.email if sender else ""
        self.from_key = self.from_email.lower()
        self.from_local = self.from_key.rpartition("@")[0]
        self.from_name = sender.name.lower() if sender else ""
        self._wording: str | bool | None = False  # False: not computed yet
        self._returned: tuple[tuple[str, str | None], ...] | None = None

    def header(self, name: str) -> str:
        """First value of a header (``name`` lower-case), whitespace collapsed; '' if absent."""
        values = self.msg.headers.get(name)
        return " ".join(values[0].split()) if values else ""

    def failure_wording(self) -> str | None:
        """The MTA failure wording in the subject or text, computed at most once."""
        if self._wording is False:
            self._wording = _failure_wording(self)
        return self._wording if isinstance(self._wording, str) else None

    def returned(self) -> tuple[tuple[str, str | None], ...]:
        """Each returned message's header block, with what in it is ours (None: nothing)."""
        if self._returned is None:
            self._returned = tuple((t, _own_in(t, self.own)) for t in _returned_texts(self))
        return self._returned

    def text_head(self, limit: int = 12_000) -> str:
        # Notifications put their wording at the top; long bodies are never scanned whole.
        return self.msg.text[:limit]


Check = Callable[[_View], "str | None"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One named test: ``check`` returns the reason it fired, or None."""

    name: str
    description: str
    check: Check


def _rules(*rules: Rule) -> tuple[Rule, ...]:
    names = [r.name for r in rules]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:  # a programming error: fail at import, like Mailman's rule registry
        raise ValueError(f"duplicate classify rule names: {sorted(duplicates)}")
    return rules


# --------------------------------------------------------------------------------------------
# Patterns, compiled once.

_I = re.IGNORECASE
_IM = re.IGNORECASE | re.MULTILINE
_IX = re.IGNORECASE | re.VERBOSE

_STATUS_PARTS = frozenset({"message/delivery-status", "message/global-delivery-status"})
_RETURNED_PARTS = frozenset(
    {
        "message/rfc822",
        "message/global",
        "text/rfc822-headers",
        "message/rfc822-headers",
        "message/global-headers",
    }
)
_ARF_PARTS = frozenset({"message/feedback-report"})
_MDN_PARTS = frozenset(
    {"message/disposition-notification", "message/global-disposition-notification"}
)

_MAILER_DAEMON_LOCAL = re.compile(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|mdaemon)(?:[-+.].*)?$", _I
)
_POSTMASTER_LOCAL = re.compile(r"^postmaster(?:[-+.].*)?$", _I)
_BOUNCE_SENDER_NAME = re.compile(
    r"mailer[- ]?daemon|mail delivery (?:subsystem|system|service)|mail administrator"
    r"|postmaster|delivery status notification|microsoft outlook|mail system",
    _I,
)

# Subject lines MTAs give their failure notices (anchored: "Re: Delivery failed…" is a person).
_BOUNCE_SUBJECT = re.compile(
    r"""^[\s\[(]*(?:
        undeliver(?:able|ed)\b
      | returned\s+mail\b | return(?:ed)?\s+to\s+sender
      | mail\s+delivery\s+(?:failed|failure|problem|system|subsystem)
      | delivery\s+(?:status\s+notification|failure|failed|notification|has\s+failed
                    |problem|report|incomplete|delayed)
      | (?:mail\s+)?failure\s+notice | failed\s+delivery
      | non[-\s]?deliver(?:y|able) | nondeliverable
      | message\s+(?:not\s+delivered|delivery\s+fail|could\s+not\s+be\s+delivered|undeliverable)
      | (?:warning:\s*)?could\s+not\s+send\s+message | delayed\s+mail | mail\s+system\s+error
      | unzustellbar | nicht\s+zustellbar | non\s+remis | non\s+distribu | non\s+recapitabile
      | no\s+se\s+puede\s+entregar | no\s+entregado | onbestelbaar | olevererbart
      | kan\s+ikke\s+leveres | ei\s+toimitettu | não\s+entregue | nedoručitelné
      | niedostarczalna | не\s*доставлено | недоставленное
      | 配信(?:不能|エラー|失敗|できません) | 送信エラー | 未送達 | 不達 | エラーメール
      | 退信 | 无法投递 | 系統退信 | 系统退信 | 投递失败
      | ส่งไม่สำเร็จ | ไม่สามารถส่ง
    )""",
    _IX,
)
# The same, broader: used only as one scored signal among others (see _bounce_score), never
# alone, so wordings a person might also start a subject with are allowed here.
_FAILURE_SUBJECT = re.compile(
    r"""^[\s\[(]*(?:
        bounced?\b | \[?bounce\] | mail\s+bounced | uncaught\s+bounce | (?:mail|message)\s+failure
      | (?:mail|message|e-?mail)\s+(?:could\s+not|cannot|can't)\s+be\s+delivered
      | unable\s+to\s+deliver | undelivered | returned\s+(?:message|e-?mail)
      | delivery\s+status | notice:\s*mail\s+delivery\s+status
      | message\s+status\s*-\s*undeliverable | failure\s+delivery
      | (?:permanent|temporary|fatal)\s+(?:delivery\s+)?(?:failure|error)
      | there\s+was\s+an\s+error\s+sending | error\s+(?:during|in)\s+delivery
      | message\s+you\s+sent\s+(?:was\s+)?blocked
      # French, Spanish, Catalan, Portuguese
      | notification\s+d['’]état\s+de\s+(?:remise|distribution)
      | [ée]chec\s+de\s+(?:la\s+)?(?:remise|livraison|distribution)
      | message\s+non\s+(?:remis|distribu|délivré|delivre) | non\s+délivr
      | notificaci[óo]n\s+de\s+estado\s+de\s+(?:la\s+)?entrega | error\s+(?:en\s+la|de)\s+entrega
      | mensaje\s+no\s+entregado | no\s+se\s+(?:pudo|ha\s+podido)\s+entregar
      | correo\s+devuelto | devoluci[óo]n\s+de\s+correo | no\s+s'ha\s+pogut\s+lliurar
      | notifica[çc][ãa]o\s+de\s+status\s+de\s+entrega | falha\s+(?:na|de)\s+entrega
      | mensagem\s+n[ãa]o\s+entregue | n[ãa]o\s+(?:foi|é)\s+poss[íi]vel\s+entregar
      | n[ãa]o\s+entregue | mensagem\s+devolvida
      # German, Dutch, Nordic
      | zustellung\s+fehlgeschlagen | fehlgeschlagene\s+zustellung | unzustellbar
      | benachrichtigung\s+über\s+den\s+zustellstatus | nachricht\s+nicht\s+zugestellt
      | niet\s+(?:bezorgd|afgeleverd) | kan\s+niet\s+worden\s+bezorgd | onbestelba
      | kunde\s+inte\s+levereras | ej\s+levererat | olevererba | kunne\s+ikke\s+leveres
      | ikke\s+(?:leveret|levert) | kan\s+ikke\s+leveres | ei\s+voitu\s+toimittaa
      | toimitus\s+epäonnistui | toimittamaton
      # Italian, Romanian, Greek
      | mancato\s+recapito | impossibile\s+recapitare | consegna\s+non\s+riuscita
      | messaggio\s+non\s+recapitato | non\s+recapitabile | nelivrabil | mesaj\s+nelivrat
      | nu\s+a\s+putut\s+fi\s+livrat | αδυναμία\s+παράδοσης | μη\s+παραδοθέν
      # Polish, Czech, Slovak, Hungarian, Turkish
      | niedostarczaln\w* | nie\s+(?:można\s+)?dostarczon\w* | nie\s+można\s+dostarczyć
      | wiadomość\s+niedostarczona | nedoručiteln\w* | nelze\s+doručit | nedoručen\w*
      | nedoručiteľn\w* | kézbesíthetetlen | nem\s+kézbesíthető
      | teslim\s+edileme\w* | iletilemedi | iletilemeyen
      # Russian, Ukrainian, Bulgarian
      | недоставленн\w* | не\s+удалось\s+доставить | ошибка\s+доставки | недоставлене
      | не\s+доставлен\w* | недоставено
      # Japanese, Chinese, Korean, Thai, Vietnamese, Indonesian, Arabic, Hebrew
      | 配信不能 | 配送不能 | 送信失敗 | 未送達 | 宛先不明 | 返送 | メール配信
      | 未送达 | 無法傳遞 | 無法投遞 | 投遞失敗 | 投递失败 | 发送失败 | 傳送失敗 | 邮件被退回
      | 退信 | 無法送達 | 无法送达
      | 반송 | 배달\s*(?:되지\s*않음|실패|불가) | 전송\s*실패 | 전달\s*실패 | 배달되지
      | ไม่สามารถ(?:ส่ง|นำส่ง) | ส่งไม่(?:สำเร็จ|ถึง) | การส่งล้มเหลว | ตีกลับ
      | không\s+thể\s+gửi | không\s+gửi\s+được | gửi\s+thất\s+bại
      | tidak\s+(?:dapat\s+)?terkirim | gagal\s+(?:terkirim|dikirim) | pengiriman\s+gagal
      | تعذر\s+التسليم | فشل\s+التسليم | לא\s+נמסר | לא\s+ניתן\s+למסור
    )""",
    _IX,
)

# Text of non-DSN (and DSN) bounces, by MTA. Specific phrases, never just "delivery failed".
_BOUNCE_TEXT = re.compile(
    r"""
      # Postfix
        I'm\s+sorry\s+to\s+have\s+to\s+inform\s+you\s+that\s+your\s+message\s+could\s+not
      | This\s+is\s+the\s+mail\s+system\s+at\s+host
      # Exim
      | This\s+message\s+was\s+created\s+automatically\s+by\s+mail\s+delivery\s+software
      | A\s+message\s+that\s+you\s+sent\s+could\s+not\s+be\s+delivered
      # qmail
      | This\s+is\s+the\s+qmail-send\s+program | I'm\s+afraid\s+I\s+wasn't\s+able\s+to\s+deliver
      # Sendmail
      | following\s+addresses\s+had\s+(?:permanent\s+fatal\s+errors|delivery\s+problems)
      | -----\s*Transcript\s+of\s+session\s+follows | Warning:\s+message\s+\S+\s+delayed
      # Exchange, Office 365, Domino
      | Delivery\s+has\s+failed\s+to\s+these\s+recipients
      | Your\s+message\s+(?:to\s+\S+\s+)?
        (?:couldn't\s+be|could\s+not\s+be|cannot\s+be|wasn't|was\s+not)\s+delivered
      | was\s+not\s+delivered\s+to:
      # Gmail, Yahoo, Amazon SES, MailSite, Barracuda
      | Delivery\s+to\s+the\s+following\s+recipients?\s+(?:failed|has\s+been\s+delayed)
      | Sorry,\s+we\s+were\s+unable\s+to\s+deliver\s+your\s+message
      | The\s+following\s+message\s+to\s+\S+\s+was\s+undeliverable
      | An\s+error\s+occurred\s+while\s+trying\s+to\s+deliver\s+the\s+mail
      | Your\s+message\s+has\s+encountered\s+delivery\s+problems
      | was\s+blocked\s+by\s+our\s+Spam\s+Firewall
      # generic MTA phrasing, queue expiry
      | (?:could\s+not|cannot|can't)\s+be\s+delivered\s+to\s+(?:the\s+following|one\s+or\s+more)
      | message\s+could\s+not\s+be\s+delivered\s+for\s+\d+\s+days
      # German, French, Spanish
      | Ihre\s+Nachricht\s+(?:konnte|wurde)\s+nicht\s+zugestellt
      | n'a\s+pas\s+pu\s+être\s+(?:remis|distribué|délivré)
      | no\s+(?:se\s+)?(?:ha\s+)?pod(?:ido|ía)\s+(?:ser\s+)?entregar
      # Japanese carriers (docomo, au, SoftBank), Chinese providers
      | 配信(?:できませんでした|に失敗しました) | 送信できませんでした | 宛先不明
      | 届きませんでした | 配送できませんでした
      | 邮件投递失败 | 无法送达 | 退信原因
    """,
    _IX,
)
_BOUNCE_TEXT_KEYWORDS = (
    "deliver",
    "sorry to have to inform",
    "following addresses had",
    "mail system at host",
    "qmail-send",
    "transcript of session",
    "delayed",
    "spam firewall",
    "zugestellt",
    "pas pu",
    "entregar",
    "配信",
    "送信できません",
    "宛先不明",
    "届きません",
    "配送できません",
    "投递",
    "送达",
    "退信",
)
# More MTA wordings, by family and language, each scanned only when one of its keywords occurs:
# one alternation of every language would try each branch at every position of every text.
_MORE_BOUNCE_TEXTS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = tuple(
    (keywords, re.compile(pattern, _IX))
    for keywords, pattern in (
        (  # Exchange 2000/2003, Symantec, GroupWise, Courier, MDaemon, Yahoo, KDDI
            ("reach", "delivery status notification", "permanent", "unable to deliver",
             "following address", "rejected by", "returned by", "was undeliverable"),
            r"""did\s+not\s+reach\s+(?:some\s+or\s+all\s+of\s+)?the\s+intended\s+recipients?
              | following\s+recipient\(?s?\)?\s+could\s+not\s+be\s+reached
              | automatically\s+generated\s+Delivery\s+Status\s+Notification
              | message\s+that\s+you\s+sent\s+was\s+undeliverable
              | This\s+is\s+a\s+delivery\s+status\s+notification
              | had\s+PERMANENT\s+fatal\s+delivery\s+errors
              | Unable\s+to\s+deliver\s+(?:the\s+)?message\s+to\s+the\s+following
              | could\s+not\s+be\s+delivered\s+to\s+the\s+following\s+address
              | (?:was|has\s+been)\s+(?:rejected|returned)\s+by\s+the
                \s+(?:remote|receiving|destination)\s+(?:server|mail\s+server|host)""",
        ),
        (("zustell",), r"Die\s+Nachricht\s+konnte\s+nicht\s+zugestellt"
            r"|Zustellung\s+(?:ist\s+)?fehlgeschlagen"),
        (("remise", "livré"), r"La\s+remise\s+(?:du\s+message\s+)?a\s+échoué"
            r"|n'a\s+pas\s+pu\s+être\s+livré"),
        (("recapit",), r"non\s+(?:è\s+stato|e'\s+stato|può\s+essere)\s+recapitat"
            r"|impossibile\s+recapitare"),
        (("bezorgd", "afgeleverd"), r"(?:kan|kon)\s+niet\s+worden\s+(?:bezorgd|afgeleverd)"
            r"|is\s+niet\s+bezorgd"),
        (("entreg",), r"n[ãa]o\s+(?:foi|pôde\s+ser|p[ôo]de\s+ser)\s+(?:possível\s+)?entreg"),
        (("levereras", "leveres", "toimittaa"),
            r"kunde\s+inte\s+levereras|kunne\s+ikke\s+leveres|ei\s+voitu\s+toimittaa"),
        (("dostarcz", "doručit"), r"nie\s+(?:została|mogła\s+zostać)\s+dostarczona"
            r"|nie\s+można\s+dostarczyć|nebylo\s+možné\s+doručit|nelze\s+doručit"),
        (("доставл", "доставить"),
            r"(?:письмо|сообщение)\s+не\s+(?:может\s+быть\s+)?доставлено"
            r"|не\s+удалось\s+доставить"),
        (("teslim", "iletilemedi"), r"teslim\s+edilemedi|iletilemedi"),
        (("無法",), r"無法傳遞|無法送達"),
        (("못했습니다", "않았습니다"),
            r"메시지를\s*(?:배달|전달|전송)하지\s*못했습니다|배달되지\s*않았습니다"),
        (("ไม่สามารถส่ง",), r"ไม่สามารถส่ง(?:ข้อความ|อีเมล)"),
    )
)  # fmt: skip


def _bounce_text(text: str) -> re.Match[str] | None:
    """The first MTA failure wording in ``text``: the classic phrases, then the others."""
    match = _scan(_BOUNCE_TEXT, _BOUNCE_TEXT_KEYWORDS, text)
    if match is not None:
        return match
    lowered = text.lower()
    for keywords, pattern in _MORE_BOUNCE_TEXTS:
        if any(keyword in lowered for keyword in keywords):
            found = pattern.search(text)
            if found is not None:
                return found
    return None


_DELAY_KEYWORDS = ("delay", "retr", "will try", "not yet been delivered", "could not send")
_DELAY_WORDING = re.compile(
    r"\(delay\)|has\s+been\s+delayed|delivery\s+(?:is\s+)?delayed|still\s+being\s+retried"
    r"|will\s+(?:continue\s+to\s+)?(?:retry|try)|has\s+not\s+yet\s+been\s+delivered|delayed\s+mail"
    r"|could\s+not\s+send\s+message\s+for\s+past|Warning:\s+message\s+\S+\s+delayed",
    _I,
)

_AUTO_SUBJECT = re.compile(
    r"""^[\s\[【(（<]*(?:
        # English words also occur in people's subjects ("Auto-reply not working"): these need
        # the colon / bracket / end that responders put after them.
        (?:automatic\s+reply | auto[-\s]?reply | auto[-\s]?response | autorespon\w*
          | out\s+of\s+(?:the\s+)?office(?:\s+auto[-\s]?reply|\s+reply|\s+notice)?
          | (?:vacation|holiday|absence|away)\s+(?:auto[-\s]?)?(?:reply|response)
        )\s*(?:[:：\]】)\-]|from\b|$)
      | auto\s*:\s.{0,80}?(?:out\s+of\s+(?:the\s+)?office|absent|abwesend|away)  # Lotus Notes
      | abwesenheit(?:snotiz|smeldung|sassistent|s-?notiz)? | automatische\s+antwort
      | r[ée]ponse\s+automatique | absence\s+du\s+bureau
      | respuesta\s+autom[áa]tica | fuera\s+de\s+la\s+oficina
      | risposta\s+automatica | resposta\s+autom[áa]tica | automatisch\s+antwoord
      | automatiskt?\s+svar | autosvar | automaattinen\s+vastaus | automatick[áa]\s+odpov[ěe]ď
      | odpowied[źz]\s+automatyczna | automatyczna\s+odpowied[źz]
      | automatikus\s+v[áa]lasz | αυτόματη\s+απάντηση | r[ăa]spuns\s+automat
      | automatski\s+odgovor | samodejni\s+odgovor | automatick[áa]\s+odpove[ďd]
      | automatinis\s+atsakymas | autom[āa]tisk[āa]\s+atbilde | automaatne\s+vastus
      | automatisk\s+svar | resposta\s+autom[àa]tica | sj[áa]lfvirkt\s+svar
      | автоматичен\s+отговор | автовідповідь | автоматична\s+відповідь
      | (?:automated|automatic)\s+(?:reply|response)\s*(?:[:：\]】)\-]|from\b|$)
      | автоматический\s+ответ | автоответ | otomatik\s+(?:yan[ıi]t|cevap)
      | 自動返信 | 自動応答 | 自動回覆 | 自動回復 | 自动回复 | 自动答复
      | 不在(?:通知|のお知らせ|連絡|です|中|[:：]) | 休暇(?:中|のお知らせ)
      | 자동\s*응답 | 부재\s*중
      | การตอบกลับอัตโนมัติ | ตอบกลับอัตโนมัติ | ไม่อยู่ที่สำนักงาน
      | trả\s+lời\s+tự\s+động | balasan\s+otomatis | رد\s+تلقائي | מענה\s+אוטומטי
      | תשובה\s+אוטומטית | השב\s+אוטומטי | הודעה\s+אוטומטית | fora\s+do\s+escrit[óo]rio
    )""",
    _IX,
)
# An auto-reply that says its author is away (subject or opening text) is an out-of-office.
_ABSENCE = re.compile(
    r"""out\s+of\s+(?:the\s+)?office | \bOOO\b | \bOOF\b
      | \b(?:I\s+am|I'm|I\s+will\s+be|I'll\s+be)\s+(?:currently\s+|now\s+)?
        (?:away|out|absent|off|travel(?:l)?ing|on\s+(?:vacation|holiday|leave|annual\s+leave
        |parental\s+leave|maternity\s+leave|paternity\s+leave|sick\s+leave|a\s+business\s+trip))
      | away\s+(?:from\s+(?:the|my)\s+(?:office|desk|e-?mail)|until\b)
      | \bon\s+(?:vacation|holiday|annual\s+leave|leave)\b
      | return(?:ing)?\s+to\s+the\s+office | back\s+in\s+the\s+office
      | limited\s+access\s+to\s+(?:my\s+)?e-?mail | intermittent\s+access\s+to\s+e-?mail
      | abwesen | nicht\s+im\s+(?:büro|hause) | urlaub
      | absent | cong[ée]s | ausente | fuera\s+de\s+la\s+oficina | de\s+vacaciones
      | fora\s+do\s+escrit[óo]rio | de\s+f[ée]rias
      | fuori\s+(?:sede|ufficio) | in\s+ferie | afwezig | niet\s+op\s+kantoor
      | frånvarande | poza\s+biurem | urlop | в\s+отпуске | отсутств
      | 不在 | 休暇 | 出張 | 休假 | 不在办公室 | 外出 | 부재 | 휴가
      | ไม่อยู่ | ลาพัก | ลาหยุด | \bvacation\b
    """,
    _IX,
)
_ABSENCE_KEYWORDS = (
    "out of", "ooo", "oof", "i am", "i'm", "i will be", "i'll be", "away", "vacation", "holiday",
    "leave", "office", "access to", "abwesen", "büro", "hause", "urlaub", "absent", "cong",
    "ausente", "oficina", "vacaciones", "fuori", "ferie", "afwezig", "kantoor", "frånvarande",
    "biurem", "urlop", "отпуск", "отсутств", "不在", "休暇", "出張", "休假", "外出", "부재", "휴가",
    "ไม่อยู่", "ลาพัก", "ลาหยุด", "escrit", "férias", "ferias",
)  # fmt: skip
_READ_RECEIPT_SUBJECT = re.compile(
    r"^(?:read|gelesen|lu|le[íi]do|letto|gelezen|l[äa]st|l[æa]st|luettu|přečteno|odczytana"
    r"|прочитано|開封済み|已读|已讀|อ่านแล้ว)\s*[:：]",
    _I,
)
_READ_RECEIPT_TEXT = re.compile(
    r"was\s+read\s+on|has\s+been\s+(?:read|displayed)|wurde\s+am\s+.{0,40}gelesen|a\s+été\s+lu"
    r"|fue\s+leído|è\s+stato\s+letto|is\s+gelezen\s+op|return\s+receipt",
    _I,
)

_SPAM_SUBJECT = re.compile(r"^\s*(?:\*{1,3}\s*SPAM\s*\*{1,3}|\[SPAM\]|\{SPAM\??\}|SPAM:)", _I)
_GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
_FOREFRONT_SPAM = re.compile(r"(?:^|;)\s*SFV:(?:SPM|BLK)\b", _I)

_DSN_BLOCK_SPLIT = re.compile(r"\n[ \t]*\n")
_DSN_FIELD = re.compile(r"^([A-Za-z-]+)[ \t]*:[ \t]*(.*(?:\n[ \t]+.*)*)", re.MULTILINE)
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
_HEADER_MESSAGE_ID = re.compile(
    r"^[ \t>]*Message-ID[ \t]*:[ \t]*<?([^<>\s]+@[^<>\s]+?)>?[ \t]*$", _IM
)
_ORIGINAL_MESSAGE_ID = re.compile(r"^Original-Message-ID[ \t]*:[ \t]*<?([^<>\s]+)>?", _IM)
_ARF_PROSE_ID = re.compile(r"with\s+the\s+message-id\s+of\s+<?([^<>\s]+@[^<>\s]+?)>?\s", _I)
# Where a non-DSN bounce starts quoting the original (recipients are listed before it).
_QUOTE_MARKER = re.compile(
    r"^[ \t-]*(?:This\s+is\s+a\s+copy\s+of\s+the\s+message|Below\s+this\s+line\s+is\s+a\s+copy"
    r"|Original\s+message(?:\s+headers)?\s*[:-]|-+\s*Original\s+message|The\s+original\s+message"
    r"\s+headers|Returned\s+message|Undelivered\s+Message|Transcript\s+of\s+session)",
    _IM,
)
# A line naming a failed recipient in a non-DSN bounce: '<a@b>: host …', '  a@b', '>>> a@b'.
_RECIPIENT_LINE = re.compile(
    r"^[ \t>]*(?:(?:recipient(?:\s+address)?|original\s+address|address|destinataire|destinatario"
    r"|empfänger|ontvanger|mottagare|modtager|mottaker|vastaanottaja|odbiorca|příjemce|címzett"
    r"|alıcı|получатель|ผู้รับ|penerima|người\s+nhận|받는\s*사람|수신자|收件人|收件者|宛先|受信者)"
    r"\s*[:：]\s*)?"
    r"(?:[^<>@\s]{1,40}(?=<))?<?(?:mailto:)?(" + _ADDRESS.pattern + r")>?(?=[\s:<(.,]|$)",
    _IM,
)


# '… message to <a@b> was undeliverable' (SES), 'Your message to a@b couldn't be delivered' (O365)
_RECIPIENT_PROSE = re.compile(
    r"message\s+to\s+<?(" + _ADDRESS.pattern + r")>?\s+(?:was\s+undeliverable"
    r"|couldn't\s+be\s+delivered|could\s+not\s+be\s+delivered|wasn't\s+delivered)",
    _I,
)


# 'Final-Recipient: rfc822; a@b' written out in a plain-text bounce.
_RECIPIENT_DSN_TEXT = re.compile(
    r"^[ \t>]*(?:Original|Final)-Recipient[ \t]*:[ \t]*rfc822[ \t]*;[ \t]*<?("
    + _ADDRESS.pattern
    + r")",
    _IM,
)


def _scan(pattern: re.Pattern[str], keywords: tuple[str, ...], text: str) -> re.Match[str] | None:
    """``pattern.search(text)``, skipped when no keyword occurs in the lower-cased text.

    The wording patterns try dozens of case-insensitive branches at every position (~0.3-1 µs a
    character); a C substring scan for keywords every branch contains rules most texts out.
    """
    lowered = text.lower()
    if not any(keyword in lowered for keyword in keywords):
        return None
    return pattern.search(text)


def _is_null_path(value: str) -> bool:
    return value.replace(" ", "") in ("<>", "")


def _null_return_path(v: _View) -> str | None:
    for name in ("return-path", "x-envelope-from"):
        if name in v.msg.headers and _is_null_path(v.header(name)):
            return f"{name.title()}: <>"
    return None


def _report_texts(v: _View, types: frozenset[str]) -> Iterable[str]:
    return (p.text for p in v.msg.report_parts if p.content_type in types)


def _failure_wording(v: _View) -> str | None:
    if _BOUNCE_SUBJECT.match(v.subject):
        return f"Subject: {v.subject[:80]}"
    match = _bounce_text(v.text_head())
    if match:
        return f"bounce text {' '.join(match.group(0).split())[:60]!r}"
    return None


# --------------------------------------------------------------------------------------------
# Bounce rules


def _dsn_report(v: _View) -> str | None:
    if v.msg.content_type == "multipart/report" and v.msg.report_type == "delivery-status":
        return "Content-Type: multipart/report; report-type=delivery-status"
    return None


def _dsn_part(v: _View) -> str | None:
    for part in v.msg.report_parts:
        if part.content_type in _STATUS_PARTS:
            return f"{part.content_type} part"
    return None


def _mailer_daemon_sender(v: _View) -> str | None:
    if _MAILER_DAEMON_LOCAL.match(v.from_local):
        return f"From: {v.from_email}"
    if not v.from_email and "daemon" in v.from_name:
        return f"From: {v.from_name} <>"
    return None


def _postmaster_failure(v: _View) -> str | None:
    if not _POSTMASTER_LOCAL.match(v.from_local):
        return None
    wording = v.failure_wording()
    return f"From: {v.from_email} with {wording}" if wording else None


def _x_failed_recipients(v: _View) -> str | None:
    value = v.header("x-failed-recipients")
    return f"X-Failed-Recipients: {value[:80]}" if value else None


def _null_sender_failure(v: _View) -> str | None:
    null = _null_return_path(v)
    if null is None:
        return None
    wording = v.failure_wording()
    return f"{null} with {wording}" if wording else None


def _bounce_sender_failure(v: _View) -> str | None:
    # The From display name an MTA uses ("Mail Delivery System", "Microsoft Outlook"…) or an
    # Auto-Submitted header, together with failure wording. A person's forwarded bounce has neither.
    auto = v.header("auto-submitted").lower()
    if not _BOUNCE_SENDER_NAME.search(v.from_name) and not auto.startswith("auto-"):
        return None
    wording = v.failure_wording()
    if wording is None:
        return None
    evidence = f"From name {v.from_name!r}" if v.from_name else f"Auto-Submitted: {auto}"
    return f"{evidence} with {wording}"


BOUNCE_RULES: tuple[Rule, ...] = _rules(
    Rule("dsn-report", "multipart/report with report-type=delivery-status (RFC 3464)", _dsn_report),
    Rule("dsn-part", "a message/delivery-status part anywhere", _dsn_part),
    Rule("mailer-daemon", "From a MAILER-DAEMON address", _mailer_daemon_sender),
    Rule("postmaster-failure", "From postmaster with failure wording", _postmaster_failure),
    Rule("x-failed-recipients", "X-Failed-Recipients header (Exim, Gmail)", _x_failed_recipients),
    Rule("null-sender-failure", "null Return-Path with failure wording", _null_sender_failure),
    Rule(
        "mta-sender-failure", "MTA sender name or Auto-Submitted + failure", _bounce_sender_failure
    ),
)


# --------------------------------------------------------------------------------------------
# Scored bounce evidence: bounces from MTAs whose wording none of the rules above knows.
#
# Each signal is weak alone: a person's mail can come with a null Return-Path, a postmaster may
# write about a new server, a subject may start "Undelivered parcel", a person may forward a
# message as an .eml attachment or paste "550 5.1.1" into a question. Together they are what an
# MTA's notice is made of: a machine sender, failure wording, status codes, the returned message.
# A message is a bounce when its signals add up to BOUNCE_THRESHOLD, at least one of them says
# delivery failed (wording, a status code), and either the sender is a machine or the subject
# is a failure notice; or when a machine sender returns a message we sent (OwnIdentity) and
# does not call itself an automatic reply.
# The body counts once, with its strongest signal, so text a person quotes cannot add up alone.

BOUNCE_THRESHOLD = 3


@dataclass(frozen=True, slots=True)
class Signal:
    """One scored piece of bounce evidence: its group decides how it may combine with others."""

    name: str
    description: str
    group: str  # "sender", "structure", "subject" or "body"
    weight: int
    check: Check


_DAEMON_LOCAL = re.compile(
    r"""^(?:postmaster | mdaemon | mailer | mail[-_.]?delivery\w* | delivery[-_.]?(?:status|notif\w*
        |subsystem|system|report)\w* | (?:mail[-_.]?)?(?:ndr|dsn) | bounces? | mail[-_.]?admin\w*
        | mailadm | mail[-_.]?system | smtp[-_.]?(?:daemon|admin|error)? | mta)(?:[-+_.=].*)?$
      | ^.+[-+_.=](?:bounces?|dsn|ndr|postmaster)$
      | ^(?:bounces?|dsn|ndr)[-+_.=]
    """,
    re.VERBOSE,  # matched against the lower-cased From: no IGNORECASE, ~5x faster
)
_DAEMON_NAME = re.compile(
    r"""mailer[-\s]?daemon | mail\s+delivery | delivery\s+(?:subsystem|system|service|status)
      | mail\s+(?:system|administrator|router|server|gateway) | e-?mail\s+(?:system|gateway)
      | postmaster | microsoft\s+(?:outlook|exchange) | system\s*administrator
      | internet\s+mail\s+delivery | messaging\s+(?:server|gateway|security)
      | symantec | messagelabs | mimecast | barracuda | proofpoint | ironport | postini
      | trend\s*micro | sophos | mcafee | mail\s*scanner
      | mail-?zustell | e-?mail-?system | système\s+de\s+messagerie | administrateur\s+(?:de|du)
      | sistema\s+de\s+correo | administrador\s+del?\s+(?:sistema|correo) | servidor\s+de\s+correo
      | メール(?:配信)?システム | システム管理者 | 系统管理员 | 系統管理員 | 邮件系统 | 郵件系統
      | почтов\w+\s+(?:систем|сервер|служб)\w* | систем\w*\s+доставки | 메일\s*시스템
      | ระบบ(?:อีเมล|จดหมาย)
    """,
    re.VERBOSE,  # matched against the lower-cased From: no IGNORECASE, ~5x faster
)
# DSN fields a plain-text bounce writes out (RFC 3464 names with their typed values).
_DSN_TEXT = re.compile(
    r"""^[ \t>]*(?:Status[ \t]*:[ \t]*[245]\.\d{1,3}\.\d{1,3}
      | Action[ \t]*:[ \t]*(?:failed|delayed)\b
      | Diagnostic-Code[ \t]*:[ \t]*(?:smtp|x-\w+)[ \t]*;
      | (?:Final|Original)-Recipient[ \t]*:[ \t]*rfc822[ \t]*;
      | Remote-MTA[ \t]*:[ \t]*dns[ \t]*;)
    """,
    _IX | re.MULTILINE,
)
_DSN_TEXT_KEYWORDS = ("status", "action", "diagnostic-code", "recipient", "remote-mta")
# An SMTP reply naming a failure: an enhanced status code after a reply code ("550 5.1.1",
# "554-5.7.1"), qmail's "(#5.1.1)", or a 5xx/4xx code a few words from what it refused.
_SMTP_REPLY = re.compile(
    r"""\b[45][0-5]\d[ \t-]+[245]\.\d{1,3}\.\d{1,3}\b
      | \(\#[45]\.\d{1,3}\.\d{1,3}\)
      | \b(?:55[0-4]|45[0-2]|421)\b[^\n]{0,60}?\b(?:user|mailbox|recipient|address|unknown
        |rejected|refused|denied|not\s+found|quota|full|relay|unavailable|does\s+not\s+exist
        |no\s+such|invalid|blocked|spam)
    """,
    _IX,
)
_SMTP_KEYWORDS = ("55", "45", "421", "(#")


def _sig_null_path(v: _View) -> str | None:
    return _null_return_path(v)


def _sig_daemon_sender(v: _View) -> str | None:
    if v.from_local and _DAEMON_LOCAL.match(v.from_local):
        return f"From: {v.from_email} (a mail system's mailbox)"
    if v.from_name and _DAEMON_NAME.search(v.from_name[:200]):
        return f"From name {v.from_name[:60]!r} (a mail system)"
    return None


def _sig_no_from(v: _View) -> str | None:
    return "no From address" if not v.from_email else None


def _sig_auto_submitted(v: _View) -> str | None:
    value = v.header("auto-submitted").lower()
    return f"Auto-Submitted: {value[:40]}" if value.startswith("auto-") else None


def _returned_texts(v: _View) -> Iterable[str]:
    """The header blocks of returned messages: report parts and message attachments."""
    for text in _report_texts(v, _RETURNED_PARTS):
        yield text[:65_536].replace("\r\n", "\n")
    for attachment in v.msg.attachments:
        if attachment.content_type in _RETURNED_PARTS:
            head = attachment.payload[:65_536].decode("utf-8", "replace").replace("\r\n", "\n")
            yield head.split("\n\n", 1)[0]


_RETURNED_FROM = re.compile(r"^From[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*", _IM)


def _own_in(text: str, own: OwnIdentity) -> str | None:
    """Our Message-ID domain or account address in a returned message's headers, or None."""
    domains = _own_domains(own.message_id_domains)
    if domains:
        for match in _HEADER_MESSAGE_ID.finditer(text):
            domain = match.group(1).rpartition("@")[2].lower()
            if domain in domains or any(domain.endswith("." + d) for d in domains):
                return f"Message-ID <{match.group(1)[:80]}>"
    keys = _own_keys(own.addresses)
    if keys:
        for line in _RETURNED_FROM.findall(text):
            for found in _ADDRESS.findall(line):
                if found.lower() in keys:
                    return f"From {found.lower()}"
    return None


def _sig_returned(v: _View) -> str | None:
    returned = v.returned()
    if returned and all(ours is None for _, ours in returned):
        # one of ours is counted by the stronger returned-own signal instead
        return "a returned message part (message/rfc822 or text/rfc822-headers)"
    return None


def _sig_returned_own(v: _View) -> str | None:
    for _, ours in v.returned():
        if ours is not None:
            return f"a returned message of ours ({ours})"
    return None


def _sig_other_report(v: _View) -> str | None:
    known = ("delivery-status", "feedback-report", "disposition-notification")
    if v.msg.content_type == "multipart/report" and v.msg.report_type not in known:
        return f"Content-Type: multipart/report; report-type={v.msg.report_type or '(none)'}"
    return None


def _sig_failure_subject(v: _View) -> str | None:
    if _BOUNCE_SUBJECT.match(v.subject) or _FAILURE_SUBJECT.match(v.subject):
        return f"Subject: {v.subject[:80]}"
    return None


def _sig_failure_text(v: _View) -> str | None:
    match = _bounce_text(v.text_head())
    return f"bounce text {' '.join(match.group(0).split())[:60]!r}" if match else None


def _sig_dsn_text(v: _View) -> str | None:
    match = _scan(_DSN_TEXT, _DSN_TEXT_KEYWORDS, v.text_head())
    return f"DSN field in the text {' '.join(match.group(0).split())[:40]!r}" if match else None


def _sig_smtp_reply(v: _View) -> str | None:
    match = _scan(_SMTP_REPLY, _SMTP_KEYWORDS, v.text_head())
    return f"SMTP reply {' '.join(match.group(0).split())[:40]!r}" if match else None


BOUNCE_SIGNALS: tuple[Signal, ...] = (
    Signal("null-return-path", "Return-Path: <> (null sender)", "sender", 2, _sig_null_path),
    Signal(
        "daemon-sender",
        "From a mail system (postmaster, bounces+VERP, 'Mail Delivery System'…)",
        "sender",
        2,
        _sig_daemon_sender,
    ),
    Signal("no-from", "no From address", "sender", 1, _sig_no_from),
    Signal("auto-generated", "Auto-Submitted: auto-*", "sender", 1, _sig_auto_submitted),
    Signal(
        "returned-own", "a returned message of ours", "structure", 2, _sig_returned_own
    ),
    Signal("returned-message", "a returned message part", "structure", 1, _sig_returned),
    Signal("other-report", "multipart/report of another type", "structure", 2, _sig_other_report),
    Signal(
        "failure-subject", "failure notice subject, many languages", "subject", 2,
        _sig_failure_subject,
    ),
    Signal("failure-text", "MTA failure wording in the text", "body", 2, _sig_failure_text),
    Signal("dsn-text", "DSN fields written in the text", "body", 2, _sig_dsn_text),
    Signal("smtp-reply", "SMTP failure reply code in the text", "body", 1, _sig_smtp_reply),
)  # fmt: skip


def _bounce_score(v: _View) -> list[str] | None:
    """The reasons when the scored signals make ``v`` a bounce (see BOUNCE_THRESHOLD), else None.

    The body is read last and only when the sender or the subject already points at a mail
    system: most mail has neither, and costs a few header checks here.
    """
    if v.msg.report_type in ("feedback-report", "disposition-notification") or any(
        p.content_type in _ARF_PARTS or p.content_type in _MDN_PARTS for p in v.msg.report_parts
    ):
        return None  # a report quotes the message it reports on: the report rules decide
    hits: list[tuple[Signal, str]] = []
    for signal in BOUNCE_SIGNALS:
        if signal.group != "body" and (reason := signal.check(v)) is not None:
            hits.append((signal, reason))
    groups = {signal.group for signal, _ in hits}
    if "sender" not in groups and "subject" not in groups:
        return None
    for signal in BOUNCE_SIGNALS:  # the body counts once, with its strongest signal
        if signal.group == "body" and (reason := signal.check(v)) is not None:
            hits.append((signal, reason))
            break
    score = sum(signal.weight for signal, _ in hits)
    sender = sum(signal.weight for signal, _ in hits if signal.group == "sender")
    failure = any(signal.group in ("subject", "body") for signal, _ in hits)
    own_returned = any(signal.name == "returned-own" for signal, _ in hits)
    scored = score >= BOUNCE_THRESHOLD and failure
    # Without failure wording only a machine returning our own message is a bounce, and not
    # when it says it is an automatic reply (a responder quoting what it answers).
    if not scored and (not (own_returned and sender >= 2) or _hits(v, AUTO_REPLY_RULES)):
        return None
    reasons = [f"{reason} [{signal.name} +{signal.weight}]" for signal, reason in hits]
    reasons.append(f"bounce evidence scores {score} (a bounce from {BOUNCE_THRESHOLD})")
    return reasons


# --------------------------------------------------------------------------------------------
# Report rules (ARF abuse reports, MDN read receipts)


def _arf_report(v: _View) -> str | None:
    if v.msg.content_type == "multipart/report" and v.msg.report_type == "feedback-report":
        return "Content-Type: multipart/report; report-type=feedback-report (ARF)"
    if any(p.content_type in _ARF_PARTS for p in v.msg.report_parts):
        return "message/feedback-report part (ARF)"
    return None


def _mdn_report(v: _View) -> str | None:
    if v.msg.content_type == "multipart/report" and v.msg.report_type == "disposition-notification":
        return "Content-Type: multipart/report; report-type=disposition-notification (MDN)"
    for part in v.msg.report_parts:
        if part.content_type in _MDN_PARTS:
            return f"{part.content_type} part (MDN)"
    return None


def _read_receipt_text(v: _View) -> str | None:
    if not _READ_RECEIPT_SUBJECT.match(v.subject):
        return None
    match = _READ_RECEIPT_TEXT.search(v.text_head(4_000))
    if match is None:
        return None
    return f"Subject: {v.subject[:60]} with read-receipt text {match.group(0)!r}"


# ARF fields written out as text (feedback loops that send the report as text/plain).
_ARF_TEXT = re.compile(
    r"^[ \t]*Feedback-Type[ \t]*:[ \t]*(?:abuse|fraud|virus|other|not-spam|auth-failure|dmarc)\b",
    _IM,
)
_ARF_TEXT_FIELD = re.compile(r"^[ \t]*(?:User-Agent|Version|Source-IP|Arrival-Date)[ \t]*:", _IM)
# Complaint forwarders that predate ARF (Microsoft JMRP, AOL's early loop) return the message
# with a complaint subject or from a complaint mailbox; the header only JMRP adds, anywhere.
_COMPLAINT_SUBJECT = re.compile(
    r"^[\s\[(]*(?:complaint\s+about\s+message|e-?mail\s+feedback\s+report|abuse\s+report"
    r"|spam\s+(?:complaint|report)|feedback\s+loop|fbl\s+report|junk\s+mail\s+report)",
    _I,
)
_COMPLAINT_LOCAL = re.compile(
    r"^(?:abuse|fbl|feedback[-_.]?loop|complaints?|scomp|arf|spam[-_.]?report)(?:[-+_.].*)?$", _I
)
# DMARC aggregate (RFC 7489 7.2.1.1) and SMTP TLS (RFC 8460) reports name themselves so.
_AGGREGATE_SUBJECT = re.compile(r"^\s*Report\s+Domain\s*:\s*\S+.{0,200}?Submitter\s*:", _I)


def _arf_text(v: _View) -> str | None:
    text = v.msg.text
    if text.find("eedback-", 0, 8_000) < 0 and text.find("EEDBACK-", 0, 8_000) < 0:
        return None  # a substring scan rules most mail out before the pattern runs
    head = v.text_head(8_000)
    match = _ARF_TEXT.search(head)
    if match and _ARF_TEXT_FIELD.search(head):
        return f"ARF fields in the text ({' '.join(match.group(0).split())})"
    return None


def _complaint_forward(v: _View) -> str | None:
    returned = [text for text, _ in v.returned()]
    if not returned:
        return None
    if any("x-hmxmroriginalrecipient" in text.lower() for text in returned):
        return "returned message with X-HmXmrOriginalRecipient (Microsoft JMRP complaint)"
    if _COMPLAINT_SUBJECT.match(v.subject):
        return f"Subject: {v.subject[:60]} with the reported message attached"
    if v.from_local and _COMPLAINT_LOCAL.match(v.from_local):
        return f"From: {v.from_email} (a complaint loop) with the reported message attached"
    return None


def _aggregate_report(v: _View) -> str | None:
    if _AGGREGATE_SUBJECT.match(v.subject):
        return f"Subject: {v.subject[:80]} (DMARC / TLS aggregate report)"
    if "tls-report-domain" in v.msg.headers or "tls-report-submitter" in v.msg.headers:
        return "TLS-Report-Domain header (SMTP TLS report, RFC 8460)"
    return None


REPORT_RULES: tuple[Rule, ...] = _rules(
    Rule("arf", "ARF feedback report (RFC 5965)", _arf_report),
    Rule("mdn", "message disposition notification (RFC 8098)", _mdn_report),
    Rule("read-receipt-text", "plain-text read receipt", _read_receipt_text),
    Rule("arf-text", "ARF fields written as text", _arf_text),
    Rule("complaint-forward", "complaint loop returning the reported message", _complaint_forward),
    Rule("aggregate-report", "DMARC / SMTP TLS aggregate report", _aggregate_report),
)


# --------------------------------------------------------------------------------------------
# Auto-reply rules (RFC 3834 and vendor headers, localised subjects)


def _auto_submitted(v: _View) -> str | None:
    value = v.header("auto-submitted")
    if value and value.lower().split(";")[0].strip() != "no":
        return f"Auto-Submitted: {value}"
    return None


# Headers auto-responders set; value regex None means "present at all".
_AUTO_HEADERS: tuple[tuple[str, re.Pattern[str] | None], ...] = (
    ("x-autoreply", re.compile(r"^(?!no\b|false\b)", _I)),
    ("x-autorespond", None),
    ("x-autoreply-from", None),
    ("x-mail-autoreply", None),
    ("x-autogenerated", re.compile(r"^reply", _I)),
    ("x-fc-machinegenerated", re.compile(r"^true", _I)),
    ("x-post-messageclass", re.compile(r"autoresponder", _I)),
    ("x-precedence", re.compile(r"^auto[-_]?reply", _I)),
    ("precedence", re.compile(r"^auto[-_]?reply", _I)),
    ("x-mailer", re.compile(r"\bvacation\b|autorespond|auto[-_ ]?repl", _I)),
    ("delivered-to", re.compile(r"^autoresponder\b", _I)),  # qmail autorespond
)


def _auto_reply_header(v: _View) -> str | None:
    headers = v.msg.headers
    for name, pattern in _AUTO_HEADERS:
        if name not in headers:
            continue
        value = v.header(name)
        if pattern is None or pattern.search(value):
            return f"{'-'.join(p.capitalize() for p in name.split('-'))}: {value}".rstrip(": ")
    return None


def _auto_reply_subject(v: _View) -> str | None:
    return f"Subject: {v.subject[:80]}" if _AUTO_SUBJECT.match(v.subject) else None


def _unsubscribe_request(v: _View) -> str | None:
    # Apple Mail's one-click "unsubscribe" mails the List-Unsubscribe address: machine-made, and
    # worth a reason of its own (a CRM may want to mark the contact Do Not Contact).
    if v.header("x-apple-unsubscribe").lower() == "true":
        return "X-Apple-Unsubscribe: true (an unsubscribe request sent by Apple Mail)"
    return None


# What an automatic answer says of itself, in its opening lines.
_AUTOMATED_TEXT = re.compile(
    r"""this\s+is\s+an?\s+auto(?:mat(?:ed|ic))?[-\s]*(?:generated\s+)?(?:reply|response|message
        |notification|e-?mail|acknowledge?ment)
      | auto(?:matically)?[-\s]generated | \bsent\s+automatically\b
      | we\s+(?:have\s+)?received\s+your\s+(?:message|e-?mail|request|enquiry|inquiry)
      | dies\s+ist\s+eine\s+automatische\s+(?:antwort|nachricht|e-?mail)
      | (?:ceci\s+est|il\s+s'agit\s+d')\s*(?:une|un)\s+(?:réponse|message)\s+automatique
      | (?:este\s+es|esta\s+es)\s+(?:un|una)\s+(?:mensaje|correo|respuesta)\s+autom[áa]tic
      | questa\s+è\s+una\s+risposta\s+automatica | (?:è|e')\s+un\s+messaggio\s+automatico
      | dit\s+is\s+een\s+automatisch\s+(?:antwoord|bericht|gegenereerd)
      | esta\s+é\s+uma\s+(?:mensagem|resposta)\s+autom[áa]tica
      | (?:это|данное)\s+(?:письмо|сообщение)?\s*(?:отправлено|создано|сгенерировано)
        \s+автоматически
      | это\s+автоматическ\w+\s+(?:ответ|сообщение|письмо)
      | 自動(?:返信|応答|送信)(?:メール|です|されて) | 系统自动(?:发送|回复) | 系統自動(?:發送|回覆)
      | 자동\s*(?:응답|회신|발송) | (?:ข้อความ|อีเมล)(?:นี้)?(?:ตอบกลับ|ส่ง)อัตโนมัติ
    """,
    _IX,
)


def _null_sender_automated(v: _View) -> str | None:
    # The same null path with the responder's own "this is an automatic reply" in its opening.
    null = _null_return_path(v)
    if null is None:
        return None
    match = _AUTOMATED_TEXT.search(v.text_head(1_500))
    return f"{null} with {' '.join(match.group(0).split())[:60]!r}" if match else None


def _null_sender_absence(v: _View) -> str | None:
    # Responders send from the null path (RFC 3834 5.1); with an absence notice in the subject
    # or the opening lines that is an out-of-office even without a responder header. A person
    # saying "I'm on vacation next week" writes from a real envelope sender.
    null = _null_return_path(v)
    if null is None:
        return None
    absence = _absence_notice(v)
    return f"{null} with {absence}" if absence else None


AUTO_REPLY_RULES: tuple[Rule, ...] = _rules(
    Rule("auto-submitted", "Auto-Submitted other than 'no' (RFC 3834)", _auto_submitted),
    Rule(
        "auto-reply-header",
        "X-Autoreply, X-Autorespond, Precedence: auto_reply…",
        _auto_reply_header,
    ),
    Rule(
        "auto-reply-subject",
        "auto-reply / out-of-office subject, many languages",
        _auto_reply_subject,
    ),
    Rule("unsubscribe-request", "Apple Mail unsubscribe request", _unsubscribe_request),
    Rule("null-sender-absence", "null Return-Path with an absence notice", _null_sender_absence),
    Rule(
        "null-sender-automated",
        "null Return-Path with automatic-reply text",
        _null_sender_automated,
    ),
)


def _absence_notice(v: _View) -> str | None:
    # An absence notice says so in its subject or first lines.
    match = _scan(_ABSENCE, _ABSENCE_KEYWORDS, v.subject) or _scan(
        _ABSENCE, _ABSENCE_KEYWORDS, v.text_head(1_500)
    )
    return f"absence notice: {' '.join(match.group(0).split())!r}" if match else None


# --------------------------------------------------------------------------------------------
# List rules


def _list_header(v: _View) -> str | None:
    for name in ("list-id", "list-unsubscribe", "list-post"):
        value = v.header(name)
        if value:
            return f"{name.title()}: {value[:80]}"
    return None


def _bulk_precedence(v: _View) -> str | None:
    for name in ("precedence", "x-precedence"):
        value = v.header(name).lower()
        if value in ("bulk", "list", "junk"):
            return f"{name.title()}: {value}"
    return None


_LIST_SOFTWARE_HEADERS = (
    "x-mailing-list",
    "mailing-list",
    "x-mailman-version",
    "x-beenthere",
    "x-list-administrivia",
    "x-ml-name",
    "x-list",
    "x-sympa-to",
    "x-sympa-from",
    "x-campaign",
    "x-campaignid",
    "x-mc-user",
)


def _list_software(v: _View) -> str | None:
    headers = v.msg.headers
    for name in _LIST_SOFTWARE_HEADERS:
        if name in headers:
            return f"{name.title()}: {v.header(name)[:60]}".rstrip(": ")
    if "x-sequence" in headers and "x-loop" in headers:  # Sympa
        return f"X-Sequence with X-Loop: {v.header('x-loop')[:60]}"
    return None


_LIST_OWNER_LOCAL = re.compile(r"^owner-.+|.+-(?:owner|bounces|request|admin)(?:\+.*)?$", _I)


def _list_owner_sender(v: _View) -> str | None:
    sender = v.msg.sender
    if sender is None:
        return None
    local = sender.email.lower().rpartition("@")[0]
    if local and _LIST_OWNER_LOCAL.match(local) and email_key(sender.email) != v.from_key:
        return f"Sender: {sender.email} (list owner address)"
    return None


def _no_reply_broadcast(v: _View) -> str | None:
    # A no-reply sender writing "To" itself hides the real recipients in Bcc: a bulk send
    # (forum/tracker digests). A web-form relay writes To *us*, so it is not caught here.
    if not v.from_key or v.msg.cc or not v.msg.to:
        return None
    if all(a.email.lower() == v.from_key for a in v.msg.to) and is_no_reply(v.from_key):
        return f"From and To are the same no-reply address {v.from_email} (recipients in Bcc)"
    return None


LIST_RULES: tuple[Rule, ...] = _rules(
    Rule("list-header", "RFC 2369/2919 List-Id, List-Unsubscribe, List-Post", _list_header),
    Rule("bulk-precedence", "Precedence: bulk / list / junk", _bulk_precedence),
    Rule("list-software", "Mailman, Sympa, ezmlm, newsletter headers", _list_software),
    Rule("list-owner-sender", "Sender is a list owner/bounce address", _list_owner_sender),
    Rule("no-reply-broadcast", "no-reply sender mailing itself with Bcc", _no_reply_broadcast),
)


# --------------------------------------------------------------------------------------------
# Own-loop rules


@functools.lru_cache(maxsize=16)
def _own_keys(addresses: frozenset[str]) -> frozenset[str]:
    return frozenset(k for k in (email_key(a) for a in addresses) if k)


@functools.lru_cache(maxsize=16)
def _own_domains(domains: frozenset[str]) -> frozenset[str]:
    return frozenset(d.strip().strip(".").lower() for d in domains if d.strip())


def _own_address(v: _View) -> str | None:
    if v.from_key and v.from_key in _own_keys(v.own.addresses):
        return f"From {v.from_email} is our own account (loop)"
    return None


def _own_message_id(v: _View) -> str | None:
    if v.msg.message_id_synthesized or "@" not in v.msg.message_id:
        return None
    domain = v.msg.message_id.rpartition("@")[2].strip(">").lower()
    own = _own_domains(v.own.message_id_domains)
    if domain in own or any(domain.endswith("." + d) for d in own):
        return f"Message-ID domain {domain} is ours (loop)"
    return None


OWN_RULES: tuple[Rule, ...] = _rules(
    Rule("own-address", "From one of our account addresses", _own_address),
    Rule("own-message-id", "Message-ID minted by us", _own_message_id),
)


# --------------------------------------------------------------------------------------------
# Spam (orthogonal to kind)


def _spam_reason(v: _View) -> str | None:
    flag = v.header("x-spam-flag")
    if flag.lower().startswith("yes"):
        return f"X-Spam-Flag: {flag}"
    for name in ("x-spam-status", "x-barracuda-spam-status"):
        status = v.header(name)
        if status.lower().startswith("yes"):
            return f"{name.title()}: {status[:60]}"
    spam = v.header("x-spam")
    if spam.lower().startswith(("yes", "true", "spam")):
        return f"X-Spam: {spam}"
    forefront = v.header("x-forefront-antispam-report")
    if forefront and _FOREFRONT_SPAM.search(forefront):
        return "X-Forefront-Antispam-Report: SFV:SPM"
    scl = v.header("x-ms-exchange-organization-scl")
    if scl.lstrip("-").isdigit() and int(scl) >= 5:
        return f"X-MS-Exchange-Organization-SCL: {scl}"
    if _SPAM_SUBJECT.match(v.subject):
        return f"Subject tagged as spam: {v.subject[:40]}"
    if v.msg.text.find(_GTUBE, 0, 4_000) >= 0:
        return "GTUBE anti-spam test string in the body"
    return None


# --------------------------------------------------------------------------------------------
# What a bounce or report points back to


def _dsn_recipients(v: _View) -> tuple[list[str], list[str], set[str]]:
    """(failed, delayed, actions) from the per-recipient blocks of every delivery-status part."""
    failed: list[str] = []
    delayed: list[str] = []
    actions: set[str] = set()
    for text in _report_texts(v, _STATUS_PARTS):
        for block in _DSN_BLOCK_SPLIT.split(text.replace("\r\n", "\n")):
            fields = {k.lower(): " ".join(val.split()) for k, val in _DSN_FIELD.findall(block)}
            action = fields.get("action", "").split(" ")[0].lower()
            if action:
                actions.add(action)
            status = fields.get("status", "")
            if action == "failed" or (not action and status.startswith("5")):
                target = failed
            elif action == "delayed":
                target = delayed
            else:
                continue
            for field in ("original-recipient", "final-recipient"):
                match = _ADDRESS.search(fields.get(field, "").rpartition(";")[2])
                if match:
                    target.append(match.group(0).lower())
    return failed, delayed, actions


def _text_recipients(v: _View) -> list[str]:
    """Failed recipients named in a non-DSN bounce, before it quotes the original message."""
    text = v.text_head()
    marker = _QUOTE_MARKER.search(text)
    head = text[: marker.start()] if marker else text
    ours = {a.email.lower() for a in v.msg.to}
    found = []
    matches = (
        *_RECIPIENT_DSN_TEXT.finditer(head),
        *_RECIPIENT_PROSE.finditer(head),
        *_RECIPIENT_LINE.finditer(head),
    )
    for match in matches:
        address = match.group(1).lower()
        if address not in ours and not is_no_reply(address):
            found.append(address)
    return found


def _returned_message_ids(v: _View, kind: Kind) -> list[str]:
    ids: list[str] = []
    for text in _report_texts(v, _RETURNED_PARTS):
        match = _HEADER_MESSAGE_ID.search(text)
        if match:
            ids.append(match.group(1))
    for text in _report_texts(v, _MDN_PARTS):
        ids.extend(_ORIGINAL_MESSAGE_ID.findall(text))
    if not ids and kind is Kind.BOUNCE:
        ids.extend(_attached_message_ids(v))
    if not ids and kind is Kind.BOUNCE:
        # Non-DSN bounces quote the original's headers in the text; the first one is the original
        # (later matches may sit inside its body).
        match = _HEADER_MESSAGE_ID.search(v.text_head(50_000))
        if match:
            ids.append(match.group(1))
    if not ids and kind is Kind.REPORT:
        match = _ARF_PROSE_ID.search(v.text_head(4_000))
        if match:
            ids.append(match.group(1))
    if not ids and kind is Kind.BOUNCE:
        # Exchange NDRs reply to the message they return; some name it in References only
        # (the last entry is the message replied to).
        ids.extend(v.msg.in_reply_to or v.msg.references[-1:])
    return ids


def _attached_message_ids(v: _View) -> list[str]:
    """Message-IDs in returned messages filed as attachments (outside multipart/report, or
    non-standard types such as message/rfc822-headers)."""
    ids = []
    for attachment in v.msg.attachments:
        if attachment.content_type not in _RETURNED_PARTS:
            continue
        head = attachment.payload[:65_536].decode("utf-8", "replace").replace("\r\n", "\n")
        match = _HEADER_MESSAGE_ID.search(head.split("\n\n", 1)[0])
        if match:
            ids.append(match.group(1))
    return ids


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x.strip().strip("<>") for x in values if x.strip()))


def _hits(v: _View, rules: tuple[Rule, ...]) -> list[str]:
    return [reason for rule in rules if (reason := rule.check(v)) is not None]


# --------------------------------------------------------------------------------------------


def _classify_bounce(v: _View, reasons: list[str], spam: str | None) -> Classification:
    failed, delayed, actions = _dsn_recipients(v)
    if actions and actions <= {"delivered", "relayed", "expanded"}:
        # A positive DSN (delivery receipt) returns nothing: a report, not a bounce.
        reasons.append(f"DSN Action: {', '.join(sorted(actions))} (success notification)")
        return _finish(Kind.REPORT, reasons, spam, v, ())
    if delayed and not failed:
        reasons.append("DSN Action: delayed (delivery delayed, not failed yet)")
    elif not actions and _scan(
        _DELAY_WORDING, _DELAY_KEYWORDS, f"{v.subject}\n{v.text_head(2_000)}"
    ):
        reasons.append("delayed: the notice says delivery is still being retried")
    header_failed = [
        m.group(0).lower()
        for m in _ADDRESS.finditer(" ".join(v.msg.headers.get("x-failed-recipients", ())))
    ]
    recipients = header_failed + failed
    if not recipients and not delayed:
        recipients = _text_recipients(v)
    if not recipients and not delayed:
        recipients = _returned_own_recipients(v)
    return _finish(Kind.BOUNCE, reasons, spam, v, recipients)


_RETURNED_TO = re.compile(r"^(?:To|Cc)[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*", _IM)


def _returned_own_recipients(v: _View) -> list[str]:
    """The To/Cc of a returned message we sent, when the notice names no recipient itself.

    Only for our own message: then its recipients are the addresses we tried to reach, and the
    bounce belongs to them whatever language the notice is in.
    """
    for text, ours in v.returned():
        if ours is None:
            continue
        own = _own_keys(v.own.addresses)
        return [
            found.lower()
            for line in _RETURNED_TO.findall(text.replace("\r\n", "\n"))
            for found in _ADDRESS.findall(line)
            if found.lower() not in own
        ]
    return []


def _finish(
    kind: Kind, reasons: list[str], spam: str | None, v: _View, failed: Iterable[str]
) -> Classification:
    if spam:
        reasons.append(spam)
    returned = _returned_message_ids(v, kind) if kind is Kind.BOUNCE or kind is Kind.REPORT else ()
    return Classification(
        kind=kind,
        reasons=tuple(reasons),
        bounced_message_ids=_unique(returned) if returned else (),
        failed_recipients=_unique(failed) if failed else (),
        spam=spam is not None,
    )


def classify(msg: InboundMessage, own: OwnIdentity = OwnIdentity()) -> Classification:
    """Decide what kind of mail ``msg`` is; first matching stage wins, all its hits are reasons."""
    v = _View(msg, own)
    spam = _spam_reason(v)
    if reasons := _hits(v, BOUNCE_RULES):
        return _classify_bounce(v, reasons, spam)
    if (scored := _bounce_score(v)) is not None:
        return _classify_bounce(v, scored, spam)
    if reasons := _hits(v, REPORT_RULES):
        return _finish(Kind.REPORT, reasons, spam, v, ())
    if reasons := _hits(v, AUTO_REPLY_RULES):
        absence = _absence_notice(v)
        if absence:
            reasons.append(absence)
        return _finish(Kind.OUT_OF_OFFICE if absence else Kind.AUTO_REPLY, reasons, spam, v, ())
    if reasons := _hits(v, LIST_RULES):
        return _finish(Kind.LIST, reasons, spam, v, ())
    if reasons := _hits(v, OWN_RULES):
        return _finish(Kind.OWN, reasons, spam, v, ())
    return _finish(
        Kind.HUMAN, ["no bounce, report, auto-reply, list or loop evidence"], spam, v, ()
    )
