"""InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, BatchCheckLayerAvailability,
GetDownloadUrlForLayer (ecr-api.md §3.9–3.13)."""

from __future__ import annotations

from typing import Any

from moorage import errors
from moorage.ecr.exceptions import EcrError, invalid_parameter
from moorage.ecr.operations.context import OperationContext
from moorage.ecr.operations.shared import check_registry_id, identity
from moorage.registry.uploads import PREFERRED_PART_BYTES


def initiate_layer_upload(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """InitiateLayerUpload: a new upload session and the preferred part size (10 MiB)."""
    check_registry_id(context, params)
    upload_id = context.services.uploads.start(params["repositoryName"])
    return {"uploadId": upload_id, "partSize": PREFERRED_PART_BYTES}


def upload_layer_part(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """UploadLayerPart: parts must be contiguous; otherwise InvalidLayerPartException with
    ``lastValidByteReceived`` so the client can resume."""
    check_registry_id(context, params)
    try:
        last = context.services.uploads.append_part(
            params["repositoryName"], params["uploadId"], params["partFirstByte"],
            params["partLastByte"], params["layerPartBlob"])
    except errors.UploadOffsetMismatch as error:
        raise EcrError("InvalidLayerPartException", error.message, **identity(context, params["repositoryName"]),
                       uploadId=params["uploadId"], lastValidByteReceived=error.size_bytes - 1) from None
    return {**identity(context, params["repositoryName"]), "uploadId": params["uploadId"], "lastByteReceived": last}


def complete_layer_upload(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """CompleteLayerUpload: EmptyUploadException, LayerPartTooSmallException,
    InvalidLayerException (digest mismatch), LayerAlreadyExistsException."""
    check_registry_id(context, params)
    digests = set(params["layerDigests"])
    if len(digests) != 1:
        raise invalid_parameter("Invalid parameter at 'layerDigests': give exactly one digest")
    digest = digests.pop()
    try:
        context.services.uploads.complete_layer(params["repositoryName"], params["uploadId"], digest)
    except errors.InvalidDigest as error:
        raise EcrError("InvalidLayerException", error.message) from None
    except errors.EmptyUpload as error:
        raise EcrError("EmptyUploadException", error.message) from None
    except errors.LayerPartTooSmall as error:
        raise EcrError("LayerPartTooSmallException", error.message) from None
    except errors.LayerAlreadyExists as error:
        raise EcrError("LayerAlreadyExistsException", error.message) from None
    return {**identity(context, params["repositoryName"]), "uploadId": params["uploadId"], "layerDigest": digest}


def batch_check_layer_availability(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """BatchCheckLayerAvailability: ``layers`` for blobs in the repository, ``failures`` with
    MissingLayerDigest / InvalidLayerDigest for the rest."""
    check_registry_id(context, params)
    layers, failures = [], []
    results = context.services.blobs.availability(params["repositoryName"], params["layerDigests"])
    for digest, result in zip(params["layerDigests"], results):
        if isinstance(result, errors.MoorageError):
            code = "InvalidLayerDigest" if isinstance(result, errors.InvalidDigest) else "MissingLayerDigest"
            failures.append({"layerDigest": digest, "failureCode": code, "failureReason": result.message})
            continue
        _digest, size, media_type = result
        layers.append({"layerDigest": digest, "layerAvailability": "AVAILABLE", "layerSize": size,
                       "mediaType": media_type})
    return {"layers": layers, "failures": failures}


def get_download_url_for_layer(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetDownloadUrlForLayer: a signed URL on this server, valid for an hour, that serves the
    blob without further authentication."""
    check_registry_id(context, params)
    name, digest = params["repositoryName"], params["layerDigest"]
    try:
        context.services.blobs.check_downloadable(name, digest)
    except errors.InvalidDigest as error:
        raise invalid_parameter(f"Invalid parameter at 'layerDigest': {error.message}") from None
    except errors.BlobNotFound as error:
        raise EcrError("LayersNotFoundException", error.message) from None
    except errors.LayerInaccessible as error:
        raise EcrError("LayerInaccessibleException", error.message) from None
    url = context.services.download_urls.sign(
        f"{context.request_scheme}://{context.request_host}", name, digest,
        context.services.context.clock.now())
    return {"downloadUrl": url, "layerDigest": digest}
