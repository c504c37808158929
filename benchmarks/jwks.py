"""Key-set and token-cache figures under hostile input, each case in its own process.

``python -m benchmarks.jwks [--case gzip-bomb kidless cache]``: prints a markdown table.

- gzip-bomb: a 58 KiB gzip JWKS inflating to 60 MB, served on 127.0.0.1: peak RSS growth and
  time of the (refused) fetch.
- kidless: event-loop time of one bogus token without a ``kid`` against a 401-key set.
- cache: RSS growth after 10,000 distinct valid tokens of about 15 KB, and of about 7 KB.

Uses only options every version has, so the same script measures a tree before a change
(``PYTHONPATH=old-tree python -m benchmarks.jwks``).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ISSUER = "https://issuer.example"
AUDIENCE = "orders-api"
NOW = 1_800_000_000.0


def _rss_kib(field: str = "VmHWM") -> int:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process, in KiB.

    Not ``getrusage``: its ru_maxrss survives exec, so a child would report its parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


async def _drive(mw: Any, token: bytes) -> int:
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"authorization", b"Bearer " + token)],
        "client": ("127.0.0.1", 1),
    }
    await mw(scope, receive, send)
    return status[0]


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def case_gzip_bomb(bomb_path: str) -> dict[str, Any]:
    from asgi_guard import JWTAuthMiddleware

    bomb = Path(bomb_path).read_bytes()

    served: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.append(self.path)
            if len(served) == 1:  # the warm-up fetch: refused without a body
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-encoding", "gzip")
            self.send_header("content-length", str(len(bomb)))
            self.end_headers()
            self.wfile.write(bomb)

        def log_message(self, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/jwks"
    mw = JWTAuthMiddleware(_ok, jwks_url=url, issuer=ISSUER, audience=AUDIENCE)
    token = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"

    async def run() -> tuple[int, float, int]:
        await _drive(mw, token)  # warm up imports and the client on a first (404) fetch
        assert mw._remote is not None
        mw._remote._last_attempt = -1e18
        base = _rss_kib()
        start = time.perf_counter()
        status = await _drive(mw, token)
        return status, time.perf_counter() - start, base

    status, elapsed, base = asyncio.run(run())
    httpd.shutdown()
    return {
        "status": status,
        "peak RSS growth (MB)": round((_rss_kib() - base) / 1024, 1),
        "fetch (ms)": round(elapsed * 1000, 1),
    }


def case_kidless(family: str) -> dict[str, Any]:
    from joserfc import jwt
    from joserfc.jwk import ECKey, RSAKey

    from asgi_guard import JWTAuthMiddleware

    alg = "ES256" if family == "EC" else "RS256"
    one = ECKey.generate_key("P-256") if family == "EC" else RSAKey.generate_key(2048)
    public = one.as_dict(private=False)
    jwks = {"keys": [{**public, "kid": f"k-{i}"} for i in range(401)]}
    size = len(json.dumps(jwks))
    mw = JWTAuthMiddleware(
        _ok, jwks=jwks, issuer=ISSUER, audience=AUDIENCE, algorithms=[alg], cache_size=0
    )
    stranger = ECKey.generate_key("P-256") if family == "EC" else RSAKey.generate_key(2048)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 600}
    token = jwt.encode({"alg": alg}, claims, stranger, algorithms=[alg]).encode()

    async def run() -> tuple[int, float]:
        status = await _drive(mw, token)
        rounds = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(20):
                await _drive(mw, token)
            rounds.append((time.perf_counter() - start) / 20)
        return status, sorted(rounds)[2]

    status, per = asyncio.run(run())
    return {
        "keys": 401,
        "JWKS bytes": size,
        "status": status,
        "per token (ms)": round(per * 1e3, 3),
    }


def case_cache(groups: int) -> dict[str, Any]:
    import base64
    import hashlib
    import hmac

    from asgi_guard import JWTAuthMiddleware

    secret = b"s" * 40

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    head = b64(b'{"alg":"HS256","typ":"JWT"}')

    def token(i: int) -> bytes:
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"user-{i}",
            "exp": int(NOW) + 600,
            "groups": [f"{i:08x}-{j:04x}-4c6b-9d3a-1f1f1f1f1f1f" for j in range(groups)],
        }
        signing = head + b"." + b64(json.dumps(claims).encode())
        return signing + b"." + b64(hmac.new(secret, signing, hashlib.sha256).digest())

    mw = JWTAuthMiddleware(
        _ok, secret=secret.decode(), issuer=ISSUER, audience=AUDIENCE, clock=lambda: NOW
    )
    length = len(token(0))

    async def run() -> int:
        base = _rss_kib("VmRSS")
        for i in range(10_000):
            assert await _drive(mw, token(i)) == 200
        return _rss_kib("VmRSS") - base

    grown = asyncio.run(run())
    return {
        "token bytes": length,
        "entries": len(mw._cache),
        "RSS growth (MB)": round(grown / 1024, 1),
    }


def _child(case: str, arg: str) -> None:
    result: dict[str, Any]
    if case == "gzip-bomb":
        result = case_gzip_bomb(arg)
    elif case == "kidless":
        result = case_kidless(arg)
    else:
        result = case_cache(int(arg))
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.jwks", description=__doc__)
    parser.add_argument("--case", nargs="*", default=["gzip-bomb", "kidless", "cache"])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        bomb = Path(tmp) / "bomb.gz"
        bomb.write_bytes(gzip.compress(b'{"keys": [' + b" " * 60_000_000 + b"]}", 9))
        runs = {
            "gzip-bomb": [("gzip-bomb", str(bomb))],
            "kidless": [("kidless", "EC"), ("kidless", "RSA")],
            "cache": [("cache", "290"), ("cache", "130")],
        }
        print("| case | figures |\n|---|---|")
        for name in args.case:
            for case, arg in runs[name]:
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.jwks", "--child", case, arg],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=600,
                ).stdout
                print(f"| {case} {arg if case != 'gzip-bomb' else ''} | {out.strip()} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
