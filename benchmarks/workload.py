"""Registry client operations the scenarios are built from: blob pushes in the three upload
styles, pulls, docker-style small-image pushes, and the content they send."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from benchmarks.rawhttp import Connection, Response

MiB = 1024 * 1024
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
STREAM_FRAME = 64 * 1024  # chunk size of a streamed (chunked transfer-encoding) PATCH
CHUNK_PATCH = 8 * MiB  # PATCH size of a chunked upload


class BenchError(RuntimeError):
    pass


def sha256(data: bytes | bytearray | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def expect(response: Response, *statuses: int, what: str) -> Response:
    if response.status not in statuses:
        raise BenchError(f"{what}: HTTP {response.status} {response.body[:300]!r}")
    return response


def location_path(response: Response) -> str:
    location = response.headers.get("location")
    if not location:
        raise BenchError(f"no Location in the response (HTTP {response.status})")
    if location.startswith("http://") or location.startswith("https://"):
        location = "/" + location.split("/", 3)[3]
    return location


def with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + "digest=" + digest


class Blob:
    """A large blob made unique per push by rewriting its first 32 bytes."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(os.urandom(size))
        self.counter = 0

    def fresh(self) -> str:
        """Make the content new and return its digest (hashing is done before any timing)."""
        self.counter += 1
        self.data[:32] = struct.pack(">Q", self.counter) + os.urandom(24)
        return sha256(self.data)


# -- blob uploads ------------------------------------------------------------------------------


def push_blob(connection: Connection, repository: str, data: bytearray | bytes, digest: str,
              mode: str) -> None:
    """Push ``data`` as blob ``digest`` in one of three styles:

    * ``monolithic``: POST (202), then PUT with the whole body and ``?digest=``;
    * ``streamed``: POST, one PATCH with the whole body in chunked transfer encoding (what
      docker does), then PUT without a body;
    * ``chunked``: POST, PATCHes of 8 MiB with ``Content-Range``, then PUT without a body.
    """
    response = expect(connection.request("POST", f"/v2/{repository}/blobs/uploads/"), 202,
                      what="start upload")
    location = location_path(response)
    view = memoryview(data)
    if mode == "monolithic":
        expect(connection.request("PUT", with_digest(location, digest), body=view,
                                  headers={"Content-Type": "application/octet-stream"}),
               201, what="monolithic PUT")
        return
    if mode == "streamed":
        frames = (view[i:i + STREAM_FRAME] for i in range(0, len(view), STREAM_FRAME))
        response = expect(connection.request("PATCH", location, chunks=frames,
                                             headers={"Content-Type": "application/octet-stream"}),
                          202, what="streamed PATCH")
        location = location_path(response)
    elif mode == "chunked":
        for start in range(0, len(view), CHUNK_PATCH):
            chunk = view[start:start + CHUNK_PATCH]
            response = expect(connection.request(
                "PATCH", location, body=chunk,
                headers={"Content-Type": "application/octet-stream",
                         "Content-Range": f"{start}-{start + len(chunk) - 1}"}),
                202, what="chunked PATCH")
            location = location_path(response)
    else:
        raise ValueError(mode)
    expect(connection.request("PUT", with_digest(location, digest)), 201, what="closing PUT")


def push_stream(connection: Connection, repository: str, frames: Iterator[bytes | memoryview],
                digest: str) -> None:
    """Streamed PATCH of a body produced on the fly (for uploads too big to hold in memory)."""
    response = expect(connection.request("POST", f"/v2/{repository}/blobs/uploads/"), 202,
                      what="start upload")
    response = expect(connection.request("PATCH", location_path(response), chunks=frames,
                                         headers={"Content-Type": "application/octet-stream"}),
                      202, what="streamed PATCH")
    expect(connection.request("PUT", with_digest(location_path(response), digest)), 201,
           what="closing PUT")


def pull_blob(connection: Connection, repository: str, digest: str) -> int:
    response = expect(connection.request("GET", f"/v2/{repository}/blobs/{digest}", keep_body=False),
                      200, what="blob GET")
    return response.size


