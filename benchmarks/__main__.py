"""``python -m benchmarks [--quick] [--out DIR] [--only GROUP ...]``: run and write the report."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from .groups import build_groups
from .harness import Result, run_groups


def _markdown(results: list[Result]) -> str:
    lines: list[str] = []
    group = None
    for result in results:
        if result.group != group:
            group = result.group
            lines += [
                "",
                f"### {group}",
                "",
                "| case | median ns/req | IQR ns | overhead ns | ratio |",
                "|---|---:|---:|---:|---:|",
            ]
        lines.append(
            f"| {result.case} | {result.median_ns:,.0f} | {result.iqr_ns:,.0f} | "
            f"{result.overhead_ns:+,.0f} | {result.ratio:.2f}x |"
        )
    return "\n".join(lines).lstrip() + "\n"


def _chart(results: list[Result], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in results if r.group.startswith("layer:") and r.overhead_ns != 0]
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(rows) + 1.2))
    ax.barh(
        [f"{r.group[6:]}: {r.case}" for r in rows],
        [r.overhead_ns / 1000 for r in rows],
        color="#3b7dd8",
    )
    # Logarithmic: the peers cost 10-100x more, and would flatten the layers' bars to nothing.
    ax.set_xscale("log")
    ax.set_xlabel("µs added per request over a raw ASGI app (median, log scale)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="few rounds: checks the harness, not the numbers"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--only", nargs="*", default=None, help="group name prefixes to run")
    args = parser.parse_args(argv)
    rounds, iterations = (3, 200) if args.quick else (15, 4000)
    groups = build_groups(args.only)
    started = time.time()
    results = run_groups(groups, rounds, iterations)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rounds": rounds,
        "iterations": iterations,
        "quick": args.quick,
        "seconds": round(time.time() - started, 1),
    }
    doc = {
        "meta": meta,
        "results": [{k: v for k, v in vars(r).items() if k != "samples"} for r in results],
    }
    (args.out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    table = _markdown(results)
    (args.out / "results.md").write_text(table)
    _chart(results, args.out / "overhead.png")
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
