"""End to end: uvicorn serving bare, guarded and peer-stack apps, loaded by wrk on 127.0.0.1.

``python -m benchmarks.loadtest [--seconds 5]``. Needs ``wrk`` (Debian: ``apt-get install wrk``).
Each server runs in its own process on a free port; load is bounded in time; servers are stopped.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .groups import ORDER_BODY


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _token() -> str:
    import time as _t

    from joserfc import jwt
    from joserfc.jwk import OctKey

    from .apps import AUDIENCE, ISSUER, SECRET

    now = int(_t.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 3600}
    return jwt.encode(
        {"alg": "HS256"}, claims, OctKey.import_key(SECRET.encode()), algorithms=["HS256"]
    )


def _serve(name: str, port: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "uvicorn", f"benchmarks.apps:{name}", "--host", "127.0.0.1",
        "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
        "--no-proxy-headers", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{name} did not start")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, seconds: int, script: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(label: str) -> float:
        value, unit = re.search(rf"\s{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * _UNITS[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": pct("50%"),
        "p99_ms": pct("99%"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadtest")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed: apt-get install -y wrk (the in-process benchmarks still run: nox -s bench)"
        )
        return 0
    token = _token()
    body = ORDER_BODY.decode().replace('"', '\\"')
    headers = f'wrk.headers["Authorization"] = "Bearer {token}"\nwrk.headers["X-Forwarded-Proto"] = "https"\n'
    scripts = {
        "GET /items": headers,
        "POST /orders": headers
        + f'wrk.method = "POST"\nwrk.body = "{body}"\nwrk.headers["Content-Type"] = "application/json"\n',
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for app in ("bare", "guarded", "peer"):
            port = _port()
            proc = _serve(app, port)
            try:
                for name, lua in scripts.items():
                    script = Path(tmp) / "s.lua"
                    script.write_text(lua)
                    path = name.split()[1]
                    _wrk(f"http://127.0.0.1:{port}{path}", 1, script)  # warm-up
                    results.setdefault(name, {})[app] = _wrk(
                        f"http://127.0.0.1:{port}{path}", args.seconds, script
                    )
            finally:
                proc.terminate()
                proc.wait(timeout=10)
    lines = [
        "| request | app | requests/s | p50 ms | p99 ms | non-2xx | vs bare |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, apps in results.items():
        for app, r in apps.items():
            lines.append(
                f"| {name} | {app} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']:.0f} | {r['rps'] / apps['bare']['rps']:.2f}x |"
            )
    table = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loadtest.md").write_text(table)
    (args.out / "loadtest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
