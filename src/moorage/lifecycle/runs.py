"""Lifecycle runs: applying the stored lifecycle policies at an instant and deleting the images
they expire (ecr-api.md §4.3, DESIGN.md §6).

Each expired image is deleted exactly as ``BatchDeleteImage`` by digest does (tags, and
referrers recursively). The server runs :meth:`LifecycleRuns.run` periodically under a database
lease (``moorage.app.periodic_tasks``); ``moorage lifecycle run`` calls it on demand.

``transition`` actions are skipped: Moorage has no archive storage class, so the images they
claim are not deleted.

Consistency: facts are read in one transaction and each deletion is its own transaction, as a
client calling BatchDeleteImage would. An image deleted meanwhile is skipped; an image that
became a child of a newly pushed index is refused by the delete and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from sqlalchemy import select, update

from moorage import errors
from moorage.lifecycle.evaluate import Expiration, evaluate
from moorage.lifecycle.exceptions import LifecyclePolicyNotFound
from moorage.lifecycle.facts import ImageFactsReader
from moorage.lifecycle.rules import EXPIRE, LifecyclePolicyInvalid, parse_lifecycle_policy
from moorage.metrics import IMAGES_EXPIRED
from moorage.registry.images import ImageId
from moorage.storage.metadata.schema import Repository

__all__ = ["ExpiredImage", "LifecycleRunSummary", "LifecycleRuns", "RepositoryRunSummary"]

log = structlog.get_logger("moorage.lifecycle")


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
    """The outcome of :meth:`LifecycleRuns.run`.

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


def _expired(expiration: Expiration) -> ExpiredImage:
    return ExpiredImage(expiration.digest, expiration.tags, expiration.pushed_at,
                        expiration.rule_priority)


class LifecycleRuns(ImageFactsReader):
    """Run the stored lifecycle policies over the registry's metadata (the run half of
    :class:`~moorage.lifecycle.executor.LifecycleExecutor`).

    Args:
        services: the registry's services (database, clock, image deletion).
    """

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
