"""Blobs as a repository sees them: available only when linked to it (pushed or mounted there).

Sources: OCI distribution-spec v1.1 "Pulling blobs", "Deleting blobs", "Mounting a blob from
another repository"; ecr-api.md §9.6.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, exists, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from moorage import errors
from moorage.images.digests import parse_digest
from moorage.registry.context import RegistryContext
from moorage.registry.pulls import PullReads
from moorage.storage.metadata import statements
from moorage.storage.metadata.schema import (
    Blob,
    Image,
    ImageReference,
    Repository,
    RepositoryBlob,
)


class BlobService:
    """Look up, serve, link and unlink blobs of a repository."""

    def __init__(self, context: RegistryContext) -> None:
        self.context = context
        self._pulls = PullReads(context)

    def stat(self, repository_name: str, digest: str) -> int:
        """Size in bytes of blob ``digest`` in the repository.

        Raises:
            InvalidDigest: malformed digest (OCI ``DIGEST_INVALID``).
            RepositoryNotFound: no such repository (``NAME_UNKNOWN``).
            BlobNotFound: not linked to the repository (``BLOB_UNKNOWN``).
        """
        parse_digest(digest)
        return self._pulls.blob_size(repository_name, digest)  # the one blob-size query

    def availability(self, repository_name: str, digests: list[str]) -> list[tuple[str, int, str | None] | errors.MoorageError]:
        """For each digest, in order: ``(digest, size in bytes, media type or None)`` when the
        blob is available in the repository, else the domain error (BatchCheckLayerAvailability).

        The media type is the one a manifest of the repository first referenced the blob with.

        Raises:
            RepositoryNotFound: the whole call fails only for a missing repository.
        """
        results: list[tuple[str, int, str | None] | errors.MoorageError] = []
        with self.context.database.read() as session:
            repository = self.context.repository(session, repository_name)
            valid = []
            for digest in digests:
                try:
                    valid.append(parse_digest(digest))
                except errors.InvalidDigest:
                    pass
            sizes = dict(session.execute(
                select(Blob.digest, Blob.size_bytes)
                .join(RepositoryBlob, RepositoryBlob.digest == Blob.digest)
                .where(RepositoryBlob.repository_id == repository.id, Blob.digest.in_(valid))
            ).all())
            media_types = dict(session.execute(
                select(ImageReference.blob_digest, ImageReference.media_type)
                .join(Image, Image.id == ImageReference.image_id)
                .where(Image.repository_id == repository.id,
                       ImageReference.blob_digest.in_(list(sizes)))
                .order_by(Image.pushed_at.desc())
            ).all())
        for digest in digests:
            if digest == "":
                results.append(errors.BlobNotFound("The layer digest is empty"))
            elif digest not in valid:
                results.append(errors.InvalidDigest(f"Invalid layer digest '{digest[:200]}'"))
            elif digest not in sizes:
                results.append(errors.BlobNotFound(
                    f"The layer {digest} does not exist in the repository '{repository_name}'"))
            else:
                results.append((digest, int(sizes[digest]), media_types.get(digest)))
        return results

    def check_downloadable(self, repository_name: str, digest: str) -> None:
        """GetDownloadUrlForLayer's checks: the blob is in the repository and an image there
        references it.

        Raises:
            InvalidDigest, RepositoryNotFound.
            BlobNotFound: not in the repository (``LayersNotFoundException``).
            LayerInaccessible: in the repository but referenced by no image
                (``LayerInaccessibleException``).
        """
        self.stat(repository_name, digest)
        with self.context.database.read() as session:
            repository = self.context.repository(session, repository_name)
            referenced = session.scalar(select(exists().where(
                ImageReference.blob_digest == digest,
                ImageReference.image_id == Image.id, Image.repository_id == repository.id,
            )))
        if not referenced:
            raise errors.LayerInaccessible(
                f"The layer {digest} is not referenced by any image in the repository "
                f"'{repository_name}'"
            )

    def path(self, digest: str) -> Path:
        """Where the blob's bytes are (filesystem store)."""
        return self.context.blobs.blob_path(digest)

    def mount(self, repository_name: str, digest: str, from_repository: str) -> bool:
        """Link blob ``digest`` of ``from_repository`` into ``repository_name``.

        Returns:
            True when the blob is now available in the target; False when the source does not
            have it (the caller then starts an ordinary upload, as the spec asks).

        Raises:
            RepositoryNotFound: the target repository does not exist.
        """
        parse_digest(digest)
        with self.context.database.transaction() as session:
            target = self.context.repository(session, repository_name)
            # Lock the blob first: a collector deleting it either finished (no row: an
            # ordinary upload follows) or waits until the new link is committed.
            if not lock_blob(session, digest, self.context.database.is_sqlite):
                return False
            source_has_it = session.scalar(
                select(
                    exists().where(
                        RepositoryBlob.digest == digest,
                        RepositoryBlob.repository_id == Repository.id,
                        Repository.registry_id == self.context.registry_id,
                        Repository.name == from_repository,
                    )
                )
            )
            if not source_has_it:
                return False
            now = self.context.clock.now()
            session.execute(update(Blob).where(Blob.digest == digest).values(created_at=now))
            link_blob(session, target.id, digest, now)
        return True

    def unlink(self, repository_name: str, digest: str) -> None:
        """Make blob ``digest`` unavailable in the repository (the bytes stay until GC).

        Raises:
            InvalidDigest: malformed digest.
            RepositoryNotFound: no such repository.
            BlobNotFound: the blob is not linked to the repository.
            BlobInUse: an image of the repository references it (delete the image first).
        """
        parse_digest(digest)
        with self.context.database.transaction() as session:
            repository = self.context.repository(session, repository_name, for_update=True)
            in_use = session.scalar(
                select(
                    exists().where(
                        ImageReference.blob_digest == digest,
                        ImageReference.image_id == Image.id,
                        Image.repository_id == repository.id,
                    )
                )
            )
            if in_use:
                raise errors.BlobInUse(
                    f"blob {digest} is referenced by an image of '{repository_name}'; "
                    "delete the image first"
                )
            result = session.execute(
                delete(RepositoryBlob).where(
                    RepositoryBlob.repository_id == repository.id, RepositoryBlob.digest == digest
                )
            )
            if result.rowcount == 0:
                raise errors.BlobNotFound(
                    f"blob {digest} is unknown to repository '{repository_name}'"
                )


