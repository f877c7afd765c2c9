"""One verdict per message: is it a lead, and who is its sender — with every reason why.

Classification (bounce, report, auto-reply, list, own mail, spam) and the sender (From, or
the person behind a relay) are decided apart, but only together do they say whether a
message may make or join a lead. This module is the one place that combines them, so intake
acts on the verdict and keeps no gates of its own, and "why is this not a lead" has one
answer wherever it is asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.mail.addresses import (
    SenderPolicy,
    email_key,
    is_no_reply,
    lead_sender,
    organization_domain,
    organization_name,
)
from worker.mail.classify import Classification, Kind, OwnIdentity, classify
from worker.mail.message import Address, InboundMessage

# LeadSender.reason when the lead is simply the From address.
_FROM = "From"


@dataclass(frozen=True, slots=True)
class MailPolicy:
    """What a verdict needs besides the message: who we are, and which senders are relays."""

    own: OwnIdentity = field(default_factory=OwnIdentity)
    senders: SenderPolicy = field(default_factory=SenderPolicy)


@dataclass(frozen=True, slots=True)
class Sender:
    """The person a lead from this message is about, and how we found them.

    ``key`` is the normalised address (``email_key``), '' when there is none; ``org`` the
    registrable organisation domain (None for free mail); ``company`` a display name
    guessed from it.
    """

    address: Address | None
    key: str
    org: str | None
    company: str | None
    found_by: str  # "From", or which relay rule named someone else


@dataclass(frozen=True, slots=True)
class Verdict:
    """What intake does with a message, decided from the message alone.

    ``may_lead``: the message may make a new lead or thread onto one (a human wrote it, it
    is not spam, and it names a sender someone can answer). ``follows_thread``: a message
    that is no lead but is machine mail about one (a bounce, an auto-reply) is still linked
    to the lead its references name. ``reasons`` holds the classification's evidence, how
    the sender was found when not plainly From, and, for a message that is no lead, why.
    """

    classification: Classification
    sender: Sender
    may_lead: bool
    follows_thread: bool
    reasons: tuple[str, ...]

    @property
    def kind(self) -> Kind:
        return self.classification.kind


def judge(msg: InboundMessage, policy: MailPolicy | None = None) -> Verdict:
    """The verdict on ``msg``: its kind, its sender, whether it may be a lead, and why."""
    policy = policy if policy is not None else MailPolicy()
    found = lead_sender(msg, policy.senders)
    address = found.address
    key = email_key(address.email) if address is not None else ""
    registrable = organization_domain(key, policy.senders) if key else None
    sender = Sender(
        address=address,
        key=key,
        org=registrable or None,
        # guess_organization(key), without finding the registrable domain a second time
        company=organization_name(registrable) if registrable is not None else None,
        found_by=found.reason,
    )
    verdict = classify(msg, policy.own)
    if (
        verdict.kind is Kind.OWN
        and key
        and found.reason != _FROM
        and key not in policy.own.addresses
    ):
        # A form on our own site sends from our domain on behalf of a stranger.
        verdict = Classification(Kind.HUMAN, (*verdict.reasons, "relay for an outside sender"))
    reasons = list(verdict.reasons)
    if address is not None and found.reason != _FROM:
        reasons.append(f"sender: {found.reason}")
    # No-reply by address or by display name alone ("ห้ามตอบกลับ <info@shop.example>").
    nobody = found.no_reply or (address is not None and is_no_reply(key, address.name))
    refusal = _refusal(verdict, sender, nobody)
    if refusal is not None:
        reasons.append(refusal)
    return Verdict(
        classification=verdict,
        sender=sender,
        may_lead=refusal is None,
        follows_thread=verdict.kind is not Kind.HUMAN,
        reasons=tuple(reasons),
    )


def _refusal(verdict: Classification, sender: Sender, nobody: bool) -> str | None:
    """Why a message is no lead, first reason wins; None when it may be one."""
    if verdict.kind is not Kind.HUMAN:
        return f"{verdict.kind.value}: never a lead"
    if verdict.spam:
        return "spam: not a lead"
    if not sender.key or sender.address is None:
        return "no sender address"
    if nobody:
        # A notification nobody can answer (a relay that named no real sender).
        return f"sender {sender.key} is a no-reply address: nobody to contact"
    return None
