"""Read-side views of a repository's images: tags, referrers, image ids and image details.

Pagination is keyset-based: each page continues strictly after the last key returned, so a
concurrent insert never shifts or repeats entries. Sources: OCI distribution-spec v1.1 "Listing
tags", "Listing referrers"; ecr-api.md §3.4 (ListImages), §3.5 (DescribeImages).
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.engine import Row

from moorage import errors
from moorage.errors import MoorageError
from moorage.images.digests import parse_digest
from moorage.registry.context import REPOSITORY_ID, RegistryContext
from moorage.registry.images import ImageId, lookup_statement, resolve_image_ids, tags_of_images
from moorage.storage.metadata.statements import statement_reader
from moorage.storage.metadata.schema import Image

TAG_STATUSES = ("TAGGED", "UNTAGGED", "ANY")

# tags/list: one statement returns the page as a JSON array (built by the database, no row
# objects in Python; compact, ``["a","b"]``, on both databases) and its length. Every tag name is non-empty, so "after ''"
# starts at the first. The names are in lexical (byte) order on every database, whatever
# PostgreSQL's collation is.
_TAG_NAMES = ("SELECT t.name{collate} AS name FROM repositories r JOIN tags t ON t.repository_id = r.id"
              " WHERE r.registry_id = :registry_id AND r.name = :name AND t.name{collate} > :after"
              " ORDER BY 1")
_TAGS_AS_JSON = {
    "sqlite": "SELECT json_group_array(name), count(*) FROM ({names})",
    "postgresql": "SELECT coalesce(array_to_json(array_agg(name ORDER BY name))::text, '[]'), count(*)"
                  " FROM ({names}) AS page",
}
_TAGS_STATEMENTS = {
    (dialect, paged): template.format(names=_TAG_NAMES.format(
        collate="" if dialect == "sqlite" else ' COLLATE "C"') + (" LIMIT :limit" if paged else ""))
    for dialect, template in _TAGS_AS_JSON.items() for paged in (False, True)
}
_MORE_TAGS = ("SELECT 1 FROM repositories r JOIN tags t ON t.repository_id = r.id"
              " WHERE r.registry_id = :registry_id AND r.name = :name AND t.name{collate} > :last"
              " LIMIT 1")
_MORE_TAGS_STATEMENTS = {"sqlite": _MORE_TAGS.format(collate=""),
                         "postgresql": _MORE_TAGS.format(collate=' COLLATE "C"')}

@dataclass(frozen=True)
class Referrer:
    """A manifest whose ``subject`` is a given digest (OCI 1.1 referrers)."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None
    annotations: dict | None


