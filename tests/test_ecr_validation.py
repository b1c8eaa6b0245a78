"""Unit tests of ``moorage.ecr.validation``: request bodies checked against botocore's ECR model
(ecr-api.md §1.2–1.4). Pure functions, no server."""

from __future__ import annotations

import base64
import itertools
import json
import sys
import threading
import time

import botocore.model
import botocore.session
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.ecr import validation
from moorage.ecr.exceptions import EcrError
from moorage.ecr.validation import _compile, constraint_error_code, validate_input

MODEL = botocore.session.get_session().get_service_model("ecr")
OPERATION_NAMES = sorted(MODEL.operation_names)
REPO_PATTERN = MODEL.shape_for("RepositoryName").metadata["pattern"]
UPLOAD_ID = "0123abcd-0123-4567-89ab-0123456789ab"


def op(name: str) -> botocore.model.OperationModel:
    return MODEL.operation_model(name)


def rejects(operation: str, params: object) -> EcrError:
    with pytest.raises(EcrError) as info:
        validate_input(op(operation), params)
    return info.value


def invalid_parameter(path: str, reason: str) -> str:
    return f"Invalid parameter at '{path}' failed to satisfy constraint: '{reason}'"


# ------------------------------------------------------------------------------ valid input


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("CreateRepository", {"repositoryName": "team/app"}),
        (
            "CreateRepository",
            {
                "registryId": "123456789012",
                "repositoryName": "a.b_c__d--e/f-g",
                "tags": [{"Key": "team", "Value": ""}],
                "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "v*"}],
                "imageScanningConfiguration": {"scanOnPush": True},
                "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": "arn:aws:kms:k"},
            },
        ),
        ("DescribeRepositories", {}),
        ("DescribeRepositories", {"maxResults": 1}),
        ("DescribeRepositories", {"maxResults": 1000, "nextToken": "opaque"}),
        ("DescribeRepositories", {"repositoryNames": ["ab", "x/y"]}),
        ("DeleteRepository", {"repositoryName": "ab", "force": False}),
        ("GetAuthorizationToken", {}),
        ("GetAuthorizationToken", {"registryIds": ["123456789012"]}),
        (
            "PutImage",
            {
                "repositoryName": "app",
                "imageManifest": '{"schemaVersion": 2}',
                "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json",
                "imageTag": "v1.0",
                "imageDigest": "sha256:" + "0" * 64,
            },
        ),
        (
            "BatchDeleteImage",
            {"repositoryName": "app",
             "imageIds": [{"imageTag": "latest"}, {"imageDigest": "sha256:ab"}]},
        ),
        ("GetLifecyclePolicy", {"repositoryName": "app", "registryId": "000000000000"}),
    ],
)
def test_valid_input_is_returned(operation, params):
    assert validate_input(op(operation), params) == params


def test_upload_layer_part_blob_is_decoded():
    params = {
        "repositoryName": "app",
        "uploadId": UPLOAD_ID,
        "partFirstByte": 0,
        "partLastByte": 3,
        "layerPartBlob": base64.b64encode(b"\x00\x01ab").decode(),
    }
    result = validate_input(op("UploadLayerPart"), params)
    assert result == {**params, "layerPartBlob": b"\x00\x01ab"}
    assert params["layerPartBlob"] != b"\x00\x01ab"  # input is not mutated


def test_empty_blob_is_allowed():
    params = {"repositoryName": "app", "uploadId": UPLOAD_ID, "partFirstByte": 0,
              "partLastByte": 0, "layerPartBlob": ""}
    assert validate_input(op("UploadLayerPart"), params)["layerPartBlob"] == b""


def test_unknown_and_null_members_are_dropped():
    result = validate_input(
        op("CreateRepository"),
        {"repositoryName": "app", "registryId": None, "bogus": [[{"x": 1}]],
         "imageScanningConfiguration": {"scanOnPush": None, "extra": 1}},
    )
    assert result == {"repositoryName": "app", "imageScanningConfiguration": {}}


