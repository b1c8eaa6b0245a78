"""The pull path's reads: one SQL statement per request, straight on a DB-API connection.

``GET``/``HEAD`` of a manifest or a blob and ``tags/list`` are the requests a registry answers
most. Each is one indexed query; building it through SQLAlchemy (statement cache key, execution
context, result object, pool checkout and reset) cost several times the query itself, so these
reads bypass it (:class:`~moorage.storage.metadata.statements.StatementReader`):

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

from moorage import errors
from moorage.registry.context import RegistryContext
from moorage.storage.metadata.statements import statement_reader

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
