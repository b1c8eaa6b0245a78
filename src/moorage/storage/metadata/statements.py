"""SQL text run straight on DB-API connections: reads outside any transaction
(:class:`StatementReader`), write transactions of their own (:class:`StatementWriter`), and
statements inside either kind of transaction, SQLAlchemy's or the writer's (:func:`one`,
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from moorage.storage.metadata.database import SQLITE_WRITER_PRAGMAS, Database

_NAMED_PARAMETER = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")  # not a PostgreSQL cast (::text)


@functools.lru_cache(maxsize=512)
def for_postgresql(statement: str) -> str:
    """``statement`` with ``:name`` parameters in psycopg's ``%(name)s`` style."""
    return _NAMED_PARAMETER.sub(r"%(\1)s", statement.replace("%", "%%"))


Executor = Connection | Session | sqlite3.Connection  # what one(), execute() and locking() take


def locking(statement: str, connection: Executor, strength: str = "UPDATE") -> str:
    """``statement`` (a SELECT) locking the rows it reads until the transaction ends: ``FOR
    UPDATE`` (or ``FOR <strength>``, e.g. ``KEY SHARE``) on PostgreSQL; SQLite's write
    transaction holds the whole database already.

    Lock in a statement of its own: under PostgreSQL's READ COMMITTED a statement's snapshot is
    taken before it waits for a lock, so other reads (subqueries) in the locking statement can
    see the state from before the lock holder committed; the next statement sees it.
    """
    if isinstance(connection, sqlite3.Connection) or _is_sqlite(_connection(connection)):
        return statement
    return f"{statement} FOR {strength}"


