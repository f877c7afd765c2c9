"""Pure parts of delivery: backoff, who is still to send to, broker names, the job registry."""

from __future__ import annotations

import random

import pytest

from worker.config import QueueSettings, SmtpSettings
from worker.jobs import actors
from worker.jobs.broker import describe, is_memory
from worker.services.delivery import _pending_recipients, backoff
from worker.transport.file import file_name
from worker.transport.smtp import Outcome, one_line


def test_backoff_doubles_within_bounds_with_jitter() -> None:
    settings = SmtpSettings(backoff_min_seconds=30, backoff_max_seconds=3600)
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(3600.0, 30.0 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = backoff(settings, attempt, rng)
            assert max(30.0, ceiling / 2) <= delay <= ceiling
    assert backoff(settings, 40, rng) <= 3600  # no overflow, still capped


def test_jitter_spreads_a_batch() -> None:
    settings = SmtpSettings(backoff_min_seconds=30, backoff_max_seconds=3600)
    rng = random.Random(1)
    delays = {round(backoff(settings, 5, rng), 3) for _ in range(100)}
    assert len(delays) > 90


def test_only_recipients_not_yet_done_are_sent_again() -> None:
    row = {
        "recipients": ["a@x.example", "b@x.example", "c@x.example", "d@x.example"],
        "results": {
            "a@x.example": {"state": "accepted", "code": 250, "reply": "OK"},
            "b@x.example": {"state": "refused_temp", "code": 452, "reply": "full"},
            "c@x.example": {"state": "refused_perm", "code": 550, "reply": "no such user"},
        },
    }
    assert _pending_recipients(row) == ["b@x.example", "d@x.example"]
    assert _pending_recipients({"recipients": ["a@x.example"], "results": {}}) == ["a@x.example"]


def test_which_outcomes_retry() -> None:
    assert {o for o in Outcome if o.retry} == {Outcome.TEMPORARY, Outcome.UNKNOWN}


def test_one_line_flattens_and_bounds() -> None:
    assert one_line("250-first\r\n250 second") == "250-first 250 second"
    assert len(one_line("x" * 2000)) == 500


def test_eml_name_is_stable_per_message_id() -> None:
    assert file_name("<a@b.example>") == file_name("a@b.example")
    assert file_name("a@b.example") != file_name("c@b.example")
    assert file_name("../../etc/passwd@x").endswith(".eml")
    assert "/" not in file_name("../../etc/passwd@x")


def test_broker_description_hides_the_redis_password() -> None:
    settings = QueueSettings(broker="redis://:s3cret@redis.internal:6380/2")
    assert not is_memory(settings)
    assert describe(settings) == "redis://redis.internal:6380/2"
    with_user = QueueSettings(broker="redis://app:s3cret@redis.internal/0")
    assert describe(with_user) == "redis://app@redis.internal/0"
    assert describe(QueueSettings()) == "memory"


def test_a_job_kind_is_registered_once() -> None:
    outbox = actors.KINDS[0]
    with pytest.raises(ValueError, match="registered twice"):
        actors.register(outbox)
    assert [k.name for k in actors.KINDS] == ["outbox", "reminders"]


def test_chunks_spread_small_rounds_and_cap_big_ones() -> None:
    from worker.jobs.dispatcher import MAX_CHUNK, chunk_size

    assert [chunk_size(n) for n in (1, 3, 31, 64, 200)] == [1, 1, 1, 2, 6]
    assert chunk_size(5000) == MAX_CHUNK
