"""Verify AWS Signature Version 4 on ECR API requests (``POST /``, AWS JSON 1.1).

The signature is recomputed with botocore's own signer (``botocore.auth.SigV4Auth``) from the
stored secret, so moorage canonicalises requests exactly the way boto3 and the AWS CLI do. This
module only parses the ``Authorization`` header, checks the scope and the clock, and hands
botocore an ``AWSRequest`` that carries exactly what the client signed.

Sources: AWS "Signature Version 4 signing process" / "Create a canonical request" /
"Troubleshoot Signature Version 4 errors" (docs.aws.amazon.com/IAM/latest/UserGuide/
reference_sigv.html and create-signed-request.html), the aws-sig-v4-test-suite, and
ecr-api.md §1.3 (common errors) and §1.5 (scope rules).

Errors raised (all :class:`~moorage.ecr.exceptions.EcrError`, ``__type`` shown)::

    MissingAuthenticationTokenException (403)  no Authorization header, no presign parameters
    IncompleteSignatureException (400)         malformed Authorization header, unsupported
                                               algorithm, bad credential scope format, no
                                               X-Amz-Date/Date, unparsable date, 'host' not
                                               signed, presigned (query-string) request
    UnrecognizedClientException (400)          unknown access key id
    InvalidSignatureException (400)            wrong scope region/service/terminator/date,
                                               outside the 15-minute window, payload hash
                                               mismatch, signature mismatch

Presigned query-string requests (``X-Amz-Algorithm``/``X-Amz-Credential``/``X-Amz-Signature``
in the query) are **not supported**: no ECR client presigns API calls, so they are rejected with
``IncompleteSignatureException``. ``X-Amz-Security-Token`` is not validated (moorage issues no
session credentials); when present and signed it is just another signed header.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl

from botocore.auth import SIGV4_TIMESTAMP, UNSIGNED_PAYLOAD, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from moorage.ecr.exceptions import EcrError

__all__ = ["ALGORITHM", "MAX_CLOCK_SKEW_SECONDS", "SignedRequest", "signature_of", "verify_sigv4"]

ALGORITHM = "AWS4-HMAC-SHA256"
"""The only signing algorithm accepted."""

MAX_CLOCK_SKEW_SECONDS = 15 * 60
"""How far ``X-Amz-Date`` may be from the server clock, either way (AWS: 15 minutes)."""

_TERMINATOR = "aws4_request"
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_PRESIGN_PARAMS = frozenset({"x-amz-algorithm", "x-amz-credential", "x-amz-signature"})
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
# Only the path of this URL reaches the canonical request: the host comes from the signed
# ``host`` header, and an http URL makes botocore hash the body rather than skip it.
_URL_PREFIX = "http://moorage.invalid"


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request that SigV4 covers, as the HTTP edge received them.

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: the request path exactly as sent, still percent-encoded (``"/"`` for the ECR API);
            decode any non-ASCII bytes as UTF-8.
        query_string: the raw query string without ``?``, ``""`` if none.
        headers: every request header as received, ``(name, value)`` pairs; names in any case,
            names may repeat.
        body: the request body bytes.
    """

    method: str
    path: str
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes


class _Verifier(SigV4Auth):
    """botocore's SigV4 signer, signing exactly the headers placed on the request.

    Upstream ``headers_to_sign`` drops a blacklist (``user-agent``, ``expect``, ``connection``…)
    and invents ``host`` from the URL. That is right for a client choosing what to sign, but
    a verifier must reproduce the client's ``SignedHeaders`` list, which another SDK may have
    chosen differently. The request built by :func:`verify_sigv4` carries only the signed
    headers, with lowercase names, so they are used as they are. Everything else (canonical
    URI, query, header values, payload hash, scope, key derivation) is botocore's.
    """

    def headers_to_sign(self, request: Any) -> Any:
        return request.headers


