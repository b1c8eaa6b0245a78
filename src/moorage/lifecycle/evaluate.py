"""The lifecycle evaluation engine: which images a policy acts on, at a given instant.

Source: ecr-api.md §4.3 (normative algorithm), §4.1 (field semantics), §4.4/§3.20 (preview
results and their order), §4.5 (worked examples).

Pure: no I/O, no clock (``now`` is a parameter), no mutation of the inputs. The scheduled run
and the preview (StartLifecyclePolicyPreview) must both call :func:`evaluate`; the caller
carries out the actions (BatchDeleteImage-by-digest semantics for ``expire``, including the
referrer cascade; archiving for ``transition``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from moorage.lifecycle.rules import (
    ANY,
    ARCHIVE,
    IMAGE_COUNT_MORE_THAN,
    SINCE_IMAGE_PULLED,
    SINCE_IMAGE_PUSHED,
    SINCE_IMAGE_TRANSITIONED,
    STANDARD,
    TAGGED,
    UNTAGGED,
    Action,
    LifecyclePolicy,
    Rule,
    Selection,
)

__all__ = ["SECONDS_PER_DAY", "Expiration", "ImageFacts", "evaluate", "matches_pattern", "selects"]

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class ImageFacts:
    """What the engine needs to know about one image (one manifest) of the repository.

    Attributes:
        digest: the manifest digest (``sha256:...``); unique within one :func:`evaluate` call.
        tags: the image's tags; empty for an untagged image. Order is kept in the result.
        pushed_at: ``imagePushedAt``, epoch seconds (UTC).
        last_pulled_at: last recorded pull, epoch seconds, or ``None`` if never pulled.
        storage_class: ``"standard"`` (ACTIVE) or ``"archive"`` (ARCHIVED) — the policy
            vocabulary of ecr-api.md §4.1, lowercase.
        archived_at: when the image was moved to archive, epoch seconds; ``None`` for a
            standard image (and for an archived one whose archive time is unknown, which is
            then never acted on by ``sinceImageTransitioned``).
        is_child_of_index: the image is referenced by a manifest list / OCI index stored in
            the same repository. Such images are invisible to every rule (never selected,
            counted, claimed or acted on) while the index exists (ecr-api.md §4.3,
            "Operational semantics"); once the index is gone they are ordinary images.
    """

    digest: str
    tags: tuple[str, ...]
    pushed_at: float
    last_pulled_at: float | None = None
    storage_class: str = STANDARD
    archived_at: float | None = None
    is_child_of_index: bool = False


@dataclass(frozen=True)
class Expiration:
    """One image the policy acts on — one preview result (ecr-api.md §3.20, §4.4).

    Named after the common case; ``action.type`` says whether the image is expired
    (``"expire"``) or moved to archive (``"transition"``).

    Attributes:
        digest: the image's digest (``imageDigest``).
        tags: the image's tags, as given in :class:`ImageFacts` (``imageTags``).
        pushed_at: ``imagePushedAt``, epoch seconds.
        rule_priority: the ``rulePriority`` of the rule that acts on it
            (``appliedRulePriority``).
        action: that rule's action (``Action.to_api()`` gives the API shape).
        storage_class: the image's current storage class, ``"standard"`` or ``"archive"``
            (upper-case it for the API's ``storageClass``).
    """

    digest: str
    tags: tuple[str, ...]
    pushed_at: float
    rule_priority: int
    action: Action
    storage_class: str = STANDARD


def matches_pattern(pattern: str, tag: str) -> bool:
    """Whether ``tag`` matches a ``tagPatternList`` entry (ecr-api.md §4.1).

    The pattern covers the **whole** tag; ``*`` matches zero or more characters; every other
    character is literal and compared case-sensitively. A pattern without ``*`` is an exact
    match. Runs in O(len(pattern) × len(tag)) (no backtracking regex).
    """
    parts = pattern.split("*")
    if len(parts) == 1:
        return tag == pattern
    first, *middle, last = parts
    if len(tag) < len(first) + len(last) or not tag.startswith(first) or not tag.endswith(last):
        return False
    position, end = len(first), len(tag) - len(last)
    for part in middle:  # leftmost placement of each fixed piece is always safe
        found = tag.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True


def _tag_filter(selection: Selection, tags: tuple[str, ...]) -> bool:
    if selection.tag_prefix_list is not None:
        return all(any(tag.startswith(prefix) for tag in tags) for prefix in selection.tag_prefix_list)
    if selection.tag_pattern_list is not None:
        return all(
            any(matches_pattern(pattern, tag) for tag in tags) for pattern in selection.tag_pattern_list
        )
    return True


def selects(selection: Selection, image: ImageFacts) -> bool:
    """Whether ``selection`` considers ``image`` (its ``M`` in ecr-api.md §4.3).

    True iff the image is not a child of an index, its storage class equals
    ``selection.storage_class``, and the tag filter holds: ``untagged`` — no tags; ``any`` —
    always; ``tagged`` — at least one tag, and every ``tagPrefixList`` entry is a prefix of
    (resp. every ``tagPatternList`` entry matches) at least one of the tags.
    """
    if image.is_child_of_index or image.storage_class != selection.storage_class:
        return False
    if selection.tag_status == ANY:
        return True
    if selection.tag_status == UNTAGGED:
        return not image.tags
    assert selection.tag_status == TAGGED
    return bool(image.tags) and _tag_filter(selection, image.tags)


def _reference_time(count_type: str, image: ImageFacts) -> float | None:
    """The instant a ``since*`` rule measures age from; ``None``: never eligible."""
    if count_type == SINCE_IMAGE_PUSHED:
        return image.pushed_at
    if count_type == SINCE_IMAGE_PULLED:
        # last activity: the last pull, or the push if never pulled (or pulled before a push)
        if image.last_pulled_at is None:
            return image.pushed_at
        return max(image.pushed_at, image.last_pulled_at)
    assert count_type == SINCE_IMAGE_TRANSITIONED
    return image.archived_at if image.storage_class == ARCHIVE else None


def _newest_first(image: ImageFacts) -> tuple[float, str]:
    return (image.pushed_at, image.digest)


def _candidates(rule: Rule, matched: list[ImageFacts], now: float) -> list[ImageFacts]:
    selection = rule.selection
    if selection.count_type == IMAGE_COUNT_MORE_THAN:
        ordered = sorted(matched, key=_newest_first, reverse=True)
        return ordered[selection.count_number:]
    limit = selection.count_number * SECONDS_PER_DAY
    result = []
    for image in matched:
        reference = _reference_time(selection.count_type, image)
        if reference is not None and now - reference > limit:
            result.append(image)
    return result


def evaluate(policy: LifecyclePolicy, images: Sequence[ImageFacts], now: float) -> list[Expiration]:
    """Run ``policy`` over a repository's ``images`` at instant ``now`` (ecr-api.md §4.3).

    Algorithm (normative, §4.3): rules in ascending ``rulePriority``; each rule selects its
    images ``M`` (:func:`selects`) and computes candidates ``C``:

    * ``imageCountMoreThan`` N — all of ``M`` except the N newest by ``pushed_at``; ties
      broken by digest, the lexicographically greater digest counting as newer (so of two
      images pushed at the same instant, the smaller digest is acted on first);
    * ``sinceImagePushed`` / ``sinceImagePulled`` / ``sinceImageTransitioned`` N days —
      images whose reference time (push; last pull or push if later or never pulled;
      archive time) is **strictly** more than N × 86,400 s before ``now``.

    A candidate is acted on unless a higher-priority rule already acted on it or merely
    selected it ("claimed" it — keep rules protect their images). Counting always uses the
    whole of ``M``, including images claimed or acted on by earlier rules. After a rule, all
    of ``M`` is claimed.

    Args:
        policy: a validated policy (:func:`moorage.lifecycle.rules.parse_lifecycle_policy`).
        images: every image (manifest) of the repository, in any order.
        now: the evaluation instant, epoch seconds.

    Returns:
        One :class:`Expiration` per image acted on — each image at most once, attributed to
        the lowest-numbered rule that selected it. Ordered by ``rule_priority``, then
        ``pushed_at`` ascending, then digest ascending (ecr-api.md §3.20); the result does
        not depend on the order of ``images``.

    Raises:
        ValueError: two entries of ``images`` share a digest.

    Guarantees (tested in ``tests/test_lifecycle_evaluate.py``): an ``imageCountMoreThan`` N
    rule acts on at most ``max(0, |M| - N)`` images, never on one of the N newest of ``M``; a
    ``since*`` rule only on images strictly older than N days. Idempotence: after carrying out
    the result (expired images removed; transitioned ones ``archive`` with
    ``archived_at = now``), evaluating again at the **same** ``now`` acts on nothing — for every
    count type — as long as no other fact changes (in particular, no surviving image stops
    being ``is_child_of_index`` because its index was expired; such children are acted on by a
    later run, as §4.3 intends).
    """
    by_digest: dict[str, ImageFacts] = {}
    for image in images:
        if image.digest in by_digest:
            raise ValueError(f"duplicate image digest {image.digest}")
        by_digest[image.digest] = image
    ordered_images = sorted(by_digest.values(), key=lambda image: image.digest)

    claimed: dict[str, int] = {}
    acted: dict[str, Expiration] = {}
    for rule in policy.rules_by_priority:
        matched = [image for image in ordered_images if selects(rule.selection, image)]
        for image in _candidates(rule, matched, now):
            if image.digest in acted or image.digest in claimed:
                continue
            acted[image.digest] = Expiration(
                digest=image.digest,
                tags=image.tags,
                pushed_at=image.pushed_at,
                rule_priority=rule.rule_priority,
                action=rule.action,
                storage_class=image.storage_class,
            )
        for image in matched:
            claimed.setdefault(image.digest, rule.rule_priority)
    return sorted(acted.values(), key=lambda e: (e.rule_priority, e.pushed_at, e.digest))
