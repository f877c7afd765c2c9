"""What a bounce of our own outbound mail means for the lead it went to.

``classify`` finds the Message-IDs a bounce returns and the recipients that failed; this
decides, per outbound message, whether the failure was the lead's own address (the lead is
then marked bouncing) or someone else's on the same mail (a Cc'd colleague: the lead's
address still works). Pure: values in, a decision with its reason out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import getaddresses

from worker.mail.addresses import email_key


@dataclass(frozen=True, slots=True)
class BounceEffect:
    """``lead_bouncing``: mark the lead's address bouncing. ``reason``: why, for its log."""

    lead_bouncing: bool
    failed: tuple[str, ...]  # the failed addresses this outbound message was sent to
    reason: str


def address_keys(values: Iterable[str]) -> list[str]:
    """Normalised addresses of header-style values (``Name <a@b>`` or bare ``a@b``)."""
    keys = (email_key(addr) for _, addr in getaddresses([v for v in values if v]))
    return list(dict.fromkeys(k for k in keys if k))


def bounce_effect(
    failed_recipients: Sequence[str], sent_to: Sequence[str], lead_key: str | None
) -> BounceEffect:
    """The effect of a bounce naming ``failed_recipients`` on a mail ``sent_to`` these
    addresses (keys), on the lead whose address is ``lead_key``.

    The lead's address failed when the bounce names it. A bounce may name an address we
    never wrote to (the recipient's server rewrote it: an alias, a forward); then, when the
    lead's address was the mail's only recipient, it is the one that failed.
    """
    failed = address_keys(failed_recipients)
    ours = [key for key in failed if key in sent_to]
    if lead_key and lead_key in failed:
        return BounceEffect(True, tuple(ours), f"{lead_key} failed")
    if failed and not ours and lead_key and list(sent_to) == [lead_key]:
        named = ", ".join(failed)
        return BounceEffect(
            True, (lead_key,), f"{named} failed, an address of {lead_key}, the only recipient"
        )
    if ours:
        return BounceEffect(False, tuple(ours), f"{', '.join(ours)} failed, not the lead's address")
    named = ", ".join(failed) or "no recipient named"
    return BounceEffect(False, (), f"{named}: none of them the lead's address")
