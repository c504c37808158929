"""``asgi-guard serve``: uvicorn around a guarded app, with uvicorn's own options.

The parent process checks everything it can before the server starts (the app imports, the
config builds, ``check`` finds no error); uvicorn then imports :func:`app_factory` in each
worker (so ``--workers`` and ``--reload`` work), which rebuilds the app from the environment.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from .config import guard, resolve

TARGET_ENV: Final = "ASGI_GUARD_SERVE_APP"
CONFIG_ENV: Final = "ASGI_GUARD_SERVE_CONFIG"
APP_DIR_ENV: Final = "ASGI_GUARD_SERVE_APP_DIR"
DEV_ENV: Final = "ASGI_GUARD_DEV"
#: What ``serve`` sets itself: the guard, not uvicorn, decides whom to trust and logs requests.
_FIXED: Final = ("--factory", "--no-proxy-headers", "--no-access-log", "--no-server-header")
#: uvicorn options that would undo what the guard decides (uvicorn's parameter names).
_REFUSED: Final = {
    "proxy_headers": "--proxy-headers (the [proxy] section decides whom to trust)",
    "forwarded_allow_ips": "--forwarded-allow-ips (use proxy.trusted)",
    # uvicorn's access log writes each query string as sent, tokens and passwords included.
    "access_log": "--access-log (it logs query strings unredacted; use [access_log])",
}


class ServeError(Exception):
    """A one-line reason not to start."""


def find_config(given: str | None) -> Path:
    """``given``, else ``guard.toml``, else a ``pyproject.toml`` with ``[tool.asgi-guard]``."""
    if given is not None:
        return Path(given).resolve()
    if Path("guard.toml").is_file():
        return Path("guard.toml").resolve()
    pyproject = Path("pyproject.toml")
    if pyproject.is_file():
        try:
            tables = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            tables = {}
        if isinstance(tables.get("tool", {}).get("asgi-guard"), dict):
            return pyproject.resolve()
    raise ServeError(
        "no config: give --config FILE, or add guard.toml or [tool.asgi-guard] in"
        " pyproject.toml to this folder"
    )


def uvicorn_args(target: str, extra: Sequence[str], options: dict[str, Any]) -> list[str]:
    """The uvicorn command line: our fixed options, then the user's, each checked by uvicorn's
    own parser first so a typo is one line here rather than a usage screen later."""
    import click
    import uvicorn

    args = [target, *_FIXED, *extra]
    for name, value in options.items():
        if value is not None:
            args += [f"--{name.replace('_', '-')}", str(value)]
    try:
        context = uvicorn.main.make_context("asgi-guard serve", list(args))
    except click.ClickException as exc:
        raise ServeError(f"uvicorn option: {exc.format_message()}") from None
    for name, reason in _REFUSED.items():
        if context.params.get(name) not in (None, False):
            raise ServeError(f"not available under asgi-guard serve: {reason}")
    return args


def prepare(app: str, config: Path, app_dir: str, *, dev: bool) -> None:
    """Make ``app_dir`` importable and tell the workers what to build."""
    directory = str(Path(app_dir).resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    os.environ[TARGET_ENV] = app
    os.environ[CONFIG_ENV] = str(config)
    os.environ[APP_DIR_ENV] = directory
    if dev:
        os.environ[DEV_ENV] = "1"


def load_target(reference: str) -> Any:
    """The ASGI app named by ``module:attribute``."""
    return resolve(reference, "app")


def app_factory() -> Any:
    """The guarded app, built from the environment the command line set."""
    directory = os.environ.get(APP_DIR_ENV)
    if directory and directory not in sys.path:
        sys.path.insert(0, directory)
    return guard(load_target(os.environ[TARGET_ENV]), os.environ[CONFIG_ENV])
