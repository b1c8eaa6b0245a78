"""ECR errors on the wire, and the one table from domain errors to them.

An ECR error is answered as HTTP status + ``{"__type": <code>, "message": <text>, ...extra}``
(ecr-api.md §1.3). The model declares no status codes: every client error is 400,
``ServerException`` 500, ``MissingAuthenticationTokenException`` 403.
"""

from __future__ import annotations

from typing import Any

from moorage import errors
from moorage.lifecycle import exceptions as lifecycle_errors

_STATUS = {
    "ServerException": 500,
    "MissingAuthenticationTokenException": 403,
}


class EcrError(Exception):
    """An error answered as ``{"__type": code, "message": message, **extra}``.

    Args:
        code: the ECR exception shape name (``RepositoryNotFoundException``) or a common AWS JSON
            error (``InvalidSignatureException``, ``UnknownOperationException``...).
        message: human-readable text.
        extra: further members of the error shape (``lastValidByteReceived``...).
    """

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.extra = extra

    @property
    def status(self) -> int:
        """HTTP status: 400 for client errors, 500 for ServerException, 403 when unauthenticated."""
        return _STATUS.get(self.code, 400)

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"__type": self.code, "message": self.message, **self.extra}


def invalid_parameter(message: str) -> EcrError:
    """``InvalidParameterException`` with ``message``."""
    return EcrError("InvalidParameterException", message)


_DOMAIN_TO_ECR: list[tuple[type[errors.MoorageError], str]] = [
    (lifecycle_errors.LifecyclePolicyNotFound, "LifecyclePolicyNotFoundException"),
    (lifecycle_errors.LifecyclePolicyPreviewNotFound, "LifecyclePolicyPreviewNotFoundException"),
    (lifecycle_errors.LifecyclePolicyPreviewInProgress, "LifecyclePolicyPreviewInProgressException"),
    (errors.RepositoryPolicyNotFound, "RepositoryPolicyNotFoundException"),
    (errors.RepositoryNotFound, "RepositoryNotFoundException"),
    (errors.RepositoryAlreadyExists, "RepositoryAlreadyExistsException"),
    (errors.RepositoryNotEmpty, "RepositoryNotEmptyException"),
    (errors.ImageTagAlreadyExists, "ImageTagAlreadyExistsException"),
    (errors.ImageNotFound, "ImageNotFoundException"),
    (errors.UploadNotFound, "UploadNotFoundException"),
    (errors.ManifestReferencesMissing, "LayersNotFoundException"),
    (errors.ManifestDigestMismatch, "ImageDigestDoesNotMatchException"),
    (errors.DigestMismatch, "InvalidLayerException"),
    (errors.ImageAlreadyExists, "ImageAlreadyExistsException"),
    (errors.LayerAlreadyExists, "LayerAlreadyExistsException"),
    (errors.EmptyUpload, "EmptyUploadException"),
    (errors.LayerPartTooSmall, "LayerPartTooSmallException"),
    (errors.LayerInaccessible, "LayerInaccessibleException"),
    (errors.LimitExceeded, "LimitExceededException"),
    (errors.BlobNotFound, "LayersNotFoundException"),
    (errors.InvalidResourceTag, "InvalidTagParameterException"),
    (errors.TooManyResourceTags, "TooManyTagsException"),
    (errors.InvalidInput, "InvalidParameterException"),
    (errors.AuthenticationFailed, "UnrecognizedClientException"),
]


def from_domain(error: errors.MoorageError) -> EcrError:
    """Translate a domain error into the ECR error that names it (ecr-api.md Appendix B).

    Unmapped domain errors become ``InvalidParameterException`` with the domain message, which
    is always a client-side problem by construction of :mod:`moorage.errors`.
    """
    for error_type, code in _DOMAIN_TO_ECR:
        if isinstance(error, error_type):
            return EcrError(code, error.message)
    return EcrError("InvalidParameterException", error.message)