def test_null_required_member_is_missing():
    error = rejects("DeleteRepository", {"repositoryName": None})
    assert error.code == "InvalidParameterException"
    assert error.message == invalid_parameter("repositoryName", "Member must not be null")


def test_integral_floats_are_integers():
    assert validate_input(op("DescribeRepositories"), {"maxResults": 5.0}) == {"maxResults": 5}
    result = validate_input(op("DescribeRepositories"), {"maxResults": 1e2})
    assert type(result["maxResults"]) is int


def test_error_code_per_operation():
    assert constraint_error_code(op("CreateRepository")) == "InvalidParameterException"
    assert constraint_error_code(op("PutImageTagMutability")) == "InvalidParameterException"
    assert constraint_error_code(op("GetLifecyclePolicy")) == "ValidationException"
    assert constraint_error_code(op("PutRegistryScanningConfiguration")) == "ValidationException"


# ------------------------------------------------------------------------------ constraints


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a", "Member must have length greater than or equal to 2"),
        ("a" * 257, "Member must have length less than or equal to 256"),
        ("Nginx", f"Member must satisfy regular expression pattern: {REPO_PATTERN}"),
        ("a//b", f"Member must satisfy regular expression pattern: {REPO_PATTERN}"),
        ("app/", f"Member must satisfy regular expression pattern: {REPO_PATTERN}"),
        ("-app", f"Member must satisfy regular expression pattern: {REPO_PATTERN}"),
        ("app\n", f"Member must satisfy regular expression pattern: {REPO_PATTERN}"),
        # the pattern matches "app" inside "app!": full match is required
        ("app!", f"Member must satisfy regular expression pattern: {REPO_PATTERN}"),
    ],
)
def test_repository_name_constraints(name, reason):
    error = rejects("CreateRepository", {"repositoryName": name})
    assert error.code == "InvalidParameterException"
    assert error.status == 400
    assert error.message == invalid_parameter("repositoryName", reason)


def test_required_member_missing():
    error = rejects("CreateRepository", {})
    assert error.code == "InvalidParameterException"
    assert error.message == invalid_parameter("repositoryName", "Member must not be null")


def test_required_members_reported_in_model_order():
    error = rejects("UploadLayerPart", {"repositoryName": "app"})
    assert error.message == invalid_parameter("uploadId", "Member must not be null")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (0, "Member must have value greater than or equal to 1"),
        (1001, "Member must have value less than or equal to 1000"),
        (-5, "Member must have value greater than or equal to 1"),
    ],
)
def test_max_results_range(value, reason):
    error = rejects("DescribeRepositories", {"maxResults": value})
    assert error.code == "InvalidParameterException"
    assert error.message == invalid_parameter("maxResults", reason)


def test_long_range():
    error = rejects("UploadLayerPart", {"repositoryName": "app", "uploadId": UPLOAD_ID,
                                        "partFirstByte": -1, "partLastByte": 0,
                                        "layerPartBlob": ""})
    assert error.message == invalid_parameter(
        "partFirstByte", "Member must have value greater than or equal to 0"
    )


def test_enum_violation():
    error = rejects("CreateRepository", {"repositoryName": "app", "imageTagMutability": "mutable"})
    assert error.code == "InvalidParameterException"
    assert error.message == invalid_parameter(
        "imageTagMutability",
        "Member must satisfy enum value set: "
        "[MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]",
    )


def test_nested_structure_path():
    error = rejects("CreateRepository", {"repositoryName": "app",
                                         "encryptionConfiguration": {"kmsKey": "k"}})
    assert error.message == invalid_parameter(
        "encryptionConfiguration.encryptionType", "Member must not be null"
    )


def test_tag_in_nested_list_item():
    error = rejects("BatchDeleteImage", {"repositoryName": "app",
                                         "imageIds": [{"imageTag": "ok"}, {"imageTag": ""}]})
    assert error.code == "InvalidParameterException"
    assert error.message == invalid_parameter(
        "imageIds.2.member.imageTag", "Member must have length greater than or equal to 1"
    )
    error = rejects("BatchDeleteImage", {"repositoryName": "app",
                                         "imageIds": [{"imageTag": "t" * 301}]})
    assert error.message == invalid_parameter(
        "imageIds.1.member.imageTag", "Member must have length less than or equal to 300"
    )


