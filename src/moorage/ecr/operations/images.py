"""PutImage, BatchGetImage, BatchDeleteImage, DescribeImages, ListImages (ecr-api.md §3.4–3.8)."""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _quote  # a JSON string literal
from typing import Any

from moorage import errors
from moorage.ecr.exceptions import EcrError, invalid_parameter
from moorage.ecr.operations.context import JsonText, OperationContext
from moorage.ecr.operations.shared import check_registry_id, identity
from moorage.registry.images import ImageId
from moorage.registry.listing import ImageDetail

DEFAULT_PAGE_SIZE = 100

# Per-item domain errors → ECR ImageFailureCode. First match wins.
_FAILURE_CODES: list[tuple[type[errors.MoorageError], str]] = [
    (errors.MissingDigestAndTag, "MissingDigestAndTag"),
    (errors.InvalidDigest, "InvalidImageDigest"),
    (errors.InvalidTag, "InvalidImageTag"),
    (errors.TagDigestMismatch, "ImageTagDoesNotMatchDigest"),
    (errors.ImageReferencedByIndex, "ImageReferencedByManifestList"),
    (errors.ImageNotFound, "ImageNotFound"),
]


def _failure(image_id: dict[str, Any], error: errors.MoorageError) -> dict[str, Any]:
    code = next((c for t, c in _FAILURE_CODES if isinstance(error, t)), "ImageNotFound")
    reason = "Requested image not found" if code == "ImageNotFound" else error.message
    return {"imageId": {key: value for key, value in image_id.items() if value is not None},
            "failureCode": code, "failureReason": reason}


def _image_ids_json(pairs: list[tuple[str, str | None]]) -> str:
    """``(digest, tag or None)`` pairs as the members of a JSON list of ECR ImageIdentifiers."""
    return ",".join(
        f'{{"imageDigest":{_quote(digest)},"imageTag":{_quote(tag)}}}' if tag is not None
        else f'{{"imageDigest":{_quote(digest)}}}'
        for digest, tag in pairs)


def _image_id(member: dict[str, Any]) -> ImageId:
    return ImageId(digest=member.get("imageDigest"), tag=member.get("imageTag"))


