"""One plain function per ECR operation, named after it, and the dispatch table.

A handler takes the :class:`OperationContext` and the validated input dict and returns a dict
shaped like the operation's output in the model (timestamps as epoch seconds, absent members
omitted or None), or that output already serialized (:class:`JsonText`). Operations of the
model without a handler answer ``NotImplementedException``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moorage.ecr.model import service_model
from moorage.ecr.operations import authorization, images, layers, policies, repositories, settings
from moorage.ecr.operations import lifecycle
from moorage.ecr.operations.context import JsonText, OperationContext

Handler = Callable[[OperationContext, dict[str, Any]], "dict[str, Any] | JsonText"]

OPERATIONS: dict[str, Handler] = {
    "CreateRepository": repositories.create_repository,
    "DescribeRepositories": repositories.describe_repositories,
    "DeleteRepository": repositories.delete_repository,
    "GetAuthorizationToken": authorization.get_authorization_token,
    "PutImage": images.put_image,
    "BatchGetImage": images.batch_get_image,
    "BatchDeleteImage": images.batch_delete_image,
    "DescribeImages": images.describe_images,
    "ListImages": images.list_images,
    "InitiateLayerUpload": layers.initiate_layer_upload,
    "UploadLayerPart": layers.upload_layer_part,
    "CompleteLayerUpload": layers.complete_layer_upload,
    "BatchCheckLayerAvailability": layers.batch_check_layer_availability,
    "GetDownloadUrlForLayer": layers.get_download_url_for_layer,
    "SetRepositoryPolicy": policies.set_repository_policy,
    "GetRepositoryPolicy": policies.get_repository_policy,
    "DeleteRepositoryPolicy": policies.delete_repository_policy,
    "PutLifecyclePolicy": policies.put_lifecycle_policy,
    "GetLifecyclePolicy": policies.get_lifecycle_policy,
    "DeleteLifecyclePolicy": policies.delete_lifecycle_policy,
    "StartLifecyclePolicyPreview": lifecycle.start_lifecycle_policy_preview,
    "GetLifecyclePolicyPreview": lifecycle.get_lifecycle_policy_preview,
    "TagResource": settings.tag_resource,
    "UntagResource": settings.untag_resource,
    "ListTagsForResource": settings.list_tags_for_resource,
    "PutImageTagMutability": settings.put_image_tag_mutability,
    "PutImageScanningConfiguration": settings.put_image_scanning_configuration,
    "DescribeRegistry": settings.describe_registry,
}

# Operations that only read: on SQLite the endpoint runs them on the event loop (no hand-off to
# a worker thread). Every other operation may write (BatchGetImage records pull times).
READ_ONLY_OPERATIONS = frozenset({
    "DescribeRepositories", "DescribeImages", "ListImages", "BatchCheckLayerAvailability",
    "GetRepositoryPolicy", "GetLifecyclePolicy", "ListTagsForResource", "DescribeRegistry",
})

# Operations whose only side effect is one write transaction, taken without waiting when
# ``context.on_event_loop``: on a SQLite file the endpoint runs them on the event loop while the
# writers' turn is free (a hand-off to a worker thread cost about a tenth of a PutImage), and
# again in a worker thread when it is not (WriterBusy: nothing was written). Each does bounded
# work there: one manifest (≤ 4 MiB), or a batch delete touching at most INLINE_DELETE_IMAGES
# images (a larger one is WriteTooLarge, a WriterBusy: it runs in a worker thread).
INLINE_WRITE_OPERATIONS = frozenset({"PutImage", "BatchDeleteImage"})


def check_dispatch_table() -> None:
    """Fail at start if a handler is registered under a name the model does not have."""
    unknown = (set(OPERATIONS) | READ_ONLY_OPERATIONS | INLINE_WRITE_OPERATIONS) - set(
        service_model().operation_names)
    if unknown:
        raise RuntimeError(f"handlers for operations not in the ECR model: {sorted(unknown)}")


__all__ = [
    "INLINE_WRITE_OPERATIONS", "OPERATIONS", "READ_ONLY_OPERATIONS", "Handler", "JsonText",
    "OperationContext", "check_dispatch_table",
]
