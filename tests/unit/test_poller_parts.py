"""Pure parts of the poller: backoff with jitter, Maildir keys, IDLE responses."""

from __future__ import annotations

import pytest

from worker.poller import Backoff, SyncReport
from worker.sources.imap import _is_news
from worker.sources.maildir import unique_name


def test_backoff_doubles_up_to_the_cap_with_jitter_inside_the_bounds() -> None:
    backoff = Backoff(1.0, 8.0)
    waits = [backoff.next() for _ in range(50)]
    assert all(1.0 <= w <= 8.0 for w in waits)
    assert backoff.current == 8.0
    assert len({round(w, 6) for w in waits[5:]}) > 10  # jittered, not a fixed beat
    backoff.reset()
    assert backoff.next() == 1.0


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("1790000000.M1P1.host", "1790000000.M1P1.host"),
        ("1790000000.M1P1.host:2,S", "1790000000.M1P1.host"),
        ("1790000000.M1P1.host:2,FRS", "1790000000.M1P1.host"),
        ("1790000000.M1P1.host!2,S", "1790000000.M1P1.host"),
    ],
)
def test_maildir_key_ignores_the_flags_part(name: str, key: str) -> None:
    assert unique_name(name) == key


@pytest.mark.parametrize(
    ("response", "news"),
    [
        ((3, b"EXISTS"), True),
        ((1, b"RECENT"), True),
        ((2, b"EXPUNGE"), False),
        ((b"OK", b"Still here"), False),
        ((1, b"FETCH", (b"FLAGS", (b"\\Seen",))), False),
    ],
)
def test_only_exists_and_recent_are_news(response: tuple[object, ...], news: bool) -> None:
    assert _is_news(response) is news


def test_report_summary_names_outcomes_and_a_resync() -> None:
    report = SyncReport("sales", "INBOX", resynced=True)
    report.outcomes.update({"created": 2, "duplicate": 3})
    assert report.summary() == (
        "sales/INBOX: 2 created, 3 duplicate (new UIDVALIDITY: folder read again)"
    )
    assert SyncReport("a", "b").summary() == "a/b: nothing new"
