"""A lean ECR API client for the benchmarks: AWS JSON 1.1 requests signed with botocore's
SigV4 signer, sent over one :class:`benchmarks.rawhttp.Connection`.

boto3 spends about 1 ms of client CPU per call (request serialization, hooks, response
parsing against the service model); on a 2-core machine that time is taken from the server
under test and adds the same amount to both sides' wall times, which compresses every ratio.
This client signs (about 60 µs) and parses with :mod:`json`, so the measured wall times are
mostly the servers' own. The servers see ordinary signed requests: Moorage verifies every
signature, moto accepts them unverified.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from benchmarks.rawhttp import Connection
from benchmarks.workload import BenchError

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
CONTENT_TYPE = "application/x-amz-json-1.1"


class EcrError(BenchError):
    """An ECR error answer: ``code`` is its ``__type`` (e.g. ``RepositoryAlreadyExistsException``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class EcrClient:
    """``call("ListImages", {...})`` → the decoded JSON answer; raises :class:`EcrError`."""

    def __init__(self, host: str, port: int, region: str, access_key_id: str,
                 secret_access_key: str) -> None:
        self.url = f"http://{host}:{port}/"
        self.connection = Connection(host, port)
        self.signer = SigV4Auth(Credentials(access_key_id, secret_access_key), "ecr", region)

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(params).encode()
        request = AWSRequest("POST", self.url, data=body, headers={
            "Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET_PREFIX + operation})
        self.signer.add_auth(request)
        headers = {name: value for name, value in request.headers.items()}
        response = self.connection.request("POST", "/", headers=headers, body=body)
        document = json.loads(response.body) if response.body else {}
        if response.status != 200:
            code = str(document.get("__type", response.status)).rsplit("#", 1)[-1]
            raise EcrError(code, str(document.get("message", document.get("Message", ""))))
        return document

    def close(self) -> None:
        self.connection.close()
