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
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import select, update

from moorage import errors
from moorage.lifecycle.evaluate import Expiration, ImageFacts, evaluate
from moorage.lifecycle.rules import EXPIRE, LifecyclePolicyInvalid, parse_lifecycle_policy
from moorage.metrics import IMAGES_EXPIRED
from moorage.registry.images import ImageId
from moorage.services import Services
from moorage.storage.metadata.schema import Image, ImageReference, LifecyclePreview, Repository, Tag

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

log = structlog.get_logger("moorage.lifecycle")

IN_PROGRESS, COMPLETE, FAILED = "IN_PROGRESS", "COMPLETE", "FAILED"
# An IN_PROGRESS preview older than this (by the server clock) was abandoned by a process that
# stopped mid-evaluation: it is reported FAILED and may be replaced by a new preview.
PREVIEW_TIMEOUT_SECONDS = 900.0
TAG_STATUSES = ("TAGGED", "UNTAGGED", "ANY")

Spawner = Callable[[Callable[[], None]], None]


# ---------------------------------------------------------------------------- errors


class LifecyclePolicyNotFound(errors.NotFound):
    """The repository has no lifecycle policy (ECR ``LifecyclePolicyNotFoundException``)."""

    def __init__(self, repository_name: str, registry_id: str) -> None:
        super().__init__(
            f"Lifecycle policy does not exist for the repository with name '{repository_name}' "
            f"in the registry with id '{registry_id}'"
        )


class LifecyclePolicyPreviewNotFound(errors.NotFound):
    """No preview was started for the repository (ECR
    ``LifecyclePolicyPreviewNotFoundException``)."""

    def __init__(self, repository_name: str, registry_id: str) -> None:
        super().__init__(
            f"Lifecycle policy preview does not exist for the repository with name "
            f"'{repository_name}' in the registry with id '{registry_id}'"
        )


class LifecyclePolicyPreviewInProgress(errors.Conflict):
    """A preview of the repository is still being evaluated (ECR
    ``LifecyclePolicyPreviewInProgressException``)."""

    def __init__(self, repository_name: str, registry_id: str) -> None:
        super().__init__(
            f"Previous lifecycle policy preview request has not completed for the repository "
            f"with name '{repository_name}' in the registry with id '{registry_id}'"
        )


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ExpiredImage:
    """One image a run expired (or, in a dry run, would expire).

    Attributes:
        digest: ``imageDigest``.
        tags: its tags when the run looked at it.
        pushed_at: ``imagePushedAt``, epoch seconds.
        rule_priority: the ``rulePriority`` of the rule that expired it.
    """

    digest: str
    tags: tuple[str, ...]
    pushed_at: float
    rule_priority: int


@dataclass
class RepositoryRunSummary:
    """What a run did in one repository.

    Attributes:
        repository: the repository name.
        evaluated: number of images (manifests) the policy was evaluated over; 0 when the policy
            could not be parsed.
        expired: images expired (dry run: that would be expired), in evaluation order
            (rule priority, then push time).
        skipped_transitions: images a ``transition`` rule acts on; Moorage has no archive, so
            they are left alone.
        also_deleted: digests of referrers deleted with an expired subject (cascade), not
            expired by a rule themselves.
        errors: human-readable problems (unparsable policy, a delete that failed); the run
            went on with the next image / repository.
    """

    repository: str
    evaluated: int = 0
    expired: list[ExpiredImage] = field(default_factory=list)
    skipped_transitions: list[ExpiredImage] = field(default_factory=list)
    also_deleted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class LifecycleRunSummary:
    """The outcome of :meth:`LifecycleExecutor.run`.

    Attributes:
        now: the evaluation instant, epoch seconds.
        dry_run: nothing was deleted and ``lastEvaluatedAt`` was not recorded.
        repositories: one entry per repository with a policy, by name.
    """

    now: float
    dry_run: bool
    repositories: list[RepositoryRunSummary] = field(default_factory=list)

    @property
    def expired_count(self) -> int:
        """Images expired (or that would be, in a dry run) over all repositories."""
        return sum(len(r.expired) for r in self.repositories)

    @property
    def evaluated_count(self) -> int:
        """Images evaluated over all repositories."""
        return sum(r.evaluated for r in self.repositories)


