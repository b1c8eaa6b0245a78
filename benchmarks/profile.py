"""Profile Moorage under one scenario's load with py-spy and summarise where its time goes.

    .venv/bin/pip install py-spy
    .venv/bin/python -m benchmarks.profile SCENARIO [--seconds 20] [--out DIR] [--native]

Starts Moorage alone (as ``benchmarks.run`` does), runs the scenario's Moorage side in a loop
while ``py-spy record --subprocesses`` samples the server and its worker processes, then prints
the functions with the most samples (self and inclusive) and a breakdown by package. The raw
collapsed stacks (``SCENARIO.txt``, loadable in speedscope or inferno) and the summary are kept
in ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks import scenarios as sc
from benchmarks.run import SCALES
from benchmarks.servers import make_root, start_moorage
from benchmarks.workload import Blob, MiB

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")

PACKAGES = [
    ("moorage", "(moorage/"), ("sqlalchemy", "(sqlalchemy/"), ("sqlite3", "(sqlite3/"),
    ("starlette", "(starlette/"), ("granian", "(granian/"), ("uvicorn", "(uvicorn/"),
    ("anyio", "(anyio/"), ("botocore", "(botocore/"), ("structlog", "(structlog/"),
    ("prometheus_client", "(prometheus_client/"), ("json", "(json/"), ("hashlib", "(hashlib"),
    ("asyncio", "(asyncio/"), ("threading/queue", "(threading.py"), ("threading/queue", "(queue.py"),
    ("concurrent.futures", "(concurrent/"), ("logging", "(logging/"),
]

# Frames that only say how the process got to serving requests.
_PLUMBING = ("(<frozen runpy>", "(typer/", "(click/", "(multiprocessing/", "(granian/server/",
             "(moorage/cli.py", "(moorage/server.py", "(moorage/__main__.py")


class Bench:
    def __init__(self, scale: dict) -> None:
        self.scale = scale
        self.blob = Blob(scale["blob_mib"] * MiB)
        self.started = time.monotonic()

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)


def short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def package(frame: str) -> str:
    for name, marker in PACKAGES:
        if marker in frame:
            return name
    return "other"


def summarise(raw: Path, top: int = 25) -> str:
    self_counts: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        leaf = frames[-1]
        self_counts[short(leaf)] += n
        packages[package(leaf)] += n
        for name in {short(f) for f in frames if not any(m in f for m in _PLUMBING)}:
            inclusive[name] += n
    out = [f"{total} samples (Python stacks of threads not idle, server and worker processes; "
           "time in C/Rust is charged to the Python frame that called it)", "",
           "self time by package:"]
    for name, n in packages.most_common():
        out.append(f"  {n / total:6.1%}  {name}")
    out += ["", f"top {top} functions by self time:"]
    for name, n in self_counts.most_common(top):
        out.append(f"  {n / total:6.1%}  {name}")
    out += ["", f"top {top} Moorage functions by inclusive time:"]
    shown = 0
    for name, n in inclusive.most_common():
        if "(moorage/" not in name:
            continue
        out.append(f"  {n / total:6.1%}  {name}")
        shown += 1
        if shown == top:
            break
    out += ["", f"top {top} library functions by inclusive time:"]
    shown = 0
    for name, n in inclusive.most_common():
        if "(moorage/" in name:
            continue
        out.append(f"  {n / total:6.1%}  {name}")
        shown += 1
        if shown == top:
            break
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    names = {cls.name: cls for cls in sc.SCENARIOS}
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(names))
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=Path("/tmp/moorage-profile"))
    parser.add_argument("--native", action="store_true", help="include native frames")
    parser.add_argument("--moorage-env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("py-spy is missing: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    bench = Bench(dict(SCALES["quick"]))
    root = make_root()
    target = start_moorage(root, dict(item.split("=", 1) for item in args.moorage_env))
    try:
        bench.log(f"Moorage pid {target.pid} ({target.extra.get('version')})")
        scenario = names[args.scenario](bench)
        scenario.setup(target)
        raw = args.out / f"{args.scenario}.txt"
        common = ["--pid", str(target.pid), "--subprocesses", "--rate", str(args.rate),
                  "--duration", str(args.seconds), "--nonblocking"]
        if args.native:
            common.append("--native")
        spies = [subprocess.Popen([py_spy, "record", *common, "-f", "raw", "-o", str(raw)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)]
        done = threading.Event()

        def wait() -> None:
            for spy in spies:
                spy.wait()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        runs = 0
        while not done.is_set():
            samples = scenario.run_once(target, 100 + runs)
            runs += 1
            bench.log(f"run {runs}: " + ", ".join(f"{k} {sc_fmt(s.value)}" for k, s in samples.items()))
        for spy in spies:
            if spy.returncode:
                print(spy.stderr.read().decode()[-2000:], file=sys.stderr)
        summary = summarise(raw)
        (args.out / f"{args.scenario}.summary.txt").write_text(summary)
        print(summary)
        bench.log(f"raw stacks in {raw}; summary in {args.out / (args.scenario + '.summary.txt')}")
    finally:
        target.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def sc_fmt(value: float) -> str:
    return f"{value:.3g}"


if __name__ == "__main__":
    sys.exit(main())
