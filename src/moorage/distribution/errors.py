"""OCI error codes with their HTTP status, and the one table from domain errors to them.

Every ``/v2/`` error is answered by :func:`error_response` as
``{"errors": [{"code", "message", "detail"}]}`` (distribution-spec v1.1 "Error Codes").
"""

from __future__ import annotations

import json
from typing import Any

from moorage import errors
from moorage.distribution.responses import Reply


class OciError(Exception):
    """An OCI error code to answer, with its HTTP status and optional extra headers."""

    def __init__(
        self, code: str, message: str, status: int, *, detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.detail = detail
        self.headers = headers or {}


# domain error → (OCI code, HTTP status). First match wins; order subclasses first.
_DOMAIN_TO_OCI: list[tuple[type[errors.MoorageError], str, int]] = [
    (errors.RepositoryNotFound, "NAME_UNKNOWN", 404),
    (errors.ImageNotFound, "MANIFEST_UNKNOWN", 404),
    (errors.BlobNotFound, "BLOB_UNKNOWN", 404),
    (errors.UploadNotFound, "BLOB_UPLOAD_UNKNOWN", 404),
    (errors.InvalidRepositoryName, "NAME_INVALID", 400),
    (errors.InvalidTag, "TAG_INVALID", 400),
    (errors.InvalidDigest, "DIGEST_INVALID", 400),
    (errors.ManifestTooLarge, "SIZE_INVALID", 413),
    (errors.InvalidManifest, "MANIFEST_INVALID", 400),
    (errors.ManifestReferencesMissing, "MANIFEST_BLOB_UNKNOWN", 400),
    (errors.DigestMismatch, "DIGEST_INVALID", 400),
    (errors.ImageTagAlreadyExists, "TAG_INVALID", 400),
    (errors.BlobInUse, "DENIED", 403),
    (errors.ImageReferencedByIndex, "DENIED", 403),
    (errors.UploadOffsetMismatch, "BLOB_UPLOAD_INVALID", 416),
    (errors.AuthenticationFailed, "UNAUTHORIZED", 401),
    (errors.InvalidInput, "UNSUPPORTED", 400),
    (errors.Conflict, "DENIED", 403),
]


def from_domain(error: errors.MoorageError) -> OciError:
    """The OCI error answering a domain error (see the table above)."""
    for error_type, code, status in _DOMAIN_TO_OCI:
        if isinstance(error, error_type):
            return OciError(code, error.message, status)
    return OciError("UNSUPPORTED", error.message, 400)


def error_response(error: OciError) -> Reply:
    """The response for ``error``: ``{"errors": [{"code", "message", "detail"?}]}``. Sent to a
    HEAD request too, without the body (:class:`Reply` leaves it out): the status and the
    headers, ``Content-Length`` and ``Content-Type`` included, are those a GET gets (RFC 9110
    §9.3.2)."""
    headers = [(name.lower(), value) for name, value in error.headers.items()]
    entry: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.detail is not None:
        entry["detail"] = error.detail
    return Reply(error.status, headers, json.dumps({"errors": [entry]}).encode(),
                 media_type="application/json")