def verify_sigv4(
    request: SignedRequest,
    *,
    lookup_secret: Callable[[str], str | None],
    region: str,
    service: str = "ecr",
    now: float | None = None,
) -> str:
    """Verify the AWS Signature Version 4 (``Authorization`` header) of ``request``.

    Args:
        request: the request as received.
        lookup_secret: access key id → secret access key, or ``None`` when the key is unknown.
            Called at most once, after all checks that need no secret have passed.
        region: the region the credential scope must name (the server's configured region).
        service: the signing name the scope must name; ``"ecr"`` for the ECR API.
        now: server time in epoch seconds; ``time.time()`` when ``None``.

    Returns:
        The access key id that signed the request.

    Raises:
        EcrError: ``MissingAuthenticationTokenException`` when the request carries no
            credentials; ``IncompleteSignatureException`` for a malformed ``Authorization``
            header (wrong algorithm, missing ``Credential``/``SignedHeaders``/``Signature``,
            credential not ``AKID/yyyymmdd/region/service/aws4_request``), a missing or
            unparsable ``X-Amz-Date``/``Date``, ``host`` not among the signed headers, or a
            presigned (query-string) request; ``UnrecognizedClientException`` when
            ``lookup_secret`` does not know the key; ``InvalidSignatureException`` when the
            scope names another region, service, terminator or date, ``X-Amz-Date`` is more
            than 15 minutes from ``now`` ("Signature expired" / "Signature not yet current"),
            ``X-Amz-Content-SHA256`` does not match the body, or the signature differs.
    """
    headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers.setdefault(name.lower(), []).append(value)

    query = (
        parse_qsl(request.query_string, keep_blank_values=True) if request.query_string else []
    )
    authorization = headers.get("authorization")
    presigned = any(key.lower() in _PRESIGN_PARAMS for key, _ in query)
    if not authorization or not "".join(authorization).strip():
        if presigned:
            raise _incomplete(
                "Presigned (query-string) SigV4 requests are not supported; "
                "sign with the Authorization header."
            )
        raise EcrError("MissingAuthenticationTokenException", "Missing Authentication Token")
    if len(authorization) > 1:
        raise _incomplete("Only one Authorization header is allowed.")
    if presigned:
        raise _incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter "
            "or the Authorization header should be specified."
        )

    credential, signed_headers, signature = _parse_authorization(authorization[0])
    timestamp = _request_timestamp(headers)

    scope = credential.split("/")
    if len(scope) != 5 or not all(scope):
        raise _incomplete(
            "Credential must have exactly 5 slash-delimited elements, "
            f"e.g. keyid/date/region/service/term, got '{credential}'"
        )
    access_key, scope_date, scope_region, scope_service, terminator = scope

    signed_names = signed_headers.split(";")
    if "host" not in signed_names:
        raise _incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )

    problems: list[str] = []
    if scope_region != region:
        problems.append(f"Credential should be scoped to a valid region, not '{scope_region}'.")
    if scope_service != service:
        problems.append(f"Credential should be scoped to correct service: '{service}'.")
    if terminator != _TERMINATOR:
        problems.append(
            f"Credential should be scoped with a valid terminator: '{_TERMINATOR}', "
            f"not '{terminator}'."
        )
    if scope_date != timestamp[:8]:
        problems.append(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{scope_date}' != '{timestamp[:8]}', from '{timestamp}'."
        )
    if problems:
        raise _invalid(" ".join(problems))

    _check_clock(timestamp, time.time() if now is None else now)

    secret = lookup_secret(access_key)
    if secret is None:
        raise EcrError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )

    content_sha256 = headers.get("x-amz-content-sha256")
    if content_sha256 is not None:
        claimed = ",".join(content_sha256).strip().lower()
        if claimed != UNSIGNED_PAYLOAD.lower() and claimed != _sha256_hex(request.body):
            raise _invalid(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            )

    path = request.path or "/"
    if not path.startswith("/") or "#" in path or "?" in path:
        raise _invalid(_SIGNATURE_MISMATCH)
    signed_values: list[tuple[str, list[str]]] = []
    for name in signed_names:
        values = headers.get(name)
        if not values:  # signed but not sent: the client cannot have signed this request
            raise _invalid(_SIGNATURE_MISMATCH)
        signed_values.append((name, values))
    # Names botocore cannot reproduce (upper case, unsorted, duplicates, empty) cannot verify.
    if ";".join(sorted({name.lower().strip() for name in signed_names})) != signed_headers:
        raise _invalid(_SIGNATURE_MISMATCH)
    if path == "/" and not query:
        # Every ECR API call (POST /, no query): the canonical request as botocore builds it.
        canonical_request = _canonical_request(request.method, signed_values, request.body)
    else:
        canonical_request = _botocore_canonical_request(request, path, query, signed_values,
                                                        timestamp, scope_service, scope_region)
    expected = signature_of(canonical_request, secret=secret, timestamp=timestamp,
                            region=scope_region, service=scope_service)
    if not _SIGNATURE.fullmatch(signature) or not hmac.compare_digest(
        expected.encode("ascii"), signature.encode("ascii")
    ):
        raise _invalid(_SIGNATURE_MISMATCH)
    return access_key


