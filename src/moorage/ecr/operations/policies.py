"""Repository policies and lifecycle policies: stored and validated (ecr-api.md §3.15–3.18).

Enforcement of repository policies and execution of lifecycle policies are separate concerns
(``moorage.auth.policy`` evaluation, ``moorage.lifecycle``); these operations only keep the
documents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moorage.auth.policy import parse_policy
from moorage.errors import RepositoryPolicyNotFound
from moorage.lifecycle.exceptions import LifecyclePolicyNotFound
from moorage.ecr.operations.context import OperationContext
from moorage.ecr.operations.shared import check_registry_id, identity
from moorage.lifecycle.rules import parse_lifecycle_policy


def _store(context: OperationContext, params: dict[str, Any], member: str, field_name: str,
           validate: Callable[[str], object]) -> dict[str, Any]:
    """Validate the policy text in ``params[member]`` (the repository must exist first, as ECR
    answers RepositoryNotFoundException before a validation failure), store it verbatim in
    ``field_name`` and echo it."""
    check_registry_id(context, params)
    text = params[member]
    context.services.repositories.get(params["repositoryName"])
    validate(text)
    repository = context.services.repositories.set_policy(params["repositoryName"], field_name, text)
    return {**identity(context, repository.name), member: text}


def set_repository_policy(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """SetRepositoryPolicy: validate the IAM resource policy, store it verbatim, echo it.

    ``force`` is accepted; Moorage does not refuse policies that would lock the caller out.
    """
    return _store(context, params, "policyText", "repository_policy",
                  lambda text: parse_policy(text, kind="repository"))


def get_repository_policy(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetRepositoryPolicy: the stored text, or RepositoryPolicyNotFoundException."""
    check_registry_id(context, params)
    repository = context.services.repositories.get(params["repositoryName"])
    if repository.repository_policy is None:
        raise RepositoryPolicyNotFound(repository.name, context.registry_id)
    return {**identity(context, repository.name), "policyText": repository.repository_policy}


def delete_repository_policy(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteRepositoryPolicy: returns the removed text."""
    result = get_repository_policy(context, params)
    context.services.repositories.set_policy(params["repositoryName"], "repository_policy", None)
    return result


def put_lifecycle_policy(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """PutLifecyclePolicy: validate with ECR's messages, store verbatim, echo it."""
    return _store(context, params, "lifecyclePolicyText", "lifecycle_policy", parse_lifecycle_policy)


def get_lifecycle_policy(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetLifecyclePolicy: the stored text and ``lastEvaluatedAt`` (absent before a run)."""
    check_registry_id(context, params)
    repository = context.services.repositories.get(params["repositoryName"])
    if repository.lifecycle_policy is None:
        raise LifecyclePolicyNotFound(repository.name, context.registry_id)
    return {**identity(context, repository.name), "lifecyclePolicyText": repository.lifecycle_policy,
            "lastEvaluatedAt": repository.lifecycle_evaluated_at}


def delete_lifecycle_policy(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteLifecyclePolicy: returns the removed text and ``lastEvaluatedAt``."""
    result = get_lifecycle_policy(context, params)
    context.services.repositories.set_policy(params["repositoryName"], "lifecycle_policy", None)
    return result
