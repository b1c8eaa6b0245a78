"""Parsing and validating IAM policy documents: :func:`parse_policy` (ecr-api.md §5.1).

Grammar decisions where §5.1 leaves room (all stricter rejections are [unverified] against ECR):

* Text longer than 10,240 characters, not JSON, not a JSON object, duplicate object keys,
  ``NaN``/``Infinity``, unknown top-level or statement elements → rejected.
* ``Version`` is required (repository/registry) and must be ``2012-10-17`` or ``2008-10-17``.
  Policy variables (``${aws:username}``) are expanded only under ``2012-10-17``, as in IAM.
* ``Statement`` is one object or a non-empty list of objects; ``Sid`` any string, not unique.
* ``Effect`` exactly ``Allow`` or ``Deny``. Exactly one of ``Action``/``NotAction``; at most one of
  ``Resource``/``NotResource``; resource policies exactly one of ``Principal``/``NotPrincipal``.
* Element values are a string or a non-empty list of strings.
* Actions: ``*`` or ``<service>:<name>`` with ``*``/``?`` wildcards; for ``ecr:`` (prefix
  case-insensitive) an exact name must be a known ECR action
  (:data:`moorage.auth.actions.KNOWN_ACTIONS`, case-insensitive) and a wildcard must match at
  least one. Repository policies accept every ECR action (registry-scoped ones such as
  ``ecr:GetAuthorizationToken`` are accepted but never granted by a resource policy, §5.2 step 5).
  Registry V1 policies: every action pattern must match only V1 actions, and ``NotAction`` is
  rejected (it would grant everything else).
* Principals: ``"*"``, or an object with ``AWS`` (``*``, 12-digit account id, ``arn:…:iam::<acct>:
  root|user/…|role/…|federated-user/…``, ``arn:…:sts::<acct>:assumed-role/<role>/<session>``),
  ``Service`` (``lambda.amazonaws.com``) and/or ``Federated`` (any non-empty string). Partial
  wildcards in principals are rejected, as in IAM; match principals by pattern with
  ``ArnLike`` on ``aws:PrincipalArn``. ``{"AWS": "*"}`` means ``"*"``. ``CanonicalUser`` is
  rejected.
* Resources: ``*`` or a six-part ARN (wildcards allowed in every part); resource policies only
  ECR ARNs (the service part must match ``ecr``).
* Condition: ``{Operator: {Key: Value | [Value, ...]}}``; ``Condition: {}`` is accepted, an empty
  operator block or value list is not. Operators: ``String{Equals,NotEquals,EqualsIgnoreCase,
  NotEqualsIgnoreCase,Like,NotLike}``, ``Numeric{Equals,NotEquals,LessThan,LessThanEquals,
  GreaterThan,GreaterThanEquals}``, ``Date…`` (same six), ``Bool``, ``BinaryEquals``,
  ``IpAddress``, ``NotIpAddress``, ``Arn{Equals,Like,NotEquals,NotLike}``, ``Null``; each (but
  ``Null``) with an optional ``IfExists`` suffix and ``ForAnyValue:``/``ForAllValues:`` prefix.
  Unknown operators are rejected. Keys must be ``<service>:<name>`` (matched case-insensitively);
  values JSON strings, numbers or booleans, checked per operator (numbers, ISO 8601 or epoch
  dates, ``true``/``false``, IP/CIDR, base64).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from moorage.auth.actions import KNOWN_ACTIONS, REGISTRY_POLICY_V1_ACTIONS
from moorage.auth.policy.conditions import (
    OPERATORS,
    as_network,
    as_number,
    as_timestamp,
    parse_operator,
)
from moorage.auth.policy.document import (
    Condition,
    PolicyDocument,
    PolicyInvalid,
    PolicyKind,
    Principals,
    RegistryPolicyScope,
    Statement,
)
from moorage.auth.policy.patterns import action_matches, arn_segments, glob_regex

__all__ = ["MAX_POLICY_LENGTH", "VERSIONS", "parse_policy"]

MAX_POLICY_LENGTH = 10240
"""``policyText`` max length in characters, repository and registry policies (model, §5.1)."""

VERSIONS = ("2012-10-17", "2008-10-17")

_TOP_LEVEL = frozenset({"Version", "Id", "Statement"})
_STATEMENT_ELEMENTS = frozenset({
    "Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
    "NotResource", "Condition",
})
_PRINCIPAL_TYPES = ("AWS", "Service", "Federated")
_NAME = r"[\w+=,.@-]+"
_AWS_PRINCIPAL = re.compile(
    r"\d{12}"
    rf"|arn:aws(?:-[a-z]+)*:iam::\d{{12}}:(?:root|(?:user|role)/(?:{_NAME}/)*{_NAME}"
    rf"|federated-user/{_NAME})"
    rf"|arn:aws(?:-[a-z]+)*:sts::\d{{12}}:(?:assumed-role/{_NAME}/{_NAME}|federated-user/{_NAME})",
    re.ASCII,
)
_SERVICE_PRINCIPAL = re.compile(r"[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)+", re.ASCII)
_ACTION = re.compile(r"([A-Za-z0-9-]+):([A-Za-z0-9*?]+)", re.ASCII)
_CONDITION_KEY = re.compile(r"[A-Za-z0-9-]+:[^\x00-\x1f]+", re.ASCII)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_policy(
    text: str,
    *,
    kind: PolicyKind,
    registry_policy_scope: RegistryPolicyScope = "V1",
) -> PolicyDocument:
    """Parse and validate a policy document (ecr-api.md §5.1; grammar decisions in the module
    docstring).

    Args:
        text: the ``policyText`` as received (≤ :data:`MAX_POLICY_LENGTH` characters).
        kind: ``"repository"`` (SetRepositoryPolicy), ``"registry"`` (PutRegistryPolicy) or
            ``"identity"`` (a principal's policy from moorage configuration).
        registry_policy_scope: the ``REGISTRY_POLICY_SCOPE`` account setting (§3.25, §3.26);
            only used for ``kind="registry"``.

    Returns:
        The typed, frozen :class:`PolicyDocument`.

    Raises:
        PolicyInvalid: any violation (→ ``InvalidParameterException``). Nothing else, for any
            input.
    """
    if kind not in ("repository", "registry", "identity"):
        raise ValueError(f"unknown policy kind {kind!r}")
    if not isinstance(text, str):
        raise PolicyInvalid(kind, "the policy text is not a string")
    if len(text) > MAX_POLICY_LENGTH:
        raise PolicyInvalid(kind, f"the policy is longer than {MAX_POLICY_LENGTH} characters")
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise PolicyInvalid(kind, f"the policy is not valid JSON: {error}") from None
    return _Parser(kind, registry_policy_scope).document(raw)


class _Parser:
    def __init__(self, kind: PolicyKind, scope: RegistryPolicyScope) -> None:
        self.kind = kind
        self.scope = scope

    def fail(self, detail: str) -> PolicyInvalid:
        return PolicyInvalid(self.kind, detail)

    def document(self, raw: Any) -> PolicyDocument:
        if not isinstance(raw, dict):
            raise self.fail("the policy is not a JSON object")
        for name in raw:
            if name not in _TOP_LEVEL:
                raise self.fail(f"unknown top-level element {name!r}")
        if "Version" in raw:
            version = raw["Version"]
        elif self.kind == "identity":
            version = "2008-10-17"
        else:
            raise self.fail("missing Version")
        if not isinstance(version, str) or version not in VERSIONS:
            raise self.fail(f"Version must be one of {', '.join(VERSIONS)}")
        policy_id = raw.get("Id")
        if "Id" in raw and not isinstance(policy_id, str):
            raise self.fail("Id must be a string")
        if "Statement" not in raw:
            raise self.fail("missing Statement")
        statements = raw["Statement"]
        if isinstance(statements, dict):
            statements = [statements]
        if not isinstance(statements, list) or not statements:
            raise self.fail("Statement must be an object or a non-empty list of objects")
        parsed = tuple(self.statement(item, index) for index, item in enumerate(statements))
        return PolicyDocument(self.kind, version, parsed, policy_id)

    def statement(self, raw: Any, index: int) -> Statement:
        where = f"Statement[{index}]"
        if not isinstance(raw, dict):
            raise self.fail(f"{where} is not an object")
        for name in raw:
            if name not in _STATEMENT_ELEMENTS:
                raise self.fail(f"{where}: unknown element {name!r}")
        sid = raw.get("Sid")
        if "Sid" in raw and not isinstance(sid, str):
            raise self.fail(f"{where}: Sid must be a string")
        effect = raw.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise self.fail(f"{where}: Effect must be Allow or Deny")
        where = f"Statement[{index}]" + (f" ({sid})" if sid else "")

        principal = not_principal = None
        if self.kind == "identity":
            if "Principal" in raw or "NotPrincipal" in raw:
                raise self.fail(f"{where}: an identity policy cannot name a Principal")
        else:
            name = self.exactly_one(raw, "Principal", "NotPrincipal", where)
            value = self.principals(raw[name], f"{where}: {name}")
            principal, not_principal = (value, None) if name == "Principal" else (None, value)

        name = self.exactly_one(raw, "Action", "NotAction", where)
        patterns = self.actions(raw[name], f"{where}: {name}", negated=name == "NotAction")
        action, not_action = (patterns, None) if name == "Action" else (None, patterns)

        resource = not_resource = None
        if "Resource" in raw and "NotResource" in raw:
            raise self.fail(f"{where}: both Resource and NotResource")
        if "Resource" in raw or "NotResource" in raw:
            name = "Resource" if "Resource" in raw else "NotResource"
            values = self.resources(raw[name], f"{where}: {name}")
            resource, not_resource = (values, None) if name == "Resource" else (None, values)
        elif self.kind == "identity":
            raise self.fail(f"{where}: an identity policy needs Resource or NotResource")

        conditions: tuple[Condition, ...] = ()
        if "Condition" in raw:
            conditions = self.conditions(raw["Condition"], f"{where}: Condition")
        return Statement(
            effect, sid, principal, not_principal, action, not_action, resource, not_resource,
            conditions,
        )

    def exactly_one(self, raw: dict[str, Any], first: str, second: str, where: str) -> str:
        if first in raw and second in raw:
            raise self.fail(f"{where}: both {first} and {second}")
        if first not in raw and second not in raw:
            raise self.fail(f"{where}: missing {first} or {second}")
        return first if first in raw else second

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise self.fail(f"{where} must be a string or a non-empty list of strings")

    def principals(self, value: Any, where: str) -> Principals:
        if value == "*":
            return Principals(wildcard=True)
        if not isinstance(value, dict) or not value:
            raise self.fail(f'{where} must be "*" or an object of principal types')
        wildcard = False
        found: dict[str, tuple[str, ...]] = {}
        for principal_type, entries in value.items():
            if principal_type not in _PRINCIPAL_TYPES:
                raise self.fail(f"{where}: unsupported principal type {principal_type!r}")
            items = self.strings(entries, f"{where}.{principal_type}")
            for item in items:
                if principal_type == "AWS" and item == "*":
                    wildcard = True
                elif principal_type == "AWS" and not _AWS_PRINCIPAL.fullmatch(item):
                    raise self.fail(f"{where}: invalid AWS principal {item!r}")
                elif principal_type == "Service" and not _SERVICE_PRINCIPAL.fullmatch(item):
                    raise self.fail(f"{where}: invalid service principal {item!r}")
                elif principal_type == "Federated" and not item.strip():
                    raise self.fail(f"{where}: empty federated principal")
            found[principal_type] = tuple(item for item in items if item != "*")
        return Principals(
            wildcard, found.get("AWS", ()), found.get("Service", ()), found.get("Federated", ()),
        )

    def actions(self, value: Any, where: str, *, negated: bool) -> tuple[str, ...]:
        patterns = self.strings(value, where)
        v1 = self.kind == "registry" and self.scope == "V1"
        if v1 and negated:
            raise self.fail(f"{where}: a V1 registry policy cannot use NotAction")
        for pattern in patterns:
            if pattern == "*":
                matched = set(KNOWN_ACTIONS)
            else:
                match = _ACTION.fullmatch(pattern)
                if match is None:
                    raise self.fail(f"{where}: invalid action {pattern!r}")
                if match.group(1).lower() != "ecr":
                    if self.kind != "identity":
                        raise self.fail(f"{where}: {pattern!r} is not an ECR action")
                    continue
                matched = {known for known in KNOWN_ACTIONS if action_matches(pattern, known)}
                if not matched:
                    raise self.fail(f"{where}: {pattern!r} matches no ECR action")
            if v1 and not matched <= REGISTRY_POLICY_V1_ACTIONS:
                raise self.fail(
                    f"{where}: {pattern!r} is not allowed in a registry policy (scope V1 allows "
                    f"{', '.join(sorted(REGISTRY_POLICY_V1_ACTIONS))})"
                )
        return patterns

    def resources(self, value: Any, where: str) -> tuple[str, ...]:
        patterns = self.strings(value, where)
        for pattern in patterns:
            if pattern == "*":
                continue
            segments = arn_segments(pattern)
            if len(segments) < 6 or segments[0] != "arn":
                raise self.fail(f"{where}: {pattern!r} is neither * nor an ARN")
            if self.kind != "identity" and not glob_regex(segments[2], True).fullmatch("ecr"):
                raise self.fail(f"{where}: {pattern!r} is not an ECR resource")
        return patterns

    def conditions(self, value: Any, where: str) -> tuple[Condition, ...]:
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be an object")
        result: list[Condition] = []
        for operator, block in value.items():
            parsed = parse_operator(operator)
            if parsed is None:
                raise self.fail(f"{where}: unknown condition operator {operator!r}")
            base, set_operator, if_exists = parsed
            if not isinstance(block, dict) or not block:
                raise self.fail(f"{where}: {operator} must be a non-empty object of keys")
            for key, raw_values in block.items():
                if not _CONDITION_KEY.fullmatch(key):
                    raise self.fail(f"{where}: invalid condition key {key!r}")
                values = self.condition_values(raw_values, f"{where}: {operator}.{key}")
                for item in values:
                    self.check_condition_value(base, item, f"{where}: {operator}.{key}")
                result.append(Condition(operator, base, set_operator, if_exists, key, values))
        return tuple(result)

    def condition_values(self, value: Any, where: str) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.fail(f"{where}: empty value list")
        result = []
        for item in items:
            if isinstance(item, bool):
                result.append("true" if item else "false")
            elif isinstance(item, (int, float, str)):
                result.append(str(item))
            else:
                raise self.fail(f"{where}: values must be strings, numbers or booleans")
        return tuple(result)

    def check_condition_value(self, base: str, value: str, where: str) -> None:
        positive = OPERATORS[base][0]
        if positive.startswith("Numeric"):
            ok = as_number(value) is not None
        elif positive.startswith("Date"):
            ok = as_timestamp(value) is not None
        elif positive in ("Bool", "Null"):
            ok = value.lower() in ("true", "false")
        elif positive == "IpAddress":
            ok = as_network(value) is not None
        elif positive == "BinaryEquals":
            try:
                base64.b64decode(value, validate=True)
                ok = True
            except (binascii.Error, ValueError):
                ok = False
        else:
            ok = True
        if not ok:
            raise self.fail(f"{where}: {value!r} is not a valid {base} value")