def _canonical_request(method: str, signed_values: list[tuple[str, list[str]]],
                       body: bytes) -> str:
    """The canonical request of a request to ``/`` without a query string, built exactly as
    botocore's ``SigV4Auth.canonical_request`` builds it for the same request (tests compare
    the two): signed headers sorted, each value's whitespace runs collapsed and repeated
    values joined with ``,``; the payload hash is the signed ``X-Amz-Content-SHA256`` value as
    sent, else the SHA-256 of the body."""
    values_of: dict[str, list[str]] = {}
    for name, values in signed_values:
        values_of.setdefault(name, []).extend(values)
    canonical_headers = "".join(
        f"{name}:{','.join(' '.join(value.split()) for value in values_of[name])}\n"
        for name in sorted(values_of)
    )
    if "x-amz-content-sha256" in values_of:
        payload = values_of["x-amz-content-sha256"][0]
    else:
        payload = _sha256_hex(body)
    return (f"{method.upper()}\n/\n\n{canonical_headers}\n"
            f"{';'.join(sorted(values_of))}\n{payload}")


def _botocore_canonical_request(
    request: SignedRequest, path: str, query: list[tuple[str, str]],
    signed_values: list[tuple[str, list[str]]], timestamp: str, service: str, region: str,
) -> str:
    """The canonical request computed by botocore's signer itself (any path and query)."""
    aws_request = AWSRequest(
        method=request.method, url=_URL_PREFIX + path, data=request.body, params=query
    )
    for name, values in signed_values:
        for value in values:  # botocore trims each value and joins repeats with ','
            aws_request.headers[name] = value
    aws_request.context["timestamp"] = timestamp
    signer = _Verifier(Credentials("", ""), service, region)
    return str(signer.canonical_request(aws_request))


