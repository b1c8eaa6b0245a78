"""Prometheus metrics of the registry (served on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

REQUESTS = Counter("moorage_requests_total", "Requests answered, by API surface and status class",
                   ["surface", "status"])
IMAGES_EXPIRED = Counter("moorage_lifecycle_images_expired_total",
                         "Images deleted by lifecycle policies")
BLOBS_COLLECTED = Counter("moorage_gc_blobs_deleted_total", "Blobs deleted by garbage collection")
BYTES_COLLECTED = Counter("moorage_gc_bytes_deleted_total", "Bytes reclaimed by garbage collection")
UPLOADS_COLLECTED = Counter("moorage_gc_uploads_deleted_total",
                            "Abandoned upload sessions deleted by garbage collection")
