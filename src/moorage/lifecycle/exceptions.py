"""The errors of lifecycle runs and previews, as ECR names them (ecr-api.md §3.19, §3.20)."""

from __future__ import annotations

from moorage import errors

__all__ = [
    "LifecyclePolicyNotFound",
    "LifecyclePolicyPreviewInProgress",
    "LifecyclePolicyPreviewNotFound",
]


class LifecyclePolicyNotFound(errors.NotFound):
    """The repository has no lifecycle policy (ECR ``LifecyclePolicyNotFoundException``)."""

    def __init__(self, repository_name: str, registry_id: str) -> None:
        super().__init__(
            f"Lifecycle policy does not exist for the repository with name '{repository_name}' "
            f"in the registry with id '{registry_id}'"
        )


class LifecyclePolicyPreviewNotFound(errors.NotFound):
    """No preview was started for the repository (ECR
    ``LifecyclePolicyPreviewNotFoundException``)."""

    def __init__(self, repository_name: str, registry_id: str) -> None:
        super().__init__(
            f"Lifecycle policy preview does not exist for the repository with name "
            f"'{repository_name}' in the registry with id '{registry_id}'"
        )


class LifecyclePolicyPreviewInProgress(errors.Conflict):
    """A preview of the repository is still being evaluated (ECR
    ``LifecyclePolicyPreviewInProgressException``)."""

    def __init__(self, repository_name: str, registry_id: str) -> None:
        super().__init__(
            f"Previous lifecycle policy preview request has not completed for the repository "
            f"with name '{repository_name}' in the registry with id '{registry_id}'"
        )
