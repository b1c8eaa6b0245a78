"""IAM policy documents as ECR accepts them, and the pure evaluator (ecr-api.md §5.1, §5.2).

Three kinds of document share one grammar (§5.1):

* ``"repository"`` — a repository policy (SetRepositoryPolicy, §3.15): a resource policy; every
  statement names ``Principal`` or ``NotPrincipal``; ``Resource`` is optional (the repository is
  implied).
* ``"registry"`` — the registry policy (PutRegistryPolicy, §3.25): a resource policy at registry
  scope. Under ``REGISTRY_POLICY_SCOPE`` ``V1`` (the default) its actions are limited to
  ``ecr:ReplicateImage``, ``ecr:BatchImportUpstreamImage`` and ``ecr:CreateRepository``; under
  ``V2`` any ``ecr:`` action.
* ``"identity"`` — a policy attached to a moorage principal (configuration, not an ECR API):
  no ``Principal``; ``Resource`` or ``NotResource`` required; ``Version`` optional (IAM default
  ``2008-10-17``); actions of other services (``cloudtrail:LookupEvents`` in AWS managed
  policies) are accepted and never match an ECR action.

Every rejection raises :class:`PolicyInvalid`, whose ``message`` is ECR's exact text
(``Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy
provided'``, §3.15 / §3.25) and whose ``detail`` says which rule failed (the reference documents
no detail on the wire, so none is sent).

The package, from the bottom up:

* :mod:`.document` — the typed, frozen document (:class:`PolicyDocument` and its parts) and
  :class:`PolicyInvalid`.
* :mod:`.patterns` — IAM wildcard patterns, ARN patterns and policy variables.
* :mod:`.conditions` — condition operators: their table, value parsing and semantics.
* :mod:`.parsing` — :func:`parse_policy`, the grammar (its module docstring lists the decisions
  taken where §5.1 leaves room).
* :mod:`.evaluation` — :func:`evaluate` and its request and decision types.
"""

from __future__ import annotations

from moorage.auth.policy.document import (
    Condition,
    Effect,
    PolicyDocument,
    PolicyInvalid,
    PolicyKind,
    Principals,
    RegistryPolicyScope,
    SetOperator,
    Statement,
)
from moorage.auth.policy.evaluation import (
    ADMINISTRATOR_POLICY,
    AuthorizationRequest,
    Decision,
    Grant,
    evaluate,
)
from moorage.auth.policy.parsing import MAX_POLICY_LENGTH, VERSIONS, parse_policy

__all__ = [
    "ADMINISTRATOR_POLICY",
    "MAX_POLICY_LENGTH",
    "VERSIONS",
    "AuthorizationRequest",
    "Condition",
    "Decision",
    "Effect",
    "Grant",
    "PolicyDocument",
    "PolicyInvalid",
    "PolicyKind",
    "Principals",
    "RegistryPolicyScope",
    "SetOperator",
    "Statement",
    "evaluate",
    "parse_policy",
]
