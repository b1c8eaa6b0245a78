"""Images: manifests stored in a repository, their tags, and the rules both APIs share.

``put`` is the one write path for an OCI manifest PUT and ECR PutImage: the same parsing, the
same reference checks, the same immutability rule and one transaction for image + tag.

Sources: OCI distribution-spec v1.1 "Pushing manifests", "Pulling manifests", "Deleting
manifests", "Listing tags", "Listing referrers"; ecr-api.md §3.8, §9.2.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    String,
    bindparam,
    cast,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from moorage import errors
from moorage.images.digests import is_digest, parse_digest
from moorage.images.manifests import Manifest, parse_manifest
from moorage.images.references import parse_tag
from moorage.registry.context import RegistryContext
from moorage.storage.metadata import statements
from moorage.storage.metadata.database import WriteTooLarge
from moorage.storage.metadata.statements import statement_writer
from moorage.storage.metadata.schema import (
    Blob,
    Image,
    ImageReference,
    Repository,
    RepositoryBlob,
    Tag,
)

PULL_TIME_RESOLUTION_SECONDS = 1.0
# Most images a BatchDeleteImage may look at on the event loop (its 100 ids and their referrers,
# followed recursively, can be many more): beyond, it runs in a worker thread.
INLINE_DELETE_IMAGES = 200

# Longest list bound into one ``IN (...)``: far below SQLite's and PostgreSQL's limits.
_IN_LIST_CHUNK = 500

_IMAGES = Image.__table__
_TAGS = Tag.__table__
_REFERENCES = ImageReference.__table__
_REPOSITORIES = Repository.__table__
_BLOBS = Blob.__table__
_REPOSITORY_BLOBS = RepositoryBlob.__table__

# -- prepared statements of the write paths (built once; executed on a bare connection) ------

# Manifest PUT / PutImage, first read (after locking the repository row on PostgreSQL): the
# repository row, the image that already has the manifest's digest, the image the tag names now
# and the image count (images-per-repository quota), in one round trip. SQL text run by
# moorage.storage.metadata.statements in a StatementWriter transaction (the push path).
_PUT_STATE = (
    "SELECT r.id, r.name, r.registry_id, r.image_tag_mutability,"
    " r.image_tag_mutability_exclusion_filters,"
    " (SELECT i.id FROM images i WHERE i.repository_id = r.id AND i.digest = :digest),"
    " (SELECT t.image_id FROM tags t WHERE t.repository_id = r.id AND t.name = :tag),"
    " r.image_count"
    " FROM repositories r WHERE r.registry_id = :registry_id AND r.name = :name"
)
# What a new manifest references and the repository holds: blobs with their sizes, child
# manifests with their image sizes ({blobs} and {manifests}: lists of bound parameters).
_REFERENCED_BLOBS = (
    "SELECT 'blob', b.digest, b.size_bytes FROM blobs b"
    " JOIN repository_blobs rb ON rb.digest = b.digest"
    " WHERE rb.repository_id = :repository_id AND b.digest IN ({blobs})"
)
_REFERENCED_MANIFESTS = (
    "SELECT 'manifest', i.digest, i.image_size_bytes FROM images i"
    " WHERE i.repository_id = :repository_id AND i.digest IN ({manifests})"
)
_INSERT_IMAGE = (
    "INSERT INTO images (repository_id, digest, media_type, artifact_type, config_media_type,"
    " subject_digest, annotations, content, manifest_size_bytes, image_size_bytes, pushed_at,"
    " last_pulled_at) VALUES (:repository_id, :digest, :media_type, :artifact_type,"
    " :config_media_type, :subject_digest, :annotations, :content, :manifest_size_bytes,"
    " :image_size_bytes, :pushed_at, NULL) RETURNING id"
)
_COUNT_IMAGES = "UPDATE repositories SET image_count = image_count + :added WHERE id = :repository_id"
_INSERT_REFERENCE = (
    "INSERT INTO image_references (image_id, digest, kind, media_type, blob_digest)"
    " VALUES (:image_id, :digest, :kind, :media_type, :blob_digest)"
)
_INSERT_TAG = (
    "INSERT INTO tags (repository_id, name, image_id, updated_at)"
    " VALUES (:repository_id, :name, :image_id, :updated_at)"
)
_MOVE_TAG = (
    "UPDATE tags SET image_id = :image_id, updated_at = :updated_at"
    " WHERE repository_id = :repository_id AND name = :name"
)


class _PutState(NamedTuple):
    """The first read of a manifest PUT (columns of :data:`_PUT_STATE`)."""

    id: int
    name: str
    registry_id: str
    image_tag_mutability: str
    image_tag_mutability_exclusion_filters: list[dict[str, str]] | None
    image_id: int | None
    tagged_image_id: int | None
    image_count: int


_RECORD_PULLS = (
    update(_IMAGES)
    .where(_IMAGES.c.id.in_(bindparam("image_ids", expanding=True)))
    .values(last_pulled_at=bindparam("pulled_at"))
)

# -- BatchDeleteImage: the rows a batch can touch, loaded set-wise ---------------------------
# SQL text on the write transaction's own connection (moorage.storage.metadata.statements);
# ``{…}`` are lists of bound parameters (statements.bound_list), at most _IN_LIST_CHUNK long.

_TAGS_OF_IMAGES = "SELECT image_id, name FROM tags WHERE image_id IN ({image_ids})"
# The named images, and whether an index (of any repository) lists each and whether it has
# referrers, so the queries for those run only when needed. The last column is the tag an
# image was found by (NULL: found by digest).
_IMAGE_FLAGS = (
    "EXISTS (SELECT 1 FROM image_references r WHERE r.kind = 'manifest' AND r.digest = i.digest),"
    " EXISTS (SELECT 1 FROM images f WHERE f.repository_id = i.repository_id"
    " AND f.subject_digest = i.digest)"
)
_IMAGES_WITH_DIGESTS = (
    f"SELECT i.id, i.digest, {_IMAGE_FLAGS}, CAST(NULL AS VARCHAR) FROM images i"
    " WHERE i.repository_id = :repository_id AND i.digest IN ({digests})"
)
_IMAGES_WITH_TAGS = (
    f"SELECT i.id, i.digest, {_IMAGE_FLAGS}, t.name FROM tags t JOIN images i ON i.id = t.image_id"
    " WHERE t.repository_id = :repository_id AND t.name IN ({tags})"
)
# Indexes (of any repository: the caller keeps its own) listing the digests as children. No
# condition on ``images`` but its primary key, so the plan starts from the references' digest
# index (filtering images by repository first makes SQLite probe every image of it).
_PARENTS_OF = (
    "SELECT r.digest, i.id, i.digest, i.repository_id FROM image_references r"
    " JOIN images i ON i.id = r.image_id"
    " WHERE r.kind = 'manifest' AND r.digest IN ({digests}) ORDER BY i.id"
)
_REFERRERS_OF = (
    "SELECT id, digest, subject_digest FROM images"
    " WHERE repository_id = :repository_id AND subject_digest IN ({digests}) ORDER BY id"
)
_DELETE_TAGS = "DELETE FROM tags WHERE repository_id = :repository_id AND name IN ({names})"
# An image's tags and references would go with it (ON DELETE CASCADE); deleting them first,
# set-wise, is cheaper on SQLite than its row-by-row cascade.
_DELETE_TAGS_OF_IMAGES = "DELETE FROM tags WHERE image_id IN ({image_ids})"
_DELETE_REFERENCES_OF_IMAGES = "DELETE FROM image_references WHERE image_id IN ({image_ids})"
_DELETE_IMAGES = "DELETE FROM images WHERE id IN ({image_ids})"


def _bound_chunks(template: str, key: str, values: Sequence[Any],
                  parameters: dict[str, Any] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(statement, parameters) pairs running ``template`` over ``values`` in chunks: its
    ``{key}`` becomes a list of bound parameters, ``parameters`` are bound too."""
    for chunk in _chunks(values):
        placeholders, bound = statements.bound_list(key, chunk)
        yield template.format(**{key: placeholders}), {**(parameters or {}), **bound}


