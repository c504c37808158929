"""``python -m dast``: black-box scans of the demo (or your app) with sqlmap and Wapiti.

By default it scans the demo twice, without the guard (``bare``: the app's own queries must
hold) and through it (``guarded``: ``asgi-guard demo``, whose answers must stay clean 4xx while
its rate limits and validation engage), and writes every report under ``--out``. The exit
status is 1 on any finding, any 5xx answer, or a scan that tested nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from .openapi import operations
from .runner import Job, Result, Target, dev_token, fetch_document, run_job
from .scanners import CI, FULL

_MARKER = ".dast-reports"
PROFILES = {"ci": CI, "full": FULL}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dast", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="ci")
    parser.add_argument(
        "--targets", default="bare,guarded", help="comma-separated: bare, guarded, vulnerable"
    )
    parser.add_argument("--scanners", default="sqlmap,wapiti", help="comma-separated")
    parser.add_argument(
        "--operations", default="", help='only these operations, e.g. "GET /products"'
    )
    parser.add_argument("--app", metavar="MODULE:APP", help="scan your app, served by asgi-guard")
    parser.add_argument("--config", help="the guard config of --app (a TOML file)")
    parser.add_argument(
        "--token", default=os.environ.get("DAST_TOKEN", ""), help="a valid bearer token"
    )
    parser.add_argument(
        "--header", action="append", default=[], help='sent with every request: "Name: value"'
    )
    parser.add_argument("--openapi", default="/openapi.json", help="the app's document path")

    parser.add_argument("--out", default="dast-reports", help="the reports folder (replaced)")
    parser.add_argument("--jobs", type=int, default=2, help="scans run at once")
    return parser


def _targets(args: argparse.Namespace) -> list[Target]:
    if args.app:
        if not args.config:
            raise SystemExit("--app needs --config")
        headers = tuple(args.header)
        return [Target("app", "app", args.app, args.config, args.token, headers, args.openapi)]
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = set(names) - {"bare", "guarded", "vulnerable"}
    if unknown:
        raise SystemExit(f"unknown target(s): {', '.join(sorted(unknown))}")
    # The demo without the guard checks no token; it gets one of the same shape all the same,
    # so both runs send the very same requests. The guarded demo's token comes from its banner.
    token = dev_token()
    return [
        Target(n, n, token="" if n == "guarded" else token, accept_browser_headers=n != "guarded")
        for n in names
    ]


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / _MARKER).exists():
        raise SystemExit(f"{out} is not empty and was not made by this runner: choose --out")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / _MARKER).write_text("made by python -m dast; replaced by each run\n")


def _plan(targets: list[Target], args: argparse.Namespace, out: Path) -> list[Job]:
    scanners = [s.strip() for s in args.scanners.split(",") if s.strip()]
    only = {o.strip() for o in args.operations.split(",") if o.strip()}
    jobs = []
    for target in targets:
        document = fetch_document(target, out / target.name / "document")
        (out / target.name / "openapi.json").write_text(json.dumps(document, indent=1))
        chosen = [o for o in operations(document) if o.parameters and (not only or o.label in only)]
        if "sqlmap" in scanners:
            jobs += [Job(target, "sqlmap", operation) for operation in chosen]
        if "wapiti" in scanners:
            jobs.append(Job(target, "wapiti"))
    # The longest first: sqlmap through the guard runs to its time limit.
    return sorted(jobs, key=lambda j: (j.target.kind not in ("guarded", "app"), j.scanner))


def _target_checks(results: list[Result], targets: list[Target]) -> dict[str, list[str]]:
    """For the guarded demo: its rate limits and its validation must have answered probes."""
    checks: dict[str, list[str]] = {}
    for target in targets:
        if target.kind != "guarded":
            continue
        codes: Counter[str] = Counter()
        for result in results:
            if result.target == target.name:
                codes.update(result.codes)
        failures = []
        if not codes["ratelimit.exceeded"]:
            failures.append("the rate limits never engaged")
        if not sum(n for code, n in codes.items() if code.startswith("validation.")):
            failures.append("validation never engaged")
        checks[target.name] = failures
    return checks


def _table(results: list[Result]) -> str:
    head = f"{'target':9} {'scanner':7} {'operation':16} {'s':>5} {'requests':>8} {'reached':>7} {'2xx':>5} {'4xx':>5} {'5xx':>4} {'429':>5} {'422':>5}  verdict"
    lines = [head, "-" * len(head)]
    for r in results:

        def count(low: int, high: int, r: Result = r) -> int:
            return sum(n for s, n in r.statuses.items() if low <= s < high)

        verdict = "FAIL: " + "; ".join(r.failures) if r.failures else "ok"
        lines.append(
            f"{r.target:9} {r.scanner:7} {r.operation:16} {r.seconds:5.0f} {r.requests:8} "
            f"{r.reached:7} {count(200, 300):5} {count(400, 500):5} {count(500, 600):4} "
            f"{r.statuses.get(429, 0):5} {r.statuses.get(422, 0):5}  {verdict}"
        )
        lines += [f"    {f}" for f in r.findings]
        lines += [f"    {a}" for a in r.accepted]
        lines += [f"    note: {n}" for n in r.notes]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Plan, run and judge the scans; 0 when every scan is clean."""
    args = _parser().parse_args(argv)
    profile = PROFILES[args.profile]
    out = Path(args.out)
    _prepare(out)
    started = time.monotonic()
    targets = _targets(args)
    jobs = _plan(targets, args, out)
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        results = list(pool.map(lambda job: run_job(job, out, profile), jobs))
    checks = _target_checks(results, targets)
    failed = any(r.failures for r in results) or any(checks.values()) or not results
    seconds = round(time.monotonic() - started, 1)
    summary = {
        "profile": profile.name,
        "seconds": seconds,
        "passed": not failed,
        "targets": checks,
        "scans": [{**asdict(r), "requests": r.requests} for r in results],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    text = _table(results)
    for name, failures in checks.items():
        text += f"\n{name}: " + (
            "; ".join(failures) if failures else "rate limits and validation engaged"
        )
    text += f"\n{'FAILED' if failed else 'passed'}: {len(results)} scan(s) in {seconds} s, reports in {out}/"
    (out / "summary.txt").write_text(text + "\n")
    print(text, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
