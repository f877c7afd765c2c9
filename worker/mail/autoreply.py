"""Whether a message may be acknowledged automatically (RFC 3834), and the reply's headers.

An automatic answer must never go to another machine: two responders answering each other
loop forever. So only a person's first message is acknowledged, and anything that looks
like a machine, a list or a bulk send — by kind or by header — gets nothing.
"""

from __future__ import annotations

from worker.mail.addresses import is_no_reply
from worker.mail.message import InboundMessage
from worker.mail.verdict import Verdict

# RFC 3834 section 5: what our acknowledgement carries, so other responders leave it alone.
AUTO_REPLY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Auto-Submitted", "auto-replied"),
    # Exchange/Outlook: do not answer this with an out-of-office or a read receipt.
    ("X-Auto-Response-Suppress", "All"),
)

_BULK = frozenset({"bulk", "list", "junk"})
_SUPPRESS = frozenset({"all", "autoreply", "oof"})


def autoreply_refusal(msg: InboundMessage, verdict: Verdict) -> str | None:
    """Why ``msg`` gets no acknowledgement, or None when it may get one.

    A verdict that may make a lead is a person's mail already (not a bounce, auto-reply,
    list, report, our own mail, spam or a no-reply sender); the headers are checked again
    here because a responder must never answer one that marks itself.
    """
    if not verdict.may_lead or verdict.sender.address is None:
        return f"{verdict.kind.value} mail is never acknowledged"
    auto = msg.header("auto-submitted").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto[:40]}"
    for name in ("precedence", "x-precedence"):
        value = msg.header(name).strip().lower()
        if value in _BULK or value == "auto_reply":
            return f"{name.title()}: {value}"
    for name in ("list-id", "list-unsubscribe", "list-post"):
        if msg.header(name):
            return f"{name.title()} header: a list"
    suppress = {p.strip().lower() for p in msg.header("x-auto-response-suppress").split(",")}
    if suppress & _SUPPRESS:
        return "X-Auto-Response-Suppress asks for no automatic answer"
    if msg.header("return-path").replace(" ", "") == "<>":
        return "null Return-Path: nobody to answer (RFC 3834 section 2)"
    address = verdict.sender.address
    if is_no_reply(address.email, address.name):
        return f"{verdict.sender.key} is a no-reply address"
    return None


def autoreply_subject(subject: str) -> str:
    """``Auto: <subject>`` as RFC 3834 section 3.1.5 suggests, without stacking prefixes."""
    text = " ".join(subject.split())[:900]
    return text if text.lower().startswith("auto:") else f"Auto: {text}".rstrip()
