"""Repository settings, resource tags, repository and lifecycle policies, DescribeRegistry."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ACCOUNT_ID, REGION

POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Sid": "AllowPull", "Effect": "Allow",
                   "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                   "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}],
})
LIFECYCLE = json.dumps({"rules": [{
    "rulePriority": 1, "description": "keep ten",
    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
    "action": {"type": "expire"}}]})


def arn(name: str) -> str:
    return f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{name}"


def test_resource_tags(ecr, repository):
    assert ecr.list_tags_for_resource(resourceArn=arn(repository))["tags"] == []
    ecr.tag_resource(resourceArn=arn(repository), tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    ecr.tag_resource(resourceArn=arn(repository), tags=[{"Key": "a", "Value": "9"}, {"Key": "c", "Value": ""}])
    assert ecr.list_tags_for_resource(resourceArn=arn(repository))["tags"] == [
        {"Key": "a", "Value": "9"}, {"Key": "b", "Value": "2"}, {"Key": "c", "Value": ""}]
    ecr.untag_resource(resourceArn=arn(repository), tagKeys=["b", "absent"])
    assert [t["Key"] for t in ecr.list_tags_for_resource(resourceArn=arn(repository))["tags"]] == ["a", "c"]
    with pytest.raises(ecr.exceptions.InvalidTagParameterException):
        ecr.tag_resource(resourceArn=arn(repository), tags=[{"Key": "aws:x", "Value": "1"}])
    with pytest.raises(ecr.exceptions.InvalidTagParameterException):
        ecr.untag_resource(resourceArn=arn(repository), tagKeys=["aws:x"])
    with pytest.raises(ecr.exceptions.TooManyTagsException):
        ecr.tag_resource(resourceArn=arn(repository), tags=[{"Key": f"k{i}", "Value": "v"} for i in range(49)])
    assert len(ecr.list_tags_for_resource(resourceArn=arn(repository))["tags"]) == 2
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.list_tags_for_resource(resourceArn="not-an-arn")
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.list_tags_for_resource(resourceArn=arn(repository + "-absent"))
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.list_tags_for_resource(resourceArn=f"arn:aws:ecr:eu-west-1:{ACCOUNT_ID}:repository/{repository}")


def test_tag_mutability_and_scanning(ecr, repository):
    result = ecr.put_image_tag_mutability(repositoryName=repository, imageTagMutability="IMMUTABLE")
    assert result["imageTagMutability"] == "IMMUTABLE" and result["repositoryName"] == repository
    assert ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["imageTagMutability"] == "IMMUTABLE"
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_image_tag_mutability(repositoryName=repository, imageTagMutability="MUTABLE_WITH_EXCLUSION")
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.put_image_tag_mutability(repositoryName=repository + "-absent", imageTagMutability="MUTABLE")
    scanning = ecr.put_image_scanning_configuration(repositoryName=repository,
                                                    imageScanningConfiguration={"scanOnPush": True})
    assert scanning["imageScanningConfiguration"] == {"scanOnPush": True}
    described = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]
    assert described["imageScanningConfiguration"] == {"scanOnPush": True}


def test_repository_policy(ecr, repository):
    with pytest.raises(ecr.exceptions.RepositoryPolicyNotFoundException):
        ecr.get_repository_policy(repositoryName=repository)
    assert ecr.set_repository_policy(repositoryName=repository, policyText=POLICY)["policyText"] == POLICY
    assert ecr.get_repository_policy(repositoryName=repository)["policyText"] == POLICY
    for bad in ["{not json", json.dumps({"Statement": []}), json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Maybe", "Principal": "*", "Action": "ecr:BatchGetImage"}]})]:
        with pytest.raises(ecr.exceptions.InvalidParameterException):
            ecr.set_repository_policy(repositoryName=repository, policyText=bad)
    assert ecr.get_repository_policy(repositoryName=repository)["policyText"] == POLICY
    assert ecr.delete_repository_policy(repositoryName=repository)["policyText"] == POLICY
    with pytest.raises(ecr.exceptions.RepositoryPolicyNotFoundException):
        ecr.delete_repository_policy(repositoryName=repository)
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.set_repository_policy(repositoryName=repository + "-absent", policyText=POLICY)


def test_lifecycle_policy(ecr, repository):
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.get_lifecycle_policy(repositoryName=repository)
    put = ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=LIFECYCLE)
    assert put["lifecyclePolicyText"] == LIFECYCLE
    got = ecr.get_lifecycle_policy(repositoryName=repository)
    assert got["lifecyclePolicyText"] == LIFECYCLE and "lastEvaluatedAt" not in got
    bad = json.dumps({"rules": [{"rulePriority": 0, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                                                                  "countNumber": 1}, "action": {"type": "expire"}}]})
    with pytest.raises(ecr.exceptions.InvalidParameterException) as excinfo:
        ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=bad)
    assert "Lifecycle policy validation failure" in str(excinfo.value)
    deleted = ecr.delete_lifecycle_policy(repositoryName=repository)
    assert deleted["lifecyclePolicyText"] == LIFECYCLE
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.delete_lifecycle_policy(repositoryName=repository)


def test_describe_registry(ecr):
    result = ecr.describe_registry()
    assert result["registryId"] == ACCOUNT_ID
    assert result["replicationConfiguration"] == {"rules": []}


def test_lone_surrogates_are_invalid_parameters(server, ecr, repository):
    """JSON's "\\ud800" escape decodes to a lone surrogate, which no UTF-8 store or answer can
    carry: a 400 naming the member, never a server error (and no traceback in the log)."""
    arn = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryArn"]
    for call in (
        lambda: ecr.tag_resource(resourceArn=arn, tags=[{"Key": "k", "Value": "v\ud800"}]),
        lambda: ecr.untag_resource(resourceArn=arn, tagKeys=["\udfff"]),
        lambda: ecr.put_image(repositoryName=repository, imageManifest="{\ud800}"),
        lambda: ecr.put_lifecycle_policy(repositoryName=repository,
                                         lifecyclePolicyText="{\ud800" + " " * 100 + "}"),
    ):
        with pytest.raises(ecr.exceptions.ClientError, match="unpaired surrogates") as refused:
            call()
        assert refused.value.response["Error"]["Code"] in (
            "InvalidParameterException", "ValidationException")  # by operation (ecr-api.md §1.4)
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "UnicodeEncodeError" not in server.log()
