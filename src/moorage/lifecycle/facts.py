"""Reading what the lifecycle engine evaluates from the metadata store: the
:class:`~moorage.lifecycle.evaluate.ImageFacts` of a repository's images.

:class:`ImageFactsReader` is the common base of :class:`~moorage.lifecycle.runs.LifecycleRuns`
and :class:`~moorage.lifecycle.previews.LifecyclePreviews`, so runs and previews see the same
facts.
"""

from __future__ import annotations

from sqlalchemy import select

from moorage.lifecycle.evaluate import ImageFacts
from moorage.services import Services
from moorage.storage.metadata.schema import Image, ImageReference, Tag

__all__ = ["ImageFactsReader"]


class ImageFactsReader:
    """The registry's services and the image facts of its repositories.

    Args:
        services: the registry's services (database, clock, image deletion).
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.context = services.context

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
