"""Digests: ``<algorithm>:<hex>`` identifiers of content (OCI image-spec, descriptor.md#digests).

Moorage stores and computes sha256 only; a well-formed digest of another registered algorithm
(sha512) is recognised so that it can be answered as "unsupported" rather than "malformed".
"""

from __future__ import annotations

import hashlib
import re

from moorage.errors import InvalidDigest

_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")


def parse_digest(value: str) -> str:
    """Validate ``value`` as a sha256 digest and return it.

    Returns:
        the digest, ``sha256:`` + 64 lowercase hex characters.

    Raises:
        InvalidDigest: not of the digest grammar, or an algorithm other than sha256
            (OCI ``DIGEST_INVALID``; ECR ``InvalidParameterException``/``InvalidImageDigest``).
    """
    if _SHA256.fullmatch(value):
        return value
    if _GRAMMAR.fullmatch(value):
        algorithm = value.split(":", 1)[0]
        if algorithm != "sha256":
            raise InvalidDigest(f"unsupported digest algorithm '{algorithm}': only sha256 is stored")
    raise InvalidDigest(f"invalid digest '{value}': expected sha256:<64 lowercase hex>")


def is_digest(value: str) -> bool:
    """True when ``value`` has the general digest grammar (a reference by digest, not a tag)."""
    return ":" in value and bool(_GRAMMAR.fullmatch(value))


def sha256_digest(content: bytes) -> str:
    """The ``sha256:<hex>`` digest of ``content``."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


def hex_of(digest: str) -> str:
    """The hex part of a validated digest."""
    return digest.split(":", 1)[1]
