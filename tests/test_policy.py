"""Policy documents, the evaluator and the action table (ecr-api.md §5)."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.auth.actions import (
    KNOWN_ACTIONS,
    OPERATIONS,
    REGISTRY_POLICY_V1_ACTIONS,
    DataPlaneActions,
    data_plane_actions,
    operation_actions,
    operation_resources,
    repository_arn,
)
from moorage.auth.policy import (
    ADMINISTRATOR_POLICY,
    AuthorizationRequest,
    Decision,
    PolicyDocument,
    PolicyInvalid,
    Principals,
    evaluate,
    parse_policy,
)
from moorage.errors import InvalidInput

OWNER = "123456789012"
OTHER = "210987654321"
REGION = "us-east-1"
REPO = repository_arn("team/app", region=REGION, account=OWNER)
ALICE = f"arn:aws:iam::{OWNER}:user/alice"
BOB = f"arn:aws:iam::{OTHER}:user/bob"
REPOSITORY_MESSAGE = (
    "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
    "'Invalid repository policy provided'"
)
REGISTRY_MESSAGE = (
    "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
    "'Invalid registry policy provided'"
)


def doc(*statements: dict[str, Any], version: str = "2012-10-17") -> str:
    return json.dumps({"Version": version, "Statement": list(statements)})


def stmt(**elements: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}
    base.update(elements)
    return {key: value for key, value in base.items() if value is not None}


def repo(*statements: dict[str, Any], **kwargs: Any) -> PolicyDocument:
    return parse_policy(doc(*statements, **kwargs), kind="repository")


def identity(*statements: dict[str, Any], version: str = "2012-10-17") -> PolicyDocument:
    cleaned = []
    for item in statements:
        item = {"Effect": "Allow", "Resource": "*", **item}
        cleaned.append({key: value for key, value in item.items() if value is not None})
    return parse_policy(json.dumps({"Version": version, "Statement": cleaned}), kind="identity")


def request(
    principal: str = ALICE,
    action: str = "ecr:BatchGetImage",
    resource: str = REPO,
    **kwargs: Any,
) -> AuthorizationRequest:
    account = kwargs.pop("principal_account", principal.split(":")[4] if principal else OWNER)
    return AuthorizationRequest(
        principal_arn=principal,
        principal_account=account,
        action=action,
        resource_arn=resource,
        resource_account=kwargs.pop("resource_account", OWNER),
        **kwargs,
    )


# -- grammar: accepted ------------------------------------------------------------------------


ACCEPTED = {
    "minimal": doc(stmt()),
    "version 2008": doc(stmt(), version="2008-10-17"),
    "statement object": json.dumps({"Version": "2012-10-17", "Statement": stmt()}),
    "id and sid": json.dumps({"Version": "2012-10-17", "Id": "p1", "Statement": [stmt(Sid="A b")]}),
    "duplicate sids": doc(stmt(Sid="same"), stmt(Sid="same", Effect="Deny")),
    "empty sid": doc(stmt(Sid="")),
    "principal account id": doc(stmt(Principal={"AWS": OTHER})),
    "principal root": doc(stmt(Principal={"AWS": f"arn:aws:iam::{OTHER}:root"})),
    "principal role with path": doc(stmt(Principal={"AWS": f"arn:aws:iam::{OTHER}:role/ci/deploy"})),
    "principal user": doc(stmt(Principal={"AWS": ALICE})),
    "principal session": doc(stmt(Principal={"AWS": f"arn:aws:sts::{OTHER}:assumed-role/r/s"})),
    "principal list": doc(stmt(Principal={"AWS": [OTHER, ALICE, "*"]})),
    "principal aws star": doc(stmt(Principal={"AWS": "*"})),
    "principal china": doc(stmt(Principal={"AWS": f"arn:aws-cn:iam::{OTHER}:root"})),
    "principal service": doc(stmt(Principal={"Service": "lambda.amazonaws.com"})),
    "principal services": doc(stmt(Principal={"Service": ["codebuild.amazonaws.com",
                                                          "replication.ecr.amazonaws.com"]})),
    "principal federated": doc(stmt(Principal={"Federated": "cognito-identity.amazonaws.com"})),
    "principal mixed": doc(stmt(Principal={"AWS": OTHER, "Service": "ecs.amazonaws.com"})),
    "not principal": doc(stmt(Principal=None, NotPrincipal={"AWS": ALICE}, Effect="Deny")),
    "action star": doc(stmt(Action="*")),
    "action ecr star": doc(stmt(Action="ecr:*")),
    "action prefix wildcard": doc(stmt(Action=["ecr:Batch*", "ecr:Get*"])),
    "action question mark": doc(stmt(Action="ecr:BatchGet?mage")),
    "action case": doc(stmt(Action=["ECR:batchgetimage", "Ecr:PUTIMAGE"])),
    "action registry scoped": doc(stmt(Action="ecr:GetAuthorizationToken")),
    "action non-api": doc(stmt(Action=["ecr:ReplicateImage", "ecr:BatchImportUpstreamImage"])),
    "action list referrers": doc(stmt(Action="ecr:ListImageReferrers")),
    "not action": doc(stmt(Action=None, NotAction=["ecr:DeleteRepository"])),
    "resource star": doc(stmt(Resource="*")),
    "resource arn": doc(stmt(Resource=REPO)),
    "resource wildcards": doc(stmt(Resource=["arn:aws:ecr:*:*:repository/*", "arn:aws:e?r:*:*:*"])),
    "not resource": doc(stmt(NotResource="arn:aws:ecr:*:*:repository/secret-*")),
    "resource variable": doc(stmt(Resource="arn:aws:ecr:*:*:repository/${aws:username}/*")),
    "empty condition": doc(stmt(Condition={})),
    "condition string": doc(stmt(Condition={"StringEquals": {"aws:PrincipalOrgID": "o-1"}})),
    "condition values list": doc(stmt(Condition={"StringLike": {"aws:sourceArn": ["a*", "b?"]}})),
    "condition if exists": doc(stmt(Condition={"StringEqualsIfExists": {"aws:SourceVpce": "v"}})),
    "condition for any": doc(stmt(Condition={"ForAnyValue:StringLike": {"aws:TagKeys": "t*"}})),
    "condition for all": doc(stmt(Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}})),
    "condition for any if exists": doc(stmt(Condition={
        "ForAnyValue:StringLikeIfExists": {"aws:TagKeys": "t*"}})),
    "condition ignore case": doc(stmt(Condition={"StringNotEqualsIgnoreCase": {"aws:username": "X"}})),
    "condition numeric": doc(stmt(Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": 3600}})),
    "condition numeric string": doc(stmt(Condition={"NumericGreaterThanEquals": {"k:n": "1.5"}})),
    "condition date": doc(stmt(Condition={"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}})),
    "condition date only": doc(stmt(Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}})),
    "condition date epoch": doc(stmt(Condition={"DateNotEquals": {"aws:EpochTime": 1700000000}})),
    "condition bool": doc(stmt(Condition={"Bool": {"aws:SecureTransport": "false"}})),
    "condition bool json": doc(stmt(Condition={"Bool": {"aws:SecureTransport": True}})),
    "condition ip": doc(stmt(Condition={"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "::1"]}})),
    "condition not ip": doc(stmt(Condition={"NotIpAddress": {"aws:SourceIp": "192.0.2.7"}})),
    "condition arn": doc(stmt(Condition={"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/ci-*"}})),
    "condition arn not equals": doc(stmt(Condition={"ArnNotEquals": {"aws:SourceArn": "arn:x"}})),
    "condition null": doc(stmt(Condition={"Null": {"aws:ResourceTag/team": "true"}})),
    "condition binary": doc(stmt(Condition={"BinaryEquals": {"k:b": "QmluYXJ5"}})),
    "condition ecr tag": doc(stmt(Condition={"StringEquals": {"ecr:ResourceTag/My Team": "x"}})),
    "condition many": doc(stmt(Condition={"StringEquals": {"a:b": "1", "c:d": "2"},
                                          "Bool": {"aws:SecureTransport": "true"}})),
    "whitespace": "  \n" + doc(stmt()) + "\n ",
    "max length": json.dumps({"Version": "2012-10-17", "Id": "", "Statement": stmt()}),
}


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted(text):
    document = parse_policy(text, kind="repository")
    assert document.kind == "repository"
    assert document.statements


def test_exactly_max_length_accepted():
    base = json.dumps({"Version": "2012-10-17", "Id": "", "Statement": stmt()})
    text = json.dumps({"Version": "2012-10-17", "Id": "x" * (10240 - len(base)), "Statement": stmt()})
    assert len(text) == 10240
    parse_policy(text, kind="repository")
    with pytest.raises(PolicyInvalid, match="longer than 10240"):
        parse_policy(text[:-1] + " }", kind="repository")


def test_typed_document():
    document = repo(
        {"Sid": "AllowPull", "Effect": "Allow", "Principal": {"AWS": [OTHER, "*"]},
         "Action": ["ecr:BatchGetImage"], "Resource": REPO,
         "Condition": {"ForAnyValue:StringLikeIfExists": {"aws:TagKeys": ["a", True, 3]}}},
    )
    (statement,) = document.statements
    assert document.version == "2012-10-17" and document.id is None
    assert statement.sid == "AllowPull" and statement.effect == "Allow"
    assert statement.principal == Principals(wildcard=True, aws=(OTHER,))
    assert statement.action == ("ecr:BatchGetImage",) and statement.not_action is None
    assert statement.resource == (REPO,)
    (condition,) = statement.conditions
    assert (condition.base, condition.set_operator, condition.if_exists) == (
        "StringLike", "ForAnyValue", True)
    assert condition.values == ("a", "true", "3")
    hash(document)  # frozen all the way down
    with pytest.raises(AttributeError):
        document.version = "x"  # type: ignore[misc]


# -- grammar: rejected ------------------------------------------------------------------------


def _statement_text(**elements: Any) -> str:
    return doc(stmt(**elements))


REJECTED = {
    "empty text": ("", "not valid JSON"),
    "not json": ("{", "not valid JSON"),
    "trailing garbage": (doc(stmt()) + "x", "not valid JSON"),
    "nan": ('{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*",'
            '"Action":"ecr:*","Condition":{"NumericEquals":{"a:b":NaN}}}}', "not valid JSON"),
    "duplicate key": ('{"Version":"2012-10-17","Version":"2012-10-17","Statement":[]}',
                      "duplicate key"),
    "array": ("[]", "not a JSON object"),
    "string": ('"policy"', "not a JSON object"),
    "null": ("null", "not a JSON object"),
    "unknown top-level": (json.dumps({"Version": "2012-10-17", "Statement": stmt(), "X": 1}),
                          "unknown top-level element 'X'"),
    "lower-case element": (json.dumps({"version": "2012-10-17", "Statement": stmt()}),
                           "unknown top-level element 'version'"),
    "missing version": (json.dumps({"Statement": stmt()}), "missing Version"),
    "bad version": (doc(stmt(), version="2012-10-18"), "Version must be one of"),
    "numeric version": (json.dumps({"Version": 2012, "Statement": stmt()}), "Version must be"),
    "id not string": (json.dumps({"Version": "2012-10-17", "Id": 1, "Statement": stmt()}),
                      "Id must be a string"),
    "missing statement": (json.dumps({"Version": "2012-10-17"}), "missing Statement"),
    "empty statement list": (json.dumps({"Version": "2012-10-17", "Statement": []}),
                             "non-empty list"),
    "statement string": (json.dumps({"Version": "2012-10-17", "Statement": "x"}), "non-empty list"),
    "statement item not object": (json.dumps({"Version": "2012-10-17", "Statement": [1]}),
                                  "Statement[0] is not an object"),
    "unknown statement element": (_statement_text(Foo="x"), "unknown element 'Foo'"),
    "sid not string": (_statement_text(Sid=1), "Sid must be a string"),
    "missing effect": (_statement_text(Effect=None), "Effect must be Allow or Deny"),
    "effect case": (_statement_text(Effect="allow"), "Effect must be Allow or Deny"),
    "effect other": (_statement_text(Effect="Permit"), "Effect must be Allow or Deny"),
    "missing principal": (_statement_text(Principal=None), "missing Principal or NotPrincipal"),
    "principal and not principal": (_statement_text(NotPrincipal="*"),
                                    "both Principal and NotPrincipal"),
    "principal empty object": (_statement_text(Principal={}), "principal types"),
    "principal other string": (_statement_text(Principal=ALICE), "principal types"),
    "principal list": (_statement_text(Principal=["*"]), "principal types"),
    "principal canonical user": (_statement_text(Principal={"CanonicalUser": "ab"}),
                                 "unsupported principal type 'CanonicalUser'"),
    "principal type case": (_statement_text(Principal={"aws": OTHER}), "unsupported principal"),
    "principal short account": (_statement_text(Principal={"AWS": "12345"}), "invalid AWS principal"),
    "principal partial wildcard": (_statement_text(Principal={"AWS": f"arn:aws:iam::{OTHER}:role/*"}),
                                   "invalid AWS principal"),
    "principal account wildcard": (_statement_text(Principal={"AWS": "arn:aws:iam::*:root"}),
                                   "invalid AWS principal"),
    "principal group": (_statement_text(Principal={"AWS": f"arn:aws:iam::{OTHER}:group/g"}),
                        "invalid AWS principal"),
    "principal not arn": (_statement_text(Principal={"AWS": "alice"}), "invalid AWS principal"),
    "principal empty list": (_statement_text(Principal={"AWS": []}), "non-empty list of strings"),
    "principal number": (_statement_text(Principal={"AWS": 123456789012}),
                         "non-empty list of strings"),
    "service principal invalid": (_statement_text(Principal={"Service": "Lambda"}),
                                  "invalid service principal"),
    "federated empty": (_statement_text(Principal={"Federated": " "}), "empty federated"),
    "missing action": (_statement_text(Action=None), "missing Action or NotAction"),
    "action and not action": (_statement_text(NotAction="ecr:PutImage"),
                              "both Action and NotAction"),
    "action empty list": (_statement_text(Action=[]), "non-empty list of strings"),
    "action not string": (_statement_text(Action=[1]), "non-empty list of strings"),
    "action other service": (_statement_text(Action="s3:GetObject"), "is not an ECR action"),
    "action no prefix": (_statement_text(Action="BatchGetImage"), "invalid action"),
    "action unknown": (_statement_text(Action="ecr:GetImage"), "matches no ECR action"),
    "action wildcard matches nothing": (_statement_text(Action="ecr:Foo*"), "matches no ECR action"),
    "action bad characters": (_statement_text(Action="ecr:Batch GetImage"), "invalid action"),
    "action empty name": (_statement_text(Action="ecr:"), "invalid action"),
    "resource and not resource": (_statement_text(Resource="*", NotResource="*"),
                                  "both Resource and NotResource"),
    "resource not arn": (_statement_text(Resource="repository/app"), "neither * nor an ARN"),
    "resource short arn": (_statement_text(Resource="arn:aws:ecr:us-east-1"), "neither * nor an ARN"),
    "resource other service": (_statement_text(Resource="arn:aws:s3:::bucket"),
                               "not an ECR resource"),
    "resource empty": (_statement_text(Resource=[]), "non-empty list of strings"),
    "condition list": (_statement_text(Condition=[]), "Condition must be an object"),
    "unknown operator": (_statement_text(Condition={"StringEqual": {"a:b": "c"}}),
                         "unknown condition operator 'StringEqual'"),
    "operator case": (_statement_text(Condition={"stringequals": {"a:b": "c"}}),
                      "unknown condition operator"),
    "bad set operator": (_statement_text(Condition={"ForSomeValues:StringLike": {"a:b": "c"}}),
                         "unknown condition operator"),
    "null if exists": (_statement_text(Condition={"NullIfExists": {"a:b": "true"}}),
                       "unknown condition operator"),
    "null for any": (_statement_text(Condition={"ForAnyValue:Null": {"a:b": "true"}}),
                     "unknown condition operator"),
    "operator block empty": (_statement_text(Condition={"StringEquals": {}}),
                             "non-empty object of keys"),
    "operator block list": (_statement_text(Condition={"StringEquals": ["a:b"]}),
                            "non-empty object of keys"),
    "key without prefix": (_statement_text(Condition={"StringEquals": {"SourceIp": "x"}}),
                           "invalid condition key"),
    "value object": (_statement_text(Condition={"StringEquals": {"a:b": {"c": 1}}}),
                     "strings, numbers or booleans"),
    "value null": (_statement_text(Condition={"StringEquals": {"a:b": None}}),
                   "strings, numbers or booleans"),
    "value nested list": (_statement_text(Condition={"StringEquals": {"a:b": [["c"]]}}),
                          "strings, numbers or booleans"),
    "value empty list": (_statement_text(Condition={"StringEquals": {"a:b": []}}),
                         "empty value list"),
    "numeric value": (_statement_text(Condition={"NumericLessThan": {"a:b": "ten"}}),
                      "not a valid NumericLessThan value"),
    "numeric infinity": (_statement_text(Condition={"NumericEquals": {"a:b": "Infinity"}}),
                         "not a valid NumericEquals value"),
    "date value": (_statement_text(Condition={"DateLessThan": {"aws:CurrentTime": "tomorrow"}}),
                   "not a valid DateLessThan value"),
    "bool value": (_statement_text(Condition={"Bool": {"aws:SecureTransport": "yes"}}),
                   "not a valid Bool value"),
    "null value": (_statement_text(Condition={"Null": {"a:b": 1}}), "not a valid Null value"),
    "ip value": (_statement_text(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}),
                 "not a valid IpAddress value"),
    "not ip value": (_statement_text(Condition={"NotIpAddressIfExists": {"aws:SourceIp": "x"}}),
                     "not a valid NotIpAddress value"),
    "binary value": (_statement_text(Condition={"BinaryEquals": {"a:b": "not base64!"}}),
                     "not a valid BinaryEquals value"),
    "too long": (doc(stmt(Sid="x" * 10240)), "longer than 10240 characters"),
}


@pytest.mark.parametrize(("text", "detail"), REJECTED.values(), ids=REJECTED.keys())
def test_rejected(text, detail):
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(text, kind="repository")
    assert caught.value.message == REPOSITORY_MESSAGE
    assert detail in caught.value.detail
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.kind == "repository"
    assert REPOSITORY_MESSAGE in str(caught.value) and detail in str(caught.value)


def test_not_a_string():
    with pytest.raises(PolicyInvalid, match="not a string"):
        parse_policy(b"{}", kind="repository")  # type: ignore[arg-type]


def test_deep_nesting_is_invalid_not_a_crash():
    with pytest.raises(PolicyInvalid):
        parse_policy("[" * 5000 + "]" * 5000, kind="repository")


# -- registry and identity policies ---------------------------------------------------------


@pytest.mark.parametrize("actions", [
    "ecr:ReplicateImage",
    ["ecr:CreateRepository", "ecr:ReplicateImage"],
    "ecr:BatchImportUpstreamImage",
    "ecr:Replicate*",
    "ECR:createrepository",
])
def test_registry_v1_actions(actions):
    text = doc(stmt(Principal={"AWS": f"arn:aws:iam::{OTHER}:root"}, Action=actions,
                    Resource=f"arn:aws:ecr:{REGION}:{OWNER}:repository/*"))
    assert parse_policy(text, kind="registry").kind == "registry"


@pytest.mark.parametrize(("actions", "detail"), [
    ("ecr:BatchGetImage", "not allowed in a registry policy"),
    ("ecr:*", "not allowed in a registry policy"),
    ("*", "not allowed in a registry policy"),
    ("ecr:Create*", "not allowed in a registry policy"),
    ("s3:GetObject", "not an ECR action"),
])
def test_registry_v1_rejects_other_actions(actions, detail):
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(doc(stmt(Action=actions)), kind="registry")
    assert caught.value.message == REGISTRY_MESSAGE
    assert detail in caught.value.detail


def test_registry_v1_rejects_not_action_and_v2_allows_everything():
    text = doc(stmt(Action=None, NotAction="ecr:DeleteRepository"))
    with pytest.raises(PolicyInvalid, match="NotAction"):
        parse_policy(text, kind="registry")
    parse_policy(text, kind="registry", registry_policy_scope="V2")
    parse_policy(doc(stmt(Action="ecr:*")), kind="registry", registry_policy_scope="V2")
    with pytest.raises(PolicyInvalid, match="missing Principal"):
        parse_policy(doc(stmt(Principal=None)), kind="registry", registry_policy_scope="V2")


def test_identity_policy_rules():
    managed_full_access = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["ecr:*", "cloudtrail:LookupEvents"], "Resource": "*"}, {
        "Effect": "Allow", "Action": ["iam:CreateServiceLinkedRole"], "Resource": "*",
        "Condition": {"StringEquals": {"iam:AWSServiceName": ["replication.ecr.amazonaws.com"]}}}]})
    assert len(parse_policy(managed_full_access, kind="identity").statements) == 2
    no_version = json.dumps({"Statement": {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}})
    assert parse_policy(no_version, kind="identity").version == "2008-10-17"
    with pytest.raises(PolicyInvalid, match="cannot name a Principal") as caught:
        parse_policy(doc(stmt(Resource="*")), kind="identity")
    assert "'Invalid identity policy provided'" in caught.value.message
    with pytest.raises(PolicyInvalid, match="needs Resource or NotResource"):
        parse_policy(doc({"Effect": "Allow", "Action": "ecr:*"}), kind="identity")
    with pytest.raises(PolicyInvalid, match="matches no ECR action"):
        parse_policy(doc({"Effect": "Allow", "Action": "ecr:Nope", "Resource": "*"}), kind="identity")
    parse_policy(doc({"Effect": "Allow", "Action": "ecr:*", "Resource": "arn:aws:s3:::b/*"}),
                 kind="identity")


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        parse_policy("{}", kind="bucket")  # type: ignore[arg-type]


# -- §5.5 examples ----------------------------------------------------------------------------

CROSS_ACCOUNT_PULL = """{"Version":"2012-10-17","Statement":[{"Sid":"AllowPull","Effect":"Allow",
  "Principal":{"AWS":"arn:aws:iam::210987654321:root"},
  "Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:BatchCheckLayerAvailability"]}]}"""

LAMBDA_PULL = """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},
  "Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],
  "Condition":{"StringLike":{"aws:sourceArn":"arn:aws:lambda:us-east-1:123456789012:function:*"}}}]}"""

DENY_DELETES = """{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",
  "Action":["ecr:BatchDeleteImage","ecr:DeleteRepository"],
  "Condition":{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:role/release"}}}]}"""

PULL_IDENTITY = identity({"Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                     "ecr:BatchCheckLayerAvailability", "ecr:GetAuthorizationToken"]})


@pytest.mark.parametrize("text", [CROSS_ACCOUNT_PULL, LAMBDA_PULL, DENY_DELETES])
def test_examples_parse(text):
    parse_policy(text, kind="repository")


def test_example_cross_account_pull():
    policy = parse_policy(CROSS_ACCOUNT_PULL, kind="repository")
    with_identity = evaluate(request(BOB), [PULL_IDENTITY], policy)
    assert with_identity == Decision(
        True, "allowed by a resource-based policy and an identity-based policy")
    without = evaluate(request(BOB), [], policy)
    assert without == Decision(False, (
        f"User: {BOB} is not authorized to perform: ecr:BatchGetImage on resource: {REPO} "
        "because no identity-based policy allows the ecr:BatchGetImage action"))
    push = evaluate(request(BOB, "ecr:PutImage"), [identity({"Action": "ecr:*"})], policy)
    assert push == Decision(False, (
        f"User: {BOB} is not authorized to perform: ecr:PutImage on resource: {REPO} "
        "because no resource-based policy allows the ecr:PutImage action"))
    third = "arn:aws:iam::333333333333:user/eve"
    assert not evaluate(request(third), [PULL_IDENTITY], policy).allowed


def test_example_lambda_pull():
    policy = parse_policy(LAMBDA_PULL, kind="repository")

    def ask(source: str | None, service: str = "lambda.amazonaws.com", action: str = "ecr:BatchGetImage"):
        context = {"aws:SourceArn": source} if source else {}
        return evaluate(request("", action, principal_account="", service_principal=service,
                                context=context), [], policy)

    assert ask(f"arn:aws:lambda:us-east-1:{OWNER}:function:resize").allowed
    assert not ask(f"arn:aws:lambda:us-east-1:{OTHER}:function:resize").allowed
    assert not ask(f"arn:aws:lambda:eu-west-1:{OWNER}:function:resize").allowed
    assert not ask(None).allowed
    assert not ask(f"arn:aws:lambda:us-east-1:{OWNER}:function:resize", "codebuild.amazonaws.com").allowed
    denied = ask(f"arn:aws:lambda:us-east-1:{OWNER}:function:f", action="ecr:PutImage")
    assert denied.reason == (
        f"User: lambda.amazonaws.com is not authorized to perform: ecr:PutImage on resource: "
        f"{REPO} because no resource-based policy allows the ecr:PutImage action")


def test_example_deny_deletes():
    policy = parse_policy(DENY_DELETES, kind="repository")
    delete = evaluate(request(ALICE, "ecr:BatchDeleteImage", is_admin=True), [], policy)
    assert delete == Decision(False, (
        f"User: {ALICE} is not authorized to perform: ecr:BatchDeleteImage on resource: {REPO} "
        "with an explicit deny in a resource-based policy"))
    assert not evaluate(request(ALICE, "ecr:DeleteRepository", is_admin=True), [], policy).allowed
    assert evaluate(request(ALICE, "ecr:BatchGetImage", is_admin=True), [], policy).allowed
    release = f"arn:aws:iam::{OWNER}:role/release"
    assert evaluate(request(release, "ecr:BatchDeleteImage", is_admin=True), [], policy).allowed
    session = f"arn:aws:sts::{OWNER}:assumed-role/release/ci-123"
    assert evaluate(request(session, "ecr:BatchDeleteImage", is_admin=True), [], policy).allowed
    other_session = f"arn:aws:sts::{OWNER}:assumed-role/build/ci-123"
    assert not evaluate(request(other_session, "ecr:BatchDeleteImage", is_admin=True), [], policy).allowed


def test_expectation_a_to_d():
    # (a) same-account user, no identity policy, no repository policy → denied
    a = evaluate(request(ALICE), [], None)
    assert a == Decision(False, (
        f"User: {ALICE} is not authorized to perform: ecr:BatchGetImage on resource: {REPO} "
        "because no identity-based policy allows the ecr:BatchGetImage action"))
    # (b) + a repository policy allowing the user → allowed
    allow_alice = repo(stmt(Principal={"AWS": ALICE}))
    assert evaluate(request(ALICE), [], allow_alice) == Decision(True, "allowed by a resource-based policy")
    # (c) identity allow + repository explicit deny → denied
    deny_all = repo(stmt(Effect="Deny"))
    c = evaluate(request(ALICE), [PULL_IDENTITY], deny_all)
    assert not c.allowed and c.reason.endswith("with an explicit deny in a resource-based policy")
    # (d) other account allowed by the repository policy, without / with its own identity policy
    allow_bob = repo(stmt(Principal={"AWS": BOB}))
    assert not evaluate(request(BOB), [], allow_bob).allowed
    assert evaluate(request(BOB), [PULL_IDENTITY], allow_bob).allowed


# -- evaluator --------------------------------------------------------------------------------


def test_identity_only_same_account():
    assert evaluate(request(ALICE), [PULL_IDENTITY], None) == Decision(
        True, "allowed by an identity-based policy")
    assert not evaluate(request(ALICE, "ecr:PutImage"), [PULL_IDENTITY], None).allowed


def test_explicit_deny_in_identity_beats_every_allow():
    deny = identity({"Effect": "Deny", "Action": "ecr:BatchGetImage"})
    decision = evaluate(request(ALICE, is_admin=True), [PULL_IDENTITY, deny], repo(stmt()))
    assert decision.reason == (
        f"User: {ALICE} is not authorized to perform: ecr:BatchGetImage on resource: {REPO} "
        "with an explicit deny in an identity-based policy")


def test_registry_policy_deny_and_allow():
    deny = parse_policy(doc(stmt(Effect="Deny", Action="ecr:CreateRepository")), kind="registry")
    decision = evaluate(request(ALICE, "ecr:CreateRepository", is_admin=True), [], None, deny)
    assert decision.reason.endswith("with an explicit deny in a resource-based policy")
    replicate = parse_policy(doc(stmt(
        Principal={"AWS": f"arn:aws:iam::{OTHER}:root"},
        Action=["ecr:CreateRepository", "ecr:ReplicateImage"],
        Resource=f"arn:aws:ecr:{REGION}:{OWNER}:repository/*")), kind="registry")
    source_root = f"arn:aws:iam::{OTHER}:root"
    assert evaluate(request(source_root, "ecr:ReplicateImage"), [], None, replicate).allowed
    assert evaluate(request(source_root, "ecr:CreateRepository"), [], None, replicate).allowed
    # A user of the source account still needs its own identity policy (cross-account).
    assert not evaluate(request(BOB, "ecr:ReplicateImage"), [], None, replicate).allowed
    assert evaluate(request(BOB, "ecr:ReplicateImage"), [identity({"Action": "ecr:*"})], None,
                    replicate).allowed
    elsewhere = repository_arn("x", region="eu-west-1", account=OWNER)
    assert not evaluate(request(source_root, "ecr:ReplicateImage", elsewhere), [], None, replicate).allowed


def test_account_principal_delegates_to_identity_policies():
    own_account = repo(stmt(Principal={"AWS": OWNER}))
    own_root = repo(stmt(Principal={"AWS": f"arn:aws:iam::{OWNER}:root"}))
    for policy in (own_account, own_root):
        assert not evaluate(request(ALICE), [], policy).allowed
        assert evaluate(request(ALICE), [PULL_IDENTITY], policy).allowed
    # the account root itself is named directly and holds every permission of its account
    assert evaluate(request(f"arn:aws:iam::{OWNER}:root"), [], None).allowed
    # cross-account through the other account's id
    other_account = repo(stmt(Principal={"AWS": OTHER}))
    assert evaluate(request(BOB), [PULL_IDENTITY], other_account).allowed
    assert not evaluate(request(BOB), [], other_account).allowed


def test_wildcard_principal_grants_same_account_directly():
    assert evaluate(request(ALICE), [], repo(stmt(Principal="*"))).allowed
    assert evaluate(request(ALICE), [], repo(stmt(Principal={"AWS": "*"}))).allowed
    assert not evaluate(request(BOB), [], repo(stmt(Principal="*"))).allowed
    assert evaluate(request(BOB), [PULL_IDENTITY], repo(stmt(Principal="*"))).allowed


def test_registry_scoped_actions_ignore_resource_policies():
    everything = repo(stmt(Action="ecr:*"))
    token = evaluate(request(ALICE, "ecr:GetAuthorizationToken", "*"), [], everything)
    assert token == Decision(False, (
        f"User: {ALICE} is not authorized to perform: ecr:GetAuthorizationToken on resource: * "
        "because no identity-based policy allows the ecr:GetAuthorizationToken action"))
    assert evaluate(request(ALICE, "ecr:GetAuthorizationToken", "*"), [PULL_IDENTITY], everything).allowed
    deny_everything = repo(stmt(Effect="Deny", Action="*"))
    assert evaluate(request(ALICE, "ecr:GetAuthorizationToken", "*"), [PULL_IDENTITY],
                    deny_everything).allowed


def test_not_action_not_principal_not_resource():
    everything_but_delete = repo(stmt(Action=None, NotAction="ecr:Delete*"))
    assert evaluate(request(ALICE, "ecr:PutImage"), [], everything_but_delete).allowed
    assert not evaluate(request(ALICE, "ecr:DeleteRepository"), [], everything_but_delete).allowed

    deny_all_but_alice = repo(
        stmt(Principal="*"),
        stmt(Effect="Deny", Principal=None, NotPrincipal={"AWS": ALICE}, Action="ecr:*"),
    )
    carol = f"arn:aws:iam::{OWNER}:user/carol"
    assert evaluate(request(ALICE), [], deny_all_but_alice).allowed
    assert not evaluate(request(carol, is_admin=True), [], deny_all_but_alice).allowed

    not_secret = identity({"Action": "ecr:*", "Resource": None,
                           "NotResource": "arn:aws:ecr:*:*:repository/secret/*"})
    secret = repository_arn("secret/key", region=REGION, account=OWNER)
    assert evaluate(request(ALICE), [not_secret], None).allowed
    assert not evaluate(request(ALICE, resource=secret), [not_secret], None).allowed


def test_action_matching_is_case_insensitive_and_arn_matching_is_not():
    policy = identity({"Action": "ECR:batchget?MAGE", "Resource": "arn:aws:ecr:*:*:repository/team/*"})
    assert evaluate(request(ALICE), [policy], None).allowed
    upper = repository_arn("Team/app", region=REGION, account=OWNER)
    assert not evaluate(request(ALICE, resource=upper), [policy], None).allowed
    assert not evaluate(request(ALICE, "ecr:BatchGetImages"), [policy], None).allowed


def test_arn_wildcards_stay_within_their_segment():
    policy = identity({"Action": "ecr:*", "Resource": f"arn:aws:ecr:*:{OWNER}:repository/team-?"})
    assert evaluate(request(ALICE, resource=repository_arn("team-a", region=REGION, account=OWNER)),
                    [policy], None).allowed
    assert not evaluate(request(ALICE, resource=repository_arn("team-ab", region=REGION, account=OWNER)),
                        [policy], None).allowed
    region_only = identity({"Action": "ecr:*", "Resource": "arn:aws:ecr:us-*:*:repository/*"})
    assert evaluate(request(ALICE), [region_only], None).allowed
    # '*' in the region part cannot swallow the account part
    segmented = identity({"Action": "ecr:*", "Resource": f"arn:aws:ecr:*{OWNER}:*:repository/*"})
    assert not evaluate(request(ALICE), [segmented], None).allowed


def test_policy_variables():
    per_user = identity({"Action": "ecr:*", "Resource": "arn:aws:ecr:*:*:repository/${aws:username}/*"})
    own = repository_arn("alice/tools", region=REGION, account=OWNER)
    theirs = repository_arn("bob/tools", region=REGION, account=OWNER)
    assert evaluate(request(ALICE, resource=own), [per_user], None).allowed
    assert not evaluate(request(ALICE, resource=theirs), [per_user], None).allowed
    # roles have no aws:username: the variable does not resolve and nothing matches
    role = f"arn:aws:iam::{OWNER}:role/alice"
    assert not evaluate(request(role, resource=own), [per_user], None).allowed
    # 2008-10-17 does not expand variables
    literal = identity({"Action": "ecr:*", "Resource": "arn:aws:ecr:*:*:repository/${aws:username}/*"},
                       version="2008-10-17")
    assert not evaluate(request(ALICE, resource=own), [literal], None).allowed
    odd = repository_arn("${aws:username}/x", region=REGION, account=OWNER)
    assert evaluate(request(ALICE, resource=odd), [literal], None).allowed
    # special variables are literal characters
    star = identity({"Action": "ecr:*", "Condition": {"StringLike": {"a:k": "x${*}y"}}})
    assert evaluate(request(ALICE, context={"a:k": "x*y"}), [star], None).allowed
    assert not evaluate(request(ALICE, context={"a:k": "xzzy"}), [star], None).allowed
    equals = identity({"Action": "ecr:*", "Condition": {"StringEquals": {"a:k": "${aws:username}"}}})
    assert evaluate(request(ALICE, context={"a:k": "alice"}), [equals], None).allowed
    assert not evaluate(request(role, context={"a:k": "alice"}), [equals], None).allowed


CONDITIONS = [
    # (condition, context, expected)
    ({"StringEquals": {"aws:PrincipalOrgID": "o-1"}}, {"aws:PrincipalOrgID": "o-1"}, True),
    ({"StringEquals": {"aws:PrincipalOrgID": ["o-2", "o-1"]}}, {"aws:principalorgid": "o-1"}, True),
    ({"StringEquals": {"aws:PrincipalOrgID": "o-1"}}, {"aws:PrincipalOrgID": "O-1"}, False),
    ({"StringEquals": {"aws:PrincipalOrgID": "o-1"}}, {}, False),
    ({"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-1"}}, {}, True),
    ({"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-1"}}, {"aws:PrincipalOrgID": "o-2"}, False),
    ({"StringNotEquals": {"aws:PrincipalOrgID": "o-1"}}, {}, True),
    ({"StringNotEquals": {"aws:PrincipalOrgID": ["o-1", "o-2"]}}, {"aws:PrincipalOrgID": "o-2"}, False),
    ({"StringNotEquals": {"aws:PrincipalOrgID": ["o-1", "o-2"]}}, {"aws:PrincipalOrgID": "o-3"}, True),
    ({"StringEqualsIgnoreCase": {"a:k": "HeLLo"}}, {"a:k": "hello"}, True),
    ({"StringNotEqualsIgnoreCase": {"a:k": "HeLLo"}}, {"a:k": "hello"}, False),
    ({"StringLike": {"a:k": "ab*"}}, {"a:k": "abc"}, True),
    ({"StringLike": {"a:k": "a?c"}}, {"a:k": "abbc"}, False),
    ({"StringLike": {"a:k": "AB*"}}, {"a:k": "abc"}, False),
    ({"StringNotLike": {"a:k": "ab*"}}, {"a:k": "xbc"}, True),
    ({"StringNotLike": {"a:k": "ab*"}}, {}, True),
    ({"NumericLessThan": {"a:n": 10}}, {"a:n": 9}, True),
    ({"NumericLessThan": {"a:n": "10"}}, {"a:n": "10"}, False),
    ({"NumericLessThanEquals": {"a:n": "10"}}, {"a:n": 10.0}, True),
    ({"NumericGreaterThan": {"a:n": 1.5}}, {"a:n": "2"}, True),
    ({"NumericGreaterThanEquals": {"a:n": 2}}, {"a:n": "1"}, False),
    ({"NumericEquals": {"a:n": 2}}, {"a:n": "2.0"}, True),
    ({"NumericNotEquals": {"a:n": 2}}, {"a:n": "3"}, True),
    ({"NumericEquals": {"a:n": 2}}, {"a:n": "two"}, False),
    ({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
     {"aws:CurrentTime": "2029-12-31T23:59:59Z"}, True),
    ({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
     {"aws:CurrentTime": "2030-01-01T01:00:00+01:00"}, False),
    ({"DateGreaterThanEquals": {"aws:CurrentTime": "2030-01-01"}},
     {"aws:CurrentTime": "2030-01-01T00:00:00Z"}, True),
    ({"DateGreaterThan": {"aws:EpochTime": 1700000000}}, {"aws:EpochTime": 1700000001}, True),
    ({"DateEquals": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}, {"aws:CurrentTime": 1893456000}, True),
    ({"DateNotEquals": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}, {"aws:CurrentTime": "x"}, True),
    ({"DateLessThanEquals": {"aws:CurrentTime": "2030-01-01"}}, {"aws:CurrentTime": "2031-01-01"}, False),
    ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}, True),
    ({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "TRUE"}, True),
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": True}, False),
    ({"Bool": {"aws:SecureTransport": "false"}}, {}, False),
    ({"BoolIfExists": {"aws:SecureTransport": "false"}}, {}, True),
    ({"BinaryEquals": {"a:b": "QmluYXJ5"}}, {"a:b": "QmluYXJ5"}, True),
    ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "10.1.2.3"}, True),
    ({"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "10.0.0.0/8"]}}, {"aws:SourceIp": "192.0.2.9"}, True),
    ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "11.0.0.1"}, False),
    ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "::1"}, False),
    ({"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}, {"aws:SourceIp": "2001:db8::1"}, True),
    ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "not an ip"}, False),
    ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "11.0.0.1"}, True),
    ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "10.0.0.1"}, False),
    ({"ArnLike": {"aws:SourceArn": "arn:aws:lambda:*:123456789012:function:*"}},
     {"aws:SourceArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}, True),
    ({"ArnLike": {"aws:SourceArn": "arn:aws:lambda:*:123456789012:function:*"}},
     {"aws:SourceArn": "arn:aws:lambda:us-east-1:210987654321:function:f"}, False),
    ({"ArnEquals": {"aws:SourceArn": "arn:aws:lambda:*:123456789012:function:f"}},
     {"aws:SourceArn": "arn:aws:lambda:eu-west-1:123456789012:function:f"}, True),
    ({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/a*"}}, {}, False),  # derived: alice
    ({"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/bob"}}, {}, True),
    ({"Null": {"aws:ResourceTag/team": "true"}}, {}, True),
    ({"Null": {"aws:ResourceTag/team": "true"}}, {"aws:ResourceTag/team": "x"}, False),
    ({"Null": {"aws:ResourceTag/team": "false"}}, {"aws:ResourceTag/Team": "x"}, True),
    ({"StringEquals": {"ecr:ResourceTag/team": "x"}}, {"aws:ResourceTag/team": "x"}, True),
    ({"StringEquals": {"aws:ResourceTag/team": "x"}}, {"ecr:ResourceTag/team": "x"}, True),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["c", "b"]}, True),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["c"]}, False),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": "a"}}, {}, False),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["a", "b"]}, True),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["a", "c"]}, False),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, {}, True),
    ({"ForAllValues:StringNotEquals": {"aws:TagKeys": ["secret"]}}, {"aws:TagKeys": ["a", "b"]}, True),
    ({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["a"]}}, {"aws:TagKeys": ["a"]}, False),
    ({"StringEquals": {"aws:TagKeys": "a"}}, {"aws:TagKeys": ["b", "a"]}, True),
    ({"StringNotEquals": {"aws:TagKeys": "a"}}, {"aws:TagKeys": ["b", "a"]}, False),
    ({"StringEquals": {"aws:PrincipalAccount": OWNER, "aws:username": "alice"},
      "Bool": {"aws:PrincipalIsAWSService": "false"}}, {}, True),
    ({"StringEquals": {"aws:PrincipalAccount": OWNER, "aws:username": "bob"}}, {}, False),
    ({"StringEquals": {"aws:ResourceAccount": OWNER}}, {}, True),
    ({"StringEquals": {"aws:username": "alice"}}, {"aws:username": None}, False),
]


