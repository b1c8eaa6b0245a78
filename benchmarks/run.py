"""Moorage vs CNCF Distribution (and vs moto for the ECR API), side by side on this machine.

    .venv/bin/python -m benchmarks.run [--quick] [--runs N] [--only SCENARIO[,SCENARIO...]]

See benchmarks/README.md. Starts the servers itself, in a temporary directory, on free ports on
127.0.0.1, and stops them at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import scenarios as sc
from benchmarks.servers import (Target, distribution_binary, file_create_cost, make_root,
                                start_distribution, start_moorage, start_moto)
from benchmarks.workload import Blob, MiB

# Above this many CPU-µs to create a file in the working directory, the harness warns.
SLOW_FILE_CREATE_US = 300

SCALES = {
    "full": {"runs": 6, "hot_runs": 4, "blob_mib": 128, "pull_reps": 4, "pull8_reps": 1, "small_images": 60,
             "small_images8": 12, "ab_seconds": 10, "tags_reps": 40, "ecr_puts": 500,
             "ecr_reps": 5, "memory_mib": 1024},
    "quick": {"runs": 2, "hot_runs": 2, "blob_mib": 128, "pull_reps": 2, "pull8_reps": 1, "small_images": 30,
              "small_images8": 6, "ab_seconds": 3, "tags_reps": 20, "ecr_puts": 100,
              "ecr_reps": 2, "memory_mib": 1024},
}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scale = dict(SCALES["quick" if args.quick else "full"])
        if args.runs:
            self.scale["runs"] = self.scale["hot_runs"] = args.runs
        self.started = time.monotonic()
        self.blob: Blob | None = None
        self.targets: dict[str, Target] = {}
        self.results: dict[str, dict[str, list[sc.Sample]]] = {}
        self.metrics: dict[str, sc.Metric] = {}
        self.references: dict[str, str] = {}
        self.notes: list[str] = []
        self.pagination: dict[str, bool] = {}

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)


# -- formatting ----------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    if value is None or value != value:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def spread(values: list[float]) -> str:
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def speed_ratio(metric: sc.Metric, moorage: float, reference: float) -> float:
    """Moorage's speed relative to the reference: > 1 means Moorage is faster."""
    if metric.higher_is_better:
        return moorage / reference if reference else float("nan")
    return reference / moorage if moorage else float("nan")


# -- measurements ----------------------------------------------------------------------------------


def run_scenario(bench: Bench, scenario: sc.Scenario) -> None:
    kinds = ["moorage", scenario.reference]
    targets = [bench.targets[kind] for kind in kinds]
    for metric in scenario.metrics:
        bench.metrics[metric.key] = metric
        bench.references[metric.key] = scenario.reference
        bench.results[metric.key] = {kind: [] for kind in kinds}
    bench.log(f"== {scenario.title}: setup")
    for target in targets:
        scenario.setup(target)
    runs = 1 if scenario.once else bench.scale[scenario.runs_key]
    for run in range(runs):
        order = targets if run % 2 == 0 else list(reversed(targets))
        for target in order:
            samples = scenario.run_once(target, run)
            for key, sample in samples.items():
                bench.results[key][target.kind].append(sample)
            shown = ", ".join(f"{key.split('.', 1)[1]} {fmt(s.value)} {bench.metrics[key].unit}"
                              for key, s in samples.items())
            bench.log(f"   run {run + 1}/{runs} {target.label:12s} {shown}")
    if isinstance(scenario, sc.Tags):
        bench.pagination.update(scenario.pagination)
    print_scenario(bench, scenario)


