"""SQL text run straight on DB-API connections: reads outside any transaction
(:class:`StatementReader`) and statements inside a SQLAlchemy transaction (:func:`one`,
:func:`execute`).

The write path of every push runs a dozen short statements per blob. Through SQLAlchemy's
Core each costs 40–130 µs of statement cache look-up, execution context and result wrapping,
several times the statement itself; run on the driver's own cursor it costs a few µs. The
transaction stays SQLAlchemy's: these helpers take a :class:`~sqlalchemy.engine.Connection`
(or :class:`~sqlalchemy.orm.Session`) inside ``Database.write_connection()`` /
``transaction()`` and run on the same DB-API connection, so BEGIN, COMMIT, ROLLBACK and the
SQLite writers' turn are unchanged.

Statements use ``:name`` parameters (SQLite's style) and only SQL both dialects accept
(``INSERT … ON CONFLICT … DO UPDATE``, ``RETURNING``); ``FOR UPDATE`` is added on PostgreSQL by
:func:`locking`. Table and column names are those of :mod:`moorage.storage.metadata.schema`.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from moorage.storage.metadata.database import Database

_NAMED_PARAMETER = re.compile(r"(?<!:):([a-z_]+)")  # not a PostgreSQL cast (::text)


@functools.lru_cache(maxsize=512)
def for_postgresql(statement: str) -> str:
    """``statement`` with ``:name`` parameters in psycopg's ``%(name)s`` style."""
    return _NAMED_PARAMETER.sub(r"%(\1)s", statement.replace("%", "%%"))


def locking(statement: str, connection: Connection | Session) -> str:
    """``statement`` (a SELECT) locking the rows it reads until the transaction ends: ``FOR
    UPDATE`` on PostgreSQL; SQLite's write transaction holds the whole database already.

    Lock in a statement of its own: under PostgreSQL's READ COMMITTED a statement's snapshot is
    taken before it waits for a lock, so other reads (subqueries) in the locking statement can
    see the state from before the lock holder committed; the next statement sees it.
    """
    return statement if _is_sqlite(_connection(connection)) else statement + " FOR UPDATE"


def one(connection: Connection | Session, statement: str, parameters: dict[str, Any]) -> tuple | None:
    """The first row of ``statement``, or None."""
    cursor = _cursor(connection, statement, parameters)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def execute(connection: Connection | Session, statement: str, parameters: dict[str, Any]) -> int:
    """Run ``statement``; the number of rows it changed."""
    cursor = _cursor(connection, statement, parameters)
    try:
        return cursor.rowcount
    finally:
        cursor.close()


def _connection(connection: Connection | Session) -> Connection:
    return connection.connection() if isinstance(connection, Session) else connection


def _is_sqlite(connection: Connection) -> bool:
    return connection.dialect.name == "sqlite"


def _cursor(connection: Connection | Session, statement: str, parameters: dict[str, Any]) -> Any:
    bound = _connection(connection)
    driver = bound.connection.driver_connection
    if not _is_sqlite(bound):
        statement = for_postgresql(statement)
    cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement, parameters)
    except bound.dialect.loaded_dbapi.Error as error:
        cursor.close()
        # The exception SQLAlchemy would raise (IntegrityError, OperationalError…), so callers
        # handle one family whichever way a statement ran.
        raise DBAPIError.instance(statement, parameters, error, bound.dialect.loaded_dbapi.Error,
                                  dialect=bound.dialect) from error
    except BaseException:
        cursor.close()
        raise
    return cursor


class StatementReader:
    """Runs one read-only SQL statement (``:name`` parameters) and returns its rows as tuples."""

    def __init__(self, database: Database) -> None:
        # Weak: the reader is kept per database (statement_reader) and must not keep it alive.
        self._database = weakref.ref(database)
        self.is_sqlite = database.is_sqlite
        self._sqlite_path: str | None = None
        if self.is_sqlite:
            url = make_url(database.url)
            if url.database and url.database != ":memory:" and not url.query:
                self._sqlite_path = url.database
        self._local = threading.local()
        # Every thread's SQLite connection, closed with the database (Database.dispose); a
        # thread holding one of an older generation opens a new one.
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._generation = 0
        database.on_dispose(self.close)

    def all(self, statement: str, parameters: dict[str, Any]) -> list[tuple]:
        """Every row of ``statement``."""
        if self._sqlite_path is not None:
            return self._sqlite().execute(statement, parameters).fetchall()
        with self._pooled_cursor() as cursor:
            cursor.execute(self._in_dialect(statement), parameters)
            return cursor.fetchall()

    def one(self, statement: str, parameters: dict[str, Any]) -> tuple | None:
        """The first row of ``statement``, or None."""
        if self._sqlite_path is not None:
            return self._sqlite().execute(statement, parameters).fetchone()
        with self._pooled_cursor() as cursor:
            cursor.execute(self._in_dialect(statement), parameters)
            return cursor.fetchone()

    def _sqlite(self) -> sqlite3.Connection:
        """This thread's connection to the SQLite file."""
        local = self._local
        if getattr(local, "generation", None) != self._generation:
            assert self._sqlite_path is not None
            connection = self._connect_sqlite(self._sqlite_path)
            with self._connections_lock:
                self._connections.append(connection)
                local.connection, local.generation = connection, self._generation
        return local.connection

    def close(self) -> None:
        """Close every thread's SQLite connection (threads reading later open new ones)."""
        with self._connections_lock:
            self._generation += 1
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def _in_dialect(self, statement: str) -> str:
        return statement if self.is_sqlite else for_postgresql(statement)

    @contextmanager
    def _pooled_cursor(self) -> Iterator[Any]:
        """A DB-API cursor of a pooled autocommit connection (PostgreSQL; SQLite without a file)."""
        database = self._database()
        assert database is not None, "the database of this reader was closed"
        with database.read_connection() as pooled:
            cursor = pooled.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                yield cursor
            finally:
                cursor.close()

    @staticmethod
    def _connect_sqlite(path: str) -> sqlite3.Connection:
        connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA query_only=ON")
        connection.execute("PRAGMA busy_timeout=30000")
        return connection


_readers: weakref.WeakKeyDictionary[Database, StatementReader] = weakref.WeakKeyDictionary()
_readers_lock = threading.Lock()


def statement_reader(database: Database) -> StatementReader:
    """The one :class:`StatementReader` of ``database`` (its SQLite connections are per
    thread, so every service reading through it shares them)."""
    reader = _readers.get(database)
    if reader is None:
        with _readers_lock:
            reader = _readers.get(database)
            if reader is None:
                reader = _readers[database] = StatementReader(database)
    return reader
