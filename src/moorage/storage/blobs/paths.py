"""Every storage key of the filesystem blob store comes from here.

Layout under the data directory::

    <data_dir>/
    ├── blobs/
    │   └── sha256/
    │       └── <first two hex>/
    │           └── <64 hex>              published, digest-verified blob (immutable)
    └── uploads/
        └── <upload id>                    bytes of an upload session in progress

A blob file appears only by an atomic rename from ``uploads/`` after its digest was verified,
so a reader never sees a partial blob. Upload ids are UUIDs chosen by Moorage.
"""

from __future__ import annotations

import re
from pathlib import Path

from moorage.images.digests import hex_of

_UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def blob_path(root: Path, digest: str) -> Path:
    """Path of the published blob ``digest`` (a validated sha256 digest)."""
    hex_digest = hex_of(digest)
    return root / "blobs" / "sha256" / hex_digest[:2] / hex_digest


def uploads_dir(root: Path) -> Path:
    """Directory of upload sessions' data."""
    return root / "uploads"


def upload_path(root: Path, upload_id: str) -> Path:
    """Path of the data of upload ``upload_id``.

    Raises:
        ValueError: ``upload_id`` is not a UUID (never build paths from unchecked input).
    """
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise ValueError(f"not an upload id: {upload_id!r}")
    return uploads_dir(root) / upload_id
