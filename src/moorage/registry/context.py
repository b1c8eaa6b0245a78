"""What every domain service needs: the stores, the clock and the registry's identity."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.clock import Clock
from moorage.errors import RepositoryNotFound
from moorage.storage.blobs.filesystem import FilesystemBlobStore
from moorage.storage.metadata import statements
from moorage.storage.metadata.database import Database
from moorage.storage.metadata.schema import Repository


# A repository's id by ``:registry_id`` and ``:name`` (also a subquery of the listing pages).
REPOSITORY_ID = "SELECT id FROM repositories WHERE registry_id = :registry_id AND name = :name"


@dataclass
class RegistryContext:
    """Shared dependencies of the domain services.

    Attributes:
        database: metadata store.
        blobs: blob store.
        clock: source of epoch-second timestamps.
        registry_id: the 12-digit account id this registry serves.
        region: the AWS region name it answers as.
        max_repositories: quota of repositories in the registry (ECR's default: 100,000).
        max_images_per_repository: quota of images per repository (ECR's default: 20,000).
    """

    database: Database
    blobs: FilesystemBlobStore
    clock: Clock
    registry_id: str
    region: str
    max_repositories: int = 100_000
    max_images_per_repository: int = 20_000

    def repository_id(self, connection: statements.Executor, name: str, *, for_update: bool = False,
                      keep: bool = False) -> int:
        """The id of repository ``name``: one prepared query (hot paths on bare connections).

        Args:
            for_update: lock the row until the transaction ends (PostgreSQL).
            keep: hold a key-share lock until the transaction ends (PostgreSQL): the repository
                cannot be deleted meanwhile, other writers are not held up. For transactions
                that add rows referring to it (upload sessions, blob links), which would
                otherwise violate the foreign key, or deadlock with a delete cascading to them.

        Raises:
            RepositoryNotFound.
        """
        if for_update:
            statement = statements.locking(REPOSITORY_ID, connection)
        elif keep:
            statement = statements.locking(REPOSITORY_ID, connection, "KEY SHARE")
        else:
            statement = REPOSITORY_ID
        found = statements.one(connection, statement, {"registry_id": self.registry_id, "name": name})
        if found is None:
            raise RepositoryNotFound(name, self.registry_id)
        return int(found[0])

    def repository(self, session: Session, name: str, *, for_update: bool = False) -> Repository:
        """The repository row named ``name``.

        Args:
            for_update: lock the row until the transaction ends (serialises writers of one
                repository on PostgreSQL; SQLite transactions are serialised already).

        Raises:
            RepositoryNotFound: no such repository (ECR ``RepositoryNotFoundException``,
                OCI ``NAME_UNKNOWN``).
        """
        query = select(Repository).where(
            Repository.registry_id == self.registry_id, Repository.name == name
        )
        if for_update and not self.database.is_sqlite:
            query = query.with_for_update()
        repository = session.scalars(query).one_or_none()
        if repository is None:
            raise RepositoryNotFound(name, self.registry_id)
        return repository
