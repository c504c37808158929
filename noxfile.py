"""Project sessions: nox -s tests, lint, typecheck, docs, bench, dast."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs", "security"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

COVERAGE_FLOOR = 96
# The peers benchmarks/ measures the layers against; the bench and typecheck sessions install them.
BENCH_PEERS = ("slowapi>=0.1.9", "pyjwt[crypto]>=2.8", "matplotlib>=3.8")


def _ensure_debian_packages(session: nox.Session, *packages: str) -> None:
    """Install Debian packages the tests need (a real redis-server) when they are missing."""
    missing = [p for p in packages if shutil.which(p.replace("-tools", "")) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        session.error(
            f"install {' '.join(missing)} (Debian: apt-get install -y {' '.join(missing)})"
        )
    session.run("apt-get", "update", "-qq", external=True)
    session.run(
        "apt-get",
        "install",
        "-y",
        "-qq",
        # What the tests run needs its dependencies only: chromium's recommendations (printing,
        # desktop integration, samba) took 76 s of a 2-core machine's time, most of it.
        "--no-install-recommends",
        *missing,
        external=True,
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with branch coverage and a floor."""
    # chromium: tests/test_browser.py checks the security headers in a real browser.
    _ensure_debian_packages(session, "redis-server", "chromium")
    session.install("-e", ".[dev]")
    session.run(
        "pytest",
        "--cov=asgi_guard",
        "--cov-branch",
        "--cov-report=term-missing:skip-covered",
        f"--cov-fail-under={COVERAGE_FLOOR}",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.6")
    paths = ["asgi_guard", "tests", "benchmarks", "examples", "fuzz", "dast", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, its tests, benchmarks, examples, fuzzers and DAST driver."""
    # The benchmark peers (slowapi, PyJWT, matplotlib) are typed and imported by benchmarks/.
    session.install("-e", ".[dev]", *BENCH_PEERS)
    session.run("mypy", "--strict", "asgi_guard", "tests", "benchmarks", "examples", "fuzz", "dast")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with --strict, so a broken reference fails."""
    session.install("-e", ".[dev]", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26")
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """In-process benchmarks: every layer, the whole stack and the peers, as ratios in one run."""
    session.install("-e", ".[dev]", *BENCH_PEERS)
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(default=False)
def instructions(session: nox.Session) -> None:
    """Instructions per request under callgrind: exact where timings drift with the machine."""
    _ensure_debian_packages(session, "valgrind")
    session.install("-e", ".[dev]", "slowapi>=0.1.9", "pyjwt[crypto]>=2.8")
    session.run("python", "-m", "benchmarks.instructions", *session.posargs)


@nox.session(default=False)
def loadtest(session: nox.Session) -> None:
    """End to end: uvicorn (httptools, uvloop) + wrk on 127.0.0.1, bare vs guarded vs peers."""
    session.install(
        "-e", ".[dev]", "uvicorn[standard]>=0.30", "slowapi>=0.1.9", "pyjwt[crypto]>=2.8"
    )
    session.run("python", "-m", "benchmarks.loadtest", *session.posargs)


@nox.session(default=False)
def ratelimit_scale(session: nox.Session) -> None:
    """Bursts of 1,000 through asgi-guard serve (uvicorn) on 1 and 4 workers and two servers
    sharing a real redis-server: a limit of 50 admits exactly 50 (about 3 minutes)."""
    _ensure_debian_packages(session, "redis-server")
    session.install("-e", ".[dev]", "uvicorn[standard]>=0.30")
    session.run(
        "pytest", "-q", "tests/scale", *session.posargs, env={"ASGI_GUARD_SCALE_TESTS": "1"}
    )


@nox.session
def security(session: nox.Session) -> None:
    """bandit, a bounded atheris fuzzing run, and the property tests searching longer."""
    session.install("-e", ".[dev]", "atheris>=2.3")
    session.run("bandit", "-q", "-c", "pyproject.toml", "-r", "asgi_guard")
    # A short, bounded fuzzing run; docs/security.md shows how to run it for hours.
    session.run(
        "python", "fuzz/fuzz_parsers.py", "-runs=200000", "-max_len=1024", "-print_final_stats=1"
    )
    session.run(
        "pytest",
        "-q",
        "tests/test_properties.py",
        "tests/test_routes.py",
        "tests/test_schema_compiler.py",
        "tests/test_schemathesis.py",
        env={"ASGI_GUARD_PROPERTY_EXAMPLES": "3000"},
    )


@nox.session
def dast(session: nox.Session) -> None:
    """Black-box scans (sqlmap, Wapiti) of the demo as a real process, bare and guarded.

    First the proof that a string-formatted query fails the scans, then the scans of the demo
    itself; reports in dast-reports/. ``nox -s dast -- --profile full`` runs every payload.
    """
    # uv fetches in parallel: 22 s for Wapiti's 80 packages where pip takes 100 s here.
    session.install("uv>=0.4")
    uv = str(Path(session.bin) / "uv")
    python = str(Path(session.bin) / "python")
    install = [uv, "pip", "install", "-q", "--python"]
    session.run(*install, python, "-e", ".[server]", "sqlmap>=1.8", "pytest>=8.2", external=True)
    # Wapiti pins old releases of libraries the guard needs newer (cryptography): its own venv.
    wapiti = Path(session.create_tmp()) / "wapiti"
    if not (wapiti / "bin" / "wapiti").exists():
        session.run(uv, "venv", "-q", "--python", python, str(wapiti), external=True)
        session.run(*install, str(wapiti / "bin" / "python"), "wapiti3>=3.2.3", external=True)
    env = {"DAST_WAPITI": str(wapiti / "bin" / "wapiti")}
    session.run("pytest", "-q", "-p", "no:cacheprovider", "dast/tests", env=env)
    session.run("python", "-m", "dast", *session.posargs, env=env)
