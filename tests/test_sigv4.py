"""SigV4 verification against requests signed by botocore itself (and AWS's published vectors)."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import botocore.auth
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest, AWSResponse
from botocore.credentials import Credentials

from moorage.auth.sigv4 import SignedRequest, verify_sigv4
from moorage.ecr.exceptions import EcrError

AKID = "AKIAMOORAGETEST00001"
SECRET = "moorage/secret+KEY/0123456789abcdefghijklmn"
REGION = "us-east-1"
SIGNED_AT = dt.datetime(2024, 5, 1, 12, 0, 0)  # naive UTC, as botocore's clock returns
NOW = float(calendar.timegm(SIGNED_AT.timetuple()))
TARGET = "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories"
ECR_HEADERS = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET}
MISMATCH = "The request signature we calculated does not match the signature you provided."


@pytest.fixture(autouse=True)
def frozen_signing_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore stamps X-Amz-Date from this clock; freezing it makes NOW the signing time."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: SIGNED_AT)


def lookup(access_key: str) -> str | None:
    return {AKID: SECRET}.get(access_key)


def as_received(prepared: AWSPreparedRequest, host: str | None = None) -> SignedRequest:
    """What the HTTP edge sees: the prepared request plus the Host header the HTTP client adds."""
    url = urlsplit(prepared.url)
    headers = [
        (k, v.decode() if isinstance(v, bytes) else v) for k, v in prepared.headers.items()
    ]
    headers.append(("Host", host or url.netloc))
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    return SignedRequest(prepared.method, url.path, url.query, headers, body)


def sign(
    *,
    method: str = "POST",
    url: str = "http://localhost:5000/",
    headers: dict[str, str] | None = None,
    body: bytes = b"{}",
    params: dict[str, str] | None = None,
    access_key: str = AKID,
    secret: str = SECRET,
    region: str = REGION,
    service: str = "ecr",
) -> SignedRequest:
    """Sign like boto3 does (SigV4Auth.add_auth on an AWSRequest), then prepare for the wire."""
    request = AWSRequest(
        method=method,
        url=url,
        headers=dict(ECR_HEADERS if headers is None else headers),
        data=body,
        params=params,
    )
    SigV4Auth(Credentials(access_key, secret), service, region).add_auth(request)
    return as_received(request.prepare())


def verify(request: SignedRequest, **kwargs: object) -> str:
    options: dict[str, object] = {"lookup_secret": lookup, "region": REGION, "now": NOW}
    options.update(kwargs)
    return verify_sigv4(request, **options)  # type: ignore[arg-type]


def rejects(request: SignedRequest, code: str, message: str = "", **kwargs: object) -> EcrError:
    with pytest.raises(EcrError) as caught:
        verify(request, **kwargs)
    assert caught.value.code == code, caught.value
    assert message in caught.value.message
    return caught.value


def replace_header(request: SignedRequest, name: str, value: str | None) -> SignedRequest:
    headers = [(k, v) for k, v in request.headers if k.lower() != name.lower()]
    if value is not None:
        headers.append((name, value))
    return SignedRequest(request.method, request.path, request.query_string, headers, request.body)


def header(request: SignedRequest, name: str) -> str:
    return next(v for k, v in request.headers if k.lower() == name.lower())


def with_body(request: SignedRequest, body: bytes) -> SignedRequest:
    return SignedRequest(request.method, request.path, request.query_string, request.headers, body)


# --- accepted -----------------------------------------------------------------------------------


def test_botocore_signed_ecr_call_verifies() -> None:
    request = sign(body=b'{"repositoryNames": ["app"]}')
    assert request.path == "/" and header(request, "Host") == "localhost:5000"
    assert verify(request) == AKID


def test_header_names_in_any_case_and_unsigned_extras_are_fine() -> None:
    request = sign()
    lowered = [(k.lower(), v) for k, v in request.headers]
    lowered += [("user-agent", "aws-cli/2"), ("x-amzn-trace-id", "Root=1"), ("accept", "*/*")]
    assert verify(SignedRequest("POST", "/", "", lowered, request.body)) == AKID


def test_empty_body_verifies() -> None:
    assert verify(sign(body=b"")) == AKID


@pytest.mark.parametrize("skew", [-15 * 60, -60, 0, 60, 15 * 60])
def test_clock_skew_up_to_15_minutes_is_accepted(skew: int) -> None:
    assert verify(sign(), now=NOW + skew) == AKID


def test_path_and_query_string_as_botocore_sends_them() -> None:
    request = sign(
        method="GET",
        url="http://localhost:5000/v2/my%20team/./app/tags/list?n=10&last=a%2Fb&empty=&flag",
        headers={},
        body=b"",
    )
    assert request.path == "/v2/my%20team/./app/tags/list"
    assert request.query_string == "n=10&last=a%2Fb&empty=&flag"
    assert verify(request) == AKID
    tampered = SignedRequest("GET", "/v2/my%20team/app/other", request.query_string,
                             request.headers, b"")
    rejects(tampered, "InvalidSignatureException", MISMATCH)
    tampered = SignedRequest("GET", request.path, "n=11&last=a%2Fb&empty=&flag",
                             request.headers, b"")
    rejects(tampered, "InvalidSignatureException", MISMATCH)


def test_query_params_encoded_by_botocore() -> None:
    request = sign(
        url="http://localhost:5000/a/b",
        params={"b": "two words", "a": "x/y+z~", "Z": "ünï"},
    )
    # botocore signs a space as %20 but sends it as '+': the verifier reads '+' as a space.
    assert "b=two+words" in request.query_string and "%C3%BC" in request.query_string
    assert verify(request) == AKID
    spelled = SignedRequest(request.method, request.path,
                            request.query_string.replace("+", "%20"), request.headers, request.body)
    assert verify(spelled) == AKID


def test_date_header_instead_of_x_amz_date() -> None:
    request = sign(headers={**ECR_HEADERS, "Date": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert not any(k.lower() == "x-amz-date" for k, _ in request.headers)
    assert verify(request) == AKID
    rejects(request, "InvalidSignatureException", "Signature expired", now=NOW + 16 * 60)


@pytest.mark.parametrize("date, code, message", [
    ("Mon, 01 Jan 0999 00:00:00 GMT", "InvalidSignatureException", "09990101T000000Z"),
    ("Fri, 31 Dec 9999 23:30:00 -0100", "IncompleteSignatureException", "not an RFC 1123 date"),
])
def test_date_header_far_from_now(date: str, code: str, message: str) -> None:
    """A ``Date`` header with a three-digit year or past year 9999 in UTC is refused cleanly."""
    request = sign(headers={**ECR_HEADERS, "Date": "Thu, 01 Jan 1970 00:00:00 GMT"})
    headers = [(k, date if k.lower() == "date" else v) for k, v in request.headers]
    tampered = SignedRequest(request.method, request.path, request.query_string, headers, request.body)
    rejects(tampered, code, message)


def test_signed_content_sha256_header() -> None:
    body = b'{"repositoryName": "app"}'
    request = sign(
        headers={**ECR_HEADERS, "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()},
        body=body,
    )
    assert verify(request) == AKID
    rejects(with_body(request, b'{"repositoryName": "evil"}'), "InvalidSignatureException",
            "x-amz-content-sha256")


def test_unsigned_payload_is_accepted_whatever_the_body() -> None:
    request = sign(headers={**ECR_HEADERS, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert verify(with_body(request, b'{"anything": 1}')) == AKID


def test_unsigned_content_sha256_header_cannot_unsign_the_body() -> None:
    request = sign(body=b'{"repositoryName": "app"}')
    forged = replace_header(with_body(request, b"{}"), "X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")
    rejects(forged, "InvalidSignatureException", MISMATCH)


def test_repeated_signed_header_values_are_joined() -> None:
    raw = AWSRequest("POST", "http://localhost:5000/", ECR_HEADERS, b"{}")
    raw.headers["X-Custom"] = " a  1 "  # HTTPHeaders keeps repeats and signs both...
    raw.headers["X-Custom"] = "b"
    SigV4Auth(Credentials(AKID, SECRET), "ecr", REGION).add_auth(raw)
    request = replace_header(as_received(raw.prepare()), "X-Custom", None)
    request.headers.extend([("X-Custom", " a  1 "), ("x-custom", "b")])  # ...sent as two lines
    assert verify(request) == AKID
    # One comma-joined line is the same header in HTTP and in the canonical request.
    assert verify(replace_header(request, "X-Custom", "a 1,b")) == AKID
    swapped = replace_header(request, "X-Custom", None)
    swapped.headers.extend([("x-custom", "b"), ("X-CUSTOM", "a 1")])
    rejects(swapped, "InvalidSignatureException", MISMATCH)


def test_header_signed_by_another_sdk_despite_botocore_blacklist() -> None:
    class SignsEverything(SigV4Auth):
        def headers_to_sign(self, request):  # type: ignore[no-untyped-def]
            headers = super().headers_to_sign(request)
            headers["user-agent"] = request.headers["User-Agent"]
            return headers

    raw = AWSRequest("POST", "http://localhost:5000/", {**ECR_HEADERS, "User-Agent": "go/1"}, b"{}")
    SignsEverything(Credentials(AKID, SECRET), "ecr", REGION).add_auth(raw)
    request = as_received(raw.prepare())
    assert "user-agent" in header(request, "Authorization")
    assert verify(request) == AKID
    rejects(replace_header(request, "User-Agent", "go/2"), "InvalidSignatureException", MISMATCH)


# Published aws-sig-v4-test-suite vectors (service "service", 20150830T123600Z).
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("method", "query", "signature"),
    [
        ("GET", "", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("GET", "Param2=value2&Param1=value1",
         "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        ("POST", "", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ],
    ids=["get-vanilla", "get-vanilla-query-order-key-case", "post-vanilla"],
)
def test_aws_sigv4_test_suite_vectors(method: str, query: str, signature: str) -> None:
    request = SignedRequest(method, "/", query, [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                          f"aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}"),
    ], b"")
    assert verify_sigv4(
        request,
        lookup_secret={"AKIDEXAMPLE": EXAMPLE_SECRET}.get,
        region="us-east-1",
        service="service",
        now=1_440_938_160.0,
    ) == "AKIDEXAMPLE"


# --- a real boto3/botocore client ---------------------------------------------------------------


class _RawBody:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._data


def test_real_ecr_client_request_verifies() -> None:
    captured: list[AWSPreparedRequest] = []

    def intercept(request: AWSPreparedRequest, **_: object) -> AWSResponse:
        captured.append(request)
        body = json.dumps({"repositories": []}).encode()
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"},
                           _RawBody(body))

    session = botocore.session.get_session()
    client = session.create_client(
        "ecr",
        region_name=REGION,
        endpoint_url="http://localhost:1",
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
    )
    client.meta.events.register("before-send.ecr.*", intercept)
    assert client.describe_repositories(repositoryNames=["app"])["repositories"] == []

    (prepared,) = captured
    request = as_received(prepared)
    assert request.method == "POST" and request.path == "/"
    assert header(request, "X-Amz-Target") == TARGET
    assert re.match(r"AWS4-HMAC-SHA256 Credential=" + AKID, header(request, "Authorization"))
    assert verify(request) == AKID
    rejects(with_body(request, b'{"repositoryNames": ["other"]}'), "InvalidSignatureException",
            MISMATCH)


# --- rejected -----------------------------------------------------------------------------------


def test_no_credentials_at_all() -> None:
    request = replace_header(sign(), "Authorization", None)
    error = rejects(request, "MissingAuthenticationTokenException", "Missing Authentication Token")
    assert error.status == 403


def test_presigned_query_requests_are_not_supported() -> None:
    request = replace_header(sign(), "Authorization", None)
    presigned = SignedRequest("POST", "/", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab",
                              request.headers, request.body)
    rejects(presigned, "IncompleteSignatureException", "not supported")
    both = SignedRequest("POST", "/", "X-Amz-Credential=x", sign().headers, request.body)
    rejects(both, "IncompleteSignatureException", "Only one auth mechanism")


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("Bearer abc", "Unsupported AWS 'algorithm': 'Bearer'"),
        ("AWS4-HMAC-SHA512 Credential={cred}, SignedHeaders={sh}, Signature={sig}",
         "Unsupported AWS 'algorithm'"),
        ("AWS4-HMAC-SHA256 SignedHeaders={sh}, Signature={sig}",
         "Authorization header requires 'Credential' parameter."),
        ("AWS4-HMAC-SHA256 Credential={cred}, Signature={sig}",
         "Authorization header requires 'SignedHeaders' parameter."),
        ("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders={sh}",
         "Authorization header requires 'Signature' parameter."),
        ("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders={sh}, Signature",
         "missing equal-sign"),
        ("AWS4-HMAC-SHA256 Credential={cred}, Credential={cred}, SignedHeaders={sh}, "
         "Signature={sig}", "more than once"),
        ("AWS4-HMAC-SHA256 Credential=" + AKID + "/20240501/us-east-1/ecr, SignedHeaders={sh}, "
         "Signature={sig}", "Credential must have exactly 5 slash-delimited elements"),
        ("AWS4-HMAC-SHA256 Credential=" + AKID + "//us-east-1/ecr/aws4_request, "
         "SignedHeaders={sh}, Signature={sig}", "exactly 5 slash-delimited elements"),
        ("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=content-type;x-amz-date, "
         "Signature={sig}", "'Host' or ':authority' must be a 'SignedHeader'"),
    ],
)
def test_malformed_authorization_header(authorization: str, message: str) -> None:
    request = sign()
    match = re.match(r"AWS4-HMAC-SHA256 Credential=(\S+), SignedHeaders=(\S+), Signature=(\w+)",
                     header(request, "Authorization"))
    assert match
    cred, sh, sig = match.groups()
    bad = replace_header(request, "Authorization",
                         authorization.format(cred=cred, sh=sh, sig=sig))
    rejects(bad, "IncompleteSignatureException", message)


def test_missing_date() -> None:
    rejects(replace_header(sign(), "X-Amz-Date", None), "IncompleteSignatureException",
            "requires existence of either a 'X-Amz-Date' or a 'Date' header")


def test_malformed_date() -> None:
    rejects(replace_header(sign(), "X-Amz-Date", "2024-05-01T12:00:00Z"),
            "IncompleteSignatureException", "ISO-8601 'basic format'")
    rejects(replace_header(sign(), "X-Amz-Date", "20241301T120000Z"),
            "IncompleteSignatureException", "ISO-8601 'basic format'")


def test_unknown_access_key() -> None:
    rejects(sign(access_key="AKIAUNKNOWN000000000"), "UnrecognizedClientException",
            "The security token included in the request is invalid.")


def test_wrong_region() -> None:
    rejects(sign(region="eu-west-1"), "InvalidSignatureException",
            "Credential should be scoped to a valid region, not 'eu-west-1'.")


def test_wrong_service() -> None:
    rejects(sign(service="s3"), "InvalidSignatureException",
            "Credential should be scoped to correct service: 'ecr'.")


def test_scope_date_must_match_x_amz_date() -> None:
    request = sign()
    shifted = replace_header(request, "Authorization",
                             header(request, "Authorization").replace("/20240501/", "/20240502/"))
    rejects(shifted, "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            "from HTTP: '20240502' != '20240501', from '20240501T120000Z'.")


def test_expired_by_16_minutes() -> None:
    rejects(sign(), "InvalidSignatureException",
            "Signature expired: 20240501T120000Z is now earlier than 20240501T120100Z "
            "(20240501T121600Z - 15 min.)", now=NOW + 16 * 60)


def test_not_yet_current_by_16_minutes() -> None:
    rejects(sign(), "InvalidSignatureException",
            "Signature not yet current: 20240501T120000Z is still later than 20240501T115900Z "
            "(20240501T114400Z + 15 min.)", now=NOW - 16 * 60)


def test_tampered_body() -> None:
    rejects(with_body(sign(), b'{"repositoryNames": ["x"]}'), "InvalidSignatureException", MISMATCH)


def test_tampered_target_header() -> None:
    forged = replace_header(sign(), "X-Amz-Target",
                            "AmazonEC2ContainerRegistry_V20150921.DeleteRepository")
    rejects(forged, "InvalidSignatureException", MISMATCH)


def test_tampered_x_amz_date_within_window() -> None:
    rejects(replace_header(sign(), "X-Amz-Date", "20240501T120500Z"), "InvalidSignatureException",
            MISMATCH)


def test_tampered_signature() -> None:
    request = sign()
    auth = header(request, "Authorization")
    flipped = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    rejects(replace_header(request, "Authorization", flipped), "InvalidSignatureException",
            MISMATCH)
    upper = replace_header(request, "Authorization", auth[:-64] + auth[-64:].upper())
    rejects(upper, "InvalidSignatureException", MISMATCH)
    junk = replace_header(request, "Authorization", auth[:-64] + "ü" * 64)
    rejects(junk, "InvalidSignatureException", MISMATCH)


def test_wrong_secret() -> None:
    rejects(sign(secret="not-the-secret"), "InvalidSignatureException", MISMATCH)


def test_signed_header_missing_from_request() -> None:
    rejects(replace_header(sign(), "Content-Type", None), "InvalidSignatureException", MISMATCH)


def test_tampered_signed_headers_list() -> None:
    request = sign()
    auth = header(request, "Authorization")
    fewer = auth.replace("SignedHeaders=content-type;host;", "SignedHeaders=host;")
    assert fewer != auth
    rejects(replace_header(request, "Authorization", fewer), "InvalidSignatureException", MISMATCH)
    unsorted = auth.replace("SignedHeaders=content-type;host;", "SignedHeaders=host;content-type;")
    rejects(replace_header(request, "Authorization", unsorted), "InvalidSignatureException",
            MISMATCH)


def test_tampered_host() -> None:
    rejects(replace_header(sign(), "Host", "evil:5000"), "InvalidSignatureException", MISMATCH)


# --- the direct canonicalisation of POST / equals botocore's -----------------------------------


def _random_signed_values(rng) -> tuple[list[tuple[str, list[str]]], bytes]:  # type: ignore[no-untyped-def]
    """Signed headers as the verifier collects them: lowercase names, values as received (odd
    whitespace, repeats, Latin-1 text), sometimes a signed payload hash; and a body."""
    pieces = ["a", "B", "1", " ", "  ", "\t", "x y", "é", "\xa0", "\x85", "ü=,;", "", "/+"]

    def value() -> str:
        return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))

    body = rng.choice([b"", b"{}", '{"repositoryName": "app/é"}'.encode(), bytes(range(256))])
    names = ["host", "x-amz-date", "content-type", "x-amz-target", "x-custom", "user-agent",
             "x-amz-security-token", "accept"]
    chosen = sorted(set(rng.sample(names, rng.randint(1, len(names)))) | {"host"})
    if rng.random() < 0.4:
        chosen = sorted(chosen + ["x-amz-content-sha256"])
    signed = []
    for name in chosen:
        if name == "x-amz-content-sha256":
            signed.append((name, [rng.choice([hashlib.sha256(body).hexdigest(), "UNSIGNED-PAYLOAD",
                                              " UNSIGNED-PAYLOAD "])]))
        else:
            signed.append((name, [value() for _ in range(rng.randint(1, 3))]))
    return signed, body


@pytest.mark.parametrize("seed", range(40))
def test_direct_canonical_request_equals_botocores(seed: int) -> None:
    import random

    from moorage.auth import sigv4

    rng = random.Random(seed)
    for _ in range(25):
        signed, body = _random_signed_values(rng)
        method = rng.choice(["POST", "post", "GET"])
        request = SignedRequest(method, "/", "", [(n, v) for n, vs in signed for v in vs], body)
        expected = sigv4._botocore_canonical_request(
            request, "/", [], signed, "20240501T120000Z", "ecr", REGION)
        assert sigv4._canonical_request(method, signed, body) == expected


def test_signature_equals_botocores_for_odd_header_values() -> None:
    raw = AWSRequest("POST", "http://localhost:5000/", {
        **ECR_HEADERS, "X-Custom": "  spaced\t out  value ", "X-Amz-Security-Token": "tok/en+=="},
        '{"repositoryName": "é"}'.encode())
    SigV4Auth(Credentials(AKID, SECRET), "ecr", REGION).add_auth(raw)
    request = as_received(raw.prepare())
    assert "x-custom" in header(request, "Authorization")
    assert verify(request) == AKID
    rejects(replace_header(request, "X-Custom", "spaced out values"), "InvalidSignatureException",
            MISMATCH)


def test_signing_key_is_derived_per_secret_date_region_and_service() -> None:
    from moorage.auth.sigv4 import signature_of

    base = {"secret": SECRET, "timestamp": "20240501T120000Z", "region": REGION, "service": "ecr"}
    reference = signature_of("canonical", **base)
    for change in ({"secret": SECRET + "x"}, {"timestamp": "20240502T120000Z"},
                   {"region": "eu-west-1"}, {"service": "s3"}):
        assert signature_of("canonical", **{**base, **change}) != reference
    assert signature_of("canonical", **base) == reference
    # The AWS documentation's example: kSigning and the signature of its GET vanilla request.
    canonical = "\n".join([
        "GET", "/", "", "host:example.amazonaws.com", "x-amz-date:20150830T123600Z", "",
        "host;x-amz-date", hashlib.sha256(b"").hexdigest()])
    assert signature_of(canonical, secret=EXAMPLE_SECRET, timestamp="20150830T123600Z",
                        region="us-east-1", service="service") == (
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")


@pytest.mark.parametrize("value", ["20240230T120000Z", "20241301T120000Z", "20240501T240000Z",
                                   "20240501T126000Z", "20240501T120060Z", "00000501T120000Z"])
def test_impossible_x_amz_date_is_malformed(value: str) -> None:
    request = replace_header(sign(), "X-Amz-Date", value)
    rejects(request, "IncompleteSignatureException", "ISO-8601 'basic format'")
