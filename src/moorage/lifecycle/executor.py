"""Carrying out lifecycle policies: scheduled/on-demand runs and previews.

Source: ecr-api.md §4.3 (evaluation and operational semantics), §3.19/§3.20 and §4.4 (preview),
DESIGN.md §6.

Both paths gather the same :class:`~moorage.lifecycle.evaluate.ImageFacts` from the metadata
store and call the same pure :func:`~moorage.lifecycle.evaluate.evaluate`:

* :meth:`LifecycleExecutor.run` applies the stored policy of every repository (or of one) at an
  instant ``now`` and deletes each expired image exactly as ``BatchDeleteImage`` by digest does
  (tags, and referrers recursively). The server calls it periodically under a database lease
  (``moorage.app.periodic_tasks``); ``moorage lifecycle run`` calls it on demand.
* :meth:`LifecycleExecutor.start_preview` records an ``IN_PROGRESS`` row in
  ``lifecycle_previews`` and evaluates in a background thread, which stores ``COMPLETE`` and
  the results (or ``FAILED``). The row lives in the database, so any replica answers
  :meth:`LifecycleExecutor.get_preview`.

Moorage has no archive storage class: ``transition`` actions are reported by previews (as ECR
would) but skipped by runs; the images they claim are not deleted.

Consistency: facts are read in one transaction and each deletion is its own transaction, as a
client calling BatchDeleteImage would. An image deleted meanwhile is skipped; an image that
became a child of a newly pushed index is refused by the delete and reported.

The work is split by concern: :mod:`.facts` reads the facts, :mod:`.runs` carries out runs,
:mod:`.previews` manages previews and :mod:`.exceptions` holds their errors;
:class:`LifecycleExecutor` combines them and this module re-exports their public names.
"""

from __future__ import annotations

from moorage.lifecycle.exceptions import (
    LifecyclePolicyNotFound,
    LifecyclePolicyPreviewInProgress,
    LifecyclePolicyPreviewNotFound,
)
from moorage.lifecycle.previews import (
    COMPLETE,
    FAILED,
    IN_PROGRESS,
    PREVIEW_TIMEOUT_SECONDS,
    LifecyclePreviews,
    PreviewStarted,
    PreviewView,
    Spawner,
)
from moorage.lifecycle.runs import (
    ExpiredImage,
    LifecycleRuns,
    LifecycleRunSummary,
    RepositoryRunSummary,
)
from moorage.services import Services

__all__ = [
    "COMPLETE",
    "FAILED",
    "IN_PROGRESS",
    "PREVIEW_TIMEOUT_SECONDS",
    "ExpiredImage",
    "LifecycleExecutor",
    "LifecyclePolicyNotFound",
    "LifecyclePolicyPreviewInProgress",
    "LifecyclePolicyPreviewNotFound",
    "LifecycleRunSummary",
    "PreviewStarted",
    "PreviewView",
    "RepositoryRunSummary",
]


class LifecycleExecutor(LifecycleRuns, LifecyclePreviews):
    """Run lifecycle policies and previews over the registry's metadata.

    Runs come from :class:`~moorage.lifecycle.runs.LifecycleRuns`, previews from
    :class:`~moorage.lifecycle.previews.LifecyclePreviews`, and :meth:`image_facts`, which both
    evaluate, from :class:`~moorage.lifecycle.facts.ImageFactsReader`.

    Args:
        services: the registry's services (database, clock, image deletion).
        spawn: how a preview's evaluation is started; receives a no-argument job. Default: a
            daemon thread. Tests pass a function that keeps the job, to run it when they choose.
    """

    def __init__(self, services: Services, *, spawn: Spawner | None = None) -> None:
        super().__init__(services, spawn=spawn)
