"""Database engine, sessions and migrations (SQLite in WAL mode by default, or PostgreSQL).

Migrations are Alembic revisions in ``migrations/versions``; :func:`migrate` applies them up to
head and is called at every start, so a new version upgrades the schema in place.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = structlog.get_logger("moorage.database")

MIGRATIONS = Path(__file__).with_name("migrations")
TURN_WAIT_SECONDS = 30.0  # as the SQLite busy timeout
# WAL checkpoints run in a background thread (WalCheckpointer) every this many seconds when
# something was committed; a commit checkpoints itself only when the WAL has grown to
# WAL_BACKSTOP_PAGES pages (64 MiB of 4 KiB pages), i.e. when the thread has fallen behind.
# Checkpointing more often copies the same hot pages (and fsyncs) again: every 0.1 s cost
# about 0.09 ms of CPU per small write request under a push load (docs/performance.md).
WAL_CHECKPOINT_INTERVAL_SECONDS = 1.0
WAL_BACKSTOP_PAGES = 16384
# Every writing SQLite connection's settings (the engine's and StatementWriter's).
# secure_delete=OFF is SQLite's own default; Debian builds it ON, which zero-fills deleted
# rows and writes out every page a delete frees: BatchDeleteImage of 100 spent 0.15 ms of its
# 2.2 ms on that. Whoever can read the database file can read the live rows anyway.
SQLITE_WRITER_PRAGMAS = (
    "PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000", f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}",
    "PRAGMA secure_delete=OFF",
)


def normalise_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (SQLAlchemy's default driver is psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_database_engine(url: str, *, single_statement: bool = False) -> Engine:
    """Create the engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout.

    With ``single_statement``, every statement is its own transaction (no BEGIN): for hot
    paths that read with one query.

    Raises:
        sqlalchemy.exc.ArgumentError: the URL is not a database URL.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8,
            max_overflow=16,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy's BEGIN below open the transaction (pysqlite's own is deferred).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            for pragma in SQLITE_WRITER_PRAGMAS:
                cursor.execute(pragma)
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):  # type: ignore[no-untyped-def]
            # Writers take the write lock up front (IMMEDIATE): no read-to-write upgrade
            # deadlocks between them. Readers run concurrently on WAL snapshots.
            if single_statement:
                return  # each statement is its own transaction
            if connection.get_execution_options().get("moorage_read_only"):
                connection.exec_driver_sql("BEGIN")
            else:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    return engine.execution_options(isolation_level="AUTOCOMMIT") if single_statement else engine


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration up to head on ``engine`` (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def insert_ignoring_duplicates(session: Session | Connection, table: type, values: dict) -> bool:
    """INSERT ``values`` into ``table`` unless a row with the same primary key exists.

    Race-free on both dialects (``ON CONFLICT DO NOTHING``): content-addressed facts such as
    "blob X exists" or "blob X is linked to repository R" may be recorded twice concurrently.

    Returns:
        True when a row was inserted.
    """
    dialect = session.get_bind().dialect if isinstance(session, Session) else session.dialect
    if dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    key = list(table.__table__.primary_key.columns)  # type: ignore[attr-defined]
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(*key)
    return session.execute(statement).first() is not None


class WriterBusy(Exception):
    """The writers' turn is held elsewhere and the caller asked not to wait for it."""


class WriteTooLarge(WriterBusy):
    """A write asked not to wait (it runs on the event loop) found more work than it may do
    there; nothing was written, and it should run again where it may wait (a worker thread)."""


class WriterQueue:
    """Lets SQLite writers take turns: one thread of a process, and one process of all that share
    the database file, holds the turn at a time.

    SQLite admits one writer; others wait in its busy handler, which polls with sleeps growing
    from 1 to 100 ms — under a few concurrent pushes most of a write's latency is that sleep. A
    writer that waits here (a thread lock, then ``flock`` on ``<database>.writer-lock``) is woken
    by the kernel the moment the holder commits. Purely a fairness and latency measure: a writer
    that bypasses it is still serialised correctly by SQLite's own lock. Re-entrant per thread.
    """

    def __init__(self, lock_path: Path | None) -> None:
        self._thread_lock = threading.RLock()
        self._depth = threading.local()
        self._fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600) if lock_path else None

    @contextmanager
    def turn(self, wait: bool = True) -> Iterator[None]:
        """Hold the writers' turn for the duration of the block.

        Args:
            wait: False to take the turn only if it is free now (for a caller on the event
                loop, which must never wait for another writer).

        Raises:
            WriterBusy: with ``wait=False``, another thread or process holds the turn.
            sqlalchemy.exc.OperationalError: another thread of this process has held the turn
                for :data:`TURN_WAIT_SECONDS` (as SQLite's busy timeout would): at most one
                thread per process waits on another process's turn, so a stuck writer elsewhere
                cannot tie up every worker thread.
        """
        if not wait:
            if not self._thread_lock.acquire(blocking=False):
                raise WriterBusy
        elif not self._thread_lock.acquire(timeout=TURN_WAIT_SECONDS):
            raise OperationalError(None, None, sqlite3.OperationalError(
                f"database is locked: no writer's turn within {TURN_WAIT_SECONDS:.0f} seconds"))
        try:
            depth = getattr(self._depth, "value", 0)
            if depth == 0 and self._fd is not None:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    raise WriterBusy from None
            self._depth.value = depth + 1
            try:
                yield
            finally:
                self._depth.value = depth
                if depth == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        """Release the lock file's descriptor."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class WalCheckpointer:
    """Moves a SQLite database's committed WAL pages into the database file from a daemon
    thread, so that no request's commit pays for it.

    By default SQLite checkpoints on the commit that takes the WAL past 1,000 pages: that
    commit copies every page and ``fsync``s the WAL and the database file (about 4 ms here)
    while it holds the writers' turn, so every writer behind it waits too. Here a thread looks
    every :data:`WAL_CHECKPOINT_INTERVAL_SECONDS` seconds whether anything was committed
    (``PRAGMA data_version``, about 6 µs) and, if so, checkpoints in two ``PASSIVE`` passes:
    the first, which copies nearly everything and syncs, while writers go on; the second, which
    copies what they committed meanwhile, holding the writers' turn (:class:`WriterQueue`;
    typically well under 3 ms once a second). The WAL is then wholly copied, and the next
    writer starts it over from its beginning: without the second pass, steady writes always
    leave newer frames behind and the WAL never starts over. A pass that could not copy
    everything (a reader still on an older snapshot, another process checkpointing) is
    repeated at the next tick. Commits still checkpoint at :data:`WAL_BACKSTOP_PAGES` should
    this thread fall behind. Each process sharing the file runs its own.

    Source: https://www.sqlite.org/wal.html ("Automatic Checkpoint", "Application-Initiated
    Checkpoints", "Avoiding Excessively Large WAL Files"),
    https://www.sqlite.org/pragma.html#pragma_data_version.
    """

    def __init__(self, path: str, writers: WriterQueue,
                 interval_seconds: float | None = None) -> None:
        self._uri = Path(path).resolve().as_uri() + "?mode=rw"  # never creates the file
        self._writers = writers
        self._interval_seconds = interval_seconds or WAL_CHECKPOINT_INTERVAL_SECONDS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="moorage-wal-checkpoint",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        connection = None
        done = None  # the data_version whose commits are wholly checkpointed
        try:
            while not self._stop.wait(self._interval_seconds):
                try:
                    if connection is None:
                        connection = sqlite3.connect(self._uri, uri=True, timeout=30,
                                                     isolation_level=None,
                                                     check_same_thread=False)
                    version = connection.execute("PRAGMA data_version").fetchone()[0]
                    if version == done:
                        continue
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    with self._writers.turn():
                        busy, frames, copied = connection.execute(
                            "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if busy == 0 and copied == frames:
                        done = version
                except Exception as error:  # tried again at the next tick; commits still
                    # checkpoint at the backstop
                    log.warning("wal checkpoint failed", error=str(error)[:200])
                    if connection is not None:
                        connection.close()
                        connection = None
        finally:
            if connection is not None:
                connection.close()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it may be running)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)


class Database:
    """The metadata store: an engine plus a session factory.

    ``transaction()`` yields a session inside one transaction, committed on success and rolled
    back on any exception; ``read()`` yields one for reading only (on SQLite it does not take the
    write lock, so reads never wait for each other).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_database_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = self.engine.execution_options(moorage_read_only=True)
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        self._writers: WriterQueue | None = None
        self._sqlite_path: str | None = None
        self._dispose_callbacks: list[Callable[[], None]] = []
        if self.engine.dialect.name == "sqlite":
            self._statement_engine = create_database_engine(url, single_statement=True)
            database_file = self.engine.url.database
            in_memory = not database_file or database_file == ":memory:"
            if not in_memory and not self.engine.url.query:
                self._sqlite_path = database_file
            self._writers = WriterQueue(None if in_memory else Path(database_file + ".writer-lock"))
            if not in_memory:
                checkpointer = WalCheckpointer(database_file, self._writers)
                self._dispose_callbacks.append(checkpointer.close)
                weakref.finalize(self, checkpointer.close)
        else:
            self._statement_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite store."""
        return self.engine.dialect.name == "sqlite"

    @property
    def sqlite_path(self) -> str | None:
        """The path of the SQLite database file; None for PostgreSQL or an in-memory SQLite
        (whose per-thread connections would each see a database of their own)."""
        return self._sqlite_path

    def migrate(self) -> None:
        """Bring the schema to the newest revision."""
        migrate(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One session in one transaction."""
        with self.writer_turn(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A bare connection in one write transaction (Core statements; hot write paths)."""
        with self.writer_turn(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def writer_turn(self, wait: bool = True) -> Iterator[None]:
        """Hold the SQLite writers' turn (:class:`WriterQueue`) for the block; nothing on
        PostgreSQL. Every write transaction on SQLite runs inside it.

        Raises:
            WriterBusy: with ``wait=False``, the turn is held elsewhere (SQLite).
        """
        if self._writers is None:  # PostgreSQL: row locks, no database-wide writer lock
            yield
        else:
            with self._writers.turn(wait):
                yield

    @contextmanager
    def read(self) -> Iterator[Session]:
        """One session in one transaction that only reads."""
        with self._read_sessions.begin() as session:
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A bare autocommit connection for hot paths that read with ONE statement (Core
        queries, no ORM session, no BEGIN/ROLLBACK round trips)."""
        with self._statement_engine.connect() as connection:
            yield connection

    def on_dispose(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (no arguments) when the database is disposed: for components that
        keep connections of their own."""
        self._dispose_callbacks.append(callback)

    def dispose(self) -> None:
        """Close every pooled connection, and those of components registered with
        :meth:`on_dispose`."""
        for callback in self._dispose_callbacks:
            callback()
        self.engine.dispose()
        self._statement_engine.dispose()
        if self._writers is not None:
            self._writers.close()