def print_scenario(bench: Bench, scenario: sc.Scenario) -> None:
    reference = scenario.reference
    ref_label = bench.targets[reference].label
    print()
    print(f"  {scenario.title}")
    for metric in scenario.metrics:
        data = bench.results[metric.key]
        mine, ref = data["moorage"], data[reference]
        if not mine or not ref:
            continue
        line = (f"    {metric.title:44s} Moorage {spread([s.value for s in mine])} {metric.unit}"
                f", {cost_text(mine, metric)} | {ref_label} {spread([s.value for s in ref])}"
                f" {metric.unit}, {cost_text(ref, metric)}")
        if metric.goal is not None:
            ratios = [speed_ratio(metric, a.value, b.value) for a, b in zip(mine, ref)]
            line += f" | same-run ratio {spread(ratios)}×"
        print(line)
        for sample in mine + ref:
            if "warning" in sample.info:
                print(f"      warning: {sample.info['warning']}")
    if isinstance(scenario, sc.Tags):
        for kind, honoured in scenario.pagination.items():
            print(f"    pagination (n=100) honoured by {bench.targets[kind].label}: "
                  f"{'yes' if honoured else 'no (the whole list in one page)'}")
    if isinstance(scenario, sc.Pull):
        for key in ("pull.1", "pull.8"):
            for kind in ("moorage", "distribution"):
                shares = [s.info["of_loopback"] for s in bench.results[key][kind]
                          if "of_loopback" in s.info]
                limits = [s.info["loopback_MBps"] for s in bench.results[key][kind]
                          if "loopback_MBps" in s.info]
                if shares:
                    print(f"    {bench.targets[kind].label} {key}: {statistics.median(shares):.0%} "
                          f"({min(shares):.0%}–{max(shares):.0%}) of the loopback limit measured "
                          f"right after each run (one TCP stream, median {fmt(statistics.median(limits))} MB/s)")
    if isinstance(scenario, sc.Ecr):
        for key, pages in scenario.pages.items():
            print(f"    pages per 1,000-image walk ({key}): {pages}")
    if isinstance(scenario, sc.Memory):
        for kind, samples in bench.results["memory.push"].items():
            if samples:
                print(f"    {bench.targets[kind].label}: measured with {samples[0].info['method']}; "
                      f"push {fmt(samples[0].info['MB/s'])} MB/s, pull "
                      f"{fmt(bench.results['memory.pull'][kind][0].info['MB/s'])} MB/s")
    print()


def cost_text(samples: list[sc.Sample], metric: sc.Metric) -> str:
    costs = [s.cost for s in samples if s.cost is not None]
    return f"{fmt(statistics.median(costs))} {metric.cost_unit}" if costs else ""


def final_table(bench: Bench) -> list[dict[str, Any]]:
    rows = []
    for key, metric in bench.metrics.items():
        reference = bench.references[key]
        mine = bench.results[key].get("moorage") or []
        ref = bench.results[key].get(reference) or []
        if not mine:
            continue
        row: dict[str, Any] = {
            "key": key, "scenario": metric.title, "unit": metric.unit,
            "reference": bench.targets[reference].label,
            "moorage": statistics.median(s.value for s in mine),
            "moorage_cost": statistics.median(s.cost for s in mine if s.cost is not None)
            if any(s.cost is not None for s in mine) else None,
            "reference_value": statistics.median(s.value for s in ref) if ref else None,
            "reference_cost": statistics.median(s.cost for s in ref if s.cost is not None)
            if any(s.cost is not None for s in ref) else None,
            "cost_unit": metric.cost_unit, "goal": metric.goal_text,
            "runs": len(mine),
        }
        if metric.goal is not None and ref:
            ratios = [speed_ratio(metric, a.value, b.value) for a, b in zip(mine, ref)]
            row["ratio"] = statistics.median(ratios)
            row["ratio_min"], row["ratio_max"] = min(ratios), max(ratios)
            met = row["ratio"] >= metric.goal
            if key == "tags.page":
                met = met and bench.pagination.get("moorage", False)
            row["met"] = met
        elif key.startswith("memory."):
            row["met"] = row["moorage"] < sc.Memory.LIMIT_MIB
        rows.append(row)
    return rows


def print_final(bench: Bench, rows: list[dict[str, Any]]) -> None:
    print("=" * 118)
    print("Summary: same-run median ratio = Moorage speed / reference speed "
          "(for latencies: reference p50 / Moorage p50), > 1 means Moorage is faster.")
    print("Moorage runs with auth on (Basic AWS:<token> on /v2/, SigV4 on the ECR API); "
          "Distribution and moto run without auth.")
    print()
    header = (f"{'scenario':46s} {'Moorage':>10s} {'reference':>22s} {'unit':>7s} "
              f"{'ratio (min–max)':>20s} {'goal':>20s}  met")
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = (f"{fmt(row['ratio'])}× ({fmt(row['ratio_min'])}–{fmt(row['ratio_max'])})"
                 if "ratio" in row else "")
        ref = (f"{row['reference']} {fmt(row['reference_value'])}"
               if row["reference_value"] is not None else "")
        met = {True: "yes", False: "NO", None: ""}[row.get("met")]
        print(f"{row['scenario']:46s} {fmt(row['moorage']):>10s} {ref:>22s} {row['unit']:>7s} "
              f"{ratio:>20s} {row['goal']:>20s}  {met}")
    print()
    print(f"{'server CPU cost':46s} {'Moorage':>14s} {'reference':>14s}")
    for row in rows:
        if row["moorage_cost"] is None:
            continue
        print(f"{row['scenario']:46s} {fmt(row['moorage_cost']):>14s} "
              f"{fmt(row['reference_cost']):>14s}  {row['cost_unit']}")
    if bench.pagination:
        print()
        for kind, honoured in bench.pagination.items():
            print(f"tags/list n=100 honoured by {bench.targets[kind].label}: {'yes' if honoured else 'no'}")
    missed = [row["scenario"] for row in rows if row.get("met") is False]
    print()
    print(f"goals met: {sum(1 for r in rows if r.get('met'))} of "
          f"{sum(1 for r in rows if 'met' in r)}" + (f"; below goal: {', '.join(missed)}" if missed else ""))


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version(), "moorage_source": source_version()}


