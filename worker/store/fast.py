"""Hot-path statements run on the DB-API cursor: compiled once, executed without Core's overhead.

A bulk ingest runs five statements per message; through ``Connection.execute`` about 60 % of
their cost is SQLAlchemy's per-call machinery (compiled-cache lookup, execution context,
result set-up), not the database. These statements are still built with Core and compiled
by the dialect, with the column types' own bind processors, so SQL and values are exactly
what ``Connection.execute`` would send; they run on the same DB-API connection, inside the
transaction the caller's ``Connection`` began. A driver error leaves as the SQLAlchemy
exception ``Connection.execute`` would raise (``IntegrityError`` for a unique-key race on
either backend), so callers catch one set of types whichever path ran the statement.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler


class Encoded(str):
    """A value already in its column's database form: JSON text made by a parse worker, so
    the one committing process does not encode it again (``json.dumps`` with its defaults,
    as the JSON type's own bind processor would). Only FastStatement knows the mark; through
    Core it would be encoded a second time."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # bind names in the order a positional paramstyle needs them
    positional: bool
    processors: Mapping[str, Callable[[Any], Any]]
    defaults: Mapping[str, Callable[[], Any]]  # Python-side column defaults to fill in
    literals: Mapping[str, Any]  # values bound in the statement itself (direction == "in")
    # Per result column, the type's processor (JSON text → value, 0/1 → bool …) or None.
    results: tuple[Callable[[Any], Any] | None, ...]
    # The values in ``names`` order, as a tuple (a positional paramstyle's parameters).
    ordered: Callable[[Mapping[str, Any]], tuple[Any, ...]]


class FastStatement:
    """One Core statement, executed directly on the driver's cursor.

    Plans are cached per dialect and set of parameter names, so an INSERT given the same
    keys each time compiles once.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, frozenset[str]], _Plan] = {}

    def _plan(self, conn: Connection, keys: frozenset[str]) -> _Plan:
        key = (conn.dialect.name, keys)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _compile(self.statement, conn, keys)
        return plan

    def _execute(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, _Plan]:
        """The open DB-API cursor after executing, and the plan it ran (for its results).

        Writes deferred on this connection (``later``) go first, in one pipeline with it.
        """
        plan = self._plan(conn, frozenset(params))
        bound = _bound(plan, params)
        driver = conn.connection.driver_connection
        cursor = driver.cursor()  # type: ignore[union-attr]
        queue = conn.info.get(_DEFERRED)
        try:
            if queue:
                _send_deferred(driver, queue, lambda: cursor.execute(plan.sql, bound))
            else:
                cursor.execute(plan.sql, bound)
        except BaseException as exc:
            cursor.close()
            _reraise(conn, plan.sql, bound, exc)
        return cursor, plan

    def later(self, conn: Connection, params: Mapping[str, Any]) -> None:
        """``run``, or, inside ``deferred_writes``, queued until the next statement on the
        connection or its commit, which send it in the same round trip."""
        queue = conn.info.get(_DEFERRED)
        if queue is None:
            self.run(conn, params)
            return
        plan = self._plan(conn, frozenset(params))
        queue.append((plan.sql, _bound(plan, params), False))

    def later_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """``run_many``, deferred as ``later`` is."""
        queue = conn.info.get(_DEFERRED)
        if queue is None or not rows:
            self.run_many(conn, rows)
            return
        plan = self._plan(conn, frozenset(rows[0]))
        queue.append((plan.sql, [_bound(plan, row) for row in rows], True))

    def one(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The single row a SELECT or an INSERT … RETURNING gives."""
        row = self.first(conn, params)
        if row is None:
            raise LookupError("statement returned no row")
        return row

    def first(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        cursor, plan = self._execute(conn, params)
        try:
            row = cursor.fetchone()
        except BaseException as exc:
            _reraise(conn, plan.sql, params, exc)
        finally:
            cursor.close()
        return None if row is None else _processed(row, plan.results)

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        cursor, plan = self._execute(conn, params)
        try:
            fetched = cursor.fetchall()
        except BaseException as exc:
            _reraise(conn, plan.sql, params, exc)
        finally:
            cursor.close()
        return [_processed(row, plan.results) for row in fetched]

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        return self.one(conn, params)[0]

    def run(self, conn: Connection, params: Mapping[str, Any]) -> None:
        self._execute(conn, params)[0].close()

    def count(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run an UPDATE or DELETE; how many rows it matched."""
        cursor, _ = self._execute(conn, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """executemany: every row must have the same keys (as Core's executemany assumes)."""
        if not rows:
            return
        plan = self._plan(conn, frozenset(rows[0]))
        bound = [_bound(plan, row) for row in rows]
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(plan.sql, bound)
        except BaseException as exc:
            _reraise(conn, plan.sql, bound, exc)
        finally:
            cursor.close()


# -- deferred writes (PostgreSQL) ----------------------------------------------------------
#
# Each statement is a round trip to PostgreSQL (~0.12 ms on a local server), and most of an
# inbound message's statements are writes whose result nobody reads: the advisory lock, the
# participants, the status log, the activity, the counters, the blob records. Inside
# ``deferred_writes`` they wait in a queue on the connection and go out in one psycopg
# pipeline with whatever needs the server next: a read (sent after them, so it sees them),
# a Core statement, a SAVEPOINT, or the COMMIT. The order of statements never changes; a
# rolled-back savepoint or transaction drops what it queued.

_DEFERRED = "leadmail.deferred_writes"
_Deferred = list[tuple[str, Any, bool]]


@contextmanager
def deferred_writes(conn: Connection) -> Iterator[None]:
    """Defer ``later`` writes on ``conn`` (PostgreSQL only; elsewhere they run at once)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    _install(conn.engine)
    conn.info[_DEFERRED] = []
    try:
        yield
    finally:
        conn.info.pop(_DEFERRED, None)


def _send_deferred(driver: Any, queue: _Deferred, then: Callable[[], None]) -> None:
    pending = queue[:]
    queue.clear()
    with driver.pipeline():
        cursor = driver.cursor()
        for sql, params, many in pending:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
        then()


def _flush(conn: Connection, commit: bool = False) -> None:
    """Send what is queued on ``conn``, with the COMMIT when ``commit`` (the dialect's own
    commit then finds the connection idle and sends nothing)."""
    queue = conn.info.get(_DEFERRED)
    if not queue:
        return
    driver = conn.connection.driver_connection
    assert driver is not None
    sql = queue[0][0]
    try:
        _send_deferred(driver, queue, driver.commit if commit else lambda: None)
    except BaseException as exc:
        if commit:
            with suppress(Exception):
                driver.rollback()
        _reraise(conn, sql, None, exc)


def _before_core(conn: Connection, *_: Any) -> None:
    _flush(conn)  # a Core statement (SAVEPOINT and RELEASE too) comes after the queue


def _on_commit(conn: Connection) -> None:
    _flush(conn, commit=True)


def _drop(conn: Connection, *_: Any) -> None:
    """A rollback drops what its transaction queued; a rolled-back savepoint what came after
    it (the queue was sent at SAVEPOINT)."""
    queue = conn.info.get(_DEFERRED)
    if queue:
        queue.clear()


_HOOKS = (
    ("before_cursor_execute", _before_core),
    ("commit", _on_commit),
    ("rollback", _drop),
    ("rollback_savepoint", _drop),
)


def _install(engine: Any) -> None:
    """The engine's hooks that send or drop the queue, once per engine (asked of the engine
    itself: an ``id()`` of a disposed engine may come back for a new one)."""
    if event.contains(engine, "commit", _on_commit):
        return
    for name, hook in _HOOKS:
        event.listen(engine, name, hook)


def driver_sql(conn: Connection, sql: str) -> None:
    """One parameterless statement (``BEGIN IMMEDIATE``) on the driver's cursor, its error
    raised as ``Connection.exec_driver_sql`` would. For statements run once per message,
    where Core's execution machinery costs more than SQLite does."""
    driver = conn.connection.driver_connection
    try:
        driver.execute(sql)  # type: ignore[union-attr]
    except BaseException as exc:
        _reraise(conn, sql, (), exc)


def _reraise(conn: Connection, sql: str, params: Any, exc: BaseException) -> NoReturn:
    """Raise a driver error as the SQLAlchemy exception the dialect maps it to.

    ``sqlite3.IntegrityError`` and psycopg's ``UniqueViolation`` both become
    ``sqlalchemy.exc.IntegrityError``, exactly as through ``Connection.execute``. A lost
    connection is invalidated, as Core does, so the pool does not hand it out again.
    Anything that is not a driver error (KeyboardInterrupt …) passes unchanged.
    """
    dialect = conn.dialect
    dbapi_error = dialect.loaded_dbapi.Error
    if not isinstance(exc, dbapi_error):
        raise exc
    disconnected = dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
    error = DBAPIError.instance(
        sql,
        params,
        exc,
        dbapi_error,
        hide_parameters=conn.engine.hide_parameters,
        connection_invalidated=disconnected,
        dialect=dialect,
        ismulti=isinstance(params, list),
    )
    if disconnected and not conn.closed:
        conn.invalidate(exc)
    raise error from exc


def _bound(plan: _Plan, params: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
    values = {**plan.literals, **params}
    for name, make in plan.defaults.items():
        values[name] = make()
    for name, process in plan.processors.items():
        if name in values:
            value = values[name]
            if type(value) is not Encoded:
                values[name] = process(value)
    return plan.ordered(values) if plan.positional else values


def _compile(statement: Executable, conn: Connection, keys: frozenset[str]) -> _Plan:
    dialect = conn.dialect
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler)
    processors: dict[str, Callable[[Any], Any]] = {
        name: process
        for name, process in compiled._bind_processors.items()
        if isinstance(name, str) and callable(process)
    }
    literals = {
        name: bind.effective_value
        for name, bind in compiled.binds.items()
        if name not in keys and not bind.required
    }
    defaults: dict[str, Callable[[], Any]] = {}
    # Python-side defaults of an INSERT, and onupdate values of an UPDATE (``updated_at``).
    prefetch = [
        *((c, c.default) for c in getattr(compiled, "insert_prefetch", ()) or ()),
        *((c, c.onupdate) for c in getattr(compiled, "update_prefetch", ()) or ()),
    ]
    for column, default in prefetch:
        if default is None:
            continue
        if default.is_scalar:
            defaults[column.key] = _constant(default.arg)
        elif default.is_callable:
            defaults[column.key] = _call(default.arg)
        else:
            raise TypeError(f"unsupported default for {column.key}")
    names = tuple(compiled.positiontup or ())
    results = tuple(
        column.type._cached_result_processor(dialect, None) for column in compiled._result_columns
    )
    return _Plan(
        sql=compiled.string,
        names=names,
        positional=dialect.positional,
        processors=processors,
        defaults=defaults,
        literals=literals,
        results=results if any(results) else (),
        ordered=_ordered(names),
    )


def _processed(
    row: Sequence[Any], processors: tuple[Callable[[Any], Any] | None, ...]
) -> tuple[Any, ...]:
    if not processors:
        return tuple(row)
    return tuple(
        value if process is None else process(value)
        for value, process in zip(row, processors, strict=True)
    )


def _ordered(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """``tuple(values[n] for n in names)``, done by ``itemgetter`` in C rather than by a
    generator stepping through a message row's 27 columns in Python."""
    if not names:
        return lambda _values: ()
    if len(names) == 1:
        get = operator.itemgetter(names[0])
        return lambda values: (get(values),)
    return operator.itemgetter(*names)


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def _call(make: Callable[[Any], Any]) -> Callable[[], Any]:
    return lambda: make(None)  # SQLAlchemy wraps a column default to take a context
