"""moorage.images.manifests: parsing and validation of pushed manifest bytes (pure, no I/O)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.errors import InvalidManifest, ManifestTooLarge
from moorage.images import media_types as mt
from moorage.images.digests import sha256_digest
from moorage.images.manifests import (
    MAX_DESCRIPTORS,
    MAX_MANIFEST_BYTES,
    Descriptor,
    Manifest,
    parse_manifest,
)

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"shared fixtures not present at {FIXTURES}"
)

AMD64 = "sha256:0fce51719ec5af926e86d9be4b2b8df7159d85f1d83b0f8978c5770dbe43ab9d"
ARM64 = "sha256:67dc1cbb5d4c817e6d4f8620b6ce28f6fdb172a97236eb8a890802ca6f51c4ba"
INDEX = "sha256:75f4a0582886df1ff510cb8b65d8a284598632ecac8c5223892807cc102ff9cc"
V2S2 = "sha256:859d2b1bbd2342464a9123d07028f8d4606048b34ae70af43990e9568c4f55f4"
ARTIFACT = "sha256:b457eaeb44b5f6893cafe4996ab9791ee2f3d690e41870e56edabaec614ea350"
CONFIG = "sha256:9302401a2a3874a4d4cebd90b522d3f5f0cf91e703ff781e4f3e4d1ccb56e484"
LAYER = "sha256:151a8a99b9c402e02e0b66eee12ed8ba9bd0fb4b7ae67eba4095957d3ab23d4b"
SBOM = "sha256:1e5bc932493838f4d881075645226c667f3668f6e481047b7fb0c45157b01030"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def blob(hex_digest: str) -> bytes:
    """Read a blob of an OCI layout fixture."""
    for layout in ("busybox-amd64", "busybox-multiarch", "artifact-with-subject"):
        path = FIXTURES / layout / "blobs" / "sha256" / hex_digest.removeprefix("sha256:")
        if path.is_file():
            return path.read_bytes()
    raise FileNotFoundError(hex_digest)


def encode(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def oci_manifest(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_IMAGE_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": mt.OCI_LAYER_TAR_GZIP, "digest": D2, "size": 20}],
    }
    document.update(overrides)
    return {k: v for k, v in document.items() if v is not ...}


def oci_index(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": D1,
                "size": 300,
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    document.update(overrides)
    return {k: v for k, v in document.items() if v is not ...}


def with_layer(**fields: Any) -> dict[str, Any]:
    """An OCI manifest whose single layer descriptor is changed by ``fields`` (... removes)."""
    layer = {"mediaType": mt.OCI_LAYER_TAR_GZIP, "digest": D2, "size": 20}
    layer.update(fields)
    return oci_manifest(layers=[{k: v for k, v in layer.items() if v is not ...}])


def invalid(content: bytes, content_type: str | None = None) -> str:
    with pytest.raises(InvalidManifest) as info:
        parse_manifest(content, content_type)
    return info.value.message


# --- real fixtures ----------------------------------------------------------------------------


@needs_fixtures
def test_fixture_oci_image_manifest() -> None:
    content = blob(AMD64)
    m = parse_manifest(content, mt.OCI_MANIFEST)
    assert (m.media_type, m.digest, m.size) == (mt.OCI_MANIFEST, AMD64, 405)
    assert m.digest == sha256_digest(content)
    assert not m.is_index
    assert m.config == Descriptor(mt.OCI_IMAGE_CONFIG, CONFIG, 450)
    assert m.layers == (Descriptor(mt.OCI_LAYER_TAR_GZIP, LAYER, 1027801),)
    assert m.manifests == ()
    assert [d.digest for d in m.blob_references] == [CONFIG, LAYER]
    assert m.subject is None and m.artifact_type is None and m.annotations is None
    assert m.effective_artifact_type == mt.OCI_IMAGE_CONFIG


@needs_fixtures
def test_fixture_oci_image_manifest_without_content_type_is_resolved_from_body() -> None:
    for content_type in (None, "", "application/json", "application/octet-stream"):
        assert parse_manifest(blob(AMD64), content_type).media_type == mt.OCI_MANIFEST


@needs_fixtures
def test_fixture_oci_index() -> None:
    m = parse_manifest(blob(INDEX), mt.OCI_INDEX + "; charset=utf-8")
    assert (m.media_type, m.digest, m.size) == (mt.OCI_INDEX, INDEX, 506)
    assert m.is_index
    assert m.config is None and m.layers == () and m.blob_references == ()
    assert [(d.digest, d.size) for d in m.manifests] == [(AMD64, 405), (ARM64, 404)]
    assert all(d.media_type == mt.OCI_MANIFEST for d in m.manifests)
    assert m.manifests[0].platform == {"architecture": "amd64", "os": "linux"}
    assert m.manifests[1].platform == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert m.effective_artifact_type is None


@needs_fixtures
def test_fixture_layout_index_json_is_an_index_too() -> None:
    content = (FIXTURES / "busybox-multiarch" / "index.json").read_bytes()
    m = parse_manifest(content, None)
    assert m.media_type == mt.OCI_INDEX
    assert m.manifests[0].digest == INDEX
    assert m.manifests[0].annotations == {"org.opencontainers.image.ref.name": "1.35"}


@needs_fixtures
def test_fixture_docker_v2s2() -> None:
    content = (FIXTURES / "busybox-docker-v2s2" / "manifest.json").read_bytes()
    m = parse_manifest(content, mt.DOCKER_MANIFEST_V2)
    assert (m.media_type, m.digest, m.size) == (mt.DOCKER_MANIFEST_V2, V2S2, 427)
    assert m.config == Descriptor(mt.DOCKER_CONTAINER_IMAGE_CONFIG, CONFIG, 450)
    assert m.layers == (Descriptor(mt.DOCKER_LAYER_TAR_GZIP, LAYER, 1027801),)
    assert [d.digest for d in m.blob_references] == [CONFIG, LAYER]
    assert m.effective_artifact_type == mt.DOCKER_CONTAINER_IMAGE_CONFIG
    # The body's mediaType alone decides when the header says nothing.
    assert parse_manifest(content, None).media_type == mt.DOCKER_MANIFEST_V2
    # An OCI Content-Type contradicts the body's Docker mediaType.
    assert "does not match" in invalid(content, mt.OCI_MANIFEST)


@needs_fixtures
def test_fixture_artifact_with_subject() -> None:
    content = blob(ARTIFACT)
    m = parse_manifest(content, mt.OCI_MANIFEST)
    assert (m.media_type, m.digest, m.size) == (mt.OCI_MANIFEST, ARTIFACT, 727)
    assert m.artifact_type == "application/spdx+json"
    assert m.effective_artifact_type == "application/spdx+json"
    assert m.subject == Descriptor(mt.OCI_MANIFEST, AMD64, 405)
    assert m.config == Descriptor(mt.OCI_EMPTY, mt.OCI_EMPTY_DIGEST, 2)
    assert m.layers == (
        Descriptor(
            "application/spdx+json",
            SBOM,
            1108,
            annotations={"org.opencontainers.image.title": "sbom.spdx.json"},
        ),
    )
    assert [d.digest for d in m.blob_references] == [mt.OCI_EMPTY_DIGEST, SBOM]
    assert m.annotations == {"org.opencontainers.image.created": "2026-11-29T00:00:00Z"}


@needs_fixtures
def test_fixture_artifact_data_field_tampered_is_rejected() -> None:
    document = json.loads(blob(ARTIFACT))
    document["config"]["data"] = base64.b64encode(b"[]").decode()
    assert "does not match digest" in invalid(encode(document))


# --- manifests built in code ------------------------------------------------------------------


def test_built_oci_manifest_digest_is_of_exact_bytes() -> None:
    compact = encode(oci_manifest())
    pretty = json.dumps(oci_manifest(), indent=3).encode()
    a, b = parse_manifest(compact, None), parse_manifest(pretty, None)
    assert a.digest == sha256_digest(compact) and a.size == len(compact)
    assert b.digest == sha256_digest(pretty) and b.size == len(pretty)
    assert a.digest != b.digest
    assert a.config == b.config and a.layers == b.layers


def test_bytes_like_inputs() -> None:
    content = encode(oci_manifest())
    assert parse_manifest(bytearray(content), None).digest == sha256_digest(content)
    assert parse_manifest(memoryview(content), None).digest == sha256_digest(content)


def test_media_type_detected_from_shape() -> None:
    assert parse_manifest(encode(oci_manifest(mediaType=...)), None).media_type == mt.OCI_MANIFEST
    assert parse_manifest(encode(oci_index(mediaType=...)), None).media_type == mt.OCI_INDEX
    assert (
        parse_manifest(encode(oci_index(mediaType=...)), "application/json").media_type
        == mt.OCI_INDEX
    )


def test_content_type_alone_decides_when_body_has_no_media_type() -> None:
    document = oci_manifest(mediaType=...)
    m = parse_manifest(encode(document), mt.DOCKER_MANIFEST_V2)  # lenient: Docker w/o mediaType
    assert m.media_type == mt.DOCKER_MANIFEST_V2
    lst = parse_manifest(encode(oci_index(mediaType=...)), mt.DOCKER_MANIFEST_LIST)
    assert lst.media_type == mt.DOCKER_MANIFEST_LIST and lst.is_index


def test_content_type_is_normalised() -> None:
    header = "Application/VND.OCI.Image.Manifest.v1+JSON ; charset=utf-8"
    assert parse_manifest(encode(oci_manifest()), header).media_type == mt.OCI_MANIFEST


def test_docker_manifest_list() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_LIST,
        "manifests": [
            {
                "mediaType": mt.DOCKER_MANIFEST_V2,
                "digest": D1,
                "size": 527,
                "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
            },
            {
                "mediaType": mt.DOCKER_MANIFEST_V2,
                "digest": D2,
                "size": 528,
                "platform": {
                    "architecture": "amd64",
                    "os": "windows",
                    "os.version": "10.0.17763.1",
                    "os.features": ["win32k"],
                    "features": [],
                },
            },
        ],
    }
    m = parse_manifest(encode(document), mt.DOCKER_MANIFEST_LIST)
    assert m.is_index and m.media_type == mt.DOCKER_MANIFEST_LIST
    assert [d.digest for d in m.manifests] == [D1, D2]
    assert m.manifests[1].platform["os.version"] == "10.0.17763.1"
    assert m.blob_references == () and m.effective_artifact_type is None


def test_docker_media_types_ignore_oci_only_fields() -> None:
    document = oci_manifest(
        mediaType=mt.DOCKER_MANIFEST_V2,
        subject={"mediaType": mt.OCI_MANIFEST, "digest": D3, "size": 1},
        artifactType="application/x-ignored",
    )
    m = parse_manifest(encode(document), None)
    assert m.subject is None and m.artifact_type is None
    assert m.effective_artifact_type == mt.OCI_IMAGE_CONFIG


def test_empty_layers_and_empty_config_artifact_without_artifact_type() -> None:
    document = oci_manifest(
        config={
            "mediaType": mt.OCI_EMPTY,
            "digest": mt.OCI_EMPTY_DIGEST,
            "size": 2,
            "data": "e30=",
        },
        layers=[],
    )
    m = parse_manifest(encode(document), mt.OCI_MANIFEST)
    assert m.layers == () and m.artifact_type is None
    assert m.effective_artifact_type == mt.OCI_EMPTY
    assert m.blob_references == (m.config,)


def test_index_with_artifact_type_subject_and_empty_manifests() -> None:
    subject = {"mediaType": mt.OCI_INDEX, "digest": D3, "size": 99}
    document = oci_index(manifests=[], artifactType="application/vnd.example+type", subject=subject)
    m = parse_manifest(encode(document), mt.OCI_INDEX)
    assert m.manifests == () and m.is_index
    assert m.subject == Descriptor(mt.OCI_INDEX, D3, 99)
    assert m.effective_artifact_type == "application/vnd.example+type"


def test_empty_artifact_type_counts_as_absent() -> None:
    m = parse_manifest(encode(oci_manifest(artifactType="")), None)
    assert m.artifact_type is None and m.effective_artifact_type == mt.OCI_IMAGE_CONFIG


def test_descriptor_optional_fields() -> None:
    document = with_layer(
        artifactType="application/vnd.example",
        annotations={"a": "b", "org.opencontainers.image.title": "x"},
        urls=["https://example.com/layer"],
    )
    (layer,) = parse_manifest(encode(document), None).layers
    assert layer.artifact_type == "application/vnd.example"
    assert layer.annotations == {"a": "b", "org.opencontainers.image.title": "x"}
    assert layer.urls == ("https://example.com/layer",)
    assert layer.platform is None


def test_descriptor_valid_data_field() -> None:
    payload = b"hello"
    document = with_layer(
        digest=sha256_digest(payload), size=len(payload), data=base64.b64encode(payload).decode()
    )
    assert parse_manifest(encode(document), None).layers[0].size == 5


@pytest.mark.parametrize("media_type", sorted(mt.NON_DISTRIBUTABLE_LAYER_MEDIA_TYPES))
def test_non_distributable_layers_with_urls_are_not_blob_references(media_type: str) -> None:
    foreign = {"mediaType": media_type, "digest": D3, "size": 5, "urls": ["https://x.example/l"]}
    without_urls = {"mediaType": media_type, "digest": D3, "size": 5}
    normal = {"mediaType": mt.OCI_LAYER_TAR_GZIP, "digest": D2, "size": 20}
    m = parse_manifest(encode(oci_manifest(layers=[foreign, normal, without_urls])), None)
    assert len(m.layers) == 3
    assert [d.digest for d in m.blob_references] == [D1, D2, D3]  # foreign skipped, urls-less kept
    assert m.layers[0].is_non_distributable and not m.layers[2].is_non_distributable


def test_ordinary_layer_with_urls_is_still_a_blob_reference() -> None:
    document = with_layer(urls=["https://example.com/mirror"])
    assert [d.digest for d in parse_manifest(encode(document), None).blob_references] == [D1, D2]


def test_duplicate_layers_are_kept() -> None:
    layer = {"mediaType": mt.OCI_LAYER_TAR_GZIP, "digest": D2, "size": 20}
    m = parse_manifest(encode(oci_manifest(layers=[layer, layer])), None)
    assert [d.digest for d in m.blob_references] == [D1, D2, D2]


def test_unknown_fields_are_ignored() -> None:
    document = oci_manifest(extra={"deep": [1, 2, {"x": None}]})
    document["config"]["x-extra"] = True
    assert parse_manifest(encode(document), None).config.digest == D1


def test_exactly_max_size_is_accepted_and_max_descriptors_is_accepted() -> None:
    document = encode(oci_manifest())
    padded = document[:-1] + b" " * (MAX_MANIFEST_BYTES - len(document)) + b"}"
    assert len(padded) == MAX_MANIFEST_BYTES
    assert parse_manifest(padded, None).size == MAX_MANIFEST_BYTES
    layer = {"mediaType": mt.OCI_LAYER_TAR_GZIP, "digest": D2, "size": 1}
    many = encode(oci_manifest(layers=[layer] * MAX_DESCRIPTORS))
    assert len(parse_manifest(many, None).layers) == MAX_DESCRIPTORS


# --- negative: document level -----------------------------------------------------------------


def test_too_large_is_checked_first() -> None:
    content = b"x" * (MAX_MANIFEST_BYTES + 1)  # not even JSON: size wins
    with pytest.raises(ManifestTooLarge) as info:
        parse_manifest(content, mt.OCI_MANIFEST)
    assert isinstance(info.value, InvalidManifest)
    assert str(MAX_MANIFEST_BYTES + 1) in info.value.message


def test_too_large_valid_manifest() -> None:
    document = encode(oci_manifest())
    padded = document[:-1] + b" " * (MAX_MANIFEST_BYTES + 1 - len(document)) + b"}"
    with pytest.raises(ManifestTooLarge):
        parse_manifest(padded, None)


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"not json", b'{"schemaVersion": 2,}', b"{} {}", b"\x00", b"{'a': 1}",
     b'{"a": NaN}', b'{"schemaVersion": Infinity}', b'{"size": -Infinity}'],
)
def test_bad_json(content: bytes) -> None:
    assert "not valid JSON" in invalid(content)


def test_integer_with_too_many_digits() -> None:
    content = encode(oci_manifest()).replace(b'"size":20', b'"size":' + b"9" * 5000)
    assert "too many digits" in invalid(content)


@pytest.mark.parametrize("content", [b"[]", b"2", b'"x"', b"null", b"true"])
def test_not_an_object(content: bytes) -> None:
    assert "JSON object" in invalid(content)


@pytest.mark.parametrize(
    "content", [b"\xff\xfe{}", b'{"a": "\xc3\x28"}', b"\xef\xbb\xbf{}", b'{"a":"\xed\xa0\x80"}']
)
def test_non_utf8_or_bom(content: bytes) -> None:
    invalid(content)


@pytest.mark.parametrize("opener", [b"[", b'{"a":', b'{"manifests":['])
def test_deep_nesting(opener: bytes) -> None:
    assert "not valid JSON" in invalid(opener * 100_000)


def test_deep_nesting_closed() -> None:
    invalid(b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize("version", [1, 3, 0, -2, "2", True, 2.0, None, [2], {"v": 2}])
def test_schema_version_must_be_integer_2(version: Any) -> None:
    assert "schemaVersion" in invalid(encode(oci_manifest(schemaVersion=version)))


def test_schema_version_missing() -> None:
    assert "schemaVersion" in invalid(encode(oci_manifest(schemaVersion=...)))


def test_content_type_mismatch_with_media_type() -> None:
    message = invalid(encode(oci_manifest()), mt.OCI_INDEX)
    assert "does not match" in message
    message = invalid(encode(oci_index()), mt.DOCKER_MANIFEST_LIST)
    assert "does not match" in message


def test_media_type_not_a_string() -> None:
    assert "mediaType must be a string" in invalid(encode(oci_manifest(mediaType=7)))


@pytest.mark.parametrize(
    ("content_type", "body_media_type"),
    [
        ("text/plain", ...),
        ("application/vnd.oci.image.config.v1+json", ...),
        (None, "application/vnd.oci.artifact.manifest.v1+json"),
        (None, "application/vnd.example"),
        ("application/json", "application/vnd.oci.image.layer.v1.tar"),
    ],
)
def test_unknown_media_type(content_type: str | None, body_media_type: Any) -> None:
    message = invalid(encode(oci_manifest(mediaType=body_media_type)), content_type)
    assert "unsupported manifest media type" in message


@pytest.mark.parametrize("media_type", sorted(mt.SCHEMA1_MEDIA_TYPES))
def test_schema1_is_unsupported(media_type: str) -> None:
    schema1 = {
        "schemaVersion": 1,
        "name": "library/busybox",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": D1}],
        "history": [{"v1Compatibility": "{}"}],
    }
    assert "schema 1" in invalid(encode(schema1), media_type)
    assert "schema 1" in invalid(encode({**schema1, "mediaType": media_type}), None)
    assert "schema 1" in invalid(encode(schema1), None)  # detected by schemaVersion 1


def test_media_type_undeterminable() -> None:
    assert "cannot determine" in invalid(encode({"schemaVersion": 2}), None)
    assert "cannot determine" in invalid(encode({"schemaVersion": 2, "config": {}}), "")


def test_manifest_index_ambiguity_is_rejected() -> None:
    both = oci_manifest(manifests=[])
    assert "'manifests'" in invalid(encode(both), mt.OCI_MANIFEST)
    index_with_config = oci_index(config=oci_manifest()["config"])
    assert "'config'" in invalid(encode(index_with_config), None)
    index_with_layers = oci_index(layers=[])
    assert "'layers'" in invalid(encode(index_with_layers), None)
    # Shape detection prefers the index, which then refuses config and layers.
    assert "'config'" in invalid(encode(oci_manifest(mediaType=..., manifests=[])), None)


def test_missing_config() -> None:
    assert "config" in invalid(encode(oci_manifest(config=...)), mt.OCI_MANIFEST)
    assert "config" in invalid(encode(oci_manifest(config=None)), mt.OCI_MANIFEST)


def test_missing_or_bad_layers() -> None:
    assert "'layers'" in invalid(encode(oci_manifest(layers=...)), mt.OCI_MANIFEST)
    assert "'layers'" in invalid(encode(oci_manifest(layers={"a": 1})), None)
    assert "'layers'" in invalid(encode(oci_manifest(layers=None)), None)


def test_missing_or_bad_manifests() -> None:
    assert "'manifests'" in invalid(encode(oci_index(manifests=...)), mt.OCI_INDEX)
    assert "'manifests'" in invalid(encode(oci_index(manifests="x")), None)


def test_too_many_descriptors() -> None:
    layer = {"mediaType": mt.OCI_LAYER_TAR_GZIP, "digest": D2, "size": 1}
    content = encode(oci_manifest(layers=[layer] * (MAX_DESCRIPTORS + 1)))
    assert "limit" in invalid(content)
    child = oci_index()["manifests"][0]
    assert "limit" in invalid(encode(oci_index(manifests=[child] * (MAX_DESCRIPTORS + 1))))


@pytest.mark.parametrize("value", [7, "x", ["a"], {"a": 1}, {"a": None}, {"a": ["b"]}])
def test_bad_manifest_annotations(value: Any) -> None:
    assert "annotations" in invalid(encode(oci_manifest(annotations=value)))


@pytest.mark.parametrize("value", [7, "not-a-media-type", "a/b/c", "/x", "x/", ["a/b"]])
def test_bad_manifest_artifact_type(value: Any) -> None:
    assert "artifactType" in invalid(encode(oci_manifest(artifactType=value)))


def test_bad_subject() -> None:
    assert "subject" in invalid(encode(oci_manifest(subject="sha256:" + "0" * 64)))
    bad = {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:zz", "size": 1}
    assert "subject" in invalid(encode(oci_manifest(subject=bad)))
    assert "subject" in invalid(encode(oci_index(subject={"digest": D1, "size": 1})))


# --- negative: descriptors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:zz",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha512:" + "a" * 128,
        "",
        "no-colon",
        7,
        None,
        ...,
    ],
)
def test_bad_digest_in_layer(digest: Any) -> None:
    message = invalid(encode(with_layer(digest=digest)))
    assert message.startswith("layer 0: ") and "digest" in message


@pytest.mark.parametrize("size", [-1, 1.0, 1.5, 2**63, "20", True, False, None, [], ...])
def test_bad_size(size: Any) -> None:
    message = invalid(encode(with_layer(size=size)))
    assert message.startswith("layer 0: ") and "size" in message


def test_size_as_float_in_raw_json() -> None:
    content = encode(oci_manifest()).replace(b'"size":20', b'"size":20.0')
    assert b"20.0" in content and "size" in invalid(content)
    content = encode(oci_manifest()).replace(b'"size":20', b'"size":2e1')
    assert "size" in invalid(content)


@pytest.mark.parametrize(
    "media_type",
    ["", "tar", "application/", "/gzip", "a/b/c", "application/x; charset=utf-8", "-a/b", 5, None,
     ...],
)
def test_bad_descriptor_media_type(media_type: Any) -> None:
    assert "mediaType" in invalid(encode(with_layer(mediaType=media_type)))


def test_bad_config_descriptor() -> None:
    assert "config" in invalid(encode(oci_manifest(config="sha256:" + "1" * 64)))
    assert "config" in invalid(encode(oci_manifest(config=[])))
    config = {"mediaType": mt.OCI_IMAGE_CONFIG, "digest": D1, "size": -5}
    assert invalid(encode(oci_manifest(config=config))).startswith("config: ")


@pytest.mark.parametrize("layer", [None, 1, "x", [], ["a"]])
def test_layer_not_an_object(layer: Any) -> None:
    assert "layer 0" in invalid(encode(oci_manifest(layers=[layer])))


@pytest.mark.parametrize("urls", ["https://x", [1], [None], {"a": "b"}, ["ok", ["nested"]]])
def test_bad_urls(urls: Any) -> None:
    assert "urls" in invalid(encode(with_layer(urls=urls)))


@pytest.mark.parametrize("annotations", [[], "x", {"a": 1}, {"a": None}, {"a": {"b": "c"}}])
def test_bad_descriptor_annotations(annotations: Any) -> None:
    assert "annotations" in invalid(encode(with_layer(annotations=annotations)))


def test_bad_descriptor_artifact_type() -> None:
    assert "artifactType" in invalid(encode(with_layer(artifactType="nope")))


@pytest.mark.parametrize(
    "platform",
    [
        "linux/amd64",
        [],
        {},
        {"architecture": "amd64"},
        {"os": "linux"},
        {"architecture": 1, "os": "linux"},
        {"architecture": "amd64", "os": None},
        {"architecture": "amd64", "os": "linux", "variant": 8},
        {"architecture": "amd64", "os": "linux", "os.version": ["1"]},
        {"architecture": "amd64", "os": "linux", "os.features": "win32k"},
        {"architecture": "amd64", "os": "linux", "features": [1]},
    ],
)
def test_bad_platform(platform: Any) -> None:
    child = {"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": 1, "platform": platform}
    message = invalid(encode(oci_index(manifests=[child])))
    assert message.startswith("manifest 0: platform")


def test_bad_index_child() -> None:
    assert "manifest 0" in invalid(encode(oci_index(manifests=["sha256:" + "1" * 64])))
    child = {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "g" * 64, "size": 1}
    assert "manifest 0" in invalid(encode(oci_index(manifests=[child])))


def test_lone_surrogates_in_kept_strings_are_rejected() -> None:
    content = encode(with_layer(annotations={"k": "v"})).replace(b'"v"', b'"\\ud800"')
    assert "Unicode" in invalid(content)
    content = encode(with_layer(urls=["u"])).replace(b'"u"', b'"\\udfff"')
    assert "Unicode" in invalid(content)
    child = {
        "mediaType": mt.OCI_MANIFEST,
        "digest": D1,
        "size": 1,
        "platform": {"architecture": "amd64", "os": "linux", "x": ["X"]},
    }
    content = encode(oci_index(manifests=[child])).replace(b'"X"', b'"\\ud800"')
    assert "Unicode" in invalid(content)


@pytest.mark.parametrize(
    ("data", "size", "digest", "expected"),
    [
        ("aGVsbG8=", 5, sha256_digest(b"world"), "does not match digest"),
        ("aGVsbG8=", 6, sha256_digest(b"hello"), "size says 6"),
        ("aGVsbG8", 5, sha256_digest(b"hello"), "base64"),
        ("aGVs bG8=", 5, sha256_digest(b"hello"), "base64"),
        ("aGVsbG8=é", 5, sha256_digest(b"hello"), "base64"),
        (5, 5, sha256_digest(b"hello"), "base64"),
        (["aGVsbG8="], 5, sha256_digest(b"hello"), "base64"),
    ],
)
def test_data_field_mismatch(data: Any, size: int, digest: str, expected: str) -> None:
    message = invalid(encode(with_layer(data=data, size=size, digest=digest)))
    assert expected in message


# --- properties -------------------------------------------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_content_types = st.none() | st.sampled_from(
    sorted(mt.MANIFEST_MEDIA_TYPES | mt.SCHEMA1_MEDIA_TYPES | mt.GENERIC_CONTENT_TYPES)
) | st.text(max_size=30)


def _outcome_is_allowed(content: bytes, content_type: str | None) -> None:
    try:
        result = parse_manifest(content, content_type)
    except InvalidManifest as exc:
        assert isinstance(exc.message, str) and exc.message
    else:
        assert isinstance(result, Manifest)
        assert result.digest == sha256_digest(content) and result.size == len(content)
        assert result.media_type in mt.MANIFEST_MEDIA_TYPES


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.binary(max_size=2000), content_type=_content_types)
def test_arbitrary_bytes_only_raise_invalid_manifest(
    content: bytes, content_type: str | None
) -> None:
    _outcome_is_allowed(content, content_type)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(document=st.dictionaries(st.text(max_size=12), _json_values, max_size=6),
       content_type=_content_types)
def test_arbitrary_json_objects_only_raise_invalid_manifest(
    document: dict[str, Any], content_type: str | None
) -> None:
    _outcome_is_allowed(json.dumps(document).encode("utf-8", "surrogatepass"), content_type)


_FIELDS = st.sampled_from(
    ["schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "artifactType",
     "annotations"]
)
_DESCRIPTOR_FIELDS = st.sampled_from(
    ["mediaType", "digest", "size", "urls", "annotations", "artifactType", "platform", "data"]
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(["manifest", "index"]),
    field=_FIELDS,
    value=_json_values,
    descriptor_field=_DESCRIPTOR_FIELDS,
    descriptor_value=_json_values,
    content_type=_content_types,
)
def test_mutated_valid_manifests_only_raise_invalid_manifest(
    base: str,
    field: str,
    value: Any,
    descriptor_field: str,
    descriptor_value: Any,
    content_type: str | None,
) -> None:
    document = oci_manifest() if base == "manifest" else oci_index()
    children = document.get("layers") or document.get("manifests")
    children[0][descriptor_field] = descriptor_value
    if field not in ("layers", "manifests"):
        document[field] = value
    _outcome_is_allowed(json.dumps(document).encode("utf-8", "surrogatepass"), content_type)
