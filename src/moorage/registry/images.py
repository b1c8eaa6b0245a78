"""Images: manifests stored in a repository, their tags, and the rules both APIs share.

``put`` is the one write path for an OCI manifest PUT and ECR PutImage: the same parsing, the
same reference checks, the same immutability rule and one transaction for image + tag.

Sources: OCI distribution-spec v1.1 "Pushing manifests", "Pulling manifests", "Deleting
manifests", "Listing tags", "Listing referrers"; ecr-api.md §3.8, §9.2.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from moorage import errors
from moorage.images.digests import is_digest, parse_digest
from moorage.images.manifests import Manifest, parse_manifest
from moorage.images.references import parse_tag
from moorage.registry.context import RegistryContext
from moorage.storage.metadata.schema import (
    Blob,
    Image,
    ImageReference,
    Repository,
    RepositoryBlob,
    Tag,
)

PULL_TIME_RESOLUTION_SECONDS = 1.0

_MANIFEST_COLUMNS = select(
    Image.id, Image.digest, Image.media_type, Image.content, Image.last_pulled_at
).join(Repository, Repository.id == Image.repository_id).where(
    Repository.registry_id == bindparam("registry_id"), Repository.name == bindparam("name"))
_MANIFEST_BY_DIGEST = _MANIFEST_COLUMNS.where(Image.digest == bindparam("reference"))
_MANIFEST_BY_TAG = _MANIFEST_COLUMNS.join(Tag, Tag.image_id == Image.id).where(
    Tag.name == bindparam("reference"))


@dataclass(frozen=True)
class StoredManifest:
    """A manifest as served: verbatim bytes, media type and digest (and, for pull-time
    bookkeeping, the image's row id and last pull time in epoch seconds)."""

    digest: str
    media_type: str
    content: bytes
    image_id: int = 0
    last_pulled_at: float | None = None



class ImageService:
    """Store, fetch, tag, list and delete images."""

    def __init__(self, context: RegistryContext) -> None:
        self.context = context

    # -- write ------------------------------------------------------------------------------

    def put(
        self,
        repository_name: str,
        content: bytes,
        content_type: str | None,
        *,
        tag: str | None = None,
        expected_digest: str | None = None,
        reject_existing: bool = False,
    ) -> Manifest:
        """Store manifest ``content`` in the repository, optionally under ``tag``.

        Args:
            content: the manifest bytes, kept verbatim (the digest is their sha256).
            content_type: the declared media type (HTTP ``Content-Type``, ECR
                ``imageManifestMediaType``), or None to take it from the manifest.
            tag: tag to point at the manifest; it moves from another image unless the
                repository is immutable.
            expected_digest: the digest the client named; must equal the computed one.
            reject_existing: ECR PutImage semantics: storing a digest the repository already
                holds, untagged or under the same tag, is ``ImageAlreadyExists``; the data
                plane treats it as success.

        Raises:
            InvalidManifest / ManifestTooLarge: unparsable, unsupported or > 4 MiB
                (``MANIFEST_INVALID`` / ``SIZE_INVALID``).
            InvalidTag: bad tag (``TAG_INVALID``).
            ImageAlreadyExists: with ``reject_existing``, nothing would change.
            InvalidDigest, ManifestDigestMismatch: bad or different ``expected_digest``
                (``DIGEST_INVALID``; ECR ``ImageDigestDoesNotMatchException``).
            RepositoryNotFound: (``NAME_UNKNOWN``).
            ManifestReferencesMissing: blobs or child manifests absent from the repository
                (``MANIFEST_BLOB_UNKNOWN``; ECR ``LayersNotFoundException`` /
                ``ReferencedImagesNotFoundException``).
            ImageTagAlreadyExists: immutable repository, tag names another image
                (``TAG_INVALID``; ECR ``ImageTagAlreadyExistsException``).
            LimitExceeded: the repository holds ``max_images_per_repository`` images already
                (``DENIED``; ECR ``LimitExceededException``).
        """
        if tag is not None:
            parse_tag(tag)
        manifest = parse_manifest(content, content_type)
        if expected_digest is not None:
            parse_digest(expected_digest)
            if expected_digest != manifest.digest:
                raise errors.ManifestDigestMismatch(
                    f"The manifest digest {manifest.digest} does not match the provided digest "
                    f"{expected_digest}"
                )
        for attempt in range(3):
            try:
                with self.context.database.transaction() as session:
                    self._put(session, repository_name, manifest, content, tag, reject_existing)
                return manifest
            except IntegrityError:
                # A concurrent writer inserted the same digest or tag first, or a collector
                # removed a blob we reference: look again (the retry sees what changed).
                if attempt == 2:
                    raise errors.Conflict(
                        "the repository changed concurrently three times; retry the request"
                    ) from None
        raise AssertionError("unreachable")

    def _put(
        self, session: Session, repository_name: str, manifest: Manifest, content: bytes,
        tag: str | None, reject_existing: bool,
    ) -> None:
        repository = self.context.repository(session, repository_name, for_update=True)
        image = session.scalars(
            select(Image).where(
                Image.repository_id == repository.id, Image.digest == manifest.digest
            )
        ).one_or_none()
        if image is not None and reject_existing:
            current = session.get(Tag, (repository.id, tag)) if tag is not None else None
            if tag is None or (current is not None and current.image_id == image.id):
                raise errors.ImageAlreadyExists(
                    f"Image with digest '{manifest.digest}' and tag '{tag}' already exists in the "
                    f"repository with name '{repository.name}' in registry with id "
                    f"'{repository.registry_id}'"
                )
        if image is None:
            count = session.scalar(select(func.count()).select_from(Image).where(
                Image.repository_id == repository.id)) or 0
            if count >= self.context.max_images_per_repository:
                raise errors.LimitExceeded(
                    f"The maximum number of images ({self.context.max_images_per_repository}) in "
                    f"the repository '{repository.name}' has been reached")
            image_size = self._check_references(session, repository, manifest)
            config_media_type = manifest.config.media_type if manifest.config else None
            image = Image(
                repository_id=repository.id,
                digest=manifest.digest,
                media_type=manifest.media_type,
                artifact_type=manifest.effective_artifact_type,
                config_media_type=config_media_type,
                subject_digest=manifest.subject.digest if manifest.subject else None,
                annotations=manifest.annotations,
                content=content,
                manifest_size_bytes=len(content),
                image_size_bytes=image_size,
                pushed_at=self.context.clock.now(),
            )
            session.add(image)
            session.flush()
            references: dict[tuple[str, str], str] = {}
            for descriptor in manifest.blob_references:
                references.setdefault((descriptor.digest, "blob"), descriptor.media_type)
            for descriptor in manifest.manifests:
                references.setdefault((descriptor.digest, "manifest"), descriptor.media_type)
            session.add_all(
                ImageReference(image_id=image.id, digest=digest, kind=kind, media_type=media_type,
                               blob_digest=digest if kind == "blob" else None)
                for (digest, kind), media_type in references.items()
            )
            session.flush()
        if tag is not None:
            self._point_tag(session, repository, tag, image)

    def _check_references(self, session: Session, repository: Repository, manifest: Manifest) -> int:
        """Check every referenced blob and child manifest is in the repository.

        Returns:
            the image size in bytes (DescribeImages ``imageSizeInBytes``, ecr-api.md §3.5): the
            sum of the layer sizes for an image manifest (the config is not counted); for an
            index, the largest child's image size.
        """
        wanted = {d.digest: d.size for d in manifest.blob_references}
        missing_blobs: list[str] = []
        if wanted:
            found = dict(
                session.execute(
                    select(Blob.digest, Blob.size_bytes)
                    .join(RepositoryBlob, RepositoryBlob.digest == Blob.digest)
                    .where(
                        RepositoryBlob.repository_id == repository.id,
                        Blob.digest.in_(list(wanted)),
                    )
                ).all()
            )
            for digest, size in wanted.items():
                if digest not in found:
                    missing_blobs.append(digest)
                elif found[digest] != size:
                    raise errors.InvalidManifest(
                        f"descriptor of {digest} says {size} bytes but the blob has "
                        f"{found[digest]} bytes"
                    )
        children = {d.digest for d in manifest.manifests}
        missing_manifests: list[str] = []
        child_sizes: list[int] = []
        if children:
            rows = dict(
                session.execute(
                    select(Image.digest, Image.image_size_bytes).where(
                        Image.repository_id == repository.id, Image.digest.in_(list(children))
                    )
                ).all()
            )
            missing_manifests = sorted(children - set(rows))
            child_sizes = list(rows.values())
        if missing_blobs or missing_manifests:
            raise errors.ManifestReferencesMissing(missing_blobs, missing_manifests)
        if manifest.is_index:
            return max(child_sizes, default=0)
        return sum(d.size for d in manifest.layers)

    def _point_tag(self, session: Session, repository: Repository, tag: str, image: Image) -> None:
        now = self.context.clock.now()
        current = session.get(Tag, (repository.id, tag))
        if current is None:
            session.add(Tag(repository_id=repository.id, name=tag, image_id=image.id, updated_at=now))
            session.flush()
            return
        if current.image_id == image.id:
            return
        if is_immutable(repository, tag):
            raise errors.ImageTagAlreadyExists(tag, repository.name)
        current.image_id = image.id
        current.updated_at = now

    # -- read -------------------------------------------------------------------------------

    def get(self, repository_name: str, reference: str, *, record_pull: bool) -> StoredManifest:
        """The manifest named by ``reference`` (a tag or a digest).

        Args:
            record_pull: update the image's last pull time (GET, not HEAD).

        Raises:
            InvalidTag / InvalidDigest: malformed reference (``TAG_INVALID`` / ``DIGEST_INVALID``).
            RepositoryNotFound: (``NAME_UNKNOWN``).
            ImageNotFound: (``MANIFEST_UNKNOWN``).
        """
        by_digest = is_digest(reference)
        if by_digest:
            parse_digest(reference)
        else:
            parse_tag(reference)
        # The hot path of every pull: one prepared query on a bare connection.
        statement = _MANIFEST_BY_DIGEST if by_digest else _MANIFEST_BY_TAG
        with self.context.database.read_connection() as connection:
            row = connection.execute(statement, {
                "registry_id": self.context.registry_id, "name": repository_name,
                "reference": reference}).first()
        if row is None:
            with self.context.database.read() as session:
                self.context.repository(session, repository_name)
            raise errors.ImageNotFound(
                f"manifest '{reference}' is unknown to repository '{repository_name}'")
        stored = StoredManifest(row.digest, row.media_type, row.content, row.id, row.last_pulled_at)
        if record_pull:
            self.record_pull(stored)
        return stored

    def pull_is_stale(self, stored: StoredManifest) -> bool:
        """True when pulling ``stored`` now should update its last pull time (at most once a
        second per image, so a busy tag costs no write per request)."""
        last = stored.last_pulled_at
        return last is None or self.context.clock.now() - last >= PULL_TIME_RESOLUTION_SECONDS

    def record_pull(self, stored: StoredManifest) -> None:
        """Record a pull of ``stored`` (DescribeImages ``lastRecordedPullTime``)."""
        self._record_pulls([(stored.image_id, stored.last_pulled_at)])

    def get_many(
        self, repository_name: str, image_ids: list[ImageId]
    ) -> list[StoredManifest | errors.MoorageError]:
        """Each of ``image_ids`` resolved independently (BatchGetImage); counts as a pull.

        Returns:
            per id, in order, the stored manifest or the domain error that prevented it
            (MissingDigestAndTag, InvalidDigest, InvalidTag, ImageNotFound, TagDigestMismatch).

        Raises:
            RepositoryNotFound.
        """
        stored, pulled = self._get_many(repository_name, image_ids)
        self._record_pulls(pulled)
        return stored

    def _get_many(
        self, repository_name: str, image_ids: list[ImageId]
    ) -> tuple[list[StoredManifest | errors.MoorageError], list[tuple[int, float | None]]]:
        results: list[StoredManifest | errors.MoorageError] = []
        pulled: list[tuple[int, float | None]] = []
        with self.context.database.read() as session:
            repository = self.context.repository(session, repository_name)
            for image_id in image_ids:
                try:
                    image = resolve(session, repository, image_id)
                except errors.MoorageError as error:
                    results.append(error)
                    continue
                results.append(StoredManifest(image.digest, image.media_type, image.content))
                pulled.append((image.id, image.last_pulled_at))
        return results, pulled

    def _record_pulls(self, pulled: list[tuple[int, float | None]]) -> None:
        now = self.context.clock.now()
        stale = [image_id for image_id, last in pulled
                 if last is None or now - last >= PULL_TIME_RESOLUTION_SECONDS]
        if stale:
            with self.context.database.transaction() as session:
                session.execute(update(Image).where(Image.id.in_(stale)).values(last_pulled_at=now))

    # -- delete -----------------------------------------------------------------------------

    def delete(self, repository_name: str, reference: str) -> list[tuple[str, str | None]]:
        """``DELETE /v2/<name>/manifests/<reference>``: by digest or by tag, as :meth:`delete_one`.

        Raises:
            InvalidTag / InvalidDigest, RepositoryNotFound, ImageNotFound, ImageReferencedByIndex.
        """
        if is_digest(reference):
            return self.delete_one(repository_name, ImageId(digest=reference))
        return self.delete_one(repository_name, ImageId(tag=reference))

    def delete_one(self, repository_name: str, image_id: ImageId) -> list[tuple[str, str | None]]:
        """Delete one image or tag with ECR's BatchDeleteImage semantics (ecr-api.md §3.7).

        By tag only: the tag goes, and the image too when it was its last tag. By digest (with
        or without a matching tag): the image and all its tags. Deleting an image also deletes
        its referrers (manifests whose ``subject`` it is), recursively.

        Returns:
            ``(digest, tag)`` per tag removed, or ``(digest, None)`` for an untagged image.

        Raises:
            MissingDigestAndTag, InvalidDigest, InvalidTag, RepositoryNotFound, ImageNotFound,
            TagDigestMismatch, ImageReferencedByIndex.
        """
        with self.context.database.transaction() as session:
            repository = self.context.repository(session, repository_name, for_update=True)
            return self._delete(session, repository, image_id)

    def delete_many(
        self, repository_name: str, image_ids: list[ImageId]
    ) -> tuple[list[tuple[str, str | None]], list[tuple[int, errors.MoorageError]]]:
        """Delete each of ``image_ids`` independently, in order (BatchDeleteImage).

        Returns:
            (removed ``(digest, tag)`` pairs, per-item failures as (index in ``image_ids``,
            domain error)).

        Raises:
            RepositoryNotFound: the whole call fails only for a missing repository.
        """
        removed: list[tuple[str, str | None]] = []
        failures: list[tuple[int, errors.MoorageError]] = []
        # One transaction for the batch, a savepoint per item: an item that fails leaves no
        # trace and does not stop the others.
        with self.context.database.transaction() as session:
            repository = self.context.repository(session, repository_name, for_update=True)
            for index, image_id in enumerate(image_ids):
                try:
                    with session.begin_nested():
                        removed += self._delete(session, repository, image_id)
                except errors.MoorageError as error:
                    failures.append((index, error))
        return removed, failures

    def _delete(self, session: Session, repository: Repository, image_id: ImageId) -> list[tuple[str, str | None]]:
        image = resolve(session, repository, image_id)
        if image_id.digest is None:
            assert image_id.tag is not None
            tag_count = session.scalar(
                select(func.count()).select_from(Tag).where(Tag.image_id == image.id)
            )
            if tag_count and tag_count > 1:
                session.execute(
                    delete(Tag).where(Tag.repository_id == repository.id, Tag.name == image_id.tag)
                )
                return [(image.digest, image_id.tag)]
        return self._delete_image(session, repository, image)

    def _delete_image(self, session: Session, repository: Repository, image: Image) -> list[tuple[str, str | None]]:
        parents = session.scalars(
            select(Image.digest)
            .join(ImageReference, ImageReference.image_id == Image.id)
            .where(
                Image.repository_id == repository.id,
                ImageReference.kind == "manifest",
                ImageReference.digest == image.digest,
            )
        ).all()
        if parents:
            raise errors.ImageReferencedByIndex(
                f"Requested image {image.digest} is referenced by a manifest list: "
                + ", ".join(parents)
            )
        tags = sorted(session.scalars(select(Tag.name).where(Tag.image_id == image.id)))
        removed: list[tuple[str, str | None]] = [(image.digest, t) for t in tags] or [(image.digest, None)]
        # Its tags and references go with it (ON DELETE CASCADE).
        session.execute(delete(Image).where(Image.id == image.id))
        referrers = session.scalars(
            select(Image).where(
                Image.repository_id == repository.id, Image.subject_digest == image.digest
            )
        ).all()
        for referrer in referrers:
            removed += self._delete_image(session, repository, referrer)
        return removed


@dataclass(frozen=True)
class ImageId:
    """An ECR ``ImageIdentifier``: a digest, a tag, or both."""

    digest: str | None = None
    tag: str | None = None

    def describe(self) -> str:
        """``{imageDigest:'<d or null>', imageTag:'<t or null>'}`` as ECR's messages show it."""
        digest = f"'{self.digest}'" if self.digest is not None else "null"
        tag = f"'{self.tag}'" if self.tag is not None else "null"
        return f"{{imageDigest:{digest}, imageTag:{tag}}}"


def resolve(session: Session, repository: Repository, image_id: ImageId) -> Image:
    """The image ``image_id`` names in ``repository``.

    Raises:
        MissingDigestAndTag: neither digest nor tag.
        InvalidDigest / InvalidTag: malformed.
        ImageNotFound: nothing matches.
        TagDigestMismatch: both given, and the tag names another image.
    """
    if image_id.digest is None and image_id.tag is None:
        raise errors.MissingDigestAndTag("Invalid request parameters: both tag and digest cannot be null")
    if image_id.digest is not None:
        parse_digest(image_id.digest)
    if image_id.tag is not None:
        parse_tag(image_id.tag)
    image = None
    if image_id.digest is not None:
        image = session.scalars(
            select(Image).where(Image.repository_id == repository.id, Image.digest == image_id.digest)
        ).one_or_none()
    if image_id.tag is not None:
        tagged = session.scalars(
            select(Image)
            .join(Tag, Tag.image_id == Image.id)
            .where(Tag.repository_id == repository.id, Tag.name == image_id.tag)
        ).one_or_none()
        if image is not None and tagged is not None and tagged.id != image.id:
            raise errors.TagDigestMismatch(
                f"Invalid request parameters: image tag '{image_id.tag}' does not point to "
                f"digest '{image_id.digest}'"
            )
        if image_id.digest is None or (image is not None and tagged is None):
            image = tagged if image_id.digest is None else None
    if image is None:
        raise errors.ImageNotFound(
            f"The image with imageId {image_id.describe()} does not exist within the repository "
            f"with name '{repository.name}' in the registry with id '{repository.registry_id}'"
        )
    return image


def is_immutable(repository: Repository, tag: str) -> bool:
    """True when ``tag`` may not move in ``repository`` (ecr-api.md §3.22).

    ``IMMUTABLE``: every tag. ``MUTABLE_WITH_EXCLUSION``: tags matching a filter are immutable.
    ``IMMUTABLE_WITH_EXCLUSION``: tags matching a filter stay mutable.
    """
    mode = repository.image_tag_mutability
    if mode == "MUTABLE":
        return False
    if mode == "IMMUTABLE":
        return True
    filters = repository.image_tag_mutability_exclusion_filters or []
    matches = any(fnmatch.fnmatchcase(tag, f["filter"]) for f in filters)
    return matches if mode == "MUTABLE_WITH_EXCLUSION" else not matches