@pytest.mark.parametrize(
    ("count", "reason"),
    [
        (0, "Member must have length greater than or equal to 1"),
        (101, "Member must have length less than or equal to 100"),
    ],
)
def test_list_length(count, reason):
    error = rejects("BatchDeleteImage", {"repositoryName": "app",
                                         "imageIds": [{"imageTag": "x"}] * count})
    assert error.message == invalid_parameter("imageIds", reason)


def test_nested_list_of_scalars_pattern():
    error = rejects("GetAuthorizationToken", {"registryIds": ["123456789012", "12345"]})
    assert error.message == invalid_parameter(
        "registryIds.2.member", "Member must satisfy regular expression pattern: [0-9]{12}"
    )


def test_blob_length_counts_decoded_bytes():
    shape = op("UploadLayerPart").input_shape.members["layerPartBlob"]
    limit = shape.metadata["max"]
    assert limit == 20971520
    base = {"repositoryName": "app", "uploadId": UPLOAD_ID, "partFirstByte": 0, "partLastByte": 0}
    # base64 text is longer than the limit, the decoded bytes are exactly at it: accepted
    exact = base64.b64encode(b"\0" * limit).decode()
    assert len(exact) > limit
    result = validate_input(op("UploadLayerPart"), {**base, "layerPartBlob": exact})
    assert len(result["layerPartBlob"]) == limit
    over = base64.b64encode(b"\0" * (limit + 1)).decode()
    error = rejects("UploadLayerPart", {**base, "layerPartBlob": over})
    assert error.message == invalid_parameter(
        "layerPartBlob", f"Member must have length less than or equal to {limit}"
    )


def test_first_violation_in_model_order():
    # registryId comes before repositoryName in the model
    error = rejects("DeleteRepository", {"repositoryName": "A", "registryId": "x"})
    assert error.message.startswith("Invalid parameter at 'registryId'")


# ------------------------------------------------------------------- ValidationException ops


def test_validation_exception_pattern():
    error = rejects("GetLifecyclePolicy", {"repositoryName": "Nginx"})
    assert error.code == "ValidationException"
    assert error.message == (
        "1 validation error detected: Value 'Nginx' at 'repositoryName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {REPO_PATTERN}"
    )


def test_validation_exception_required():
    error = rejects("GetLifecyclePolicy", {})
    assert error.code == "ValidationException"
    assert error.message == (
        "1 validation error detected: Value null at 'repositoryName' failed to satisfy "
        "constraint: Member must not be null"
    )


def test_validation_exception_length_and_nested_path():
    error = rejects("GetLifecyclePolicy", {"repositoryName": "a"})
    assert error.message == (
        "1 validation error detected: Value 'a' at 'repositoryName' failed to satisfy "
        "constraint: Member must have length greater than or equal to 2"
    )
    error = rejects("PutRegistryScanningConfiguration", {
        "rules": [{"scanFrequency": "MANUAL",
                   "repositoryFilters": [{"filter": "ok", "filterType": "WILDCARD"},
                                         {"filter": "Bad", "filterType": "WILDCARD"}]}]})
    assert error.code == "ValidationException"
    assert "at 'rules.1.member.repositoryFilters.2.member.filter'" in error.message
    assert error.message.startswith("1 validation error detected: Value 'Bad' at ")


def test_validation_exception_enum_and_list_values():
    error = rejects("PutRegistryScanningConfiguration", {"scanType": "FULL"})
    assert error.message == (
        "1 validation error detected: Value 'FULL' at 'scanType' failed to satisfy "
        "constraint: Member must satisfy enum value set: [BASIC, ENHANCED]"
    )
    error = rejects("PutRegistryScanningConfiguration", {"rules": [
        {"scanFrequency": "MANUAL", "repositoryFilters": []}] * 3})
    assert error.message.startswith("1 validation error detected: Value '[{")
    assert error.message.endswith(
        "' at 'rules' failed to satisfy constraint: Member must have length less than or equal to 2"
    )


