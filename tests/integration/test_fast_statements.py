"""Statements run on the driver's cursor store exactly what Connection.execute would."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from worker.services.context import App
from worker.store.fast import FastStatement
from worker.store.models import Lead, Participant, table_of

_leads = table_of(Lead)
WHEN = datetime(2026, 11, 26, 21, 0, 5, tzinfo=UTC)


def _row(email: str) -> dict[str, object]:
    return {
        "is_organization": True,
        "company_name": "Acme ไทย",
        "email": email,
        "email_key": email,
        "status": "Lead",
        "custom_fields": {"tier": "gold", "seats": [1, 2]},
        "email_bouncing": False,
        "created_at": WHEN,
        "updated_at": WHEN,
    }


def test_insert_returning_and_select_match_core(app: App) -> None:
    fast = FastStatement(insert(_leads).returning(_leads.c.id))
    with app.db.begin() as conn:
        fast_id = fast.scalar(conn, _row("fast@acme.example"))
        core_id = conn.scalar(insert(_leads).returning(_leads.c.id), _row("core@acme.example"))
    columns = [
        _leads.c.company_name,
        _leads.c.custom_fields,
        _leads.c.created_at,
        _leads.c.is_organization,
        _leads.c.email_bouncing,
    ]
    with app.db.engine.connect() as conn:
        got = conn.execute(select(*columns).where(_leads.c.id == fast_id)).one()
        want = conn.execute(select(*columns).where(_leads.c.id == core_id)).one()
    assert tuple(got) == tuple(want)
    assert got.custom_fields == {"tier": "gold", "seats": [1, 2]}
    assert got.created_at == WHEN


def test_literal_and_repeated_binds(app: App) -> None:
    with app.db.begin() as conn:
        FastStatement(insert(_leads)).run(conn, _row("x@acme.example"))
    query = FastStatement(
        select(_leads.c.email).where(
            (_leads.c.status == "Lead")
            & (_leads.c.email_key == bindparam("key"))
            & (_leads.c.email == bindparam("key"))
        )
    )
    with app.db.begin() as conn:
        assert query.one(conn, {"key": "x@acme.example"}) == ("x@acme.example",)
        assert query.one(conn, {"key": "x@acme.example"}) == ("x@acme.example",)  # cached plan


def test_rows_come_back_as_core_would_give_them(app: App) -> None:
    """JSON, booleans and datetimes go through the column types' result processors."""
    with app.db.begin() as conn:
        FastStatement(insert(_leads)).run(conn, _row("a@acme.example"))
        FastStatement(insert(_leads)).run(
            conn, {**_row("b@acme.example"), "is_organization": False}
        )
    columns = [
        _leads.c.email,
        _leads.c.custom_fields,
        _leads.c.is_organization,
        _leads.c.created_at,
    ]
    query = select(*columns).order_by(_leads.c.email)
    with app.db.engine.connect() as conn:
        got = FastStatement(query).rows(conn, {})
        want = [tuple(row) for row in conn.execute(query)]
        missing = FastStatement(query.where(_leads.c.email == bindparam("e"))).first(
            conn, {"e": "nobody@acme.example"}
        )
    assert got == want
    assert got[0][1] == {"tier": "gold", "seats": [1, 2]}
    assert got[0][2] is True and got[1][2] is False
    assert got[0][3] == WHEN
    assert missing is None


def test_run_many_inserts_every_row_and_upserts_skip_conflicts(app: App) -> None:
    participants = table_of(Participant)
    dialect_insert = pg_insert if app.db.engine.dialect.name == "postgresql" else sqlite_insert
    upsert = FastStatement(dialect_insert(participants).on_conflict_do_nothing())
    with app.db.begin() as conn:
        lead_id = FastStatement(insert(_leads).returning(_leads.c.id)).scalar(
            conn, _row("lead@acme.example")
        )
        keys = ["a@x.example", "b@x.example", "c@x.example"]
        upsert.run_many(conn, [{"lead_id": lead_id, "email_key": k} for k in keys])
        # A second message naming two of them again and one new address.
        again = ["b@x.example", "c@x.example", "d@x.example"]
        upsert.run_many(conn, [{"lead_id": lead_id, "email_key": k} for k in again])
        upsert.run_many(conn, [])
    with app.db.engine.connect() as conn:
        stored = conn.scalars(
            select(participants.c.email_key)
            .where(participants.c.lead_id == lead_id)
            .order_by(participants.c.email_key)
        ).all()
    assert stored == ["a@x.example", "b@x.example", "c@x.example", "d@x.example"]


