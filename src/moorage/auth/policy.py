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
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal

from moorage.auth.actions import KNOWN_ACTIONS, REGISTRY_POLICY_V1_ACTIONS
from moorage.errors import InvalidInput

PolicyKind = Literal["repository", "registry", "identity"]
RegistryPolicyScope = Literal["V1", "V2"]
Effect = Literal["Allow", "Deny"]
SetOperator = Literal["ForAnyValue", "ForAllValues"]

MAX_POLICY_LENGTH = 10240
"""``policyText`` max length in characters, repository and registry policies (model, §5.1)."""

VERSIONS = ("2012-10-17", "2008-10-17")

__all__ = [
    "ADMINISTRATOR_POLICY",
    "MAX_POLICY_LENGTH",
    "VERSIONS",
    "AuthorizationRequest",
    "Condition",
    "Decision",
    "PolicyDocument",
    "PolicyInvalid",
    "PolicyKind",
    "Principals",
    "RegistryPolicyScope",
    "Statement",
    "evaluate",
    "parse_policy",
]


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


# -- the typed document ---------------------------------------------------------------------


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


# -- parsing --------------------------------------------------------------------------------

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

# base operator → (positive operator it negates or is, negated)
_OPERATORS: dict[str, tuple[str, bool]] = {
    "StringEquals": ("StringEquals", False),
    "StringNotEquals": ("StringEquals", True),
    "StringEqualsIgnoreCase": ("StringEqualsIgnoreCase", False),
    "StringNotEqualsIgnoreCase": ("StringEqualsIgnoreCase", True),
    "StringLike": ("StringLike", False),
    "StringNotLike": ("StringLike", True),
    "NumericEquals": ("NumericEquals", False),
    "NumericNotEquals": ("NumericEquals", True),
    "NumericLessThan": ("NumericLessThan", False),
    "NumericLessThanEquals": ("NumericLessThanEquals", False),
    "NumericGreaterThan": ("NumericGreaterThan", False),
    "NumericGreaterThanEquals": ("NumericGreaterThanEquals", False),
    "DateEquals": ("DateEquals", False),
    "DateNotEquals": ("DateEquals", True),
    "DateLessThan": ("DateLessThan", False),
    "DateLessThanEquals": ("DateLessThanEquals", False),
    "DateGreaterThan": ("DateGreaterThan", False),
    "DateGreaterThanEquals": ("DateGreaterThanEquals", False),
    "Bool": ("Bool", False),
    "BinaryEquals": ("BinaryEquals", False),
    "IpAddress": ("IpAddress", False),
    "NotIpAddress": ("IpAddress", True),
    "ArnEquals": ("ArnEquals", False),
    "ArnLike": ("ArnLike", False),
    "ArnNotEquals": ("ArnEquals", True),
    "ArnNotLike": ("ArnLike", True),
    "Null": ("Null", False),
}


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
                matched = {known for known in KNOWN_ACTIONS if _action_matches(pattern, known)}
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
            segments = _arn_segments(pattern)
            if len(segments) < 6 or segments[0] != "arn":
                raise self.fail(f"{where}: {pattern!r} is neither * nor an ARN")
            if self.kind != "identity" and not _glob_regex(segments[2], True).fullmatch("ecr"):
                raise self.fail(f"{where}: {pattern!r} is not an ECR resource")
        return patterns

    def conditions(self, value: Any, where: str) -> tuple[Condition, ...]:
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be an object")
        result: list[Condition] = []
        for operator, block in value.items():
            parsed = _parse_operator(operator)
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
        positive = _OPERATORS[base][0]
        if positive.startswith("Numeric"):
            ok = _number(value) is not None
        elif positive.startswith("Date"):
            ok = _timestamp(value) is not None
        elif positive in ("Bool", "Null"):
            ok = value.lower() in ("true", "false")
        elif positive == "IpAddress":
            ok = _network(value) is not None
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


