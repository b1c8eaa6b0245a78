"""Two versions of Moorage side by side on one large-push style: is a change faster?

    git worktree add /tmp/base HEAD~1          # the version to compare against
    .venv/bin/python -m benchmarks.compare --base-src /tmp/base/src streamed [--pushes 12]

Starts two Moorage servers (auth on, as ``benchmarks.run`` starts them): "base" runs the code
in ``--base-src`` (put first on its ``PYTHONPATH``), "new" the code installed in this virtual
environment. Then pushes one 128 MiB blob to each in turn, ``--pushes`` times, the order
reversed every other time, the page cache settled before each push as in the push scenario,
and prints each server's median rate (min–max) and CPU-s/GB and the median of the same-turn
ratios new/base. On the 2-CPU machines of docs/performance.md a change below about 5 % does
not show through the noise in 12 pushes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from benchmarks import workload as wl
from benchmarks.scenarios import settle_page_cache
from benchmarks.servers import make_root, start_moorage
from benchmarks.workload import Blob, MiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("monolithic", "streamed", "chunked"))
    parser.add_argument("--base-src", required=True, type=Path,
                        help="the src directory of the version to compare against")
    parser.add_argument("--pushes", type=int, default=12, help="pushes to each server")
    parser.add_argument("--workers", default="2", help="MOORAGE_WORKERS of both servers")
    parser.add_argument("--root", type=Path, default=None,
                        help="where to make the servers' working directory")
    args = parser.parse_args(argv)
    if not (args.base_src / "moorage" / "__init__.py").exists():
        parser.error(f"{args.base_src} holds no moorage package")

    root = make_root(args.root)
    environment = {"MOORAGE_WORKERS": args.workers}
    (root / "base").mkdir()
    (root / "new").mkdir()
    servers = {}
    try:
        servers["base"] = start_moorage(root / "base", {**environment,
                                                        "PYTHONPATH": str(args.base_src.resolve())})
        servers["new"] = start_moorage(root / "new", environment)
        blob = Blob(128 * MiB)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
        for target in servers.values():
            target.ensure_repository("bench/push")
        for turn in range(args.pushes):
            order = list(servers.items())
            for name, target in order if turn % 2 == 0 else reversed(order):
                digest = blob.fresh()
                settle_page_cache()
                with target.connection() as connection:
                    connection.request("GET", "/v2/")
                    cpu = target.cpu()
                    started = time.perf_counter()
                    wl.push_blob(connection, "bench/push", blob.data, digest, args.mode)
                    wall = time.perf_counter() - started
                    cpu = target.cpu() - cpu
                results[name].append((len(blob.data) / wall / 1e6, cpu / len(blob.data) * 1e9))
        for name, samples in results.items():
            rates = [rate for rate, _ in samples]
            costs = [cost for _, cost in samples]
            print(f"{name}: {statistics.median(rates):,.0f} MB/s ({min(rates):,.0f}–{max(rates):,.0f}),"
                  f" {statistics.median(costs):.2f} CPU-s/GB")
        ratios = [new[0] / base[0] for base, new in zip(results["base"], results["new"])]
        print(f"new/base, same turn: {statistics.median(ratios):.3f}× "
              f"({min(ratios):.2f}–{max(ratios):.2f}), {args.mode}, {args.pushes} pushes each")
    finally:
        for target in servers.values():
            target.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
