"""This machine's limits for moving layers, measured the way the harness measures registries.

    .venv/bin/python -m benchmarks.ceilings [--runs 5] [--mib 128]

Prints medians (min–max) of: sha256 on one core; writing a file and fdatasync-ing it (the
durable disk write every push pays); one TCP stream over loopback; a bare ASGI upload sink
(:mod:`benchmarks.sink_app`: hash, write, fsync — nothing else) pushed with the harness's
client, as one body with Content-Length and as a streamed chunked body; and the wall time of a
small POST answered by a bare ASGI app, one request at a time on one connection (the floor of
every ECR call and small-image push request). The sink and the floor are measured on both ASGI
servers Moorage can run, configured as Moorage configures them. A registry that verifies and
durably stores what it receives cannot push faster than the sink.
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


def request_floor_us(port: int, count: int = 2000) -> float:
    """Mean wall time (µs) of a signed-call-sized POST and its small answer, one at a time."""
    body = b'{"registryId":"123456789012"}'.ljust(300)
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    with Connection("127.0.0.1", port) as connection:
        for _ in range(200):  # warm up
            connection.request("POST", "/", headers=headers, body=body)
        start = time.perf_counter()
        for _ in range(count):
            connection.request("POST", "/", headers=headers, body=body)
        return (time.perf_counter() - start) / count * 1e6


def summary(values: list[float], unit: str = "MB/s") -> str:
    return f"{statistics.median(values):8,.0f} {unit}  ({min(values):,.0f}–{max(values):,.0f})"


def _server(server: str, app: str, port: int) -> list[str]:
    """The command serving ``benchmarks.sink_app:<app>`` on ``server`` as Moorage runs it."""
    if server == "granian":
        from moorage.server import HTTP1_BUFFER_BYTES
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--http1-buffer-size",
                str(HTTP1_BUFFER_BYTES), f"benchmarks.sink_app:{app}"]
    return [sys.executable, "-m", "benchmarks.sink_app", "uvicorn", str(port), app]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=int, default=128, help="blob size in MiB (as the push scenario)")
    options = parser.parse_args()
    data = os.urandom(options.mib * MiB)
    results: dict[str, list[float]] = {name: [] for name in (
        "sha256, one core", "write + fdatasync", "loopback, one TCP stream")}
    servers = ("uvicorn", "granian")
    for server in servers:
        for shape in ("one body", "streamed chunks"):
            results[f"bare ASGI sink on {server}, {shape}"] = []
    floors: dict[str, list[float]] = {f"small POST answered on {server}": [] for server in servers}
    with tempfile.TemporaryDirectory(prefix="moorage-ceilings-") as directory:
        running: dict[tuple[str, str], tuple[subprocess.Popen, int]] = {}
        try:
            for server in servers:
                for app in ("app", "answer"):
                    port = free_port()
                    log_path = Path(directory) / f"{server}-{app}.log"
                    with open(log_path, "wb") as log:
                        process = subprocess.Popen(
                            _server(server, app, port), env={**os.environ, "SINK_DIR": directory},
                            stdout=log, stderr=subprocess.STDOUT)
                    running[server, app] = process, port
                    _wait_ready(process, port, "/", log_path, ok=(200, 201))
            for _ in range(options.runs):
                results["sha256, one core"].append(sha256_mbps(data))
                results["write + fdatasync"].append(durable_write_mbps(data, Path(directory)))
                results["loopback, one TCP stream"].append(loopback_mbps(512 * MiB))
                for server in servers:
                    port = running[server, "app"][1]
                    results[f"bare ASGI sink on {server}, one body"].append(
                        sink_mbps(port, data, False))
                    results[f"bare ASGI sink on {server}, streamed chunks"].append(
                        sink_mbps(port, data, True))
                    floors[f"small POST answered on {server}"].append(
                        request_floor_us(running[server, "answer"][1]))
        finally:
            for process, _ in running.values():
                process.terminate()
                process.wait(10)
    print(f"machine: {os.cpu_count()} CPUs; {options.mib} MiB per measurement, {options.runs} runs")
    for name, values in results.items():
        print(f"  {name:45} {summary(values)}")
    for name, values in floors.items():
        print(f"  {name:45} {summary(values, 'µs')}")


if __name__ == "__main__":
    main()