def _parse_operator(operator: str) -> tuple[str, SetOperator | None, bool] | None:
    """``ForAnyValue:StringLikeIfExists`` → (``StringLikeIfExists`` base ``StringLike``,
    set operator, if-exists); None when unknown."""
    set_operator: SetOperator | None = None
    rest = operator
    if rest.startswith("ForAnyValue:"):
        set_operator, rest = "ForAnyValue", rest[len("ForAnyValue:"):]
    elif rest.startswith("ForAllValues:"):
        set_operator, rest = "ForAllValues", rest[len("ForAllValues:"):]
    if_exists = rest.endswith("IfExists")
    if if_exists:
        rest = rest[: -len("IfExists")]
    if rest not in _OPERATORS:
        return None
    if rest == "Null" and (if_exists or set_operator):
        return None
    return rest, set_operator, if_exists


# -- patterns: IAM globs, ARNs, policy variables ---------------------------------------------

_Token = tuple[str, str]  # ("lit", char) | ("star", "") | ("one", "") | ("var", name)


def _tokens(pattern: str, variables: bool) -> list[_Token]:
    """Split a pattern into literal characters, ``*``, ``?`` and (when ``variables``)
    ``${name}`` references."""
    tokens: list[_Token] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if variables and pattern.startswith("${", index):
            end = pattern.find("}", index + 2)
            if end != -1:
                tokens.append(("var", pattern[index + 2 : end]))
                index = end + 1
                continue
        if char == "*":
            tokens.append(("star", ""))
        elif char == "?":
            tokens.append(("one", ""))
        else:
            tokens.append(("lit", char))
        index += 1
    return tokens


def _arn_segments(pattern: str) -> list[str]:
    """The colon-separated parts of an ARN pattern (at most six; the last keeps its colons),
    ignoring colons inside ``${...}``."""
    segments = [""]
    depth = 0
    for index, char in enumerate(pattern):
        if pattern.startswith("${", index):
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        if char == ":" and not depth and len(segments) < 6:
            segments.append("")
        else:
            segments[-1] += char
    return segments


_SPECIAL_VARIABLES = {"*": "*", "?": "?", "$": "$"}


def _compile(
    pattern: str,
    *,
    ignore_case: bool,
    arn: bool,
    context: Mapping[str, tuple[str, ...]] | None,
) -> re.Pattern[str] | None:
    """Regex for an IAM pattern: ``*`` any run, ``?`` one character; with ``arn`` and a six-part
    pattern, wildcards in the first five parts do not cross ``:``. With ``context``, ``${key}``
    is replaced by the key's single value (literal); None when a variable has no single value."""
    tokens = _tokens(pattern, context is not None)
    segmented = arn and sum(1 for kind, value in tokens if kind == "lit" and value == ":") >= 5
    parts: list[str] = []
    segment = 0
    for kind, value in tokens:
        in_prefix = segmented and segment < 5
        if kind == "lit":
            parts.append(re.escape(value))
            if value == ":":
                segment += 1
        elif kind == "star":
            parts.append("[^:]*" if in_prefix else ".*")
        elif kind == "one":
            parts.append("[^:]" if in_prefix else ".")
        else:
            assert context is not None
            if value in _SPECIAL_VARIABLES:
                parts.append(re.escape(_SPECIAL_VARIABLES[value]))
                continue
            found = context.get(value.strip().lower())
            if not found or len(found) != 1:
                return None
            parts.append(re.escape(found[0]))
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(parts), flags)


@lru_cache(maxsize=4096)
def _glob_regex(pattern: str, ignore_case: bool, arn: bool = False) -> re.Pattern[str]:
    compiled = _compile(pattern, ignore_case=ignore_case, arn=arn, context=None)
    assert compiled is not None
    return compiled


def _action_matches(pattern: str, action: str) -> bool:
    """IAM action match: glob, case-insensitive (§5.1)."""
    return pattern == "*" or _glob_regex(pattern, True).fullmatch(action) is not None


def _arn_matches(
    pattern: str, arn: str, context: Mapping[str, tuple[str, ...]], variables: bool
) -> bool:
    """ARN match (Resource, ``ArnLike``): glob per ARN part, case-sensitive."""
    if pattern == "*":
        return True
    if variables and "${" in pattern:
        compiled = _compile(pattern, ignore_case=False, arn=True, context=context)
    else:
        compiled = _glob_regex(pattern, False, True)
    return compiled is not None and compiled.fullmatch(arn) is not None


