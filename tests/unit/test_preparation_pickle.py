"""A prepared message crosses from a parse worker to the committing process by pickle; the
slot reducers of services/preparation must hand back an equal object, for every kind of
message the corpus holds, and must cover every dataclass such a message carries."""

from __future__ import annotations

import copyreg
import dataclasses
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from tests.corpus import CORPUS
from worker.errors import ParseError
from worker.mail.message import RawMessage
from worker.mail.verdict import MailPolicy
from worker.services import preparation
from worker.services.preparation import PICKLED_BY_SLOTS, Prepared, Unreadable, prepare_batch

FILES = sorted(p for p in CORPUS.rglob("*.eml") if "LICENSES" not in p.parts)


def _prepared() -> list[Prepared | Unreadable]:
    raws = [RawMessage(data=p.read_bytes(), source=str(p), account="local") for p in FILES]
    return prepare_batch(raws, None, 10 * 1024 * 1024, MailPolicy())


def _dataclasses(value: Any) -> Iterator[type]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield type(value)
        for f in dataclasses.fields(value):
            yield from _dataclasses(getattr(value, f.name))
    elif isinstance(value, list | tuple | frozenset | set):
        for item in value:
            yield from _dataclasses(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _dataclasses(item)


def test_the_corpus_round_trips_equal() -> None:
    batch = _prepared()
    assert len(batch) == len(FILES) > 100
    assert any(isinstance(item, Unreadable) for item in batch)
    assert any(isinstance(item, Prepared) and item.msg.attachments for item in batch)
    loaded = pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    for before, after in zip(batch, loaded, strict=True):
        assert type(after) is type(before)
        if isinstance(before, Unreadable):
            # An exception does not compare equal to its copy: compare what it says.
            assert isinstance(after, Unreadable)
            assert (type(after.error), str(after.error)) == (type(before.error), str(before.error))
            assert dataclasses.replace(after, error=before.error) == before
        else:
            assert after == before


def test_every_dataclass_a_prepared_message_holds_has_a_slot_reducer() -> None:
    found = {cls for item in _prepared() for cls in _dataclasses(item)}
    assert Prepared in found and Unreadable in found
    assert found <= set(PICKLED_BY_SLOTS), found - set(PICKLED_BY_SLOTS)
    for cls in found:
        assert copyreg.dispatch_table[cls].__qualname__.startswith("_pickle_by_slots")


def test_a_loaded_object_is_frozen_again() -> None:
    # Frozen dataclasses refuse attribute assignment; the reducer goes around that, and the
    # result is an ordinary frozen instance again.
    error = Unreadable(
        RawMessage(b"", "x", "local"), 3, "a" * 64, "b" * 64, ParseError("not mail", 3), blobs=()
    )
    again = pickle.loads(pickle.dumps(error))
    assert (again.size, again.raw_sha256, again.content_hash) == (3, "a" * 64, "b" * 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.size = 4  # type: ignore[misc]


def test_a_state_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError):
        preparation._rebuilt(RawMessage, (b"", "x"))
