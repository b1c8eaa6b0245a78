"""ECR image and layer operations with boto3, the AWS CLI and skopeo, across both surfaces."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pytest

from moorage.storage.blobs import paths
from tests.conftest import ACCOUNT_ID
from tests.images import OCI_INDEX, OCI_MANIFEST, digest_of, make_image, make_index, read_layout_top, write_layout

MIB = 1024 * 1024


def push_layers_with_ecr(ecr, repository: str, blobs: dict[str, bytes], part_size: int = 6 * MIB) -> None:
    for digest, blob in blobs.items():
        upload = ecr.initiate_layer_upload(repositoryName=repository)
        assert upload["partSize"] == 10 * MIB
        offset = 0
        while offset < len(blob) or offset == 0:
            part = blob[offset:offset + part_size]
            result = ecr.upload_layer_part(repositoryName=repository, uploadId=upload["uploadId"],
                                           partFirstByte=offset, partLastByte=offset + len(part) - 1,
                                           layerPartBlob=part)
            assert result["lastByteReceived"] == offset + len(part) - 1
            offset += len(part)
            if not blob:
                break
        done = ecr.complete_layer_upload(repositoryName=repository, uploadId=upload["uploadId"],
                                         layerDigests=[digest])
        assert done["layerDigest"] == digest


def put(ecr, repository, image, tag=None, **kwargs):  # type: ignore[no-untyped-def]
    extra = {"imageTag": tag} if tag else {}
    return ecr.put_image(repositoryName=repository, imageManifest=image.manifest.decode(),
                         imageManifestMediaType=OCI_MANIFEST, **extra, **kwargs)


def test_layer_api_push_is_pullable_with_skopeo(server, ecr, repository, skopeo, tmp_path):
    image = make_image(layer_count=2, layer_bytes=4000)
    push_layers_with_ecr(ecr, repository, image.blobs)
    result = put(ecr, repository, image, "from-api")["image"]
    assert result["imageId"] == {"imageDigest": image.digest, "imageTag": "from-api"}
    target = tmp_path / "pulled"
    skopeo("copy", "--src-tls-verify=false", f"docker://{server.host}/{repository}:from-api", f"oci:{target}:x")
    digest, content = read_layout_top(target, "x")
    assert digest == image.digest and content == image.manifest


def test_multi_part_layer_upload(ecr, repository, http):
    blob = os.urandom(11 * MIB)
    push_layers_with_ecr(ecr, repository, {digest_of(blob): blob}, part_size=5 * MIB)
    availability = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[digest_of(blob)])
    assert availability["layers"][0]["layerSize"] == len(blob)
    assert http.get(f"/v2/{repository}/blobs/{digest_of(blob)}").content == blob


def test_skopeo_push_is_described(server, ecr, repository, skopeo, tmp_path):
    image = make_image(layer_count=2, layer_bytes=3000)
    source = tmp_path / "source"
    write_layout(source, "v1", image.manifest, OCI_MANIFEST, image.blobs)
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{source}:v1",
           f"docker://{server.host}/{repository}:v1")
    detail = ecr.describe_images(repositoryName=repository)["imageDetails"][0]
    assert detail["imageDigest"] == image.digest
    assert detail["imageTags"] == ["v1"]
    assert detail["imageSizeInBytes"] == sum(len(layer) for layer in image.layers)
    assert detail["imageManifestMediaType"] == OCI_MANIFEST
    assert detail["artifactMediaType"] == "application/vnd.oci.image.config.v1+json"
    assert detail["registryId"] == ACCOUNT_ID
    assert "lastRecordedPullTime" not in detail
    got = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": "v1"}])
    assert got["images"][0]["imageManifest"].encode() == image.manifest
    assert got["images"][0]["imageId"] == {"imageDigest": image.digest, "imageTag": "v1"}
    pulled = ecr.describe_images(repositoryName=repository)["imageDetails"][0]["lastRecordedPullTime"]
    assert abs(pulled.timestamp() - time.time()) < 60
    time.sleep(1.1)
    skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{server.host}/{repository}:v1")
    again = ecr.describe_images(repositoryName=repository)["imageDetails"][0]["lastRecordedPullTime"]
    assert again > pulled


def test_put_image_errors(ecr, repository, http):
    image = make_image()
    with pytest.raises(ecr.exceptions.LayersNotFoundException):
        put(ecr, repository, image, "v1")
    push_layers_with_ecr(ecr, repository, image.blobs)
    put(ecr, repository, image, "v1")
    with pytest.raises(ecr.exceptions.ImageAlreadyExistsException):
        put(ecr, repository, image, "v1")
    with pytest.raises(ecr.exceptions.ImageAlreadyExistsException):
        put(ecr, repository, image)
    assert put(ecr, repository, image, "v2")["image"]["imageId"]["imageTag"] == "v2"  # re-tag
    with pytest.raises(ecr.exceptions.ImageDigestDoesNotMatchException):
        put(ecr, repository, image, "v3", imageDigest="sha256:" + "0" * 64)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_image(repositoryName=repository, imageManifest="{not json", imageTag="x")
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_image(repositoryName=repository, imageManifest=image.manifest.decode(),
                      imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json")
    stripped = json.loads(image.manifest)
    del stripped["mediaType"]
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(stripped))
    index = make_index({"amd64": make_image()})
    with pytest.raises(ecr.exceptions.ReferencedImagesNotFoundException):
        ecr.put_image(repositoryName=repository, imageManifest=index.decode(), imageManifestMediaType=OCI_INDEX)
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        put(ecr, repository + "-absent", image, "v1")


def test_immutable_tags_on_both_surfaces(ecr, repository, http):
    name = repository + "-imm"
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    first, second = make_image(), make_image()
    push_layers_with_ecr(ecr, name, {**first.blobs, **second.blobs})
    put(ecr, name, first, "v1")
    with pytest.raises(ecr.exceptions.ImageTagAlreadyExistsException):
        put(ecr, name, second, "v1")
    response = http.put(f"/v2/{name}/manifests/v1", content=second.manifest, headers={"Content-Type": OCI_MANIFEST})
    assert response.json()["errors"][0]["code"] == "TAG_INVALID"
    assert http.put(f"/v2/{name}/manifests/v1", content=first.manifest,
                    headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    # Exclusion filters: IMMUTABLE_WITH_EXCLUSION leaves matching tags mutable.
    ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
                                 imageTagMutabilityExclusionFilters=[{"filter": "latest*", "filterType": "WILDCARD"}])
    put(ecr, name, first, "latest-dev")
    put(ecr, name, second, "latest-dev")
    with pytest.raises(ecr.exceptions.ImageTagAlreadyExistsException):
        put(ecr, name, second, "v1")


def test_batch_get_image_failures(ecr, repository):
    image = make_image()
    push_layers_with_ecr(ecr, repository, image.blobs)
    put(ecr, repository, image, "v1")
    other = "sha256:" + "1" * 64
    result = ecr.batch_get_image(repositoryName=repository, imageIds=[
        {"imageDigest": image.digest}, {"imageTag": "missing"}, {"imageDigest": "sha256:bad"},
        {"imageTag": "v1", "imageDigest": other}, {},
    ])
    assert [i["imageId"]["imageDigest"] for i in result["images"]] == [image.digest]
    codes = [f["failureCode"] for f in result["failures"]]
    assert codes == ["ImageNotFound", "InvalidImageDigest", "ImageNotFound", "MissingDigestAndTag"]
    assert result["failures"][0]["imageId"] == {"imageTag": "missing"}
    mismatch = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": "v1", "imageDigest": image.digest}])
    assert len(mismatch["images"]) == 1
    put(ecr, repository, make_image_pushed(ecr, repository), "v2")
    wrong = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": "v2", "imageDigest": image.digest}])
    assert wrong["failures"][0]["failureCode"] == "ImageTagDoesNotMatchDigest"
    refused = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": "v1"}],
                                  acceptedMediaTypes=["application/vnd.docker.distribution.manifest.v2+json"])
    assert refused["failures"][0]["failureCode"] == "ImageNotFound"
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.batch_get_image(repositoryName=repository + "-absent", imageIds=[{"imageTag": "v1"}])


def make_image_pushed(ecr, repository):  # type: ignore[no-untyped-def]
    image = make_image()
    push_layers_with_ecr(ecr, repository, image.blobs)
    return image


def test_batch_delete_image_semantics(ecr, repository, http):
    image = make_image_pushed(ecr, repository)
    put(ecr, repository, image, "a")
    put(ecr, repository, image, "b")
    # By tag, not the last: only the tag goes.
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": "a"}])
    assert result["imageIds"] == [{"imageDigest": image.digest, "imageTag": "a"}] and result["failures"] == []
    assert ecr.describe_images(repositoryName=repository)["imageDetails"][0]["imageTags"] == ["b"]
    # By tag, the last: the image goes too.
    ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": "b"}])
    assert ecr.describe_images(repositoryName=repository)["imageDetails"] == []
    # By digest: every tag goes.
    put(ecr, repository, image, "c")
    put(ecr, repository, image, "d")
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageDigest": image.digest}])
    assert sorted(i["imageTag"] for i in result["imageIds"]) == ["c", "d"]
    assert http.get(f"/v2/{repository}/tags/list").json()["tags"] == []
    # Untagged image by digest.
    put(ecr, repository, image)
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageDigest": image.digest}])
    assert result["imageIds"] == [{"imageDigest": image.digest}]
    # Failures do not fail the call.
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[
        {"imageTag": "nope"}, {"imageDigest": "sha256:zz"}, {}, {"imageTag": "bad tag!"}])
    assert [f["failureCode"] for f in result["failures"]] == [
        "ImageNotFound", "InvalidImageDigest", "MissingDigestAndTag", "InvalidImageTag"]
    assert result["failures"][0]["failureReason"] == "Requested image not found"


def test_children_of_an_index_and_referrers(ecr, repository, http):
    child = make_image_pushed(ecr, repository)
    put(ecr, repository, child)
    index = make_index({"amd64": child})
    result = ecr.put_image(repositoryName=repository, imageManifest=index.decode(),
                           imageManifestMediaType=OCI_INDEX, imageTag="multi")
    index_digest = result["image"]["imageId"]["imageDigest"]
    details = {d["imageDigest"]: d for d in ecr.describe_images(repositoryName=repository)["imageDetails"]}
    assert details[index_digest]["imageSizeInBytes"] == details[child.digest]["imageSizeInBytes"]
    assert details[index_digest]["imageManifestMediaType"] == OCI_INDEX
    failed = ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageDigest": child.digest}])
    assert failed["failures"][0]["failureCode"] == "ImageReferencedByManifestList"
    ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": "multi"}])
    ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageDigest": child.digest}])
    assert ecr.describe_images(repositoryName=repository)["imageDetails"] == []


def put_signature_of(ecr, repository, subject) -> str:  # type: ignore[no-untyped-def]
    """PutImage of an OCI artifact (empty config and layer) whose subject is ``subject``;
    returns its manifest text."""
    empty = b"{}"
    push_layers_with_ecr(ecr, repository, {digest_of(empty): empty})
    artifact = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(empty), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(empty), "size": 2}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": len(subject.manifest)},
    })
    ecr.put_image(repositoryName=repository, imageManifest=artifact)
    return artifact


def test_deleting_a_subject_deletes_its_referrers(ecr, repository, http):
    subject = make_image_pushed(ecr, repository)
    put(ecr, repository, subject, "v1")
    artifact = put_signature_of(ecr, repository, subject)
    detail = [d for d in ecr.describe_images(repositoryName=repository)["imageDetails"] if d["imageDigest"] == digest_of(artifact.encode())][0]
    assert detail["subjectManifestDigest"] == subject.digest
    assert detail["artifactMediaType"] == "application/vnd.example.sig"
    removed = ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": "v1"}])["imageIds"]
    assert {"imageDigest": digest_of(artifact.encode())} in removed
    assert ecr.describe_images(repositoryName=repository)["imageDetails"] == []


def test_list_and_describe_pagination_and_filters(ecr, repository):
    images = [make_image_pushed(ecr, repository) for _ in range(5)]
    for i, image in enumerate(images[:3]):
        put(ecr, repository, image, f"t{i}")
    put(ecr, repository, images[0], "extra")
    for image in images[3:]:
        put(ecr, repository, image)
    paginator = ecr.get_paginator("list_images")
    all_ids = [i for page in paginator.paginate(repositoryName=repository, PaginationConfig={"PageSize": 2}) for i in page["imageIds"]]
    assert len(all_ids) == 6  # 4 (image, tag) pairs + 2 untagged
    assert len({json.dumps(i, sort_keys=True) for i in all_ids}) == 6
    tagged = ecr.list_images(repositoryName=repository, filter={"tagStatus": "TAGGED"})["imageIds"]
    assert sorted(i["imageTag"] for i in tagged) == ["extra", "t0", "t1", "t2"]
    untagged = ecr.list_images(repositoryName=repository, filter={"tagStatus": "UNTAGGED"})["imageIds"]
    assert {i["imageDigest"] for i in untagged} == {images[3].digest, images[4].digest}
    described = [d for page in ecr.get_paginator("describe_images").paginate(
        repositoryName=repository, PaginationConfig={"PageSize": 2}) for d in page["imageDetails"]]
    assert [d["imageDigest"] for d in described] == [i.digest for i in images]
    one = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": "extra"}, {"imageDigest": images[0].digest}])
    assert len(one["imageDetails"]) == 1 and one["imageDetails"][0]["imageTags"] == ["extra", "t0"]
    with pytest.raises(ecr.exceptions.ImageNotFoundException):
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": "nope"}])
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": "t0"}], maxResults=5)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.list_images(repositoryName=repository, nextToken="garbage")
    token = ecr.list_images(repositoryName=repository, maxResults=1)["nextToken"]
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_images(repositoryName=repository, nextToken=token)


def test_layer_upload_errors(ecr, repository):
    upload = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
    ecr.upload_layer_part(repositoryName=repository, uploadId=upload, partFirstByte=0, partLastByte=3, layerPartBlob=b"abcd")
    with pytest.raises(ecr.exceptions.InvalidLayerPartException) as excinfo:
        ecr.upload_layer_part(repositoryName=repository, uploadId=upload, partFirstByte=10, partLastByte=13, layerPartBlob=b"efgh")
    assert excinfo.value.response["lastValidByteReceived"] == 3
    assert excinfo.value.response["uploadId"] == upload
    with pytest.raises(ecr.exceptions.InvalidLayerPartException):
        ecr.upload_layer_part(repositoryName=repository, uploadId=upload, partFirstByte=4, partLastByte=9, layerPartBlob=b"ef")
    with pytest.raises(ecr.exceptions.InvalidLayerException):
        ecr.complete_layer_upload(repositoryName=repository, uploadId=upload, layerDigests=[digest_of(b"other")])
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        ecr.upload_layer_part(repositoryName=repository, uploadId=upload, partFirstByte=4, partLastByte=5, layerPartBlob=b"ef")
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        ecr.complete_layer_upload(repositoryName=repository, uploadId="00000000-0000-0000-0000-000000000000",
                                  layerDigests=[digest_of(b"x")])
    empty = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
    with pytest.raises(ecr.exceptions.EmptyUploadException):
        ecr.complete_layer_upload(repositoryName=repository, uploadId=empty, layerDigests=[digest_of(b"")])
    small = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
    ecr.upload_layer_part(repositoryName=repository, uploadId=small, partFirstByte=0, partLastByte=0, layerPartBlob=b"a")
    ecr.upload_layer_part(repositoryName=repository, uploadId=small, partFirstByte=1, partLastByte=1, layerPartBlob=b"b")
    with pytest.raises(ecr.exceptions.LayerPartTooSmallException):
        ecr.complete_layer_upload(repositoryName=repository, uploadId=small, layerDigests=[digest_of(b"ab")])
    blob = b"layer content"
    push_layers_with_ecr(ecr, repository, {digest_of(blob): blob})
    again = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
    ecr.upload_layer_part(repositoryName=repository, uploadId=again, partFirstByte=0, partLastByte=len(blob) - 1, layerPartBlob=blob)
    with pytest.raises(ecr.exceptions.LayerAlreadyExistsException):
        ecr.complete_layer_upload(repositoryName=repository, uploadId=again, layerDigests=[digest_of(blob)])
    with pytest.raises(ecr.exceptions.InvalidLayerException):
        upload = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
        ecr.upload_layer_part(repositoryName=repository, uploadId=upload, partFirstByte=0, partLastByte=0, layerPartBlob=b"z")
        ecr.complete_layer_upload(repositoryName=repository, uploadId=upload, layerDigests=["sha256:abcd"])


def test_layer_availability_and_download_urls(server, ecr, repository, http):
    image = make_image_pushed(ecr, repository)
    layer_digest = digest_of(image.layers[0])
    unreferenced = b"not in any manifest"
    push_layers_with_ecr(ecr, repository, {digest_of(unreferenced): unreferenced})
    result = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[
        layer_digest, digest_of(b"absent"), "sha256:bad"])
    assert result["layers"][0]["layerAvailability"] == "AVAILABLE"
    assert result["layers"][0]["layerSize"] == len(image.layers[0])
    assert [f["failureCode"] for f in result["failures"]] == ["MissingLayerDigest", "InvalidLayerDigest"]
    with pytest.raises(ecr.exceptions.LayerInaccessibleException):
        ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=layer_digest)
    put(ecr, repository, image, "v1")
    referenced = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[layer_digest])
    assert referenced["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    url = ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=layer_digest)["downloadUrl"]
    downloaded = httpx.get(url)
    assert downloaded.status_code == 200 and downloaded.content == image.layers[0]
    head = httpx.head(url)  # the headers of /v2/'s answers for the blob, no body
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(image.layers[0]))
    assert head.headers["docker-content-digest"] == layer_digest
    assert head.headers["etag"] == downloaded.headers["etag"] == f'"{layer_digest}"'
    assert httpx.get(url.replace("signature=", "signature=0")).status_code == 403
    with pytest.raises(ecr.exceptions.LayersNotFoundException):
        ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=digest_of(b"absent"))
    with pytest.raises(ecr.exceptions.LayerInaccessibleException):
        ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=digest_of(unreferenced))
    # The file gone while the database still lists the blob (a collector between the look-up
    # and the open): both downloads answer BLOB_UNKNOWN, not an error or a cut-off body.
    paths.blob_path(server.data_dir, layer_digest).unlink()
    for response in (httpx.get(url), http.get(f"/v2/{repository}/blobs/{layer_digest}")):
        assert response.status_code == 404 and response.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_cli_image_commands(server, ecr, repository):
    image = make_image_pushed(ecr, repository)
    put(ecr, repository, image, "v1")
    env = server.env()
    run = lambda *args: subprocess.run(["aws", "ecr", *args, "--endpoint-url", server.url, "--output", "json"],  # noqa: E731
                                       env=env, capture_output=True, text=True, timeout=120)
    listed = run("list-images", "--repository-name", repository)
    assert json.loads(listed.stdout)["imageIds"] == [{"imageDigest": image.digest, "imageTag": "v1"}]
    described = run("describe-images", "--repository-name", repository, "--image-ids", "imageTag=v1")
    assert json.loads(described.stdout)["imageDetails"][0]["imageDigest"] == image.digest
    manifest = json.loads(run("batch-get-image", "--repository-name", repository, "--image-ids", "imageTag=v1",
                              "--query", "images[0].imageManifest").stdout)
    retag = run("put-image", "--repository-name", repository, "--image-tag", "v2", "--image-manifest", manifest)
    assert retag.returncode == 0, retag.stderr
    deleted = run("batch-delete-image", "--repository-name", repository, "--image-ids", "imageTag=v2")
    assert json.loads(deleted.stdout)["imageIds"] == [{"imageDigest": image.digest, "imageTag": "v2"}]


def test_tampered_download_urls(ecr, repository):
    image = make_image_pushed(ecr, repository)
    put(ecr, repository, image, "v1")
    url = ecr.get_download_url_for_layer(repositoryName=repository, layerDigest=digest_of(image.layers[0]))["downloadUrl"]
    base, _, query = url.partition("?")
    for bad in ["expires=\u00b2&signature=00", "expires=" + "9" * 5000 + "&signature=00",
                query.replace("signature=", "signature=\u00e9\u00e9"), "expires=1&" + query.split("&")[1]]:
        assert httpx.get(base + "?" + bad).status_code == 403


def test_uppercase_upload_id_for_layer_parts(ecr, repository):
    upload = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"].upper()
    ecr.upload_layer_part(repositoryName=repository, uploadId=upload, partFirstByte=0, partLastByte=2, layerPartBlob=b"abc")
    done = ecr.complete_layer_upload(repositoryName=repository, uploadId=upload, layerDigests=[digest_of(b"abc")])
    assert done["layerDigest"] == digest_of(b"abc")


@pytest.mark.parametrize("manifest", ["1", "[]", '"text"', "null", "{not json", "[" * 5000 + "]" * 5000])
def test_put_image_odd_json_without_media_type(ecr, repository, manifest):
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag="odd")


# --- set-based BatchDeleteImage / BatchGetImage: per-item semantics in one call ---------------


def _ids(result):  # type: ignore[no-untyped-def]
    return [(i["imageDigest"], i.get("imageTag")) for i in result["imageIds"]]


def _codes(result):  # type: ignore[no-untyped-def]
    return [(f["imageId"], f["failureCode"]) for f in result["failures"]]


def _tags(ecr, repository):  # type: ignore[no-untyped-def]
    return sorted((i["imageDigest"], i["imageTag"]) for i in ecr.list_images(
        repositoryName=repository, filter={"tagStatus": "TAGGED"})["imageIds"])


def test_batch_delete_mixed_failures_and_successes_in_one_call(ecr, repository):
    first, second = make_image_pushed(ecr, repository), make_image_pushed(ecr, repository)
    put(ecr, repository, first, "a")
    put(ecr, repository, first, "keep")
    put(ecr, repository, second, "b")
    requested = [{"imageTag": "a"}, {"imageTag": "nope"}, {"imageDigest": "sha256:zz"},
                 {"imageTag": "b", "imageDigest": first.digest}, {"imageTag": "b"}, {},
                 {"imageTag": "bad tag!"}, {"imageDigest": "sha256:" + "0" * 64}]
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=requested)
    assert _ids(result) == [(first.digest, "a"), (second.digest, "b")]
    assert _codes(result) == [
        ({"imageTag": "nope"}, "ImageNotFound"),
        ({"imageDigest": "sha256:zz"}, "InvalidImageDigest"),
        ({"imageTag": "b", "imageDigest": first.digest}, "ImageTagDoesNotMatchDigest"),
        ({}, "MissingDigestAndTag"),
        ({"imageTag": "bad tag!"}, "InvalidImageTag"),
        ({"imageDigest": "sha256:" + "0" * 64}, "ImageNotFound"),
    ]
    # The first image keeps its other tag; the second went with its last tag.
    assert _tags(ecr, repository) == [(first.digest, "keep")]
    assert [d["imageDigest"] for d in ecr.describe_images(repositoryName=repository)["imageDetails"]] == [first.digest]


def test_batch_delete_duplicates_in_one_request(ecr, repository):
    image, other = make_image_pushed(ecr, repository), make_image_pushed(ecr, repository)
    put(ecr, repository, image, "a")
    put(ecr, repository, image, "b")
    put(ecr, repository, other)
    # The same tag twice: the second finds nothing; the image keeps its other tag.
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": "a"}, {"imageTag": "a"}])
    assert _ids(result) == [(image.digest, "a")]
    assert _codes(result) == [({"imageTag": "a"}, "ImageNotFound")]
    assert _tags(ecr, repository) == [(image.digest, "b")]
    # The same untagged digest twice.
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[
        {"imageDigest": other.digest}, {"imageDigest": other.digest}])
    assert _ids(result) == [(other.digest, None)]
    assert _codes(result) == [({"imageDigest": other.digest}, "ImageNotFound")]


def test_batch_delete_every_tag_of_an_image_in_one_request(ecr, repository):
    image = make_image_pushed(ecr, repository)
    for tag in ("a", "b", "c"):
        put(ecr, repository, image, tag)
    # Each tag but the last goes alone; the last takes the image with it.
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[
        {"imageTag": "b"}, {"imageTag": "c"}, {"imageTag": "a"}])
    assert _ids(result) == [(image.digest, "b"), (image.digest, "c"), (image.digest, "a")]
    assert result["failures"] == []
    assert ecr.describe_images(repositoryName=repository)["imageDetails"] == []


def test_batch_delete_tag_and_digest_of_the_same_image(ecr, repository):
    image = make_image_pushed(ecr, repository)
    put(ecr, repository, image, "a")
    put(ecr, repository, image, "b")
    # Tag first: that tag alone; then the digest takes the image and its remaining tag.
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[
        {"imageTag": "a"}, {"imageDigest": image.digest}])
    assert _ids(result) == [(image.digest, "a"), (image.digest, "b")] and result["failures"] == []
    put(ecr, repository, image, "a")
    put(ecr, repository, image, "b")
    # Digest first: the image and both tags; the tag then names nothing.
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[
        {"imageDigest": image.digest}, {"imageTag": "a"}, {"imageTag": "b", "imageDigest": image.digest}])
    assert _ids(result) == [(image.digest, "a"), (image.digest, "b")]
    assert [code for _, code in _codes(result)] == ["ImageNotFound", "ImageNotFound"]
    # Tag and digest in one id: the whole image.
    put(ecr, repository, image, "a")
    put(ecr, repository, image, "b")
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[
        {"imageTag": "a", "imageDigest": image.digest}])
    assert _ids(result) == [(image.digest, "a"), (image.digest, "b")]
    assert ecr.describe_images(repositoryName=repository)["imageDetails"] == []


def test_batch_delete_index_and_child_in_one_request_follow_the_order(ecr, repository):
    child = make_image_pushed(ecr, repository)
    put(ecr, repository, child, "child")
    index = make_index({"amd64": child})
    index_digest = ecr.put_image(repositoryName=repository, imageManifest=index.decode(),
                                 imageManifestMediaType=OCI_INDEX, imageTag="multi")["image"]["imageId"]["imageDigest"]
    # Child first: still listed by the index, so it fails; the index goes.
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[
        {"imageDigest": child.digest}, {"imageTag": "multi"}])
    assert _ids(result) == [(index_digest, "multi")]
    assert _codes(result) == [({"imageDigest": child.digest}, "ImageReferencedByManifestList")]
    assert index_digest in result["failures"][0]["failureReason"] or "manifest list" in result["failures"][0]["failureReason"]
    assert _tags(ecr, repository) == [(child.digest, "child")]
    # Index first: then the child is free to go in the same call.
    ecr.put_image(repositoryName=repository, imageManifest=index.decode(),
                  imageManifestMediaType=OCI_INDEX, imageTag="multi")
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[
        {"imageTag": "multi"}, {"imageTag": "child"}])
    assert _ids(result) == [(index_digest, "multi"), (child.digest, "child")] and result["failures"] == []
    assert ecr.describe_images(repositoryName=repository)["imageDetails"] == []


def test_batch_delete_item_that_fails_midway_removes_nothing(ecr, repository):
    """Deleting a subject deletes its referrers; when a referrer cannot go (an index lists
    it), the whole item fails and the subject keeps its tag, while the other items succeed."""
    subject = make_image_pushed(ecr, repository)
    put(ecr, repository, subject, "v1")
    other = make_image_pushed(ecr, repository)
    put(ecr, repository, other, "other")
    artifact = put_signature_of(ecr, repository, subject)
    artifact_digest = digest_of(artifact.encode())
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": artifact_digest, "size": len(artifact)}]})
    ecr.put_image(repositoryName=repository, imageManifest=index, imageManifestMediaType=OCI_INDEX,
                  imageTag="sigs")
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[
        {"imageTag": "other"}, {"imageTag": "v1"}])
    assert _ids(result) == [(other.digest, "other")]
    assert _codes(result) == [({"imageTag": "v1"}, "ImageReferencedByManifestList")]
    assert artifact_digest in result["failures"][0]["failureReason"]
    assert (subject.digest, "v1") in _tags(ecr, repository)
    described = {d["imageDigest"] for d in ecr.describe_images(repositoryName=repository)["imageDetails"]}
    assert {subject.digest, artifact_digest, digest_of(index.encode())} == described
    # Index first in the same call: then the subject goes, with its referrer.
    result = ecr.batch_delete_image(repositoryName=repository, imageIds=[
        {"imageTag": "sigs"}, {"imageTag": "v1"}])
    assert _ids(result) == [(digest_of(index.encode()), "sigs"), (subject.digest, "v1"), (artifact_digest, None)]
    assert ecr.describe_images(repositoryName=repository)["imageDetails"] == []


def test_batch_get_image_resolves_every_id_form_in_one_call(ecr, repository):
    first, second = make_image_pushed(ecr, repository), make_image_pushed(ecr, repository)
    put(ecr, repository, first, "a")
    put(ecr, repository, second, "b")
    put(ecr, repository, second, "c")
    requested = [{"imageTag": "a"}, {"imageDigest": second.digest}, {"imageTag": "a"},
                 {"imageTag": "c", "imageDigest": second.digest},
                 {"imageTag": "a", "imageDigest": second.digest}, {"imageTag": "nope", "imageDigest": first.digest},
                 {"imageTag": "nope"}, {"imageDigest": "sha256:zz"}, {"imageTag": "bad tag!"}]
    result = ecr.batch_get_image(repositoryName=repository, imageIds=requested)
    assert [(i["imageId"]["imageDigest"], i["imageId"].get("imageTag")) for i in result["images"]] == [
        (first.digest, "a"), (second.digest, None), (first.digest, "a"), (second.digest, "c")]
    assert [i["imageManifest"].encode() for i in result["images"]] == [
        first.manifest, second.manifest, first.manifest, second.manifest]
    assert [f["failureCode"] for f in result["failures"]] == [
        "ImageTagDoesNotMatchDigest", "ImageNotFound", "ImageNotFound", "InvalidImageDigest",
        "InvalidImageTag"]
    described = ecr.describe_images(repositoryName=repository, imageIds=[
        {"imageTag": "b"}, {"imageDigest": second.digest}, {"imageTag": "a"}])["imageDetails"]
    assert [(d["imageDigest"], d["imageTags"]) for d in described] == [
        (second.digest, ["b", "c"]), (first.digest, ["a"])]
    assert all("lastRecordedPullTime" in d for d in described)  # BatchGetImage counted as a pull
