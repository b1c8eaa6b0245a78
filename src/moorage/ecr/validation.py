"""Server-side validation of ECR request bodies against botocore's ECR service model.

An ECR request body (AWS JSON 1.1) is checked in two passes, as AWS does (deserialise, then
validate):

1. **Types** (ecr-api.md §1.2). Every modelled member must have the JSON type of its shape:
   string → JSON string, integer/long → JSON number without a fractional part, boolean →
   ``true``/``false``, timestamp → JSON number (epoch seconds), blob → standard base64 text,
   list → array, structure/map → object. A mismatch is ``SerializationException`` naming the
   member path. Blobs are decoded to ``bytes`` and timestamps converted to ``float`` here.
2. **Constraints** (ecr-api.md §1.4): required members, string/list/map/blob length
   (``min``/``max``; blobs count decoded bytes), number ranges, enums and patterns (always
   applied as a *full* match). The first violation in model member order is reported as
   ``ValidationException`` when the operation models that error, else
   ``InvalidParameterException``.

Choices made where the reference leaves room:

* Unknown members (not in the model) are **dropped** from the returned dict, without being
  looked at: the caller only ever sees modelled members.
* A JSON ``null`` structure member is treated as absent (and dropped). A ``null`` list item
  or map value is a ``SerializationException`` (ECR lists and maps are not sparse).
* A float with no fractional part (``1.0``, ``1e3``) is accepted for integer/long members and
  converted to ``int``; ``1.5``, ``NaN`` and ``Infinity`` are not. ``true``/``false`` are never
  numbers. Values outside 32-bit (integer) / 64-bit (long) range are ``SerializationException``.
* Blobs must be canonical, padded standard base64 (``base64.b64decode(..., validate=True)``).
* Values echoed in ``ValidationException`` messages are truncated to
  :data:`_MAX_ECHO` characters.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from typing import Any

import botocore.model

from moorage.ecr.exceptions import EcrError

__all__ = ["validate_input", "constraint_error_code"]

_SERIALIZATION = "SerializationException"

_INT_RANGES = {
    "integer": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}

# Model patterns swapped for an equivalent before compiling. All ECR patterns in botocore
# 1.44.8 compile with ``re``, but one backtracks exponentially in a backtracking engine:
# ``ScanningRepositoryFilterValue`` is ``^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$``; the
# optional class overlaps ``[a-z0-9*]+``, so ``"a" * 30 + "!"`` never finishes. The replacement
# accepts exactly the same language ("first char alnum-or-*, every separator followed by an
# alnum-or-*") with one way to match each string. Messages still quote the model's pattern.
_PATTERN_OVERRIDES = {
    r"^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$": r"^[a-z0-9*](?:[._\-/]?[a-z0-9*])*$",
}

_MAX_ECHO = 256


def constraint_error_code(operation: botocore.model.OperationModel) -> str:
    """The ``__type`` used for constraint violations of ``operation`` (ecr-api.md §1.4).

    Returns ``"ValidationException"`` if the operation's modelled errors include it (the newer
    operations, e.g. ``GetLifecyclePolicy``), else ``"InvalidParameterException"`` (the original
    2015 operations such as ``CreateRepository``).
    """
    names = {shape.name for shape in operation.error_shapes}
    return "ValidationException" if "ValidationException" in names else "InvalidParameterException"


def validate_input(operation: botocore.model.OperationModel, params: object) -> dict[str, Any]:
    """Validate the parsed JSON body of an ECR request against the operation's input shape.

    Args:
        operation: the botocore operation model, e.g.
            ``botocore.session.get_session().get_service_model("ecr").operation_model("PutImage")``.
        params: the result of ``json.loads`` on the request body; must be a JSON object.

    Returns:
        A new dict holding only the modelled members of ``params``: blob members decoded to
        ``bytes``, timestamp members as ``float`` epoch seconds, ``null`` and unknown members
        dropped, nested structures/lists/maps rebuilt the same way. ``params`` is not mutated.

    Raises:
        EcrError: ``SerializationException`` if ``params`` is not a dict or a member has the
            wrong JSON type (including invalid base64 for a blob); ``InvalidParameterException``
            or ``ValidationException`` (see :func:`constraint_error_code`) for the first
            constraint violation in model member order: missing required member, length,
            range, enum or pattern (full match). Nothing else is raised for any value
            ``json.loads`` can produce. Source: ecr-api.md §1.2–1.4.
    """
    if not isinstance(params, dict):
        raise EcrError(
            _SERIALIZATION,
            f"The request body must be a JSON object, got {_json_type(params)}",
        )
    shape = operation.input_shape
    if shape is None:
        return {}
    converted = _convert_structure(shape, params, "")
    _Checker(constraint_error_code(operation)).check(shape, converted, "")
    return converted


# --------------------------------------------------------------------------- pass 1: types


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type_error(path: str, expected: str, value: object) -> EcrError:
    where = f" at '{path}'" if path else ""
    return EcrError(
        _SERIALIZATION,
        f"Invalid value{where}: expected {expected}, got {_json_type(value)}",
    )


def _convert(shape: botocore.model.Shape, value: object, path: str) -> Any:
    """Check ``value`` has the JSON type of ``shape`` and return it in Python form."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise _type_error(path, "a JSON object", value)
        return _convert_structure(shape, value, path)
    if kind == "list":
        if not isinstance(value, list):
            raise _type_error(path, "a JSON array", value)
        result = []
        for index, item in enumerate(value, start=1):
            item_path = f"{path}.{index}.member"
            if item is None:
                raise _type_error(item_path, "a non-null list item", item)
            result.append(_convert(shape.member, item, item_path))
        return result
    if kind == "map":
        if not isinstance(value, dict):
            raise _type_error(path, "a JSON object", value)
        converted: dict[Any, Any] = {}
        for key, item in value.items():
            item_path = f"{path}.{key}"
            if item is None:
                raise _type_error(item_path, "a non-null map value", item)
            converted[_convert(shape.key, key, path)] = _convert(shape.value, item, item_path)
        return converted
    if kind == "string":
        if not isinstance(value, str):
            raise _type_error(path, "a JSON string", value)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _type_error(path, "true or false", value)
        return value
    if kind in _INT_RANGES:
        return _convert_integer(kind, value, path)
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(path, "a JSON number", value)
        return float(value)
    if kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(path, "a JSON number (epoch seconds)", value)
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond the float range
            seconds = math.inf
        if not math.isfinite(seconds):
            raise EcrError(_SERIALIZATION, f"Invalid timestamp at '{path}': {value!r}")
        return seconds
    if kind == "blob":
        if not isinstance(value, str):
            raise _type_error(path, "a base64-encoded JSON string", value)
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise EcrError(
                _SERIALIZATION, f"Invalid value at '{path}': not valid base64"
            ) from None
    # No other shape types occur in ECR inputs; pass anything else through unchanged.
    return value


