"""One plain function per ECR operation, named after it, and the dispatch table.

A handler takes the :class:`OperationContext` and the validated input dict and returns a dict
shaped like the operation's output in the model (timestamps as epoch seconds, absent members
omitted or None). Operations of the model without a handler answer ``NotImplementedException``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moorage.ecr.model import service_model
from moorage.ecr.operations import authorization, repositories
from moorage.ecr.operations.context import OperationContext

Handler = Callable[[OperationContext, dict[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, Handler] = {
    "CreateRepository": repositories.create_repository,
    "DescribeRepositories": repositories.describe_repositories,
    "DeleteRepository": repositories.delete_repository,
    "GetAuthorizationToken": authorization.get_authorization_token,
}


def check_dispatch_table() -> None:
    """Fail at start if a handler is registered under a name the model does not have."""
    unknown = set(OPERATIONS) - set(service_model().operation_names)
    if unknown:
        raise RuntimeError(f"handlers for operations not in the ECR model: {sorted(unknown)}")


__all__ = ["OPERATIONS", "Handler", "OperationContext", "check_dispatch_table"]
