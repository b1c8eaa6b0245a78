"""Lifecycle policy parsing and validation (ecr-api.md §4.1, §4.2, §4.5 L10)."""

from __future__ import annotations

import json

import pytest

from moorage.ecr.exceptions import from_domain
from moorage.errors import InvalidInput
from moorage.lifecycle.rules import (
    Action,
    LifecyclePolicy,
    LifecyclePolicyInvalid,
    Rule,
    Selection,
    parse_lifecycle_policy,
)

PREFIX = (
    "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
    "'Lifecycle policy validation failure: "
)


def text(document: object) -> str:
    """JSON text of ``document``, padded with trailing whitespace to the 100-char minimum."""
    raw = json.dumps(document, indent=2)
    return raw.ljust(100)


def rule(priority: int = 1, action: dict | None = None, **selection: object) -> dict:
    selection = {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1} | selection
    selection = {key: value for key, value in selection.items() if value is not None}
    action = {"type": "expire"} if action is None else action
    return {"rulePriority": priority, "selection": selection, "action": action}


def policy(*rules: dict) -> str:
    return text({"rules": list(rules)})


def detail_of(policy_text: str) -> str:
    with pytest.raises(LifecyclePolicyInvalid) as info:
        parse_lifecycle_policy(policy_text)
    message = info.value.message
    assert message.startswith(PREFIX) and message.endswith("'"), message
    assert message == f"{PREFIX}{info.value.detail}'"
    return info.value.detail


# ------------------------------------------------------------------ error type and message shape


def test_error_is_invalid_input_and_maps_to_invalid_parameter_exception():
    with pytest.raises(LifecyclePolicyInvalid) as info:
        parse_lifecycle_policy("x" * 100)
    error = info.value
    assert isinstance(error, InvalidInput)
    assert error.message == (
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
        "'Lifecycle policy validation failure: Could not map policyString into LifecyclePolicy.'"
    )
    ecr = from_domain(error)
    assert (ecr.code, ecr.message) == ("InvalidParameterException", error.message)


@pytest.mark.parametrize(
    ("policy_text", "reason"),
    [
        ('{"rules":[]}', "Member must have length greater than or equal to 100"),
        (" " * 99, "Member must have length greater than or equal to 100"),
        (policy(rule()) + " " * 30_720, "Member must have length less than or equal to 30720"),
    ],
)
def test_text_length(policy_text, reason):
    with pytest.raises(LifecyclePolicyInvalid) as info:
        parse_lifecycle_policy(policy_text)
    assert info.value.message == (
        f"Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: '{reason}'"
    )


def test_length_bounds_are_inclusive():
    minimal = json.dumps({"rules": [rule()]})
    parse_lifecycle_policy(minimal.ljust(100))
    parse_lifecycle_policy(minimal.ljust(30_720))


# ------------------------------------------------------------------ pass 1: schema

NOT_MAPPED = "Could not map policyString into LifecyclePolicy."


@pytest.mark.parametrize(
    "policy_text",
    [
        "{" + " " * 120,  # truncated
        "not json at all".ljust(100),
        text([{"rules": []}]),  # array, not object
        text("a string"),
        text(42),
        text(None),
        policy(rule()) + "}",  # trailing garbage
        policy(rule(countNumber=1)).replace('"countNumber": 1', '"countNumber": NaN'),
    ],
)
def test_not_a_json_object(policy_text):
    assert detail_of(policy_text) == NOT_MAPPED


def typ(actual: str, allowed: str) -> str:
    return f'instance type ({actual}) does not match any allowed primitive type (allowed: ["{allowed}"])'


def missing(*names: str) -> str:
    return f"object has missing required properties ({json.dumps(list(names), separators=(',', ':'))})"


def unknown(*names: str) -> str:
    listed = json.dumps(list(names), separators=(",", ":"))
    return f"object instance has properties which are not allowed by the schema: ({listed})"


def enum(value: str, *allowed: str) -> str:
    listed = json.dumps(list(allowed), separators=(",", ":"))
    return f"instance value ({value}) not found in enum :(possible values: {listed})"


def minimum(found: int) -> str:
    return f"numeric instance is lower than the required minimum (minimum: 1, found: {found})"


TOO_SHORT = "array is too short: must have at least 1 elements but instance has 0 elements"
EMPTY_STRING = 'string "" is too short (length: 0, required minimum: 1)'
TAGGED = {"tagStatus": "tagged"}


