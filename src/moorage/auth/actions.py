"""Which ``ecr:`` IAM action(s) and which resource every request needs (ecr-api.md §5.3, §5.4).

One table, :data:`OPERATIONS`, maps every operation of botocore's ECR model to the action(s) it
is authorised by and to its scope:

* ``"repository"`` — the resource is the repository ARN
  ``arn:<partition>:ecr:<region>:<account>:repository/<name>`` (ecr-api.md §7.4); the repository
  policy (and the registry policy) take part in the decision.
* ``"registry"`` — the resource is ``*``; identity policies alone decide (§5.2 steps 5–6).

The action is ``ecr:<OperationName>`` for every operation (§5.3) except:

* ``ListImageReferrers`` → ``ecr:BatchGetImage`` (botocore model documentation: "The IAM principal
  invoking this operation must have the ecr:BatchGetImage permission"; §3.27). The name
  ``ecr:ListImageReferrers`` is still a *known* action, so policies naming it are accepted.
* ``CreateRepository`` with a non-empty ``tags`` member also needs ``ecr:TagResource``
  (§5.3, [unverified]); see :func:`operation_actions`.

Actions that are not API operations (§5.3): ``ecr:ReplicateImage`` (registry policies,
cross-account replication) and ``ecr:BatchImportUpstreamImage`` (pull-through cache import).

:func:`data_plane_actions` maps a ``/v2/`` request (method + route kind, as in
:data:`moorage.distribution.routes.ROUTES`) to the actions checked on the target repository and,
for a cross-repository mount, on the source repository (§5.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Scope = Literal["repository", "registry"]
RouteKind = Literal["base", "manifest", "blob", "upload", "tags", "referrers"]

__all__ = [
    "KNOWN_ACTIONS",
    "NON_API_ACTIONS",
    "OPERATIONS",
    "REGISTRY_POLICY_V1_ACTIONS",
    "DataPlaneActions",
    "OperationAuth",
    "RouteKind",
    "Scope",
    "data_plane_actions",
    "operation_actions",
    "operation_resources",
    "repository_arn",
]


@dataclass(frozen=True)
class OperationAuth:
    """How one ECR operation is authorised.

    Attributes:
        operation: botocore operation name (``BatchGetImage``).
        actions: the ``ecr:`` actions that must *all* be allowed (normally one).
        scope: ``"repository"`` (resource = repository ARN) or ``"registry"`` (resource = ``*``).
    """

    operation: str
    actions: tuple[str, ...]
    scope: Scope


_REPOSITORY_OPERATIONS = (
    "BatchCheckLayerAvailability",
    "BatchDeleteImage",
    "BatchGetImage",
    "BatchGetRepositoryScanningConfiguration",  # one resource per entry of repositoryNames
    "CompleteLayerUpload",
    "CreateRepository",  # resource = the ARN of the repository to be created (§5.3)
    "DeleteLifecyclePolicy",
    "DeleteRepository",
    "DeleteRepositoryPolicy",
    "DescribeImageReplicationStatus",
    "DescribeImageScanFindings",
    "DescribeImageSigningStatus",
    "DescribeImages",
    "DescribeRepositories",  # named repositories, or repository/* without names
    "GetDownloadUrlForLayer",
    "GetLifecyclePolicy",
    "GetLifecyclePolicyPreview",
    "GetRepositoryPolicy",
    "InitiateLayerUpload",
    "ListImageReferrers",
    "ListImages",
    "ListTagsForResource",  # resource = resourceArn
    "PutImage",
    "PutImageScanningConfiguration",
    "PutImageTagMutability",
    "PutLifecyclePolicy",
    "SetRepositoryPolicy",
    "StartImageScan",
    "StartLifecyclePolicyPreview",
    "TagResource",  # resource = resourceArn
    "UntagResource",  # resource = resourceArn
    "UpdateImageStorageClass",
    "UploadLayerPart",
)

_REGISTRY_OPERATIONS = (
    "CreatePullThroughCacheRule",
    "CreateRepositoryCreationTemplate",
    "DeletePullThroughCacheRule",
    "DeleteRegistryPolicy",
    "DeleteRepositoryCreationTemplate",
    "DeleteSigningConfiguration",
    "DeregisterPullTimeUpdateExclusion",
    "DescribePullThroughCacheRules",
    "DescribeRegistry",
    "DescribeReplicationBackfillResults",
    "DescribeRepositoryCreationTemplates",
    "GetAccountSetting",
    "GetAuthorizationToken",
    "GetRegistryPolicy",
    "GetRegistryScanningConfiguration",
    "GetSigningConfiguration",
    "ListPullTimeUpdateExclusions",
    "ListReplicationBackfills",
    "PutAccountSetting",
    "PutRegistryPolicy",
    "PutRegistryScanningConfiguration",
    "PutReplicationConfiguration",
    "PutSigningConfiguration",
    "RegisterPullTimeUpdateExclusion",
    "StartReplicationBackfill",
    "StopReplicationBackfill",
    "UpdatePullThroughCacheRule",
    "UpdateRepositoryCreationTemplate",
    "ValidatePullThroughCacheRule",
)

_ACTION_EXCEPTIONS: dict[str, tuple[str, ...]] = {
    "ListImageReferrers": ("ecr:BatchGetImage",),
}


def _build_table() -> dict[str, OperationAuth]:
    table: dict[str, OperationAuth] = {}
    groups = (("repository", _REPOSITORY_OPERATIONS), ("registry", _REGISTRY_OPERATIONS))
    for scope, names in groups:
        for name in names:
            actions = _ACTION_EXCEPTIONS.get(name, (f"ecr:{name}",))
            table[name] = OperationAuth(name, actions, scope)  # type: ignore[arg-type]
    return dict(sorted(table.items()))


OPERATIONS: Mapping[str, OperationAuth] = _build_table()
"""Every ECR operation (botocore model, 62 in 1.44.8) → :class:`OperationAuth`."""

NON_API_ACTIONS: frozenset[str] = frozenset({"ecr:ReplicateImage", "ecr:BatchImportUpstreamImage"})
"""``ecr:`` actions that no API operation is named after (§5.3)."""

KNOWN_ACTIONS: frozenset[str] = frozenset(
    {f"ecr:{name}" for name in OPERATIONS} | NON_API_ACTIONS
)
"""Every ``ecr:`` action a policy may name (canonical case); policy validation uses it."""

REGISTRY_POLICY_V1_ACTIONS: frozenset[str] = frozenset(
    {"ecr:ReplicateImage", "ecr:BatchImportUpstreamImage", "ecr:CreateRepository"}
)
"""The only actions a registry policy may name under ``REGISTRY_POLICY_SCOPE`` = ``V1`` (§3.25)."""


def repository_arn(name: str, *, region: str, account: str, partition: str = "aws") -> str:
    """``arn:<partition>:ecr:<region>:<account>:repository/<name>`` (ecr-api.md §7.4)."""
    return f"arn:{partition}:ecr:{region}:{account}:repository/{name}"


def operation_actions(operation: str, params: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The actions that must all be allowed for ``operation`` called with ``params``.

    ``CreateRepository`` with non-empty ``tags`` needs ``ecr:TagResource`` as well (§5.3).

    Raises:
        KeyError: ``operation`` is not an ECR operation.
    """
    actions = OPERATIONS[operation].actions
    if operation == "CreateRepository" and params and params.get("tags"):
        actions = actions + ("ecr:TagResource",)
    return actions