def signature_of(canonical_request: str, *, secret: str, timestamp: str, region: str,
                 service: str) -> str:
    """The SigV4 signature (64 hex digits) of ``canonical_request``.

    The string to sign and the key derivation are botocore's (``SigV4Auth.string_to_sign`` and
    ``signature``); the derived signing key is cached per (secret, date, region, service).

    Args:
        canonical_request: the canonical request text.
        secret: the secret access key.
        timestamp: the signing time, ``yyyymmddThhmmssZ``.
        region: the scope's region; service: the scope's signing name.
    """
    date = timestamp[:8]
    string_to_sign = "\n".join((
        ALGORITHM, timestamp, f"{date}/{region}/{service}/{_TERMINATOR}",
        hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
    ))
    key = _signing_key(secret, date, region, service)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """``kSigning`` of the SigV4 key derivation (changes once a day per key)."""
    key = hmac.new(f"AWS4{secret}".encode("utf-8"), date.encode("utf-8"), hashlib.sha256).digest()
    for part in (region, service, _TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _parse_authorization(value: str) -> tuple[str, str, str]:
    """``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`` → the three values."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{algorithm}'.")
    components: dict[str, str] = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        key, equals, component = part.partition("=")
        if not equals:
            raise _incomplete(
                f"'{part}' not a valid key=value pair (missing equal-sign) in Authorization header."
            )
        if key in components:
            raise _incomplete(f"Authorization component '{key}' is given more than once.")
        components[key] = component.strip()
    missing = [
        f"Authorization header requires '{key}' parameter."
        for key in ("Credential", "Signature", "SignedHeaders")
        if not components.get(key)
    ]
    if missing:
        raise _incomplete(" ".join(missing))
    return components["Credential"], components["SignedHeaders"], components["Signature"]


def _request_timestamp(headers: dict[str, list[str]]) -> str:
    """The signing time as ``yyyymmddThhmmssZ``, from ``X-Amz-Date`` or else ``Date``."""
    amz_date = headers.get("x-amz-date")
    if amz_date:
        value = ",".join(amz_date).strip()
        if _AMZ_DATE.fullmatch(value):
            try:
                _parse_timestamp(value)
                return value
            except ValueError:
                pass
        raise _incomplete(
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. "
            "See http://en.wikipedia.org/wiki/ISO_8601"
        )
    date = headers.get("date")
    if date:
        value = ",".join(date).strip()
        try:
            parsed = parsedate_to_datetime(value)
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(_dt.timezone.utc)
        except (TypeError, ValueError, OverflowError):  # unparsable, or past year 9999 in UTC
            raise _incomplete(f"Date header is not an RFC 1123 date. Got '{value}'.") from None
        # Four-digit years always (strftime writes year 999 as "999"): _AMZ_DATE's shape.
        return (f"{parsed.year:04d}{parsed.month:02d}{parsed.day:02d}"
                f"T{parsed.hour:02d}{parsed.minute:02d}{parsed.second:02d}Z")
    raise _incomplete(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def _check_clock(timestamp: str, now: float) -> None:
    """Reject a signing time more than :data:`MAX_CLOCK_SKEW_SECONDS` away from ``now``."""
    signed_at = calendar.timegm(_parse_timestamp(timestamp).timetuple())
    if signed_at < now - MAX_CLOCK_SKEW_SECONDS:
        raise _invalid(
            f"Signature expired: {timestamp} is now earlier than "
            f"{_format(now - MAX_CLOCK_SKEW_SECONDS)} ({_format(now)} - 15 min.)"
        )
    if signed_at > now + MAX_CLOCK_SKEW_SECONDS:
        raise _invalid(
            f"Signature not yet current: {timestamp} is still later than "
            f"{_format(now + MAX_CLOCK_SKEW_SECONDS)} ({_format(now)} + 15 min.)"
        )


def _parse_timestamp(timestamp: str) -> _dt.datetime:
    """``yyyymmddThhmmssZ`` (already matched by ``_AMZ_DATE``) as a naive UTC datetime; the
    same values as ``strptime(timestamp, SIGV4_TIMESTAMP)`` accepts.

    Raises:
        ValueError: not a real date and time (month 13, February 30, second 60...).
    """
    return _dt.datetime(int(timestamp[0:4]), int(timestamp[4:6]), int(timestamp[6:8]),
                        int(timestamp[9:11]), int(timestamp[11:13]), int(timestamp[13:15]))


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _format(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime(SIGV4_TIMESTAMP)


def _incomplete(message: str) -> EcrError:
    return EcrError("IncompleteSignatureException", message)


def _invalid(message: str) -> EcrError:
    return EcrError("InvalidSignatureException", message)
