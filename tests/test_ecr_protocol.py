"""The ECR edge on the wire: SigV4 failures, unknown operations, malformed bodies, validation."""

from __future__ import annotations

import json

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

TARGET = "AmazonEC2ContainerRegistry_V20150921."


def signed(server, operation: str, body: bytes, *, key=ACCESS_KEY_ID, secret=SECRET_ACCESS_KEY,
           region=REGION, service="ecr") -> dict[str, str]:
    request = AWSRequest(method="POST", url=server.url + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + operation})
    SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    return dict(request.headers.items())


def post(server, operation: str, body: bytes = b"{}", **kwargs) -> httpx.Response:
    return httpx.post(server.url + "/", content=body, headers=signed(server, operation, body, **kwargs))


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/x-amz-json-1.1"
    assert response.headers["x-amzn-requestid"]
    body = response.json()
    assert body["__type"] == code, body
    assert body["message"]
    return body


def test_signed_request_succeeds(server):
    response = post(server, "DescribeRepositories")
    assert response.status_code == 200
    assert "repositories" in response.json()


def test_unsigned_request(server):
    response = httpx.post(server.url + "/", content=b"{}", headers={
        "X-Amz-Target": TARGET + "DescribeRepositories", "Content-Type": "application/x-amz-json-1.1"})
    assert_error(response, 403, "MissingAuthenticationTokenException")


def test_unknown_access_key(server):
    assert_error(post(server, "DescribeRepositories", key="AKIAUNKNOWN000000000"), 400, "UnrecognizedClientException")


def test_wrong_secret(server):
    assert_error(post(server, "DescribeRepositories", secret="wrong"), 400, "InvalidSignatureException")


def test_wrong_region_scope(server):
    assert_error(post(server, "DescribeRepositories", region="eu-west-1"), 400, "InvalidSignatureException")


def test_wrong_service_scope(server):
    assert_error(post(server, "DescribeRepositories", service="s3"), 400, "InvalidSignatureException")


def test_tampered_body(server):
    headers = signed(server, "CreateRepository", b'{"repositoryName":"aa"}')
    response = httpx.post(server.url + "/", content=b'{"repositoryName":"bb"}', headers=headers)
    assert_error(response, 400, "InvalidSignatureException")


def test_malformed_authorization(server):
    headers = signed(server, "DescribeRepositories", b"{}")
    headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=garbage"
    assert_error(httpx.post(server.url + "/", content=b"{}", headers=headers), 400, "IncompleteSignatureException")


def test_expired_signature(server):
    headers = signed(server, "DescribeRepositories", b"{}")
    old = "20200101T000000Z"
    request = AWSRequest(method="POST", url=server.url + "/", data=b"{}", headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + "DescribeRepositories",
        "X-Amz-Date": old})
    auth = SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "ecr", REGION)
    request.context["timestamp"] = old
    headers = dict(request.headers.items())
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20200101/{REGION}/ecr/aws4_request, "
        f"SignedHeaders={auth.signed_headers(auth.headers_to_sign(request))}, Signature={signature}")
    body = assert_error(httpx.post(server.url + "/", content=b"{}", headers=headers), 400, "InvalidSignatureException")
    assert "expired" in body["message"]


def test_unknown_operation(server):
    assert_error(post(server, "LaunchRockets"), 400, "UnknownOperationException")


def test_missing_target(server):
    response = httpx.post(server.url + "/", content=b"{}")
    assert_error(response, 400, "UnknownOperationException")


def test_body_not_json(server):
    assert_error(post(server, "DescribeRepositories", b"{not json"), 400, "SerializationException")


def test_body_not_an_object(server):
    assert_error(post(server, "DescribeRepositories", b"[1,2]"), 400, "SerializationException")


def test_wrong_member_type(server):
    assert_error(post(server, "DescribeRepositories", b'{"maxResults":"ten"}'), 400, "SerializationException")


@pytest.mark.parametrize("body, member", [
    ({"repositoryName": "a"}, "repositoryName"),
    ({"repositoryName": "Upper"}, "repositoryName"),
    ({"repositoryName": "a//b"}, "repositoryName"),
    ({"repositoryName": "../etc"}, "repositoryName"),
    ({"repositoryName": "ok-name", "imageTagMutability": "SOMETIMES"}, "imageTagMutability"),
    ({}, "repositoryName"),
])
def test_create_repository_validation(server, body, member):
    response = post(server, "CreateRepository", json.dumps(body).encode())
    error = assert_error(response, 400, "InvalidParameterException")
    assert member in error["message"]


@pytest.mark.parametrize("max_results", [0, 1001])
def test_max_results_range(server, max_results):
    response = post(server, "DescribeRepositories", json.dumps({"maxResults": max_results}).encode())
    assert_error(response, 400, "InvalidParameterException")


def test_oversized_body(server):
    body = b'{"repositoryName":"' + b"a" * (33 * 1024 * 1024) + b'"}'
    response = httpx.post(server.url + "/", content=body, headers={
        "X-Amz-Target": TARGET + "CreateRepository", "Content-Type": "application/x-amz-json-1.1",
        "Authorization": "AWS4-HMAC-SHA256 Credential=x/20200101/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=00"})
    assert response.status_code == 400


@pytest.mark.parametrize("body", [b"[" * 100000 + b"]" * 100000, b'{"a":' * 5000 + b"1" + b"}" * 5000])
def test_deeply_nested_bodies(server, body):
    assert_error(post(server, "DescribeRepositories", body), 400, "SerializationException")


@pytest.mark.parametrize("token", ["abc.\u00e9", "abc.\ud800", "\ud800.abc"])
def test_non_ascii_next_tokens(server, token):
    body = json.dumps({"nextToken": token}).encode()
    assert_error(post(server, "DescribeRepositories", body), 400, "InvalidParameterException")


def test_nul_characters_are_refused(server):
    body = json.dumps({"repositoryName": "nul-test", "tags": [{"Key": "a\u0000", "Value": "b"}]}).encode()
    error = assert_error(post(server, "CreateRepository", body), 400, "InvalidParameterException")
    assert "NUL" in error["message"]


def test_client_gone_before_its_body_arrived_is_not_an_error(server):
    """A client that announces a body and leaves before sending it all gets nothing written to
    it and leaves no error in the log; the server keeps answering."""
    import socket
    import time

    body = json.dumps({"repositoryNames": ["nothing/here"]}).encode()
    headers = signed(server, "DescribeRepositories", body)
    log_before = server.log().count("unexpected_error")
    host, port = server.host.split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        sock.sendall((f"POST / HTTP/1.1\r\nHost: {server.host}\r\n{head}"
                      f"Content-Length: {len(body) + 1000}\r\n\r\n").encode() + body)
        time.sleep(0.2)
    time.sleep(0.3)
    assert post(server, "DescribeRepositories").status_code == 200
    assert server.log().count("unexpected_error") == log_before