def operation_resources(
    operation: str,
    params: Mapping[str, Any],
    *,
    region: str,
    account: str,
    partition: str = "aws",
) -> tuple[str, ...]:
    """The resource ARN(s) ``operation`` acts on; each must be authorised.

    Args:
        operation: botocore operation name.
        params: the validated request members (``registryId``, ``repositoryName``...).
        region: the registry's region.
        account: the caller's account, used when ``registryId`` is absent (§1.7).
        partition: ARN partition.

    Returns:
        ``("*",)`` for registry-scoped operations; ``(resourceArn,)`` for the tagging
        operations; one repository ARN per ``repositoryNames`` entry for
        ``BatchGetRepositoryScanningConfiguration`` and ``DescribeRepositories`` (and
        ``.../repository/*`` when ``DescribeRepositories`` names none); else the ARN of
        ``repositoryName`` in ``registryId`` (or ``account``).

    Raises:
        KeyError: ``operation`` is not an ECR operation.
    """
    auth = OPERATIONS[operation]
    if auth.scope == "registry":
        return ("*",)
    if operation in ("TagResource", "UntagResource", "ListTagsForResource"):
        return (str(params.get("resourceArn", "")),)
    registry = str(params.get("registryId") or account)

    def arn(name: str) -> str:
        return repository_arn(name, region=region, account=registry, partition=partition)

    if operation in ("BatchGetRepositoryScanningConfiguration", "DescribeRepositories"):
        names = params.get("repositoryNames") or []
        if names:
            return tuple(arn(str(name)) for name in names)
        return (arn("*"),)
    return (arn(str(params.get("repositoryName", ""))),)


