"""The pull path's reads: one SQL statement per request, straight on a DB-API connection.

``GET``/``HEAD`` of a manifest or a blob and ``tags/list`` are the requests a registry answers
most. Each is one indexed query; building it through SQLAlchemy (statement cache key, execution
context, result object, pool checkout and reset) cost several times the query itself, so these
reads bypass it:

* on SQLite, each thread keeps its own connection to the database file (autocommit, read-only:
  every statement sees the latest committed state, a WAL reader never waits for a writer);
* on PostgreSQL, the statement runs on the DB-API connection of a pooled autocommit connection
  (psycopg prepares statements it sees repeatedly).

Nothing is cached: tags move and images and blobs are deleted by other processes and replicas
sharing the database, so every answer comes from the database.

The statements join the repository by name and use outer joins, so one statement also tells a
missing repository (no row) from a missing manifest or blob (a row of NULLs).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import make_url

from moorage import errors
from moorage.registry.context import RegistryContext
from moorage.storage.metadata.database import Database

_IMAGE_COLUMNS = "i.id, i.digest, i.media_type, i.last_pulled_at"
# Manifest by tag or digest; HEAD needs the size only (the content is not read).
_MANIFEST_BY_TAG = (
    "SELECT {columns} FROM repositories r"
    " LEFT JOIN tags t ON t.repository_id = r.id AND t.name = :reference"
    " LEFT JOIN images i ON i.id = t.image_id"
    " WHERE r.registry_id = :registry_id AND r.name = :name"
)
_MANIFEST_BY_DIGEST = (
    "SELECT {columns} FROM repositories r"
    " LEFT JOIN images i ON i.repository_id = r.id AND i.digest = :reference"
    " WHERE r.registry_id = :registry_id AND r.name = :name"
)
MANIFEST_STATEMENTS = {
    (by_digest, with_content): (
        (_MANIFEST_BY_DIGEST if by_digest else _MANIFEST_BY_TAG).format(
            columns=_IMAGE_COLUMNS + (", i.content" if with_content else ", i.manifest_size_bytes"))
    )
    for by_digest in (False, True) for with_content in (False, True)
}
# Blob size when linked to the repository (NULL when not); no row when the repository is absent.
BLOB_SIZE = (
    "SELECT r.id, b.size_bytes FROM repositories r"
    " LEFT JOIN repository_blobs rb ON rb.repository_id = r.id AND rb.digest = :digest"
    " LEFT JOIN blobs b ON b.digest = rb.digest"
    " WHERE r.registry_id = :registry_id AND r.name = :name"
)
_NAMED_PARAMETER = re.compile(r"(?<!:):([a-z_]+)")  # not a PostgreSQL cast (::text)


def for_postgresql(statement: str) -> str:
    """``statement`` with ``:name`` parameters in psycopg's ``%(name)s`` style."""
    return _NAMED_PARAMETER.sub(r"%(\1)s", statement.replace("%", "%%"))


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
        self._postgresql: dict[str, str] = {}

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
        connection = getattr(self._local, "connection", None)
        if connection is None:
            assert self._sqlite_path is not None
            connection = self._local.connection = self._connect_sqlite(self._sqlite_path)
        return connection

    def _in_dialect(self, statement: str) -> str:
        if self.is_sqlite:
            return statement
        translated = self._postgresql.get(statement)
        if translated is None:
            translated = self._postgresql[statement] = for_postgresql(statement)
        return translated

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


class PullReads:
    """The manifest and blob look-ups of every pull (``GET``/``HEAD`` under ``/v2/``)."""

    def __init__(self, context: RegistryContext) -> None:
        self.context = context
        self.reader = statement_reader(context.database)

    def manifest(self, repository_name: str, reference: str, *, by_digest: bool,
                 with_content: bool) -> tuple[int, str, str, float | None, bytes | int]:
        """The image named by ``reference`` (already validated as a tag or a digest).

        Returns:
            (image row id, digest, media type, last pull time or None, the manifest bytes with
            ``with_content``, else their size in bytes).

        Raises:
            RepositoryNotFound: (``NAME_UNKNOWN``).
            ImageNotFound: (``MANIFEST_UNKNOWN``).
        """
        row = self.reader.one(MANIFEST_STATEMENTS[by_digest, with_content], {
            "registry_id": self.context.registry_id, "name": repository_name,
            "reference": reference})
        if row is None:
            raise errors.RepositoryNotFound(repository_name, self.context.registry_id)
        if row[0] is None:
            raise errors.ImageNotFound(
                f"manifest '{reference}' is unknown to repository '{repository_name}'")
        content = row[4]
        if with_content and not isinstance(content, bytes):
            content = bytes(content)
        return row[0], row[1], row[2], row[3], content

    def blob_size(self, repository_name: str, digest: str) -> int:
        """Size in bytes of blob ``digest`` (already validated) in the repository.

        Raises:
            RepositoryNotFound: (``NAME_UNKNOWN``).
            BlobNotFound: not linked to the repository (``BLOB_UNKNOWN``).
        """
        row = self.reader.one(BLOB_SIZE, {
            "registry_id": self.context.registry_id, "name": repository_name, "digest": digest})
        if row is None:
            raise errors.RepositoryNotFound(repository_name, self.context.registry_id)
        if row[1] is None:
            raise errors.BlobNotFound(f"blob {digest} is unknown to repository '{repository_name}'")
        return int(row[1])
