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
import threading
import weakref
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
    node = _node_of(shape)
    converted = node.convert(params, None)
    code = _CODES.get(operation.name)
    if code is None:
        code = _CODES[operation.name] = constraint_error_code(operation)
    node.check(converted, None, code)
    return converted


# constraint_error_code by operation name (the model's error shapes, read once).
_CODES: dict[str, str] = {}


# Member paths are built only for messages: a path is None (the request) or (parent path, part),
# part a member name or map key (str) or a list position from 1 (int, shown as "N.member").
_Path = Any


def _render(path: _Path) -> str:
    """``imageIds.1.member.imageTag`` for a path."""
    parts: list[str] = []
    while path is not None:
        path, part = path
        parts.append(f"{part}.member" if isinstance(part, int) else part)
    return ".".join(reversed(parts))


class _Node:
    """One shape compiled for both passes (built once per shape, see :func:`_node_of`):
    ``convert(value, path)`` is pass 1, ``check(value, path, code)`` pass 2."""

    def __init__(self, shape: botocore.model.Shape) -> None:
        self.kind = shape.type_name
        meta = shape.metadata
        self.sensitive = bool(meta.get("sensitive"))
        self.low, self.high = meta.get("min"), meta.get("max")
        self.pattern = meta.get("pattern")
        self.regex = _compile(self.pattern) if self.pattern is not None else None
        self.enum = meta.get("enum") or None
        self.required = frozenset(meta.get("required", ()))
        # Filled in by _build (shapes may refer to themselves).
        self.members: tuple[tuple[str, _Node], ...] = ()
        self.member: _Node | None = None
        self.key: _Node | None = None
        self.value: _Node | None = None

    # -- pass 1: types ----------------------------------------------------------------------

    def convert(self, value: object, path: _Path) -> Any:
        """Check ``value`` has the JSON type of the shape and return it in Python form."""
        kind = self.kind
        if kind == "string":
            if not isinstance(value, str):
                raise _type_error(path, "a JSON string", value)
            return value
        if kind == "structure":
            if not isinstance(value, dict):
                raise _type_error(path, "a JSON object", value)
            result = {}
            for name, node in self.members:
                item = value.get(name)
                if item is not None:  # JSON null is the same as absent
                    result[name] = node.convert(item, (path, name))
            return result
        if kind == "list":
            if not isinstance(value, list):
                raise _type_error(path, "a JSON array", value)
            member = self.member
            assert member is not None
            items = []
            for index, item in enumerate(value, start=1):
                if item is None:
                    raise _type_error((path, index), "a non-null list item", item)
                items.append(member.convert(item, (path, index)))
            return items
        if kind == "map":
            if not isinstance(value, dict):
                raise _type_error(path, "a JSON object", value)
            key_node, value_node = self.key, self.value
            assert key_node is not None and value_node is not None
            converted: dict[Any, Any] = {}
            for key, item in value.items():
                if item is None:
                    raise _type_error((path, key), "a non-null map value", item)
                converted[key_node.convert(key, path)] = value_node.convert(item, (path, key))
            return converted
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
                raise EcrError(_SERIALIZATION, f"Invalid timestamp at '{_render(path)}': {value!r}")
            return seconds
        if kind == "blob":
            if not isinstance(value, str):
                raise _type_error(path, "a base64-encoded JSON string", value)
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise EcrError(
                    _SERIALIZATION, f"Invalid value at '{_render(path)}': not valid base64"
                ) from None
        # No other shape types occur in ECR inputs; pass anything else through unchanged.
        return value

    # -- pass 2: constraints ----------------------------------------------------------------

    def check(self, value: Any, path: _Path, code: str) -> None:
        """Raise the first constraint violation of ``value`` (converted) as ``code``."""
        kind = self.kind
        if kind == "string":
            self.check_bounds(value, path, code, len(value), "length")
            if "\x00" in value:  # no ECR identifier or document may hold NUL; databases refuse it
                self.fail(value, path, code, "Member must not contain NUL characters")
            if not value.isascii() and not _encodable(value):
                # JSON's \ud800 escapes decode to lone surrogates, which are no text: nothing
                # could store or send them as UTF-8.
                self.fail(value, path, code, "Member must not contain unpaired surrogates")
            if self.regex is not None and self.regex.fullmatch(value) is None:
                self.fail(value, path, code,
                          f"Member must satisfy regular expression pattern: {self.pattern}")
            if self.enum and value not in self.enum:
                self.fail(value, path, code,
                          f"Member must satisfy enum value set: [{', '.join(self.enum)}]")
        elif kind == "structure":
            for name, node in self.members:
                if name in value:
                    node.check(value[name], (path, name), code)
                elif name in self.required:
                    node.fail(None, (path, name), code, "Member must not be null")
        elif kind == "list":
            self.check_bounds(value, path, code, len(value), "length")
            member = self.member
            assert member is not None
            for index, item in enumerate(value, start=1):
                member.check(item, (path, index), code)
        elif kind == "map":
            self.check_bounds(value, path, code, len(value), "length")
            key_node, value_node = self.key, self.value
            assert key_node is not None and value_node is not None
            for key, item in value.items():
                key_node.check(key, path, code)
                value_node.check(item, (path, key), code)
        elif kind == "blob":
            self.check_bounds(value, path, code, len(value), "length")
        elif kind in ("integer", "long", "float", "double"):
            self.check_bounds(value, path, code, value, "value")

    def check_bounds(self, value: Any, path: _Path, code: str, measure: Any, what: str) -> None:
        """Check ``measure`` (a length or the number itself) against the shape's min/max."""
        if self.low is not None and measure < self.low:
            self.fail(value, path, code,
                      f"Member must have {what} greater than or equal to {self.low}")
        if self.high is not None and measure > self.high:
            self.fail(value, path, code,
                      f"Member must have {what} less than or equal to {self.high}")

    def fail(self, value: Any, path: _Path, code: str, reason: str) -> None:
        """Raise ``reason`` about ``value`` at ``path`` in ``code``'s message format."""
        where = _render(path)
        if code == "ValidationException":
            if value is None:
                shown = "Value null"
            elif self.sensitive:
                shown = "Value"
            else:
                shown = f"Value '{_echo(value)}'"
            message = (
                f"1 validation error detected: {shown} at '{where}' "
                f"failed to satisfy constraint: {reason}"
            )
        else:
            message = f"Invalid parameter at '{where}' failed to satisfy constraint: '{reason}'"
        raise EcrError(code, message)


