"""This machine's limits for moving layers, measured the way the harness measures registries.

    .venv/bin/python -m benchmarks.ceilings [--runs 5] [--mib 128]

Prints medians (min–max) of: sha256 on one core; writing a file and fdatasync-ing it (the
durable disk write every push pays); one TCP stream over loopback; and a bare ASGI upload sink
on granian (:mod:`benchmarks.sink_app`: hash, write, fsync — nothing else) pushed with the
harness's client, as one body with Content-Length and as a streamed chunked body. A registry
that verifies and durably stores what it receives cannot push faster than the sink.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.rawhttp import Connection
from benchmarks.servers import _wait_ready, free_port
from benchmarks.workload import STREAM_FRAME, MiB, loopback_mbps


def sha256_mbps(data: bytes) -> float:
    start = time.perf_counter()
    hashlib.sha256(data).digest()
    return len(data) / (time.perf_counter() - start) / 1e6


def durable_write_mbps(data: bytes, directory: Path) -> float:
    path = directory / "durable-write"
    os.sync()
    start = time.perf_counter()
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        for offset in range(0, len(view), 4 * MiB):
            os.write(fd, view[offset:offset + 4 * MiB])
        os.fdatasync(fd)
    finally:
        os.close(fd)
    wall = time.perf_counter() - start
    path.unlink()
    return len(data) / wall / 1e6


def sink_mbps(port: int, data: bytes, streamed: bool) -> float:
    os.sync()
    view = memoryview(data)
    with Connection("127.0.0.1", port, timeout=120) as connection:
        start = time.perf_counter()
        if streamed:
            frames = (view[i:i + STREAM_FRAME] for i in range(0, len(view), STREAM_FRAME))
            response = connection.request("PUT", "/", chunks=frames)
        else:
            response = connection.request("PUT", "/", body=view)
        wall = time.perf_counter() - start
    if response.status != 201:
        raise RuntimeError(f"sink answered {response.status}")
    return len(data) / wall / 1e6


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):8,.0f} MB/s  ({min(values):,.0f}–{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=int, default=128, help="blob size in MiB (as the push scenario)")
    options = parser.parse_args()
    data = os.urandom(options.mib * MiB)
    results: dict[str, list[float]] = {name: [] for name in (
        "sha256, one core", "write + fdatasync", "loopback, one TCP stream",
        "bare ASGI sink on granian, one body", "bare ASGI sink on granian, streamed chunks")}
    with tempfile.TemporaryDirectory(prefix="moorage-ceilings-") as directory:
        port = free_port()
        log_path = Path(directory) / "sink.log"
        with open(log_path, "wb") as log:
            sink = subprocess.Popen(
                [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", "1", "benchmarks.sink_app:app"],
                env={**os.environ, "SINK_DIR": directory}, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(sink, port, "/", log_path, ok=(201,))
            for _ in range(options.runs):
                results["sha256, one core"].append(sha256_mbps(data))
                results["write + fdatasync"].append(durable_write_mbps(data, Path(directory)))
                results["loopback, one TCP stream"].append(loopback_mbps(512 * MiB))
                results["bare ASGI sink on granian, one body"].append(sink_mbps(port, data, False))
                results["bare ASGI sink on granian, streamed chunks"].append(sink_mbps(port, data, True))
        finally:
            sink.terminate()
            sink.wait(10)
    print(f"machine: {os.cpu_count()} CPUs; {options.mib} MiB per measurement, {options.runs} runs")
    for name, values in results.items():
        print(f"  {name:45} {summary(values)}")


if __name__ == "__main__":
    main()
