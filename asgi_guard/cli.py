"""The ``asgi-guard`` command line: serve, demo, token, keys, check."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from joserfc.errors import SecurityWarning

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


def _serve(args: argparse.Namespace, extra: Sequence[str]) -> int:
    from . import _serve as serve
    from .check import check
    from .config import guard

    uvicorn = _uvicorn()
    try:
        config = serve.find_config(args.config)
        serve.prepare(args.app, config, args.app_dir, dev=args.dev)
        uv_args = serve.uvicorn_args(
            "asgi_guard._serve:app_factory",
            extra,
            {
                "host": args.host,
                "port": args.port,
                "workers": args.workers,
                "app_dir": args.app_dir,
            },
        )
    except serve.ServeError as exc:
        raise _Fail(str(exc)) from None
    # Fail here, with one line, rather than in a worker.
    guard(serve.load_target(args.app), config)
    workers = args.workers or int(os.environ.get("WEB_CONCURRENCY", "1") or 1)
    errors = [f for f in check(config, workers=workers) if f.level == "error"]
    if args.dev:
        errors = [f for f in errors if f.code != "AG020"]  # the local mode itself, asked for
        print(
            f"{PROG}: local mode (--dev): loopback is a trusted proxy, HSTS is off;"
            " never in production",
            file=sys.stderr,
        )
    for finding in errors:
        print(finding, file=sys.stderr)
    if errors and not (args.dev or args.ignore_check):
        raise _Fail(
            f"not starting: {len(errors)} error(s) from '{PROG} check' above;"
            " fix them, or pass --ignore-check"
        )
    _access_log_to_stdout()
    uvicorn.main.main(args=uv_args, prog_name=f"{PROG} serve", standalone_mode=False)
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
    try:
        # Created private from the start: no moment where another user can read the key. A
        # file replaced by --force goes first: reopened, it kept its mode until the chmod,
        # and a symlink in its place had the key written wherever it pointed.
        if args.force:
            out.unlink(missing_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as private:
            private.write(json.dumps(keys, indent=2) + "\n")
        public.write_text(json.dumps(public_jwks(keys), indent=2) + "\n")
    except OSError as exc:
        raise _Fail(f"cannot write {exc.filename or out}: {exc.strerror}") from None
    print(f"private JWKS (development only): {out}\npublic JWKS (for jwt.jwks): {public}")
    return 0


def _token(args: argparse.Namespace) -> int:
    from .devkeys import DEV_AUDIENCE, DEV_ISSUER, mint_secret_token, mint_token

    issuer, audience, secret = args.issuer, args.audience, args.secret
    if args.config is not None:
        from .config import load_config

        jwt = load_config(args.config).jwt
        if jwt is None:
            raise _Fail(f"{args.config} has no [jwt] section")
        source: Any = jwt
        if jwt.issuers:
            # Several issuers: the one --issuer names, else the first (its iss, aud and secret),
            # so the token is one the configured app accepts.
            chosen = [entry for entry in jwt.issuers if issuer in (None, entry.issuer)]
            if not chosen:
                raise _Fail(f"{args.config} lists no issuer {issuer!r} in jwt.issuers")
            source = chosen[0]
        first = source.audience[0] if isinstance(source.audience, list) else source.audience
        issuer = issuer or source.issuer
        audience = audience or first
        if secret is None and args.key is None:
            secret = source.secret
    claims: dict[str, Any] = {
        "sub": args.sub,
        "scopes": args.scope.split(),
        "ttl": args.ttl,
        "issuer": issuer or DEV_ISSUER,
        "audience": audience or DEV_AUDIENCE,
    }
    if secret is not None:
        if len(secret.encode()) < 32:
            # As check's AG006: RFC 7518 section 3.2 wants a key of at least 256 bits.
            raise _Fail("the secret is shorter than 32 bytes; use 32 or more random bytes")
        print(mint_secret_token(secret, **claims))
        return 0
    key = args.key or "dev-keys.json"
    try:
        keys = json.loads(Path(key).read_text())
        token = mint_token(keys, **claims)
    except FileNotFoundError:
        raise _Fail(f"no key file {key}: run '{PROG} keys' first, or give --secret") from None
    except Exception:  # joserfc's errors for a public, foreign or malformed key alike
        raise _Fail(f"{key} is not a private JWKS made by '{PROG} keys'") from None
    print(token)
    return 0


def _check(args: argparse.Namespace) -> int:
    from ._serve import ServeError, find_config
    from .check import check

    try:
        config = find_config(args.config)
    except ServeError as exc:
        raise _Fail(str(exc)) from None
    if args.app is not None:
        sys.path.insert(0, os.getcwd())  # "module:app" from the current folder, as serve does
    findings = check(config, workers=args.workers, app=args.app)
    for finding in findings:
        print(finding)
    errors = sum(1 for f in findings if f.level == "error")
    print(f"{len(findings)} finding(s), {errors} error(s)")
    return 1 if errors else 0


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (exit 2) like every other error."""

    def error(self, message: str) -> NoReturn:
        raise _Fail(f"{message} (see '{self.prog} --help')")