def tags_of_images(connection: statements.Executor,
                   image_ids: Sequence[int]) -> Iterator[tuple[int, str]]:
    """``(image id, tag name)`` of every tag of the images ``image_ids`` (bound in chunks)."""
    for statement, parameters in _bound_chunks(_TAGS_OF_IMAGES, "image_ids", image_ids):
        yield from statements.all(connection, statement, parameters)


def lookup_statement(*columns: Any) -> Any:
    """A statement finding images of a repository by digest and by tag in one round trip.

    Each row is ``(*columns, tag)``: ``tag`` is None for a row found by digest, the tag
    name for a row found by tag. Parameters: ``repository_id``, ``digests`` and ``tags``
    (lists, may be empty). ``columns`` are columns of the ``images`` table and start with
    ``images.id, images.digest``.
    """
    by_digest = select(*columns, cast(null(), String).label("tag")).where(
        _IMAGES.c.repository_id == bindparam("repository_id"),
        _IMAGES.c.digest.in_(bindparam("digests", expanding=True)),
    )
    by_tag = (
        select(*columns, _TAGS.c.name)
        .select_from(_TAGS.join(_IMAGES, _IMAGES.c.id == _TAGS.c.image_id))
        .where(
            _TAGS.c.repository_id == bindparam("repository_id"),
            _TAGS.c.name.in_(bindparam("tags", expanding=True)),
        )
    )
    return union_all(by_digest, by_tag)