@pytest.mark.parametrize(("condition", "context", "expected"), CONDITIONS)
def test_conditions(condition, context, expected):
    policy = identity({"Action": "ecr:*", "Condition": condition})
    decision = evaluate(request(ALICE, context=context), [policy], None)
    assert decision.allowed is expected, decision.reason


def test_conditions_on_deny_statements():
    deny_plain_http = repo(stmt(Effect="Deny", Action="ecr:*",
                                Condition={"Bool": {"aws:SecureTransport": "false"}}))
    assert not evaluate(request(ALICE, is_admin=True, context={"aws:SecureTransport": False}),
                        [], deny_plain_http).allowed
    assert evaluate(request(ALICE, is_admin=True, context={"aws:SecureTransport": True}),
                    [], deny_plain_http).allowed
    vpce_only = repo(stmt(Effect="Deny", Action="ecr:*",
                          Condition={"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}))
    assert not evaluate(request(ALICE, is_admin=True), [], vpce_only).allowed
    assert evaluate(request(ALICE, is_admin=True, context={"aws:SourceVpce": "vpce-1"}), [],
                    vpce_only).allowed


def test_principal_arn_context_override_and_datetime_context():
    from datetime import datetime, timezone

    by_role = repo(stmt(Principal={"AWS": f"arn:aws:iam::{OWNER}:role/path/deployer"}))
    session = f"arn:aws:sts::{OWNER}:assumed-role/deployer/s1"
    assert evaluate(request(session), [], by_role).allowed
    before = identity({"Action": "ecr:*", "Condition": {
        "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}})
    now = datetime(2029, 6, 1, tzinfo=timezone.utc)
    assert evaluate(request(ALICE, context={"aws:CurrentTime": now}), [before], None).allowed
    assert not evaluate(request(ALICE, context={"aws:CurrentTime": datetime(2031, 1, 1)}),
                        [before], None).allowed


def test_administrator_policy():
    assert ADMINISTRATOR_POLICY.statements[0].action == ("ecr:*",)
    assert evaluate(request(ALICE, "ecr:PutRegistryPolicy", "*", is_admin=True), [], None).allowed
    assert evaluate(request(ALICE, "ecr:PutImage", is_admin=True), [], None).allowed
    # an administrator of another account still needs the repository policy
    assert not evaluate(request(BOB, is_admin=True), [], None).allowed


# -- action table -----------------------------------------------------------------------------


def test_every_model_operation_is_in_the_table():
    model = botocore.session.get_session().get_service_model("ecr")
    assert set(OPERATIONS) == set(model.operation_names)


def test_table_entries():
    for name, auth in OPERATIONS.items():
        assert auth.operation == name
        assert auth.scope in ("repository", "registry")
        assert auth.actions and all(action in KNOWN_ACTIONS for action in auth.actions)
        if name != "ListImageReferrers":
            assert auth.actions == (f"ecr:{name}",)
    assert OPERATIONS["ListImageReferrers"].actions == ("ecr:BatchGetImage",)
    assert "ecr:ListImageReferrers" in KNOWN_ACTIONS
    assert {"ecr:ReplicateImage", "ecr:BatchImportUpstreamImage"} <= KNOWN_ACTIONS
    assert REGISTRY_POLICY_V1_ACTIONS <= KNOWN_ACTIONS
    for name in ("GetAuthorizationToken", "DescribeRegistry", "PutRegistryPolicy",
                 "GetAccountSetting", "CreatePullThroughCacheRule"):
        assert OPERATIONS[name].scope == "registry"
    for name in ("BatchGetImage", "PutImage", "SetRepositoryPolicy", "CreateRepository",
                 "TagResource", "DescribeRepositories"):
        assert OPERATIONS[name].scope == "repository"


def test_operation_actions_and_resources():
    assert operation_actions("CreateRepository", {"repositoryName": "a"}) == ("ecr:CreateRepository",)
    assert operation_actions("CreateRepository", {"tags": [{"Key": "k", "Value": "v"}]}) == (
        "ecr:CreateRepository", "ecr:TagResource")
    with pytest.raises(KeyError):
        operation_actions("Nope")

    def resources(operation, **params):
        return operation_resources(operation, params, region=REGION, account=OWNER)

    assert resources("GetAuthorizationToken") == ("*",)
    assert resources("BatchGetImage", repositoryName="team/app") == (REPO,)
    assert resources("BatchGetImage", repositoryName="x", registryId=OTHER) == (
        f"arn:aws:ecr:{REGION}:{OTHER}:repository/x",)
    assert resources("TagResource", resourceArn=REPO) == (REPO,)
    assert resources("DescribeRepositories") == (f"arn:aws:ecr:{REGION}:{OWNER}:repository/*",)
    assert resources("DescribeRepositories", repositoryNames=["a", "b"]) == (
        f"arn:aws:ecr:{REGION}:{OWNER}:repository/a", f"arn:aws:ecr:{REGION}:{OWNER}:repository/b")
    assert resources("BatchGetRepositoryScanningConfiguration", repositoryNames=["a"]) == (
        f"arn:aws:ecr:{REGION}:{OWNER}:repository/a",)
    assert operation_resources("PutImage", {"repositoryName": "a"}, region="cn-north-1",
                               account=OWNER, partition="aws-cn") == (
        f"arn:aws-cn:ecr:cn-north-1:{OWNER}:repository/a",)


@pytest.mark.parametrize(("method", "route", "flags", "expected"), [
    ("GET", "base", {}, DataPlaneActions(())),
    ("HEAD", "base", {}, DataPlaneActions(())),
    ("GET", "manifest", {}, DataPlaneActions(("ecr:BatchGetImage",))),
    ("head", "manifest", {}, DataPlaneActions(("ecr:BatchGetImage",))),
    ("PUT", "manifest", {}, DataPlaneActions(("ecr:PutImage",))),
    ("DELETE", "manifest", {}, DataPlaneActions(("ecr:BatchDeleteImage",))),
    ("GET", "blob", {}, DataPlaneActions(("ecr:GetDownloadUrlForLayer",))),
    ("HEAD", "blob", {}, DataPlaneActions(("ecr:BatchCheckLayerAvailability",))),
    ("DELETE", "blob", {}, DataPlaneActions(("ecr:BatchDeleteImage",))),
    ("POST", "upload", {}, DataPlaneActions(("ecr:InitiateLayerUpload",))),
    ("POST", "upload", {"monolithic": True}, DataPlaneActions(
        ("ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"))),
    ("POST", "upload", {"mount": True}, DataPlaneActions(
        ("ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"),
        ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"))),
    ("PATCH", "upload", {}, DataPlaneActions(("ecr:UploadLayerPart",))),
    ("PUT", "upload", {}, DataPlaneActions(("ecr:CompleteLayerUpload",))),
    ("PUT", "upload", {"has_body": True}, DataPlaneActions(
        ("ecr:UploadLayerPart", "ecr:CompleteLayerUpload"))),
    ("GET", "upload", {}, DataPlaneActions(("ecr:UploadLayerPart",))),
    ("DELETE", "upload", {}, DataPlaneActions(("ecr:UploadLayerPart",))),
    ("GET", "tags", {}, DataPlaneActions(("ecr:ListImages",))),
    ("GET", "referrers", {}, DataPlaneActions(("ecr:BatchGetImage",))),
])
def test_data_plane_actions(method, route, flags, expected):
    result = data_plane_actions(method, route, **flags)
    assert result == expected
    assert all(action in KNOWN_ACTIONS for action in result.target + result.mount_source)


@pytest.mark.parametrize(("method", "route"), [("POST", "manifest"), ("PUT", "tags"), ("GET", "nope")])
def test_data_plane_unknown(method, route):
    with pytest.raises(ValueError):
        data_plane_actions(method, route)


def test_data_plane_pull_and_push_bundles():
    pull = identity({"Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                "ecr:BatchCheckLayerAvailability"]})
    push = identity({"Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                "ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload",
                                "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"]})

    def allowed(policy, method, route, **flags):
        needed = data_plane_actions(method, route, **flags).target
        return all(evaluate(request(ALICE, action), [policy], None).allowed for action in needed)

    pull_requests = [("GET", "manifest"), ("HEAD", "manifest"), ("GET", "blob"), ("HEAD", "blob"),
                     ("GET", "referrers")]
    push_requests = [("POST", "upload"), ("PATCH", "upload"), ("PUT", "upload"), ("PUT", "manifest")]
    assert all(allowed(pull, m, r) for m, r in pull_requests)
    assert not any(allowed(pull, m, r) for m, r in push_requests)
    assert all(allowed(push, m, r) for m, r in pull_requests + push_requests)
    assert not allowed(push, "DELETE", "manifest")


# -- robustness -------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children,
                                                                       max_size=4),
    max_leaves=20,
)
_vocabulary = st.sampled_from([
    "*", "ecr:*", "ecr:BatchGetImage", "ecr:Get*", "s3:*", "Allow", "Deny", OTHER, ALICE, REPO,
    "arn:aws:ecr:*:*:repository/*", "2012-10-17", "2008-10-17", "aws:SourceIp", "10.0.0.0/8",
    "lambda.amazonaws.com", "true", "${aws:username}", "StringLike", "Null", "", "ecr:",
])
_element_value = st.one_of(
    _vocabulary, _json, st.lists(_vocabulary, max_size=3),
    st.dictionaries(st.sampled_from(["AWS", "Service", "Federated", "StringEquals", "IpAddress",
                                     "ForAnyValue:StringLike", "NumericLessThan", "Bool",
                                     "DateLessThan", "Null", "BinaryEquals"]),
                    st.one_of(_vocabulary, st.dictionaries(_vocabulary, _json | _vocabulary,
                                                           max_size=2)),
                    max_size=3),
)
_statement = st.dictionaries(
    st.sampled_from(["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
                     "Resource", "NotResource", "Condition", "Other"]),
    _element_value, max_size=7,
)
_policy = st.fixed_dictionaries(
    {"Version": st.sampled_from(["2012-10-17", "2008-10-17", "2020-01-01"])},
    optional={"Statement": st.one_of(_statement, st.lists(_statement, max_size=3), _json),
              "Id": _json},
)


def _only_policy_invalid(text: str) -> None:
    for kind in ("repository", "registry", "identity"):
        try:
            document = parse_policy(text, kind=kind)
        except PolicyInvalid as error:
            assert error.kind == kind and error.message.startswith("Invalid parameter at 'PolicyText'")
        else:
            evaluate(request(ALICE, context={"aws:SourceIp": "10.0.0.1", "a:b": ["x", 1]}),
                     [document] if kind == "identity" else [], document if kind != "identity" else None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_policy_invalid(text):
    _only_policy_invalid(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
def test_arbitrary_json_only_raises_policy_invalid(value):
    _only_policy_invalid(json.dumps(value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_policy)
def test_policy_shaped_json_only_raises_policy_invalid(value):
    _only_policy_invalid(json.dumps(value))


_valid_condition = st.sampled_from([
    {"StringLike": {"aws:SourceArn": ["arn:aws:lambda:*", "x?"]}},
    {"ForAllValues:StringEqualsIfExists": {"aws:TagKeys": "a"}},
    {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    {"NotIpAddress": {"aws:SourceIp": "::/0"}},
    {"NumericLessThanEquals": {"a:n": 3}},
    {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}},
    {"Bool": {"aws:SecureTransport": True}},
    {"Null": {"aws:SourceVpce": "false"}},
    {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/x-*"}},
    {"StringEquals": {"aws:username": "${aws:username}"}},
])
_valid_statement = st.fixed_dictionaries(
    {"Effect": st.sampled_from(["Allow", "Deny"]),
     "Principal": st.sampled_from(["*", {"AWS": OTHER}, {"AWS": [ALICE, BOB]},
                                   {"Service": "lambda.amazonaws.com"}]),
     "Action": st.lists(st.sampled_from(sorted(KNOWN_ACTIONS) + ["ecr:*", "ecr:Batch*", "*"]),
                        min_size=1, max_size=3)},
    optional={"Sid": st.text(max_size=5),
              "Resource": st.sampled_from(["*", REPO, "arn:aws:ecr:*:*:repository/${aws:username}"]),
              "Condition": _valid_condition},
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_valid_statement, min_size=1, max_size=4), st.sampled_from([ALICE, BOB]),
       st.sampled_from(sorted(KNOWN_ACTIONS)))
def test_valid_policies_parse_and_evaluate(statements, principal, action):
    document = parse_policy(json.dumps({"Version": "2012-10-17", "Statement": statements}),
                            kind="repository")
    assert len(document.statements) == len(statements)
    decision = evaluate(request(principal, action, context={"aws:SourceIp": "10.1.1.1"}),
                        [PULL_IDENTITY], document)
    assert decision.allowed or decision.reason.startswith(f"User: {principal} is not authorized")
    # an explicit deny that matches everything always wins
    denied = evaluate(request(principal, action), [PULL_IDENTITY],
                      parse_policy(doc(*statements, stmt(Effect="Deny", Action="*")), kind="repository"))
    assert not denied.allowed