def bound_list(key: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """An ``IN`` list of bound parameters: (``":key0, :key1, …"``, ``{"key0": …}``).

    ``values`` must not be empty (``IN ()`` is not SQL PostgreSQL accepts); callers bind long
    lists in chunks.
    """
    assert values, "an empty IN list"
    placeholders, names = _bound_names(key, len(values))
    return placeholders, dict(zip(names, values))


@functools.lru_cache(maxsize=256)
def _bound_names(key: str, count: int) -> tuple[str, tuple[str, ...]]:
    names = tuple(f"{key}{index}" for index in range(count))
    return ", ".join(f":{name}" for name in names), names


def one(connection: Executor, statement: str, parameters: dict[str, Any]) -> tuple | None:
    """The first row of ``statement``, or None."""
    cursor = _cursor(connection, statement, parameters)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def all(connection: Executor, statement: str, parameters: dict[str, Any]) -> list[tuple]:  # noqa: A001
    """Every row of ``statement``."""
    cursor = _cursor(connection, statement, parameters)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def execute_many(connection: Executor, statement: str, rows: list[dict[str, Any]]) -> None:
    """Run ``statement`` once per parameter set in ``rows`` (one driver call)."""
    _cursor(connection, statement, rows, many=True).close()


def execute(connection: Executor, statement: str, parameters: dict[str, Any]) -> int:
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


def _cursor(connection: Executor, statement: str, parameters: Any, many: bool = False) -> Any:
    """A cursor that has run ``statement`` (``executemany`` with ``many``) on the DB-API
    connection beneath ``connection``. Driver errors are raised as the exception SQLAlchemy
    would raise (IntegrityError, OperationalError…), so callers handle one family whichever way
    a statement ran."""
    if isinstance(connection, sqlite3.Connection):  # StatementWriter's own connection
        driver, error_base, dialect = connection, sqlite3.Error, None
    else:
        bound = _connection(connection)
        driver, dialect = bound.connection.driver_connection, bound.dialect
        error_base = dialect.loaded_dbapi.Error
        if not _is_sqlite(bound):
            statement = for_postgresql(statement)
    cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        (cursor.executemany if many else cursor.execute)(statement, parameters)
    except error_base as error:
        cursor.close()
        raise DBAPIError.instance(statement, parameters, error, error_base,
                                  dialect=dialect) from error
    except BaseException:
        cursor.close()
        raise
    return cursor


class _ThreadConnections:
    """One SQLite connection per thread to one database file, all closed together (with the
    database: ``Database.dispose``); a thread holding one of an older generation opens anew."""

    def __init__(self, path: str, pragmas: tuple[str, ...]) -> None:
        self._path = path
        self._pragmas = pragmas
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._generation = 0

    def get(self) -> sqlite3.Connection:
        """This thread's connection."""
        local = self._local
        if getattr(local, "generation", None) != self._generation:
            connection = sqlite3.connect(self._path, timeout=30, isolation_level=None,
                                         check_same_thread=False)
            for pragma in self._pragmas:
                connection.execute(pragma)
            with self._lock:
                self._connections.append(connection)
                local.connection, local.generation = connection, self._generation
        return local.connection

    def close(self) -> None:
        """Close every thread's connection (threads using one later open a new one)."""
        with self._lock:
            self._generation += 1
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()


class StatementReader:
    """Runs one read-only SQL statement (``:name`` parameters) and returns its rows as tuples."""

    def __init__(self, database: Database) -> None:
        # Weak: the reader is kept per database (statement_reader) and must not keep it alive.
        self._database = weakref.ref(database)
        self.is_sqlite = database.is_sqlite
        path = database.sqlite_path
        self._sqlite = None if path is None else _ThreadConnections(
            path, ("PRAGMA query_only=ON", "PRAGMA busy_timeout=30000"))
        if self._sqlite is not None:
            database.on_dispose(self._sqlite.close)

    def all(self, statement: str, parameters: dict[str, Any]) -> list[tuple]:
        """Every row of ``statement``."""
        if self._sqlite is not None:
            return self._sqlite.get().execute(statement, parameters).fetchall()
        with self._pooled_cursor() as cursor:
            cursor.execute(self._in_dialect(statement), parameters)
            return cursor.fetchall()

    def one(self, statement: str, parameters: dict[str, Any]) -> tuple | None:
        """The first row of ``statement``, or None."""
        if self._sqlite is not None:
            return self._sqlite.get().execute(statement, parameters).fetchone()
        with self._pooled_cursor() as cursor:
            cursor.execute(self._in_dialect(statement), parameters)
            return cursor.fetchone()

    def close(self) -> None:
        """Close the SQLite connections (Database.dispose does)."""
        if self._sqlite is not None:
            self._sqlite.close()

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


class StatementWriter:
    """Write transactions for SQL text (:func:`one`, :func:`execute`).

    On a SQLite file: each thread's own ``sqlite3`` connection (WAL, ``synchronous=NORMAL`` and
    foreign keys, as the engine's), ``BEGIN IMMEDIATE`` … ``COMMIT`` in the writers' turn —
    about 30 µs of overhead per transaction against 150 µs through SQLAlchemy's engine. On
    PostgreSQL (and in-memory SQLite): ``Database.write_connection()``.
    """

    def __init__(self, database: Database) -> None:
        self._database = weakref.ref(database)
        path = database.sqlite_path
        self._sqlite = None if path is None else _ThreadConnections(path, SQLITE_WRITER_PRAGMAS)
        if self._sqlite is not None:
            database.on_dispose(self._sqlite.close)

    @contextmanager
    def transaction(self, wait: bool = True) -> Iterator[sqlite3.Connection | Connection]:
        """A connection in one write transaction: committed when the block ends, rolled back
        (and the exception raised on) when it raises. ``wait=False``: only if the SQLite
        writers' turn is free now.

        Raises:
            WriterBusy: with ``wait=False``, another writer holds the turn (nothing started).
            sqlalchemy.exc.OperationalError: the database cannot start or commit (locked,
                disk full…).
        """
        database = self._database()
        assert database is not None, "the database of this writer was closed"
        if self._sqlite is None:
            with database.write_connection() as connection:
                yield connection
            return
        connection = self._sqlite.get()
        with database.writer_turn(wait):
            _run(connection, "BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            _run(connection, "COMMIT")


def _run(connection: sqlite3.Connection, statement: str) -> None:
    """BEGIN or COMMIT; a COMMIT that fails (SQLITE_BUSY, disk full) leaves no open transaction."""
    try:
        _cursor(connection, statement, {}).close()
    except DBAPIError:
        if connection.in_transaction and statement == "COMMIT":
            connection.execute("ROLLBACK")
        raise


_readers: weakref.WeakKeyDictionary[Database, StatementReader] = weakref.WeakKeyDictionary()
_writers: weakref.WeakKeyDictionary[Database, StatementWriter] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()
_Component = TypeVar("_Component", StatementReader, StatementWriter)


def _one_per_database(registry: weakref.WeakKeyDictionary[Database, _Component],
                      factory: Callable[[Database], _Component], database: Database) -> _Component:
    component = registry.get(database)
    if component is None:
        with _registry_lock:
            component = registry.get(database)
            if component is None:
                component = registry[database] = factory(database)
    return component


def statement_reader(database: Database) -> StatementReader:
    """The one :class:`StatementReader` of ``database`` (its SQLite connections are per
    thread, so every service reading through it shares them)."""
    return _one_per_database(_readers, StatementReader, database)


def statement_writer(database: Database) -> StatementWriter:
    """The one :class:`StatementWriter` of ``database``."""
    return _one_per_database(_writers, StatementWriter, database)
