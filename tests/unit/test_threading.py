"""Threading order and its guards, against an in-memory lookup table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from worker.mail.message import Address, InboundMessage
from worker.mail.threading import TokenSigner, normalize_subject, thread

SIGNER = TokenSigner(b"0123456789abcdef0123456789abcdef")


@dataclass
class FakeLookups:
    by_message_id: dict[str, int] = field(default_factory=dict)
    leads: set[int] = field(default_factory=set)
    subjects: dict[tuple[str, str], int] = field(default_factory=dict)
    addresses: dict[str, int] = field(default_factory=dict)
    participants: dict[int, set[str]] = field(default_factory=dict)

    def knows_sender(self, email_key: str) -> bool:
        return email_key in self.addresses or any(
            email_key in p for p in self.participants.values()
        )

    def leads_by_message_ids(self, message_ids: Sequence[str]) -> list[int]:
        return [self.by_message_id[m] for m in message_ids if m in self.by_message_id]

    def existing_leads(self, lead_ids: Sequence[int]) -> list[int]:
        return [i for i in lead_ids if i in self.leads]

    def open_leads_by_subject(self, email_key: str, subject_key: str) -> list[int]:
        hit = self.subjects.get((email_key, subject_key))
        return [hit] if hit else []

    def leads_by_address(self, email_key: str) -> list[int]:
        hit = self.addresses.get(email_key)
        return [hit] if hit else []

    def is_participant(self, lead_id: int, email_key: str) -> bool:
        return email_key in self.participants.get(lead_id, set())


def msg(
    subject: str = "Hello",
    irt: tuple[str, ...] = (),
    refs: tuple[str, ...] = (),
    to: tuple[str, ...] = (),
) -> InboundMessage:
    return InboundMessage(
        message_id="new@x",
        content_hash="0" * 64,
        size=1,
        subject=subject,
        from_=(Address("A", "a@client.example"),),
        in_reply_to=irt,
        references=refs,
        to=tuple(Address("", t) for t in to),
    )


@pytest.mark.parametrize(
    ("subject", "key"),
    [
        ("Re: RE[2]: Fwd: Quote for 200 chairs", "quote for 200 chairs"),
        ("AW: WG: Angebot", "angebot"),
        ("SV: Tilbud", "tilbud"),
        ("ตอบกลับ: สอบถามราคา", "สอบถามราคา"),
        ("[sales] Re: Quote", "quote"),
        ("Re: [#L12-abcdefgh] Quote", "quote"),
        ("Rechnung", "rechnung"),
        ("Réponse: Devis", "réponse: devis"),  # not a reply prefix we know: kept
        ("回复：报价", "报价"),
    ],
)
def test_normalize_subject(subject: str, key: str) -> None:
    assert normalize_subject(subject) == key


def test_token_round_trip_and_forgery() -> None:
    token = SIGNER.token(42)
    assert SIGNER.find([f"Re: [#{token}] price"]) == [42]
    assert SIGNER.find([f"<{token}.x1@leadmail.example>"]) == [42]
    assert SIGNER.find([f"sales+{token}@northwind.example"]) == [42]
    forged = token[:-1] + ("a" if token[-1] != "a" else "b")
    assert SIGNER.find([f"[#{forged}]"]) == []
    assert SIGNER.find(["[#L43-" + token.split("-")[1] + "]"]) == []


def test_references_win_for_a_participant() -> None:
    lookups = FakeLookups(by_message_id={"first@x": 7}, participants={7: {"a@client.example"}})
    match = thread(msg(irt=("first@x",)), "a@client.example", lookups, SIGNER)
    assert (match.lead_id, match.step) == (7, "references")


def test_stranger_quoting_ids_gets_a_new_linked_lead() -> None:
    lookups = FakeLookups(by_message_id={"first@x": 7}, participants={7: {"b@other.example"}})
    match = thread(msg(irt=("first@x",)), "a@client.example", lookups, SIGNER)
    assert match.lead_id is None
    assert match.related_lead_id == 7


def test_token_in_subject_threads() -> None:
    lookups = FakeLookups(leads={9}, participants={9: {"a@client.example"}})
    match = thread(
        msg(subject=f"Re: {SIGNER.subject_tag(9)} x"), "a@client.example", lookups, SIGNER
    )
    assert (match.lead_id, match.step) == (9, "token")


def test_subject_then_sender() -> None:
    lookups = FakeLookups(
        subjects={("a@client.example", "quote"): 3},
        addresses={"a@client.example": 2},
        participants={3: {"a@client.example"}},
    )
    assert thread(msg(subject="Re: Quote"), "a@client.example", lookups, SIGNER).lead_id == 3
    match = thread(msg(subject="Something else"), "a@client.example", lookups, SIGNER)
    assert (match.lead_id, match.step) == (2, "sender")


def test_unknown_sender_makes_a_new_lead() -> None:
    match = thread(msg(), "a@client.example", FakeLookups(), SIGNER)
    assert match.lead_id is None and match.step == "new" and match.related_lead_id is None