def test_driver_errors_surface_as_sqlalchemy_exceptions(app: App) -> None:
    """A unique-key race is sqlalchemy's IntegrityError on both backends, as through Core.

    Intake retries a message whose insert lost a race on ``IntegrityError``; a raw
    ``sqlite3.IntegrityError`` or psycopg ``UniqueViolation`` would slip past that retry.
    """
    participants = table_of(Participant)
    with app.db.begin() as conn:
        lead_id = FastStatement(insert(_leads).returning(_leads.c.id)).scalar(
            conn, _row("lead@acme.example")
        )
    row = {"lead_id": lead_id, "email_key": "a@x.example"}
    plain = FastStatement(insert(participants))
    returning = FastStatement(insert(participants).returning(participants.c.id))
    attempts = [
        lambda conn: plain.run(conn, row),
        lambda conn: returning.scalar(conn, row),
        lambda conn: plain.run_many(conn, [row, {**row, "email_key": "b@x.example"}]),
    ]
    with app.db.begin() as conn:
        plain.run(conn, row)
    for attempt in attempts:
        with pytest.raises(IntegrityError) as caught, app.db.begin() as conn:
            attempt(conn)
        driver = app.db.engine.dialect.loaded_dbapi
        assert isinstance(caught.value.orig, driver.IntegrityError)
    # The failed transactions were rolled back and the connection still works.
    with app.db.engine.connect() as conn:
        stored = conn.scalars(select(participants.c.email_key)).all()
    assert stored == ["a@x.example"]


# -- deferred writes: the same statements in the same order, fewer round trips on PostgreSQL --

_INSERT = FastStatement(insert(_leads))
_COUNT = FastStatement(select(_leads.c.email).order_by(_leads.c.email))


def _emails(app: App) -> list[str]:
    with app.db.engine.connect() as conn:
        return list(conn.scalars(select(_leads.c.email).order_by(_leads.c.email)))


def test_deferred_writes_are_seen_by_later_reads_core_statements_and_the_commit(
    app: App,
) -> None:
    with app.db.intake_connection() as conn:
        with conn.begin():
            _INSERT.later(conn, _row("a@acme.example"))
            # A read on the same connection sees the write queued before it.
            assert [r[0] for r in _COUNT.rows(conn, {})] == ["a@acme.example"]
            _INSERT.later(conn, _row("b@acme.example"))
            # So does a Core statement.
            assert conn.scalar(select(_leads.c.email).where(_leads.c.email == "b@acme.example"))
            _INSERT.later(conn, _row("c@acme.example"))
        # ... and the commit sends what is left.
        assert _emails(app) == ["a@acme.example", "b@acme.example", "c@acme.example"]


def test_a_rollback_or_a_rolled_back_savepoint_drops_what_it_queued(app: App) -> None:
    with app.db.intake_connection() as conn:
        with conn.begin():
            _INSERT.later(conn, _row("kept@acme.example"))
            savepoint = conn.begin_nested()
            _INSERT.later(conn, _row("dropped@acme.example"))
            savepoint.rollback()
            _INSERT.later(conn, _row("after@acme.example"))
        trans = conn.begin()
        _INSERT.later(conn, _row("never@acme.example"))
        trans.rollback()
        with conn.begin():
            pass  # the queue is empty: nothing left over goes in with this commit
    assert _emails(app) == ["after@acme.example", "kept@acme.example"]


def test_a_failing_deferred_write_fails_the_commit_and_leaves_nothing(app: App) -> None:
    with app.db.begin() as conn:
        _INSERT.run(conn, _row("taken@acme.example"))
    duplicate = {**_row("other@acme.example"), "id": 1}
    with app.db.intake_connection() as conn:
        with pytest.raises(IntegrityError), conn.begin():
            _INSERT.later(conn, _row("fresh@acme.example"))
            _INSERT.later(conn, duplicate)
        # The connection is usable again, with nothing queued.
        with conn.begin():
            _INSERT.later(conn, _row("next@acme.example"))
    assert _emails(app) == ["next@acme.example", "taken@acme.example"]


def test_an_update_fills_in_onupdate_columns_as_core_does(app: App) -> None:
    fast = FastStatement(
        update(_leads).where(_leads.c.id == bindparam("b_id")).values(status=bindparam("b_s"))
    )
    with app.db.begin() as conn:
        lead_id = conn.scalar(insert(_leads).returning(_leads.c.id), _row("u@acme.example"))
    with app.db.begin() as conn:
        assert fast.count(conn, {"b_id": lead_id, "b_s": "Open"}) == 1
        assert fast.count(conn, {"b_id": lead_id + 1000, "b_s": "Open"}) == 0
    with app.db.engine.connect() as conn:
        status, updated = conn.execute(
            select(_leads.c.status, _leads.c.updated_at).where(_leads.c.id == lead_id)
        ).one()
    assert status == "Open" and updated > WHEN
