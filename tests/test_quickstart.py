"""The laptop quickstart of docs/index.md and README.md, run as written, as real processes."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import free_port
from .test_cli import serving

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Try it on your laptop"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)
BIN = Path(sys.executable).parent


def quickstart(page: str) -> list[tuple[str, str]]:
    """The (language, code) blocks of a page's laptop quickstart, in order."""
    text = (ROOT / page).read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.find("\n## ", len(SECTION))]
    return BLOCK.findall(section)


def shell(line: str, env: dict[str, str], cwd: Path) -> str:
    """One documented shell line, run by bash; returns what it prints."""
    done = subprocess.run(
        ["bash", "-c", line], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, (line, done.stderr)
    return done.stdout


def curl(line: str, token: str, port: int) -> tuple[httpx.Response, str]:
    """A documented ``curl -i [-H ...] URL  # expected`` line, sent with httpx."""
    command, _, expected = line.partition("  # ")
    words = shlex.split(command.replace("$TOKEN", token).replace(":8000", f":{port}"))
    assert words[:2] == ["curl", "-i"], line
    headers, rest = {}, words[2:]
    while rest[0] == "-H":
        name, _, value = rest[1].partition(": ")
        headers[name] = value
        rest = rest[2:]
    [url] = rest
    return httpx.get(url, headers=headers), expected.replace(":8000", f":{port}")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty folder, with the console scripts and bash at hand."""
    assert (BIN / "asgi-guard").is_file()
    assert shutil.which("bash")
    return tmp_path


@pytest.mark.parametrize("page", ["docs/index.md", "README.md"])
def test_laptop_quickstart_runs_as_written(page: str, workdir: Path) -> None:
    """The documented files and commands serve the app in local mode: 308 keeping the port,
    401 without a token, 200 with the token minted from the config's secret and audience."""
    blocks = quickstart(page)
    assert [lang for lang, _ in blocks] == ["bash", "python", "toml", "bash", "bash"]
    # Installed from the clone: the package is not on a package index.
    assert blocks[0][1].strip().endswith('pip install ".[server]"')
    (workdir / "hello.py").write_text(blocks[1][1])
    (workdir / "guard.toml").write_text(blocks[2][1])
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    export, serve, token_line = blocks[3][1].strip().splitlines()
    assert export.startswith("export ASGI_GUARD_JWT__SECRET=")
    env["ASGI_GUARD_JWT__SECRET"] = shell(f"{export}; echo $ASGI_GUARD_JWT__SECRET", env, workdir)[
        :-1
    ]
    assert len(env["ASGI_GUARD_JWT__SECRET"]) >= 32
    assert serve.endswith(" &")
    port = free_port()
    argv = [*shlex.split(serve[:-2]), "--port", str(port)]
    with serving(argv, workdir, env, f"http://127.0.0.1:{port}/hello"):
        name, _, command = token_line.partition("=")
        assert (name, command[:2], command[-1]) == ("TOKEN", "$(", ")")
        token = shell(command[2:-1], env, workdir).strip()
        answers = [curl(line, token, port) for line in blocks[4][1].strip().splitlines()]
    redirect, expected = answers[0]
    assert (redirect.status_code, redirect.headers["location"]) == (
        308,
        f"http://127.0.0.1:{port}/hello".replace("http:", "https:"),
    )
    assert expected == f"308 to https://127.0.0.1:{port}/hello"
    assert "strict-transport-security" not in redirect.headers
    missing, expected = answers[1]
    assert (missing.status_code, missing.json()["code"], expected) == (
        401,
        "jwt.missing",
        "401 without a token",
    )
    assert missing.headers["strict-transport-security"] == "max-age=0"
    ok, expected = answers[2]
    assert (ok.status_code, ok.json(), expected) == (
        200,
        {"hello": "alice"},
        '200 {"hello":"alice"}',
    )
