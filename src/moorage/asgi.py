"""Helpers for the plain ASGI apps of the HTTP edge (``/v2/`` and ``POST /``)."""

from __future__ import annotations


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of header ``name`` (lower case, as ASGI gives names) in the ASGI scope's
    ``headers``, decoded as Latin-1; None when absent."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
