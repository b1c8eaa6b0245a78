"""Checks shared by operation handlers."""

from __future__ import annotations

from typing import Any

from moorage.ecr.operations.context import OperationContext
from moorage.errors import RepositoryNotFound


def check_registry_id(context: OperationContext, params: dict[str, Any]) -> None:
    """A ``registryId`` other than this registry's names a registry Moorage does not serve:
    ``RepositoryNotFoundException`` (single-account mode, ecr-api.md §1.7)."""
    registry_id = params.get("registryId")
    if registry_id is not None and registry_id != context.registry_id:
        raise RepositoryNotFound(params.get("repositoryName", ""), registry_id)


def identity(context: OperationContext, repository_name: str) -> dict[str, Any]:
    """``{registryId, repositoryName}``, the members most outputs start with."""
    return {"registryId": context.registry_id, "repositoryName": repository_name}
