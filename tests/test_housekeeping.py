"""Garbage collection and fsck: reclaim storage without ever breaking an image or a push."""

from __future__ import annotations

import os
import random
import threading
import time

import httpx
import pytest
import sqlalchemy

from moorage.config import Settings
from moorage.registry.housekeeping import Housekeeping
from moorage.services import build_services
from tests.conftest import ACCOUNT_ID
from tests.images import OCI_MANIFEST, compact, digest_of, make_image

QUIET = {"MOORAGE_GC_INTERVAL": "0", "MOORAGE_LIFECYCLE_INTERVAL": "0"}


def push(http: httpx.Client, repository: str, image, tag: str) -> int:  # type: ignore[no-untyped-def]
    for blob in image.blobs.values():
        response = http.post(f"/v2/{repository}/blobs/uploads/", params={"digest": digest_of(blob)}, content=blob)
        assert response.status_code == 201, response.text
    return http.put(f"/v2/{repository}/manifests/{tag}", content=image.manifest,
                    headers={"Content-Type": OCI_MANIFEST}).status_code


@pytest.fixture
def quiet_server(own_server):  # type: ignore[no-untyped-def]
    return own_server(QUIET)


def test_gc_reclaims_blobs_of_deleted_images_only(quiet_server):
    server = quiet_server
    ecr = server.ecr()
    ecr.create_repository(repositoryName="gc/app")
    kept, dropped = make_image(layer_bytes=50_000), make_image(layer_bytes=60_000)
    with server.http() as http:
        assert push(http, "gc/app", kept, "kept") == 201
        assert push(http, "gc/app", dropped, "dropped") == 201
        abandoned = http.post("/v2/gc/app/blobs/uploads/").headers["location"]
        http.patch(abandoned, content=b"half an upload")
    ecr.batch_delete_image(repositoryName="gc/app", imageIds=[{"imageTag": "dropped"}])

    # Within the grace period nothing goes.
    within = server.moorage("gc")
    assert within.returncode == 0, within.stderr
    assert "removed: 0 blobs" in within.stdout

    dry = server.moorage("gc", "--dry-run", env={"MOORAGE_GC_GRACE": "0"})
    count = len(dropped.blobs)
    assert f"would remove: {count} blobs" in dry.stdout and "1 abandoned uploads" in dry.stdout
    for blob_digest in dropped.blobs:
        assert (server.data_dir / "blobs" / "sha256" / blob_digest[7:9] / blob_digest[7:]).exists()

    done = server.moorage("gc", env={"MOORAGE_GC_GRACE": "0"})
    assert done.returncode == 0, done.stderr
    dropped_bytes = sum(len(b) for b in dropped.blobs.values())
    assert f"removed: {count} blobs ({dropped_bytes} bytes), 1 abandoned uploads" in done.stdout
    with server.http() as http:
        for blob_digest in dropped.blobs:
            assert http.head(f"/v2/gc/app/blobs/{blob_digest}").status_code == 404
            assert not (server.data_dir / "blobs" / "sha256" / blob_digest[7:9] / blob_digest[7:]).exists()
        for blob_digest, blob in kept.blobs.items():
            assert http.get(f"/v2/gc/app/blobs/{blob_digest}").content == blob
        assert http.get(abandoned).status_code == 404
    assert server.moorage("fsck").returncode == 0


def test_gc_keeps_blobs_shared_with_another_repository(quiet_server):
    server = quiet_server
    ecr = server.ecr()
    for name in ["share/one", "share/two"]:
        ecr.create_repository(repositoryName=name)
    image = make_image()
    with server.http() as http:
        assert push(http, "share/one", image, "v1") == 201
        assert push(http, "share/two", image, "v1") == 201
    ecr.delete_repository(repositoryName="share/one", force=True)
    assert "removed: 0 blobs" in server.moorage("gc", env={"MOORAGE_GC_GRACE": "0"}).stdout
    with server.http() as http:
        assert http.get("/v2/share/two/manifests/v1").status_code == 200
        for blob_digest in image.blobs:
            assert http.head(f"/v2/share/two/blobs/{blob_digest}").status_code == 200