def _convert_integer(kind: str, value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(path, f"a JSON number ({kind})", value)
    if isinstance(value, float):
        if not value.is_integer():  # also rejects NaN and infinities
            raise EcrError(
                _SERIALIZATION, f"Invalid value at '{path}': {kind} must be a whole number"
            )
        value = int(value)
    low, high = _INT_RANGES[kind]
    if not low <= value <= high:
        raise EcrError(_SERIALIZATION, f"Invalid value at '{path}': out of range for {kind}")
    return value


def _convert_structure(
    shape: botocore.model.StructureShape, value: dict[Any, Any], path: str
) -> dict[str, Any]:
    result = {}
    for name, member in shape.members.items():
        item = value.get(name)
        if item is not None:  # JSON null is the same as absent
            result[name] = _convert(member, item, _join(path, name))
    return result


# --------------------------------------------------------------------- pass 2: constraints


@functools.lru_cache(maxsize=None)
def _compile(pattern: str) -> re.Pattern[str] | None:
    """The compiled form of a model pattern (cached), or ``None`` if Python cannot compile it.

    ``re.ASCII`` gives ``\\w``/``\\d`` the Java (ASCII-only) meaning used by the model. A pattern
    that does not compile is skipped rather than failing every request: none does in botocore
    1.44.8 (tests assert it).
    """
    try:
        return re.compile(_PATTERN_OVERRIDES.get(pattern, pattern), re.ASCII)
    except re.error:
        return None


def _echo(value: Any) -> str:
    """A value as shown in ``ValidationException`` messages (strings raw, others as JSON)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (bytes, bytearray)):
        text = f"<{len(value)} bytes>"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        try:
            text = json.dumps(value, default=lambda v: f"<{len(v)} bytes>", ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            text = "<value>"
    if len(text) > _MAX_ECHO:
        text = text[:_MAX_ECHO] + "..."
    return text


class _Checker:
    """Finds the first constraint violation and raises it with ``code``'s message format."""

    def __init__(self, code: str) -> None:
        self.code = code

    def fail(self, shape: botocore.model.Shape | None, value: Any, path: str, reason: str) -> None:
        if self.code == "ValidationException":
            if value is None:
                shown = "Value null"
            elif shape is not None and shape.metadata.get("sensitive"):
                shown = "Value"
            else:
                shown = f"Value '{_echo(value)}'"
            message = (
                f"1 validation error detected: {shown} at '{path}' "
                f"failed to satisfy constraint: {reason}"
            )
        else:
            message = f"Invalid parameter at '{path}' failed to satisfy constraint: '{reason}'"
        raise EcrError(self.code, message)

    def check(self, shape: botocore.model.Shape, value: Any, path: str) -> None:
        kind = shape.type_name
        meta = shape.metadata
        if kind == "structure":
            required = set(meta.get("required", ()))
            for name, member in shape.members.items():
                member_path = _join(path, name)
                if name in value:
                    self.check(member, value[name], member_path)
                elif name in required:
                    self.fail(member, None, member_path, "Member must not be null")
        elif kind == "list":
            self.check_length(shape, value, path, len(value))
            for index, item in enumerate(value, start=1):
                self.check(shape.member, item, f"{path}.{index}.member")
        elif kind == "map":
            self.check_length(shape, value, path, len(value))
            for key, item in value.items():
                self.check(shape.key, key, path)
                self.check(shape.value, item, f"{path}.{key}")
        elif kind == "string":
            self.check_length(shape, value, path, len(value))
            if "\x00" in value:  # no ECR identifier or document may hold NUL; databases refuse it
                self.fail(shape, value, path, "Member must not contain NUL characters")
            pattern = meta.get("pattern")
            if pattern is not None:
                regex = _compile(pattern)
                if regex is not None and regex.fullmatch(value) is None:
                    self.fail(
                        shape, value, path,
                        f"Member must satisfy regular expression pattern: {pattern}",
                    )
            enum = meta.get("enum")
            if enum and value not in enum:
                self.fail(
                    shape, value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]"
                )
        elif kind == "blob":
            self.check_length(shape, value, path, len(value))
        elif kind in ("integer", "long", "float", "double"):
            self.check_bounds(shape, value, path, value, "value")

    def check_length(self, shape: botocore.model.Shape, value: Any, path: str, length: int) -> None:
        self.check_bounds(shape, value, path, length, "length")

    def check_bounds(
        self, shape: botocore.model.Shape, value: Any, path: str, measure: Any, what: str
    ) -> None:
        """Check ``measure`` (a length or the number itself) against the shape's min/max."""
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and measure < low:
            self.fail(shape, value, path, f"Member must have {what} greater than or equal to {low}")
        if high is not None and measure > high:
            self.fail(shape, value, path, f"Member must have {what} less than or equal to {high}")
