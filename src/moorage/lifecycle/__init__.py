"""ECR lifecycle policies: the document model and validation (:mod:`.rules`) and the pure
evaluation engine shared by scheduled runs and previews (:mod:`.evaluate`).

Source: ecr-api.md §4 (Lifecycle policies).
"""

from __future__ import annotations

from moorage.lifecycle.evaluate import Expiration, ImageFacts, evaluate
from moorage.lifecycle.rules import (
    Action,
    LifecyclePolicy,
    LifecyclePolicyInvalid,
    Rule,
    Selection,
    parse_lifecycle_policy,
)

__all__ = [
    "Action",
    "Expiration",
    "ImageFacts",
    "LifecyclePolicy",
    "LifecyclePolicyInvalid",
    "Rule",
    "Selection",
    "evaluate",
    "parse_lifecycle_policy",
]
