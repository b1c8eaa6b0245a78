"""The pure policy evaluator (ecr-api.md §5.2): :func:`evaluate` decides an
:class:`AuthorizationRequest` from the caller's identity policies and the repository and registry
policies, and answers a :class:`Decision`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Literal

from moorage.auth.policy.conditions import condition_holds
from moorage.auth.policy.document import Effect, PolicyDocument, Principals, Statement
from moorage.auth.policy.parsing import parse_policy
from moorage.auth.policy.patterns import action_matches, arn_matches

__all__ = ["ADMINISTRATOR_POLICY", "AuthorizationRequest", "Decision", "Grant", "evaluate"]


@dataclass(frozen=True)
class AuthorizationRequest:
    """One authorization question (ecr-api.md §5.2).

    Attributes:
        principal_arn: the caller (``arn:aws:iam::<acct>:user/<name>``, a role, an assumed-role
            session, or ``arn:aws:iam::<acct>:root``).
        principal_account: the caller's 12-digit account.
        action: ``ecr:<Action>`` (from :mod:`moorage.auth.actions`).
        resource_arn: the repository ARN, or ``*`` for registry-scoped actions.
        resource_account: the account owning the resource (the registry id).
        context: condition keys → value or list of values (``aws:SourceIp``,
            ``aws:SecureTransport``, ``aws:CurrentTime``, ``aws:ResourceTag/<k>``...); keys are
            case-insensitive. ``aws:PrincipalArn``, ``aws:PrincipalAccount``,
            ``aws:ResourceAccount``, ``aws:username`` (users), ``aws:PrincipalIsAWSService`` and
            ``aws:PrincipalServiceName`` are derived from the other fields unless given here.
        is_admin: the principal is an administrator — it holds
            :data:`ADMINISTRATOR_POLICY` (Allow ``ecr:*`` on ``*``) in addition to
            ``identity_policies``. Explicit denies still apply.
        service_principal: set when an AWS service principal (``lambda.amazonaws.com``) calls;
            it is authorised by resource policies alone.
    """

    principal_arn: str
    principal_account: str
    action: str
    resource_arn: str
    resource_account: str
    context: Mapping[str, Any] = field(default_factory=dict, hash=False)
    is_admin: bool = False
    service_principal: str | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome: ``allowed``, and ``reason`` — for a denial the AWS ``AccessDeniedException``
    message (ecr-api.md §1.3): ``User: <arn> is not authorized to perform: ecr:<Action> on
    resource: <arn> because no resource-based policy allows the ecr:<Action> action`` (or
    ``... because no identity-based policy allows ...``, ``... with an explicit deny in a
    resource-based policy``, ``... with an explicit deny in an identity-based policy``)."""

    allowed: bool
    reason: str


ADMINISTRATOR_POLICY = parse_policy(
    '{"Version":"2012-10-17","Statement":[{"Sid":"Administrator","Effect":"Allow",'
    '"Action":"ecr:*","Resource":"*"}]}',
    kind="identity",
)
"""The identity policy an ``is_admin`` principal holds: Allow ``ecr:*`` on ``*``."""

_ROOT = re.compile(r"arn:aws(?:-[a-z]+)*:iam::(\d{12}):root")
_ASSUMED_ROLE = re.compile(r"arn:(aws(?:-[a-z]+)*):sts::(\d{12}):assumed-role/([^/]+)/.+")
_ROLE = re.compile(r"arn:aws(?:-[a-z]+)*:iam::(\d{12}):role/(?:.*/)?([^/]+)")
_USER = re.compile(r"arn:aws(?:-[a-z]+)*:iam::\d{12}:user/(?:.*/)?([^/]+)")

Grant = Literal["direct", "account"]


