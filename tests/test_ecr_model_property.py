"""Model-driven property tests against the live server: every constraint in botocore's ECR model,
for every implemented operation, is enforced with a 400 and the right ``__type``; arbitrary JSON
bodies never produce a 5xx."""

from __future__ import annotations

import base64
import json

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.ecr.model import service_model
from moorage.ecr.operations import OPERATIONS
from moorage.ecr.validation import constraint_error_code
from tests.conftest import ACCESS_KEY_ID, ACCOUNT_ID, REGION, SECRET_ACCESS_KEY

TARGET = "AmazonEC2ContainerRegistry_V20150921."
MODEL = service_model()
IMPLEMENTED = sorted(OPERATIONS)

# Valid sample values for required members, by member name.
SAMPLES = {
    "repositoryName": "property/sample",
    "imageManifest": "{}",
    "imageIds": [{"imageTag": "latest"}],
    "layerDigests": ["sha256:" + "a" * 64],
    "layerDigest": "sha256:" + "a" * 64,
    "uploadId": "00000000-0000-0000-0000-000000000000",
    "partFirstByte": 0,
    "partLastByte": 0,
    "layerPartBlob": base64.b64encode(b"x").decode(),
    "policyText": "{}",
    "lifecyclePolicyText": "{" + " " * 120 + "}",
    "resourceArn": f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/property/sample",
    "tags": [{"Key": "k", "Value": "v"}],
    "tagKeys": ["k"],
    "imageTagMutability": "MUTABLE",
    "imageScanningConfiguration": {"scanOnPush": False},
}


def violations(shape):  # type: ignore[no-untyped-def]
    """Values that break one constraint of ``shape`` (or its JSON type)."""
    meta = shape.metadata
    found = []
    if shape.type_name == "string":
        if "min" in meta and meta["min"] > 0:
            found.append("")
        if "max" in meta:
            found.append("a" * (meta["max"] + 1))
        if shape.enum:
            found.append("NOT_AN_ENUM_VALUE")
        if "pattern" in meta:
            found.append("\u00e9\u00e9!!  //")
        found.append(12345)  # wrong JSON type
    elif shape.type_name in ("integer", "long"):
        if "min" in meta:
            found.append(meta["min"] - 1)
        if "max" in meta:
            found.append(meta["max"] + 1)
        found.append("not a number")
    elif shape.type_name == "list":
        if "max" in meta:
            sample = SAMPLES.get("imageIds") if shape.member.type_name == "structure" else "x"
            found.append([sample[0] if isinstance(sample, list) else sample] * (meta["max"] + 1))
        if meta.get("min", 0) > 0:
            found.append([])
        found.append("not a list")
    elif shape.type_name == "structure":
        found.append(["not", "an", "object"])
    elif shape.type_name == "boolean":
        found.append("yes")
    return found


CASES = []
for name in IMPLEMENTED:
    operation = MODEL.operation_model(name)
    shape = operation.input_shape
    if shape is None:
        continue
    base = {m: SAMPLES[m] for m in shape.required_members}
    for member_name, member_shape in shape.members.items():
        for value in violations(member_shape):
            CASES.append((name, {**base, member_name: value}, member_name))
    for missing in shape.required_members:
        CASES.append((name, {k: v for k, v in base.items() if k != missing}, missing))


def send(server, operation: str, body: bytes) -> httpx.Response:
    request = AWSRequest(method="POST", url=server.url + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + operation})
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "ecr", REGION).add_auth(request)
    return httpx.post(server.url + "/", content=body, headers=dict(request.headers.items()))


def test_the_cases_cover_every_implemented_operation():
    covered = {case[0] for case in CASES}
    with_input = {n for n in IMPLEMENTED if MODEL.operation_model(n).input_shape is not None
                  and MODEL.operation_model(n).input_shape.members}
    assert with_input <= covered
    assert len(CASES) > 200


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(CASES))
def test_every_constraint_is_enforced(server, case):
    operation, params, member = case
    response = send(server, operation, json.dumps(params).encode())
    assert response.status_code == 400, (operation, member, response.text)
    error_type = response.json()["__type"]
    expected = {constraint_error_code(MODEL.operation_model(operation)), "SerializationException"}
    assert error_type in expected, (operation, member, response.text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operation=st.sampled_from(IMPLEMENTED), body=st.dictionaries(
    st.sampled_from(sorted({m for n in IMPLEMENTED for m in (MODEL.operation_model(n).input_shape.members
                                                              if MODEL.operation_model(n).input_shape else {})})),
    json_values, max_size=5))
def test_arbitrary_bodies_never_fail_the_server(server, operation, body):
    response = send(server, operation, json.dumps(body).encode())
    assert response.status_code < 500 or response.status_code == 501, response.text
    assert response.json().get("__type") != "ServerException"
