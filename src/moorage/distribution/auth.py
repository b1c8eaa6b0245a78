"""``/v2/`` authentication as ECR does it: HTTP Basic with user ``AWS`` and a token from
GetAuthorizationToken as password (ecr-api.md §6.2)."""

from __future__ import annotations

import base64

from moorage.auth.principals import Principal
from moorage.auth.tokens import TokenClaims
from moorage.distribution.errors import OciError
from moorage.errors import AuthenticationFailed
from moorage.services import Services

VERIFIED_CREDENTIALS_LIMIT = 1024


def challenge_headers(services: Services, host: str | None) -> dict[str, str]:
    """The ``WWW-Authenticate`` Basic challenge naming this registry (``host``: the request's
    ``Host`` header, used when no registry host is configured)."""
    host = services.settings.registry_host or host or "localhost"
    return {"WWW-Authenticate": f'Basic realm="https://{host}/",service="ecr.amazonaws.com"'}


class Authenticator:
    """Checks the ``Authorization`` header of every ``/v2/`` request.

    A client sends the same header on every request, so the claims of a verified header are
    kept (at most :data:`VERIFIED_CREDENTIALS_LIMIT`, the oldest dropped first): a repeated
    header costs a dictionary look-up, an expiry check and the access-key check. The expiry and
    the access key are checked on every request, so an expired token or a deleted key stops
    working as it does without the cache (keys: within the key store's few seconds of caching).
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self._verified: dict[str, TokenClaims] = {}

    def authenticate(self, authorization: str | None, host: str | None) -> Principal:
        """The principal behind the request's Basic credentials.

        Args:
            authorization: the ``Authorization`` header, if any.
            host: the ``Host`` header, for the challenge.

        Raises:
            OciError: ``UNAUTHORIZED`` (401, with the Basic challenge) when credentials are
                missing, not ``AWS:<token>``, forged, expired, for another registry, or of a
                deleted key.
        """
        services = self.services
        try:
            claims = self._verified.get(authorization) if authorization else None
            if claims is None:
                claims = self._verify(authorization)
            services.tokens.check_expiry(claims, services.context.clock.now())
            principal = services.keys.principal(claims.access_key_id)
            if principal is None:
                raise AuthenticationFailed("the access key behind this token was deleted")
            return principal
        except AuthenticationFailed as error:
            if authorization:
                self._verified.pop(authorization, None)
            raise OciError(
                "UNAUTHORIZED", error.message, 401, headers=challenge_headers(services, host)
            ) from None

    def _verify(self, header: str | None) -> TokenClaims:
        """Parse and verify ``header`` (MAC and registry; not the expiry) and remember it."""
        if not header:
            raise AuthenticationFailed("authentication required")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise AuthenticationFailed("use HTTP Basic authentication with user AWS")
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except ValueError:  # binascii.Error, UnicodeDecodeError, or non-ASCII base64 text
            raise AuthenticationFailed("malformed Basic credentials") from None
        if user != "AWS":
            raise AuthenticationFailed("the user name must be AWS")
        services = self.services
        claims = services.tokens.verify(password, services.context.clock.now())
        if claims.account_id != services.context.registry_id or claims.region != services.context.region:
            raise AuthenticationFailed("the authorization token is for another registry")
        if len(self._verified) >= VERIFIED_CREDENTIALS_LIMIT:
            del self._verified[next(iter(self._verified))]
        self._verified[header] = claims
        return claims