def _substitute(value: str, context: Mapping[str, tuple[str, ...]], variables: bool) -> str | None:
    """``value`` with ``${key}`` replaced (2012-10-17 only); None when a key has no single value."""
    if not variables or "${" not in value:
        return value
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        if name in _SPECIAL_VARIABLES:
            return _SPECIAL_VARIABLES[name]
        found = context.get(name.strip().lower())
        if not found or len(found) != 1:
            missing = True
            return ""
        return found[0]

    result = re.sub(r"\$\{([^}]*)\}", replace, value)
    return None if missing else result


def _number(value: str) -> Decimal | None:
    try:
        number = Decimal(value.strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _timestamp(value: str) -> float | None:
    """Epoch seconds of an ISO 8601 date/date-time (naive = UTC) or of an epoch number."""
    number = _number(value)
    if number is not None:
        return float(number)
    try:
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    except (ValueError, OverflowError):
        return None


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


# -- evaluation -----------------------------------------------------------------------------


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


def _condition_holds(
    condition: Condition, context: Mapping[str, tuple[str, ...]], variables: bool
) -> bool:
    """IAM condition semantics: values of one key are OR-ed; a missing key makes positive
    operators false and negated ones true; ``IfExists`` makes a missing key true;
    ``ForAllValues`` is true and ``ForAnyValue`` false for a missing key."""
    present = context.get(condition.key.lower())
    if condition.base == "Null":
        return any((value.lower() == "true") == (not present) for value in condition.values)
    positive, negated = _OPERATORS[condition.base]
    if not present:
        if condition.if_exists or condition.set_operator == "ForAllValues":
            return True
        if condition.set_operator == "ForAnyValue":
            return False
        return negated

    def one(item: str) -> bool:
        hit = any(_compare(positive, item, value, context, variables) for value in condition.values)
        return hit != negated

    if condition.set_operator == "ForAllValues":
        return all(one(item) for item in present)
    if condition.set_operator == "ForAnyValue" or not negated:
        return any(one(item) for item in present)
    return all(one(item) for item in present)


def _compare(
    operator: str, actual: str, expected: str, context: Mapping[str, tuple[str, ...]],
    variables: bool,
) -> bool:
    """Does the request value ``actual`` satisfy the positive ``operator`` with ``expected``?"""
    if operator in ("StringEquals", "StringEqualsIgnoreCase"):
        wanted = _substitute(expected, context, variables)
        if wanted is None:
            return False
        if operator == "StringEqualsIgnoreCase":
            return actual.casefold() == wanted.casefold()
        return actual == wanted
    if operator == "StringLike":
        if variables and "${" in expected:
            compiled = _compile(expected, ignore_case=False, arn=False, context=context)
        else:
            compiled = _glob_regex(expected, False)
        return compiled is not None and compiled.fullmatch(actual) is not None
    if operator in ("ArnEquals", "ArnLike"):
        return _arn_matches(expected, actual, context, variables)
    if operator.startswith("Numeric"):
        left, right = _number(actual), _number(expected)
        return left is not None and right is not None and _ordered(operator[7:], left, right)
    if operator.startswith("Date"):
        left_time, right_time = _timestamp(actual), _timestamp(expected)
        return (left_time is not None and right_time is not None
                and _ordered(operator[4:], left_time, right_time))
    if operator == "Bool":
        return actual.lower() == expected.lower()
    if operator == "BinaryEquals":
        return actual == expected
    if operator == "IpAddress":
        network = _network(expected)
        try:
            address = ipaddress.ip_address(actual.strip())
        except ValueError:
            return False
        return network is not None and address.version == network.version and address in network
    raise AssertionError(operator)


def _ordered(relation: str, left: Any, right: Any) -> bool:
    return {
        "Equals": left == right,
        "LessThan": left < right,
        "LessThanEquals": left <= right,
        "GreaterThan": left > right,
        "GreaterThanEquals": left >= right,
    }[relation]


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
        if not any(_action_matches(pattern, action) for pattern in statement.action):
            return None
    elif statement.not_action is not None:
        if any(_action_matches(pattern, action) for pattern in statement.not_action):
            return None
    resource = request.resource_arn
    if statement.resource is not None:
        if not any(_arn_matches(p, resource, context, variables) for p in statement.resource):
            return None
    elif statement.not_resource is not None:
        if any(_arn_matches(p, resource, context, variables) for p in statement.not_resource):
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
    if not all(_condition_holds(c, context, variables) for c in statement.conditions):
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
