"""The main job: skopeo pushes real images and pulls them back byte-for-byte.

Runs on every fixture of ../shared/fixtures when present, and always on images built here.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import FIXTURES
from tests.images import (
    OCI_INDEX,
    OCI_MANIFEST,
    layout_blob_digests,
    make_image,
    make_index,
    read_layout_top,
    write_layout,
)

needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures is absent")

BUSYBOX_DIGEST = "sha256:0fce51719ec5af926e86d9be4b2b8df7159d85f1d83b0f8978c5770dbe43ab9d"
MULTIARCH_DIGEST = "sha256:75f4a0582886df1ff510cb8b65d8a284598632ecac8c5223892807cc102ff9cc"
V2S2_DIGEST = "sha256:859d2b1bbd2342464a9123d07028f8d4606048b34ae70af43990e9568c4f55f4"
ARTIFACT_DIGEST = "sha256:b457eaeb44b5f6893cafe4996ab9791ee2f3d690e41870e56edabaec614ea350"


def test_built_image_round_trip(server, skopeo, repository, tmp_path, ecr):
    image = make_image(layer_count=3, layer_bytes=200_000)
    source = tmp_path / "source"
    write_layout(source, "v1", image.manifest, OCI_MANIFEST, image.blobs)
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{source}:v1",
           f"docker://{server.host}/{repository}:v1")

    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{server.host}/{repository}:v1")
    assert raw.stdout.encode() == image.manifest

    target = tmp_path / "pulled"
    skopeo("copy", "--src-tls-verify=false", f"docker://{server.host}/{repository}:v1", f"oci:{target}:v1")
    digest, content = read_layout_top(target, "v1")
    assert digest == image.digest and content == image.manifest
    for blob_digest, blob in image.blobs.items():
        assert (target / "blobs" / "sha256" / blob_digest.split(":")[1]).read_bytes() == blob

    listed = ecr.describe_repositories(repositoryNames=[repository])["repositories"]
    assert listed[0]["repositoryName"] == repository


def test_built_multiarch_round_trip(server, skopeo, repository, tmp_path, http):
    images = {"amd64": make_image("amd64"), "arm64": make_image("arm64")}
    index = make_index(images)
    blobs = {}
    for image in images.values():
        blobs.update(image.blobs)
        blobs[image.digest] = image.manifest
    source = tmp_path / "source"
    write_layout(source, "multi", index, OCI_INDEX, blobs)
    skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false", f"oci:{source}:multi",
           f"docker://{server.host}/{repository}:multi")

    response = http.get(f"/v2/{repository}/manifests/multi", headers={"Accept": OCI_INDEX})
    assert response.status_code == 200
    assert response.content == index
    assert response.headers["docker-content-digest"] == "sha256:" + __import__("hashlib").sha256(index).hexdigest()
    for image in images.values():
        child = http.get(f"/v2/{repository}/manifests/{image.digest}", headers={"Accept": OCI_MANIFEST})
        assert child.status_code == 200 and child.content == image.manifest

    target = tmp_path / "pulled"
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{server.host}/{repository}:multi",
           f"oci:{target}:multi")
    assert layout_blob_digests(target) == layout_blob_digests(source)


@needs_fixtures
def test_fixture_busybox_amd64(server, skopeo, repository, tmp_path):
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false",
           f"oci:{FIXTURES / 'busybox-amd64'}:1.35", f"docker://{server.host}/{repository}:1.35")
    target = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", f"docker://{server.host}/{repository}:1.35", f"oci:{target}:1.35")
    digest, _ = read_layout_top(target, "1.35")
    assert digest == BUSYBOX_DIGEST
    assert layout_blob_digests(target) == layout_blob_digests(FIXTURES / "busybox-amd64")


@needs_fixtures
def test_fixture_multiarch(server, skopeo, repository, tmp_path):
    skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
           f"oci:{FIXTURES / 'busybox-multiarch'}:1.35", f"docker://{server.host}/{repository}:1.35")
    target = tmp_path / "out"
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{server.host}/{repository}:1.35",
           f"oci:{target}:1.35")
    digest, _ = read_layout_top(target, "1.35")
    assert digest == MULTIARCH_DIGEST
    assert layout_blob_digests(target) == layout_blob_digests(FIXTURES / "busybox-multiarch")
    inspected = skopeo("inspect", "--override-arch", "arm64", "--tls-verify=false",
                       f"docker://{server.host}/{repository}:1.35")
    assert json.loads(inspected.stdout)["Architecture"] == "arm64"


@needs_fixtures
def test_fixture_docker_v2s2(server, skopeo, repository, tmp_path, http):
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false",
           f"dir:{FIXTURES / 'busybox-docker-v2s2'}", f"docker://{server.host}/{repository}:v2s2")
    response = http.get(f"/v2/{repository}/manifests/v2s2",
                        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert response.headers["docker-content-digest"] == V2S2_DIGEST
    assert response.content == (FIXTURES / "busybox-docker-v2s2" / "manifest.json").read_bytes()
    target = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", f"docker://{server.host}/{repository}:v2s2", f"dir:{target}")
    assert (target / "manifest.json").read_bytes() == response.content


@needs_fixtures
def test_fixture_artifact_with_subject(server, skopeo, repository, http):
    layout = FIXTURES / "artifact-with-subject"
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:1.35",
           f"docker://{server.host}/{repository}:1.35")
    # The artifact by raw HTTP, by digest only (as oras and cosign push it).
    artifact = (layout / "blobs" / "sha256" / ARTIFACT_DIGEST.split(":")[1]).read_bytes()
    document = json.loads(artifact)
    for descriptor in [document["config"], *document["layers"]]:
        content = (layout / "blobs" / "sha256" / descriptor["digest"].split(":")[1]).read_bytes()
        started = http.post(f"/v2/{repository}/blobs/uploads/")
        assert started.status_code == 202
        done = http.put(started.headers["location"], params={"digest": descriptor["digest"]}, content=content)
        assert done.status_code == 201, done.text
    put = http.put(f"/v2/{repository}/manifests/{ARTIFACT_DIGEST}", content=artifact,
                   headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 201, put.text
    assert put.headers["oci-subject"] == BUSYBOX_DIGEST

    referrers = http.get(f"/v2/{repository}/referrers/{BUSYBOX_DIGEST}")
    assert referrers.status_code == 200
    assert referrers.headers["content-type"] == OCI_INDEX
    assert referrers.json() == {
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": ARTIFACT_DIGEST, "size": 727,
            "artifactType": "application/spdx+json",
            "annotations": {"org.opencontainers.image.created": "2026-11-29T00:00:00Z"},
        }],
    }
    filtered = http.get(f"/v2/{repository}/referrers/{BUSYBOX_DIGEST}",
                        params={"artifactType": "application/spdx+json"})
    assert filtered.headers["oci-filters-applied"] == "artifactType"
    assert len(filtered.json()["manifests"]) == 1
    other = http.get(f"/v2/{repository}/referrers/{BUSYBOX_DIGEST}",
                     params={"artifactType": "application/vnd.example"})
    assert other.json()["manifests"] == []
    assert other.headers["oci-filters-applied"] == "artifactType"