_MANIFESTS_OF_IDS = lookup_statement(
    _IMAGES.c.id, _IMAGES.c.digest, _IMAGES.c.media_type, _IMAGES.c.content,
    _IMAGES.c.last_pulled_at)

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
        wait_for_writer: bool = True,
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
            wait_for_writer: False to store only if the SQLite writers' turn is free now (a
                caller on the event loop); nothing is stored otherwise.

        Raises:
            WriterBusy: with ``wait_for_writer=False``, the writers' turn is held elsewhere.
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
                with statement_writer(self.context.database).transaction(
                        wait=wait_for_writer) as connection:
                    self._put(connection, repository_name, manifest, content, tag, reject_existing)
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
        self, connection: statements.Executor, repository_name: str, manifest: Manifest,
        content: bytes,
        tag: str | None, reject_existing: bool,
    ) -> None:
        if not self.context.database.is_sqlite:
            # Lock first, in a statement of its own: under READ COMMITTED a statement's snapshot
            # predates its lock wait, so subqueries locked in the same statement could describe
            # the repository before a concurrent delete committed (SQLite's BEGIN IMMEDIATE
            # already serialises writers).
            self.context.repository_id(connection, repository_name, for_update=True)
        row = statements.one(connection, _PUT_STATE, {
            "registry_id": self.context.registry_id, "name": repository_name,
            "digest": manifest.digest, "tag": tag})
        if row is None:
            raise errors.RepositoryNotFound(repository_name, self.context.registry_id)
        filters = row[4]
        if isinstance(filters, str):  # SQLite hands JSON columns back as text
            filters = json.loads(filters)
        state = _PutState(row[0], row[1], row[2], row[3], filters, row[5], row[6], int(row[7]))
        image_id = state.image_id
        if image_id is not None and reject_existing:
            if tag is None or state.tagged_image_id == image_id:
                raise errors.ImageAlreadyExists(
                    f"Image with digest '{manifest.digest}' and tag '{tag}' already exists in the "
                    f"repository with name '{state.name}' in registry with id "
                    f"'{state.registry_id}'"
                )
        now = self.context.clock.now()
        if image_id is None:
            if state.image_count >= self.context.max_images_per_repository:
                raise errors.LimitExceeded(
                    f"The maximum number of images ({self.context.max_images_per_repository}) in "
                    f"the repository '{state.name}' has been reached")
            image_size = self._check_references(connection, state.id, manifest)
            config_media_type = manifest.config.media_type if manifest.config else None
            annotations = manifest.annotations
            (image_id,) = statements.one(connection, _INSERT_IMAGE, {
                "repository_id": state.id,
                "digest": manifest.digest,
                "media_type": manifest.media_type,
                "artifact_type": manifest.effective_artifact_type,
                "config_media_type": config_media_type,
                "subject_digest": manifest.subject.digest if manifest.subject else None,
                "annotations": None if annotations is None else json.dumps(annotations),
                "content": content,
                "manifest_size_bytes": len(content),
                "image_size_bytes": image_size,
                "pushed_at": now,
            })
            statements.execute(connection, _COUNT_IMAGES, {"added": 1, "repository_id": state.id})
            references: dict[tuple[str, str], str] = {}
            for descriptor in manifest.blob_references:
                references.setdefault((descriptor.digest, "blob"), descriptor.media_type)
            for descriptor in manifest.manifests:
                references.setdefault((descriptor.digest, "manifest"), descriptor.media_type)
            if references:
                statements.execute_many(connection, _INSERT_REFERENCE, [
                    {"image_id": image_id, "digest": digest, "kind": kind,
                     "media_type": media_type, "blob_digest": digest if kind == "blob" else None}
                    for (digest, kind), media_type in references.items()
                ])
        if tag is None:
            return
        current = state.tagged_image_id
        if current is None:
            statements.execute(connection, _INSERT_TAG, {
                "repository_id": state.id, "name": tag, "image_id": image_id, "updated_at": now})
        elif current != image_id:
            if is_immutable(state, tag):
                raise errors.ImageTagAlreadyExists(tag, state.name)
            statements.execute(connection, _MOVE_TAG, {
                "repository_id": state.id, "name": tag, "image_id": image_id, "updated_at": now})

    def _check_references(self, connection: statements.Executor, repository_id: int,
                          manifest: Manifest) -> int:
        """Check every referenced blob and child manifest is in the repository (one query).

        Returns:
            the image size in bytes (DescribeImages ``imageSizeInBytes``, ecr-api.md §3.5): the
            sum of the layer sizes for an image manifest (the config is not counted); for an
            index, the largest child's image size.

        Raises:
            InvalidManifest: a blob descriptor's size differs from the stored blob's.
            ManifestReferencesMissing: blobs or child manifests absent from the repository.
        """
        wanted = {d.digest: d.size for d in manifest.blob_references}
        children = {d.digest for d in manifest.manifests}
        found_blobs: dict[str, int] = {}
        found_children: dict[str, int] = {}
        if wanted or children:
            parameters: dict[str, Any] = {"repository_id": repository_id}
            parts = []
            for template, key, digests in ((_REFERENCED_BLOBS, "blobs", list(wanted)),
                                           (_REFERENCED_MANIFESTS, "manifests", sorted(children))):
                if digests:
                    placeholders, bound = statements.bound_list(key, digests)
                    parameters.update(bound)
                    parts.append(template.format(**{key: placeholders}))
            for kind, digest, size in statements.all(connection, " UNION ALL ".join(parts), parameters):
                (found_blobs if kind == "blob" else found_children)[digest] = size
        missing_blobs: list[str] = []
        for digest, size in wanted.items():
            if digest not in found_blobs:
                missing_blobs.append(digest)
            elif found_blobs[digest] != size:
                raise errors.InvalidManifest(
                    f"descriptor of {digest} says {size} bytes but the blob has "
                    f"{found_blobs[digest]} bytes"
                )
        missing_manifests = sorted(children - set(found_children))
        if missing_blobs or missing_manifests:
            raise errors.ManifestReferencesMissing(missing_blobs, missing_manifests)
        if manifest.is_index:
            return max(found_children.values(), default=0)
        return sum(d.size for d in manifest.layers)

    # -- read -------------------------------------------------------------------------------

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

        Looks every id up in one query (by digest and by tag together), then applies
        :func:`resolve_image_ids`'s rules to each.

        Returns:
            per id, in order, the stored manifest or the domain error that prevented it
            (MissingDigestAndTag, InvalidDigest, InvalidTag, ImageNotFound, TagDigestMismatch).

        Raises:
            RepositoryNotFound.
        """
        with self.context.database.read_connection() as connection:
            repository_id = self.context.repository_id(connection, repository_name)
            rows = resolve_image_ids(
                connection, _MANIFESTS_OF_IDS, repository_id, repository_name,
                self.context.registry_id, image_ids)
        results: list[StoredManifest | errors.MoorageError] = []
        pulled: dict[int, float | None] = {}
        for row in rows:
            if isinstance(row, errors.MoorageError):
                results.append(row)
                continue
            image_id, digest, media_type, content, last_pulled_at = row[:5]
            results.append(StoredManifest(digest, media_type, content))
            pulled[image_id] = last_pulled_at
        self._record_pulls(list(pulled.items()))
        return results

    def _record_pulls(self, pulled: list[tuple[int, float | None]]) -> None:
        now = self.context.clock.now()
        stale = [image_id for image_id, last in pulled
                 if last is None or now - last >= PULL_TIME_RESOLUTION_SECONDS]
        if stale:
            with self.context.database.write_connection() as connection:
                for chunk in _chunks(stale):
                    connection.execute(_RECORD_PULLS, {"image_ids": chunk, "pulled_at": now})

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
        removed, failures = self.delete_many(repository_name, [image_id])
        if failures:
            raise failures[0][1]
        return removed

    def delete_many(
        self, repository_name: str, image_ids: list[ImageId], *, wait_for_writer: bool = True
    ) -> tuple[list[tuple[str, str | None]], list[tuple[int, errors.MoorageError]]]:
        """Delete each of ``image_ids`` independently, in order (BatchDeleteImage).

        Each item sees what the items before it removed (a second tag of an image is then its
        last, an image already removed is ``ImageNotFound``), and an item that fails removes
        nothing. The work is set-based: the rows the batch can touch (the named images, their
        tags, the indexes that list them, their referrers, recursively) are read with a few
        queries, the items are played in memory in order, and what they remove is deleted
        with one ``DELETE`` of tags and one of images, all in one transaction.

        Returns:
            (removed ``(digest, tag)`` pairs, per-item failures as (index in ``image_ids``,
            domain error: MissingDigestAndTag, InvalidDigest, InvalidTag, ImageNotFound,
            TagDigestMismatch, ImageReferencedByIndex)).

        Args:
            wait_for_writer: False for a caller on the event loop: delete only if the SQLite
                writers' turn is free now and the batch touches at most
                :data:`INLINE_DELETE_IMAGES` images (referrers included); nothing is deleted
                otherwise.

        Raises:
            RepositoryNotFound: the whole call fails only for a missing repository.
            WriterBusy: with ``wait_for_writer=False``, the writers' turn is held elsewhere;
                ``WriteTooLarge`` (a ``WriterBusy``), the batch touches more images than that.
        """
        removed: list[tuple[str, str | None]] = []
        failures: list[tuple[int, errors.MoorageError]] = []
        with statement_writer(self.context.database).transaction(
                wait=wait_for_writer) as connection:
            repository_id = self.context.repository_id(connection, repository_name, for_update=True)
            plan = _DeletionPlan(connection, repository_id, repository_name,
                                 self.context.registry_id)
            plan.load(image_ids)
            if not wait_for_writer and len(plan.digest_of) > INLINE_DELETE_IMAGES:
                raise WriteTooLarge(f"{len(plan.digest_of)} images to look at, with referrers")
            for index, image_id in enumerate(image_ids):
                try:
                    removed += plan.delete(image_id)
                except errors.MoorageError as error:
                    failures.append((index, error))
            plan.apply()
        return removed, failures


class _DeletionPlan:
    """BatchDeleteImage worked out in memory over the rows it can touch, then applied.

    ``load`` reads the named images, then (repeatedly, for referrers of referrers) their tags,
    the indexes that list them and their referrers. ``delete`` plays one item with exactly the
    rules of a sequential delete (the state left by the items before it; an item that fails
    leaves no trace). ``apply`` deletes what the successful items removed.
    """

    def __init__(self, connection: statements.Executor, repository_id: int,
                 repository_name: str, registry_id: str) -> None:
        self.connection = connection
        self.repository_id = repository_id
        self.repository_name = repository_name
        self.registry_id = registry_id
        self.digest_of: dict[int, str] = {}
        self.image_with_digest: dict[str, int] = {}
        self.image_with_tag: dict[str, int] = {}
        self.tags_of: dict[int, list[str]] = {}
        self.parents_of: dict[str, list[tuple[int, str]]] = {}
        self.referrers_of: dict[str, list[int]] = {}
        self.deleted_images: set[int] = set()
        self.deleted_tags: set[str] = set()
        # What the item being played removed so far (undone when it fails).
        self._item_images: list[int] = []
        self._item_tags: list[str] = []

    def load(self, image_ids: Sequence[ImageId]) -> None:
        """Read every row the items can touch."""
        valid = [i for i in image_ids if _valid(i)]
        digests = {i.digest for i in valid if i.digest is not None}
        tags = {i.tag for i in valid if i.tag is not None}
        if not digests and not tags:
            return
        scope = {"repository_id": self.repository_id}
        pending: list[int] = []
        # Digests whose listing indexes / referrers must be read (all of them for referrers
        # found on the way, whose flags were not read).
        listed: list[str] = []
        referred: list[str] = []
        lookups = [*_bound_chunks(_IMAGES_WITH_DIGESTS, "digests", sorted(digests), scope),
                   *_bound_chunks(_IMAGES_WITH_TAGS, "tags", sorted(tags), scope)]
        for statement, parameters in lookups:
            for image_id, digest, is_listed, is_referred, tag in statements.all(
                    self.connection, statement, parameters):
                if image_id not in self.digest_of:
                    self.digest_of[image_id] = digest
                    pending.append(image_id)
                    if is_listed:
                        listed.append(digest)
                    if is_referred:
                        referred.append(digest)
                if tag is None:
                    self.image_with_digest[digest] = image_id
        while pending:
            for image_id, name in tags_of_images(self.connection, pending):
                self.tags_of.setdefault(image_id, []).append(name)
                self.image_with_tag[name] = image_id
            for statement, parameters in _bound_chunks(_PARENTS_OF, "digests", listed):
                for child, parent_id, parent_digest, repository_id in statements.all(
                        self.connection, statement, parameters):
                    if repository_id == self.repository_id:
                        self.parents_of.setdefault(child, []).append((parent_id, parent_digest))
            new: list[int] = []
            for statement, parameters in _bound_chunks(_REFERRERS_OF, "digests", referred, scope):
                for image_id, digest, subject in statements.all(
                        self.connection, statement, parameters):
                    self.referrers_of.setdefault(subject, []).append(image_id)
                    if image_id not in self.digest_of:
                        self.digest_of[image_id] = digest
                        self.image_with_digest[digest] = image_id
                        new.append(image_id)
            pending = new
            listed = referred = [self.digest_of[i] for i in new]

    def delete(self, image_id: ImageId) -> list[tuple[str, str | None]]:
        """Play one item: what it removes, as ``(digest, tag or None)`` pairs.

        Raises:
            MissingDigestAndTag, InvalidDigest, InvalidTag, ImageNotFound, TagDigestMismatch,
            ImageReferencedByIndex (nothing of the item is then removed).
        """
        self._item_images, self._item_tags = [], []
        try:
            found = _resolve(image_id, self._image_with_digest, self._image_with_tag,
                             self.repository_name, self.registry_id)
            if image_id.digest is None:
                assert image_id.tag is not None
                if len(self._tags(found)) > 1:
                    self._item_tags.append(image_id.tag)
                    self.deleted_tags.add(image_id.tag)
                    return [(self.digest_of[found], image_id.tag)]
            return self._delete_image(found)
        except errors.MoorageError:
            self.deleted_images.difference_update(self._item_images)
            self.deleted_tags.difference_update(self._item_tags)
            raise

    def apply(self) -> None:
        """Delete what the successful items removed: tags whose image stays, then images."""
        tags = [t for t in self.deleted_tags if self.image_with_tag[t] not in self.deleted_images]
        scope = {"repository_id": self.repository_id}
        for statement, parameters in _bound_chunks(_DELETE_TAGS, "names", sorted(tags), scope):
            statements.execute(self.connection, statement, parameters)
        images = sorted(self.deleted_images)
        for template in (_DELETE_TAGS_OF_IMAGES, _DELETE_REFERENCES_OF_IMAGES):
            for statement, parameters in _bound_chunks(template, "image_ids", images):
                statements.execute(self.connection, statement, parameters)
        deleted = sum(statements.execute(self.connection, statement, parameters)
                      for statement, parameters in _bound_chunks(_DELETE_IMAGES, "image_ids", images))
        if deleted:
            statements.execute(self.connection, _COUNT_IMAGES, {
                "added": -deleted, "repository_id": self.repository_id})

    def _image_with_digest(self, digest: str) -> int | None:
        found = self.image_with_digest.get(digest)
        return None if found is None or found in self.deleted_images else found

    def _image_with_tag(self, tag: str) -> int | None:
        found = self.image_with_tag.get(tag)
        if found is None or tag in self.deleted_tags or found in self.deleted_images:
            return None
        return found

    def _tags(self, image_id: int) -> list[str]:
        return [t for t in self.tags_of.get(image_id, ()) if t not in self.deleted_tags]

    def _delete_image(self, image_id: int) -> list[tuple[str, str | None]]:
        digest = self.digest_of[image_id]
        parents = [parent_digest for parent_id, parent_digest in self.parents_of.get(digest, ())
                   if parent_id not in self.deleted_images]
        if parents:
            raise errors.ImageReferencedByIndex(
                f"Requested image {digest} is referenced by a manifest list: " + ", ".join(parents)
            )
        tags = sorted(self._tags(image_id))
        removed: list[tuple[str, str | None]] = [(digest, t) for t in tags] or [(digest, None)]
        self._item_images.append(image_id)
        self.deleted_images.add(image_id)
        for referrer in self.referrers_of.get(digest, ()):
            if referrer not in self.deleted_images:
                removed += self._delete_image(referrer)
        return removed


def _valid(image_id: ImageId) -> bool:
    return _check(image_id) is None


def _check(image_id: ImageId) -> errors.MoorageError | None:
    """The error that makes ``image_id`` unusable before any lookup, or None."""
    if image_id.digest is None and image_id.tag is None:
        return errors.MissingDigestAndTag(
            "Invalid request parameters: both tag and digest cannot be null")
    try:
        if image_id.digest is not None:
            parse_digest(image_id.digest)
        if image_id.tag is not None:
            parse_tag(image_id.tag)
    except errors.MoorageError as error:
        return error
    return None


def _chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    values = list(values)
    for start in range(0, len(values), _IN_LIST_CHUNK):
        yield values[start:start + _IN_LIST_CHUNK]


def _lookups(statement: Any, digests: set[str], tags: set[str],
             repository_id: int) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(statement, parameters) pairs looking up ``digests`` and ``tags`` — one pair unless the
    lists are long."""
    digest_list, tag_list = sorted(digests), sorted(tags)
    for start in range(0, max(len(digest_list), len(tag_list)), _IN_LIST_CHUNK):
        yield statement, {"repository_id": repository_id,
                          "digests": digest_list[start:start + _IN_LIST_CHUNK],
                          "tags": tag_list[start:start + _IN_LIST_CHUNK]}


