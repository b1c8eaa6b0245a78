"""Repositories: create, describe, delete, and their settings (ecr-api.md §3.1–3.3)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, exists, func, select
from sqlalchemy.exc import IntegrityError

from moorage import errors
from moorage.images.references import parse_repository_name
from moorage.registry.context import RegistryContext
from moorage.storage.metadata.schema import Image, Repository, ResourceTag, UploadSession

MAX_RESOURCE_TAGS = 50


@dataclass(frozen=True)
class RepositorySettings:
    """The settings CreateRepository accepts; defaults are ECR's."""

    image_tag_mutability: str = "MUTABLE"
    image_tag_mutability_exclusion_filters: list[dict[str, str]] | None = None
    scan_on_push: bool = False
    encryption_type: str = "AES256"
    kms_key: str | None = None
    tags: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class RepositoryPage:
    """One page of repositories, and the name to continue after (None on the last page)."""

    repositories: list[Repository]
    next_after: str | None


class RepositoryService:
    """Create, find, list and delete repositories."""

    def __init__(self, context: RegistryContext) -> None:
        self.context = context

    def create(self, name: str, settings: RepositorySettings) -> tuple[Repository, list[ResourceTag]]:
        """Create repository ``name``.

        Returns:
            the new row and its resource tags.

        Raises:
            InvalidRepositoryName: ``name`` outside the grammar.
            InvalidInput: inconsistent settings (exclusion filters without a ``*_WITH_EXCLUSION``
                mutability, or the reverse; AES256 with a KMS key; duplicate or reserved tag keys).
            RepositoryAlreadyExists: the name is taken.
            LimitExceeded: the registry holds ``max_repositories`` already.
        """
        parse_repository_name(name)
        _check_settings(settings)
        kms_key = settings.kms_key
        if settings.encryption_type == "KMS" and not kms_key:
            kms_key = (
                f"arn:aws:kms:{self.context.region}:{self.context.registry_id}:alias/aws/ecr"
            )
        try:
            with self.context.database.transaction() as session:
                count = session.scalar(select(func.count()).select_from(Repository).where(
                    Repository.registry_id == self.context.registry_id)) or 0
                if count >= self.context.max_repositories:
                    raise errors.LimitExceeded(
                        f"The maximum number of repositories ({self.context.max_repositories}) "
                        "in this registry has been reached")
                repository = Repository(
                    registry_id=self.context.registry_id,
                    name=name,
                    created_at=self.context.clock.now(),
                    image_tag_mutability=settings.image_tag_mutability,
                    image_tag_mutability_exclusion_filters=settings.image_tag_mutability_exclusion_filters,
                    scan_on_push=settings.scan_on_push,
                    encryption_type=settings.encryption_type,
                    kms_key=kms_key,
                )
                session.add(repository)
                session.flush()
                tags = [
                    ResourceTag(
                        repository_id=repository.id, key=tag["Key"], value=tag["Value"], position=i
                    )
                    for i, tag in enumerate(settings.tags)
                ]
                session.add_all(tags)
        except IntegrityError:
            raise errors.RepositoryAlreadyExists(name, self.context.registry_id) from None
        return repository, tags

    def get(self, name: str) -> Repository:
        """The repository named ``name``.

        Raises:
            RepositoryNotFound: no such repository.
        """
        with self.context.database.read() as session:
            return self.context.repository(session, name)

    def get_many(self, names: list[str]) -> list[Repository]:
        """The repositories named ``names``, in that order (duplicates collapsed).

        Raises:
            RepositoryNotFound: naming the first missing one.
        """
        with self.context.database.read() as session:
            rows = session.scalars(
                select(Repository).where(
                    Repository.registry_id == self.context.registry_id,
                    Repository.name.in_(set(names)),
                )
            ).all()
        by_name = {row.name: row for row in rows}
        result: list[Repository] = []
        for name in dict.fromkeys(names):
            if name not in by_name:
                raise errors.RepositoryNotFound(name, self.context.registry_id)
            result.append(by_name[name])
        return result

    def list(self, after: str | None, limit: int) -> RepositoryPage:
        """Repositories ordered by name, starting after ``after``, at most ``limit``."""
        with self.context.database.read() as session:
            query = select(Repository).where(Repository.registry_id == self.context.registry_id)
            if after is not None:
                query = query.where(Repository.name > after)
            rows = list(session.scalars(query.order_by(Repository.name).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return RepositoryPage(rows, rows[-1].name if more and rows else None)

    def delete(self, name: str, force: bool) -> tuple[Repository, list[ResourceTag]]:
        """Delete repository ``name``; with ``force``, together with its images and uploads.

        Blob links go with the repository (ON DELETE CASCADE); the blobs themselves stay until
        garbage collection finds them unreferenced.

        Raises:
            RepositoryNotFound: no such repository.
            RepositoryNotEmpty: it holds images and ``force`` is false.
        """
        with self.context.database.transaction() as session:
            repository = self.context.repository(session, name, for_update=True)
            has_images = session.scalar(
                select(exists().where(Image.repository_id == repository.id))
            )
            if has_images and not force:
                raise errors.RepositoryNotEmpty(name, self.context.registry_id)
            tags = self.resource_tags(repository.id, session=session)
            upload_ids = list(
                session.scalars(
                    select(UploadSession.id).where(UploadSession.repository_id == repository.id)
                )
            )
            session.execute(delete(Repository).where(Repository.id == repository.id))
        for upload_id in upload_ids:
            self.context.blobs.delete_upload(upload_id)
        return repository, tags

    def resource_tags(self, repository_id: int, session=None) -> list[ResourceTag]:  # type: ignore[no-untyped-def]
        """The repository's ``{Key, Value}`` tags in insertion order."""
        query = (
            select(ResourceTag)
            .where(ResourceTag.repository_id == repository_id)
            .order_by(ResourceTag.position)
        )
        if session is not None:
            return list(session.scalars(query))
        with self.context.database.read() as own:
            return list(own.scalars(query))

    # -- settings ---------------------------------------------------------------------------

    def tag(self, name: str, tags: list[dict[str, str]]) -> None:
        """Merge resource tags into the repository (TagResource); request keys overwrite.

        Raises:
            RepositoryNotFound; InvalidResourceTag (``aws:`` keys); InvalidInput (duplicate keys);
            TooManyResourceTags (more than 50 afterwards; nothing is applied).
        """
        _check_tags(tags)
        with self.context.database.transaction() as session:
            repository = self.context.repository(session, name, for_update=True)
            current = {row.key: row for row in self.resource_tags(repository.id, session=session)}
            position = max((row.position for row in current.values()), default=-1) + 1
            for tag in tags:
                row = current.get(tag["Key"])
                if row is not None:
                    row.value = tag["Value"]
                else:
                    row = ResourceTag(repository_id=repository.id, key=tag["Key"], value=tag["Value"],
                                      position=position)
                    position += 1
                    session.add(row)
                    current[tag["Key"]] = row
            if len(current) > MAX_RESOURCE_TAGS:
                raise errors.TooManyResourceTags(
                    f"A repository can have at most {MAX_RESOURCE_TAGS} tags, not {len(current)}"
                )

    def untag(self, name: str, keys: list[str]) -> None:
        """Remove resource tags by key (UntagResource); absent keys are ignored.

        Raises:
            RepositoryNotFound; InvalidResourceTag (``aws:`` keys).
        """
        for key in keys:
            if key.lower().startswith("aws:"):
                raise errors.InvalidResourceTag(f"Tag keys starting with 'aws:' are reserved: {key}")
        with self.context.database.transaction() as session:
            repository = self.context.repository(session, name, for_update=True)
            session.execute(delete(ResourceTag).where(
                ResourceTag.repository_id == repository.id, ResourceTag.key.in_(keys)))

    def set_tag_mutability(self, name: str, mutability: str, filters: list[dict[str, str]] | None) -> Repository:
        """Change the tag mutability setting (PutImageTagMutability); future pushes only.

        Raises:
            RepositoryNotFound; InvalidInput (filters without a ``*_WITH_EXCLUSION`` value, or
            the reverse).
        """
        _check_settings(RepositorySettings(image_tag_mutability=mutability,
                                           image_tag_mutability_exclusion_filters=filters))
        with self.context.database.transaction() as session:
            repository = self.context.repository(session, name, for_update=True)
            repository.image_tag_mutability = mutability
            repository.image_tag_mutability_exclusion_filters = filters or None
            return repository

    def set_scan_on_push(self, name: str, scan_on_push: bool) -> Repository:
        """Store ``scanOnPush`` (PutImageScanningConfiguration). Raises RepositoryNotFound."""
        with self.context.database.transaction() as session:
            repository = self.context.repository(session, name, for_update=True)
            repository.scan_on_push = scan_on_push
            return repository

    def set_policy(self, name: str, field_name: str, text: str | None) -> Repository:
        """Store (or with None remove) a policy text verbatim.

        Args:
            field_name: ``repository_policy`` or ``lifecycle_policy`` (validated by the caller).

        Raises:
            RepositoryNotFound.
        """
        assert field_name in ("repository_policy", "lifecycle_policy")
        with self.context.database.transaction() as session:
            repository = self.context.repository(session, name, for_update=True)
            setattr(repository, field_name, text)
            if field_name == "lifecycle_policy" and text is None:
                repository.lifecycle_evaluated_at = None
            return repository



def _check_settings(settings: RepositorySettings) -> None:
    with_exclusion = settings.image_tag_mutability.endswith("_WITH_EXCLUSION")
    if with_exclusion and not settings.image_tag_mutability_exclusion_filters:
        raise errors.InvalidInput(
            f"imageTagMutabilityExclusionFilters must be provided when imageTagMutability is "
            f"{settings.image_tag_mutability}"
        )
    if settings.image_tag_mutability_exclusion_filters and not with_exclusion:
        raise errors.InvalidInput(
            "imageTagMutabilityExclusionFilters can only be used with imageTagMutability "
            "MUTABLE_WITH_EXCLUSION or IMMUTABLE_WITH_EXCLUSION"
        )
    if settings.encryption_type == "AES256" and settings.kms_key:
        raise errors.InvalidInput("kmsKey can only be specified when encryptionType is KMS")
    keys = [tag["Key"] for tag in settings.tags]
    _check_tags(settings.tags)
    if len(keys) > MAX_RESOURCE_TAGS:
        raise errors.TooManyResourceTags(
            f"A repository can have at most {MAX_RESOURCE_TAGS} tags, not {len(keys)}"
        )


def _check_tags(tags: list[dict[str, str]]) -> None:
    keys = [tag["Key"] for tag in tags]
    if any(len(tag["Value"]) > 256 for tag in tags):
        raise errors.InvalidResourceTag("Tag values must be at most 256 characters long")
    if len(keys) != len(set(keys)):
        raise errors.InvalidInput("Duplicate tag keys are not allowed")
    for key in keys:
        if key.lower().startswith("aws:"):
            raise errors.InvalidResourceTag(f"Tag keys starting with 'aws:' are reserved: {key}")
        if not 1 <= len(key) <= 128:
            raise errors.InvalidResourceTag("Tag keys must be 1 to 128 characters long")