class ImageDetail(NamedTuple):
    """What DescribeImages reports of one image (sizes in bytes, times in epoch seconds).

    A named tuple: immutable, and cheap to build for every image of a listing page."""

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

    def tags_json(self, repository_name: str, after: str | None, limit: int | None) -> tuple[str, str | None, bool]:
        """Tags of the repository in lexical order, after ``after``, at most ``limit``, as the
        JSON array ``tags/list`` answers with (built by the database in one indexed statement).

        Returns:
            (JSON array of the tag names; when further tags follow, the last name, else None;
            ``more``: true when further tags follow).

        Raises:
            RepositoryNotFound.
        """
        reader = statement_reader(self.context.database)
        dialect = "sqlite" if reader.is_sqlite else "postgresql"
        parameters: dict[str, object] = {
            "registry_id": self.context.registry_id, "name": repository_name, "after": after or ""}
        if limit is not None:
            parameters["limit"] = limit
        row = reader.one(_TAGS_STATEMENTS[dialect, limit is not None], parameters)
        assert row is not None  # an aggregate without GROUP BY returns one row
        names, count = row
        if not count:
            if reader.one(REPOSITORY_ID, parameters) is None:
                raise errors.RepositoryNotFound(repository_name, self.context.registry_id)
            return "[]", None, False
        if limit is None or count < limit:
            return names, None, False
        # A full page: is there more after its last name? (max() in SQL costs more than this.)
        parameters["last"] = last = json.loads(names)[-1]
        more = reader.one(_MORE_TAGS_STATEMENTS[dialect], parameters) is not None
        return names, last, more

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
        ordered by digest then tag (an untagged image's key is ``(digest, "")``).

        One keyset query per page (``images`` left-joined to ``tags``).

        Args:
            tag_status: ``TAGGED``, ``UNTAGGED`` or ``ANY``.
            after: continue after this ``(digest, tag or "")`` key.

        Returns:
            (the page, the key to continue after or None on the last page).

        Raises:
            RepositoryNotFound.
        """
        reader = statement_reader(self.context.database)
        parameters: dict[str, object] = {
            "registry_id": self.context.registry_id, "name": repository_name, "limit": limit + 1}
        if after is not None:
            parameters["after_digest"], parameters["after_tag"] = after
        rows: list[tuple[str, str | None]] = reader.all(
            _image_ids_statement(reader.is_sqlite, tag_status, after is not None), parameters)
        if not rows and reader.one(REPOSITORY_ID, parameters) is None:
            raise errors.RepositoryNotFound(repository_name, self.context.registry_id)
        page = rows[:limit]
        more = len(rows) > limit
        return page, ((page[-1][0], page[-1][1] or "") if more and page else None)

    def details(
        self, repository_name: str, tag_status: str, after: tuple[float, str] | None, limit: int
    ) -> tuple[list[ImageDetail], tuple[float, str] | None]:
        """One :class:`ImageDetail` per image (DescribeImages without ``imageIds``), ordered by
        push time then digest.

        One keyset query per page: the page of images, left-joined to their tags.

        Returns:
            (the page, the ``(pushed_at, digest)`` key to continue after, or None).

        Raises:
            RepositoryNotFound.
        """
        reader = statement_reader(self.context.database)
        parameters: dict[str, object] = {
            "registry_id": self.context.registry_id, "name": repository_name, "limit": limit + 1}
        if after is not None:
            parameters["after_pushed_at"], parameters["after_digest"] = after
        rows = reader.all(_details_statement(tag_status, after is not None), parameters)
        if not rows and reader.one(REPOSITORY_ID, parameters) is None:
            raise errors.RepositoryNotFound(repository_name, self.context.registry_id)
        # Rows of one image are adjacent (ordered by push time and digest): group them.
        images: list[tuple[Any, list[str]]] = []
        last_id = None
        more = False
        for row in rows:
            image_id, tag = row[0], row[-1]
            if image_id != last_id:
                if len(images) == limit:
                    more = True
                    break
                images.append((row, []))
                last_id = image_id
            if tag is not None:
                images[-1][1].append(tag)
        details = [_detail(row, tags) for row, tags in images]
        next_key = (details[-1].pushed_at, details[-1].digest) if more and details else None
        return details, next_key

    def details_of(self, repository_name: str, image_ids: list[ImageId]) -> list[ImageDetail]:
        """The images ``image_ids`` name, each once (DescribeImages with ``imageIds``).

        Raises:
            RepositoryNotFound; ImageNotFound (for the first id that matches nothing),
            InvalidDigest, InvalidTag, MissingDigestAndTag, TagDigestMismatch.
        """
        with self.context.database.read_connection() as connection:
            repository_id = self.context.repository_id(connection, repository_name)
            resolved = resolve_image_ids(connection, _DETAILS_OF_IDS, repository_id,
                                         repository_name, self.context.registry_id, image_ids)
            images: dict[int, Row[Any]] = {}
            for row in resolved:
                if isinstance(row, MoorageError):
                    raise row
                images.setdefault(row[0], row)
            tags: dict[int, list[str]] = defaultdict(list)
            for image_id, name in tags_of_images(connection, list(images)):
                tags[image_id].append(name)
        return [_detail(row, tags[image_id]) for image_id, row in images.items()]


_IMAGES = Image.__table__
# What DescribeImages needs of an image (not its manifest bytes).
_DETAIL_COLUMNS = (_IMAGES.c.id, _IMAGES.c.digest, _IMAGES.c.image_size_bytes,
                   _IMAGES.c.pushed_at, _IMAGES.c.last_pulled_at, _IMAGES.c.media_type,
                   _IMAGES.c.artifact_type, _IMAGES.c.subject_digest)
_DETAILS_OF_IDS = lookup_statement(*_DETAIL_COLUMNS)

# The listing pages run as SQL text on the statement reader (no SQLAlchemy per page: for a
# page of 100 rows it cost more than the query).
_IN_REPOSITORY = f"i.repository_id = ({REPOSITORY_ID})"
_HAS_TAGS = "EXISTS (SELECT 1 FROM tags t WHERE t.image_id = i.id)"


@functools.lru_cache(maxsize=None)
def _image_ids_statement(is_sqlite: bool, tag_status: str, continued: bool) -> str:
    """ListImages page: ``(digest, tag or NULL)`` rows in key order, ``:limit`` of them.

    The key of an untagged image is ``(digest, "")``: its NULL tag sorts first, as "" would
    (every tag is non-empty); tags compare in byte order on both databases. On SQLite the order
    is the index order of ``images (repository_id, digest)`` and ``tags (image_id, name)``, so a
    page reads only its own rows from the two indexes."""
    name = "t.name" if is_sqlite else 't.name COLLATE "C"'
    join = "JOIN" if tag_status == "TAGGED" else "LEFT JOIN"
    conditions = [_IN_REPOSITORY]
    if tag_status == "UNTAGGED":
        conditions.append("t.name IS NULL")
    if continued:
        conditions.append(f"i.digest >= :after_digest"
                          f" AND (i.digest > :after_digest OR coalesce({name}, '') > :after_tag)")
    return (f"SELECT i.digest, t.name FROM images i {join} tags t ON t.image_id = i.id"
            f" WHERE {' AND '.join(conditions)}"
            f" ORDER BY i.digest, {name}{'' if is_sqlite else ' NULLS FIRST'} LIMIT :limit")


@functools.lru_cache(maxsize=None)
def _details_statement(tag_status: str, continued: bool) -> str:
    """DescribeImages page: ``:limit`` images in ``(pushed_at, digest)`` order, one row per tag
    (the last column, NULL for an untagged image) after the ``_DETAIL_COLUMNS``."""
    conditions = [_IN_REPOSITORY]
    if tag_status == "TAGGED":
        conditions.append(_HAS_TAGS)
    elif tag_status == "UNTAGGED":
        conditions.append("NOT " + _HAS_TAGS)
    if continued:
        conditions.append("(i.pushed_at, i.digest) > (:after_pushed_at, :after_digest)")
    columns = ", ".join(f"i.{column.name}" for column in _DETAIL_COLUMNS)
    page = (f"SELECT {columns} FROM images i"
            f" WHERE {' AND '.join(conditions)} ORDER BY i.pushed_at, i.digest LIMIT :limit")
    return (f"SELECT page.*, t.name FROM ({page}) AS page"
            " LEFT JOIN tags t ON t.image_id = page.id ORDER BY page.pushed_at, page.digest")


def _detail(row: Any, tags: list[str]) -> ImageDetail:
    """The :class:`ImageDetail` of an image row that starts with ``_DETAIL_COLUMNS``."""
    _, digest, size_bytes, pushed_at, last_pulled_at, media_type, artifact_type, subject = row[:8]
    return ImageDetail(digest, tuple(sorted(tags)), size_bytes, pushed_at, last_pulled_at,
                       media_type, artifact_type, subject)