# Compiled nodes by shape (weakly: a shape no longer used takes its node with it). A node tree is
# published only once complete, under the lock, so no thread sees a node still being built.
_NODES: weakref.WeakKeyDictionary[botocore.model.Shape, _Node] = weakref.WeakKeyDictionary()
_COMPILING = threading.Lock()


def _node_of(shape: botocore.model.Shape) -> _Node:
    """The compiled node of ``shape`` (compiled on first use, thread-safe)."""
    node = _NODES.get(shape)
    if node is None:
        with _COMPILING:
            node = _NODES.get(shape)
            if node is None:
                built: dict[int, tuple[botocore.model.Shape, _Node]] = {}
                node = _build(shape, built)
                _NODES.update(dict(built.values()))
    return node


def _build(shape: botocore.model.Shape,
           built: dict[int, tuple[botocore.model.Shape, _Node]]) -> _Node:
    """``shape``'s node and those of the shapes it holds (``built``: nodes of this compilation,
    by shape identity, so a shape met twice, or holding itself, is built once)."""
    known = _NODES.get(shape) or (built[id(shape)][1] if id(shape) in built else None)
    if known is not None:
        return known
    node = _Node(shape)
    built[id(shape)] = (shape, node)
    if node.kind == "structure":
        node.members = tuple((name, _build(member, built))
                             for name, member in shape.members.items())
    elif node.kind == "list":
        node.member = _build(shape.member, built)
    elif node.kind == "map":
        node.key, node.value = _build(shape.key, built), _build(shape.value, built)
    return node


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


def _type_error(path: _Path, expected: str, value: object) -> EcrError:
    where = f" at '{_render(path)}'" if path is not None else ""
    return EcrError(
        _SERIALIZATION,
        f"Invalid value{where}: expected {expected}, got {_json_type(value)}",
    )


def _convert_integer(kind: str, value: object, path: _Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(path, f"a JSON number ({kind})", value)
    if isinstance(value, float):
        if not value.is_integer():  # also rejects NaN and infinities
            raise EcrError(
                _SERIALIZATION,
                f"Invalid value at '{_render(path)}': {kind} must be a whole number",
            )
        value = int(value)
    low, high = _INT_RANGES[kind]
    if not low <= value <= high:
        raise EcrError(_SERIALIZATION,
                       f"Invalid value at '{_render(path)}': out of range for {kind}")
    return value


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


def _encodable(text: str) -> bool:
    """True when ``text`` is valid Unicode (no unpaired surrogate), so it has a UTF-8 form."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
    # An unpaired surrogate is shown escaped (\ud800): the message is logged and sent as UTF-8.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
