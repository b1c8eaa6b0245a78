"""``/v2/`` authentication as ECR does it: HTTP Basic with user ``AWS`` and a token from
GetAuthorizationToken as password (ecr-api.md §6.2)."""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request

from moorage.auth.principals import Principal
from moorage.distribution.errors import OciError
from moorage.errors import AuthenticationFailed
from moorage.services import Services


def challenge_headers(services: Services, request: Request) -> dict[str, str]:
    """The ``WWW-Authenticate`` Basic challenge naming this registry."""
    host = services.settings.registry_host or request.headers.get("host", "localhost")
    return {"WWW-Authenticate": f'Basic realm="https://{host}/",service="ecr.amazonaws.com"'}


def authenticate(services: Services, request: Request) -> Principal:
    """The principal behind the request's Basic credentials.

    Raises:
        OciError: ``UNAUTHORIZED`` (401, with the Basic challenge) when credentials are missing,
            not ``AWS:<token>``, forged, expired, for another registry, or of a deleted key.
    """
    header = request.headers.get("authorization")
    try:
        if not header:
            raise AuthenticationFailed("authentication required")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise AuthenticationFailed("use HTTP Basic authentication with user AWS")
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationFailed("malformed Basic credentials") from None
        if user != "AWS":
            raise AuthenticationFailed("the user name must be AWS")
        claims = services.tokens.verify(password, services.context.clock.now())
        if claims.account_id != services.context.registry_id or claims.region != services.context.region:
            raise AuthenticationFailed("the authorization token is for another registry")
        principal = services.keys.principal(claims.access_key_id)
        if principal is None:
            raise AuthenticationFailed("the access key behind this token was deleted")
        return principal
    except AuthenticationFailed as error:
        raise OciError(
            "UNAUTHORIZED", error.message, 401, headers=challenge_headers(services, request)
        ) from None
