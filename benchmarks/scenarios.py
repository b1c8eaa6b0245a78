"""The scenarios of issue 5, each measured on Moorage and on its reference (CNCF Distribution,
or moto for the ECR API) in the same runs."""

from __future__ import annotations

import os
import random
import re
import shutil
import statistics
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from benchmarks import workload as wl
from benchmarks.ecrclient import EcrClient
from benchmarks.servers import Target, hwm_kib, reset_hwm, rss_kib
from benchmarks.workload import MiB, BenchError

GB = 1e9


@dataclass
class Metric:
    key: str
    title: str
    unit: str
    higher_is_better: bool
    goal: float | None  # goal for the speed ratio Moorage / reference (None: no ratio goal)
    goal_text: str
    cost_unit: str  # "CPU-s/GB", "CPU-ms/req", ...


@dataclass
class Sample:
    value: float
    cost: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Measured:
    wall: float
    cpu: float
    result: Any


def measure(target: Target, fn: Callable[[], Any]) -> Measured:
    """Run ``fn`` and return its wall time and the server's CPU seconds meanwhile."""
    cpu0 = target.cpu()
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    return Measured(wall, target.cpu() - cpu0, result)


def run_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` on ``count`` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(count)

    def body(index: int) -> Any:
        barrier.wait()
        return work(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(body, range(count)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class Scenario:
    name = ""
    title = ""
    reference = "distribution"  # the kind of the reference server
    metrics: list[Metric] = []
    once = False  # measured in one run only (no ratio)
    runs_key = "runs"  # the scale entry giving this scenario's number of runs

    def __init__(self, bench) -> None:  # type: ignore[no-untyped-def]
        self.bench = bench
        self.scale = bench.scale

    def setup(self, target: Target) -> None:
        pass

    def run_once(self, target: Target, run: int) -> dict[str, Sample]:
        raise NotImplementedError


# -- 1. pushing one large blob ---------------------------------------------------------------


DROP_CACHES = "/proc/sys/vm/drop_caches"


def settle_page_cache() -> bool:
    """Before a large push: write back what earlier pushes left dirty (``sync``), so that no
    push pays for the previous one's writeback, and drop the clean page cache (as root), so
    that every push writes into memory the kernel has used before.

    The second matters on virtual machines: the first use of a guest page costs a fault in the
    hypervisor (on the machine of docs/performance.md, writing 128 MiB into never-used pages
    took 0.29 s of CPU against 0.03 s into reused ones), and without the drop, whether a push
    gets reused pages depends on what the other server freed just before. Returns whether the
    cache was dropped (False without the permission; the results then carry that noise).
    """
    os.sync()
    try:
        with open(DROP_CACHES, "w") as handle:
            handle.write("1\n")
        return True
    except OSError:
        return False


class Push(Scenario):
    name = "push"
    title = "push one large blob"
    modes = ("monolithic", "streamed", "chunked")
    mode_titles = {"monolithic": "POST + PUT with body", "streamed": "streamed PATCH (chunked TE)",
                   "chunked": "8 MiB PATCH chunks"}

    def __init__(self, bench) -> None:  # type: ignore[no-untyped-def]
        super().__init__(bench)
        size = self.scale["blob_mib"]
        self.metrics = [
            Metric(f"push.{mode}", f"push {size} MiB blob, {self.mode_titles[mode]}", "MB/s", True,
                   2.5, "≥ 2.5×", "CPU-s/GB")
            for mode in self.modes
        ]

    def setup(self, target: Target) -> None:
        target.ensure_repository("bench/push")

    def run_once(self, target: Target, run: int) -> dict[str, Sample]:
        blob = self.bench.blob
        samples = {}
        for mode in self.modes:
            digest = blob.fresh()
            settle_page_cache()
            with target.connection() as connection:
                connection.request("GET", "/v2/")  # open the connection outside the timing
                m = measure(target, lambda: wl.push_blob(connection, "bench/push", blob.data, digest,
                                                         mode))
            size = len(blob.data)
            samples[f"push.{mode}"] = Sample(size / m.wall / 1e6, m.cpu / size * GB)
        return samples


# -- 2. pulling one blob ---------------------------------------------------------------------


class Pull(Scenario):
    name = "pull"
    title = "pull one blob"

    def __init__(self, bench) -> None:  # type: ignore[no-untyped-def]
        super().__init__(bench)
        size = self.scale["blob_mib"]
        self.metrics = [
            Metric("pull.1", f"pull {size} MiB blob, 1 reader", "MB/s", True, 1.0, "≥ 1.0×",
                   "CPU-s/GB"),
            Metric("pull.8", f"pull {size} MiB blob, 8 readers", "MB/s", True, 1.0, "≥ 1.0×",
                   "CPU-s/GB"),
        ]
        self.digest = {}

    def setup(self, target: Target) -> None:
        target.ensure_repository("bench/pull")
        blob = self.bench.blob
        digest = blob.fresh()
        with target.connection() as connection:
            wl.push_blob(connection, "bench/pull", blob.data, digest, "monolithic")
            wl.pull_blob(connection, "bench/pull", digest)  # warm the page cache
        self.digest[target.kind] = digest

    def run_once(self, target: Target, run: int) -> dict[str, Sample]:
        digest = self.digest[target.kind]
        samples = {}
        reps = self.scale["pull_reps"]
        with target.connection() as connection:
            connection.request("GET", "/v2/")
            m = measure(target, lambda: sum(wl.pull_blob(connection, "bench/pull", digest)
                                            for _ in range(reps)))
        samples["pull.1"] = Sample(m.result / m.wall / 1e6, m.cpu / m.result * GB)
        connections = [target.connection() for _ in range(8)]
        try:
            for connection in connections:
                connection.request("GET", "/v2/")
            reps8 = self.scale["pull8_reps"]
            m = measure(target, lambda: sum(run_threads(8, lambda i: sum(
                wl.pull_blob(connections[i], "bench/pull", digest) for _ in range(reps8))))
            )
        finally:
            for connection in connections:
                connection.close()
        samples["pull.8"] = Sample(m.result / m.wall / 1e6, m.cpu / m.result * GB)
        # The loopback limit of the moment, with the same receive loop (one stream).
        loopback = wl.loopback_mbps(512 * MiB)
        for sample in samples.values():
            sample.info["loopback_MBps"] = loopback
            sample.info["of_loopback"] = sample.value / loopback
        return samples


# -- 3. small-image push ---------------------------------------------------------------------


class SmallPush(Scenario):
    name = "small"
    title = "small-image push (3 layers + config + manifest, docker-style)"
    metrics = [
        Metric("small.1", "small-image push, 1 connection", "img/s", True, 3.0, "≥ 3×",
               "CPU-ms/img"),
        Metric("small.8", "small-image push, 8 connections", "img/s", True, 3.0, "≥ 3×",
               "CPU-ms/img"),
    ]

    def setup(self, target: Target) -> None:
        target.ensure_repository("bench/small")

    def run_once(self, target: Target, run: int) -> dict[str, Sample]:
        samples = {}
        count1 = self.scale["small_images"]
        images = [wl.small_image(f"{target.kind}-{run}-1-{i}") for i in range(count1)]
        with target.connection() as connection:
            connection.request("GET", "/v2/")

            def one_connection() -> None:
                for i, image in enumerate(images):
                    wl.push_small_image(connection, "bench/small", image, f"r{run}-a{i}")

            m = measure(target, one_connection)
        samples["small.1"] = Sample(count1 / m.wall, m.cpu / count1 * 1000)

        per_thread = self.scale["small_images8"]
        batches = [[wl.small_image(f"{target.kind}-{run}-8-{t}-{i}") for i in range(per_thread)]
                   for t in range(8)]
        connections = [target.connection() for _ in range(8)]
        try:
            for connection in connections:
                connection.request("GET", "/v2/")

            def worker(t: int) -> None:
                for i, image in enumerate(batches[t]):
                    wl.push_small_image(connections[t], "bench/small", image, f"r{run}-b{t}-{i}")

            m = measure(target, lambda: run_threads(8, worker))
        finally:
            for connection in connections:
                connection.close()
        total = 8 * per_thread
        samples["small.8"] = Sample(total / m.wall, m.cpu / total * 1000)
        return samples


# -- 4. hot metadata requests under load (ab) ------------------------------------------------


_AB_NUMBER = {
    "complete": re.compile(r"Complete requests:\s+(\d+)"),
    "failed": re.compile(r"Failed requests:\s+(\d+)"),
    "non2xx": re.compile(r"Non-2xx responses:\s+(\d+)"),
    "keepalive": re.compile(r"Keep-Alive requests:\s+(\d+)"),
    "rps": re.compile(r"Requests per second:\s+([\d.]+)"),
    "seconds": re.compile(r"Time taken for tests:\s+([\d.]+)"),
}


def run_ab(target: Target, path: str, head: bool, duration: float, concurrency: int = 16,
           headers: dict[str, str] | None = None) -> dict[str, float]:
    command = ["ab", "-q", "-k", "-c", str(concurrency), "-t", str(duration), "-n", "2000000",
               "-s", "30"]
    if head:
        command.append("-i")
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if target.password is not None:
        credentials = f"AWS:{target.password}"
        if len(credentials) < 700:  # ab's -A buffer is 1 KiB after base64
            command += ["-A", credentials]
        else:
            command += ["-H", f"Authorization: {target.auth_header}"]
    command.append(f"{target.url}{path}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    if result.returncode != 0:
        raise BenchError(f"ab failed ({result.returncode}): {result.stderr[-500:]}")
    numbers = {}
    for key, pattern in _AB_NUMBER.items():
        match = pattern.search(result.stdout)
        numbers[key] = float(match.group(1)) if match else 0.0
    return numbers


class Hot(Scenario):
    name = "hot"
    title = "hot metadata requests, 16 connections (ab -k -c 16)"
    runs_key = "hot_runs"
    metrics = [
        Metric("hot.manifest_get_tag", "GET manifest by tag, 16 conns", "req/s", True, 4.0, "≥ 4×",
               "CPU-ms/req"),
        Metric("hot.manifest_head_digest", "HEAD manifest by digest, 16 conns", "req/s", True, 4.0,
               "≥ 4×", "CPU-ms/req"),
        Metric("hot.blob_head", "HEAD blob, 16 conns", "req/s", True, 4.0, "≥ 4×", "CPU-ms/req"),
    ]

    def __init__(self, bench) -> None:  # type: ignore[no-untyped-def]
        super().__init__(bench)
        self.image = wl.small_image("hot")

    def setup(self, target: Target) -> None:
        if shutil.which("ab") is None:
            raise SystemExit("ab is missing: apt-get install apache2-utils")
        target.ensure_repository("bench/hot")
        with target.connection() as connection:
            wl.push_small_image(connection, "bench/hot", self.image, "latest")

    def run_once(self, target: Target, run: int) -> dict[str, Sample]:
        duration = self.scale["ab_seconds"]
        image = self.image
        cases = {
            "hot.manifest_get_tag": ("/v2/bench/hot/manifests/latest", False,
                                     {"Accept": image.media_type}),
            "hot.manifest_head_digest": (f"/v2/bench/hot/manifests/{image.manifest_digest}", True,
                                         {"Accept": image.media_type}),
            "hot.blob_head": (f"/v2/bench/hot/blobs/{image.blobs[0][0]}", True, {}),
        }
        samples = {}
        for key, (path, head, headers) in cases.items():
            m = measure(target, lambda: run_ab(target, path, head, duration, headers=headers))
            numbers = m.result
            complete = max(numbers["complete"], 1)
            sample = Sample(complete / m.wall if numbers["rps"] == 0 else numbers["rps"],
                            m.cpu / complete * 1000)
            bad = numbers["non2xx"] + numbers["failed"]
            sample.info = {"requests": int(complete), "errors": int(bad),
                           "keepalive": int(numbers["keepalive"])}
            if bad:
                sample.info["warning"] = f"{target.label} {key}: {int(bad)} failed or non-2xx responses"
            elif numbers["keepalive"] < 0.9 * complete:
                sample.info["warning"] = (f"{target.label} {key}: only {int(numbers['keepalive'])} "
                                          f"of {int(complete)} requests on kept-alive connections")
            samples[key] = sample
        return samples


# -- 5. tags/list ----------------------------------------------------------------------------


_LINK = re.compile(r"<([^>]+)>")


class Tags(Scenario):
    name = "tags"
    title = "tags/list of 1,000 tags"
    metrics = [
        Metric("tags.full", "tags/list, 1,000 tags, full", "ms p50", False, 1.0,
               "p50 ≤ ref", "CPU-ms/req"),
        Metric("tags.page", "tags/list, n=100 pages", "ms p50", False, 1.0,
               "p50 ≤ ref, paginated", "CPU-ms/req"),
    ]

    def __init__(self, bench) -> None:  # type: ignore[no-untyped-def]
        super().__init__(bench)
        self.image = wl.small_image("tags")
        self.pagination: dict[str, bool] = {}

    def setup(self, target: Target) -> None:
        target.ensure_repository("bench/tags")
        with target.connection() as connection:
            wl.push_blobs_of(connection, "bench/tags", self.image)
        connections = [target.connection() for _ in range(8)]
        tags = [f"t{i:04d}" for i in range(1000)]
        try:
            run_threads(8, lambda t: [wl.put_manifest(connections[t], "bench/tags", self.image, tag)
                                      for tag in tags[t::8]])
        finally:
            for connection in connections:
                connection.close()
        with target.connection() as connection:
            response = wl.expect(connection.request("GET", "/v2/bench/tags/tags/list"), 200,
                                 what="tags/list")
        import json
        listed = json.loads(response.body)["tags"]
        if len(listed) != 1000:
            raise BenchError(f"{target.label} lists {len(listed)} tags, not 1000")

    def run_once(self, target: Target, run: int) -> dict[str, Sample]:
        import json
        reps = self.scale["tags_reps"]
        samples = {}
        with target.connection() as connection:
            connection.request("GET", "/v2/")
            latencies = []
            cpu0 = target.cpu()
            for _ in range(reps):
                start = time.perf_counter()
                wl.expect(connection.request("GET", "/v2/bench/tags/tags/list"), 200, what="tags")
                latencies.append(time.perf_counter() - start)
            cpu = target.cpu() - cpu0
            samples["tags.full"] = Sample(percentile(latencies, 0.5) * 1000, cpu / reps * 1000)

            latencies, requests, honoured = [], 0, True
            cpu0 = target.cpu()
            while requests < reps:
                path, seen, first = "/v2/bench/tags/tags/list?n=100", [], True
                while path:
                    start = time.perf_counter()
                    response = wl.expect(connection.request("GET", path), 200, what="tags page")
                    latencies.append(time.perf_counter() - start)
                    requests += 1
                    page = json.loads(response.body).get("tags") or []
                    if first and (len(page) > 100 or "link" not in response.headers):
                        honoured = False
                    first = False
                    seen += page
                    link = _LINK.search(response.headers.get("link", ""))
                    path = link.group(1) if link else None
                    if path and path.startswith("http"):
                        path = "/" + path.split("/", 3)[3]
                if len(seen) != 1000 or len(set(seen)) != 1000:
                    honoured = False
            cpu = target.cpu() - cpu0
            self.pagination[target.kind] = honoured and self.pagination.get(target.kind, True)
            samples["tags.page"] = Sample(percentile(latencies, 0.5) * 1000, cpu / requests * 1000,
                                          {"paginated": honoured})
        return samples


# -- 6. ECR API vs moto ----------------------------------------------------------------------


class Ecr(Scenario):
    name = "ecr"
    title = "ECR API (SigV4-signed AWS JSON 1.1) vs moto server mode"
    reference = "moto"
    metrics = [
        Metric("ecr.put_image", "ECR PutImage, 1 client", "img/s", True, 2.0, "≥ 2× moto",
               "CPU-ms/req"),
        Metric("ecr.describe_images", "ECR DescribeImages, 1,000 images (100/page)", "ms", False,
               2.0, "≥ 2× moto", "CPU-ms/listing"),
        Metric("ecr.list_images", "ECR ListImages, 1,000 images (100/page)", "ms", False, 2.0,
               "≥ 2× moto", "CPU-ms/listing"),
        Metric("ecr.batch_get_image", "ECR BatchGetImage of 100", "ms", False, 2.0, "≥ 2× moto",
               "CPU-ms/req"),
        Metric("ecr.batch_delete_image", "ECR BatchDeleteImage of 100", "ms", False, 2.0,
               "≥ 2× moto", "CPU-ms/req"),
    ]

    def __init__(self, bench) -> None:  # type: ignore[no-untyped-def]
        super().__init__(bench)
        self.base = wl.small_image("ecr", layer_sizes=(4096,), oci=True)
        self.clients: dict[str, Any] = {}
        self.pages: dict[str, int] = {}

    def manifest(self, seq: str) -> str:
        import json
        document = json.loads(self.base.manifest)
        document["annotations"] = {"org.example.bench": seq}
        return json.dumps(document, indent=2)

    def prepare_repository(self, target: Target, name: str) -> None:
        target.ensure_repository(name)
        if target.kind == "moorage":
            with target.connection() as connection:
                wl.push_blobs_of(connection, name, self.base)

    def put(self, client: EcrClient, repository: str, seq: str, tag: str) -> None:
        client.call("PutImage", {"repositoryName": repository, "imageManifest": self.manifest(seq),
                                 "imageManifestMediaType": wl.OCI_MANIFEST, "imageTag": tag})

    def setup(self, target: Target) -> None:
        self.clients[target.kind] = target.ecr_client()
        self.prepare_repository(target, "bench/ecr-list")
        clients = [target.ecr_client() for _ in range(8)]
        run_threads(8, lambda t: [self.put(clients[t], "bench/ecr-list", f"list-{i}", f"i{i:04d}")
                                  for i in range(t, 1000, 8)])
        for client in clients:
            client.close()

    def _walk(self, client: EcrClient, operation: str) -> int:
        pages, items, token = 0, 0, None
        operation_name, key = {"describe": ("DescribeImages", "imageDetails"),
                               "list": ("ListImages", "imageIds")}[operation]
        while True:
            params: dict[str, Any] = {"repositoryName": "bench/ecr-list", "maxResults": 100}
            if token:
                params["nextToken"] = token
            response = client.call(operation_name, params)
            items += len(response[key])
            pages += 1
            token = response.get("nextToken")
            if not token:
                break
        if items != 1000:
            raise BenchError(f"{operation} listed {items} images, not 1000")
        return pages

    def run_once(self, target: Target, run: int) -> dict[str, Sample]:
        client = self.clients[target.kind]
        samples = {}
        count = self.scale["ecr_puts"]
        repository = f"bench/ecr-put-{run}"
        self.prepare_repository(target, repository)
        manifests = [(self.manifest(f"put-{run}-{i}"), f"p{i:04d}") for i in range(count)]

        def puts() -> None:
            for manifest, tag in manifests:
                client.call("PutImage", {"repositoryName": repository, "imageManifest": manifest,
                                         "imageManifestMediaType": wl.OCI_MANIFEST,
                                         "imageTag": tag})

        m = measure(target, puts)
        samples["ecr.put_image"] = Sample(count / m.wall, m.cpu / count * 1000)

        reps = self.scale["ecr_reps"]
        for key, operation in (("ecr.describe_images", "describe"), ("ecr.list_images", "list")):
            walls, cpus = [], []
            for _ in range(reps):
                m = measure(target, lambda: self._walk(client, operation))
                walls.append(m.wall)
                cpus.append(m.cpu)
                self.pages[f"{target.kind}.{operation}"] = m.result
            samples[key] = Sample(statistics.median(walls) * 1000, sum(cpus) / len(cpus) * 1000,
                                  {"pages": m.result})

        rng = random.Random(run)
        walls, cpus = [], []
        for _ in range(reps):
            ids = [{"imageTag": f"i{i:04d}"} for i in rng.sample(range(1000), 100)]
            m = measure(target, lambda: client.call("BatchGetImage", {
                "repositoryName": "bench/ecr-list", "imageIds": ids}))
            if len(m.result["images"]) != 100:
                raise BenchError(f"BatchGetImage returned {len(m.result['images'])} images")
            walls.append(m.wall)
            cpus.append(m.cpu)
        samples["ecr.batch_get_image"] = Sample(statistics.median(walls) * 1000,
                                                sum(cpus) / len(cpus) * 1000)

        walls, cpus = [], []
        for start in range(0, count - 99, 100):
            ids = [{"imageTag": tag} for _, tag in manifests[start:start + 100]]
            m = measure(target, lambda: client.call("BatchDeleteImage", {
                "repositoryName": repository, "imageIds": ids}))
            if m.result.get("failures"):
                raise BenchError(f"BatchDeleteImage failures: {m.result['failures'][:2]}")
            if len(m.result.get("imageIds", [])) != 100:
                raise BenchError(f"BatchDeleteImage deleted {len(m.result.get('imageIds', []))}")
            walls.append(m.wall)
            cpus.append(m.cpu)
        samples["ecr.batch_delete_image"] = Sample(statistics.median(walls) * 1000,
                                                   sum(cpus) / len(cpus) * 1000)
        return samples


# -- 7. memory -------------------------------------------------------------------------------


class RssSampler:
    """Samples the process tree's RSS every 20 ms in a thread; ``peak`` in KiB."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib(self.pid))


class Memory(Scenario):
    name = "memory"
    title = "server memory during a 1 GiB push and a 1 GiB pull"
    once = True
    metrics = [
        Metric("memory.push", "RSS growth, 1 GiB streamed push", "MiB", False, None, "< 64 MiB",
               "CPU-s/GB"),
        Metric("memory.pull", "RSS growth, 1 GiB pull", "MiB", False, None, "< 64 MiB",
               "CPU-s/GB"),
    ]
    LIMIT_MIB = 64

    def __init__(self, bench) -> None:  # type: ignore[no-untyped-def]
        super().__init__(bench)
        self.block = bytearray(os.urandom(8 * MiB))
        self.blocks = self.scale["memory_mib"] // 8

    def frames(self, salt: int) -> Iterator[memoryview]:
        block, view = self.block, memoryview(self.block)
        for index in range(self.blocks):
            block[:16] = struct.pack(">QQ", salt, index)
            for start in range(0, len(block), wl.STREAM_FRAME):
                yield view[start:start + wl.STREAM_FRAME]

    def setup(self, target: Target) -> None:
        target.ensure_repository("bench/memory")

    def _growth(self, target: Target, fn: Callable[[], Any]) -> tuple[float, Measured, str]:
        time.sleep(0.5)
        rss0 = rss_kib(target.pid)
        exact = reset_hwm(target.pid)
        with RssSampler(target.pid) as sampler:
            m = measure(target, fn)
        peak = max(sampler.peak, hwm_kib(target.pid) if exact else 0)
        how = "VmHWM (reset with clear_refs) and 20 ms RSS samples" if exact else "20 ms RSS samples"
        return (peak - rss0) / 1024, m, how

    def run_once(self, target: Target, run: int) -> dict[str, Sample]:
        import hashlib
        salt = random.getrandbits(63)
        hasher = hashlib.sha256()
        for frame in self.frames(salt):
            hasher.update(frame)
        digest = "sha256:" + hasher.hexdigest()
        size = self.blocks * 8 * MiB
        samples = {}
        os.sync()
        with target.connection(timeout=600) as connection:
            connection.request("GET", "/v2/")
            growth, m, how = self._growth(
                target, lambda: wl.push_stream(connection, "bench/memory", self.frames(salt), digest))
            samples["memory.push"] = Sample(growth, m.cpu / size * GB,
                                            {"MB/s": size / m.wall / 1e6, "method": how})
            growth, m, how = self._growth(
                target, lambda: wl.pull_blob(connection, "bench/memory", digest))
            samples["memory.pull"] = Sample(growth, m.cpu / size * GB,
                                            {"MB/s": size / m.wall / 1e6, "method": how})
        return samples


SCENARIOS: list[type[Scenario]] = [Push, Pull, SmallPush, Hot, Tags, Ecr, Memory]