class _Defaults(argparse.HelpFormatter):
    """Each option's default at the end of its help, when it has a meaningful one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, "", argparse.SUPPRESS) or "default:" in text:
            return text
        return f"{text} (default: %(default)s)"


def _parser() -> argparse.ArgumentParser:
    from . import __version__
    from .devkeys import DEV_AUDIENCE, DEV_ISSUER

    parser = _Parser(prog=PROG, description="Wrap any ASGI app in asgi_guard's security layers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help,
            description=description or help,
            formatter_class=_Defaults,
        )

    serve = command(
        "serve",
        "serve MODULE:APP wrapped by the layers a config file enables",
        "Serve MODULE:APP with uvicorn, wrapped by the layers a config file enables. Every"
        " other uvicorn option (--root-path, --ssl-keyfile, --uds, --log-level, --reload,"
        " --timeout-keep-alive, ...) is passed to uvicorn; uvicorn's proxy headers and access"
        " log stay off (the guard does both).",
    )
    serve.add_argument("app", metavar="MODULE:APP", help="the ASGI app, e.g. myapi.main:app")
    serve.add_argument(
        "--config",
        help="a TOML file or a pyproject.toml with [tool.asgi-guard]"
        " (default: ./guard.toml, else ./pyproject.toml)",
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help="local mode: loopback is a trusted proxy, no HSTS, redirects keep the port",
    )
    serve.add_argument(
        "--ignore-check", action="store_true", help="start even when 'check' reports errors"
    )
    serve.add_argument("--app-dir", default=".", help="folder the app is imported from")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument(
        "--workers", type=int, default=None, help="processes (default: $WEB_CONCURRENCY or 1)"
    )
    serve.set_defaults(handler=_serve)

    demo = command(
        "demo", "serve a demo API guarded by every layer, with ready-to-paste curl commands"
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on")
    demo.add_argument("--port", type=int, default=8000, help="port to listen on")
    demo.set_defaults(handler=_demo)

    token = command(
        "token",
        "mint a development access token",
        "Mint a development access token: HS256 with --secret (or the config's jwt.secret),"
        " else ES256 with a key file made by 'keys'.",
    )
    token.add_argument("--sub", required=True, help="the subject (user id)")
    token.add_argument(
        "--scope", default="", help='space-separated scopes, e.g. "orders:read orders:write"'
    )
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.add_argument("--secret", help="HMAC secret: mint HS256 (as jwt.secret)")
    token.add_argument("--key", help="private JWKS made by 'keys' (default: dev-keys.json)")
    token.add_argument(
        "--config",
        help="take issuer, audience and secret from this config's [jwt] (and ASGI_GUARD_JWT__*)",
    )
    token.add_argument("--issuer", help=f"iss claim (default: the config's, else {DEV_ISSUER})")
    token.add_argument("--audience", help=f"aud claim (default: the config's, else {DEV_AUDIENCE})")
    token.set_defaults(handler=_token)

    keys = command("keys", "generate a development JWKS (private and public)")
    keys.add_argument("--out", default="dev-keys.json", help="the private JWKS file")
    keys.add_argument("--force", action="store_true", help="replace existing files")
    keys.set_defaults(handler=_keys)

    chk = command("check", "report insecure or suspicious settings in a config")
    chk.add_argument("--config", help="the config (default: ./guard.toml, else ./pyproject.toml)")
    chk.add_argument("--workers", type=int, default=1, help="server processes the app will run in")
    chk.add_argument(
        "--app",
        metavar="MODULE:APP",
        help="also compare the rules with this app's routes (Starlette, FastAPI, Litestar)",
    )
    chk.set_defaults(handler=_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code. Errors are one line on stderr, exit 2."""
    # A short HMAC key is check's AG006, with its fix; joserfc's two-line warning adds nothing.
    warnings.filterwarnings("ignore", category=SecurityWarning)
    try:
        args, extra = _parser().parse_known_args(argv)
        if extra and args.command != "serve":
            raise _Fail(f"unrecognized arguments: {' '.join(extra)} (see '{PROG} --help')")
        code: int = args.handler(args, extra) if args.command == "serve" else args.handler(args)
    except (ConfigurationError, _Fail) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        return 130
    except Exception as exc:  # a bug of ours or a library's: still one line, never a traceback
        print(f"{PROG}: error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return code
