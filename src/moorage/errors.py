"""Protocol-neutral domain errors.

The domain (``moorage.registry``, ``moorage.auth``, ``moorage.storage``) raises these; each API
edge translates them once, in one table: ``moorage.ecr.exceptions`` to an ECR ``__type`` and
``moorage.distribution.errors`` to an OCI error code and HTTP status. No HTTP status lives here.

Hierarchy::

    MoorageError
    ├── InvalidInput                   malformed value supplied by a client
    │   ├── InvalidRepositoryName      name outside the distribution-spec / ECR grammar
    │   ├── InvalidTag                 tag outside the tag grammar
    │   ├── InvalidDigest              not ``<algorithm>:<hex>`` or unsupported algorithm
    │   ├── InvalidResourceTag         reserved or malformed ``{Key, Value}`` tag
    │   ├── TooManyResourceTags        more than 50 resource tags
    │   ├── MissingDigestAndTag        image identifier without digest and tag
    │   ├── TagDigestMismatch          image identifier whose tag names another image
    │   ├── EmptyUpload                ECR layer upload completed without bytes
    │   ├── LayerPartTooSmall          ECR layer part below 5 MiB that was not the last
    │   └── InvalidManifest            manifest bytes unparsable or structurally wrong
    │       └── ManifestTooLarge       larger than the 4 MiB ECR limit
    ├── NotFound
    │   ├── RepositoryNotFound
    │   ├── RepositoryPolicyNotFound
    │   ├── ImageNotFound              no manifest for that tag or digest in the repository
    │   ├── BlobNotFound               blob not linked to the repository
    │   └── UploadNotFound             no such upload session in the repository
    ├── Conflict
    │   ├── RepositoryAlreadyExists
    │   ├── RepositoryNotEmpty
    │   ├── ImageTagAlreadyExists      immutable repository refuses to move a tag
    │   ├── BlobInUse                  blob still referenced by an image of the repository
    │   ├── ImageReferencedByIndex     image is a child of a stored index or manifest list
    │   ├── ImageAlreadyExists         ECR PutImage that would change nothing
    │   ├── LayerAlreadyExists         ECR CompleteLayerUpload of a blob already there
    │   ├── LimitExceeded              a service quota would be exceeded
    │   └── LayerInaccessible          blob in the repository but referenced by no image
    ├── ManifestReferencesMissing      manifest names blobs or child manifests not in the repository
    ├── DigestMismatch                 computed digest differs from the one the client declared
    │   └── ManifestDigestMismatch     for a manifest
    ├── UploadOffsetMismatch           chunk does not start where the upload ends
    └── AuthenticationFailed           credentials missing, malformed, unknown or expired
"""

from __future__ import annotations