def test_message_helpers_spell_the_documented_texts():
    # ecr-api.md §3.17 detail examples, verbatim
    assert missing("rules") == 'object has missing required properties (["rules"])'
    assert enum("foo", "any", "tagged", "untagged") == (
        'instance value (foo) not found in enum :(possible values: ["any","tagged","untagged"])'
    )
    assert minimum(0) == "numeric instance is lower than the required minimum (minimum: 1, found: 0)"
    assert unknown("x") == 'object instance has properties which are not allowed by the schema: (["x"])'


SCHEMA_CASES = [
    # top level
    ({"rule": []}, missing("rules")),
    ({}, missing("rules")),
    ({"rules": [rule()], "x": 1}, unknown("x")),
    ({"rules": {}}, typ("object", "array")),
    ({"rules": []}, TOO_SHORT),
    (
        {"rules": [rule(i) for i in range(1, 52)]},
        "array is too long: must have at most 50 elements but instance has 51 elements",
    ),
    # rule
    ({"rules": ["rule"]}, typ("string", "object")),
    ({"rules": [{"rulePriority": 1, "action": {"type": "expire"}}]}, missing("selection")),
    ({"rules": [{"description": "d"}]}, missing("action", "rulePriority", "selection")),
    ({"rules": [rule() | {"x": 1, "Priority": 2}]}, unknown("Priority", "x")),
    ({"rules": [rule(0)]}, minimum(0)),
    ({"rules": [rule(-3)]}, minimum(-3)),
    ({"rules": [rule("1")]}, typ("string", "integer")),
    ({"rules": [rule(1.5)]}, typ("number", "integer")),
    ({"rules": [rule(1.0)]}, typ("number", "integer")),
    ({"rules": [rule(True)]}, typ("boolean", "integer")),
    ({"rules": [rule() | {"description": 5}]}, typ("integer", "string")),
    ({"rules": [rule() | {"description": None}]}, typ("null", "string")),
    # selection
    ({"rules": [rule() | {"selection": []}]}, typ("array", "object")),
    ({"rules": [rule(countNumber=None)]}, missing("countNumber")),
    ({"rules": [rule() | {"selection": {}}]}, missing("countNumber", "countType", "tagStatus")),
    ({"rules": [rule(tagPrefix=["a"])]}, unknown("tagPrefix")),
    ({"rules": [rule(tagStatus="foo")]}, enum("foo", "any", "tagged", "untagged")),
    ({"rules": [rule(tagStatus="TAGGED")]}, enum("TAGGED", "any", "tagged", "untagged")),
    ({"rules": [rule(tagStatus=1)]}, typ("integer", "string")),
    (
        {"rules": [rule(countType="imagecountmorethan")]},
        enum("imagecountmorethan",
             "imageCountMoreThan", "sinceImagePulled", "sinceImagePushed", "sinceImageTransitioned"),
    ),
    ({"rules": [rule(countType="sinceImagePushed", countUnit="hours")]}, enum("hours", "days")),
    ({"rules": [rule(countNumber=0)]}, minimum(0)),
    ({"rules": [rule(countNumber="5")]}, typ("string", "integer")),
    ({"rules": [rule(countNumber=2.5)]}, typ("number", "integer")),
    ({"rules": [rule(storageClass="STANDARD")]}, enum("STANDARD", "archive", "standard")),
    ({"rules": [rule(**TAGGED, tagPrefixList="prod")]}, typ("string", "array")),
    ({"rules": [rule(**TAGGED, tagPrefixList=[])]}, TOO_SHORT),
    ({"rules": [rule(**TAGGED, tagPatternList=[])]}, TOO_SHORT),
    ({"rules": [rule(**TAGGED, tagPrefixList=["a", ""])]}, EMPTY_STRING),
    ({"rules": [rule(**TAGGED, tagPatternList=[""])]}, EMPTY_STRING),
    ({"rules": [rule(**TAGGED, tagPatternList=[1])]}, typ("integer", "string")),
    # action
    ({"rules": [rule(action={})]}, missing("type")),
    ({"rules": [rule() | {"action": "expire"}]}, typ("string", "object")),
    ({"rules": [rule(action={"type": "delete"})]}, enum("delete", "expire", "transition")),
    ({"rules": [rule(action={"type": "EXPIRE"})]}, enum("EXPIRE", "expire", "transition")),
    ({"rules": [rule(action={"type": "expire", "days": 1})]}, unknown("days")),
    (
        {"rules": [rule(action={"type": "transition", "targetStorageClass": "standard"})]},
        enum("standard", "archive"),
    ),
    ({"rules": [rule(action={"type": "expire", "targetStorageClass": None})]}, typ("null", "string")),
]


