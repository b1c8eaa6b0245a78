"""Build small, real OCI images in code (so the end-to-end suite needs no external fixtures)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def compact(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass
class BuiltImage:
    """An image manifest and its blobs: ``blobs`` maps digest → bytes."""

    manifest: bytes
    config: bytes
    layers: list[bytes]

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    @property
    def blobs(self) -> dict[str, bytes]:
        return {digest_of(b): b for b in [self.config, *self.layers]}


def make_layer(files: dict[str, bytes]) -> bytes:
    """A gzip-compressed tar layer holding ``files``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def make_image(architecture: str = "amd64", layer_count: int = 2, layer_bytes: int = 4096,
               seed: bytes | None = None) -> BuiltImage:
    """A random image: ``layer_count`` layers of about ``layer_bytes`` random bytes each."""
    seed = seed or os.urandom(8)
    layers = [
        make_layer({f"data/file-{i}": hashlib.sha256(seed + bytes([i])).digest() + os.urandom(layer_bytes)})
        for i in range(layer_count)
    ]
    config = compact({
        "architecture": architecture, "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(gzip.decompress(layer)) for layer in layers]},
    })
    manifest = compact({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)} for layer in layers],
    })
    return BuiltImage(manifest, config, layers)


def make_index(images: dict[str, BuiltImage]) -> bytes:
    """An OCI index of ``images`` keyed by architecture."""
    return compact({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest),
             "platform": {"architecture": arch, "os": "linux"}}
            for arch, image in images.items()
        ],
    })


def write_layout(path: Path, tag: str, top: bytes, top_media_type: str, blobs: dict[str, bytes]) -> None:
    """Write an OCI image layout with ``top`` (manifest or index) tagged ``tag``."""
    blob_dir = path / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for content in [top, *blobs.values()]:
        (blob_dir / digest_of(content).split(":", 1)[1]).write_bytes(content)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": top_media_type, "digest": digest_of(top), "size": len(top),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }))


def read_layout_top(path: Path, tag: str) -> tuple[str, bytes]:
    """(digest, bytes) of the manifest tagged ``tag`` in an OCI layout."""
    index = json.loads((path / "index.json").read_text())
    for descriptor in index["manifests"]:
        if descriptor.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            digest = descriptor["digest"]
            return digest, (path / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
    raise KeyError(tag)


def layout_blob_digests(path: Path) -> set[str]:
    return {"sha256:" + p.name for p in (path / "blobs" / "sha256").iterdir()}