class MoorageError(Exception):
    """Base of every domain error; ``message`` is safe to show to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(MoorageError):
    """A value supplied by the client is malformed."""


class InvalidRepositoryName(InvalidInput):
    """Repository name outside the grammar (ECR model pattern, length 2..256)."""


class InvalidTag(InvalidInput):
    """Tag outside ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``."""


class InvalidDigest(InvalidInput):
    """Digest not of the form ``sha256:<64 lowercase hex>``."""


class InvalidResourceTag(InvalidInput):
    """A ``{Key, Value}`` resource tag is invalid (reserved ``aws:`` prefix...)."""


class TooManyResourceTags(InvalidInput):
    """More than 50 resource tags on one repository."""


class InvalidManifest(InvalidInput):
    """Manifest bytes are not a valid manifest of a supported media type."""


class ManifestTooLarge(InvalidManifest):
    """Manifest larger than the limit (4 MiB, as ECR)."""


class NotFound(MoorageError):
    """The named thing does not exist."""


class RepositoryNotFound(NotFound):
    """No repository of that name in the registry."""

    def __init__(self, repository_name: str, registry_id: str) -> None:
        super().__init__(
            f"The repository with name '{repository_name}' does not exist in the registry "
            f"with id '{registry_id}'"
        )
        self.repository_name = repository_name
        self.registry_id = registry_id


class RepositoryPolicyNotFound(NotFound):
    """The repository has no repository policy."""

    def __init__(self, repository_name: str, registry_id: str) -> None:
        super().__init__(
            f"Repository policy does not exist for the repository with name '{repository_name}' "
            f"in the registry with id '{registry_id}'"
        )


class ImageNotFound(NotFound):
    """No image with that tag or digest in the repository."""


class BlobNotFound(NotFound):
    """The blob is not available in the repository."""


class UploadNotFound(NotFound):
    """No upload session with that id in the repository."""


class Conflict(MoorageError):
    """The request conflicts with the stored state."""


class RepositoryAlreadyExists(Conflict):
    """A repository of that name exists already."""

    def __init__(self, repository_name: str, registry_id: str) -> None:
        super().__init__(
            f"The repository with name '{repository_name}' already exists in the registry "
            f"with id '{registry_id}'"
        )


class RepositoryNotEmpty(Conflict):
    """DeleteRepository without ``force`` on a repository that holds images."""

    def __init__(self, repository_name: str, registry_id: str) -> None:
        super().__init__(
            f"The repository with name '{repository_name}' in registry with id '{registry_id}' "
            "cannot be deleted because it still contains images"
        )


class ImageTagAlreadyExists(Conflict):
    """The repository is immutable and the tag already names another image."""

    def __init__(self, tag: str, repository_name: str) -> None:
        super().__init__(
            f"The image tag '{tag}' already exists in the '{repository_name}' repository and "
            "cannot be overwritten because the repository is immutable."
        )


class BlobInUse(Conflict):
    """The blob is referenced by an image of the repository and cannot be unlinked."""


class ImageReferencedByIndex(Conflict):
    """The image is a child of a stored manifest list or index and cannot be deleted."""


class ManifestReferencesMissing(MoorageError):
    """The manifest names blobs (``missing_blobs``) or child manifests (``missing_manifests``)
    that are not available in the repository."""

    def __init__(self, missing_blobs: list[str], missing_manifests: list[str]) -> None:
        parts = []
        if missing_blobs:
            parts.append("blobs not found: " + ", ".join(missing_blobs))
        if missing_manifests:
            parts.append("manifests not found: " + ", ".join(missing_manifests))
        super().__init__("; ".join(parts))
        self.missing_blobs = missing_blobs
        self.missing_manifests = missing_manifests


class DigestMismatch(MoorageError):
    """The digest computed over the received bytes differs from the declared digest."""


class ManifestDigestMismatch(DigestMismatch):
    """A manifest's digest differs from the one the client named."""


class MissingDigestAndTag(InvalidInput):
    """An image identifier with neither digest nor tag."""


class TagDigestMismatch(InvalidInput):
    """An image identifier whose tag names another image than its digest."""


class ImageAlreadyExists(Conflict):
    """ECR PutImage of a digest (and tag) the repository already holds."""


class LayerAlreadyExists(Conflict):
    """ECR CompleteLayerUpload of a blob the repository already has."""


class EmptyUpload(InvalidInput):
    """Completing an upload that received no bytes through the ECR layer API."""


class LayerPartTooSmall(InvalidInput):
    """A layer part other than the last was smaller than 5 MiB."""


class LimitExceeded(Conflict):
    """A service quota (repositories per registry, images per repository) would be exceeded."""


class LayerInaccessible(Conflict):
    """The blob is in the repository but no image references it."""


class UploadOffsetMismatch(MoorageError):
    """A chunk does not start at the current end of the upload (``size_bytes``)."""

    def __init__(self, message: str, size_bytes: int) -> None:
        super().__init__(message)
        self.size_bytes = size_bytes


class AuthenticationFailed(MoorageError):
    """Credentials are missing, malformed, unknown or expired."""
