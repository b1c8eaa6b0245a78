"""Memory stays flat as blob size grows: a 1 GiB push and pull through the real server."""

from __future__ import annotations

import hashlib
import os


from tests.conftest import start_server, stop_server

GIB = 1024 * 1024 * 1024
CHUNK = 1024 * 1024


def processes(pid: int) -> list[int]:
    """``pid`` and its descendants (the server's worker processes)."""
    found = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            for child in handle.read().split():
                found += processes(int(child))
    return found


def peak_rss_bytes(pid: int) -> int:
    """Sum of the high-water marks of the resident sets (VmHWM) of the server's processes."""
    total = 0
    for process in processes(pid):
        for line in open(f"/proc/{process}/status"):
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) * 1024
    return total


def test_one_gib_layer_push_and_pull_keep_memory_flat(tmp_path):
    server = start_server(tmp_path / "data", f"sqlite:///{tmp_path / 'moorage.db'}")
    try:
        server.ecr().create_repository(repositoryName="big/layer")
        block = os.urandom(CHUNK)
        hasher = hashlib.sha256()
        for _ in range(GIB // CHUNK):
            hasher.update(block)
        digest = "sha256:" + hasher.hexdigest()
        with server.http() as http:
            http.get("/v2/")  # warm up the request path before measuring
            before = peak_rss_bytes(server.process.pid)
            started = http.post("/v2/big/layer/blobs/uploads/")
            patched = http.patch(started.headers["location"], content=(block for _ in range(GIB // CHUNK)),
                                 timeout=600)
            assert patched.status_code == 202
            assert http.put(patched.headers["location"], params={"digest": digest}, timeout=600).status_code == 201
            received = hashlib.sha256()
            size = 0
            with http.stream("GET", f"/v2/big/layer/blobs/{digest}", timeout=600) as response:
                for part in response.iter_bytes(CHUNK):
                    received.update(part)
                    size += len(part)
            assert size == GIB and "sha256:" + received.hexdigest() == digest
            growth = peak_rss_bytes(server.process.pid) - before
        assert growth < 64 * 1024 * 1024, f"server peak RSS grew by {growth / 2**20:.1f} MiB"
    finally:
        stop_server(server)
