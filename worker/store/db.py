"""Engine and transaction scope: SQLite in WAL mode with a busy timeout, or PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from worker.config import DatabaseSettings
from worker.errors import StoreError
from worker.store.fast import deferred_writes, driver_sql

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the only driver we ship)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(settings: DatabaseSettings) -> Engine:
    url = normalize_url(settings.url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        # The message names the problem, never the URL: it may hold a password.
        raise StoreError(f"bad database.url: {exc}", value="database.url") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, settings)
    return create_engine(url, echo=settings.echo, pool_pre_ping=True, future=True)


def _sqlite_engine(url: str, settings: DatabaseSettings) -> Engine:
    engine = create_engine(
        url,
        echo=settings.echo,
        connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
    )
    # pysqlite's own transaction handling would issue BEGIN (deferred) lazily; we want to
    # decide ourselves so read-then-write transactions can take the write lock up front.
    engine.dialect.isolation_level = None  # type: ignore[attr-defined]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={settings.sqlite_synchronous.upper()}")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(settings.sqlite_wal_autocheckpoint)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if settings.echo:  # echoed like every other statement
            conn.exec_driver_sql(f"BEGIN {mode}")
        else:  # once per message: Core's execution machinery around it cost half as much
            # as the COMMITs did (cProfile of a 3,000-message ingest)
            driver_sql(conn, f"BEGIN {mode}")

    return engine


class Database:
    """The engine plus a session factory; one ``transaction()`` per unit of work."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        # Made on first use: a command that reads through Core statements alone (`leads
        # list`, `leads show`) never imports the ORM (bench/startup.py).
        self._sessions: sessionmaker[Session] | None = None

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A session inside one transaction, committed on success, rolled back on error.

        On SQLite a writing transaction starts with BEGIN IMMEDIATE: reading first and then
        writing under BEGIN DEFERRED can fail with SQLITE_BUSY when another writer got in
        between, which the busy timeout cannot cure.
        """
        if self._sessions is None:
            from sqlalchemy.orm import sessionmaker

            self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        with self._sessions() as session:
            if is_sqlite(self.engine):
                mode = "IMMEDIATE" if write else "DEFERRED"
                session.connection(execution_options={"sqlite_begin": mode})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One transaction that only reads, on a Core connection (BEGIN DEFERRED on SQLite):
        what it reads is one snapshot, and no write lock is taken."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A Core connection that writes with BEGIN IMMEDIATE on SQLite; reuse it for a batch."""
        with self.engine.connect() as conn:
            if is_sqlite(self.engine):
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            yield conn

    @contextmanager
    def intake_connection(self) -> Iterator[Connection]:
        """``connect()`` for the intake's run of one-message transactions.

        On PostgreSQL its commits do not wait for the WAL flush (``[database]
        postgres_intake_synchronous_commit``): the same promise as SQLite's
        synchronous=NORMAL, and ``sync()`` makes them durable before anything acts outside.
        Its writes whose results nobody reads go out with the next statement or the commit
        (store/fast.py, ``deferred_writes``).
        """
        with self.connect() as conn:
            relaxed = (
                not is_sqlite(self.engine)
                and self.settings.postgres_intake_synchronous_commit == "off"
            )
            if relaxed:
                conn.exec_driver_sql("SET synchronous_commit TO off")
                conn.commit()
            try:
                with deferred_writes(conn):
                    yield conn
            finally:
                if relaxed and not conn.closed and not conn.invalidated:
                    conn.rollback()
                    conn.exec_driver_sql("RESET synchronous_commit")
                    conn.commit()

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection for one statement that is atomic alone (an ``UPDATE … RETURNING``),
        without the BEGIN and COMMIT round trips of a transaction around it (on PostgreSQL a
        third of the cost). Meant for store/fast.py statements, which run on the driver's
        cursor: PostgreSQL's connection is switched to autocommit; SQLite's driver connection
        is in autocommit already (we issue BEGIN ourselves), and switching SQLAlchemy's
        isolation level there would leave pysqlite's implicit transactions on when the
        connection goes back to the pool. Anything run through Core is committed at the end.
        """
        with self.engine.connect() as conn:
            if not is_sqlite(self.engine):
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn
            if conn.in_transaction():
                conn.commit()

    @contextmanager
    def begin(self, conn: Connection | None = None) -> Iterator[Connection]:
        """One write transaction, on ``conn`` when given (saves a pool checkout per message).

        The intake hot path uses Core statements: the ORM's unit of work costs more per
        message than parsing it does.
        """
        if conn is not None:
            with conn.begin():
                yield conn
            return
        with self.connect() as fresh, fresh.begin():
            yield fresh

    def refresh_statistics(self, conn: Connection) -> None:
        """Let PostgreSQL's planner see how big the tables intake reads have grown.

        A bulk intake into a new database outruns autovacuum: the plans psycopg prepares
        after a few executions were made for empty tables and stay cached, so the duplicate
        check went on scanning all messages (a 10,000-message backfill got slower with every
        message). ANALYZE invalidates those plans. Call it between transactions; SQLite needs
        nothing (its planner prefers the indexes without statistics).
        """
        if conn.dialect.name != "postgresql":
            return
        with conn.begin():
            conn.exec_driver_sql("ANALYZE messages, leads, participants, contacts")

    def sync(self) -> None:
        """Make every commit so far survive a power cut, before acting on it outside.

        SQLite runs with synchronous=NORMAL: a commit is safe from a crash of the process but
        sits in the page cache until a checkpoint, which is fine while the mailbox still holds
        the message. Before a post-action moves or flags mail on the server, fsync the WAL
        (and the database file a checkpoint may have written to), as synchronous=FULL would
        have at each commit. On PostgreSQL the intake's asynchronous commits (see
        ``intake_connection``) are flushed by one synchronous commit.
        """
        if not is_sqlite(self.engine):
            if self.settings.postgres_intake_synchronous_commit == "off":
                self._flush_postgres_wal()
            return
        if self.settings.sqlite_synchronous != "full":
            sync_sqlite(self.engine)

    def _flush_postgres_wal(self) -> None:
        """A synchronous commit that writes a commit record waits until the WAL is on disk up
        to that record, and so every asynchronous commit before it too."""
        with self.engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO on")
            conn.exec_driver_sql("SELECT pg_current_xact_id()")

    def check(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except OperationalError as exc:
            raise StoreError(f"database unreachable: {_short(exc)}", value=None) from None

    def dispose(self) -> None:
        self.engine.dispose()


def sync_sqlite(engine: Engine) -> None:
    """fsync a SQLite database's WAL and file: the commits so far survive a power cut (see
    ``Database.sync``); nothing to do on PostgreSQL."""
    if not is_sqlite(engine):
        return
    database = engine.url.database
    if not database or database == ":memory:":
        return
    for path in (f"{database}-wal", database):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300]