def put_image(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """PutImage: the same write path as a ``/v2/`` manifest PUT, with ECR's rules on top:
    ImageAlreadyExistsException, ImageDigestDoesNotMatchException, LayersNotFoundException,
    ReferencedImagesNotFoundException, ImageTagAlreadyExistsException."""
    check_registry_id(context, params)
    name = params["repositoryName"]
    content = params["imageManifest"].encode("utf-8")
    media_type = params.get("imageManifestMediaType")
    tag = params.get("imageTag")
    if media_type is None and _lacks_media_type(content):
        raise invalid_parameter(
            "Invalid parameter at 'imageManifestMediaType': the manifest has no mediaType; "
            "specify imageManifestMediaType"
        )
    try:
        manifest = context.services.images.put(
            name, content, media_type, tag=tag, expected_digest=params.get("imageDigest"),
            reject_existing=True, wait_for_writer=not context.on_event_loop,
        )
    except errors.ManifestReferencesMissing as error:
        if error.missing_blobs:
            raise EcrError("LayersNotFoundException", f"Layers with digests {error.missing_blobs} "
                           f"required for pushing image into repository with name '{name}' in "
                           f"the registry with id '{context.registry_id}' do not exist") from None
        raise EcrError("ReferencedImagesNotFoundException", f"Images with digests "
                       f"{error.missing_manifests} referenced by the manifest list do not exist "
                       f"in the repository with name '{name}'") from None
    except errors.InvalidManifest as error:
        raise invalid_parameter(
            f"Invalid parameter at 'ImageManifest' failed to satisfy constraint: '{error.message}'"
        ) from None
    image_id = {"imageDigest": manifest.digest}
    if tag is not None:
        image_id["imageTag"] = tag
    return {"image": {
        **identity(context, name), "imageId": image_id,
        "imageManifest": params["imageManifest"],
        "imageManifestMediaType": manifest.media_type,
    }}


def _lacks_media_type(content: bytes) -> bool:
    """True for a JSON object without ``mediaType`` (anything else is for the manifest parser
    to judge)."""
    try:
        document = json.loads(content)
    except (ValueError, RecursionError):
        return False
    return isinstance(document, dict) and "mediaType" not in document


def batch_get_image(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """BatchGetImage: each id resolves independently; unacceptable media types fail the item
    (Moorage does not convert manifests)."""
    check_registry_id(context, params)
    name = params["repositoryName"]
    accepted = params.get("acceptedMediaTypes")
    requested = params["imageIds"]
    results = context.services.images.get_many(name, [_image_id(m) for m in requested])
    images, failures = [], []
    for member, result in zip(requested, results):
        if isinstance(result, errors.MoorageError):
            failures.append(_failure(member, result))
            continue
        if accepted is not None and result.media_type not in accepted:
            failures.append({"imageId": member, "failureCode": "ImageNotFound", "failureReason":
                             f"The manifest is stored as {result.media_type}, which is not in "
                             "acceptedMediaTypes"})
            continue
        image_id = {"imageDigest": result.digest}
        if member.get("imageTag") is not None:
            image_id["imageTag"] = member["imageTag"]
        images.append({**identity(context, name), "imageId": image_id,
                       "imageManifest": result.content.decode("utf-8"),
                       "imageManifestMediaType": result.media_type})
    return {"images": images, "failures": failures}


def batch_delete_image(context: OperationContext, params: dict[str, Any]) -> JsonText:
    """BatchDeleteImage: per-item results; the last tag takes its image with it; by digest
    removes every tag; children of an index and missing images fail their item only.

    The answer is written as JSON text directly (up to 100 ids and failures)."""
    check_registry_id(context, params)
    requested = params["imageIds"]
    removed, failed = context.services.images.delete_many(
        params["repositoryName"], [_image_id(m) for m in requested],
        wait_for_writer=not context.on_event_loop)
    failures = json.dumps([_failure(requested[index], error) for index, error in failed],
                          separators=(",", ":"))
    return JsonText(f'{{"imageIds":[{_image_ids_json(removed)}],"failures":{failures}}}')


def _tag_status(params: dict[str, Any]) -> str:
    return (params.get("filter") or {}).get("tagStatus", "ANY")


def _page_size(params: dict[str, Any]) -> int:
    return params.get("maxResults", DEFAULT_PAGE_SIZE)


def list_images(context: OperationContext, params: dict[str, Any]) -> JsonText:
    """ListImages: one id per (image, tag) pair and one per untagged image, paginated.

    The answer is written as JSON text directly (a page holds up to 1,000 ids)."""
    check_registry_id(context, params)
    name = params["repositoryName"]
    purpose = f"ListImages:{name}:{_tag_status(params)}"
    after = None
    if "nextToken" in params:
        after = context.services.pagination.decode(purpose, params["nextToken"])
        if not (isinstance(after, list) and len(after) == 2 and all(isinstance(x, str) for x in after)):
            raise invalid_parameter("Invalid parameter at 'nextToken': the token is invalid")
        after = tuple(after)
    page, next_key = context.services.listing.image_ids(name, _tag_status(params), after, _page_size(params))
    ids = _image_ids_json(page)
    if next_key is None:
        return JsonText(f'{{"imageIds":[{ids}]}}')
    token = context.services.pagination.encode(purpose, list(next_key))
    return JsonText(f'{{"imageIds":[{ids}],"nextToken":{_quote(token)}}}')


def _detail_shape(context: OperationContext, name: str, detail: ImageDetail) -> dict[str, Any]:
    shape: dict[str, Any] = {
        **identity(context, name),
        "imageDigest": detail.digest,
        "imageSizeInBytes": detail.size_bytes,
        "imagePushedAt": detail.pushed_at,
        "imageManifestMediaType": detail.media_type,
        "artifactMediaType": detail.artifact_media_type,
        "lastRecordedPullTime": detail.last_pulled_at,
        "subjectManifestDigest": detail.subject_digest,
        "imageStatus": "ACTIVE",
    }
    if detail.tags:
        shape["imageTags"] = list(detail.tags)
    return shape


def describe_images(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """DescribeImages: named images (ImageNotFoundException if any is missing), or every image
    by push time, paginated."""
    check_registry_id(context, params)
    name = params["repositoryName"]
    listing = context.services.listing
    if "imageIds" in params:
        if "maxResults" in params or "nextToken" in params:
            raise invalid_parameter("Invalid parameter at 'maxResults': cannot be used with imageIds")
        try:
            details = listing.details_of(name, [_image_id(m) for m in params["imageIds"]])
        except (errors.InvalidDigest, errors.InvalidTag, errors.MissingDigestAndTag,
                errors.TagDigestMismatch) as error:
            raise invalid_parameter(error.message) from None
        return {"imageDetails": [_detail_shape(context, name, d) for d in details]}
    purpose = f"DescribeImages:{name}:{_tag_status(params)}"
    after = None
    if "nextToken" in params:
        after = context.services.pagination.decode(purpose, params["nextToken"])
        if not (isinstance(after, list) and len(after) == 2 and isinstance(after[0], (int, float))
                and isinstance(after[1], str)):
            raise invalid_parameter("Invalid parameter at 'nextToken': the token is invalid")
        after = (float(after[0]), after[1])
    details, next_key = listing.details(name, _tag_status(params), after, _page_size(params))
    result: dict[str, Any] = {"imageDetails": [_detail_shape(context, name, d) for d in details]}
    if next_key is not None:
        result["nextToken"] = context.services.pagination.encode(purpose, list(next_key))
    return result