@pytest.mark.parametrize(("document", "detail"), SCHEMA_CASES)
def test_schema_violations(document, detail):
    assert detail_of(text(document)) == detail


def test_schema_errors_come_before_semantic_errors():
    # rule 1 breaks a cross-field rule, rule 2 the schema: the schema error is reported
    document = {"rules": [rule(1, tagStatus="tagged"), rule(2, countNumber=0)]}
    assert detail_of(text(document)).startswith("numeric instance is lower")


# ------------------------------------------------------------------ pass 2: one rule

RULE_CASES = [
    # §4.2 item 6
    (rule(tagStatus="tagged"), "tagPrefixList or tagPatternList is required when tagStatus is 'tagged'"),
    (
        rule(tagStatus="tagged", tagPrefixList=["a"], tagPatternList=["a*"]),
        "tagPrefixList and tagPatternList cannot both be specified in one rule",
    ),
    (
        rule(tagStatus="untagged", tagPrefixList=["prod"]),
        "tagPrefixList can only be specified when tagStatus is 'tagged' (found tagStatus 'untagged')",
    ),
    (
        rule(tagStatus="any", tagPatternList=["*"]),
        "tagPatternList can only be specified when tagStatus is 'tagged' (found tagStatus 'any')",
    ),
    # item 7
    (
        rule(tagStatus="tagged", tagPatternList=["ok*", "a*b*c*d*e*"]),
        "tagPatternList entry 'a*b*c*d*e*' has 5 wildcards (*); at most 4 are allowed per pattern",
    ),
    (
        rule(tagStatus="tagged", tagPatternList=["test*1*2*3*4*5*6"]),
        "tagPatternList entry 'test*1*2*3*4*5*6' has 6 wildcards (*); at most 4 are allowed per pattern",
    ),
    # item 8
    (rule(countUnit="days"), "countUnit cannot be specified when countType is 'imageCountMoreThan'"),
    (rule(countType="sinceImagePushed"), "countUnit is required when countType is 'sinceImagePushed'"),
    # item 13
    (rule(action={"type": "transition"}), "targetStorageClass is required when action type is 'transition'"),
    (
        rule(action={"type": "expire", "targetStorageClass": "archive"}),
        "targetStorageClass can only be specified when action type is 'transition'",
    ),
    # item 14
    (
        rule(countType="sinceImagePulled", countUnit="days"),
        "countType 'sinceImagePulled' can only be used with action type 'transition'",
    ),
    (
        rule(countType="sinceImageTransitioned", countUnit="days", countNumber=90),
        "countType 'sinceImageTransitioned' requires storageClass 'archive'",
    ),
    (
        rule(countType="sinceImageTransitioned", countUnit="days", countNumber=90, storageClass="standard"),
        "countType 'sinceImageTransitioned' requires storageClass 'archive'",
    ),
    (
        rule(storageClass="archive"),
        "storageClass 'archive' can only be used with countType 'sinceImageTransitioned' "
        "(found countType 'imageCountMoreThan')",
    ),
    (
        rule(
            storageClass="archive", countType="sinceImageTransitioned", countUnit="days", countNumber=90,
            action={"type": "transition", "targetStorageClass": "archive"},
        ),
        "action type 'transition' cannot be used with storageClass 'archive': the images are archived already",
    ),
    # item 15
    (
        rule(storageClass="archive", countType="sinceImageTransitioned", countUnit="days", countNumber=89),
        "images that have been in archive for less than 90 days cannot be expired: countNumber must "
        "be at least 90 for countType 'sinceImageTransitioned' (found: 89)",
    ),
]


@pytest.mark.parametrize(("bad_rule", "detail"), RULE_CASES)
def test_rule_violations(bad_rule, detail):
    assert detail_of(policy(bad_rule)) == detail


def test_four_wildcards_are_allowed():
    patterns = ["*test*1*2*3", "test*1*2*3*"]
    parsed = parse_lifecycle_policy(policy(rule(tagStatus="tagged", tagPatternList=patterns)))
    assert parsed.rules[0].selection.tag_pattern_list == ("*test*1*2*3", "test*1*2*3*")


def test_archive_expiry_at_exactly_90_days_is_allowed():
    parsed = parse_lifecycle_policy(
        policy(rule(tagStatus="tagged", tagPatternList=["*"], storageClass="archive",
                    countType="sinceImageTransitioned", countUnit="days", countNumber=90))
    )
    assert parsed.rules[0].selection.storage_class == "archive"


