"""Which lead a message belongs to: references, our token, subject, then the sender."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from worker.mail.message import InboundMessage

# Reply/forward prefixes of many clients and languages, with counters ("Re[2]:", "RE^3:") and
# list tags in front ("[sales] Re:"). Thai clients write "ตอบกลับ" / "ส่งต่อ".
_PREFIX = re.compile(
    r"^\s*(?:\[[^\]]{1,40}\]\s*)?"
    r"(?:re|fw|fwd|aw|wg|sv|vs|vb|r|rif|i|tr|antw|odp|enc|res|ynt|ilt|πρ|отв|ответ|"
    r"回复|回覆|答复|转发|轉寄|返信|転送|ตอบกลับ|ส่งต่อ|답장|전달)"
    r"\s*(?:\[\d+\]|\^\d+|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE,
)
_TAG = re.compile(r"\[#L(\d{1,12})-([a-z2-7]{8})\]", re.IGNORECASE)
_TOKEN_IN_ID = re.compile(r"(?:^|[<.+\-])L(\d{1,12})-([a-z2-7]{8})(?=[.@+>]|$)", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def normalize_subject(subject: str) -> str:
    """The subject two messages of one conversation share: prefixes, tags and case removed."""
    text = unicodedata.normalize("NFKC", subject or "")
    text = _TAG.sub(" ", text)
    previous = None
    while previous != text:
        previous = text
        text = _PREFIX.sub("", text)
    return _SPACE.sub(" ", text).strip().casefold()[:255]


class TokenSigner:
    """Signed lead tokens (``L42-abcdefgh``) so a stranger cannot guess one into a thread."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("token secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, lead_id: int) -> str:
        digest = hmac.new(self._secret, f"lead:{lead_id}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest[:5]).decode().lower()

    def token(self, lead_id: int) -> str:
        return f"L{lead_id}-{self._mac(lead_id)}"

    def subject_tag(self, lead_id: int) -> str:
        return f"[#{self.token(lead_id)}]"

    def verify(self, lead_id: int, mac: str) -> bool:
        return hmac.compare_digest(self._mac(lead_id), mac.lower())

    def find(self, texts: Iterable[str]) -> list[int]:
        """Lead ids whose valid token appears in any text (subject, Message-IDs, addresses)."""
        found: list[int] = []
        for text in texts:
            for pattern in (_TAG, _TOKEN_IN_ID):
                for match in pattern.finditer(text):
                    lead_id = int(match.group(1))
                    if self.verify(lead_id, match.group(2)) and lead_id not in found:
                        found.append(lead_id)
        return found


class ThreadLookups(Protocol):
    """What threading needs to know from the store; the store implements it."""

    def knows_sender(self, email_key: str) -> bool: ...
    def leads_by_message_ids(self, message_ids: Sequence[str]) -> list[int]: ...
    def existing_leads(self, lead_ids: Sequence[int]) -> list[int]: ...
    def open_leads_by_subject(self, email_key: str, subject_key: str) -> list[int]: ...
    def leads_by_address(self, email_key: str) -> list[int]: ...
    def is_participant(self, lead_id: int, email_key: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class ThreadMatch:
    """Where a message goes. ``lead_id`` None means a new lead; ``related_lead_id`` links a
    new lead to the one a stranger's message quoted."""

    lead_id: int | None
    step: str  # references | token | subject | sender | new
    reason: str
    related_lead_id: int | None = None


def ancestor_ids(msg: InboundMessage) -> list[str]:
    """The ids a message replies to, closest first: In-Reply-To, then References newest-first."""
    return list(dict.fromkeys([*msg.in_reply_to, *reversed(msg.references)]))


def thread(
    msg: InboundMessage,
    sender_key: str,
    lookups: ThreadLookups,
    signer: TokenSigner | None = None,
) -> ThreadMatch:
    """Apply the threading order of ARCHITECTURE.md; the first step that finds a lead wins.

    In the first three steps the sender must be a participant of the lead found; otherwise
    the message starts a new lead linked to it, so quoting our ids buys no seat in a thread.
    """
    refused: int | None = None
    for step, candidates, why in _candidate_steps(msg, sender_key, lookups, signer):
        for lead_id in candidates:
            if lookups.is_participant(lead_id, sender_key):
                return ThreadMatch(lead_id, step, why)
            refused = refused or lead_id
    if lookups.knows_sender(sender_key):
        for lead_id in lookups.leads_by_address(sender_key):
            return ThreadMatch(lead_id, "sender", f"sender {sender_key} belongs to lead {lead_id}")
    if refused is not None:
        return ThreadMatch(
            None,
            "new",
            f"quotes lead {refused} but {sender_key} is not a participant: new lead, linked",
            related_lead_id=refused,
        )
    return ThreadMatch(None, "new", f"no thread and no lead for {sender_key}")


def thread_sent(
    msg: InboundMessage,
    recipient_keys: Sequence[str],
    lookups: ThreadLookups,
    signer: TokenSigner | None = None,
) -> ThreadMatch:
    """The lead a message we sent belongs to (a Sent folder): its thread, else its recipient.

    The sender is one of us, so no participant test: (1) References and In-Reply-To, (2) our
    token, then (3) the first recipient (To before Cc) that is a lead's address or a contact's.
    A message to nobody we know matches no lead; sent mail never makes one.
    """
    for step, candidates, why in _candidate_steps(msg, "", lookups, signer):
        if candidates:
            return ThreadMatch(candidates[0], step, why)
    for key in recipient_keys:
        if key and lookups.knows_sender(key):
            for lead_id in lookups.leads_by_address(key):
                return ThreadMatch(lead_id, "recipient", f"sent to {key}, of lead {lead_id}")
    return ThreadMatch(None, "new", "sent mail to no lead")


def _candidate_steps(
    msg: InboundMessage,
    sender_key: str,
    lookups: ThreadLookups,
    signer: TokenSigner | None,
) -> Iterable[tuple[str, list[int], str]]:
    ids = ancestor_ids(msg)
    if ids:
        yield "references", lookups.leads_by_message_ids(ids), "In-Reply-To/References"
    if signer is not None:
        texts = [msg.subject, *ids, *(a.email for a in (*msg.to, *msg.cc))]
        tokens = lookups.existing_leads(signer.find(texts))
        yield "token", tokens, "lead token"
    key = normalize_subject(msg.subject)
    # Steps 3 and 4 need a sender some lead already knows; one query rules out a stranger.
    if key and sender_key and lookups.knows_sender(sender_key):
        yield "subject", lookups.open_leads_by_subject(sender_key, key), f"subject {key!r}"
