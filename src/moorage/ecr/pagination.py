"""Opaque, tamper-evident ``nextToken`` values (ecr-api.md §1.6).

A token carries the position to continue after (the last key returned, so pages are stable
under concurrent inserts) and what it is for (operation + scope such as a repository name). It
is ``base64url(json).base64url(hmac)`` under the registry's token secret; a forged, altered or
foreign token is ``InvalidParameterException``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from moorage.ecr.exceptions import invalid_parameter


class PaginationTokens:
    """Encode and decode ``nextToken`` values with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = hashlib.sha256(b"moorage-pagination:" + secret).digest()

    def encode(self, purpose: str, position: Any) -> str:
        """A token that resumes ``purpose`` (e.g. ``DescribeRepositories``) after ``position``."""
        payload = base64.urlsafe_b64encode(
            json.dumps({"p": purpose, "after": position}, separators=(",", ":")).encode()
        ).decode().rstrip("=")
        return payload + "." + self._mac(payload)

    def decode(self, purpose: str, token: str) -> Any:
        """The position encoded in ``token``.

        Raises:
            EcrError: ``InvalidParameterException`` for a token that was not issued by this
                registry for ``purpose``.
        """
        payload, _, mac = token.partition(".")
        if not payload or not token.isascii() or not hmac.compare_digest(mac, self._mac(payload)):
            raise invalid_parameter("Invalid parameter at 'nextToken': the token is invalid")
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            raise invalid_parameter("Invalid parameter at 'nextToken': the token is invalid") from None
        if not isinstance(data, dict) or data.get("p") != purpose:
            raise invalid_parameter(
                "Invalid parameter at 'nextToken': the token belongs to another request"
            )
        return data.get("after")

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()