# ------------------------------------------------------------------ pass 3: across rules

POLICY_CASES = [
    # §4.2 item 4 / L10
    (
        [rule(1, tagStatus="tagged", tagPrefixList=["a"]), rule(1, tagStatus="tagged", tagPrefixList=["b"])],
        "rulePriority 1 is used by more than one rule; rule priorities must be unique",
    ),
    # item 10 / L10
    (
        [rule(1, tagStatus="any"), rule(2, tagStatus="tagged", tagPrefixList=["a"])],
        "the rule with tagStatus 'any' must have the highest rulePriority (found rulePriority 1, highest is 2)",
    ),
    (
        [rule(5, tagStatus="any"), rule(7, tagStatus="any", countNumber=3)],
        "only one rule can have tagStatus 'any'",
    ),
    # item 11
    (
        [rule(1), rule(2, countType="sinceImagePushed", countUnit="days")],
        "only one rule can have tagStatus 'untagged'",
    ),
    # item 12 (lists compared as sets)
    (
        [rule(1, tagStatus="tagged", tagPrefixList=["prod", "v"]),
         rule(2, tagStatus="tagged", tagPrefixList=["v", "prod"], countNumber=5)],
        'rules must have a unique set of tag prefixes: tagPrefixList ["prod","v"] is used by more than one rule',
    ),
]


@pytest.mark.parametrize(("rules", "detail"), POLICY_CASES)
def test_policy_violations(rules, detail):
    assert detail_of(policy(*rules)) == detail


def test_any_plus_untagged_is_allowed_and_any_may_be_the_only_rule():
    parse_lifecycle_policy(policy(rule(1), rule(2, tagStatus="any", countNumber=5)))
    parse_lifecycle_policy(policy(rule(3, tagStatus="any")))


def test_identical_pattern_lists_are_allowed():
    parsed = parse_lifecycle_policy(policy(
        rule(1, tagStatus="tagged", tagPatternList=["prod-*"]),
        rule(2, tagStatus="tagged", tagPatternList=["prod-*"], countNumber=9),
    ))
    assert len(parsed.rules) == 2


def test_fifty_rules_are_allowed():
    rules = [rule(i, tagStatus="tagged", tagPrefixList=[f"p{i}"]) for i in range(1, 51)]
    assert len(parse_lifecycle_policy(policy(*rules)).rules) == 50


# ------------------------------------------------------------------ L10 (ecr-api.md §4.5)

L10 = {
    "empty rules, padded to 100": (
        '{"rules":[]}'.ljust(100),
        "array is too short: must have at least 1 elements but instance has 0 elements",
    ),
    "two rules with priority 1": (
        policy(rule(1), rule(1, tagStatus="tagged", tagPrefixList=["a"])),
        "rulePriority 1 is used by more than one rule; rule priorities must be unique",
    ),
    "any first, tagged second": (
        policy(rule(1, tagStatus="any"), rule(2, tagStatus="tagged", tagPrefixList=["a"])),
        "the rule with tagStatus 'any' must have the highest rulePriority (found rulePriority 1, highest is 2)",
    ),
    "tagged without a list": (
        policy(rule(tagStatus="tagged")),
        "tagPrefixList or tagPatternList is required when tagStatus is 'tagged'",
    ),
    "untagged with tagPrefixList": (
        policy(rule(tagPrefixList=["a"])),
        "tagPrefixList can only be specified when tagStatus is 'tagged' (found tagStatus 'untagged')",
    ),
    "imageCountMoreThan with days": (
        policy(rule(countUnit="days")),
        "countUnit cannot be specified when countType is 'imageCountMoreThan'",
    ),
    "sinceImagePushed without countUnit": (
        policy(rule(countType="sinceImagePushed")),
        "countUnit is required when countType is 'sinceImagePushed'",
    ),
    "countNumber 0": (
        policy(rule(countNumber=0)),
        "numeric instance is lower than the required minimum (minimum: 1, found: 0)",
    ),
    "action delete": (
        policy(rule(action={"type": "delete"})),
        'instance value (delete) not found in enum :(possible values: ["expire","transition"])',
    ),
    "five wildcards": (
        policy(rule(tagStatus="tagged", tagPatternList=["a*b*c*d*e*"])),
        "tagPatternList entry 'a*b*c*d*e*' has 5 wildcards (*); at most 4 are allowed per pattern",
    ),
}


