"""The app factory ``asgi-guard serve`` hands to uvicorn (so workers and reload work)."""

from __future__ import annotations

import os
from typing import Any

from .config import guard, resolve

TARGET_ENV = "ASGI_GUARD_SERVE_APP"
CONFIG_ENV = "ASGI_GUARD_SERVE_CONFIG"


def load_target(reference: str) -> Any:
    """The ASGI app named by ``module:attribute``."""
    return resolve(reference, "app")


def app_factory() -> Any:
    """The guarded app, built from the environment the command line set."""
    return guard(load_target(os.environ[TARGET_ENV]), os.environ[CONFIG_ENV])
