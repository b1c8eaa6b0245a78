"""TagResource, UntagResource, ListTagsForResource, PutImageTagMutability,
PutImageScanningConfiguration, DescribeRegistry (ecr-api.md §3.21–3.24)."""

from __future__ import annotations

import re
from typing import Any

from moorage.ecr.exceptions import invalid_parameter
from moorage.ecr.operations.context import OperationContext
from moorage.ecr.operations.shared import check_registry_id
from moorage.errors import RepositoryNotFound

_REPOSITORY_ARN = re.compile(r"arn:aws[a-z-]*:ecr:(?P<region>[0-9a-z-]+):(?P<account>[0-9]{12}):repository/(?P<name>.+)")


def _repository_from_arn(context: OperationContext, arn: str) -> str:
    """The repository name of a repository ARN of this registry.

    Raises:
        EcrError: InvalidParameterException for a malformed ARN.
        RepositoryNotFound: another region or account.
    """
    match = _REPOSITORY_ARN.fullmatch(arn)
    if match is None:
        raise invalid_parameter("Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN'")
    if match["account"] != context.registry_id or match["region"] != context.services.context.region:
        raise RepositoryNotFound(match["name"], match["account"])
    return match["name"]


def tag_resource(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """TagResource: merge tags (InvalidTagParameterException, TooManyTagsException)."""
    context.services.repositories.tag(_repository_from_arn(context, params["resourceArn"]), params["tags"])
    return {}


def untag_resource(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """UntagResource: remove tag keys; absent keys are ignored."""
    context.services.repositories.untag(_repository_from_arn(context, params["resourceArn"]), params["tagKeys"])
    return {}


def list_tags_for_resource(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """ListTagsForResource: the repository's tags in insertion order."""
    service = context.services.repositories
    repository = service.get(_repository_from_arn(context, params["resourceArn"]))
    return {"tags": [{"Key": t.key, "Value": t.value} for t in service.resource_tags(repository.id)]}


def put_image_tag_mutability(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """PutImageTagMutability: affects future pushes only; echoes the effective settings."""
    check_registry_id(context, params)
    repository = context.services.repositories.set_tag_mutability(
        params["repositoryName"], params["imageTagMutability"],
        params.get("imageTagMutabilityExclusionFilters"))
    result = {"registryId": context.registry_id, "repositoryName": repository.name,
              "imageTagMutability": repository.image_tag_mutability}
    if repository.image_tag_mutability_exclusion_filters:
        result["imageTagMutabilityExclusionFilters"] = repository.image_tag_mutability_exclusion_filters
    return result


def put_image_scanning_configuration(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """PutImageScanningConfiguration: stores ``scanOnPush`` (Moorage does not scan)."""
    check_registry_id(context, params)
    repository = context.services.repositories.set_scan_on_push(
        params["repositoryName"], bool(params["imageScanningConfiguration"].get("scanOnPush", False)))
    return {"registryId": context.registry_id, "repositoryName": repository.name,
            "imageScanningConfiguration": {"scanOnPush": repository.scan_on_push}}


def describe_registry(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """DescribeRegistry: the registry id and an empty replication configuration."""
    return {"registryId": context.registry_id, "replicationConfiguration": {"rules": []}}
