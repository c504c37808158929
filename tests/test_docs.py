"""Every Python block in docs/ runs, and every file docs/ includes exists, so examples cannot rot."""

from __future__ import annotations

import logging
import os
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
SNIPPET = re.compile(r'^--8<-- "([^"]+)"', re.MULTILINE)
PAGES = sorted((ROOT / "docs").rglob("*.md"))
BLOCKS = [
    pytest.param(code, id=f"{page.relative_to(ROOT)}#{index}")
    for page in PAGES
    for index, code in enumerate(BLOCK.findall(page.read_text()))
    if not SNIPPET.search(code)
]


@pytest.mark.parametrize("code", BLOCKS)
def test_python_blocks_run(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each documented Python example executes as written."""
    monkeypatch.chdir(ROOT)
    loggers = {name: list(logging.getLogger(name).handlers) for name in ("asgi_guard.access",)}
    # A real module, so libraries that resolve annotations through sys.modules (msgspec) work.
    module = types.ModuleType("docs_example")
    monkeypatch.setitem(sys.modules, "docs_example", module)
    try:
        exec(compile(code, "<docs>", "exec"), module.__dict__)
    finally:
        for name, handlers in loggers.items():
            logging.getLogger(name).handlers[:] = handlers


def test_included_files_exist() -> None:
    """Files pulled into the docs with --8<-- exist (and the examples are tested elsewhere)."""
    included = {m for page in PAGES for m in SNIPPET.findall(page.read_text())}
    assert included
    assert all((ROOT / path).is_file() for path in included), included


def test_readme_commands_match_ci() -> None:
    """The README's test command is the one .ci/run runs."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m pip install nox && python3 -m nox -s tests" in readme
    assert "python3 -m nox -s tests" in ci
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
