"""Start a target as a real process, point one scanner at it, and judge what happened.

A target is served on a free loopback port by its own process for each scan, so each scan meets
fresh rate limits and its answers are exactly the lines its process logged: the guard's access
log for the guarded demo or a user's app (``asgi-guard serve``), the shim's log for the demo
without the guard. A scan fails on any finding, any 5xx answer, or when no request of it got
past authentication and rate limiting (a scanner that tested nothing must not pass).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .openapi import Operation, operations
from .scanners import (
    Profile,
    sqlmap_command,
    sqlmap_findings,
    sqlmap_tested,
    traffic_statuses,
    wapiti_command,
    wapiti_findings,
)

__all__ = ["Job", "Result", "Target", "run_job"]

#: The layers that refuse before validation: a request they answer tested nothing in the app.
_GATE_CODES = ("https.", "proxy.", "ratelimit.", "jwt.")


@dataclass(frozen=True)
class Target:
    """How to serve one app: the demo without the guard, with it, or a user's app."""

    name: str
    #: ``bare``, ``vulnerable`` (served by :mod:`dast.targets`), ``guarded`` (``asgi-guard demo``)
    #: or ``app`` (``asgi-guard serve APP --config CONFIG``).
    kind: str
    app: str = ""
    config: str = ""
    token: str = ""
    headers: tuple[str, ...] = ()
    openapi: str = "/openapi.json"
    #: Whether the missing-header notes of :data:`~dast.scanners.ACCEPTED` pass: only for the
    #: demo without the guard, whose headers layer sets them.
    accept_browser_headers: bool = False

    def command(self, port: int) -> list[str]:
        """The command line that serves this target on ``port``."""
        python = [sys.executable, "-m"]
        if self.kind == "guarded":
            return [*python, "asgi_guard", "demo", "--port", str(port)]
        if self.kind == "app":
            serve = ["serve", self.app, "--config", self.config, "--port", str(port)]
            return [*python, "asgi_guard", *serve]
        return [*python, "dast.targets", self.kind, "--port", str(port)]


@dataclass(frozen=True)
class Job:
    """One scanner against one target (sqlmap: one operation; Wapiti: the whole document)."""

    target: Target
    scanner: str
    operation: Operation | None = None

    @property
    def slug(self) -> str:
        """A folder name for the job's reports."""
        name = self.operation.label if self.operation else "all"
        cleaned = "".join(c if c.isalnum() else "_" for c in name).strip("_")
        return f"{self.target.name}/{self.scanner}/{cleaned}"


@dataclass
class Result:
    """What one job did, and why it fails if it does."""

    target: str
    scanner: str
    operation: str
    seconds: float = 0.0
    #: Requests the target answered during the scan, by status and by the guard's code.
    statuses: dict[int, int] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)
    #: Requests that got past authentication and rate limiting (validated or answered by the app).
    reached: int = 0
    #: Requests the scanner itself logged (sqlmap's HAR), where it keeps such a log.
    sent: int | None = None
    tested: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        """Every request the target answered during the scan."""
        return sum(self.statuses.values())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (an http loopback URL)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def _post_json(url: str, body: Any, headers: dict[str, str], method: str) -> int:
    data = json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (an http loopback URL)
        url, data, {**headers, "Content-Type": "application/json"}, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _banner_token(text: str) -> str:
    """The token of the demo's banner that may write orders (its tokens expire in an hour)."""
    for line in text.splitlines():
        for word in line.replace("'", " ").split():
            if word.count(".") != 2 or not word.startswith("eyJ"):
                continue
            payload = word.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            if "orders:write" in claims.get("scope", "").split():
                return word
    raise RuntimeError("the demo printed no token with orders:write")


def dev_token() -> str:
    """A token shaped as the demo's, for targets that check none (the app without the guard)."""
    from asgi_guard.devkeys import generate_keys, mint_token

    return mint_token(generate_keys(), sub="alice", scopes=["orders:read", "orders:write"])


