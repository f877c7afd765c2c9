"""Mailbox cursors and the leases on them: our own place in each (account, folder).

The cursor is advanced inside each message's own transaction, and that same UPDATE names the
lease holder: a poller whose lease was taken over (it stalled past the expiry and another
poller started) matches no row, and its message transaction is rolled back. Two pollers can
therefore never both commit the same folder's messages, whatever the clocks say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from worker.errors import LeaseHeldError, LeaseLostError
from worker.store import tables
from worker.store.fast import FastStatement
from worker.store.tables import utcnow

_cursors = tables.mailbox_cursors
_this = and_(
    _cursors.c.account == bindparam("b_account"), _cursors.c.folder == bindparam("b_folder")
)
_mine = _cursors.c.lease_holder == bindparam("b_holder")

# The per-message statement: moves the cursor forward (never back) and renews the lease.
# Once per message inside its transaction: on the driver's cursor (store/fast.py).
_ADVANCE = FastStatement(
    update(_cursors)
    .where(_this, _mine, _cursors.c.uidvalidity.is_not_distinct_from(bindparam("b_uidvalidity")))
    .values(
        last_uid=case(
            (_cursors.c.last_uid < bindparam("b_uid"), bindparam("b_uid")),
            else_=_cursors.c.last_uid,
        ),
        lease_expires_at=bindparam("b_expires"),
    )
)


@dataclass(frozen=True, slots=True)
class Cursor:
    account: str
    folder: str
    uidvalidity: int | None
    last_uid: int
    post_action_uid: int
    waiting: int | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    lease_holder: str | None
    lease_expires_at: datetime | None

    def lease_live(self, now: datetime) -> bool:
        return (
            self.lease_holder is not None
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )


def _ensure(conn: Connection, account: str, folder: str) -> None:
    exists = conn.scalar(
        select(_cursors.c.id).where(_this), {"b_account": account, "b_folder": folder}
    )
    if exists is not None:
        return
    try:
        with conn.begin_nested():
            conn.execute(
                insert(_cursors).values(
                    account=account,
                    folder=folder,
                    uidvalidity=None,
                    last_uid=0,
                    post_action_uid=0,
                    updated_at=utcnow(),
                )
            )
    except IntegrityError:
        pass  # another poller created it at the same moment


def load(conn: Connection, account: str, folder: str) -> Cursor | None:
    row = conn.execute(
        select(_cursors).where(_this), {"b_account": account, "b_folder": folder}
    ).first()
    return None if row is None else _cursor(row)


def all_cursors(conn: Connection) -> list[Cursor]:
    rows = conn.execute(select(_cursors).order_by(_cursors.c.account, _cursors.c.folder))
    return [_cursor(row) for row in rows]


def _cursor(row: object) -> Cursor:
    return Cursor(**{name: getattr(row, name) for name in Cursor.__slots__})


def acquire(conn: Connection, account: str, folder: str, holder: str, ttl: float) -> Cursor:
    """Take (or keep) the lease on a folder; LeaseHeldError names the live holder.

    Runs in the caller's transaction, which on SQLite must be BEGIN IMMEDIATE so that two
    pollers cannot both read the lease as free.
    """
    _ensure(conn, account, folder)
    now = utcnow()
    taken = conn.execute(
        update(_cursors)
        .where(
            _this,
            or_(
                _cursors.c.lease_holder.is_(None),
                _mine,
                _cursors.c.lease_expires_at.is_(None),
                _cursors.c.lease_expires_at < bindparam("b_now"),
            ),
        )
        .values(lease_holder=bindparam("b_holder"), lease_expires_at=bindparam("b_expires")),
        {
            "b_account": account,
            "b_folder": folder,
            "b_holder": holder,
            "b_now": now,
            "b_expires": now + timedelta(seconds=ttl),
        },
    ).rowcount
    cursor = load(conn, account, folder)
    assert cursor is not None
    if not taken:
        raise LeaseHeldError(
            f"{account}/{folder} is being worked by {cursor.lease_holder} "
            f"(lease until {cursor.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC)",
            cursor.lease_holder,
        )
    return cursor


def _update_held(conn: Connection, account: str, folder: str, holder: str, **values: Any) -> bool:
    """Change our cursor row only while ``holder`` holds its lease; False when it does not."""
    done = conn.execute(
        update(_cursors).where(_this, _mine).values(**values),
        {"b_account": account, "b_folder": folder, "b_holder": holder},
    ).rowcount
    return bool(done)


def _lost(account: str, folder: str) -> LeaseLostError:
    return LeaseLostError(f"lost the lease on {account}/{folder}", (account, folder))


def renew(conn: Connection, account: str, folder: str, holder: str, ttl: float) -> None:
    """Extend our lease; LeaseLostError when another poller holds it now."""
    expires = utcnow() + timedelta(seconds=ttl)
    if not _update_held(conn, account, folder, holder, lease_expires_at=expires):
        raise _lost(account, folder)


def release(conn: Connection, account: str, folder: str, holder: str) -> None:
    _update_held(conn, account, folder, holder, lease_holder=None, lease_expires_at=None)


def advance(
    conn: Connection,
    account: str,
    folder: str,
    holder: str,
    uidvalidity: int | None,
    uid: int,
    ttl: float,
) -> None:
    """Inside a message's transaction: record ``uid`` as done; fails without the lease."""
    done = _ADVANCE.count(
        conn,
        {
            "b_account": account,
            "b_folder": folder,
            "b_holder": holder,
            "b_uidvalidity": uidvalidity,
            "b_uid": uid,
            "b_expires": utcnow() + timedelta(seconds=ttl),
        },
    )
    if not done:
        raise LeaseLostError(
            f"lost the lease on {account}/{folder} (or its UIDVALIDITY changed)",
            (account, folder),
        )


def reset(conn: Connection, account: str, folder: str, holder: str, uidvalidity: int) -> None:
    """A new UIDVALIDITY: start the folder again from UID 0 (intake drops what it has)."""
    values = {"uidvalidity": uidvalidity, "last_uid": 0, "post_action_uid": 0}
    if not _update_held(conn, account, folder, holder, **values):
        raise _lost(account, folder)


def post_actions_done(conn: Connection, account: str, folder: str, uid: int) -> None:
    conn.execute(
        update(_cursors).where(_this).values(post_action_uid=uid),
        {"b_account": account, "b_folder": folder},
    )


def record_success(conn: Connection, account: str, folder: str, waiting: int) -> None:
    conn.execute(
        update(_cursors)
        .where(_this)
        .values(last_success_at=utcnow(), waiting=waiting, updated_at=utcnow()),
        {"b_account": account, "b_folder": folder},
    )


def record_error(conn: Connection, account: str, folder: str, error: str) -> None:
    _ensure(conn, account, folder)
    conn.execute(
        update(_cursors)
        .where(_this)
        .values(last_error=error[:2000], last_error_at=utcnow(), updated_at=utcnow()),
        {"b_account": account, "b_folder": folder},
    )
