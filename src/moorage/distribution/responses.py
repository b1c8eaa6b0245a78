"""The response of a ``/v2/`` request, sent straight to the ASGI server.

A :class:`Reply` is a status, a list of raw header pairs and a body: what the ASGI
``http.response.start`` and ``http.response.body`` messages carry, built once, with nothing to
convert on the way out (every ``/v2/`` answer but the blob downloads and the upload handlers,
which use Starlette's responses).
"""

from __future__ import annotations

from typing import Any

API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")


class Reply:
    """A complete ``/v2/`` response: ``Content-Length`` and the API version header included.

    Args:
        status: the HTTP status.
        headers: ``(name, value)`` pairs, names in lower case.
        body: the body; a ``HEAD`` request is answered without it.
        media_type: the ``Content-Type``, if any.
        content_length: the ``Content-Length`` when it is not ``len(body)`` (a ``HEAD``
            answer announces the size of the body a ``GET`` would send).
    """

    __slots__ = ("status_code", "raw_headers", "body")

    def __init__(
        self, status: int, headers: list[tuple[str, str]] | None = None, body: bytes = b"", *,
        media_type: str | None = None, content_length: int | None = None,
    ) -> None:
        self.status_code = status
        self.body = body
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers or ()]
        if status >= 200 and status not in (204, 304):
            length = len(body) if content_length is None else content_length
            raw.append((b"content-length", str(length).encode("latin-1")))
        if media_type is not None:
            raw.append((b"content-type", media_type.encode("latin-1")))
        raw.append(API_VERSION)
        self.raw_headers = raw

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Send the reply (ASGI); the body is left out for ``HEAD``."""
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        body = b"" if scope.get("method") == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body})