@pytest.mark.parametrize(("policy_text", "detail"), L10.values(), ids=list(L10))
def test_l10_validation_failures(policy_text, detail):
    assert detail_of(policy_text) == detail


def test_l10_short_text_is_rejected():
    with pytest.raises(LifecyclePolicyInvalid, match="greater than or equal to 100"):
        parse_lifecycle_policy('{"rules":[]}')


# ------------------------------------------------------------------ valid documents


def test_full_parse_of_a_documented_policy():
    parsed = parse_lifecycle_policy(text({"rules": [
        {
            "rulePriority": 1,
            "description": "Expire images older than 14 days",
            "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                          "countNumber": 14},
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 3,
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 100},
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": "",
            "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod", "v"],
                          "countType": "imageCountMoreThan", "countNumber": 5},
            "action": {"type": "expire"},
        },
    ]}))
    assert parsed == LifecyclePolicy(rules=(
        Rule(1, Selection("untagged", "sinceImagePushed", 14, count_unit="days"), Action("expire"),
             "Expire images older than 14 days"),
        Rule(3, Selection("any", "imageCountMoreThan", 100), Action("expire")),
        Rule(2, Selection("tagged", "imageCountMoreThan", 5, tag_prefix_list=("prod", "v")),
             Action("expire"), ""),
    ))
    assert [r.rule_priority for r in parsed.rules_by_priority] == [1, 2, 3]
    assert parsed.rules[0].selection.storage_class == "standard"


def test_archive_policy_l11_parses():
    parsed = parse_lifecycle_policy(text({"rules": [
        {"rulePriority": 1,
         "selection": {"tagStatus": "tagged", "tagPatternList": ["*"], "storageClass": "archive",
                       "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 90},
         "action": {"type": "expire"}},
        {"rulePriority": 2,
         "selection": {"tagStatus": "any", "storageClass": "standard", "countType": "sinceImagePulled",
                       "countUnit": "days", "countNumber": 90},
         "action": {"type": "transition", "targetStorageClass": "archive"}},
    ]}))
    first, second = parsed.rules
    assert first.selection == Selection("tagged", "sinceImageTransitioned", 90, "days", None, ("*",), "archive")
    assert second.action == Action("transition", "archive")
    assert second.action.to_api() == {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"}
    assert first.action.to_api() == {"type": "EXPIRE"}


@pytest.mark.parametrize(
    "rules",
    [
        # L1 / L2
        [rule(1, tagStatus="tagged", tagPrefixList=["prod"]),
         rule(2, tagStatus="tagged", tagPrefixList=["beta"])],
        # L3 / L4
        [rule(1, tagStatus="tagged", tagPrefixList=["alpha", "beta"], countType="sinceImagePushed",
              countUnit="days", countNumber=5)],
        # L5
        [rule(1, tagStatus="any")],
        # L6
        [rule(1, tagStatus="tagged", tagPrefixList=["alpha"]),
         rule(2, countType="sinceImagePushed", countUnit="days"),
         rule(3, tagStatus="any")],
        # L7
        [rule(1, tagStatus="tagged", tagPatternList=["prod-*"], countNumber=2),
         rule(2, tagStatus="tagged", tagPatternList=["*-rc*"], countType="sinceImagePushed", countUnit="days",
              countNumber=7),
         rule(3)],
        # L8
        [rule(10, tagStatus="tagged", tagPrefixList=["16."], countNumber=9999),
         rule(20, tagStatus="any", countNumber=2)],
        # L9 a, b, c
        [rule(1, tagStatus="tagged", tagPatternList=["v1"], countType="sinceImagePushed", countUnit="days")],
        [rule(1, tagStatus="tagged", tagPrefixList=["v1"], countType="sinceImagePushed", countUnit="days")],
        [rule(1, tagStatus="tagged", tagPatternList=["v1*"], countType="sinceImagePushed", countUnit="days")],
    ],
    ids=["L1-L2", "L3-L4", "L5", "L6", "L7", "L8", "L9a", "L9b", "L9c"],
)
def test_worked_example_policies_parse(rules):
    parsed = parse_lifecycle_policy(policy(*rules))
    assert [r.rule_priority for r in parsed.rules] == [r["rulePriority"] for r in rules]


def test_dataclasses_are_frozen():
    parsed = parse_lifecycle_policy(policy(rule()))
    with pytest.raises(AttributeError):
        parsed.rules[0].rule_priority = 2  # type: ignore[misc]