class Served:
    """A target's process on a free loopback port, its output in ``folder``; a context manager."""

    def __init__(self, target: Target, folder: Path) -> None:
        self.target = target
        self.folder = folder
        self.log = folder / "target.log"
        self.base = ""
        self.headers: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Served:
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # another process may take the port between probe and bind
            if self._start():
                return self
        self.__exit__()
        raise RuntimeError(f"{self.target.name} did not start: see {self.folder}")

    def _start(self) -> bool:
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("wb") as out, (self.folder / "target.err").open("wb") as err:
            command = self.target.command(port)
            self.proc = subprocess.Popen(command, stdout=out, stderr=err, env=env)  # noqa: S603
        headers = {"X-Forwarded-Proto": "https"} if self.target.kind == "guarded" else {}
        for header in self.target.headers:
            name, _, value = header.partition(":")
            headers[name.strip()] = value.strip()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, body = _get(self.base + self.target.openapi, headers)
            except OSError:
                time.sleep(0.1)
                continue
            if status == 200:
                self.document = json.loads(body)
                self._ready(headers)
                return True
            time.sleep(0.1)
        return False

    def _ready(self, headers: dict[str, str]) -> None:
        token = self.target.token
        if self.target.kind == "guarded" and not token:
            token = _banner_token(self.log.read_text(errors="replace"))
        self.headers = [f"{name}: {value.strip()}" for name, value in headers.items()]
        if token:
            self.headers.append(f"Authorization: Bearer {token}")
            headers = {**headers, "Authorization": f"Bearer {token}"}
        # One valid call of each writing operation, so reads have something to find (GET
        # /orders/1 answers 200, not 404, and a boolean payload has a difference to show).
        for operation in operations(self.document):
            if operation.body is not None and not operation.path_params:
                _post_json(operation.url(self.base), operation.body, headers, operation.method)
        self.offset = len(_records(self.log))

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def records(self) -> list[dict[str, Any]]:
        """The log records of the requests that came after the setup."""
        return _records(self.log)[self.offset :]


def _records(log: Path) -> list[dict[str, Any]]:
    records = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if isinstance(record, dict) and "status" in record:
                records.append(record)
    return records


def fetch_document(target: Target, folder: Path) -> dict[str, Any]:
    """The target's OpenAPI document, served by a process of its own."""
    with Served(target, folder) as served:
        document: dict[str, Any] = served.document
        return document


#: The PyPI package of each scanner.
_PACKAGES = {"sqlmap": "sqlmap", "wapiti": "wapiti3"}


def _scanner(name: str) -> str:
    """The scanner's executable: ``DAST_SQLMAP`` / ``DAST_WAPITI``, beside this interpreter (a
    nox venv), or on PATH. Wapiti pins old releases of libraries the guard needs newer: it
    lives in a venv of its own, named by ``DAST_WAPITI``."""
    found = (
        os.environ.get(f"DAST_{name.upper()}")
        or shutil.which(name, path=str(Path(sys.executable).parent))
        or shutil.which(name)
    )
    if found is None:
        raise RuntimeError(f"{name} is not installed: pip install {_PACKAGES[name]}")
    return found


def run_job(job: Job, out: Path, profile: Profile) -> Result:
    """Serve the target, run the scanner within its bounds, and judge the traffic."""
    folder = out / job.slug
    label = job.operation.label if job.operation else "every operation"
    result = Result(job.target.name, job.scanner, label)
    started = time.monotonic()
    try:
        with Served(job.target, folder) as served:
            _scan(job, served, folder, profile, result)
            served.__exit__()
            _judge_traffic(served.records(), result)
    except (RuntimeError, OSError, ValueError) as error:
        result.failures.append(str(error))
    result.seconds = round(time.monotonic() - started, 1)
    if result.findings:
        result.failures.append(f"{len(result.findings)} finding(s)")
    return result


