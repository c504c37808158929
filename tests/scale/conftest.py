"""End-to-end rate-limit bursts through real uvicorn processes: run by ``nox -s
ratelimit_scale`` (which sets ASGI_GUARD_SCALE_TESTS=1), not by the default test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool:
    return os.environ.get("ASGI_GUARD_SCALE_TESTS") != "1"