def test_push_racing_gc_never_leaves_a_broken_image(quiet_server):
    """Pushes and collections (grace 0, the most aggressive setting) run concurrently: a manifest
    PUT that succeeds always references blobs that are still there."""
    server = quiet_server
    server.ecr().create_repository(repositoryName="race/gc")
    settings = Settings(data_dir=server.data_dir, database_url=server.database_url, account_id=ACCOUNT_ID)
    services = build_services(settings)
    housekeeping = Housekeeping(services.context)
    stop = threading.Event()
    collections = []

    def collect() -> None:
        # Collections at random moments: some land between a blob upload and the manifest
        # that references it, some while a manifest is being stored.
        while not stop.wait(random.uniform(0, 0.02)):
            collections.append(housekeeping.collect(grace_seconds=0))

    collector = threading.Thread(target=collect)
    collector.start()
    pushed, refused = [], 0
    try:
        with server.http() as http:
            for round_number in range(80):
                config = compact({"round": round_number, "nonce": os.urandom(4).hex()})
                layer = os.urandom(2000)
                statuses = [http.post("/v2/race/gc/blobs/uploads/", params={"digest": digest_of(b)},
                                      content=b).status_code for b in (config, layer)]
                # Grace 0 also collects upload sessions as soon as they exist: an upload may be
                # refused cleanly (BLOB_UPLOAD_UNKNOWN), never half-stored.
                assert set(statuses) <= {201, 404}
                manifest = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                               "digest": digest_of(config), "size": len(config)},
                                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                                "digest": digest_of(layer), "size": len(layer)}]})
                response = http.put(f"/v2/race/gc/manifests/r{round_number}", content=manifest,
                                    headers={"Content-Type": OCI_MANIFEST})
                if response.status_code == 201:
                    pushed.append((round_number, config, layer))
                else:
                    assert response.status_code == 400
                    assert response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
                    refused += 1
    finally:
        stop.set()
        collector.join(60)
    with server.http() as http:
        for round_number, config, layer in pushed:
            assert http.get(f"/v2/race/gc/manifests/r{round_number}").status_code == 200
            assert http.get(f"/v2/race/gc/blobs/{digest_of(config)}").content == config
            assert http.get(f"/v2/race/gc/blobs/{digest_of(layer)}").content == layer
    print(f"pushed {len(pushed)}, refused {refused}, collections {len(collections)}")
    assert len(collections) > 1 and pushed
    assert sum(len(c.blobs) + len(c.uploads) for c in collections) > 0
    report = housekeeping.fsck()
    assert report.consistent, report.problems
    services.close()


def test_fsck_finds_and_repairs(quiet_server):
    server = quiet_server
    server.ecr().create_repository(repositoryName="fsck/app")
    image = make_image()
    stray = os.urandom(3000)
    with server.http() as http:
        assert push(http, "fsck/app", image, "v1") == 201
        assert http.post("/v2/fsck/app/blobs/uploads/", params={"digest": digest_of(stray)},
                         content=stray).status_code == 201
    clean = server.moorage("fsck")
    assert clean.returncode == 0 and "0 problems" in clean.stdout

    def blob_file(digest: str):  # type: ignore[no-untyped-def]
        return server.data_dir / "blobs" / "sha256" / digest[7:9] / digest[7:]

    blob_file(digest_of(stray)).write_bytes(b"corrupted")
    layer_digest = digest_of(image.layers[0])
    blob_file(layer_digest).write_bytes(b"x" * len(image.layers[0]))
    found = server.moorage("fsck")
    assert found.returncode == 1
    assert f"blob {digest_of(stray)}: 9 bytes stored" in found.stdout
    assert f"blob {layer_digest}: content hashes to" in found.stdout
    repaired = server.moorage("fsck", "--repair")
    assert repaired.returncode == 1  # the referenced layer cannot be repaired
    assert f"repaired: blob {digest_of(stray)}" in repaired.stdout
    assert f"PROBLEM: blob {layer_digest}" in repaired.stdout
    blob_file(layer_digest).write_bytes(image.layers[0])
    assert server.moorage("fsck").returncode == 0