def test_validation_exception_echo_is_truncated():
    error = rejects("DescribeImageScanFindings", {"repositoryName": "a" * 100_000,
                                                  "imageId": {"imageTag": "x"}})
    assert error.code == "ValidationException"
    assert len(error.message) < 1000


# ------------------------------------------------------------------------ SerializationException


@pytest.mark.parametrize(
    ("operation", "params", "path"),
    [
        ("DescribeRepositories", {"maxResults": "10"}, "maxResults"),
        ("DescribeRepositories", {"maxResults": True}, "maxResults"),
        ("DescribeRepositories", {"maxResults": 1.5}, "maxResults"),
        ("DescribeRepositories", {"maxResults": float("nan")}, "maxResults"),
        ("DescribeRepositories", {"maxResults": float("inf")}, "maxResults"),
        ("DescribeRepositories", {"maxResults": 2**31}, "maxResults"),
        ("DescribeRepositories", {"repositoryNames": "app"}, "repositoryNames"),
        ("DescribeRepositories", {"repositoryNames": ["ab", 3]}, "repositoryNames.2.member"),
        ("DescribeRepositories", {"repositoryNames": ["ab", None]}, "repositoryNames.2.member"),
        ("CreateRepository", {"repositoryName": 12}, "repositoryName"),
        ("CreateRepository", {"repositoryName": ["app"]}, "repositoryName"),
        ("CreateRepository", {"repositoryName": "app", "imageScanningConfiguration": []},
         "imageScanningConfiguration"),
        ("CreateRepository",
         {"repositoryName": "app", "imageScanningConfiguration": {"scanOnPush": 1}},
         "imageScanningConfiguration.scanOnPush"),
        ("CreateRepository",
         {"repositoryName": "app", "imageScanningConfiguration": {"scanOnPush": "true"}},
         "imageScanningConfiguration.scanOnPush"),
        ("CreateRepository", {"repositoryName": "app", "tags": [["Key", "Value"]]},
         "tags.1.member"),
        ("DeleteRepository", {"repositoryName": "app", "force": 0}, "force"),
        ("UploadLayerPart", {"partFirstByte": 2**63}, "partFirstByte"),
    ],
)
def test_wrong_json_type(operation, params, path):
    error = rejects(operation, params)
    assert error.code == "SerializationException"
    assert f"'{path}'" in error.message


def test_type_errors_take_precedence_over_constraints():
    # repositoryName is missing/invalid, but the wrong type later in the body wins (AWS
    # deserialises the whole body before validating it)
    error = rejects("CreateRepository", {"repositoryName": "A", "tags": {}})
    assert error.code == "SerializationException"


@pytest.mark.parametrize("params", [[], ["repositoryName"], "app", 1, None, True])
def test_body_must_be_an_object(params):
    error = rejects("CreateRepository", params)
    assert error.code == "SerializationException"
    assert "JSON object" in error.message


@pytest.mark.parametrize("blob", ["not base64!", "YWJj", "YWJjZA", "YWJjZA==\n", "éé==", 7])
def test_invalid_base64(blob):
    if blob == "YWJj":  # a valid control
        assert validate_input(op("UploadLayerPart"), {
            "repositoryName": "app", "uploadId": UPLOAD_ID, "partFirstByte": 0,
            "partLastByte": 2, "layerPartBlob": blob})["layerPartBlob"] == b"abc"
        return
    error = rejects("UploadLayerPart", {"repositoryName": "app", "layerPartBlob": blob})
    assert error.code == "SerializationException"
    assert "'layerPartBlob'" in error.message


# ---------------------------------------------------------------------- robustness & patterns


def _input_shapes():
    seen: dict[str, botocore.model.Shape] = {}

    def walk(shape):
        if shape.name in seen:
            return
        seen[shape.name] = shape
        if shape.type_name == "structure":
            for member in shape.members.values():
                walk(member)
        elif shape.type_name == "list":
            walk(shape.member)
        elif shape.type_name == "map":
            walk(shape.key)
            walk(shape.value)

    for name in OPERATION_NAMES:
        if op(name).input_shape is not None:
            walk(op(name).input_shape)
    return seen


