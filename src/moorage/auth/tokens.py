"""Registry login tokens (GetAuthorizationToken), stateless and verifiable by every replica.

A token is ``<payload>.<mac>``: base64url of compact JSON claims
``{"v":1,"key":<access key id>,"user":<user name>,"acct":<account>,"region":<region>,
"iat":<epoch s>,"exp":<epoch s>}`` and base64url of its HMAC-SHA256 under the shared token
secret (``MOORAGE_TOKEN_SECRET`` or ``<data-dir>/token-secret``). Clients send it as the
password of HTTP Basic auth with user ``AWS`` (ecr-api.md §6).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from moorage.errors import AuthenticationFailed

TOKEN_LIFETIME_SECONDS = 12 * 3600
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: who, for which registry, until when (epoch seconds)."""

    access_key_id: str
    user_name: str
    account_id: str
    region: str
    issued_at: float
    expires_at: float


def load_or_create_secret(data_dir: Path, configured: str | None) -> bytes:
    """The token-signing key: ``configured`` if set, else ``<data_dir>/token-secret``
    (created with 32 random bytes, mode 0600, on first use)."""
    if configured:
        return configured.encode()
    path = data_dir / "token-secret"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)
    return value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues and verifies tokens with one secret; verified tokens are cached by value."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._verified: dict[str, TokenClaims] = {}

    def issue(self, access_key_id: str, user_name: str, account_id: str, region: str, now: float) -> tuple[str, float]:
        """A new token for the principal.

        Returns:
            (token, expires_at in epoch seconds: ``now`` + 12 hours).
        """
        expires_at = now + TOKEN_LIFETIME_SECONDS
        claims = {
            "v": 1, "key": access_key_id, "user": user_name, "acct": account_id,
            "region": region, "iat": int(now), "exp": int(expires_at),
            "nonce": secrets.token_hex(4),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return payload + "." + _b64(self._mac(payload)), float(int(expires_at))

    def verify(self, token: str, now: float) -> TokenClaims:
        """Check the token's MAC and expiry.

        Raises:
            AuthenticationFailed: malformed, forged or expired (OCI ``UNAUTHORIZED``, 401).
        """
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            if len(self._verified) >= _CACHE_LIMIT:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = claims
        self.check_expiry(claims, now)
        return claims

    @staticmethod
    def check_expiry(claims: TokenClaims, now: float) -> None:
        """Refuse claims that have expired at ``now`` (epoch seconds).

        Raises:
            AuthenticationFailed: expired (OCI ``UNAUTHORIZED``, 401).
        """
        if now >= claims.expires_at:
            raise AuthenticationFailed(
                "Your authorization token has expired. Reauthenticate and try again."
            )

    def _decode(self, token: str) -> TokenClaims:
        payload, _, mac = token.partition(".")
        try:
            valid = hmac.compare_digest(_unb64(mac), self._mac(payload))
        except (ValueError, TypeError):
            valid = False
        if not payload or not valid:
            raise AuthenticationFailed("Your authorization token is invalid.")
        try:
            raw = json.loads(_unb64(payload))
            return TokenClaims(
                str(raw["key"]), str(raw["user"]), str(raw["acct"]), str(raw["region"]),
                float(raw["iat"]), float(raw["exp"]),
            )
        except (ValueError, KeyError, TypeError):
            raise AuthenticationFailed("Your authorization token is invalid.") from None

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
