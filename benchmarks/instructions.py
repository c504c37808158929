"""``python -m benchmarks.instructions [--only GROUP ...] [--out DIR]``: instructions per request.

Timings drift with the machine by 10-15% between runs; instruction counts do not. Each case runs
under valgrind's callgrind with a fixed hash seed. Only its requests are counted, with the garbage
collector paused as in the timed runs: the counters are zeroed when the warmed-up case calls
``os.getppid()`` and written out when it calls ``os.getpgrp()`` after its requests, so
interpreter start-up, imports and the building of the case (random keys among them) stay out. It is not time (an instruction's cost varies), but the
same code counts the same on any run, so two versions of a layer, or a layer and its yardstick,
compare exactly. Needs valgrind (Debian: ``apt-get install -y valgrind``) and an interpreter
whose symbols name those two functions (``os_getppid``, ``os_getpgrp``), as CPython's builds do.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .groups import build_groups
from .harness import _runner

#: Requests counted, after the warm-up requests.
REQUESTS, WARM = 2000, 200
_SUMMARY = re.compile(r"^summary: (\d+)$", re.MULTILINE)


def collected(callgrind_dump: str) -> int:
    """The instruction count of a callgrind dump file."""
    found = _SUMMARY.search(callgrind_dump)
    if found is None:
        raise RuntimeError("no instruction count in the callgrind dump")
    return int(found.group(1))


def run_case(group: str, index: int, requests: int) -> None:
    """Drive one case ``requests`` times after the warm-up, between the two markers."""
    [built] = [g for g in build_groups([group]) if g.name == group]
    run = _runner(built.cases[index])

    async def main() -> None:
        await run(WARM)
        # As the timed harness does: the collector's passes depend on everything else alive in
        # the process, and would make a case's count move with unrelated code.
        gc.collect()
        gc.disable()
        os.getppid()  # callgrind zeroes its counters here...
        await run(requests)
        os.getpgrp()  # ...and writes them out here
        gc.enable()

    asyncio.run(main())


def per_request(group: str, index: int) -> int:
    """Instructions one request of the case executes."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--zero-before=os_getppid",
            "--dump-before=os_getpgrp",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--case",
            group,
            str(index),
            str(REQUESTS),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # dict layouts, and so counts, repeat
        subprocess.run(command, capture_output=True, env=env, check=True)
        dump = out.with_name(out.name + ".1")  # the dump made at the second marker
        if not dump.exists():
            raise RuntimeError("callgrind made no dump: does the interpreter have symbols?")
        return collected(dump.read_text()) // REQUESTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("--only", nargs="*", default=None, help="group name prefixes to count")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--case", nargs=3, metavar=("GROUP", "INDEX", "REQUESTS"), help="internal")
    args = parser.parse_args(argv)
    if args.case:
        group, index, requests = args.case
        run_case(group, int(index), int(requests))
        return 0
    if shutil.which("valgrind") is None:
        parser.error("valgrind is needed (Debian: apt-get install -y valgrind)")
    groups = build_groups(args.only)
    jobs = [(g.name, i) for g in groups for i in range(len(g.cases))]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: per_request(*job), jobs), strict=True))
    lines: list[str] = []
    for g in groups:
        base = counts[(g.name, 0)]
        lines += [
            "",
            f"### {g.name}",
            "",
            "| case | instructions/request | added | ratio |",
            "|---|---:|---:|---:|",
        ]
        for i, case in enumerate(g.cases):
            count = counts[(g.name, i)]
            lines.append(f"| {case.name} | {count:,} | {count - base:+,} | {count / base:.2f}x |")
    table = "\n".join(lines).lstrip() + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "instructions.md").write_text(table)
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
