"""Signed, expiring URLs that serve one blob without further authentication
(GetDownloadUrlForLayer; ecr-api.md §3.13).

URL: ``<base>/_moorage/layers/<repository>/<digest>?expires=<epoch s>&signature=<hex>``, the
signature an HMAC-SHA256 of ``repository``, ``digest`` and ``expires`` under the registry's
token secret, so every replica sharing that secret serves it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote, urlencode

DOWNLOAD_URL_LIFETIME_SECONDS = 3600
_DECIMAL = re.compile(r"[0-9]{1,12}")
PATH_PREFIX = "/_moorage/layers/"


class DownloadUrls:
    """Sign and verify download URLs with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = hashlib.sha256(b"moorage-download-urls:" + secret).digest()

    def sign(self, base_url: str, repository_name: str, digest: str, now: float) -> str:
        """A URL for blob ``digest`` of ``repository_name`` valid for an hour from ``now``."""
        expires = int(now) + DOWNLOAD_URL_LIFETIME_SECONDS
        query = urlencode({"expires": expires, "signature": self._mac(repository_name, digest, expires)})
        return f"{base_url}{PATH_PREFIX}{quote(repository_name)}/{digest}?{query}"

    def verify(self, repository_name: str, digest: str, expires: str, signature: str, now: float) -> bool:
        """True when the signature is ours for these values and ``now`` is before ``expires``."""
        if not _DECIMAL.fullmatch(expires) or int(expires) <= now or not signature.isascii():
            return False
        expected = self._mac(repository_name, digest, int(expires))
        return hmac.compare_digest(expected, signature)

    def _mac(self, repository_name: str, digest: str, expires: int) -> str:
        message = f"{repository_name}\n{digest}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
