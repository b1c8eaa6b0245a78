"""Media types of manifests, configs and layers.

Sources: OCI image-spec v1.1 (media-types.md, manifest.md, image-index.md, layer.md),
OCI distribution-spec v1.1 §"Pushing manifests", Docker Image Manifest V2 Schema 2
(docker/distribution ``docs/spec/manifest-v2-2.md``) and Schema 1 (``manifest-v2-1.md``).

All values are lower-case strings; compare them after lower-casing a ``Content-Type``.
"""

from __future__ import annotations

# --- manifests (what ``PUT /v2/<name>/manifests/<ref>`` carries) --------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
"""OCI image manifest (image-spec manifest.md); also used for OCI 1.1 artifacts."""

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
"""OCI image index (image-spec image-index.md)."""

DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
"""Docker image manifest v2, schema 2."""

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
"""Docker manifest list (the schema 2 "fat manifest")."""

DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
"""Docker schema 1 manifest, unsigned. Deprecated; NOT accepted by moorage."""

DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
"""Docker schema 1 manifest, JWS-signed. Deprecated; NOT accepted by moorage."""

# --- configs ----------------------------------------------------------------------------------

OCI_EMPTY = "application/vnd.oci.empty.v1+json"
"""The empty descriptor's type: the 2-byte blob ``{}`` (image-spec manifest.md §"Guidance for an
Empty Descriptor"); used as the config of artifacts that have none."""

OCI_EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
"""Digest of the 2-byte empty JSON object ``{}``."""

OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
"""OCI image configuration (image-spec config.md)."""

DOCKER_CONTAINER_IMAGE_CONFIG = "application/vnd.docker.container.image.v1+json"
"""Docker container image configuration (the config of a schema 2 manifest)."""

# --- layers -----------------------------------------------------------------------------------

OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

OCI_LAYER_NONDISTRIBUTABLE_TAR = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_FOREIGN_LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

NON_DISTRIBUTABLE_LAYER_MEDIA_TYPES: frozenset[str] = frozenset(
    {
        OCI_LAYER_NONDISTRIBUTABLE_TAR,
        OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP,
        OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD,
        DOCKER_FOREIGN_LAYER_TAR_GZIP,
    }
)
"""Layers whose content may live outside the registry, fetched from the descriptor's ``urls``
(image-spec layer.md §"Non-distributable layers", deprecated in v1.1; Docker "foreign" layers).
A registry does not require such a layer as a blob when the descriptor lists ``urls``."""

# --- sets -------------------------------------------------------------------------------------

IMAGE_MANIFEST_MEDIA_TYPES: frozenset[str] = frozenset({OCI_MANIFEST, DOCKER_MANIFEST_V2})
"""Manifests with a ``config`` and ``layers``."""

INDEX_MEDIA_TYPES: frozenset[str] = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
"""Manifests whose ``manifests`` list names child manifests."""

MANIFEST_MEDIA_TYPES: frozenset[str] = IMAGE_MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES
"""The manifest media types accepted on PUT. Docker schema 1 is deliberately absent."""

SCHEMA1_MEDIA_TYPES: frozenset[str] = frozenset({DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})
"""Docker schema 1 types, recognised only to be refused as unsupported."""

DOCKER_MEDIA_TYPES: frozenset[str] = frozenset({DOCKER_MANIFEST_V2, DOCKER_MANIFEST_LIST})
"""The accepted Docker manifest types (which have no ``subject`` or ``artifactType``)."""

GENERIC_CONTENT_TYPES: frozenset[str] = frozenset(
    {"", "application/json", "application/octet-stream"}
)
"""``Content-Type`` values that say nothing about the manifest type; the body decides."""
