"""The two scanners: their command lines, and what their reports say.

sqlmap attacks one operation per run (``--report-json`` holds the injection points it proved,
its log names each parameter it tested); Wapiti attacks the whole document in one run (its JSON
report holds vulnerabilities, anomalies such as 500 answers, and informational notes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .openapi import Operation

__all__ = [
    "ACCEPTED",
    "CI",
    "FULL",
    "Profile",
    "sqlmap_command",
    "sqlmap_findings",
    "sqlmap_tested",
    "traffic_statuses",
    "wapiti_command",
    "wapiti_findings",
]

#: Wapiti's attack modules that work without an out-of-band endpoint on the internet (ssrf,
#: xxe and log4shell need one; wapp, htp and nikto download their databases; buster and
#: brute_login_form guess paths and passwords, which an API with a published document does not
#: need; ssl needs TLS on the target).
WAPITI_MODULES = (
    "sql",
    "timesql",
    "exec",
    "file",
    "xss",
    "permanentxss",
    "crlf",
    "redirect",
    "ldap",
    "methods",
    "http_headers",
    "csp",
    "cookieflags",
    "shellshock",
    "spring4shell",
    "htaccess",
    "backup",
)

#: Findings expected of the demo *without* the guard, keyed by Wapiti module and its exact
#: message: the guard's headers layer sets these headers, so the bare app lacks them. Through
#: the guard (or for any other message) they fail the run. docs/security.md says so.
ACCEPTED = {
    ("csp", "CSP is not set"): "the guard's headers layer sets it",
    ("http_headers", "X-Frame-Options is not set"): "the guard's headers layer sets it",
    ("http_headers", "X-Content-Type-Options is not set"): "the guard's headers layer sets it",
}


@dataclass(frozen=True)
class Profile:
    """How hard and how long the scanners try."""

    name: str
    #: sqlmap ``--level`` (1-5: how many payloads and boundaries) and ``--risk`` (1-3).
    level: int
    risk: int
    #: sqlmap ``--time-sec``: the delay time-based payloads ask the database for.
    time_sec: int
    #: sqlmap ``--time-limit`` for each operation through the guard, whose rate limits make
    #: sqlmap back off; ``None`` lets it finish.
    guarded_time_limit: int | None
    wapiti_modules: tuple[str, ...]
    wapiti_scan_time: int
    wapiti_attack_time: int


#: What CI runs: every technique (BEUST), boundaries up to level 2 (``%'`` for LIKE clauses).
CI = Profile("ci", 2, 1, 2, 30, WAPITI_MODULES, 90, 30)
#: Every payload sqlmap has, and Wapiti given half an hour.
FULL = Profile("full", 5, 3, 5, None, WAPITI_MODULES, 1800, 600)


def sqlmap_command(
    operation: Operation,
    base: str,
    headers: list[str],
    out: Path,
    profile: Profile,
    time_limit: int | None,
) -> list[str]:
    """sqlmap's arguments for one operation: every technique, reports under ``out``."""
    url = operation.url(base)
    if operation.path_params:
        # With a ``*`` in the path sqlmap tests only the marked places: mark every value.
        url = operation.url(base, "*").split("?", 1)[0]
        if operation.query:
            url += "?" + "&".join(f"{name}={quote(v)}*" for name, v in operation.query.items())
    args = ["sqlmap", "-u", url]
    all_headers = list(headers)
    if operation.body is not None:
        args += ["--data", json.dumps(operation.body), "--method", operation.method]
        all_headers.append("Content-Type: application/json")
    elif operation.method != "GET":
        args += ["--method", operation.method]
    if operation.query and not operation.path_params and operation.body is None:
        args += ["-p", ",".join(operation.query)]
    args += [
        "--batch",
        "--flush-session",
        "--disable-coloring",
        "--technique=BEUST",
        f"--level={profile.level}",
        f"--risk={profile.risk}",
        f"--time-sec={profile.time_sec}",
        f"--headers={chr(10).join(all_headers)}",
        f"--output-dir={out / 'output'}",
        f"--report-json={out / 'report.json'}",
        # -t streams each exchange as it goes (--har is written only at a clean exit).
    ]
    args += ["-t", str(out / "traffic.txt")]
    if time_limit is not None:
        args.append(f"--time-limit={time_limit}")
    return args


_TESTED = re.compile(r"testing for SQL injection on (?:\(custom\) )?(\w+) parameter '([^']+)'")


def sqlmap_tested(log: str, operation: Operation) -> list[str]:
    """The operation's parameters that sqlmap's log says it tested, in its order."""
    tested: list[str] = []
    marked = [*operation.path_params, *(operation.query if operation.path_params else ())]
    for _, name in _TESTED.findall(log):
        if name.startswith("#") and name.endswith("*"):  # URI parameter '#2*': the 2nd mark
            index = int(name[1:-1]) - 1
            name = marked[index] if 0 <= index < len(marked) else name
        tested.append(name.removeprefix("JSON "))
    return tested


def sqlmap_findings(report: dict[str, Any]) -> list[str]:
    """The injection points in sqlmap's ``--report-json``, one line each."""
    findings = []
    for entry in report.get("data", []):
        if entry.get("type_name") != "TECHNIQUES":
            continue
        for point in entry.get("value", []):
            titles = "; ".join(item["title"] for item in point.get("data", []))
            findings.append(f"sqlmap: {point['place']} parameter {point['parameter']!r}: {titles}")
    return findings


_ANSWER = re.compile(r"^HTTP response \[#\d+\] \((\d{3})", re.MULTILINE)


def traffic_statuses(traffic: str) -> list[int]:
    """The status of every answer in sqlmap's traffic file (``-t``)."""
    return [int(status) for status in _ANSWER.findall(traffic)]


def wapiti_command(
    base: str, document: Path, headers: list[str], out: Path, profile: Profile
) -> list[str]:
    """Wapiti's arguments: the attack modules against every operation of ``document``."""
    args = [
        "wapiti",
        "-u",
        base.rstrip("/") + "/",
        "--swagger",
        str(document),
        "--scope",
        "folder",
        "-m",
        ",".join(profile.wapiti_modules),
        "--max-scan-time",
        str(profile.wapiti_scan_time),
        "--max-attack-time",
        str(profile.wapiti_attack_time),
        # Out-of-band endpoints stay on this machine: nothing leaves the loopback interface.
        "--dns-endpoint",
        "localhost",
        "--endpoint",
        base.rstrip("/") + "/",
        "-f",
        "json",
        "-o",
        str(out / "report.json"),
        "--store-session",
        str(out / "session"),
        "--store-config",
        str(out / "config"),
        "--flush-session",
        "--no-bugreport",
        "-v",
        "1",
    ]
    for header in headers:
        args += ["-H", header]
    return args


def wapiti_findings(report: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Wapiti's vulnerabilities and anomalies as (findings, accepted), one line each."""
    findings: list[str] = []
    accepted: list[str] = []
    for section in ("vulnerabilities", "anomalies"):
        for category, items in report.get(section, {}).items():
            for item in items:
                where = f"{item['method']} {item['path']}"
                if item.get("parameter"):
                    where += f" parameter {item['parameter']!r}"
                line = f"wapiti {item['module']}: {category}: {where}: {item['info']}"
                reason = ACCEPTED.get((item["module"], item["info"]))
                if reason is not None and section == "vulnerabilities":
                    accepted.append(f"{line} (accepted: {reason})")
                else:
                    findings.append(line)
    return findings, accepted
