"""The OCI Distribution API v1.1 over raw HTTP: the conformance workflows (pull, push, content
discovery, content management) and every error path, each with the spec's code and status."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest

from tests.images import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, compact, digest_of, make_image, make_index

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def error_of(response: httpx.Response) -> str:
    return response.json()["errors"][0]["code"]


def push_blob(http: httpx.Client, repository: str, content: bytes) -> str:
    digest = digest_of(content)
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202, started.text
    done = http.put(started.headers["location"], params={"digest": digest}, content=content,
                    headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 201, done.text
    return digest


def push_image(http: httpx.Client, repository: str, tag: str | None = None, image=None):  # type: ignore[no-untyped-def]
    image = image or make_image()
    for blob in image.blobs.values():
        push_blob(http, repository, blob)
    reference = tag or image.digest
    response = http.put(f"/v2/{repository}/manifests/{reference}", content=image.manifest,
                        headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    return image


# -- base and auth -----------------------------------------------------------------------------


def test_api_version_check(server, http):
    response = http.get("/v2/")
    assert response.status_code == 200
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


@pytest.mark.parametrize("auth", [None, ("AWS", "not-a-token"), ("admin", "x"), ("AWS", "a.b")])
def test_unauthorized(server, auth, repository):
    for path in ["/v2/", f"/v2/{repository}/tags/list"]:
        response = httpx.get(server.url + path, auth=auth)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith('Basic realm="https://')
        assert 'service="ecr.amazonaws.com"' in response.headers["www-authenticate"]
        assert error_of(response) == "UNAUTHORIZED"


@pytest.mark.parametrize("value", [b"Basic \xc3\xa9", b"Basic QVdTOnRva2Vu\xff", b"Basic \xe2\x82\xac=="])
def test_non_ascii_basic_credentials_are_unauthorized(server, value):
    response = httpx.get(server.url + "/v2/", headers={"Authorization": value})
    assert response.status_code == 401 and error_of(response) == "UNAUTHORIZED"
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_bearer_is_unauthorized(server):
    response = httpx.get(server.url + "/v2/", headers={"Authorization": "Bearer abc"})
    assert response.status_code == 401


def test_token_signed_with_another_secret_is_rejected(server):
    from moorage.auth.tokens import TokenIssuer

    forged, _ = TokenIssuer(b"another-secret").issue("AKIATESTMOORAGE00001", "admin", "123456789012", "us-east-1", __import__("time").time())
    assert httpx.get(server.url + "/v2/", auth=("AWS", forged)).status_code == 401


# -- pull --------------------------------------------------------------------------------------


def test_pull_manifest_by_tag_and_digest(http, repository):
    image = push_image(http, repository, "v1")
    for reference in ["v1", image.digest]:
        response = http.get(f"/v2/{repository}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert response.status_code == 200
        assert response.content == image.manifest
        assert response.headers["content-type"] == OCI_MANIFEST
        assert response.headers["docker-content-digest"] == image.digest
        head = http.head(f"/v2/{repository}/manifests/{reference}")
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(image.manifest))
        assert head.headers["docker-content-digest"] == image.digest


def test_manifest_not_acceptable_is_unknown(http, repository):
    push_image(http, repository, "v1")
    response = http.get(f"/v2/{repository}/manifests/v1", headers={"Accept": DOCKER_V2})
    assert response.status_code == 404 and error_of(response) == "MANIFEST_UNKNOWN"
    any_type = http.get(f"/v2/{repository}/manifests/v1", headers={"Accept": "*/*"})
    assert any_type.status_code == 200


def test_pull_blob_and_ranges(http, repository):
    content = os.urandom(100_000)
    digest = push_blob(http, repository, content)
    response = http.get(f"/v2/{repository}/blobs/{digest}")
    assert response.status_code == 200 and response.content == content
    assert response.headers["docker-content-digest"] == digest
    head = http.head(f"/v2/{repository}/blobs/{digest}")
    assert head.status_code == 200 and head.headers["content-length"] == "100000"
    part = http.get(f"/v2/{repository}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == content[10:20]
    assert part.headers["content-range"] == "bytes 10-19/100000"
    tail = http.get(f"/v2/{repository}/blobs/{digest}", headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == content[-5:]
    beyond = http.get(f"/v2/{repository}/blobs/{digest}", headers={"Range": "bytes=200000-300000"})
    assert beyond.status_code == 416


def test_unknown_manifest_and_blob(http, repository):
    missing = "sha256:" + "0" * 64
    response = http.get(f"/v2/{repository}/manifests/nope")
    assert response.status_code == 404 and error_of(response) == "MANIFEST_UNKNOWN"
    response = http.get(f"/v2/{repository}/manifests/{missing}")
    assert response.status_code == 404 and error_of(response) == "MANIFEST_UNKNOWN"
    response = http.get(f"/v2/{repository}/blobs/{missing}")
    assert response.status_code == 404 and error_of(response) == "BLOB_UNKNOWN"
    head = http.head(f"/v2/{repository}/blobs/{missing}")
    assert head.status_code == 404 and head.content == b""
    # A HEAD error carries the headers of the GET's answer (RFC 9110 §9.3.2), without its body.
    assert head.headers["content-length"] == response.headers["content-length"] != "0"
    assert head.headers["content-type"] == response.headers["content-type"] == "application/json"


def test_blob_of_another_repository_is_not_visible(http, ecr, repository):
    other = repository + "-other"
    ecr.create_repository(repositoryName=other)
    digest = push_blob(http, other, os.urandom(1000))
    response = http.get(f"/v2/{repository}/blobs/{digest}")
    assert response.status_code == 404 and error_of(response) == "BLOB_UNKNOWN"


def test_missing_repository_is_name_unknown(http):
    for method, path in [("GET", "/v2/no-such-repo/tags/list"), ("POST", "/v2/no-such-repo/blobs/uploads/"),
                         ("GET", "/v2/no-such-repo/manifests/latest")]:
        response = http.request(method, path)
        assert response.status_code == 404 and error_of(response) == "NAME_UNKNOWN", path


@pytest.mark.parametrize("path", [
    "/v2/UPPER/tags/list", "/v2/a..b/tags/list", "/v2/%2e%2e/x/tags/list", "/v2/a//b/tags/list",
    "/v2/a/-b/tags/list",
])
def test_invalid_names(http, path):
    response = http.get(path)
    assert response.status_code in (400, 404)
    assert error_of(response) in ("NAME_INVALID", "NAME_UNKNOWN")


def test_path_traversal_never_escapes(server, http):
    response = http.get("/v2/../../etc/passwd/blobs/sha256:" + "0" * 64)
    assert response.status_code in (400, 404)
    assert b"root:" not in response.content


def test_invalid_digest_and_tag(http, repository):
    response = http.get(f"/v2/{repository}/blobs/sha256:abc")
    assert response.status_code == 400 and error_of(response) == "DIGEST_INVALID"
    response = http.get(f"/v2/{repository}/blobs/md5:" + "0" * 32)
    assert response.status_code == 400 and error_of(response) == "DIGEST_INVALID"
    response = http.get(f"/v2/{repository}/manifests/-bad-tag")
    assert response.status_code == 400 and error_of(response) == "TAG_INVALID"


def test_unsupported_method(http, repository):
    response = http.post(f"/v2/{repository}/tags/list")
    assert response.status_code == 405 and error_of(response) == "UNSUPPORTED"


# -- push --------------------------------------------------------------------------------------


def test_monolithic_post_upload(http, repository):
    content = os.urandom(5000)
    response = http.post(f"/v2/{repository}/blobs/uploads/", params={"digest": digest_of(content)}, content=content)
    assert response.status_code == 201
    assert response.headers["location"] == f"/v2/{repository}/blobs/{digest_of(content)}"
    assert http.get(response.headers["location"]).content == content


def test_chunked_upload(http, repository):
    content = os.urandom(3 * 65536 + 17)
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202
    assert started.headers["docker-upload-uuid"]
    location = started.headers["location"]
    offset = 0
    for chunk_size in [65536, 65536, 65536 + 17]:
        chunk = content[offset:offset + chunk_size]
        patched = http.patch(location, content=chunk, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
        assert patched.status_code == 202, patched.text
        offset += len(chunk)
        assert patched.headers["range"] == f"0-{offset - 1}"
        location = patched.headers["location"]
    status = http.get(location)
    assert status.status_code == 204 and status.headers["range"] == f"0-{len(content) - 1}"
    done = http.put(location, params={"digest": digest_of(content)})
    assert done.status_code == 201
    assert http.get(f"/v2/{repository}/blobs/{digest_of(content)}").content == content


def test_streamed_patch_without_content_range(http, repository):
    content = os.urandom(2_500_000)
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    patched = http.patch(started.headers["location"], content=iter([content[:1_000_000], content[1_000_000:]]))
    assert patched.status_code == 202
    done = http.put(patched.headers["location"], params={"digest": digest_of(content)})
    assert done.status_code == 201


def test_out_of_order_chunk(http, repository):
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    location = started.headers["location"]
    assert http.patch(location, content=b"abcd", headers={"Content-Range": "0-3"}).status_code == 202
    wrong = http.patch(location, content=b"efgh", headers={"Content-Range": "10-13"})
    assert wrong.status_code == 416
    assert wrong.headers["range"] == "0-3"
    assert error_of(wrong) == "BLOB_UPLOAD_INVALID"
    malformed = http.patch(location, content=b"efgh", headers={"Content-Range": "bytes"})
    assert malformed.status_code == 416
    short = http.patch(location, content=b"ef", headers={"Content-Range": "4-7"})
    assert short.status_code == 400
    # The failed chunks left nothing behind.
    assert http.get(location).headers["range"] == "0-3"
    done = http.put(location, params={"digest": digest_of(b"abcdefgh")}, content=b"efgh")
    assert done.status_code == 201


@pytest.mark.parametrize("final_size", [10, 2_000_000])
@pytest.mark.parametrize("with_range", [False, True])
def test_final_chunk_sent_with_the_put(http, repository, final_size, with_range):
    """The completing PUT carries the last chunk: small or large, with or without
    Content-Range; the blob is the exact concatenation."""
    first, last = os.urandom(70_000), os.urandom(final_size)
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    patched = http.patch(started.headers["location"], content=first,
                         headers={"Content-Range": f"0-{len(first) - 1}"})
    headers = {"Content-Range": f"{len(first)}-{len(first) + final_size - 1}"} if with_range else {}
    done = http.put(patched.headers["location"], params={"digest": digest_of(first + last)},
                    content=last, headers=headers)
    assert done.status_code == 201, done.text
    assert http.get(f"/v2/{repository}/blobs/{digest_of(first + last)}").content == first + last
    wrong_start = http.post(f"/v2/{repository}/blobs/uploads/")
    refused = http.put(wrong_start.headers["location"], params={"digest": digest_of(last)},
                       content=last, headers={"Content-Range": f"5-{final_size + 4}"})
    assert refused.status_code == 416 and error_of(refused) == "BLOB_UPLOAD_INVALID"


def test_digest_mismatch(http, repository):
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    wrong = http.put(started.headers["location"], params={"digest": digest_of(b"other")}, content=b"content")
    assert wrong.status_code == 400 and error_of(wrong) == "DIGEST_INVALID"
    assert http.get(f"/v2/{repository}/blobs/{digest_of(b'other')}").status_code == 404
    assert http.get(f"/v2/{repository}/blobs/{digest_of(b'content')}").status_code == 404
    # The failed session is gone.
    assert error_of(http.get(started.headers["location"])) == "BLOB_UPLOAD_UNKNOWN"
    mono = http.post(f"/v2/{repository}/blobs/uploads/", params={"digest": digest_of(b"x")}, content=b"y")
    assert mono.status_code == 400 and error_of(mono) == "DIGEST_INVALID"


def test_put_upload_without_or_with_bad_digest(http, repository):
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    assert error_of(http.put(started.headers["location"], content=b"x")) == "DIGEST_INVALID"
    assert error_of(http.put(started.headers["location"], params={"digest": "sha256:zz"})) == "DIGEST_INVALID"


def test_unknown_upload(http, repository):
    for upload_id in ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "x" * 36]:
        location = f"/v2/{repository}/blobs/uploads/{upload_id}"
        for method in ["GET", "PATCH", "PUT", "DELETE"]:
            response = http.request(method, location, params={"digest": digest_of(b"")})
            assert response.status_code == 404, (method, upload_id)
            assert error_of(response) == "BLOB_UPLOAD_UNKNOWN"
    # An encoded traversal never reaches the file system: no route matches it.
    traversal = http.get(f"/v2/{repository}/blobs/uploads/..%2F..%2Fetc")
    assert traversal.status_code == 404


def test_upload_of_another_repository_is_unknown(http, ecr, repository):
    other = repository + "-second"
    ecr.create_repository(repositoryName=other)
    started = http.post(f"/v2/{other}/blobs/uploads/")
    upload_id = started.headers["docker-upload-uuid"]
    response = http.get(f"/v2/{repository}/blobs/uploads/{upload_id}")
    assert response.status_code == 404 and error_of(response) == "BLOB_UPLOAD_UNKNOWN"


def test_cancel_upload(http, repository):
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    location = started.headers["location"]
    http.patch(location, content=b"data")
    assert http.delete(location).status_code == 204
    assert http.get(location).status_code == 404


def test_empty_blob(http, repository):
    digest = push_blob(http, repository, b"")
    assert digest == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    response = http.get(f"/v2/{repository}/blobs/{digest}")
    assert response.status_code == 200 and response.content == b""


def test_cross_repository_mount(http, ecr, repository):
    source = repository + "-source"
    ecr.create_repository(repositoryName=source)
    digest = push_blob(http, source, os.urandom(2000))
    mounted = http.post(f"/v2/{repository}/blobs/uploads/", params={"mount": digest, "from": source})
    assert mounted.status_code == 201
    assert mounted.headers["location"] == f"/v2/{repository}/blobs/{digest}"
    assert http.head(f"/v2/{repository}/blobs/{digest}").status_code == 200
    # Not in the source: an ordinary upload session instead.
    absent = "sha256:" + "1" * 64
    fallback = http.post(f"/v2/{repository}/blobs/uploads/", params={"mount": absent, "from": source})
    assert fallback.status_code == 202 and fallback.headers["location"]
    bad_source = http.post(f"/v2/{repository}/blobs/uploads/", params={"mount": digest, "from": "NOT VALID"})
    assert bad_source.status_code == 202


def test_push_manifest_by_digest_and_tag(http, repository):
    image = make_image()
    for blob in image.blobs.values():
        push_blob(http, repository, blob)
    response = http.put(f"/v2/{repository}/manifests/{image.digest}", content=image.manifest,
                        headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201
    assert response.headers["docker-content-digest"] == image.digest
    assert response.headers["location"] == f"/v2/{repository}/manifests/{image.digest}"
    assert http.get(f"/v2/{repository}/tags/list").json()["tags"] == []
    again = http.put(f"/v2/{repository}/manifests/latest", content=image.manifest,
                     headers={"Content-Type": OCI_MANIFEST})
    assert again.status_code == 201
    assert http.get(f"/v2/{repository}/tags/list").json()["tags"] == ["latest"]


def test_manifest_with_missing_blob(http, repository):
    image = make_image()
    push_blob(http, repository, image.config)
    response = http.put(f"/v2/{repository}/manifests/v1", content=image.manifest,
                        headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 400 and error_of(response) == "MANIFEST_BLOB_UNKNOWN"
    assert http.get(f"/v2/{repository}/manifests/v1").status_code == 404


def test_manifest_with_wrong_blob_size(http, repository):
    config = b'{"architecture":"amd64","os":"linux"}'
    push_blob(http, repository, config)
    manifest = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config) + 1},
                        "layers": []})
    response = http.put(f"/v2/{repository}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 400 and error_of(response) == "MANIFEST_INVALID"


def test_index_with_missing_child(http, repository):
    index = make_index({"amd64": make_image()})
    response = http.put(f"/v2/{repository}/manifests/multi", content=index, headers={"Content-Type": OCI_INDEX})
    assert response.status_code == 400 and error_of(response) == "MANIFEST_BLOB_UNKNOWN"


@pytest.mark.parametrize("content, content_type", [
    (b"not json", OCI_MANIFEST),
    (b'{"schemaVersion":1}', OCI_MANIFEST),
    (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}', OCI_MANIFEST),
    (b'{"schemaVersion":2,"config":{}}', "application/vnd.unknown+json"),
])
def test_malformed_manifests(http, repository, content, content_type):
    response = http.put(f"/v2/{repository}/manifests/v1", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 400 and error_of(response) == "MANIFEST_INVALID"


def test_oversized_manifest(http, repository):
    content = b'{"schemaVersion":2,"x":"' + b"a" * (4 * 1024 * 1024) + b'"}'
    response = http.put(f"/v2/{repository}/manifests/v1", content=content, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 413 and error_of(response) == "SIZE_INVALID"


def test_manifest_digest_mismatch_and_bad_tag(http, repository):
    image = make_image()
    for blob in image.blobs.values():
        push_blob(http, repository, blob)
    wrong = http.put(f"/v2/{repository}/manifests/sha256:" + "a" * 64, content=image.manifest,
                     headers={"Content-Type": OCI_MANIFEST})
    assert wrong.status_code == 400 and error_of(wrong) == "DIGEST_INVALID"
    bad_tag = http.put(f"/v2/{repository}/manifests/.hidden", content=image.manifest,
                       headers={"Content-Type": OCI_MANIFEST})
    assert bad_tag.status_code == 400 and error_of(bad_tag) == "TAG_INVALID"


def test_tag_moves_in_mutable_repository(http, repository):
    first = push_image(http, repository, "latest")
    second = push_image(http, repository, "latest")
    assert http.head(f"/v2/{repository}/manifests/latest").headers["docker-content-digest"] == second.digest
    assert http.get(f"/v2/{repository}/manifests/{first.digest}").status_code == 200


def test_immutable_repository_refuses_to_move_a_tag(http, ecr, repository):
    name = repository + "-immutable"
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    first = push_image(http, name, "v1")
    # The identical manifest again is accepted.
    assert http.put(f"/v2/{name}/manifests/v1", content=first.manifest,
                    headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    second = make_image()
    for blob in second.blobs.values():
        push_blob(http, name, blob)
    moved = http.put(f"/v2/{name}/manifests/v1", content=second.manifest, headers={"Content-Type": OCI_MANIFEST})
    assert moved.status_code == 400 and error_of(moved) == "TAG_INVALID"
    assert "immutable" in moved.json()["errors"][0]["message"]
    assert http.head(f"/v2/{name}/manifests/v1").headers["docker-content-digest"] == first.digest


# -- content discovery -------------------------------------------------------------------------


def test_tags_list_pagination(http, repository):
    image = make_image()
    for blob in image.blobs.values():
        push_blob(http, repository, blob)
    tags = sorted(f"t{i:02d}" for i in range(12))
    for tag in tags:
        assert http.put(f"/v2/{repository}/manifests/{tag}", content=image.manifest,
                        headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    full = http.get(f"/v2/{repository}/tags/list")
    assert full.json() == {"name": repository, "tags": tags}
    collected = []
    url = f"/v2/{repository}/tags/list?n=5"
    while url:
        page = http.get(url)
        assert page.status_code == 200
        assert len(page.json()["tags"]) <= 5
        collected += page.json()["tags"]
        link = page.headers.get("link")
        url = link[1:link.index(">")] if link else None
    assert collected == tags
    after = http.get(f"/v2/{repository}/tags/list", params={"last": "t09"})
    assert after.json()["tags"] == ["t10", "t11"]
    zero = http.get(f"/v2/{repository}/tags/list", params={"n": "0"})
    assert zero.json()["tags"] == []
    bad = http.get(f"/v2/{repository}/tags/list", params={"n": "-1"})
    assert bad.status_code == 400


def test_referrers_empty_and_invalid(http, repository):
    response = http.get(f"/v2/{repository}/referrers/sha256:" + "2" * 64)
    assert response.status_code == 200
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    bad = http.get(f"/v2/{repository}/referrers/not-a-digest")
    assert bad.status_code == 400 and error_of(bad) == "DIGEST_INVALID"


def test_artifact_pushed_before_its_subject(http, repository):
    subject = make_image()
    empty = b"{}"
    push_blob(http, repository, empty)
    payload = b'{"sbom":true}'
    push_blob(http, repository, payload)
    artifact = compact({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(empty), "size": 2},
        "layers": [{"mediaType": "application/json", "digest": digest_of(payload), "size": len(payload)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": len(subject.manifest)},
    })
    response = http.put(f"/v2/{repository}/manifests/{digest_of(artifact)}", content=artifact,
                        headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201
    assert response.headers["oci-subject"] == subject.digest
    listed = http.get(f"/v2/{repository}/referrers/{subject.digest}").json()["manifests"]
    assert [(m["digest"], m["artifactType"]) for m in listed] == [(digest_of(artifact), "application/vnd.example.sbom")]


# -- content management ------------------------------------------------------------------------


def test_delete_tag_then_digest_then_blob(http, repository):
    image = push_image(http, repository, "tagtest0")
    assert http.delete(f"/v2/{repository}/manifests/tagtest0").status_code == 202
    assert http.get(f"/v2/{repository}/tags/list").json()["tags"] == []
    assert http.delete(f"/v2/{repository}/manifests/{image.digest}").status_code in (202, 404)
    assert http.get(f"/v2/{repository}/manifests/{image.digest}").status_code == 404
    config_digest = digest_of(image.config)
    assert http.delete(f"/v2/{repository}/blobs/{config_digest}").status_code == 202
    assert http.get(f"/v2/{repository}/blobs/{config_digest}").status_code == 404
    assert http.delete(f"/v2/{repository}/blobs/{config_digest}").status_code == 404


def test_delete_by_digest_removes_every_tag(http, repository):
    image = make_image()
    push_image(http, repository, "a", image)
    assert http.put(f"/v2/{repository}/manifests/b", content=image.manifest,
                    headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    assert http.delete(f"/v2/{repository}/manifests/{image.digest}").status_code == 202
    assert http.get(f"/v2/{repository}/tags/list").json()["tags"] == []


def test_delete_tag_keeps_image_with_other_tags(http, repository):
    image = make_image()
    push_image(http, repository, "a", image)
    http.put(f"/v2/{repository}/manifests/b", content=image.manifest, headers={"Content-Type": OCI_MANIFEST})
    assert http.delete(f"/v2/{repository}/manifests/a").status_code == 202
    assert http.get(f"/v2/{repository}/manifests/b").status_code == 200


def test_blob_in_use_cannot_be_deleted(http, repository):
    image = push_image(http, repository, "v1")
    response = http.delete(f"/v2/{repository}/blobs/{digest_of(image.config)}")
    assert response.status_code == 403 and error_of(response) == "DENIED"
    assert http.get(f"/v2/{repository}/blobs/{digest_of(image.config)}").status_code == 200


def test_child_of_index_cannot_be_deleted(http, repository):
    child = push_image(http, repository)
    index = make_index({"amd64": child})
    assert http.put(f"/v2/{repository}/manifests/multi", content=index,
                    headers={"Content-Type": OCI_INDEX}).status_code == 201
    response = http.delete(f"/v2/{repository}/manifests/{child.digest}")
    assert response.status_code == 403 and error_of(response) == "DENIED"
    assert http.delete(f"/v2/{repository}/manifests/multi").status_code == 202
    assert http.delete(f"/v2/{repository}/manifests/{child.digest}").status_code == 202


def test_delete_unknown_manifest(http, repository):
    response = http.delete(f"/v2/{repository}/manifests/sha256:" + "3" * 64)
    assert response.status_code == 404 and error_of(response) == "MANIFEST_UNKNOWN"


def test_large_blob_streams(http, repository):
    """A 64 MiB blob in one streamed PATCH: hashed on the way in, served back intact."""
    chunk = os.urandom(1024 * 1024)
    hasher = hashlib.sha256()
    for _ in range(64):
        hasher.update(chunk)
    digest = "sha256:" + hasher.hexdigest()
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    patched = http.patch(started.headers["location"], content=(chunk for _ in range(64)))
    assert patched.status_code == 202
    assert http.put(patched.headers["location"], params={"digest": digest}).status_code == 201
    received = hashlib.sha256()
    with http.stream("GET", f"/v2/{repository}/blobs/{digest}") as response:
        for part in response.iter_bytes():
            received.update(part)
    assert "sha256:" + received.hexdigest() == digest


def test_docker_v2s2_manifest_built_in_code(http, repository):
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    push_blob(http, repository, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": digest_of(config), "size": len(config)},
        "layers": [],
    }, indent=3).encode()
    response = http.put(f"/v2/{repository}/manifests/docker", content=manifest, headers={"Content-Type": DOCKER_V2})
    assert response.status_code == 201
    got = http.get(f"/v2/{repository}/manifests/docker", headers={"Accept": DOCKER_V2})
    assert got.content == manifest and got.headers["content-type"] == DOCKER_V2


# -- found by adversarial testing ------------------------------------------------------------


def _start_raw_patch(server, http, location: str, content_length: int):  # type: ignore[no-untyped-def]
    """A socket on which an authenticated PATCH of ``content_length`` bytes to ``location`` has
    been started (the head sent, no body yet): the test sends the body, or not."""
    import socket

    host, port = server.host.split(":")
    sock = socket.create_connection((host, int(port)))
    auth = http.auth._auth_header  # type: ignore[attr-defined]
    sock.sendall((f"PATCH {location} HTTP/1.1\r\nHost: {server.host}\r\nAuthorization: {auth}\r\n"
                  f"Content-Length: {content_length}\r\n\r\n").encode())
    return sock


def test_completion_excludes_a_concurrent_patch(server, http, repository):
    """A PUT that completes an upload while a PATCH to it is still streaming must not publish
    bytes that change afterwards: either the PUT is refused (416) or the late PATCH is."""
    import time

    content = os.urandom(4096)
    location = http.post(f"/v2/{repository}/blobs/uploads/").headers["location"]
    assert http.patch(location, content=content).status_code == 202
    sock = _start_raw_patch(server, http, location, 1048576)
    sock.sendall(b"x" * 1000)
    time.sleep(0.5)  # the PATCH now holds the upload
    done = http.put(location, params={"digest": digest_of(content)})
    assert done.status_code == 416 and error_of(done) == "BLOB_UPLOAD_INVALID"
    assert done.headers["range"] == f"0-{len(content) - 1}" and done.headers["location"] == location
    sock.sendall(b"y" * (1048576 - 1000))
    reply = sock.recv(4096)
    sock.close()
    assert b" 202 " in reply.split(b"\r\n")[0]
    # The upload now holds both chunks; completing with the old digest fails cleanly.
    wrong = http.put(location, params={"digest": digest_of(content)})
    assert wrong.status_code == 400 and error_of(wrong) == "DIGEST_INVALID"
    assert http.head(f"/v2/{repository}/blobs/{digest_of(content)}").status_code == 404


def test_client_gone_mid_patch_leaves_the_upload_as_it_was(server, http, repository):
    """A client that drops a large PATCH midway (several buffers written, one still being
    written) leaves the upload exactly as before that PATCH: the next PATCH continues from the
    old size and the blob completes with the right content."""
    import time

    first = os.urandom(3000)
    location = http.post(f"/v2/{repository}/blobs/uploads/").headers["location"]
    assert http.patch(location, content=first).status_code == 202
    sock = _start_raw_patch(server, http, location, 16 * 1024 * 1024)
    for _ in range(5):  # 5 MiB of the announced 16: several buffers handed to the writers
        sock.sendall(os.urandom(1024 * 1024))
    time.sleep(0.3)
    sock.close()
    for _ in range(50):  # the server notices the disconnect and releases the upload
        status = http.get(location)
        if status.status_code == 204 and status.headers["range"] == f"0-{len(first) - 1}":
            break
        time.sleep(0.1)
    assert status.status_code == 204 and status.headers["range"] == f"0-{len(first) - 1}"
    rest = os.urandom(2 * 1024 * 1024)
    assert http.patch(location, content=rest).status_code == 202
    done = http.put(location, params={"digest": digest_of(first + rest)})
    assert done.status_code == 201
    assert http.get(f"/v2/{repository}/blobs/{digest_of(first + rest)}").content == first + rest


def test_patch_after_completion_is_unknown(http, repository):
    content = b"complete me"
    location = http.post(f"/v2/{repository}/blobs/uploads/").headers["location"]
    http.patch(location, content=content)
    assert http.put(location, params={"digest": digest_of(content)}).status_code == 201
    late = http.patch(location, content=b"late bytes")
    assert late.status_code == 404 and error_of(late) == "BLOB_UPLOAD_UNKNOWN"
    assert http.get(f"/v2/{repository}/blobs/{digest_of(content)}").content == content


def test_upload_ids_are_case_insensitive(http, repository):
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    upper = started.headers["location"].rsplit("/", 1)[0] + "/" + started.headers["docker-upload-uuid"].upper()
    assert http.patch(upper, content=b"abc").status_code == 202
    assert http.get(upper).headers["range"] == "0-2"
    assert http.put(upper, params={"digest": digest_of(b"abc")}).status_code == 201


@pytest.mark.parametrize("query", [{"n": "99999999999999999999999"}, {"n": "\u00b2"}, {"last": "\x00"}])
def test_tags_list_odd_parameters(http, repository, query):
    response = http.get(f"/v2/{repository}/tags/list", params=query)
    assert response.status_code in (200, 400)


def test_referrers_with_nul_filter(http, repository):
    response = http.get(f"/v2/{repository}/referrers/sha256:" + "0" * 64, params={"artifactType": "a\x00b"})
    assert response.status_code == 400


@pytest.mark.parametrize("header", ["bytes=3-1", "bytes=abc", "items=0-1"])
def test_invalid_range_serves_the_whole_blob(http, repository, header):
    content = os.urandom(100)
    digest = push_blob(http, repository, content)
    response = http.get(f"/v2/{repository}/blobs/{digest}", headers={"Range": header})
    assert response.status_code == 200 and response.content == content


def test_accept_media_range_wildcard(http, repository):
    push_image(http, repository, "v1")
    assert http.get(f"/v2/{repository}/manifests/v1", headers={"Accept": "application/*"}).status_code == 200


def test_routine_not_found_is_logged_only_at_debug_level(own_server):
    """Every push probes with HEAD first, so a 404 is routine: not logged at the default level
    (``info``), logged with ``MOORAGE_LOG_LEVEL=debug``; refusals such as 401 always are."""
    for level, expect_404_logged in (("info", False), ("debug", True)):
        server = own_server({"MOORAGE_LOG_LEVEL": level})
        server.ecr().create_repository(repositoryName=f"logs/{level}")
        missing = "sha256:" + "0" * 64
        with server.http() as http:
            assert http.head(f"/v2/logs/{level}/blobs/{missing}").status_code == 404
        assert httpx.get(f"{server.url}/v2/").status_code == 401
        log = server.log()
        assert ("status=404" in log) is expect_404_logged, log[-2000:]
        assert "status=401" in log


@pytest.mark.parametrize("accept, status", [
    ("{type};q=0", 404),                # refused outright
    ("{type};q=0.000, */*", 404),       # the specific refusal wins over the wildcard
    ("*/*;q=0, {type}", 200),           # the specific acceptance wins over the refusal
    ("application/*;q=0", 404),
    ("{type};q=0.5", 200),
    ("{type};q=0.01", 200),
])
def test_accept_with_zero_quality_refuses(http, repository, accept, status):
    """``q=0`` in ``Accept`` means "not acceptable" (RFC 9110 §12.4.2); Moorage never converts,
    so a manifest whose media type is refused is MANIFEST_UNKNOWN."""
    push_image(http, repository, "v1")
    response = http.get(f"/v2/{repository}/manifests/v1",
                        headers={"Accept": accept.format(type=OCI_MANIFEST)})
    assert response.status_code == status
    if status == 404:
        assert error_of(response) == "MANIFEST_UNKNOWN"


def test_head_answers_wherever_get_does_and_405_names_the_methods(http, repository):
    """HEAD is GET without the body on every ``/v2/`` GET route (tags/list, referrers, upload
    status included); a method a route lacks is 405 with ``Allow``."""
    push_image(http, repository, "v1")
    location = http.post(f"/v2/{repository}/blobs/uploads/").headers["location"]
    for path in (f"/v2/{repository}/tags/list", f"/v2/{repository}/referrers/sha256:" + "0" * 64,
                 location, f"/v2/{repository}/tags/list?n=1"):
        get, head = http.get(path), http.head(path)
        assert head.status_code == get.status_code and head.content == b""
        for header in ("content-length", "content-type", "range", "link"):
            assert head.headers.get(header) == get.headers.get(header), (path, header)
    refused = http.patch(f"/v2/{repository}/tags/list", content=b"x")
    assert refused.status_code == 405 and error_of(refused) == "UNSUPPORTED"
    assert refused.headers["allow"] == "GET, HEAD"
    refused = http.request("OPTIONS", f"/v2/{repository}/blobs/uploads/")
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"
