"""On PostgreSQL, a manifest PUT that waits for the repository lock held by a
concurrent delete (BatchDeleteImage / DELETE manifest lock the repository row the same way)
must read the image/tag state after the delete (a statement's snapshot predates its lock wait,
so the lock is taken in a statement of its own): it stores the manifest again and its tag."""

from __future__ import annotations

import hashlib
import threading
import time

import psycopg
import pytest

from moorage import errors
from moorage.config import Settings
from moorage.registry.pulls import PullReads
from moorage.registry.repositories import RepositorySettings
from moorage.services import build_services
from tests.images import make_image


def _push_blob(services, name, content):
    upload_id = services.uploads.start(name)
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    with services.uploads.append(name, upload_id, 0) as append:
        append.write(content)
    services.uploads.complete(name, upload_id, digest)
    return digest


def _delete_image_slowly(url, digest, deleted, hold_seconds=1.0):
    """What ImageService.delete_many does for one untagged-or-tagged image, with the
    transaction held open a moment after the deletes (as a slow commit would)."""
    with psycopg.connect(url) as connection:
        (repository_id,) = connection.execute(
            "SELECT id FROM repositories WHERE name = 'race' FOR UPDATE").fetchone()
        (image_id,) = connection.execute(
            "SELECT id FROM images WHERE repository_id = %s AND digest = %s",
            (repository_id, digest)).fetchone()
        connection.execute("DELETE FROM tags WHERE image_id = %s", (image_id,))
        connection.execute("DELETE FROM image_references WHERE image_id = %s", (image_id,))
        connection.execute("DELETE FROM images WHERE id = %s", (image_id,))
        deleted.set()
        time.sleep(hold_seconds)
        connection.commit()


@pytest.mark.parametrize("fresh_database_url", ["postgresql"], indirect=True)
def test_put_racing_delete_keeps_the_manifest(tmp_path, fresh_database_url):
    services = build_services(Settings(data_dir=tmp_path / "data", database_url=fresh_database_url,
                                       account_id="123456789012"))
    try:
        services.repositories.create("race", RepositorySettings())
        image = make_image()
        for content in image.blobs.values():
            _push_blob(services, "race", content)
        media = "application/vnd.oci.image.manifest.v1+json"
        services.images.put("race", image.manifest, media, tag="t")

        deleted = threading.Event()
        deleter = threading.Thread(target=_delete_image_slowly,
                                   args=(fresh_database_url, image.digest, deleted))
        deleter.start()
        assert deleted.wait(5)
        # The client re-pushes the same manifest and tag while the delete commits.
        services.images.put("race", image.manifest, media, tag="t")  # answers success
        deleter.join()

        # The PUT returned after the delete committed: its manifest and tag must exist.
        try:
            _, digest, *_ = PullReads(services.context).manifest(
                "race", "t", by_digest=False, with_content=False)
        except errors.ImageNotFound:
            pytest.fail("PUT answered success but the manifest/tag it stored does not exist")
        assert digest == image.digest
    finally:
        services.close()
