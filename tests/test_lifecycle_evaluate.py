"""The lifecycle evaluation engine (ecr-api.md §4.3, worked examples §4.5 L1–L9, L11).

Property tests state what the engine guarantees for every valid policy and repository:

* at most one action per image, attributed to the lowest-numbered rule that selects it;
* an ``imageCountMoreThan N`` rule acts on at most ``max(0, |M| - N)`` images and never on one
  of the N newest images it selects (for a single such rule: exactly ``min(N, |M|)`` of its
  images survive, and they are the newest);
* a ``since*`` rule only acts on images strictly older than N days by its reference time;
* idempotence: applying the result (drop expired images; transitioned images become
  ``archive`` with ``archived_at = now``) and evaluating again **at the same ``now``** acts on
  nothing — for every rule kind, not only count rules — provided the survivors' facts are
  otherwise unchanged (in particular no ``is_child_of_index`` flag flips, i.e. no expired
  image was the parent index of a surviving child);
* the result does not depend on the order of the input images.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from moorage.lifecycle import (
    Action,
    Expiration,
    ImageFacts,
    LifecyclePolicy,
    LifecyclePolicyInvalid,
    evaluate,
    parse_lifecycle_policy,
)
from moorage.lifecycle.evaluate import SECONDS_PER_DAY, matches_pattern, selects

NOW = datetime(2025, 2, 1, tzinfo=UTC).timestamp()
DAY, HOUR = 86_400.0, 3_600.0


def d(n: float) -> float:
    """Pushed ``n`` days before NOW."""
    return NOW - n * DAY


def h(n: float) -> float:
    """Pushed ``n`` hours before NOW."""
    return NOW - n * HOUR


def img(name: str, tags: list[str], pushed_at: float, **facts) -> ImageFacts:
    return ImageFacts(digest=f"sha256:{name}", tags=tuple(tags), pushed_at=pushed_at, **facts)


def name_of(expiration: Expiration) -> str:
    return expiration.digest.removeprefix("sha256:")


def parse(*rules: dict) -> LifecyclePolicy:
    return parse_lifecycle_policy(json.dumps({"rules": list(rules)}, indent=2).ljust(100))


def r(priority: int, status: str, count: str = "imageCountMoreThan", n: int = 1, *,
      prefixes: list[str] | None = None, patterns: list[str] | None = None,
      storage: str | None = None, action: dict | None = None) -> dict:
    selection: dict = {"tagStatus": status, "countType": count, "countNumber": n}
    if count != "imageCountMoreThan":
        selection["countUnit"] = "days"
    if prefixes is not None:
        selection["tagPrefixList"] = prefixes
    if patterns is not None:
        selection["tagPatternList"] = patterns
    if storage is not None:
        selection["storageClass"] = storage
    return {"rulePriority": priority, "selection": selection, "action": action or {"type": "expire"}}


# ------------------------------------------------------------------ worked examples §4.5

L1_IMAGES = [
    img("A", ["beta-1", "prod-1"], d(10)),
    img("B", ["beta-2", "prod-2"], d(9)),
    img("C", ["beta-3"], d(8)),
]
L3_IMAGES = [
    img("A", ["alpha-1"], d(12)),
    img("B", ["beta-1"], d(11)),
    img("C", ["alpha-2", "beta-2"], d(10)),
    img("D", ["alpha-3"], d(4)),
    img("E", ["beta-3"], d(3)),
    img("F", ["alpha-4", "beta-4"], d(2)),
]
L9_IMAGES = [img("T1", ["v1"], d(3)), img("T2", ["v10"], d(3)), img("T3", ["v1.0"], d(3))]
PUSHED_1D = {"count": "sinceImagePushed", "n": 1}

# id -> (images, policy, {image name: applied rule priority})
WORKED_EXAMPLES = {
    "L1 higher rule protects what it keeps": (
        L1_IMAGES,
        parse(r(1, "tagged", prefixes=["prod"]), r(2, "tagged", prefixes=["beta"])),
        {"A": 1},
    ),
    "L2 priorities swapped": (
        L1_IMAGES,
        parse(r(1, "tagged", prefixes=["beta"]), r(2, "tagged", prefixes=["prod"])),
        {"A": 1, "B": 1},
    ),
    "L3 prefixes are ANDed, age rule": (
        L3_IMAGES,
        parse(r(1, "tagged", "sinceImagePushed", 5, prefixes=["alpha", "beta"])),
        {"C": 1},
    ),
    "L4 extra tags do not matter": (
        [
            img("A", ["alpha-1", "beta-1", "gamma-1"], d(10)),
            img("B", ["alpha-2", "beta-2"], d(9)),
            img("C", ["alpha-3", "beta-3", "gamma-2"], d(8)),
        ],
        parse(r(1, "tagged", prefixes=["alpha", "beta"])),
        {"A": 1, "B": 1},
    ),
    "L5 any keeps the newest image": (
        [
            img("A", ["alpha-1"], d(4)),
            img("B", ["beta-1"], d(3)),
            img("C", [], d(2)),
            img("D", ["alpha-2"], d(1)),
        ],
        parse(r(1, "any")),
        {"A": 1, "B": 1, "C": 1},
    ),
    "L6 any only touches unclaimed images": (
        [
            img("A", ["alpha-1", "beta-1"], h(96)),
            img("B", [], h(72)),
            img("C", ["alpha-2"], h(48)),
            img("D", ["githash"], h(30)),
            img("E", [], h(20)),
        ],
        parse(r(1, "tagged", prefixes=["alpha"]), r(2, "untagged", "sinceImagePushed", 1), r(3, "any")),
        {"A": 1, "B": 2, "D": 3},
    ),
    "L7 wildcard patterns, overlapping rules, untagged count": (
        [
            img("P1", ["prod-1"], d(30)),
            img("P2", ["prod-2"], d(20)),
            img("P3", ["prod-3"], d(10)),
            img("P4", ["prod-4", "prod-4-rc1"], d(1)),
            img("R1", ["v1-rc1"], d(15)),
            img("R2", ["v2-rc2"], d(3)),
            img("U1", [], d(40)),
            img("U2", [], d(2)),
        ],
        parse(
            r(1, "tagged", n=2, patterns=["prod-*"]),
            r(2, "tagged", "sinceImagePushed", 7, patterns=["*-rc*"]),
            r(3, "untagged"),
        ),
        {"P1": 1, "P2": 1, "R1": 2, "U1": 3},
    ),
    "L8 keep-forever guard rule": (
        [
            img("S1", ["16.1"], d(5)),
            img("S2", ["16.2"], d(4)),
            img("S3", ["16.3"], d(3)),
            img("X1", ["16_1"], h(48)),
            img("X2", ["16_2"], h(36)),
            img("X3", [], h(24)),
        ],
        parse(r(10, "tagged", n=9999, prefixes=["16."]), r(20, "any", n=2)),
        {"X1": 20},
    ),
    "L9a pattern without wildcard is exact": (
        L9_IMAGES, parse(r(1, "tagged", "sinceImagePushed", 1, patterns=["v1"])), {"T1": 1},
    ),
    "L9b prefix is not exact": (
        L9_IMAGES, parse(r(1, "tagged", "sinceImagePushed", 1, prefixes=["v1"])), {"T1": 1, "T2": 1, "T3": 1},
    ),
    "L9c pattern with trailing wildcard": (
        L9_IMAGES, parse(r(1, "tagged", "sinceImagePushed", 1, patterns=["v1*"])), {"T1": 1, "T2": 1, "T3": 1},
    ),
}


@pytest.mark.parametrize(
    ("images", "policy", "expected"), WORKED_EXAMPLES.values(), ids=list(WORKED_EXAMPLES)
)
def test_worked_examples(images, policy, expected):
    result = evaluate(policy, images, NOW)
    assert {name_of(e): e.rule_priority for e in result} == expected
    assert all(e.action == Action("expire") and e.storage_class == "standard" for e in result)
    by_name = {image.digest: image for image in images}
    for e in result:
        assert (e.tags, e.pushed_at) == (by_name[e.digest].tags, by_name[e.digest].pushed_at)


def test_l11_archive():
    images = [
        img("A", ["v1"], d(120)),
        img("B", ["v2"], d(120), last_pulled_at=d(5)),
        img("C", ["v3"], d(200), storage_class="archive", archived_at=d(100)),
        img("D", ["v4"], d(200), storage_class="archive", archived_at=d(30)),
    ]
    policy = parse(
        r(1, "tagged", "sinceImageTransitioned", 90, patterns=["*"], storage="archive"),
        r(2, "any", "sinceImagePulled", 90, storage="standard",
          action={"type": "transition", "targetStorageClass": "archive"}),
    )
    result = evaluate(policy, images, NOW)
    assert [(name_of(e), e.rule_priority, e.action.to_api(), e.storage_class) for e in result] == [
        ("C", 1, {"type": "EXPIRE"}, "archive"),
        ("A", 2, {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"}, "standard"),
    ]


# ------------------------------------------------------------------ engine details


def test_result_order_is_priority_then_push_time_then_digest():
    images = [
        img("z", [], d(30)), img("a", [], d(30)), img("m", [], d(40)),
        img("t1", ["t"], d(50)), img("t2", ["t"], d(60)),
    ]
    policy = parse(
        r(1, "tagged", "sinceImagePushed", 1, prefixes=["t"]), r(2, "untagged", "sinceImagePushed", 1)
    )
    assert [name_of(e) for e in evaluate(policy, images, NOW)] == ["t2", "t1", "m", "a", "z"]


def test_count_tie_break_keeps_the_greater_digest():
    images = [img("b", [], d(3)), img("a", [], d(3)), img("c", [], d(3))]
    result = evaluate(parse(r(1, "untagged", n=1)), images, NOW)
    assert [name_of(e) for e in result] == ["a", "b"]


def test_since_boundary_is_strict():
    images = [img("exact", [], NOW - 7 * DAY), img("older", [], NOW - 7 * DAY - 0.001)]
    result = evaluate(parse(r(1, "untagged", "sinceImagePushed", 7)), images, NOW)
    assert [name_of(e) for e in result] == ["older"]


def test_since_pulled_uses_last_activity():
    images = [
        img("never", ["a"], d(100)),
        img("recent-pull", ["b"], d(100), last_pulled_at=d(10)),
        img("old-pull", ["c"], d(100), last_pulled_at=d(95)),
        img("pull-before-repush", ["e"], d(10), last_pulled_at=d(100)),
    ]
    to_archive = {"type": "transition", "targetStorageClass": "archive"}
    policy = parse(r(1, "any", "sinceImagePulled", 90, action=to_archive))
    assert {name_of(e) for e in evaluate(policy, images, NOW)} == {"never", "old-pull"}


def test_standard_rules_ignore_archived_images_and_vice_versa():
    images = [
        img("s1", [], d(3)), img("s2", [], d(2)),
        img("a1", [], d(300), storage_class="archive", archived_at=d(200)),
        img("a2", ["x"], d(300), storage_class="archive", archived_at=None),
    ]
    # the archived images do not count towards the standard rule's budget of 1
    policy = parse(
        r(1, "tagged", "sinceImageTransitioned", 90, patterns=["*"], storage="archive"),
        r(2, "any", n=1),
    )
    assert {name_of(e): e.rule_priority for e in evaluate(policy, images, NOW)} == {"s1": 2}
    # a2 has no known archive time: never eligible for sinceImageTransitioned; a1 is untagged
    policy = parse(r(1, "any", "sinceImageTransitioned", 90, storage="archive"))
    assert {name_of(e) for e in evaluate(policy, images, NOW)} == {"a1"}


def test_children_of_an_index_are_invisible_until_the_index_is_gone():
    index = img("index", ["v1"], d(10))
    children = [img(f"child{i}", [], d(10), is_child_of_index=True) for i in range(3)]
    loose = [img("loose1", [], d(5)), img("loose2", [], d(4))]
    policy = parse(r(1, "untagged", n=1), r(2, "any", "sinceImagePushed", 7))
    first = evaluate(policy, [index, *children, *loose], NOW)
    assert {name_of(e): e.rule_priority for e in first} == {"loose1": 1, "index": 2}
    # the index is expired; on a later run its (now ordinary) children are eligible
    orphans = [ImageFacts(c.digest, c.tags, c.pushed_at) for c in children]
    second = evaluate(policy, [*orphans, loose[1]], NOW)
    assert {name_of(e) for e in second} == {"child0", "child1", "child2"}


def test_duplicate_digests_are_rejected():
    with pytest.raises(ValueError, match="duplicate image digest"):
        evaluate(parse(r(1, "any")), [img("a", [], d(1)), img("a", ["x"], d(2))], NOW)


def test_empty_repository():
    assert evaluate(parse(r(1, "any")), [], NOW) == []


def test_inputs_are_not_mutated():
    images = [img("a", [], d(2)), img("b", [], d(1))]
    before = list(images)
    evaluate(parse(r(1, "any")), images, NOW)
    assert images == before


@pytest.mark.parametrize(
    ("pattern", "tag", "expected"),
    [
        ("v1", "v1", True), ("v1", "v10", False), ("v1", "V1", False),
        ("v1*", "v1", True), ("v1*", "v1.0", True), ("*", "anything", True),
        ("*-rc*", "prod-4-rc1", True), ("*-rc*", "prod-4", False), ("*-rc*", "-rc", True),
        ("a*a", "a", False), ("a*a", "aa", True), ("a*b*c", "abc", True), ("a*b*c", "acb", False),
        ("*test*1*2*3", "my-test-1-2-3", True), ("prod-*", "Prod-1", False),
        ("a*b", "ab", True), ("a*b", "abab", True), ("a*b", "aba", False),
        ("*.*", "1.2", True), ("*.*", "12", False), ("1.*", "1x2", False),
    ],
)
def test_pattern_matching(pattern, tag, expected):
    assert matches_pattern(pattern, tag) is expected


# ------------------------------------------------------------------ property tests

TAG_POOL = ["prod-1", "prod-2", "prod-10", "beta-1", "beta-rc1", "v1", "v10", "v1.0", "latest", "x"]
PREFIX_POOL = ["prod", "beta", "v1", "v", "l", "x", "prod-1"]
PATTERN_POOL = ["*", "prod-*", "*-rc*", "v1", "v1*", "*1", "b*1", "latest"]


@st.composite
def repositories(draw) -> list[ImageFacts]:
    count = draw(st.integers(0, 12))
    images = []
    for index in range(count):
        archived = draw(st.integers(0, 5)) == 0
        images.append(ImageFacts(
            digest=f"sha256:{index:02d}",
            tags=tuple(draw(st.lists(st.sampled_from(TAG_POOL), max_size=3, unique=True))),
            # coarse times so that ties and exact boundaries occur
            pushed_at=NOW - draw(st.integers(0, 40)) * DAY / 2,
            last_pulled_at=draw(st.none() | st.integers(0, 120).map(lambda n: NOW - n * DAY)),
            storage_class="archive" if archived else "standard",
            archived_at=NOW - draw(st.integers(0, 200)) * DAY if archived else None,
            is_child_of_index=draw(st.integers(0, 7)) == 0,
        ))
    return images


def _small_lists(pool: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True)


def _selection(draw, status: str) -> dict:
    selection: dict = {"tagStatus": status}
    if status == "tagged":
        if draw(st.booleans()):
            selection["tagPrefixList"] = draw(_small_lists(PREFIX_POOL))
        else:
            selection["tagPatternList"] = draw(_small_lists(PATTERN_POOL))
    kind = draw(st.sampled_from(["count", "count", "pushed", "pulled", "archive"]))
    if kind == "count":
        selection |= {"countType": "imageCountMoreThan", "countNumber": draw(st.integers(1, 4))}
        action = {"type": draw(st.sampled_from(["expire", "expire", "transition"]))}
    elif kind == "pushed":
        selection |= {"countType": "sinceImagePushed", "countUnit": "days",
                      "countNumber": draw(st.integers(1, 15))}
        action = {"type": draw(st.sampled_from(["expire", "expire", "transition"]))}
    elif kind == "pulled":
        selection |= {"countType": "sinceImagePulled", "countUnit": "days",
                      "countNumber": draw(st.integers(1, 60))}
        action = {"type": "transition"}
    else:
        selection |= {"countType": "sinceImageTransitioned", "countUnit": "days",
                      "countNumber": draw(st.integers(90, 150)), "storageClass": "archive"}
        action = {"type": "expire"}
    if action["type"] == "transition":
        action["targetStorageClass"] = "archive"
    return {"selection": selection, "action": action}


@st.composite
def policies(draw) -> LifecyclePolicy:
    count = draw(st.integers(1, 4))
    priorities = sorted(draw(st.lists(st.integers(1, 30), min_size=count, max_size=count, unique=True)))
    statuses = [draw(st.sampled_from(["tagged", "tagged", "untagged"])) for _ in priorities]
    if draw(st.booleans()):
        statuses[-1] = "any"  # the any rule must have the highest priority
    seen_untagged = False
    rules = []
    for priority, status in zip(priorities, statuses, strict=True):
        if status == "untagged":
            if seen_untagged:
                status = "tagged"
            seen_untagged = True
        rules.append({"rulePriority": priority, **_selection(draw, status)})
    draw(st.randoms()).shuffle(rules)  # document order must not matter
    try:
        return parse_lifecycle_policy(json.dumps({"rules": rules}).ljust(100))
    except LifecyclePolicyInvalid:
        assume(False)  # e.g. two rules with the same prefix set (rare)
        raise


PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _newest(images: list[ImageFacts], n: int) -> set[str]:
    ordered = sorted(images, key=lambda i: (i.pushed_at, i.digest), reverse=True)
    return {i.digest for i in ordered[:n]}


@PROPERTY_SETTINGS
@given(images=repositories(), n=st.integers(1, 5), status=st.sampled_from(["any", "untagged", "tagged"]))
def test_single_count_rule_keeps_exactly_the_newest_n(images, n, status):
    rule = r(1, status, n=n, patterns=["*"] if status == "tagged" else None)
    policy = parse(rule)
    matched = [i for i in images if selects(policy.rules[0].selection, i)]
    expired = {e.digest for e in evaluate(policy, images, NOW)}
    survivors = [i for i in matched if i.digest not in expired]
    assert len(survivors) == min(n, len(matched))
    assert {i.digest for i in survivors} == _newest(matched, n)
    assert expired <= {i.digest for i in matched}


@PROPERTY_SETTINGS
@given(policy=policies(), images=repositories())
def test_each_image_acted_on_once_by_the_first_rule_selecting_it(policy, images):
    result = evaluate(policy, images, NOW)
    digests = [e.digest for e in result]
    assert len(digests) == len(set(digests))
    by_digest = {i.digest: i for i in images}
    rules = {rule.rule_priority: rule for rule in policy.rules}
    for e in result:
        image = by_digest[e.digest]
        first = min(p for p, rule in rules.items() if selects(rule.selection, image))
        assert e.rule_priority == first
        assert e.action == rules[first].action
        assert not image.is_child_of_index
        assert e.storage_class == image.storage_class


@PROPERTY_SETTINGS
@given(policy=policies(), images=repositories())
def test_rules_never_exceed_their_budget(policy, images):
    result = evaluate(policy, images, NOW)
    for rule in policy.rules:
        selection = rule.selection
        matched = [i for i in images if selects(selection, i)]
        acted = [e for e in result if e.rule_priority == rule.rule_priority]
        if selection.count_type == "imageCountMoreThan":
            assert len(acted) <= max(0, len(matched) - selection.count_number)
            assert not {e.digest for e in acted} & _newest(matched, selection.count_number)
        else:
            image_of = {i.digest: i for i in matched}
            for e in acted:
                image = image_of[e.digest]
                reference = {
                    "sinceImagePushed": image.pushed_at,
                    "sinceImagePulled": max(image.pushed_at, image.last_pulled_at or image.pushed_at),
                    "sinceImageTransitioned": image.archived_at,
                }[selection.count_type]
                assert NOW - reference > selection.count_number * SECONDS_PER_DAY


def _apply(images: list[ImageFacts], result: list[Expiration], now: float) -> list[ImageFacts]:
    actions = {e.digest: e.action.type for e in result}
    survivors = []
    for image in images:
        action = actions.get(image.digest)
        if action == "expire":
            continue
        if action == "transition":
            image = ImageFacts(image.digest, image.tags, image.pushed_at, image.last_pulled_at,
                               storage_class="archive", archived_at=now,
                               is_child_of_index=image.is_child_of_index)
        survivors.append(image)
    return survivors


@PROPERTY_SETTINGS
@given(policy=policies(), images=repositories())
def test_evaluation_is_idempotent_at_the_same_instant(policy, images):
    first = evaluate(policy, images, NOW)
    assert evaluate(policy, _apply(images, first, NOW), NOW) == []


@PROPERTY_SETTINGS
@given(policy=policies(), images=repositories(), seed=st.integers(0, 2**32 - 1))
def test_result_is_independent_of_input_order(policy, images, seed):
    shuffled = list(images)
    random.Random(seed).shuffle(shuffled)
    result = evaluate(policy, images, NOW)
    assert evaluate(policy, shuffled, NOW) == result
    assert result == sorted(result, key=lambda e: (e.rule_priority, e.pushed_at, e.digest))
