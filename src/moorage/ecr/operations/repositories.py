"""CreateRepository, DescribeRepositories, DeleteRepository (ecr-api.md §3.1–3.3)."""

from __future__ import annotations

from typing import Any

from moorage.ecr.exceptions import invalid_parameter
from moorage.ecr.operations.context import OperationContext
from moorage.ecr.operations.shared import check_registry_id
from moorage.images.references import repository_arn
from moorage.registry.repositories import RepositorySettings
from moorage.storage.metadata.schema import Repository

DEFAULT_PAGE_SIZE = 100


def repository_shape(context: OperationContext, repository: Repository) -> dict[str, Any]:
    """The model's ``Repository`` structure for a stored repository."""
    encryption: dict[str, Any] = {"encryptionType": repository.encryption_type}
    if repository.kms_key:
        encryption["kmsKey"] = repository.kms_key
    shape: dict[str, Any] = {
        "repositoryArn": repository_arn(
            context.services.context.region, repository.registry_id, repository.name
        ),
        "registryId": repository.registry_id,
        "repositoryName": repository.name,
        "repositoryUri": f"{context.registry_host}/{repository.name}",
        "createdAt": repository.created_at,
        "imageTagMutability": repository.image_tag_mutability,
        "imageScanningConfiguration": {"scanOnPush": repository.scan_on_push},
        "encryptionConfiguration": encryption,
    }
    if repository.image_tag_mutability_exclusion_filters:
        shape["imageTagMutabilityExclusionFilters"] = repository.image_tag_mutability_exclusion_filters
    return shape


def create_repository(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """CreateRepository: every request member is stored and returned.

    Errors: InvalidParameterException, InvalidTagParameterException, TooManyTagsException,
    RepositoryAlreadyExistsException.
    """
    check_registry_id(context, params)
    encryption = params.get("encryptionConfiguration") or {}
    scanning = params.get("imageScanningConfiguration") or {}
    settings = RepositorySettings(
        image_tag_mutability=params.get("imageTagMutability", "MUTABLE"),
        image_tag_mutability_exclusion_filters=params.get("imageTagMutabilityExclusionFilters"),
        scan_on_push=bool(scanning.get("scanOnPush", False)),
        encryption_type=encryption.get("encryptionType", "AES256"),
        kms_key=encryption.get("kmsKey"),
        tags=params.get("tags") or [],
    )
    repository, _tags = context.services.repositories.create(params["repositoryName"], settings)
    return {"repository": repository_shape(context, repository)}


def describe_repositories(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """DescribeRepositories: named repositories, or every repository by name, paginated.

    Errors: InvalidParameterException (``repositoryNames`` with ``maxResults``/``nextToken``,
    forged token), RepositoryNotFoundException (first missing name).
    """
    check_registry_id(context, params)
    names = params.get("repositoryNames")
    service = context.services.repositories
    if names is not None:
        if "maxResults" in params or "nextToken" in params:
            raise invalid_parameter(
                "Invalid parameter at 'maxResults': cannot be used with repositoryNames"
            )
        return {"repositories": [repository_shape(context, r) for r in service.get_many(names)]}
    after = None
    if "nextToken" in params:
        after = context.services.pagination.decode("DescribeRepositories", params["nextToken"])
        if not isinstance(after, str):
            raise invalid_parameter("Invalid parameter at 'nextToken': the token is invalid")
    page = service.list(after, params.get("maxResults", DEFAULT_PAGE_SIZE))
    result: dict[str, Any] = {
        "repositories": [repository_shape(context, r) for r in page.repositories]
    }
    if page.next_after is not None:
        result["nextToken"] = context.services.pagination.encode(
            "DescribeRepositories", page.next_after
        )
    return result


def delete_repository(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteRepository: RepositoryNotEmptyException unless empty or ``force``."""
    check_registry_id(context, params)
    repository, _tags = context.services.repositories.delete(
        params["repositoryName"], bool(params.get("force", False))
    )
    return {"repository": repository_shape(context, repository)}
