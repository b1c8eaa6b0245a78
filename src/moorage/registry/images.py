"""Images: manifests stored in a repository, their tags, and the rules both APIs share.

``put`` is the one write path for an OCI manifest PUT and ECR PutImage: the same parsing, the
same reference checks, the same immutability rule and one transaction for image + tag.

Sources: OCI distribution-spec v1.1 "Pushing manifests", "Pulling manifests", "Deleting
manifests", "Listing tags", "Listing referrers"; ecr-api.md §3.8, §9.2.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
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


@dataclass(frozen=True)
class StoredManifest:
    """A manifest as served: verbatim bytes, media type and digest."""

    digest: str
    media_type: str
    content: bytes


@dataclass(frozen=True)
class PutResult:
    """The outcome of storing a manifest."""

    manifest: Manifest
    created: bool  # False when the repository already held this digest


@dataclass(frozen=True)
class Referrer:
    """A manifest whose ``subject`` is a given digest (OCI 1.1 referrers)."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None
    annotations: dict | None


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
    ) -> PutResult:
        """Store manifest ``content`` in the repository, optionally under ``tag``.

        Args:
            content: the manifest bytes, kept verbatim (the digest is their sha256).
            content_type: the declared media type (HTTP ``Content-Type``, ECR
                ``imageManifestMediaType``), or None to take it from the manifest.
            tag: tag to point at the manifest; it moves from another image unless the
                repository is immutable.
            expected_digest: the digest the client named; must equal the computed one.

        Raises:
            InvalidManifest / ManifestTooLarge: unparsable, unsupported or > 4 MiB
                (``MANIFEST_INVALID`` / ``SIZE_INVALID``).
            InvalidTag: bad tag (``TAG_INVALID``).
            InvalidDigest, DigestMismatch: bad or different ``expected_digest``
                (``DIGEST_INVALID``; ECR ``ImageDigestDoesNotMatchException``).
            RepositoryNotFound: (``NAME_UNKNOWN``).
            ManifestReferencesMissing: blobs or child manifests absent from the repository
                (``MANIFEST_BLOB_UNKNOWN``; ECR ``LayersNotFoundException`` /
                ``ReferencedImagesNotFoundException``).
            ImageTagAlreadyExists: immutable repository, tag names another image
                (``TAG_INVALID``; ECR ``ImageTagAlreadyExistsException``).
        """
        if tag is not None:
            parse_tag(tag)
        manifest = parse_manifest(content, content_type)
        if expected_digest is not None:
            parse_digest(expected_digest)
            if expected_digest != manifest.digest:
                raise errors.DigestMismatch(
                    f"the manifest has digest {manifest.digest}, not {expected_digest}"
                )
        for attempt in range(3):
            try:
                with self.context.database.transaction() as session:
                    created = self._put(session, repository_name, manifest, content, tag)
                return PutResult(manifest, created)
            except IntegrityError:
                # A concurrent writer inserted the same digest or tag first: look again.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _put(
        self, session: Session, repository_name: str, manifest: Manifest, content: bytes,
        tag: str | None,
    ) -> bool:
        repository = self.context.repository(session, repository_name, for_update=True)
        image = session.scalars(
            select(Image).where(
                Image.repository_id == repository.id, Image.digest == manifest.digest
            )
        ).one_or_none()
        created = image is None
        if image is None:
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
            references = {(d.digest, "blob") for d in manifest.blob_references}
            references |= {(d.digest, "manifest") for d in manifest.manifests}
            session.add_all(
                ImageReference(image_id=image.id, digest=digest, kind=kind)
                for digest, kind in references
            )
        if tag is not None:
            self._point_tag(session, repository, tag, image)
        return created

    def _check_references(self, session: Session, repository: Repository, manifest: Manifest) -> int:
        """Check every referenced blob and child manifest is in the repository.

        Returns:
            the image size in bytes: config + layers for an image manifest; for an index, the
            largest child's image size (ECR's DescribeImages convention).
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
        return sum(d.size for d in manifest.blob_references)

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
        with self.context.database.read() as session:
            repository = self.context.repository(session, repository_name)
            if by_digest:
                query = select(Image).where(
                    Image.repository_id == repository.id, Image.digest == reference
                )
            else:
                query = (
                    select(Image)
                    .join(Tag, Tag.image_id == Image.id)
                    .where(Tag.repository_id == repository.id, Tag.name == reference)
                )
            image = session.scalars(query).one_or_none()
            if image is None:
                raise errors.ImageNotFound(
                    f"manifest '{reference}' is unknown to repository '{repository_name}'"
                )
            stored = StoredManifest(image.digest, image.media_type, image.content)
            image_id, last_pulled_at = image.id, image.last_pulled_at
        if record_pull:
            now = self.context.clock.now()
            if last_pulled_at is None or now - last_pulled_at >= PULL_TIME_RESOLUTION_SECONDS:
                with self.context.database.transaction() as session:
                    session.execute(
                        update(Image).where(Image.id == image_id).values(last_pulled_at=now)
                    )
        return stored

    def tags(self, repository_name: str, after: str | None, limit: int | None) -> tuple[list[str], bool]:
        """Tags of the repository in lexical order, after ``after``, at most ``limit``.

        Returns:
            (tags, more): ``more`` is true when further tags follow.

        Raises:
            RepositoryNotFound.
        """
        with self.context.database.read() as session:
            repository = self.context.repository(session, repository_name)
            query = select(Tag.name).where(Tag.repository_id == repository.id)
            if after is not None:
                query = query.where(Tag.name > after)
            query = query.order_by(Tag.name)
            if limit is not None:
                query = query.limit(limit + 1)
            names = list(session.scalars(query))
        if limit is not None and len(names) > limit:
            return names[:limit], True
        return names, False

    def referrers(self, repository_name: str, digest: str, artifact_type: str | None) -> list[Referrer]:
        """Manifests of the repository whose ``subject`` is ``digest``, optionally filtered.

        Raises:
            InvalidDigest: malformed digest (``DIGEST_INVALID``).
            RepositoryNotFound.
        """
        parse_digest(digest)
        with self.context.database.read() as session:
            repository = self.context.repository(session, repository_name)
            query = select(Image).where(
                Image.repository_id == repository.id, Image.subject_digest == digest
            )
            if artifact_type is not None:
                query = query.where(Image.artifact_type == artifact_type)
            rows = session.scalars(query.order_by(Image.pushed_at, Image.digest)).all()
            return [
                Referrer(row.media_type, row.digest, row.manifest_size_bytes, row.artifact_type,
                         row.annotations)
                for row in rows
            ]

    # -- delete -----------------------------------------------------------------------------

    def delete(self, repository_name: str, reference: str) -> None:
        """Delete by digest (the image and all its tags) or by tag (the tag; the image too when
        it was its last tag, as ECR's BatchDeleteImage).

        Raises:
            InvalidTag / InvalidDigest, RepositoryNotFound, ImageNotFound.
            ImageReferencedByIndex: the image is a child of a stored index or manifest list.
        """
        by_digest = is_digest(reference)
        if by_digest:
            parse_digest(reference)
        else:
            parse_tag(reference)
        with self.context.database.transaction() as session:
            repository = self.context.repository(session, repository_name, for_update=True)
            if by_digest:
                image = session.scalars(
                    select(Image).where(
                        Image.repository_id == repository.id, Image.digest == reference
                    )
                ).one_or_none()
            else:
                tag = session.get(Tag, (repository.id, reference))
                image = session.get(Image, tag.image_id) if tag is not None else None
                if tag is not None:
                    session.delete(tag)
                    session.flush()
            if image is None:
                raise errors.ImageNotFound(
                    f"manifest '{reference}' is unknown to repository '{repository_name}'"
                )
            remaining_tags = session.scalar(
                select(func.count()).select_from(Tag).where(Tag.image_id == image.id)
            )
            if not by_digest and remaining_tags:
                return
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
                    f"image {image.digest} is referenced by manifest list {parents[0]}; "
                    "delete the manifest list first"
                )
            session.execute(delete(Tag).where(Tag.image_id == image.id))
            session.execute(delete(Image).where(Image.id == image.id))


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
