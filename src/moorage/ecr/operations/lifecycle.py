"""StartLifecyclePolicyPreview and GetLifecyclePolicyPreview (ecr-api.md §3.19, §3.20, §4.4).

The evaluation itself is :class:`moorage.lifecycle.executor.LifecycleExecutor`'s; these
handlers translate its errors to ECR's and page its results with ``nextToken``.
"""

from __future__ import annotations

from typing import Any

from moorage.ecr.exceptions import invalid_parameter
from moorage.ecr.operations.context import OperationContext
from moorage.ecr.operations.shared import check_registry_id, identity
from moorage.lifecycle.executor import (
    COMPLETE,
    LifecycleExecutor,
)
from moorage.registry.images import ImageId

DEFAULT_PAGE_SIZE = 100


def start_lifecycle_policy_preview(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """StartLifecyclePolicyPreview: preview ``lifecyclePolicyText`` (validated as
    PutLifecyclePolicy does, not attached) or the attached policy; answers ``status:
    IN_PROGRESS`` while the evaluation runs in the background.

    Output: ``{registryId, repositoryName, lifecyclePolicyText, status}``.

    Errors: RepositoryNotFoundException, LifecyclePolicyNotFoundException (no text and no
    attached policy), InvalidParameterException (invalid text),
    LifecyclePolicyPreviewInProgressException.
    """
    check_registry_id(context, params)
    started = LifecycleExecutor(context.services).start_preview(
        params["repositoryName"], params.get("lifecyclePolicyText"))
    return {**identity(context, started.repository), "lifecyclePolicyText": started.policy_text,
            "status": started.status}


def get_lifecycle_policy_preview(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetLifecyclePolicyPreview: the latest preview's status and, once ``COMPLETE``, its
    results (images the policy acts on, by ``appliedRulePriority`` then push time) and summary.

    ``filter.tagStatus`` and ``imageIds`` narrow the results (``summary`` always covers the
    whole preview); ``imageIds`` cannot be combined with ``maxResults``/``nextToken``. Page size
    ``maxResults`` (default and maximum 100). ``previewResults`` and ``summary`` are absent
    while ``IN_PROGRESS`` and when ``FAILED``.

    Output: ``{registryId, repositoryName, lifecyclePolicyText, status, previewResults?,
    summary?, nextToken?}``.

    Errors: RepositoryNotFoundException, LifecyclePolicyPreviewNotFoundException (no preview
    started), InvalidParameterException (``imageIds`` with pagination; bad ``nextToken``).
    """
    check_registry_id(context, params)
    name = params["repositoryName"]
    image_ids = params.get("imageIds")
    if image_ids is not None and ("maxResults" in params or "nextToken" in params):
        raise invalid_parameter(
            "Invalid parameter at 'maxResults': cannot be used with imageIds")
    tag_status = (params.get("filter") or {}).get("tagStatus", "ANY")
    view = LifecycleExecutor(context.services).get_preview(
        name, tag_status=tag_status,
        image_ids=None if image_ids is None else [
            ImageId(digest=m.get("imageDigest"), tag=m.get("imageTag")) for m in image_ids])
    result: dict[str, Any] = {**identity(context, view.repository),
                              "lifecyclePolicyText": view.policy_text, "status": view.status}
    if view.status != COMPLETE or view.results is None:
        return result
    purpose = f"GetLifecyclePolicyPreview:{view.repository}:{view.started_at!r}:{tag_status}"
    offset = 0
    if "nextToken" in params:
        offset = context.services.pagination.decode(purpose, params["nextToken"])
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise invalid_parameter("Invalid parameter at 'nextToken': the token is invalid")
    limit = params.get("maxResults", DEFAULT_PAGE_SIZE)
    result["previewResults"] = view.results[offset:offset + limit]
    if image_ids is None and offset + limit < len(view.results):
        result["nextToken"] = context.services.pagination.encode(purpose, offset + limit)
    result["summary"] = view.summary
    return result
