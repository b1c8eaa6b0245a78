"""Lifecycle policy documents: parsing and validation into typed, immutable rules.

Source: ecr-api.md §4.1 (document grammar), §4.2 (validation), §3.17/§3.19 (where validation
runs and the error it produces), §4.5 L10 (validation test vectors).

:func:`parse_lifecycle_policy` turns the ``lifecyclePolicyText`` string of PutLifecyclePolicy /
StartLifecyclePolicyPreview into a :class:`LifecyclePolicy`, or raises
:class:`LifecyclePolicyInvalid` whose ``message`` is the complete ECR error message::

    Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: <detail>'

The ECR layer answers it as ``InvalidParameterException`` (it is a :class:`moorage.errors.InvalidInput`).

Validation runs in three passes and reports the **first** violation found:

1. *schema* — JSON syntax, member names, required members, JSON types, enums, minimums, list
   sizes, walking the document in order (rules in array order; inside a rule: ``rulePriority``,
   ``description``, ``selection``, ``action``). The messages are those of the JSON-schema
   validator ECR uses (the ``detail`` texts quoted in ecr-api.md §3.17, verbatim);
2. *rule semantics* — the cross-field constraints inside one rule (§4.2 items 6–8, 13–15),
   rules in array order;
3. *policy semantics* — the constraints across rules (§4.2 items 4, 10–12).

Document vocabulary is kept as written in the policy: lowercase enums (``"tagged"``,
``"expire"``, ``"days"``, ``"archive"``) and camelCase ``countType`` values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from moorage.errors import InvalidInput

__all__ = [
    "ACTION_TYPES",
    "COUNT_TYPES",
    "COUNT_UNITS",
    "MAX_RULES",
    "MAX_WILDCARDS",
    "MIN_ARCHIVE_EXPIRY_DAYS",
    "POLICY_TEXT_MAX",
    "POLICY_TEXT_MIN",
    "STORAGE_CLASSES",
    "TAG_STATUSES",
    "Action",
    "LifecyclePolicy",
    "LifecyclePolicyInvalid",
    "Rule",
    "Selection",
    "parse_lifecycle_policy",
]

# ---------------------------------------------------------------------------- vocabulary

TAGGED, UNTAGGED, ANY = "tagged", "untagged", "any"
TAG_STATUSES = (ANY, TAGGED, UNTAGGED)  # sorted, as ECR lists them in enum errors

IMAGE_COUNT_MORE_THAN = "imageCountMoreThan"
SINCE_IMAGE_PUSHED = "sinceImagePushed"
SINCE_IMAGE_PULLED = "sinceImagePulled"
SINCE_IMAGE_TRANSITIONED = "sinceImageTransitioned"
COUNT_TYPES = (IMAGE_COUNT_MORE_THAN, SINCE_IMAGE_PULLED, SINCE_IMAGE_PUSHED, SINCE_IMAGE_TRANSITIONED)
SINCE_COUNT_TYPES = frozenset({SINCE_IMAGE_PUSHED, SINCE_IMAGE_PULLED, SINCE_IMAGE_TRANSITIONED})

DAYS = "days"
COUNT_UNITS = (DAYS,)

STANDARD, ARCHIVE = "standard", "archive"
STORAGE_CLASSES = (ARCHIVE, STANDARD)
TARGET_STORAGE_CLASSES = (ARCHIVE,)

EXPIRE, TRANSITION = "expire", "transition"
ACTION_TYPES = (EXPIRE, TRANSITION)

POLICY_TEXT_MIN, POLICY_TEXT_MAX = 100, 30_720  # characters (ECR model, §3.17)
MAX_RULES = 50  # rules per policy (§4.2 item 16, [unverified] in the reference)
MAX_WILDCARDS = 4  # '*' per tagPatternList entry (§4.1, §4.2 item 7)
MIN_ARCHIVE_EXPIRY_DAYS = 90  # §4.2 item 15

_POLICY_MEMBERS = ("rules",)
_RULE_REQUIRED = ("action", "rulePriority", "selection")
_RULE_MEMBERS = ("rulePriority", "description", "selection", "action")
_SELECTION_REQUIRED = ("countNumber", "countType", "tagStatus")
_SELECTION_MEMBERS = (
    "tagStatus", "tagPrefixList", "tagPatternList", "storageClass",
    "countType", "countUnit", "countNumber",
)
_ACTION_REQUIRED = ("type",)
_ACTION_MEMBERS = ("type", "targetStorageClass")

_MESSAGE_PREFIX = "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: '"
_VALIDATION_FAILURE = "Lifecycle policy validation failure: "


# ---------------------------------------------------------------------------- error


class LifecyclePolicyInvalid(InvalidInput):
    """A lifecycle policy text violates ecr-api.md §4.2 (or the model's length 100..30,720).

    Attributes:
        detail: the reason alone, e.g. ``numeric instance is lower than the required minimum
            (minimum: 1, found: 0)``.
        message: the complete ECR message, to be sent unchanged as the ``message`` of an
            ``InvalidParameterException``:
            ``Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint:
            'Lifecycle policy validation failure: <detail>'``. Length violations are not
            "validation failures" in ECR's wording and read
            ``... failed to satisfy constraint: 'Member must have length ...'``.
    """

    def __init__(self, detail: str, *, validation_failure: bool = True) -> None:
        reason = f"{_VALIDATION_FAILURE}{detail}" if validation_failure else detail
        super().__init__(f"{_MESSAGE_PREFIX}{reason}'")
        self.detail = detail


# ---------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Selection:
    """The ``selection`` object of a rule (ecr-api.md §4.1).

    Attributes:
        tag_status: ``"tagged"``, ``"untagged"`` or ``"any"``.
        tag_prefix_list: the ``tagPrefixList`` entries (non-empty strings), or ``None``. Only
            with ``tagged``; mutually exclusive with ``tag_pattern_list``.
        tag_pattern_list: the ``tagPatternList`` globs (``*`` = any run of characters, at
            most 4 per entry), or ``None``. Only with ``tagged``.
        count_type: ``"imageCountMoreThan"``, ``"sinceImagePushed"``, ``"sinceImagePulled"``
            or ``"sinceImageTransitioned"``.
        count_unit: ``"days"`` for the ``since*`` count types, ``None`` for
            ``imageCountMoreThan``.
        count_number: integer >= 1: an image count, or a number of days (1 day = 86,400 s).
        storage_class: ``"standard"`` (the default when the document omits it) or
            ``"archive"``: the storage class of the images the rule considers.
    """

    tag_status: str
    count_type: str
    count_number: int
    count_unit: str | None = None
    tag_prefix_list: tuple[str, ...] | None = None
    tag_pattern_list: tuple[str, ...] | None = None
    storage_class: str = STANDARD


@dataclass(frozen=True)
class Action:
    """The ``action`` object of a rule (ecr-api.md §4.1).

    Attributes:
        type: ``"expire"`` (delete the image) or ``"transition"`` (move it to archive).
        target_storage_class: ``"archive"`` for ``transition``, ``None`` for ``expire``.
    """

    type: str
    target_storage_class: str | None = None

    def to_api(self) -> dict[str, str]:
        """The ``LifecyclePolicyRuleAction`` of a preview result (ecr-api.md §3.20, §4.4):
        ``{"type": "EXPIRE"}`` or ``{"type": "TRANSITION", "targetStorageClass": "ARCHIVE"}``."""
        result = {"type": self.type.upper()}
        if self.target_storage_class is not None:
            result["targetStorageClass"] = self.target_storage_class.upper()
        return result


@dataclass(frozen=True)
class Rule:
    """One rule of a lifecycle policy (ecr-api.md §4.1).

    Attributes:
        rule_priority: integer >= 1, unique in the policy; lower is evaluated first.
        description: the free-text ``description``, or ``None`` when absent.
        selection: which images the rule considers and which of those it acts on.
        action: what happens to the images the rule acts on.
    """

    rule_priority: int
    selection: Selection
    action: Action
    description: str | None = None


@dataclass(frozen=True)
class LifecyclePolicy:
    """A validated lifecycle policy (ecr-api.md §4.1).

    Attributes:
        rules: the rules in **document order** (not sorted); see :attr:`rules_by_priority`.
    """

    rules: tuple[Rule, ...]

    @property
    def rules_by_priority(self) -> tuple[Rule, ...]:
        """The rules in evaluation order: ascending ``rulePriority`` (ecr-api.md §4.3)."""
        return tuple(sorted(self.rules, key=lambda rule: rule.rule_priority))


# ---------------------------------------------------------------------------- parsing


def parse_lifecycle_policy(text: str) -> LifecyclePolicy:
    """Parse and validate a ``lifecyclePolicyText`` (ecr-api.md §4.1, §4.2).

    Args:
        text: the policy document, a JSON object; 100..30,720 characters.

    Returns:
        The policy; rules in document order, ``storageClass`` defaulted to ``"standard"``.

    Raises:
        LifecyclePolicyInvalid: the first violation found (module docstring gives the pass
            order), with ECR's message in ``.message``. Among others: text length outside
            100..30,720; not JSON / not a JSON object (``Could not map policyString into
            LifecyclePolicy.``); missing ``rules`` (``object has missing required properties
            (["rules"])``); unknown members (``object instance has properties which are not
            allowed by the schema: (["x"])``); enum values (``instance value (foo) not found in
            enum :(possible values: ["any","tagged","untagged"])``); ``countNumber`` or
            ``rulePriority`` below 1 (``numeric instance is lower than the required minimum
            (minimum: 1, found: 0)``); more than 50 rules; duplicate ``rulePriority``; the tag
            list rules; more than 4 ``*`` in a pattern; ``countUnit`` combinations; the
            ``any``/``untagged``/prefix-set uniqueness rules; the action and archive rules.
    """
    if len(text) < POLICY_TEXT_MIN:
        raise LifecyclePolicyInvalid(
            f"Member must have length greater than or equal to {POLICY_TEXT_MIN}",
            validation_failure=False,
        )
    if len(text) > POLICY_TEXT_MAX:
        raise LifecyclePolicyInvalid(
            f"Member must have length less than or equal to {POLICY_TEXT_MAX}",
            validation_failure=False,
        )
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise LifecyclePolicyInvalid("Could not map policyString into LifecyclePolicy.")

    _check_members(document, ("rules",), _POLICY_MEMBERS)
    raw_rules = document["rules"]
    _check_type(raw_rules, "array")
    if not raw_rules:
        raise LifecyclePolicyInvalid(
            "array is too short: must have at least 1 elements but instance has 0 elements"
        )
    if len(raw_rules) > MAX_RULES:
        raise LifecyclePolicyInvalid(
            f"array is too long: must have at most {MAX_RULES} elements but instance has "
            f"{len(raw_rules)} elements"
        )
    rules = tuple(_parse_rule(raw) for raw in raw_rules)
    for rule in rules:
        _check_rule(rule)
    _check_policy(rules)
    return LifecyclePolicy(rules=rules)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN / Infinity: not accepted by ECR's parser


# --- pass 1: schema -----------------------------------------------------------------------


def _json_type(value: object) -> str:
    """The JSON-schema type name of ``value`` (``1.0`` is a ``number``, not an ``integer``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _names(names: list[str] | tuple[str, ...]) -> str:
    return json.dumps(sorted(names), separators=(",", ":"))


def _check_type(value: object, expected: str) -> None:
    actual = _json_type(value)
    if actual != expected:
        raise LifecyclePolicyInvalid(
            f"instance type ({actual}) does not match any allowed primitive type "
            f'(allowed: ["{expected}"])'
        )


def _check_members(obj: dict[str, Any], required: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    missing = [name for name in required if name not in obj]
    if missing:
        raise LifecyclePolicyInvalid(f"object has missing required properties ({_names(missing)})")
    unknown = [name for name in obj if name not in allowed]
    if unknown:
        raise LifecyclePolicyInvalid(
            f"object instance has properties which are not allowed by the schema: ({_names(unknown)})"
        )


def _enum(value: object, allowed: tuple[str, ...]) -> str:
    _check_type(value, "string")
    assert isinstance(value, str)
    if value not in allowed:
        raise LifecyclePolicyInvalid(
            f"instance value ({value}) not found in enum :(possible values: {_names(allowed)})"
        )
    return value


def _positive_int(value: object) -> int:
    _check_type(value, "integer")
    assert isinstance(value, int)
    if value < 1:
        raise LifecyclePolicyInvalid(
            f"numeric instance is lower than the required minimum (minimum: 1, found: {value})"
        )
    return value


def _string_list(value: object) -> tuple[str, ...]:
    _check_type(value, "array")
    assert isinstance(value, list)
    if not value:
        raise LifecyclePolicyInvalid(
            "array is too short: must have at least 1 elements but instance has 0 elements"
        )
    for item in value:
        _check_type(item, "string")
        if not item:
            raise LifecyclePolicyInvalid('string "" is too short (length: 0, required minimum: 1)')
    return tuple(value)


def _parse_rule(raw: object) -> Rule:
    _check_type(raw, "object")
    assert isinstance(raw, dict)
    _check_members(raw, _RULE_REQUIRED, _RULE_MEMBERS)
    priority = _positive_int(raw["rulePriority"])
    description = raw.get("description")
    if "description" in raw:
        _check_type(description, "string")
    return Rule(
        rule_priority=priority,
        description=description,
        selection=_parse_selection(raw["selection"]),
        action=_parse_action(raw["action"]),
    )


def _parse_selection(raw: object) -> Selection:
    _check_type(raw, "object")
    assert isinstance(raw, dict)
    _check_members(raw, _SELECTION_REQUIRED, _SELECTION_MEMBERS)
    tag_status = _enum(raw["tagStatus"], TAG_STATUSES)
    prefixes = _string_list(raw["tagPrefixList"]) if "tagPrefixList" in raw else None
    patterns = _string_list(raw["tagPatternList"]) if "tagPatternList" in raw else None
    storage_class = _enum(raw["storageClass"], STORAGE_CLASSES) if "storageClass" in raw else STANDARD
    count_type = _enum(raw["countType"], COUNT_TYPES)
    count_unit = _enum(raw["countUnit"], COUNT_UNITS) if "countUnit" in raw else None
    count_number = _positive_int(raw["countNumber"])
    return Selection(
        tag_status=tag_status,
        count_type=count_type,
        count_number=count_number,
        count_unit=count_unit,
        tag_prefix_list=prefixes,
        tag_pattern_list=patterns,
        storage_class=storage_class,
    )


def _parse_action(raw: object) -> Action:
    _check_type(raw, "object")
    assert isinstance(raw, dict)
    _check_members(raw, _ACTION_REQUIRED, _ACTION_MEMBERS)
    action_type = _enum(raw["type"], ACTION_TYPES)
    target = (
        _enum(raw["targetStorageClass"], TARGET_STORAGE_CLASSES)
        if "targetStorageClass" in raw
        else None
    )
    return Action(type=action_type, target_storage_class=target)


# --- pass 2: one rule ---------------------------------------------------------------------


def _check_rule(rule: Rule) -> None:
    """Cross-field constraints inside one rule (§4.2 items 6–8, 13–15)."""
    selection, action = rule.selection, rule.action
    prefixes, patterns = selection.tag_prefix_list, selection.tag_pattern_list

    # item 6: tag lists
    if selection.tag_status == TAGGED:
        if prefixes is None and patterns is None:
            raise LifecyclePolicyInvalid(
                "tagPrefixList or tagPatternList is required when tagStatus is 'tagged'"
            )
        if prefixes is not None and patterns is not None:
            raise LifecyclePolicyInvalid(
                "tagPrefixList and tagPatternList cannot both be specified in one rule"
            )
    else:
        for name, value in (("tagPrefixList", prefixes), ("tagPatternList", patterns)):
            if value is not None:
                raise LifecyclePolicyInvalid(
                    f"{name} can only be specified when tagStatus is 'tagged' "
                    f"(found tagStatus '{selection.tag_status}')"
                )

    # item 7: wildcards
    for pattern in patterns or ():
        if pattern.count("*") > MAX_WILDCARDS:
            raise LifecyclePolicyInvalid(
                f"tagPatternList entry '{pattern}' has {pattern.count('*')} wildcards (*); "
                f"at most {MAX_WILDCARDS} are allowed per pattern"
            )

    # item 8: countUnit
    if selection.count_type == IMAGE_COUNT_MORE_THAN and selection.count_unit is not None:
        raise LifecyclePolicyInvalid(
            "countUnit cannot be specified when countType is 'imageCountMoreThan'"
        )
    if selection.count_type in SINCE_COUNT_TYPES and selection.count_unit is None:
        raise LifecyclePolicyInvalid(
            f"countUnit is required when countType is '{selection.count_type}'"
        )

    # item 13: action shape
    if action.type == TRANSITION and action.target_storage_class is None:
        raise LifecyclePolicyInvalid("targetStorageClass is required when action type is 'transition'")
    if action.type == EXPIRE and action.target_storage_class is not None:
        raise LifecyclePolicyInvalid(
            "targetStorageClass can only be specified when action type is 'transition'"
        )

    # item 14 and §4.1 storageClass row: count types vs action / storage class
    if selection.count_type == SINCE_IMAGE_PULLED and action.type != TRANSITION:
        raise LifecyclePolicyInvalid(
            "countType 'sinceImagePulled' can only be used with action type 'transition'"
        )
    if selection.count_type == SINCE_IMAGE_TRANSITIONED and selection.storage_class != ARCHIVE:
        raise LifecyclePolicyInvalid(
            "countType 'sinceImageTransitioned' requires storageClass 'archive'"
        )
    if selection.storage_class == ARCHIVE and selection.count_type != SINCE_IMAGE_TRANSITIONED:
        raise LifecyclePolicyInvalid(
            f"storageClass 'archive' can only be used with countType 'sinceImageTransitioned' "
            f"(found countType '{selection.count_type}')"
        )
    if selection.storage_class == ARCHIVE and action.type == TRANSITION:
        raise LifecyclePolicyInvalid(
            "action type 'transition' cannot be used with storageClass 'archive': "
            "the images are archived already"
        )

    # item 15: 90-day minimum in archive before expiry
    if (
        selection.storage_class == ARCHIVE
        and action.type == EXPIRE
        and selection.count_number < MIN_ARCHIVE_EXPIRY_DAYS
    ):
        raise LifecyclePolicyInvalid(
            f"images that have been in archive for less than {MIN_ARCHIVE_EXPIRY_DAYS} days "
            f"cannot be expired: countNumber must be at least {MIN_ARCHIVE_EXPIRY_DAYS} for "
            f"countType 'sinceImageTransitioned' (found: {selection.count_number})"
        )


# --- pass 3: the policy -------------------------------------------------------------------


def _check_policy(rules: tuple[Rule, ...]) -> None:
    """Constraints across rules (§4.2 items 4, 10, 11, 12), in that order."""
    seen: set[int] = set()
    for rule in rules:
        if rule.rule_priority in seen:
            raise LifecyclePolicyInvalid(
                f"rulePriority {rule.rule_priority} is used by more than one rule; "
                "rule priorities must be unique"
            )
        seen.add(rule.rule_priority)

    any_rules = [rule for rule in rules if rule.selection.tag_status == ANY]
    if len(any_rules) > 1:
        raise LifecyclePolicyInvalid("only one rule can have tagStatus 'any'")
    if any_rules and any_rules[0].rule_priority != max(seen):
        raise LifecyclePolicyInvalid(
            "the rule with tagStatus 'any' must have the highest rulePriority "
            f"(found rulePriority {any_rules[0].rule_priority}, highest is {max(seen)})"
        )

    if sum(1 for rule in rules if rule.selection.tag_status == UNTAGGED) > 1:
        raise LifecyclePolicyInvalid("only one rule can have tagStatus 'untagged'")

    prefix_sets: set[frozenset[str]] = set()
    for rule in rules:
        prefixes = rule.selection.tag_prefix_list
        if prefixes is None:
            continue
        key = frozenset(prefixes)
        if key in prefix_sets:
            raise LifecyclePolicyInvalid(
                f"rules must have a unique set of tag prefixes: tagPrefixList "
                f"{_names(list(key))} is used by more than one rule"
            )
        prefix_sets.add(key)
