"""Mailbox cursors and leases on both backends: one holder at a time, fenced commits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from worker.errors import LeaseHeldError, LeaseLostError
from worker.services.context import App
from worker.store import cursors
from worker.store.models import MailboxCursor, table_of, utcnow

A, F = "sales", "INBOX"


def _expire(app: App) -> None:
    with app.db.begin() as conn:
        conn.execute(
            update(table_of(MailboxCursor)).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def test_second_holder_is_refused_while_the_lease_lives(app: App) -> None:
    with app.db.begin() as conn:
        first = cursors.acquire(conn, A, F, "host-a:1", 60)
    assert first.last_uid == 0 and first.uidvalidity is None
    with pytest.raises(LeaseHeldError, match="host-a:1"), app.db.begin() as conn:
        cursors.acquire(conn, A, F, "host-b:2", 60)
    with app.db.begin() as conn:  # the holder itself may take it again
        cursors.acquire(conn, A, F, "host-a:1", 60)


def test_expired_lease_is_taken_over_and_the_old_holder_is_fenced(app: App) -> None:
    with app.db.begin() as conn:
        cursors.acquire(conn, A, F, "old", 60)
        cursors.reset(conn, A, F, "old", 7)
        cursors.advance(conn, A, F, "old", 7, 5, 60)
    _expire(app)
    with app.db.begin() as conn:
        taken = cursors.acquire(conn, A, F, "new", 60)
    assert (taken.lease_holder, taken.last_uid) == ("new", 5)
    with pytest.raises(LeaseLostError), app.db.begin() as conn:
        cursors.advance(conn, A, F, "old", 7, 6, 60)
    with pytest.raises(LeaseLostError), app.db.begin() as conn:
        cursors.renew(conn, A, F, "old", 60)
    with app.db.begin() as conn:
        assert cursors.load(conn, A, F).last_uid == 5  # type: ignore[union-attr]


def test_advance_never_moves_back_and_checks_uidvalidity(app: App) -> None:
    with app.db.begin() as conn:
        cursors.acquire(conn, A, F, "me", 60)
        cursors.reset(conn, A, F, "me", 100)
        cursors.advance(conn, A, F, "me", 100, 9, 60)
        cursors.advance(conn, A, F, "me", 100, 4, 60)
        assert cursors.load(conn, A, F).last_uid == 9  # type: ignore[union-attr]
    with pytest.raises(LeaseLostError, match="UIDVALIDITY"), app.db.begin() as conn:
        cursors.advance(conn, A, F, "me", 101, 10, 60)


def test_reset_starts_the_folder_again(app: App) -> None:
    with app.db.begin() as conn:
        cursors.acquire(conn, A, F, "me", 60)
        cursors.reset(conn, A, F, "me", 1)
        cursors.advance(conn, A, F, "me", 1, 30, 60)
        cursors.post_actions_done(conn, A, F, 30)
        cursors.reset(conn, A, F, "me", 2)
        cursor = cursors.load(conn, A, F)
    assert cursor is not None
    assert (cursor.uidvalidity, cursor.last_uid, cursor.post_action_uid) == (2, 0, 0)


def test_release_frees_the_lease_and_errors_are_recorded(app: App) -> None:
    with app.db.begin() as conn:
        cursors.acquire(conn, A, F, "me", 60)
        cursors.release(conn, A, F, "me")
        cursors.record_error(conn, A, F, "sales: login refused")
        cursors.record_success(conn, A, F, 3)
    with app.db.begin() as conn:
        cursor = cursors.acquire(conn, A, F, "other", 60)
    assert cursor.last_error == "sales: login refused" and cursor.waiting == 3
    assert cursor.last_success_at is not None and cursor.last_error_at is not None
