"""Markdown tables of one or more ``benchmarks.run --json`` results, side by side.

    .venv/bin/python -m benchmarks.report RUN.json [RUN2.json …] [--names W,X,…]

One row per scenario: Moorage's and the reference's median, the same-run ratio (median and
min–max) and whether the goal was met, for each run; then the server CPU cost per run. Used to
write ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def _ratio(row: dict) -> str:
    if row.get("ratio") is None:
        return "–"
    return f"{row['ratio']:.2f}× ({row['ratio_min']:.2f}–{row['ratio_max']:.2f})"


def main(paths: list[str], names: list[str] | None = None) -> None:
    """Print the tables for the runs in ``paths``, labelled ``names`` (default A, B, …)."""
    runs = [json.load(open(path)) for path in paths]
    if not names:
        names = [chr(ord("A") + index) for index in range(len(runs))]
    if len(names) != len(runs):
        raise SystemExit(f"{len(names)} names for {len(runs)} runs")
    header = "| scenario | goal |" + "".join(
        f" run {n}: Moorage | reference | ratio (min–max) | met |" for n in names)
    print(header)
    print("|---|---|" + "---|---|---|---|" * len(runs))
    for index, row in enumerate(runs[0]["rows"]):
        cells = [row["scenario"] + f" ({row['unit']})", row["goal"]]
        for run in runs:
            other = run["rows"][index]
            cells += [_number(other["moorage"]), f"{other['reference']} {_number(other['reference_value'])}",
                      _ratio(other), "yes" if other["met"] else "**no**"]
        print("| " + " | ".join(cells) + " |")
    print()
    print("| server CPU cost | unit |" + "".join(f" run {n}: Moorage | reference |" for n in names))
    print("|---|---|" + "---|---|" * len(runs))
    for index, row in enumerate(runs[0]["rows"]):
        cells = [row["scenario"], row.get("cost_unit") or "–"]
        for run in runs:
            other = run["rows"][index]
            cells += [_number(other.get("moorage_cost")), _number(other.get("reference_cost"))]
        print("| " + " | ".join(cells) + " |")
    for name, run in zip(names, runs):
        machine = run["machine"]
        met = sum(1 for row in run["rows"] if row["met"])
        print(f"\nrun {name}: {met} of {len(run['rows'])} goals met; Moorage {machine['moorage_source']}, "
              f"{machine['nproc']} CPUs {machine['cpu_model']}, Linux {machine['kernel']}, "
              f"Python {machine['python']}; {run['scale']['runs']} runs per scenario")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="JSON files written by benchmarks.run --json")
    parser.add_argument("--names", type=lambda text: text.split(","), default=None,
                        help="comma-separated labels of the runs (default A, B, …)")
    arguments = parser.parse_args()
    main(arguments.runs, arguments.names)
