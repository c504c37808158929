"""The scans fail where they must: run by ``nox -s dast`` with sqlmap and Wapiti installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from dast.openapi import Operation
from dast.runner import Job, Target, dev_token, run_job
from dast.scanners import CI

ROOT = Path(__file__).resolve().parents[2]


def test_a_string_formatted_query_fails_both_scanners(tmp_path: Path) -> None:
    """sqlmap proves the injection of the vulnerable route; Wapiti reports its 500s; exit 1."""
    out = tmp_path / "reports"
    args = ["--targets", "vulnerable", "--operations", "GET /products", "--out", str(out)]
    done = subprocess.run(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-m", "dast", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is False
    by_scanner = {scan["scanner"]: scan for scan in summary["scans"]}
    assert sorted(by_scanner) == ["sqlmap", "wapiti"]
    sqlmap = by_scanner["sqlmap"]
    assert sqlmap["tested"] == ["limit", "q"]
    assert len(sqlmap["findings"]) == 1
    assert sqlmap["findings"][0].startswith(
        "sqlmap: GET parameter 'q': AND boolean-based blind - WHERE or HAVING clause"
    )
    assert "1 finding(s)" in sqlmap["failures"]
    assert any(f.startswith("the target answered ") for f in sqlmap["failures"])  # its 500s
    wapiti = by_scanner["wapiti"]
    assert (
        "wapiti sql: Internal Server Error: GET /products parameter 'q': The server responded "
        "with a 500 HTTP error code while attempting to inject a payload in the parameter q"
    ) in wapiti["findings"]
    assert "FAILED: 2 scan(s)" in done.stdout


def test_a_scan_that_never_gets_past_authentication_fails(tmp_path: Path) -> None:
    """Through the guard with a token of other keys, every probe is a 401: it tested nothing."""
    operation = Operation("GET", "/orders/{id}", path_params={"id": "1"})
    target = Target("guarded", "guarded", token=dev_token())  # signed by keys the demo lacks
    result = run_job(Job(target, "sqlmap", operation), tmp_path, replace(CI, guarded_time_limit=10))
    assert result.reached == 0
    assert result.requests > 0
    assert set(result.statuses) == {401}
    assert list(result.codes) == ["jwt.unknown_key"]
    assert (
        "no request got past authentication and rate limiting: the scan tested nothing"
        in result.failures
    )
