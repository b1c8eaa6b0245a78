"""IAM condition operators (ecr-api.md §5.1): the operator table, operator names with their
``ForAnyValue:``/``ForAllValues:`` prefix and ``IfExists`` suffix, the typed reading of
condition values (numbers, dates, IP ranges), and whether a :class:`Condition` holds for a
request's context.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from moorage.auth.policy.document import Condition, SetOperator
from moorage.auth.policy.patterns import arn_matches, compile_pattern, glob_regex, substitute

__all__ = [
    "OPERATORS",
    "as_network",
    "as_number",
    "as_timestamp",
    "condition_holds",
    "parse_operator",
]

# base operator → (positive operator it negates or is, negated)
OPERATORS: dict[str, tuple[str, bool]] = {
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


def parse_operator(operator: str) -> tuple[str, SetOperator | None, bool] | None:
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
    if rest not in OPERATORS:
        return None
    if rest == "Null" and (if_exists or set_operator):
        return None
    return rest, set_operator, if_exists


def as_number(value: str) -> Decimal | None:
    """A finite decimal number (``Numeric…`` operators); None when not one."""
    try:
        number = Decimal(value.strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def as_timestamp(value: str) -> float | None:
    """Epoch seconds of an ISO 8601 date/date-time (naive = UTC) or of an epoch number."""
    number = as_number(value)
    if number is not None:
        return float(number)
    try:
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    except (ValueError, OverflowError):
        return None


def as_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An IP address or CIDR range (``IpAddress``/``NotIpAddress``); None when not one."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


def condition_holds(
    condition: Condition, context: Mapping[str, tuple[str, ...]], variables: bool
) -> bool:
    """IAM condition semantics: values of one key are OR-ed; a missing key makes positive
    operators false and negated ones true; ``IfExists`` makes a missing key true;
    ``ForAllValues`` is true and ``ForAnyValue`` false for a missing key."""
    present = context.get(condition.key.lower())
    if condition.base == "Null":
        return any((value.lower() == "true") == (not present) for value in condition.values)
    positive, negated = OPERATORS[condition.base]
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
        wanted = substitute(expected, context, variables)
        if wanted is None:
            return False
        if operator == "StringEqualsIgnoreCase":
            return actual.casefold() == wanted.casefold()
        return actual == wanted
    if operator == "StringLike":
        if variables and "${" in expected:
            compiled = compile_pattern(expected, ignore_case=False, arn=False, context=context)
        else:
            compiled = glob_regex(expected, False)
        return compiled is not None and compiled.fullmatch(actual) is not None
    if operator in ("ArnEquals", "ArnLike"):
        return arn_matches(expected, actual, context, variables)
    if operator.startswith("Numeric"):
        left, right = as_number(actual), as_number(expected)
        return left is not None and right is not None and _ordered(operator[7:], left, right)
    if operator.startswith("Date"):
        left_time, right_time = as_timestamp(actual), as_timestamp(expected)
        return (left_time is not None and right_time is not None
                and _ordered(operator[4:], left_time, right_time))
    if operator == "Bool":
        return actual.lower() == expected.lower()
    if operator == "BinaryEquals":
        return actual == expected
    if operator == "IpAddress":
        network = as_network(expected)
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
