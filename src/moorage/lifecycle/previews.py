"""Lifecycle policy previews: StartLifecyclePolicyPreview and GetLifecyclePolicyPreview
(ecr-api.md §3.19, §3.20, §4.4).

:meth:`LifecyclePreviews.start_preview` records an ``IN_PROGRESS`` row in
``lifecycle_previews`` and evaluates in a background thread, which stores ``COMPLETE`` and the
results (or ``FAILED``). The row lives in the database, so any replica answers
:meth:`LifecyclePreviews.get_preview`. ``transition`` actions are reported, as ECR would,
though runs skip them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from moorage import errors
from moorage.lifecycle.evaluate import Expiration, evaluate
from moorage.lifecycle.exceptions import (
    LifecyclePolicyNotFound,
    LifecyclePolicyPreviewInProgress,
    LifecyclePolicyPreviewNotFound,
)
from moorage.lifecycle.facts import ImageFactsReader
from moorage.lifecycle.rules import parse_lifecycle_policy
from moorage.registry.images import ImageId
from moorage.services import Services
from moorage.storage.metadata.schema import LifecyclePreview

__all__ = [
    "COMPLETE",
    "FAILED",
    "IN_PROGRESS",
    "PREVIEW_TIMEOUT_SECONDS",
    "LifecyclePreviews",
    "PreviewStarted",
    "PreviewView",
    "Spawner",
]

log = structlog.get_logger("moorage.lifecycle")

IN_PROGRESS, COMPLETE, FAILED = "IN_PROGRESS", "COMPLETE", "FAILED"
# An IN_PROGRESS preview older than this (by the server clock) was abandoned by a process that
# stopped mid-evaluation: it is reported FAILED and may be replaced by a new preview.
PREVIEW_TIMEOUT_SECONDS = 900.0

Spawner = Callable[[Callable[[], None]], None]


@dataclass(frozen=True)
class PreviewStarted:
    """Answer of :meth:`LifecyclePreviews.start_preview` (StartLifecyclePolicyPreview).

    Attributes:
        repository: the repository name.
        policy_text: the previewed ``lifecyclePolicyText`` (override or stored policy).
        status: always ``IN_PROGRESS``: evaluation runs in the background.
    """

    repository: str
    policy_text: str
    status: str = IN_PROGRESS


@dataclass(frozen=True)
class PreviewView:
    """The stored preview of a repository, filtered (GetLifecyclePolicyPreview).

    Attributes:
        repository: the repository name.
        policy_text: the previewed policy text.
        status: ``IN_PROGRESS``, ``COMPLETE`` or ``FAILED``.
        started_at: when the preview was started (its evaluation instant), epoch seconds;
            identifies this preview among successive ones.
        results: for ``COMPLETE`` only, the ``LifecyclePolicyPreviewResult`` dicts matching the
            filters, ordered by ``appliedRulePriority``, ``imagePushedAt``, digest:
            ``{"imageDigest", "imageTags" (absent when untagged), "imagePushedAt" (epoch s),
            "action": {"type": "EXPIRE"} | {"type": "TRANSITION", "targetStorageClass":
            "ARCHIVE"}, "appliedRulePriority" (int), "storageClass": "STANDARD" | "ARCHIVE"}``;
            ``None`` otherwise.
        summary: for ``COMPLETE`` only, ``LifecyclePolicyPreviewSummary`` over the whole
            preview (not the filters): ``{"expiringImageTotalCount": n}`` plus
            ``"transitioningImageTotalCounts": [{"targetStorageClass": "ARCHIVE",
            "imageTotalCount": m}]`` when ``m >= 1``.
        failure_reason: why a ``FAILED`` preview failed.
    """

    repository: str
    policy_text: str
    status: str
    started_at: float
    results: list[dict[str, Any]] | None = None
    summary: dict[str, Any] | None = None
    failure_reason: str | None = None


def _spawn_thread(job: Callable[[], None]) -> None:
    threading.Thread(target=job, name="moorage-lifecycle-preview", daemon=True).start()


def _preview_result(expiration: Expiration) -> dict[str, Any]:
    result: dict[str, Any] = {"imageDigest": expiration.digest}
    if expiration.tags:  # absent for an untagged image, as in DescribeImages
        result["imageTags"] = list(expiration.tags)
    result.update({
        "imagePushedAt": expiration.pushed_at,
        "action": expiration.action.to_api(),
        "appliedRulePriority": expiration.rule_priority,
        "storageClass": expiration.storage_class.upper(),
    })
    return result


def _summary(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "expiringImageTotalCount": sum(1 for r in results if r["action"]["type"] == "EXPIRE")}
    transitions: dict[str, int] = {}
    for result in results:
        if result["action"]["type"] == "TRANSITION":
            target = result["action"].get("targetStorageClass", "ARCHIVE")
            transitions[target] = transitions.get(target, 0) + 1
    if transitions:
        summary["transitioningImageTotalCounts"] = [
            {"targetStorageClass": target, "imageTotalCount": count}
            for target, count in sorted(transitions.items())]
    return summary


def _matches(result: dict[str, Any], tag_status: str, image_ids: Sequence[ImageId] | None) -> bool:
    tags = result.get("imageTags", ())
    if tag_status == "TAGGED" and not tags:
        return False
    if tag_status == "UNTAGGED" and tags:
        return False
    if image_ids is None:
        return True
    return any(
        (image_id.digest is not None or image_id.tag is not None)
        and (image_id.digest is None or image_id.digest == result["imageDigest"])
        and (image_id.tag is None or image_id.tag in tags)
        for image_id in image_ids
    )


class LifecyclePreviews(ImageFactsReader):
    """Start and read lifecycle policy previews (the preview half of
    :class:`~moorage.lifecycle.executor.LifecycleExecutor`).

    Args:
        services: the registry's services (database, clock).
        spawn: how a preview's evaluation is started; receives a no-argument job. Default: a
            daemon thread. Tests pass a function that keeps the job, to run it when they choose.
    """

    def __init__(self, services: Services, *, spawn: Spawner | None = None) -> None:
        super().__init__(services)
        self._spawn = spawn or _spawn_thread

    def start_preview(self, repository: str, policy_text: str | None = None) -> PreviewStarted:
        """StartLifecyclePolicyPreview (ecr-api.md §3.19): record an ``IN_PROGRESS`` preview of
        ``policy_text`` (or of the stored policy) and evaluate it in the background at the
        current server time. The new preview replaces the repository's previous one.

        Raises:
            RepositoryNotFound: (``RepositoryNotFoundException``).
            LifecyclePolicyNotFound: no ``policy_text`` and no stored policy
                (``LifecyclePolicyNotFoundException``).
            LifecyclePolicyInvalid: the text fails validation, with PutLifecyclePolicy's
                message (``InvalidParameterException``).
            LifecyclePolicyPreviewInProgress: a preview of the repository is still being
                evaluated (``LifecyclePolicyPreviewInProgressException``).
        """
        row = self.services.repositories.get(repository)
        text = policy_text if policy_text is not None else row.lifecycle_policy
        if text is None:
            raise LifecyclePolicyNotFound(row.name, self.context.registry_id)
        parse_lifecycle_policy(text)
        with self.context.database.transaction() as session:
            locked = self.context.repository(session, repository, for_update=True)
            now = self.context.clock.now()
            preview = session.get(LifecyclePreview, locked.id)
            if preview is not None and preview.status == IN_PROGRESS and not self._stale(preview, now):
                raise LifecyclePolicyPreviewInProgress(locked.name, self.context.registry_id)
            if preview is None:
                preview = LifecyclePreview(repository_id=locked.id)
                session.add(preview)
            preview.status = IN_PROGRESS
            preview.policy_text = text
            preview.started_at = now
            preview.evaluated_at = None
            preview.results = None
            preview.failure_reason = None
            repository_id, name = locked.id, locked.name
        log.info("lifecycle.preview_started", repository=name, now=now)
        self._spawn(lambda: self._evaluate_preview(repository_id, name, text, now))
        return PreviewStarted(repository=name, policy_text=text)

    def _stale(self, preview: LifecyclePreview, now: float) -> bool:
        return now - preview.started_at > PREVIEW_TIMEOUT_SECONDS

    def _evaluate_preview(self, repository_id: int, name: str, text: str, started_at: float) -> None:
        results: list[dict[str, Any]] | None = None
        reason: str | None = None
        try:
            expirations = evaluate(parse_lifecycle_policy(text), self.image_facts(name), started_at)
            results = [_preview_result(e) for e in expirations]
        except errors.RepositoryNotFound:
            return  # the repository went, and its preview with it
        except Exception as error:
            log.exception("lifecycle.preview_failed", repository=name)
            reason = f"{type(error).__name__}: {error}"
        with self.context.database.transaction() as session:
            preview = session.get(LifecyclePreview, repository_id)
            if preview is None or preview.status != IN_PROGRESS or preview.started_at != started_at:
                return  # replaced meanwhile
            preview.status = COMPLETE if reason is None else FAILED
            preview.results = results
            preview.failure_reason = reason
            preview.evaluated_at = self.context.clock.now()
        log.info("lifecycle.preview_done", repository=name, status=preview.status,
                 results=len(results or ()))

    def get_preview(self, repository: str, *, image_ids: Sequence[ImageId] | None = None,
                    tag_status: str = "ANY") -> PreviewView:
        """GetLifecyclePolicyPreview (ecr-api.md §3.20, §4.4): the repository's latest preview.

        Pagination (``maxResults``/``nextToken``) belongs to the ECR layer, which pages
        :attr:`PreviewView.results`; ``started_at`` identifies the preview a token was issued
        for.

        Args:
            image_ids: keep only results matching one of these (digest equal, and/or tag among
                the image's tags); ``None``: no filter.
            tag_status: ``TAGGED`` (results with tags), ``UNTAGGED`` or ``ANY``.

        Raises:
            RepositoryNotFound: (``RepositoryNotFoundException``).
            LifecyclePolicyPreviewNotFound: no preview was ever started
                (``LifecyclePolicyPreviewNotFoundException``).
        """
        with self.context.database.read() as session:
            row = self.context.repository(session, repository)
            preview = session.get(LifecyclePreview, row.id)
            if preview is None:
                raise LifecyclePolicyPreviewNotFound(row.name, self.context.registry_id)
            status, reason = preview.status, preview.failure_reason
            if status == IN_PROGRESS and self._stale(preview, self.context.clock.now()):
                status, reason = FAILED, "the evaluation did not finish (its process stopped)"
            view = PreviewView(repository=row.name, policy_text=preview.policy_text, status=status,
                               started_at=preview.started_at, failure_reason=reason)
            if status != COMPLETE:
                return view
            stored: list[dict[str, Any]] = list(preview.results or [])
        return PreviewView(
            repository=view.repository, policy_text=view.policy_text, status=COMPLETE,
            started_at=view.started_at,
            results=[r for r in stored if _matches(r, tag_status, image_ids)],
            summary=_summary(stored),
        )
