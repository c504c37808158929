"""The ``asgi-guard`` command line: serve, demo, token, keys, check."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = ["main"]

PROG = "asgi-guard"


class _Fail(Exception):
    """A one-line error for the user; exit code 2."""


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        raise _Fail("serving needs uvicorn: pip install 'asgi-guard[server]'") from None
    return uvicorn


def _access_log_to_stdout() -> None:
    """Unless logging is configured already, print access records as JSON lines."""
    from .accesslog import JSONLinesHandler

    logger = logging.getLogger("asgi_guard.access")
    if not logger.handlers:
        logger.addHandler(JSONLinesHandler(sys.stdout))
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _serve(args: argparse.Namespace) -> int:
    from . import _serve as serve_module
    from .config import guard

    uvicorn = _uvicorn()
    os.environ[serve_module.TARGET_ENV] = args.app
    os.environ[serve_module.CONFIG_ENV] = str(Path(args.config).resolve())
    # Fail here, with one line, rather than in a worker.
    guard(serve_module.load_target(args.app), args.config)
    _access_log_to_stdout()
    uvicorn.run(
        "asgi_guard._serve:app_factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        reload=args.reload,
        proxy_headers=False,  # ProxyHeadersMiddleware decides whom to trust
        access_log=False,  # the guard's access log replaces uvicorn's
        server_header=False,
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .config import guard
    from .demo import build_demo, demo_config
    from .devkeys import generate_keys, mint_token

    uvicorn = _uvicorn()
    keys = generate_keys()
    app = guard(build_demo(), demo_config(keys), environ={})  # embedded defaults only
    reader = mint_token(keys, sub="alice", scopes=["orders:read"])
    writer = mint_token(keys, sub="alice", scopes=["orders:read", "orders:write"])
    base = f"http://{args.host}:{args.port}"
    https = "-H 'X-Forwarded-Proto: https'"  # the demo stands behind a (pretend) TLS proxy
    order = shlex.quote('{"product_id": 1, "quantity": 2}')
    bad = shlex.quote('{"product_id": 1, "quantity": 99, "hack": true}')
    print(
        f"""asgi-guard demo: an order API on SQLite, guarded by every layer.
Development keys were generated for this run; tokens below expire in an hour.

  308 redirect to https (plain http, no proxy header):
    curl -i {base}/products
  200 public route, validated query:
    curl -i {https} '{base}/products?limit=2'
  401 no token:
    curl -i {https} {base}/orders
  403 token without orders:write:
    curl -i {https} -H 'Authorization: Bearer {reader}' -H 'Content-Type: application/json' -d {order} {base}/orders
  422 invalid body:
    curl -i {https} -H 'Authorization: Bearer {writer}' -H 'Content-Type: application/json' -d {bad} {base}/orders
  201 success:
    curl -i {https} -H 'Authorization: Bearer {writer}' -H 'Content-Type: application/json' -d {order} {base}/orders
  429 once POST /orders was called 5 times in a minute (by this address):
    for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}}\\n' {https} -H 'Authorization: Bearer {writer}' -H 'Content-Type: application/json' -d {order} {base}/orders; done
""",
        flush=True,
    )
    _access_log_to_stdout()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        proxy_headers=False,
        access_log=False,
        server_header=False,
        log_level="warning",
    )
    return 0


def _keys(args: argparse.Namespace) -> int:
    from .devkeys import generate_keys, public_jwks

    out = Path(args.out)
    public = out.with_name(out.stem + ".public.json")
    if not args.force and (out.exists() or public.exists()):
        raise _Fail(f"{out} or {public} exists; use --force to replace them")
    keys = generate_keys()
    out.write_text(json.dumps(keys, indent=2) + "\n")
    out.chmod(0o600)
    public.write_text(json.dumps(public_jwks(keys), indent=2) + "\n")
    print(f"private JWKS (development only): {out}\npublic JWKS (for jwt.jwks): {public}")
    return 0


def _token(args: argparse.Namespace) -> int:
    from .devkeys import mint_token

    try:
        keys = json.loads(Path(args.key).read_text())
        token = mint_token(
            keys,
            sub=args.sub,
            scopes=args.scope.split(),
            ttl=args.ttl,
            issuer=args.issuer,
            audience=args.audience,
        )
    except FileNotFoundError:
        raise _Fail(f"no key file {args.key}: run '{PROG} keys' first") from None
    except (ValueError, KeyError, TypeError, IndexError):
        raise _Fail(f"{args.key} is not a private JWKS made by '{PROG} keys'") from None
    print(token)
    return 0


def _check(args: argparse.Namespace) -> int:
    from .check import check

    findings = check(args.config, workers=args.workers, app=args.app)
    for finding in findings:
        print(finding)
    errors = sum(1 for f in findings if f.level == "error")
    print(f"{len(findings)} finding(s), {errors} error(s)")
    return 1 if errors else 0


def _parser() -> argparse.ArgumentParser:
    from .devkeys import DEV_AUDIENCE, DEV_ISSUER

    parser = argparse.ArgumentParser(
        prog=PROG, description="Wrap any ASGI app in asgi_guard's security layers."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="serve MODULE:APP wrapped by the layers a config file enables"
    )
    serve.add_argument("app", metavar="MODULE:APP", help="the ASGI app, e.g. myapi.main:app")
    serve.add_argument(
        "--config", required=True, help="a TOML file (or pyproject.toml with [tool.asgi-guard])"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=None)
    serve.add_argument("--reload", action="store_true")
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser(
        "demo", help="serve a demo API guarded by every layer, with ready-to-paste curl commands"
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(handler=_demo)

    token = commands.add_parser("token", help="mint a development access token")
    token.add_argument("--sub", required=True, help="the subject (user id)")
    token.add_argument(
        "--scope", default="", help='space-separated scopes, e.g. "orders:read orders:write"'
    )
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.add_argument("--key", default="dev-keys.json", help="private JWKS made by 'keys'")
    token.add_argument("--issuer", default=DEV_ISSUER)
    token.add_argument("--audience", default=DEV_AUDIENCE)
    token.set_defaults(handler=_token)

    keys = commands.add_parser("keys", help="generate a development JWKS (private and public)")
    keys.add_argument("--out", default="dev-keys.json")
    keys.add_argument("--force", action="store_true", help="replace existing files")
    keys.set_defaults(handler=_keys)

    chk = commands.add_parser("check", help="report insecure or suspicious settings in a config")
    chk.add_argument("--config", required=True)
    chk.add_argument("--workers", type=int, default=1, help="server processes the app will run in")
    chk.add_argument(
        "--app",
        metavar="MODULE:APP",
        help="also compare the rules with this app's routes (Starlette, FastAPI, Litestar)",
    )
    chk.set_defaults(handler=_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except (ConfigurationError, _Fail) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        return 130
    return code
