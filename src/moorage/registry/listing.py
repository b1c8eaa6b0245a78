"""Read-side views of a repository's images: tags, referrers, image ids and image details.

Pagination is keyset-based: each page continues strictly after the last key returned, so a
concurrent insert never shifts or repeats entries. Sources: OCI distribution-spec v1.1 "Listing
tags", "Listing referrers"; ecr-api.md §3.4 (ListImages), §3.5 (DescribeImages).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import exists, select, tuple_
from sqlalchemy.orm import Session

from moorage.images.digests import parse_digest
from moorage.registry.context import RegistryContext
from moorage.registry.images import ImageId, resolve
from moorage.storage.metadata.schema import Image, Repository, Tag

TAG_STATUSES = ("TAGGED", "UNTAGGED", "ANY")


@dataclass(frozen=True)
class Referrer:
    """A manifest whose ``subject`` is a given digest (OCI 1.1 referrers)."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None
    annotations: dict | None


@dataclass(frozen=True)
class ImageDetail:
    """What DescribeImages reports of one image (sizes in bytes, times in epoch seconds)."""

    digest: str
    tags: tuple[str, ...]
    size_bytes: int
    pushed_at: float
    last_pulled_at: float | None
    media_type: str
    artifact_media_type: str | None
    subject_digest: str | None


