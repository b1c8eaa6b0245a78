"""Composition root of the domain: builds the stores and services from settings.

Used by the HTTP app (``moorage.app``) and by every CLI command that touches the registry, so
both work on the same data with the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from moorage.auth.download_urls import DownloadUrls
from moorage.auth.principals import KeyStore
from moorage.auth.tokens import TokenIssuer, load_or_create_secret
from moorage.clock import Clock
from moorage.config import Settings
from moorage.ecr.pagination import PaginationTokens
from moorage.registry.blobs import BlobService
from moorage.registry.context import RegistryContext
from moorage.registry.images import ImageService
from moorage.registry.listing import ImageListing
from moorage.registry.repositories import RepositoryService
from moorage.registry.uploads import UploadService
from moorage.storage.blobs.filesystem import FilesystemBlobStore
from moorage.storage.metadata.database import Database


@dataclass
class Services:
    """Everything a request handler or a CLI command needs."""

    settings: Settings
    context: RegistryContext
    repositories: RepositoryService
    images: ImageService
    listing: ImageListing
    uploads: UploadService
    blobs: BlobService
    keys: KeyStore
    tokens: TokenIssuer
    pagination: PaginationTokens
    download_urls: DownloadUrls

    def close(self) -> None:
        """Release database connections."""
        self.context.database.dispose()


class StartupError(RuntimeError):
    """The stores cannot be opened; the message says why, without a traceback."""


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    """Open the stores named by ``settings`` (creating the data directory), apply migrations
    and wire the services.

    Raises:
        StartupError: the data directory cannot be created or the database cannot be reached.
    """
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database(settings.effective_database_url)
        if migrate:
            database.migrate()
    except (OSError, SQLAlchemyError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise StartupError(f"cannot open the registry's storage: {reason}") from None
    context = RegistryContext(
        database=database,
        blobs=FilesystemBlobStore(settings.data_dir),
        clock=Clock(),
        registry_id=settings.account_id,
        region=settings.region,
        max_repositories=settings.max_repositories,
        max_images_per_repository=settings.max_images_per_repository,
    )
    secret = load_or_create_secret(settings.data_dir, settings.token_secret)
    return Services(
        settings=settings,
        context=context,
        repositories=RepositoryService(context),
        images=ImageService(context),
        listing=ImageListing(context),
        uploads=UploadService(context),
        blobs=BlobService(context),
        keys=KeyStore(database, settings.account_id),
        tokens=TokenIssuer(secret),
        pagination=PaginationTokens(secret),
        download_urls=DownloadUrls(secret),
    )