_CLAIM_BLOB = (
    "INSERT INTO blobs (digest, size_bytes, created_at) VALUES (:digest, :size_bytes, :created_at)"
    " ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at"
)
_LINK_EXISTS = "SELECT 1 FROM repository_blobs WHERE repository_id = :repository_id AND digest = :digest"
_LINK_BLOB = (
    "INSERT INTO repository_blobs (repository_id, digest, created_at)"
    " VALUES (:repository_id, :digest, :created_at)"
    " ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at"
)


def link_blob(session: Session | Connection, repository_id: int, digest: str, now: float) -> bool:
    """Link a published blob to a repository inside ``session``, or refresh the link's time
    (a blob pushed or mounted again is young again for garbage collection).

    Call with the blob row claimed or locked (:func:`claim_blob`, :meth:`BlobService.mount`).

    Returns:
        True when the link is new.
    """
    values = {"repository_id": repository_id, "digest": digest, "created_at": now}
    existed = statements.one(session, _LINK_EXISTS, values)
    statements.execute(session, _LINK_BLOB, values)
    return existed is None


def claim_blob(session: Session | Connection, digest: str, size_bytes: int, now: float) -> None:
    """Insert the row of blob ``digest``, or refresh and lock the existing one, until
    ``session`` ends.

    The row lock orders a publication against a concurrent garbage collection of the same blob
    (which locks the row first, see :mod:`moorage.registry.housekeeping`); the refreshed time
    keeps a blob pushed again from being collected as old.
    """
    statements.execute(session, _CLAIM_BLOB,
                       {"digest": digest, "size_bytes": size_bytes, "created_at": now})


def lock_blob(session: Session | Connection, digest: str, is_sqlite: bool) -> bool:
    """Lock the row of blob ``digest`` until ``session`` ends (SQLite: the write transaction
    holds the database lock already). Returns False when there is no such blob."""
    query = select(Blob.digest).where(Blob.digest == digest)
    if not is_sqlite:
        query = query.with_for_update()
    return session.execute(query).first() is not None
