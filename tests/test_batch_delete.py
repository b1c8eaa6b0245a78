"""BatchDeleteImage's deletion plan in process, on SQLite and PostgreSQL: the same answer however
the plan's id lists are chunked, and a batch too large for the event loop is handed back
untouched (``WriteTooLarge``) to run where it may wait."""

from __future__ import annotations

import json

import pytest

from moorage import errors
from moorage.config import Settings
from moorage.registry import images as images_module
from moorage.registry.images import ImageId
from moorage.registry.repositories import RepositorySettings
from moorage.services import build_services
from moorage.storage.metadata.database import WriteTooLarge, WriterBusy
from tests.images import OCI_INDEX, OCI_MANIFEST, digest_of, make_image, make_index
from tests.test_put_races import _push_blob

EMPTY = b"{}"


@pytest.fixture
def services(tmp_path, fresh_database_url):  # type: ignore[no-untyped-def]
    built = build_services(Settings(data_dir=tmp_path / "data", database_url=fresh_database_url,
                                    account_id="123456789012"))
    yield built
    built.close()


def put_image(services, repository: str, tag: str | None = None, image=None):  # type: ignore[no-untyped-def]
    image = image or make_image(layer_count=1, layer_bytes=64)
    for content in image.blobs.values():
        _push_blob(services, repository, content)
    services.images.put(repository, image.manifest, OCI_MANIFEST, tag=tag)
    return image


def put_referrer(services, repository: str, subject, note: str) -> str:  # type: ignore[no-untyped-def]
    """An artifact whose subject is ``subject``; returns its digest."""
    _push_blob(services, repository, EMPTY)
    artifact = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(EMPTY), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(EMPTY), "size": 2}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": len(subject.manifest)},
        "annotations": {"note": note},
    }).encode()
    services.images.put(repository, artifact, OCI_MANIFEST)
    return digest_of(artifact)


def listed(services, repository: str) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    page, _ = services.listing.image_ids(repository, "ANY", None, 1000)
    return page


def outcome(removed, failures) -> tuple[list, list]:  # type: ignore[no-untyped-def]
    return sorted(removed, key=str), [(index, type(error).__name__) for index, error in failures]


def test_the_plan_is_the_same_in_chunks_of_one(services, monkeypatch):
    """Every id list of the plan bound one value at a time gives the same removals, failures
    and survivors as one list: tags, digests, an index and its child, referrers, a mismatch."""
    results = []
    first, second, third, child = (make_image(layer_count=1, layer_bytes=64) for _ in range(4))
    for repository, chunk in (("plan/whole", 500), ("plan/chunked", 1)):
        monkeypatch.setattr(images_module, "_IN_LIST_CHUNK", chunk)
        services.repositories.create(repository, RepositorySettings())
        for image, tag in ((first, "a"), (second, "b"), (third, "c"), (child, None)):
            put_image(services, repository, tag, image)
        services.images.put(repository, first.manifest, OCI_MANIFEST, tag="a2")
        services.images.put(repository, make_index({"amd64": child}), OCI_INDEX, tag="multi")
        put_referrer(services, repository, second, "one")
        put_referrer(services, repository, second, "two")
        batch = [ImageId(tag="c", digest=first.digest), ImageId(tag="a"), ImageId(tag="a2"),
                 ImageId(digest=second.digest), ImageId(digest=child.digest),
                 ImageId(tag="missing"), ImageId(digest="sha256:" + "0" * 64), ImageId(tag="a")]
        removed, failures = services.images.delete_many(repository, batch)
        results.append((*outcome(removed, failures), sorted(listed(services, repository), key=str)))
    whole, chunked = results
    assert whole == chunked
    removed, failures, survivors = whole
    assert failures == [(0, "TagDigestMismatch"), (4, "ImageReferencedByIndex"),
                        (5, "ImageNotFound"), (6, "ImageNotFound"), (7, "ImageNotFound")]
    assert len(removed) == 5  # a, a2 (the image with them), the second image and its 2 referrers
    assert {tag for _, tag in survivors} == {"c", "multi", None}


def test_a_batch_too_large_for_the_event_loop_is_handed_back(services, monkeypatch):
    """On the event loop (``wait_for_writer=False``) a batch whose images, referrers included,
    exceed INLINE_DELETE_IMAGES deletes nothing and raises WriteTooLarge (a WriterBusy, so the
    endpoint reruns it in a worker thread), where it deletes everything."""
    monkeypatch.setattr(images_module, "INLINE_DELETE_IMAGES", 3)
    services.repositories.create("big/app", RepositorySettings())
    subject = put_image(services, "big/app", "v1")
    referrers = {put_referrer(services, "big/app", subject, str(i)) for i in range(3)}
    before = listed(services, "big/app")
    with pytest.raises(WriteTooLarge) as raised:
        services.images.delete_many("big/app", [ImageId(tag="v1")], wait_for_writer=False)
    assert isinstance(raised.value, WriterBusy)
    assert listed(services, "big/app") == before
    removed, failures = services.images.delete_many("big/app", [ImageId(tag="v1")],
                                                    wait_for_writer=True)
    assert not failures and {digest for digest, _ in removed} == referrers | {subject.digest}
    assert listed(services, "big/app") == []
    # Within the limit, the same call runs inline.
    small = put_image(services, "big/app", "v2")
    removed, _ = services.images.delete_many("big/app", [ImageId(tag="v2")], wait_for_writer=False)
    assert removed == [(small.digest, "v2")]
    with pytest.raises(errors.RepositoryNotFound):
        services.images.delete_many("big/none", [ImageId(tag="v2")], wait_for_writer=False)