def _scan(job: Job, served: Served, folder: Path, profile: Profile, result: Result) -> None:
    # Through a guard, rate limits make sqlmap back off: it runs within a time limit there.
    guarded = job.target.kind in ("guarded", "app")
    bounded = profile.guarded_time_limit if guarded else None
    if job.scanner == "sqlmap":
        assert job.operation is not None
        args = sqlmap_command(job.operation, served.base, served.headers, folder, profile, bounded)
        limit = (bounded or 600) + 120
    else:
        document = folder / "openapi.json"
        document.write_text(json.dumps(served.document))
        args = wapiti_command(served.base, document, served.headers, folder, profile)
        limit = profile.wapiti_scan_time + 120
    args[0] = _scanner(args[0])
    (folder / "command.txt").write_text(" ".join(args) + "\n")
    try:
        done = subprocess.run(  # noqa: S603 (the scanner's command line, built here)
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=limit, check=False
        )
    except subprocess.TimeoutExpired:
        result.failures.append(f"{job.scanner} ran past {limit} s and was stopped")
        return
    log = done.stdout.decode(errors="replace")
    (folder / "scanner.log").write_text(log)
    if done.returncode != 0:
        result.failures.append(f"{job.scanner} exited with {done.returncode}: see scanner.log")
    if job.scanner == "sqlmap":
        _judge_sqlmap(job, folder, log, bounded, result)
    else:
        _judge_wapiti(folder, log, job.target.accept_browser_headers, result)


def _judge_sqlmap(job: Job, folder: Path, log: str, bounded: int | None, result: Result) -> None:
    assert job.operation is not None
    result.tested = sqlmap_tested(log, job.operation)
    if (folder / "report.json").exists():
        result.findings += sqlmap_findings(json.loads((folder / "report.json").read_text()))
    else:
        result.failures.append("sqlmap wrote no report")
    if (folder / "traffic.txt").exists():
        statuses = traffic_statuses((folder / "traffic.txt").read_text(errors="replace"))
        result.sent = len(statuses)
        errors = sum(1 for s in statuses if s >= 500)
        if errors:
            result.failures.append(f"sqlmap saw {errors} answer(s) 5xx")
    missing = [p for p in job.operation.parameters if p not in result.tested]
    if missing and bounded is None:
        result.failures.append(f"sqlmap did not test: {', '.join(missing)}")
    elif not result.tested:
        # Through the guard, a route's rate limit can hold sqlmap within its time limit before
        # its first payload: the guard answered, the app behind it is scanned without it.
        result.notes.append("sqlmap's time limit came before its first payload")


def _judge_wapiti(folder: Path, log: str, accept: bool, result: Result) -> None:
    report_path = folder / "report.json"
    if not report_path.exists():
        result.failures.append("Wapiti wrote no report")
        return
    report = json.loads(report_path.read_text())
    findings, accepted = wapiti_findings(report)
    result.findings += findings
    if accept:
        result.accepted += accepted
    else:
        result.findings += [line.split(" (accepted: ")[0] for line in accepted]
    result.tested = re.findall(r"\[\*\] Launching module (\w+)", log)
    if not report.get("infos", {}).get("crawled_pages_nbr"):
        result.failures.append("Wapiti found no operation to attack")


def _judge_traffic(records: list[dict[str, Any]], result: Result) -> None:
    statuses = Counter(int(r["status"]) for r in records)
    codes = Counter(str(r["code"]) for r in records if r.get("code"))
    result.statuses = dict(sorted(statuses.items()))
    result.codes = dict(sorted(codes.items()))
    result.reached = sum(1 for r in records if not str(r.get("code") or "").startswith(_GATE_CODES))
    errors = sum(n for status, n in statuses.items() if status >= 500)
    if errors:
        result.failures.append(f"the target answered {errors} request(s) with a 5xx")
    if not result.reached:
        result.failures.append(
            "no request got past authentication and rate limiting: the scan tested nothing"
        )