INPUT_SHAPES = _input_shapes()


def test_every_model_pattern_compiles():
    patterns = {s.metadata["pattern"] for s in INPUT_SHAPES.values() if "pattern" in s.metadata}
    assert len(patterns) > 10
    for pattern in patterns:
        assert _compile(pattern) is not None, pattern


def test_scanning_filter_pattern_does_not_backtrack():
    # The model pattern is exponential in Python's re: this would not finish
    started = time.perf_counter()
    error = rejects("PutRegistryScanningConfiguration", {
        "rules": [{"scanFrequency": "MANUAL",
                   "repositoryFilters": [{"filter": "a" * 254 + "!", "filterType": "WILDCARD"}]}]})
    assert "regular expression pattern" in error.message
    assert time.perf_counter() - started < 1


def test_scanning_filter_replacement_is_equivalent():
    import re

    original = MODEL.shape_for("ScanningRepositoryFilterValue").metadata["pattern"]
    slow = re.compile(original, re.ASCII)
    fast = _compile(original)
    for length in range(7):
        for chars in itertools.product("a*.-/!", repeat=length):
            text = "".join(chars)
            assert bool(slow.fullmatch(text)) == bool(fast.fullmatch(text)), text


def test_huge_and_deep_values():
    deep = json.loads("[" * 500 + "]" * 500)
    assert validate_input(op("DeleteRepository"), {"repositoryName": "app", "x": deep}) == {
        "repositoryName": "app"
    }
    assert rejects("DeleteRepository", {"repositoryName": deep}).code == "SerializationException"
    assert rejects("CreateRepository", {"repositoryName": "app", "tags": deep}).code == (
        "SerializationException"
    )
    # LayerDigest has a pattern and no length limit: a long string goes through it quickly
    started = time.perf_counter()
    error = rejects("CompleteLayerUpload", {"repositoryName": "app", "uploadId": UPLOAD_ID,
                                            "layerDigests": ["sha256:ab", "a" * 2_000_000 + ":g"]})
    assert time.perf_counter() - started < 1
    assert error.message == invalid_parameter(
        "layerDigests.2.member",
        "Member must satisfy regular expression pattern: [a-zA-Z0-9-_+.]+:[a-fA-F0-9]+",
    )
    error = rejects("BatchCheckLayerAvailability", {"repositoryName": "app",
                                                    "layerDigests": ["a" * 1001]})
    assert error.message == invalid_parameter(
        "layerDigests.1.member", "Member must have length less than or equal to 1000"
    )
    error = rejects("PutImage", {"repositoryName": "app", "imageManifest": "x" * 5_000_000})
    assert error.message == invalid_parameter(
        "imageManifest", "Member must have length less than or equal to 4194304"
    )


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=15,
)


def shaped(shape: botocore.model.Shape, depth: int = 0) -> st.SearchStrategy:
    """Values mostly of the JSON type ``shape`` expects (sometimes valid, often not), with a
    sprinkle of arbitrary JSON, so the property tests reach nested members."""
    anything = JSON_VALUES
    kind = shape.type_name
    if depth > 8:
        return anything
    if kind == "structure":
        members = {name: shaped(member, depth + 1) for name, member in shape.members.items()}
        typed = st.fixed_dictionaries({}, optional=members) if members else st.just({})
    elif kind == "list":
        typed = st.lists(shaped(shape.member, depth + 1), max_size=4)
    elif kind == "map":
        typed = st.dictionaries(st.text(max_size=8), shaped(shape.value, depth + 1), max_size=3)
    elif kind == "string":
        enum = shape.metadata.get("enum")
        if enum:
            typed = st.sampled_from(enum) | st.text(max_size=20)
        else:
            typed = st.text(alphabet="ab0/_.-:A", max_size=20) | st.sampled_from(
                ["123456789012", UPLOAD_ID, "sha256:ab", "team/app"]
            )
    elif kind in ("integer", "long"):
        typed = st.integers(min_value=-3, max_value=1100) | st.integers()
    elif kind == "boolean":
        typed = st.booleans()
    elif kind == "blob":
        encoded = st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode())
        typed = encoded | st.text(max_size=8)
    else:
        typed = anything
    return st.one_of(typed, typed, typed, anything)


