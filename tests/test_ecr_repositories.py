"""CreateRepository, DescribeRepositories, DeleteRepository and GetAuthorizationToken with boto3
and the AWS CLI, and the ECR protocol's error paths."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid

import botocore.exceptions
import pytest

from tests.conftest import ACCOUNT_ID, REGION
from tests.images import OCI_MANIFEST, make_image


def unique(prefix: str = "repo") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_code(excinfo) -> str:  # type: ignore[no-untyped-def]
    return excinfo.value.response["Error"]["Code"]


def aws(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["aws", "ecr", *args, "--endpoint-url", server.url, "--output", "json"],
        env=server.env(), capture_output=True, text=True, timeout=120,
    )


def test_create_repository_stores_and_returns_every_member(ecr, server):
    name = unique("settings")
    created = ecr.create_repository(
        repositoryName=name,
        tags=[{"Key": "team", "Value": "platform"}, {"Key": "env", "Value": ""}],
        imageTagMutability="IMMUTABLE",
        imageScanningConfiguration={"scanOnPush": True},
        encryptionConfiguration={"encryptionType": "KMS", "kmsKey": "arn:aws:kms:us-east-1:123456789012:key/abc"},
    )["repository"]
    assert created["repositoryName"] == name
    assert created["registryId"] == ACCOUNT_ID
    assert created["repositoryArn"] == f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{name}"
    assert created["repositoryUri"] == f"{server.host}/{name}"
    assert created["imageTagMutability"] == "IMMUTABLE"
    assert created["imageScanningConfiguration"] == {"scanOnPush": True}
    assert created["encryptionConfiguration"] == {
        "encryptionType": "KMS", "kmsKey": "arn:aws:kms:us-east-1:123456789012:key/abc"}
    assert abs(created["createdAt"].timestamp() - time.time()) < 60
    described = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert described == created


def test_create_repository_defaults(ecr):
    created = ecr.create_repository(repositoryName=unique())["repository"]
    assert created["imageTagMutability"] == "MUTABLE"
    assert created["imageScanningConfiguration"] == {"scanOnPush": False}
    assert created["encryptionConfiguration"] == {"encryptionType": "AES256"}


def test_kms_without_key_uses_the_aws_managed_key(ecr):
    created = ecr.create_repository(
        repositoryName=unique(), encryptionConfiguration={"encryptionType": "KMS"})["repository"]
    assert created["encryptionConfiguration"]["kmsKey"] == f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:alias/aws/ecr"


def test_exclusion_filters_round_trip(ecr):
    filters = [{"filter": "latest*", "filterType": "WILDCARD"}]
    created = ecr.create_repository(
        repositoryName=unique(), imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=filters)["repository"]
    assert created["imageTagMutabilityExclusionFilters"] == filters


@pytest.mark.parametrize("kwargs, code", [
    ({"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"}, "InvalidParameterException"),
    ({"imageTagMutabilityExclusionFilters": [{"filter": "x*", "filterType": "WILDCARD"}]}, "InvalidParameterException"),
    ({"encryptionConfiguration": {"encryptionType": "AES256", "kmsKey": "k"}}, "InvalidParameterException"),
    ({"tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}, "InvalidParameterException"),
    ({"tags": [{"Key": "aws:reserved", "Value": "1"}]}, "InvalidTagParameterException"),
    ({"tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]}, "TooManyTagsException"),
])
def test_create_repository_rejects_inconsistent_settings(ecr, kwargs, code):
    name = unique()
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        ecr.create_repository(repositoryName=name, **kwargs)
    assert error_code(excinfo) == code
    with pytest.raises(botocore.exceptions.ClientError):
        ecr.describe_repositories(repositoryNames=[name])


def test_duplicate_repository(ecr):
    name = unique()
    ecr.create_repository(repositoryName=name)
    with pytest.raises(ecr.exceptions.RepositoryAlreadyExistsException) as excinfo:
        ecr.create_repository(repositoryName=name)
    assert name in str(excinfo.value)


def test_describe_missing_repository_names_the_first_missing(ecr):
    present = unique()
    ecr.create_repository(repositoryName=present)
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException) as excinfo:
        ecr.describe_repositories(repositoryNames=[present, "missing-one", "missing-two"])
    assert "missing-one" in str(excinfo.value)


def test_describe_repositories_paginates_stably(ecr):
    prefix = unique("page")
    names = sorted(f"{prefix}/r{i:02d}" for i in range(7))
    for name in names:
        ecr.create_repository(repositoryName=name)
    seen = []
    paginator = ecr.get_paginator("describe_repositories")
    for page in paginator.paginate(PaginationConfig={"PageSize": 3}):
        assert len(page["repositories"]) <= 3
        # A repository created mid-listing must not disturb the pages (tokens hold a key, not an offset).
        ecr.create_repository(repositoryName=unique("during"))
        seen.extend(r["repositoryName"] for r in page["repositories"])
    assert [n for n in seen if n.startswith(prefix)] == names
    assert len(seen) == len(set(seen))


def test_describe_repositories_argument_errors(ecr):
    name = unique()
    ecr.create_repository(repositoryName=name)
    ecr.create_repository(repositoryName=unique())  # two at least: a page of one has a next page
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_repositories(repositoryNames=[name], maxResults=5)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_repositories(nextToken="forged-token")
    token = ecr.describe_repositories(maxResults=1)["nextToken"]
    payload, _, mac = token.partition(".")
    tampered = base64.urlsafe_b64encode(json.dumps({"p": "DescribeRepositories", "after": "a"}).encode()).decode().rstrip("=")
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_repositories(nextToken=tampered + "." + mac)


def test_delete_repository(ecr, server, http):
    name = unique()
    ecr.create_repository(repositoryName=name)
    image = make_image()
    for digest, blob in image.blobs.items():
        assert http.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=blob).status_code == 201
    assert http.put(f"/v2/{name}/manifests/latest", content=image.manifest,
                    headers={"Content-Type": OCI_MANIFEST}).status_code == 201

    with pytest.raises(ecr.exceptions.RepositoryNotEmptyException):
        ecr.delete_repository(repositoryName=name)
    assert http.get(f"/v2/{name}/manifests/latest").status_code == 200

    deleted = ecr.delete_repository(repositoryName=name, force=True)["repository"]
    assert deleted["repositoryName"] == name
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.delete_repository(repositoryName=name)
    assert http.get(f"/v2/{name}/manifests/latest").json()["errors"][0]["code"] == "NAME_UNKNOWN"

    # The name is free again, and the new repository is empty.
    ecr.create_repository(repositoryName=name)
    assert http.get(f"/v2/{name}/manifests/latest").json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_delete_empty_repository_without_force(ecr):
    name = unique()
    ecr.create_repository(repositoryName=name)
    assert ecr.delete_repository(repositoryName=name)["repository"]["repositoryName"] == name


def test_other_registry_id_is_not_found(ecr):
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(registryId="999999999999", repositoryNames=["abc"])


def test_get_authorization_token(ecr, server):
    data = ecr.get_authorization_token()["authorizationData"]
    assert len(data) == 1
    user, _, password = base64.b64decode(data[0]["authorizationToken"]).decode().partition(":")
    assert user == "AWS" and password
    assert data[0]["proxyEndpoint"] == f"http://{server.host}"
    assert 11.9 * 3600 < data[0]["expiresAt"].timestamp() - time.time() <= 12 * 3600 + 5
    several = ecr.get_authorization_token(registryIds=[ACCOUNT_ID, ACCOUNT_ID])["authorizationData"]
    assert len(several) == 2


def test_aws_cli_flow(server):
    name = unique("cli") + "/busybox"
    created = aws(server, "create-repository", "--repository-name", name)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["repository"]["repositoryName"] == name
    described = aws(server, "describe-repositories", "--repository-names", name)
    assert json.loads(described.stdout)["repositories"][0]["repositoryUri"] == f"{server.host}/{name}"
    password = aws(server, "get-login-password")
    assert password.returncode == 0 and password.stdout.strip()
    missing = aws(server, "delete-repository", "--repository-name", unique("absent"))
    assert missing.returncode != 0 and "RepositoryNotFoundException" in missing.stderr
    deleted = aws(server, "delete-repository", "--repository-name", name)
    assert deleted.returncode == 0, deleted.stderr


def test_not_implemented_operation_is_a_clear_error(ecr):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        ecr.get_registry_policy()
    assert error_code(excinfo) == "NotImplementedException"
    assert "GetRegistryPolicy" in str(excinfo.value)
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