def _resolve(
    image_id: ImageId,
    image_with_digest: Callable[[str], Any],
    image_with_tag: Callable[[str], Any],
    repository_name: str,
    registry_id: str,
) -> Any:
    """ECR's rules for one image id, given how to find an image by digest and by tag (each
    returns the image's id, or None).

    Raises:
        MissingDigestAndTag, InvalidDigest, InvalidTag, ImageNotFound, TagDigestMismatch.
    """
    error = _check(image_id)
    if error is not None:
        raise error
    image = image_with_digest(image_id.digest) if image_id.digest is not None else None
    if image_id.tag is not None:
        tagged = image_with_tag(image_id.tag)
        if image is not None and tagged is not None and tagged != image:
            raise errors.TagDigestMismatch(
                f"Invalid request parameters: image tag '{image_id.tag}' does not point to "
                f"digest '{image_id.digest}'"
            )
        if image_id.digest is None or (image is not None and tagged is None):
            image = tagged if image_id.digest is None else None
    if image is None:
        raise errors.ImageNotFound(
            f"The image with imageId {image_id.describe()} does not exist within the repository "
            f"with name '{repository_name}' in the registry with id '{registry_id}'"
        )
    return image


def resolve_image_ids(
    connection: Connection, statement: Any, repository_id: int, repository_name: str,
    registry_id: str, image_ids: Sequence[ImageId],
) -> list[Row[Any] | errors.MoorageError]:
    """Resolve ECR image ids of one repository with one lookup query.

    Args:
        statement: a :func:`lookup_statement` (its columns are those of the returned rows).
        image_ids: the ids, each a digest, a tag or both.

    Returns:
        per id, in order, the image's row or the domain error for it: MissingDigestAndTag
        (neither digest nor tag), InvalidDigest / InvalidTag (malformed), ImageNotFound
        (nothing matches, or a tag given with a digest names no image), TagDigestMismatch
        (both given and the tag names another image).
    """
    digests = {i.digest for i in image_ids if i.digest is not None and _valid(i)}
    tags = {i.tag for i in image_ids if i.tag is not None and _valid(i)}
    by_digest: dict[str, Row[Any]] = {}
    by_tag: dict[str, Row[Any]] = {}
    if digests or tags:
        for lookup in _lookups(statement, digests, tags, repository_id):
            for row in connection.execute(*lookup):
                tag = row[-1]
                if tag is None:
                    by_digest[row[1]] = row
                else:
                    by_tag[tag] = row
    rows_by_id = {row[0]: row for row in (*by_digest.values(), *by_tag.values())}

    def image_with_digest(digest: str) -> int | None:
        row = by_digest.get(digest)
        return None if row is None else row[0]

    def image_with_tag(tag: str) -> int | None:
        row = by_tag.get(tag)
        return None if row is None else row[0]

    results: list[Row[Any] | errors.MoorageError] = []
    for image_id in image_ids:
        try:
            found = _resolve(image_id, image_with_digest, image_with_tag, repository_name,
                             registry_id)
        except errors.MoorageError as error:
            results.append(error)
            continue
        results.append(rows_by_id[found])
    return results


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


def is_immutable(repository: Any, tag: str) -> bool:
    """True when ``tag`` may not move in ``repository`` (ecr-api.md §3.22).

    ``repository`` is a :class:`Repository` or a row with its ``image_tag_mutability`` and
    ``image_tag_mutability_exclusion_filters`` columns.

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