def source_version() -> str:
    """The checkout's commit, and whether ``src/`` has uncommitted changes (read-only git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + (" + uncommitted changes in src/" if dirty else "")


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [cls.name for cls in sc.SCENARIOS]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer runs and shorter loads (~2–3 min)")
    parser.add_argument("--runs", type=int, help="runs per scenario (default 6, and 4 for the ab load; quick 2)")
    parser.add_argument("--only", help=f"comma-separated scenarios: {','.join(names)}")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--root", type=Path, help="where to make the servers' working directory "
                        "(default: $TMPDIR or /tmp)")
    parser.add_argument("--moorage-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the Moorage server (repeatable)")
    parser.add_argument("--moorage-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for `moorage serve` (repeatable)")
    args = parser.parse_args(argv)
    selected = names if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(selected) - set(names)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(names)}")
    args.selected = selected
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    info = machine()
    print(f"machine: {info['nproc']} CPUs, {info['cpu_model']}, Linux {info['kernel']}, "
          f"Python {info['python']}; Moorage {info['moorage_source']}; mode {'quick' if args.quick else 'full'}, "
          f"{bench.scale['runs']} runs ({bench.scale['hot_runs']} for ab), scenarios {','.join(args.selected)}")
    if distribution_binary() is None:
        print("CNCF Distribution is missing: install it with `apt-get install docker-registry` "
              "(Debian package, version 2.8.x)", file=sys.stderr)
        return 2
    if "hot" in args.selected and shutil.which("ab") is None:
        print("ab is missing: install it with `apt-get install apache2-utils`", file=sys.stderr)
        return 2
    root = make_root(args.root)
    info["file_create_us"] = round(file_create_cost(root), 1)
    bench.log(f"working directory {root}; creating a file there costs {info['file_create_us']} "
              "CPU-µs")
    if info["file_create_us"] > SLOW_FILE_CREATE_US:
        bench.log(f"warning: creating files in {root.parent} is slow on this machine; every push "
                  "pays it (try --root on another directory)")
    extra_env = dict(item.split("=", 1) for item in args.moorage_env)
    status = 0
    try:
        bench.targets["moorage"] = start_moorage(root, extra_env, args.moorage_arg)
        bench.targets["distribution"] = start_distribution(root)
        if "ecr" in args.selected:
            bench.targets["moto"] = start_moto(root)
        for target in bench.targets.values():
            bench.log(f"{target.label} pid {target.pid} on {target.url} "
                      f"({'auth on' if target.auth_header else 'no auth'}"
                      f"{', ' + target.extra['version'] if 'version' in target.extra else ''})")
        if {"push", "pull", "memory"} & set(args.selected):
            bench.blob = Blob(bench.scale["blob_mib"] * MiB)
        for cls in sc.SCENARIOS:
            if cls.name in args.selected:
                scenario = cls(bench)
                try:
                    run_scenario(bench, scenario)
                except Exception:
                    status = 1
                    bench.log(f"scenario {cls.name} failed:\n{traceback.format_exc()}")
                    for target in bench.targets.values():
                        if target.process.poll() is not None:
                            raise RuntimeError(f"{target.label} died; log:\n"
                                               f"{target.log_path.read_text()[-3000:]}")
        rows = final_table(bench)
        print_final(bench, rows)
        if args.json:
            args.json.write_text(json.dumps({
                "machine": info, "scale": bench.scale,
                "pagination": bench.pagination, "rows": rows,
                "samples": {key: {kind: [{"value": s.value, "cost": s.cost, "info": s.info}
                                         for s in samples] for kind, samples in data.items()}
                            for key, data in bench.results.items()},
            }, indent=2, default=str))
            bench.log(f"results written to {args.json}")
    except KeyboardInterrupt:
        status = 130
    finally:
        for target in bench.targets.values():
            target.stop()
        if args.keep:
            bench.log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        bench.log("servers stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