@dataclass(frozen=True)
class PreviewStarted:
    """Answer of :meth:`LifecycleExecutor.start_preview` (StartLifecyclePolicyPreview).

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


def _expired(expiration: Expiration) -> ExpiredImage:
    return ExpiredImage(expiration.digest, expiration.tags, expiration.pushed_at,
                        expiration.rule_priority)


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


# ---------------------------------------------------------------------------- executor


class LifecycleExecutor:
    """Run lifecycle policies and previews over the registry's metadata.

    Args:
        services: the registry's services (database, clock, image deletion).
        spawn: how a preview's evaluation is started; receives a no-argument job. Default: a
            daemon thread. Tests pass a function that keeps the job, to run it when they choose.
    """

    def __init__(self, services: Services, *, spawn: Spawner | None = None) -> None:
        self.services = services
        self.context = services.context
        self._spawn = spawn or _spawn_thread

    # -- facts ------------------------------------------------------------------------------

    def image_facts(self, repository_name: str) -> list[ImageFacts]:
        """What the engine needs about every image (manifest) of the repository, read in one
        transaction: digest, tags (sorted), ``pushed_at`` and ``last_pulled_at`` (epoch
        seconds), and ``is_child_of_index`` (referenced by an index / manifest list stored in
        the same repository). Every image is ``standard`` (Moorage has no archive).

        Raises:
            RepositoryNotFound.
        """
        with self.context.database.read() as session:
            repository = self.context.repository(session, repository_name)
            rows = session.execute(
                select(Image.id, Image.digest, Image.pushed_at, Image.last_pulled_at)
                .where(Image.repository_id == repository.id)
            ).all()
            tags: dict[int, list[str]] = {}
            for image_id, name in session.execute(
                select(Tag.image_id, Tag.name).where(Tag.repository_id == repository.id)
            ):
                tags.setdefault(image_id, []).append(name)
            children = set(session.scalars(
                select(ImageReference.digest)
                .join(Image, Image.id == ImageReference.image_id)
                .where(Image.repository_id == repository.id, ImageReference.kind == "manifest")
            ))
        return [
            ImageFacts(
                digest=digest,
                tags=tuple(sorted(tags.get(image_id, ()))),
                pushed_at=pushed_at,
                last_pulled_at=last_pulled_at,
                is_child_of_index=digest in children,
            )
            for image_id, digest, pushed_at, last_pulled_at in rows
        ]

    # -- runs -------------------------------------------------------------------------------

    def run(self, repository: str | None = None, dry_run: bool = False,
            now: float | None = None) -> LifecycleRunSummary:
        """Apply the stored lifecycle policy of every repository that has one (or of
        ``repository`` only) at instant ``now`` (ecr-api.md §4.3).

        Each image the policy expires is deleted as BatchDeleteImage by digest does (all its
        tags; its referrers recursively), logged as ``lifecycle.expired`` and counted in
        ``moorage_lifecycle_images_expired_total``. ``transition`` actions are skipped (no
        archive in Moorage). After a repository is done, its ``lastEvaluatedAt``
        (GetLifecyclePolicy) is set to ``now``. A policy that no longer parses is logged and
        skipped: nothing is deleted and ``lastEvaluatedAt`` is left alone. Failures in one
        repository or of one delete are logged, reported in the summary, and the run goes on.

        Args:
            repository: only this repository; ``None``: every repository with a policy.
            dry_run: evaluate and report only; delete nothing, record nothing.
            now: the evaluation instant, epoch seconds; default the server clock.

        Raises:
            RepositoryNotFound: ``repository`` does not exist.
            LifecyclePolicyNotFound: ``repository`` has no lifecycle policy.
        """
        instant = self.context.clock.now() if now is None else float(now)
        summary = LifecycleRunSummary(now=instant, dry_run=dry_run)
        for repository_id, name, text in self._targets(repository):
            summary.repositories.append(self._run_repository(repository_id, name, text, instant, dry_run))
        log.info("lifecycle.run_done", now=instant, dry_run=dry_run,
                 repositories=len(summary.repositories), evaluated=summary.evaluated_count,
                 expired=summary.expired_count,
                 errors=sum(len(r.errors) for r in summary.repositories))
        return summary

    def _targets(self, repository: str | None) -> list[tuple[int, str, str]]:
        with self.context.database.read() as session:
            if repository is not None:
                row = self.context.repository(session, repository)
                if row.lifecycle_policy is None:
                    raise LifecyclePolicyNotFound(row.name, self.context.registry_id)
                return [(row.id, row.name, row.lifecycle_policy)]
            return [tuple(r) for r in session.execute(  # type: ignore[misc]
                select(Repository.id, Repository.name, Repository.lifecycle_policy)
                .where(Repository.registry_id == self.context.registry_id,
                       Repository.lifecycle_policy.is_not(None))
                .order_by(Repository.name)
            )]

    def _run_repository(self, repository_id: int, name: str, text: str, now: float,
                        dry_run: bool) -> RepositoryRunSummary:
        result = RepositoryRunSummary(repository=name)
        try:
            policy = parse_lifecycle_policy(text)
        except LifecyclePolicyInvalid as error:
            log.warning("lifecycle.policy_invalid", repository=name, reason=error.detail)
            result.errors.append(f"stored lifecycle policy is invalid, skipped: {error.detail}")
            return result
        try:
            facts = self.image_facts(name)
            result.evaluated = len(facts)
            for expiration in evaluate(policy, facts, now):
                self._apply(name, expiration, dry_run, result)
            if not dry_run:
                with self.context.database.transaction() as session:
                    session.execute(update(Repository).where(Repository.id == repository_id)
                                    .values(lifecycle_evaluated_at=now))
        except errors.RepositoryNotFound:
            log.info("lifecycle.repository_gone", repository=name)
            result.errors.append("repository deleted during the run")
        except Exception as error:  # one repository's failure must not stop the others
            log.exception("lifecycle.repository_failed", repository=name)
            result.errors.append(f"evaluation failed: {type(error).__name__}: {error}")
        return result

    def _apply(self, name: str, expiration: Expiration, dry_run: bool,
               result: RepositoryRunSummary) -> None:
        fields = {"repository": name, "digest": expiration.digest, "tags": list(expiration.tags),
                  "rule_priority": expiration.rule_priority}
        if expiration.action.type != EXPIRE:
            log.info("lifecycle.transition_skipped", reason="no archive storage class", **fields)
            result.skipped_transitions.append(_expired(expiration))
            return
        if dry_run:
            log.info("lifecycle.would_expire", **fields)
            result.expired.append(_expired(expiration))
            return
        try:
            removed = self.services.images.delete_one(name, ImageId(digest=expiration.digest))
        except errors.RepositoryNotFound:
            raise
        except errors.ImageNotFound:
            log.info("lifecycle.already_gone", **fields)
            return
        except errors.MoorageError as error:
            log.warning("lifecycle.expire_failed", error=error.message, **fields)
            result.errors.append(f"{expiration.digest}: {error.message}")
            return
        cascade = sorted({digest for digest, _ in removed} - {expiration.digest})
        log.info("lifecycle.expired", referrers_deleted=cascade, **fields)
        IMAGES_EXPIRED.inc(1 + len(cascade))
        result.expired.append(_expired(expiration))
        result.also_deleted += cascade

    # -- previews ---------------------------------------------------------------------------

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
