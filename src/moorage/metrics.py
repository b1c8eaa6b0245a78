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

_REQUEST_COUNTERS: dict[tuple[str, int], Counter] = {}


def count_request(surface: str, status: int) -> None:
    """Count one answered request of ``surface`` (``oci``, ``ecr``) with HTTP ``status``.

    The labelled child counters are looked up once per (surface, status class) and kept.
    """
    key = (surface, status // 100)
    counter = _REQUEST_COUNTERS.get(key)
    if counter is None:
        counter = _REQUEST_COUNTERS[key] = REQUESTS.labels(surface, f"{status // 100}xx")
    counter.inc()
