"""The typed form of a validated IAM policy document (ecr-api.md §5.1), and
:class:`PolicyInvalid`, the rejection of one.

The documents are built by :func:`moorage.auth.policy.parsing.parse_policy` and read by
:func:`moorage.auth.policy.evaluation.evaluate`; all of them are frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from moorage.errors import InvalidInput

__all__ = [
    "Condition",
    "Effect",
    "PolicyDocument",
    "PolicyInvalid",
    "PolicyKind",
    "Principals",
    "RegistryPolicyScope",
    "SetOperator",
    "Statement",
]

PolicyKind = Literal["repository", "registry", "identity"]
RegistryPolicyScope = Literal["V1", "V2"]
Effect = Literal["Allow", "Deny"]
SetOperator = Literal["ForAnyValue", "ForAllValues"]


class PolicyInvalid(InvalidInput):
    """A policy document violates the grammar of ecr-api.md §5.1 (→ ``InvalidParameterException``).

    Attributes:
        message: ECR's text, ``Invalid parameter at 'PolicyText' failed to satisfy constraint:
            'Invalid <kind> policy provided'`` (§3.15, §3.25).
        kind: ``"repository"``, ``"registry"`` or ``"identity"``.
        detail: which rule failed, for logs and tests (not part of the ECR message).
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(
            f"Invalid parameter at 'PolicyText' failed to satisfy constraint: "
            f"'Invalid {kind} policy provided'"
        )
        self.kind = kind
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message} ({self.detail})"


@dataclass(frozen=True)
class Principals:
    """A ``Principal`` or ``NotPrincipal`` value.

    Attributes:
        wildcard: ``"*"`` or ``{"AWS": "*"}`` — every principal.
        aws: account ids and IAM/STS ARNs, as written.
        service: service principals (``lambda.amazonaws.com``).
        federated: federated providers (never match a moorage principal).
    """

    wildcard: bool = False
    aws: tuple[str, ...] = ()
    service: tuple[str, ...] = ()
    federated: tuple[str, ...] = ()


@dataclass(frozen=True)
class Condition:
    """One ``Operator: {Key: values}`` entry of a ``Condition`` block.

    Attributes:
        operator: as written (``ForAnyValue:StringLikeIfExists``).
        base: the operator without prefix/suffix (``StringLike``).
        set_operator: ``ForAnyValue``, ``ForAllValues`` or None.
        if_exists: the ``IfExists`` suffix was given.
        key: the condition key as written (matched case-insensitively).
        values: the values as strings (JSON booleans → ``true``/``false``, numbers → ``str``).
    """

    operator: str
    base: str
    set_operator: SetOperator | None
    if_exists: bool
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Statement:
    """One statement. Exactly one of ``action``/``not_action`` is set; at most one of
    ``resource``/``not_resource`` (neither: the resource the policy is attached to); in resource
    policies exactly one of ``principal``/``not_principal``, in identity policies neither."""

    effect: Effect
    sid: str | None = None
    principal: Principals | None = None
    not_principal: Principals | None = None
    action: tuple[str, ...] | None = None
    not_action: tuple[str, ...] | None = None
    resource: tuple[str, ...] | None = None
    not_resource: tuple[str, ...] | None = None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class PolicyDocument:
    """A validated policy document (ecr-api.md §5.1)."""

    kind: PolicyKind
    version: str
    statements: tuple[Statement, ...]
    id: str | None = None