# -- small images ------------------------------------------------------------------------------


@dataclass
class SmallImage:
    blobs: list[tuple[str, bytes]]  # (digest, content): 3 layers then the config
    manifest: bytes
    manifest_digest: str
    media_type: str


def small_image(seed: str, layer_sizes=(2048, 4096, 6144), oci: bool = False) -> SmallImage:
    """An image of three small random layers, a config and a manifest, unique to ``seed``."""
    layers = [os.urandom(size) for size in layer_sizes]
    layer_digests = [sha256(layer) for layer in layers]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"], "Labels": {"seed": seed}},
        "rootfs": {"type": "layers", "diff_ids": layer_digests},
    }, separators=(",", ":")).encode()
    config_digest = sha256(config)
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "size": len(config),
                   "digest": config_digest},
        "layers": [{"mediaType": OCI_LAYER if oci else DOCKER_LAYER, "size": len(layer),
                    "digest": digest} for layer, digest in zip(layers, layer_digests)],
    }
    manifest = json.dumps(document, indent=3).encode()
    return SmallImage(list(zip(layer_digests, layers)) + [(config_digest, config)], manifest,
                      sha256(manifest), media_type)


def push_small_image(connection: Connection, repository: str, image: SmallImage, tag: str) -> None:
    """What ``docker push`` does for a new image: for each blob HEAD (404), POST, PUT with the
    body; then HEAD the manifest (404) and PUT it."""
    for digest, content in image.blobs:
        head = connection.request("HEAD", f"/v2/{repository}/blobs/{digest}")
        if head.status == 200:
            continue
        expect(head, 404, what="blob HEAD")
        response = expect(connection.request("POST", f"/v2/{repository}/blobs/uploads/"), 202,
                          what="start upload")
        expect(connection.request("PUT", with_digest(location_path(response), digest), body=content,
                                  headers={"Content-Type": "application/octet-stream"}),
               201, what="blob PUT")
    connection.request("HEAD", f"/v2/{repository}/manifests/{tag}",
                       headers={"Accept": image.media_type})
    expect(connection.request("PUT", f"/v2/{repository}/manifests/{tag}", body=image.manifest,
                              headers={"Content-Type": image.media_type}),
           201, what="manifest PUT")


def put_manifest(connection: Connection, repository: str, image: SmallImage, tag: str) -> None:
    expect(connection.request("PUT", f"/v2/{repository}/manifests/{tag}", body=image.manifest,
                              headers={"Content-Type": image.media_type}),
           201, what="manifest PUT")


def push_blobs_of(connection: Connection, repository: str, image: SmallImage) -> None:
    """Monolithic POST ?digest= of each blob (setup only; not timed)."""
    for digest, content in image.blobs:
        response = connection.request("POST", f"/v2/{repository}/blobs/uploads/?digest={digest}",
                                      body=content,
                                      headers={"Content-Type": "application/octet-stream"})
        if response.status == 202:  # a registry without single-POST uploads
            expect(connection.request("PUT", with_digest(location_path(response), digest),
                                      body=content), 201, what="blob PUT")
        else:
            expect(response, 201, what="monolithic POST")


# -- the loopback limit ------------------------------------------------------------------------


def loopback_mbps(total: int = 2 * 1024 * MiB) -> float:
    """TCP throughput over 127.0.0.1 with this harness's receive loop (one stream)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    buffer = memoryview(bytearray(4 * MiB))

    def send() -> None:
        connection, _ = listener.accept()
        with connection:
            left = total
            while left:
                chunk = buffer[: min(left, len(buffer))]
                connection.sendall(chunk)
                left -= len(chunk)

    thread = threading.Thread(target=send)
    thread.start()
    receive = memoryview(bytearray(4 * MiB))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        start = time.perf_counter()
        got = 0
        while got < total:
            n = sock.recv_into(receive)
            if not n:
                break
            got += n
        wall = time.perf_counter() - start
    thread.join()
    listener.close()
    return got / wall / 1e6