def test_a_blob_pushed_again_is_young_again(own_server):
    """A blob whose image was deleted long ago and that is pushed again must not be collected
    before the manifest that references it arrives."""
    server = own_server({**QUIET, "MOORAGE_TEST_CLOCK": "1"})
    server.ecr().create_repository(repositoryName="again/app")
    image = make_image()
    httpx.post(server.url + "/_moorage/clock", json={"now": time.time() - 3 * 86400})
    with server.http() as http:
        assert push(http, "again/app", image, "old") == 201
        assert http.delete(f"/v2/again/app/manifests/{image.digest}").status_code == 202
    httpx.post(server.url + "/_moorage/clock", json={"now": None})
    with server.http() as http:
        for blob in image.blobs.values():  # pushed again today
            assert http.post("/v2/again/app/blobs/uploads/", params={"digest": digest_of(blob)},
                             content=blob).status_code == 201
        collected = server.moorage("gc", env={"MOORAGE_GC_GRACE": "86400"})
        assert "removed: 0 blobs" in collected.stdout, collected.stdout
        assert http.put("/v2/again/app/manifests/new", content=image.manifest,
                        headers={"Content-Type": OCI_MANIFEST}).status_code == 201


def test_collection_respects_rows_and_locks(quiet_server, monkeypatch):
    """Crash residue goes only when no row names it; a busy upload is never collected."""
    from moorage.registry import housekeeping as module
    from moorage.storage.metadata.schema import Blob

    server = quiet_server
    server.ecr().create_repository(repositoryName="residue/app")
    settings = Settings(data_dir=server.data_dir, database_url=server.database_url, account_id=ACCOUNT_ID)
    services = build_services(settings)
    try:
        keeper = Housekeeping(services.context)
        monkeypatch.setattr(module, "ORPHAN_FILE_MIN_AGE_SECONDS", -60)
        residue = os.urandom(100)
        path = services.context.blobs.blob_path(digest_of(residue))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(residue)
        with services.context.database.transaction() as session:  # a publisher's claimed row
            session.add(Blob(digest=digest_of(residue), size_bytes=100, created_at=time.time() + 3600))
        assert keeper.collect(grace_seconds=0).orphan_files == [] and path.exists()
        with services.context.database.transaction() as session:
            session.execute(sqlalchemy.delete(Blob).where(Blob.digest == digest_of(residue)))
        assert keeper.collect(grace_seconds=0).orphan_files == [str(path)] and not path.exists()

        with server.http() as http:
            location = http.post("/v2/residue/app/blobs/uploads/").headers["location"]
            upload_id = location.rsplit("/", 1)[1]
            fd = services.context.blobs.lock_upload(upload_id)  # a request is writing to it
            try:
                assert upload_id not in keeper.collect(grace_seconds=0).uploads
            finally:
                os.close(fd)
            assert http.get(location).status_code == 204
            assert upload_id in keeper.collect(grace_seconds=0).uploads
            assert http.get(location).status_code == 404
    finally:
        services.close()


def test_mount_of_a_collected_blob_starts_an_upload(quiet_server):
    server = quiet_server
    ecr = server.ecr()
    for name in ["mount/source", "mount/target"]:
        ecr.create_repository(repositoryName=name)
    blob = os.urandom(500)
    with server.http() as http:
        assert http.post("/v2/mount/source/blobs/uploads/", params={"digest": digest_of(blob)},
                         content=blob).status_code == 201
        assert "removed: 1 blobs" in server.moorage("gc", env={"MOORAGE_GC_GRACE": "0"}).stdout
        mounted = http.post("/v2/mount/target/blobs/uploads/",
                            params={"mount": digest_of(blob), "from": "mount/source"})
        assert mounted.status_code == 202