def _context_values(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        result: list[str] = []
        for item in value:
            result.extend(_context_values(item) or ())
        return tuple(result)
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return (moment.isoformat(),)
    if isinstance(value, date):
        return (value.isoformat(),)
    return (str(value),)


def _request_context(request: AuthorizationRequest) -> dict[str, tuple[str, ...]]:
    """Lower-cased condition keys → values: derived keys, then the caller's context."""
    context: dict[str, tuple[str, ...]] = {}
    if request.principal_arn:
        principal_arn = request.principal_arn
        session = _ASSUMED_ROLE.fullmatch(principal_arn)
        if session:
            partition, account, role = session.groups()
            principal_arn = f"arn:{partition}:iam::{account}:role/{role}"
        context["aws:principalarn"] = (principal_arn,)
    if request.principal_account:
        context["aws:principalaccount"] = (request.principal_account,)
    user = _USER.fullmatch(request.principal_arn or "")
    if user:
        context["aws:username"] = (user.group(1),)
    context["aws:principalisawsservice"] = ("true" if request.service_principal else "false",)
    if request.service_principal:
        context["aws:principalservicename"] = (request.service_principal,)
    if request.resource_account:
        context["aws:resourceaccount"] = (request.resource_account,)
    for key, value in request.context.items():
        values = _context_values(value)
        if values is None:
            context.pop(key.lower(), None)
        else:
            context[key.lower()] = values
    for key in list(context):
        for one, other in (("aws:resourcetag/", "ecr:resourcetag/"),
                           ("ecr:resourcetag/", "aws:resourcetag/")):
            if key.startswith(one):
                context.setdefault(other + key[len(one):], context[key])
    return context


def _principal_grant(
    principals: Principals, request: AuthorizationRequest, context: Mapping[str, tuple[str, ...]]
) -> Grant | None:
    """How ``principals`` covers the caller: ``direct`` (named, or ``*``), ``account`` (its
    account is named: delegation to the account's identity policies, §5.1), or None."""
    if principals.wildcard:
        return "direct"
    if request.service_principal:
        wanted = request.service_principal.lower()
        return "direct" if any(item.lower() == wanted for item in principals.service) else None
    arns = {request.principal_arn, *context.get("aws:principalarn", ())}
    session = _ASSUMED_ROLE.fullmatch(request.principal_arn)
    root = _ROOT.fullmatch(request.principal_arn)
    grant: Grant | None = None
    for entry in principals.aws:
        entry_root = _ROOT.fullmatch(entry)
        account = entry if entry.isdigit() else (entry_root.group(1) if entry_root else None)
        if account is not None:
            if account == request.principal_account:
                if root and root.group(1) == account:
                    return "direct"
                grant = "account"
            continue
        if entry in arns:
            return "direct"
        role = _ROLE.fullmatch(entry)
        if session and role and role.groups() == session.groups()[1:]:
            return "direct"
    return grant


def _statement_grant(
    statement: Statement,
    request: AuthorizationRequest,
    context: Mapping[str, tuple[str, ...]],
    variables: bool,
    *,
    resource_policy: bool,
) -> Grant | None:
    """Whether ``statement`` applies to ``request``; for resource policies, how the principal
    is covered (see :func:`_principal_grant`)."""
    action = request.action
    if statement.action is not None:
        if not any(action_matches(pattern, action) for pattern in statement.action):
            return None
    elif statement.not_action is not None:
        if any(action_matches(pattern, action) for pattern in statement.not_action):
            return None
    resource = request.resource_arn
    if statement.resource is not None:
        if not any(arn_matches(p, resource, context, variables) for p in statement.resource):
            return None
    elif statement.not_resource is not None:
        if any(arn_matches(p, resource, context, variables) for p in statement.not_resource):
            return None
    grant: Grant = "direct"
    if resource_policy:
        if statement.principal is not None:
            found = _principal_grant(statement.principal, request, context)
            if found is None:
                return None
            grant = found
        elif statement.not_principal is not None:
            if _principal_grant(statement.not_principal, request, context) is not None:
                return None
    if not all(condition_holds(c, context, variables) for c in statement.conditions):
        return None
    return grant


def _grants(
    documents: Sequence[PolicyDocument],
    effect: Effect,
    request: AuthorizationRequest,
    context: Mapping[str, tuple[str, ...]],
    *,
    resource_policy: bool,
) -> set[Grant]:
    found: set[Grant] = set()
    for document in documents:
        variables = document.version == "2012-10-17"
        for statement in document.statements:
            if statement.effect != effect:
                continue
            grant = _statement_grant(
                statement, request, context, variables, resource_policy=resource_policy
            )
            if grant is not None:
                found.add(grant)
    return found


def evaluate(
    request: AuthorizationRequest,
    identity_policies: Sequence[PolicyDocument],
    resource_policy: PolicyDocument | None,
    registry_policy: PolicyDocument | None = None,
) -> Decision:
    """Decide ``request`` from the caller's identity policies and the resource policies
    (ecr-api.md §5.2). Pure: no I/O, no clock (pass ``aws:CurrentTime`` in the context).

    1. Any matching ``Deny`` (identity, repository or registry policy) → denied.
    2. Resource policies (``resource_policy``, the repository's; ``registry_policy``) take part
       only when ``resource_arn`` is not ``*``: registry-scoped actions such as
       ``ecr:GetAuthorizationToken`` are decided by identity policies alone (§5.2 steps 5–6).
       A statement without ``Resource`` applies to the resource the policy is attached to.
    3. A resource-policy ``Allow`` naming the caller (its ARN, its role for an assumed-role
       session, or ``*``) grants *directly*; naming only the caller's account delegates to that
       account's identity policies (§5.1) and grants nothing by itself.
    4. Same account (``principal_account == resource_account``): allowed when an identity
       policy allows or a resource policy allows directly (§5.2 step 3).
    5. Cross-account: allowed only when a resource policy allows the caller (directly or via its
       account) **and** its own identity policies allow (§5.2 step 4).
    6. A service principal is allowed when a resource policy allows it directly.

    ``is_admin`` adds :data:`ADMINISTRATOR_POLICY` to the identity policies; the account root
    (``arn:aws:iam::<acct>:root`` with ``principal_account == <acct>``) is treated likewise.

    Args:
        request: the question.
        identity_policies: the caller's identity policies (kind ``identity``).
        resource_policy: the repository policy of the repository in ``resource_arn``, if any.
        registry_policy: the registry policy of ``resource_account``, if any.

    Returns:
        :class:`Decision`; a denial's ``reason`` is the ``AccessDeniedException`` message.
    """
    context = _request_context(request)
    identity = list(identity_policies)
    root = _ROOT.fullmatch(request.principal_arn or "")
    if request.is_admin or (root and root.group(1) == request.principal_account):
        identity.append(ADMINISTRATOR_POLICY)
    resources = [
        document
        for document in (resource_policy, registry_policy)
        if document is not None and request.resource_arn != "*"
    ]

    if _grants(identity, "Deny", request, context, resource_policy=False):
        return _denied(request, "with an explicit deny in an identity-based policy")
    if _grants(resources, "Deny", request, context, resource_policy=True):
        return _denied(request, "with an explicit deny in a resource-based policy")

    identity_allows = (
        not request.service_principal
        and bool(_grants(identity, "Allow", request, context, resource_policy=False))
    )
    resource_grants = _grants(resources, "Allow", request, context, resource_policy=True)
    no_identity = f"because no identity-based policy allows the {request.action} action"
    no_resource = f"because no resource-based policy allows the {request.action} action"

    if request.service_principal:
        if "direct" in resource_grants:
            return Decision(True, "allowed by a resource-based policy")
        return _denied(request, no_resource)
    if request.principal_account == request.resource_account:
        if identity_allows:
            return Decision(True, "allowed by an identity-based policy")
        if "direct" in resource_grants:
            return Decision(True, "allowed by a resource-based policy")
        return _denied(request, no_identity)
    if not resource_grants:
        return _denied(request, no_resource)
    if not identity_allows:
        return _denied(request, no_identity)
    return Decision(True, "allowed by a resource-based policy and an identity-based policy")


def _denied(request: AuthorizationRequest, why: str) -> Decision:
    who = request.principal_arn or request.service_principal or "anonymous"
    return Decision(
        False,
        f"User: {who} is not authorized to perform: {request.action} on resource: "
        f"{request.resource_arn} {why}",
    )