@dataclass(frozen=True)
class DataPlaneActions:
    """The actions one ``/v2/`` request needs.

    Attributes:
        target: actions on the repository named in the path (all must be allowed).
        mount_source: actions on the ``from=`` repository of a cross-repository mount (empty
            otherwise). ECR never fails a mount: when these are denied the edge answers with a
            plain upload session (202) instead of mounting (§9.6).
    """

    target: tuple[str, ...]
    mount_source: tuple[str, ...] = ()


_PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
_UPLOAD = ("ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload")

_DATA_PLANE: dict[tuple[RouteKind, str], tuple[str, ...]] = {
    ("base", "GET"): (),
    ("base", "HEAD"): (),
    ("manifest", "GET"): ("ecr:BatchGetImage",),
    ("manifest", "HEAD"): ("ecr:BatchGetImage",),
    ("manifest", "PUT"): ("ecr:PutImage",),
    ("manifest", "DELETE"): ("ecr:BatchDeleteImage",),
    ("blob", "GET"): ("ecr:GetDownloadUrlForLayer",),
    ("blob", "HEAD"): ("ecr:BatchCheckLayerAvailability",),
    # Not served by ECR (§9.1); moorage unlinks the blob from the repository, a deletion.
    ("blob", "DELETE"): ("ecr:BatchDeleteImage",),
    ("upload", "POST"): ("ecr:InitiateLayerUpload",),
    ("upload", "PATCH"): ("ecr:UploadLayerPart",),
    ("upload", "PUT"): ("ecr:CompleteLayerUpload",),
    ("upload", "GET"): ("ecr:UploadLayerPart",),
    ("upload", "DELETE"): ("ecr:UploadLayerPart",),
    ("tags", "GET"): ("ecr:ListImages",),
    ("referrers", "GET"): ("ecr:BatchGetImage",),
}


def data_plane_actions(
    method: str,
    route: RouteKind,
    *,
    has_body: bool = False,
    monolithic: bool = False,
    mount: bool = False,
) -> DataPlaneActions:
    """The actions a ``/v2/`` request needs (ecr-api.md §5.4).

    Args:
        method: HTTP method (case-insensitive).
        route: ``"base"`` (``/v2/``), ``"manifest"`` (``/v2/<name>/manifests/<ref>``),
            ``"blob"`` (``/v2/<name>/blobs/<digest>``), ``"upload"`` (``POST
            /v2/<name>/blobs/uploads/`` and ``/v2/<name>/blobs/uploads/<id>``), ``"tags"``
            (``/v2/<name>/tags/list``), ``"referrers"`` (``/v2/<name>/referrers/<digest>``).
        has_body: ``PUT .../blobs/uploads/<id>`` carries a final chunk → also
            ``ecr:UploadLayerPart``.
        monolithic: ``POST .../blobs/uploads/?digest=`` (the whole blob in one request) → the
            three upload actions.
        mount: ``POST .../blobs/uploads/?mount=<d>&from=<repo>`` → the upload actions on the
            target and pull (``ecr:BatchGetImage``, ``ecr:GetDownloadUrlForLayer``) on the source.

    Returns:
        :class:`DataPlaneActions`; ``target`` is empty for ``/v2/`` (a valid token is enough).

    Raises:
        ValueError: the route kind does not serve ``method``.
    """
    verb = method.upper()
    try:
        target = _DATA_PLANE[(route, verb)]
    except KeyError:
        raise ValueError(f"no ECR action for {verb} on a {route!r} route") from None
    if route == "upload" and verb == "POST" and mount:
        return DataPlaneActions(_UPLOAD, _PULL)
    if route == "upload" and verb == "POST" and monolithic:
        return DataPlaneActions(_UPLOAD)
    if route == "upload" and verb == "PUT" and has_body:
        return DataPlaneActions(("ecr:UploadLayerPart", "ecr:CompleteLayerUpload"))
    return DataPlaneActions(target)