def _check_outcome(name: str, params: object) -> None:
    operation = op(name)
    try:
        result = validate_input(operation, params)
    except EcrError as error:
        assert error.code in {"SerializationException", constraint_error_code(operation)}
        assert error.message
    else:
        assert isinstance(result, dict)
        assert set(result) <= set(operation.input_shape.members)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(OPERATION_NAMES), params=JSON_VALUES)
def test_random_json_never_raises_anything_else(name, params):
    _check_outcome(name, params)


@st.composite
def operation_and_params(draw):
    name = draw(st.sampled_from(OPERATION_NAMES))
    return name, draw(shaped(op(name).input_shape))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=operation_and_params())
def test_model_shaped_json_never_raises_anything_else(case):
    name, params = case
    _check_outcome(name, params)
    # a round trip through JSON text changes nothing (the input is JSON-decodable)
    try:
        text = json.dumps(params)
    except ValueError:
        return
    _check_outcome(name, json.loads(text))


# ------------------------------------------------------------------ compiled once, thread-safe


def test_compilation_is_safe_across_threads():
    """Shapes are compiled on first use; threads validating at once while an operation is being
    compiled all get the full answer (a node is never seen half built)."""
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads interleave within a compilation
    try:
        _validate_in_threads_while_compiling()
    finally:
        sys.setswitchinterval(switch_interval)


def _validate_in_threads_while_compiling() -> None:
    operation = op("BatchDeleteImage")
    valid = {"repositoryName": "team/app", "imageIds": [{"imageTag": "v1"}, {"imageDigest": "sha256:" + "a" * 64}]}
    missing = {"imageIds": [{"imageTag": "v1"}]}
    for _ in range(100):
        validation._NODES.clear()
        barrier = threading.Barrier(8)
        outcomes: list[object] = []

        def work(params: dict) -> None:
            barrier.wait()
            try:
                outcomes.append(validate_input(operation, params))
            except EcrError as error:
                outcomes.append(error.message)

        threads = [threading.Thread(target=work, args=(valid if i % 2 else missing,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes.count(valid) == 4
        assert outcomes.count(
            invalid_parameter("repositoryName", "Member must not be null")) == 4, outcomes


# ------------------------------------------------------------ text no database could store


@pytest.mark.parametrize("value, reason", [
    ("bad\x00value", "Member must not contain NUL characters"),
    ("bad\ud800value", "Member must not contain unpaired surrogates"),  # JSON "\ud800"
])
def test_nul_and_lone_surrogates_are_refused(value, reason):
    """Strings that no database stores and no UTF-8 answer carries are constraint violations
    (not a server error later): a lone surrogate is what JSON's "\\ud800" escape decodes to."""
    error = rejects("TagResource", {"resourceArn": "arn:aws:ecr:us-east-1:123456789012:repository/a",
                                    "tags": [{"Key": "k", "Value": value}]})
    assert error.code == "InvalidParameterException"
    assert error.message == invalid_parameter("tags.1.member.Value", reason)
    error = rejects("CreatePullThroughCacheRule", {"ecrRepositoryPrefix": "abc",
                                                   "upstreamRegistryUrl": value})
    assert error.code == "ValidationException" and reason in error.message
    # The value is echoed with the surrogate escaped: the message is valid UTF-8.
    error.message.encode("utf-8")
    assert json.loads(json.dumps(validate_input(op("TagResource"), {
        "resourceArn": "arn:aws:ecr:us-east-1:123456789012:repository/a",
        "tags": [{"Key": "k", "Value": "snow \u2603 \U0001f600"}]})))["tags"][0]["Value"] == "snow \u2603 \U0001f600"