class ImageListing:
    """List tags, referrers, image ids and image details of a repository."""

    def __init__(self, context: RegistryContext) -> None:
        self.context = context

    def tags(self, repository_name: str, after: str | None, limit: int | None) -> tuple[list[str], bool]:
        """Tags of the repository in lexical order, after ``after``, at most ``limit``.

        Returns:
            (tags, more): ``more`` is true when further tags follow.

        Raises:
            RepositoryNotFound.
        """
        # Lexical (byte) order on every database, whatever PostgreSQL's collation is.
        name = Tag.name if self.context.database.is_sqlite else Tag.name.collate("C")
        query = (
            select(Repository.id, Tag.name)
            .select_from(Repository)
            .outerjoin(Tag, Tag.repository_id == Repository.id)
            .where(Repository.registry_id == self.context.registry_id,
                   Repository.name == repository_name)
        )
        if after is not None:
            query = query.where((name > after) | (Tag.name.is_(None)))
        query = query.order_by(name)
        if limit is not None:
            query = query.limit(limit + 1)
        with self.context.database.read_connection() as connection:
            rows = connection.execute(query).all()
        if not rows:
            with self.context.database.read() as session:
                self.context.repository(session, repository_name)  # NAME_UNKNOWN
        names = [name for _, name in rows if name is not None]
        if limit is not None and len(names) > limit:
            return names[:limit], True
        return names, False

    def referrers(self, repository_name: str, digest: str, artifact_type: str | None) -> list[Referrer]:
        """Manifests of the repository whose ``subject`` is ``digest``, optionally filtered by
        their artifact type (``artifactType``, else the config media type).

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

    def image_ids(
        self, repository_name: str, tag_status: str, after: tuple[str, str] | None, limit: int
    ) -> tuple[list[tuple[str, str | None]], tuple[str, str] | None]:
        """One ``(digest, tag)`` per tag, and ``(digest, None)`` per untagged image (ListImages),
        ordered by digest then tag.

        Args:
            tag_status: ``TAGGED``, ``UNTAGGED`` or ``ANY``.
            after: continue after this ``(digest, tag or "")`` key.

        Returns:
            (the page, the key to continue after or None on the last page).

        Raises:
            RepositoryNotFound.
        """
        name = Tag.name if self.context.database.is_sqlite else Tag.name.collate("C")
        with self.context.database.read() as session:
            repository_id = self.context.repository_id(session.connection(), repository_name)
            rows: list[tuple[str, str | None]] = []
            if tag_status in ("TAGGED", "ANY"):
                query = (
                    select(Image.digest, Tag.name)
                    .join(Tag, Tag.image_id == Image.id)
                    .where(Image.repository_id == repository_id)
                )
                if after is not None:
                    query = query.where(tuple_(Image.digest, name) > tuple_(*after))
                rows += [tuple(row) for row in session.execute(
                    query.order_by(Image.digest, name).limit(limit + 1))]
            if tag_status in ("UNTAGGED", "ANY"):
                query = select(Image.digest).where(
                    Image.repository_id == repository_id, ~_has_tags()
                )
                if after is not None:
                    # An untagged image's key is (digest, ""), which sorts before any tag.
                    query = query.where(Image.digest > after[0])
                rows += [(digest, None) for digest in session.scalars(
                    query.order_by(Image.digest).limit(limit + 1))]
        rows.sort(key=lambda row: (row[0], row[1] or ""))
        page = rows[:limit]
        more = len(rows) > limit
        return page, ((page[-1][0], page[-1][1] or "") if more and page else None)

    def details(
        self, repository_name: str, tag_status: str, after: tuple[float, str] | None, limit: int
    ) -> tuple[list[ImageDetail], tuple[float, str] | None]:
        """One :class:`ImageDetail` per image (DescribeImages without ``imageIds``), ordered by
        push time then digest.

        Returns:
            (the page, the ``(pushed_at, digest)`` key to continue after, or None).

        Raises:
            RepositoryNotFound.
        """
        with self.context.database.read() as session:
            repository_id = self.context.repository_id(session.connection(), repository_name)
            query = select(*_DETAIL_COLUMNS).where(Image.repository_id == repository_id)
            if tag_status == "TAGGED":
                query = query.where(_has_tags())
            elif tag_status == "UNTAGGED":
                query = query.where(~_has_tags())
            if after is not None:
                query = query.where(tuple_(Image.pushed_at, Image.digest) > tuple_(*after))
            images = list(session.execute(
                query.order_by(Image.pushed_at, Image.digest).limit(limit + 1)))
            more = len(images) > limit
            images = images[:limit]
            details = _details(session, images)
        next_key = (images[-1].pushed_at, images[-1].digest) if more and images else None
        return details, next_key

    def details_of(self, repository_name: str, image_ids: list[ImageId]) -> list[ImageDetail]:
        """The images ``image_ids`` name, each once (DescribeImages with ``imageIds``).

        Raises:
            RepositoryNotFound; ImageNotFound (for the first id that matches nothing),
            InvalidDigest, InvalidTag, MissingDigestAndTag, TagDigestMismatch.
        """
        with self.context.database.read() as session:
            repository = self.context.repository(session, repository_name)
            images: dict[int, Image] = {}
            for image_id in image_ids:
                image = resolve(session, repository, image_id)
                images.setdefault(image.id, image)
            return _details(session, list(images.values()))


def _has_tags():  # type: ignore[no-untyped-def]
    return exists().where(Tag.image_id == Image.id)


# What DescribeImages needs of an image (not its manifest bytes).
_DETAIL_COLUMNS = (Image.id, Image.digest, Image.image_size_bytes, Image.pushed_at,
                   Image.last_pulled_at, Image.media_type, Image.artifact_type, Image.subject_digest)


def _details(session: Session, images: list) -> list[ImageDetail]:  # type: ignore[type-arg]
    tags: dict[int, list[str]] = defaultdict(list)
    if images:
        for image_id, name in session.execute(
            select(Tag.image_id, Tag.name).where(Tag.image_id.in_([i.id for i in images]))
        ):
            tags[image_id].append(name)
    return [
        ImageDetail(
            digest=image.digest,
            tags=tuple(sorted(tags[image.id])),
            size_bytes=image.image_size_bytes,
            pushed_at=image.pushed_at,
            last_pulled_at=image.last_pulled_at,
            media_type=image.media_type,
            artifact_media_type=image.artifact_type,
            subject_digest=image.subject_digest,
        )
        for image in images
    ]

