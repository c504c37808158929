"""The asgi-guard command line, and a real uvicorn server in front of a guarded app."""

from __future__ import annotations

import contextlib
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_guard.cli import main

from .conftest import free_port


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_and_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """keys writes a private and a public JWKS; token mints a token the public one verifies."""
    from asgi_guard import JWTAuthMiddleware
    from asgi_guard.devkeys import DEV_AUDIENCE, DEV_ISSUER

    key_file = tmp_path / "dev-keys.json"
    code, out, _ = run(capsys, "keys", "--out", str(key_file))
    assert code == 0
    assert out.splitlines() == [
        f"private JWKS (development only): {key_file}",
        f"public JWKS (for jwt.jwks): {tmp_path / 'dev-keys.public.json'}",
    ]
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    public = json.loads((tmp_path / "dev-keys.public.json").read_text())
    assert "d" not in public["keys"][0]
    assert run(capsys, "keys", "--out", str(key_file))[0] == 2

    code, out, _ = run(
        capsys,
        "token",
        "--sub",
        "alice",
        "--scope",
        "orders:read orders:write",
        "--ttl",
        "60",
        "--key",
        str(key_file),
    )
    assert code == 0
    token = out.strip()
    mw = JWTAuthMiddleware(
        lambda s, r, se: None,  # type: ignore[arg-type, return-value]
        jwks=public,
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        algorithms=["ES256"],
    )
    import asyncio

    user = asyncio.run(mw._authenticate(token.encode()))
    assert (user.sub, user.scopes) == ("alice", frozenset({"orders:read", "orders:write"}))


def test_keys_force_replaces_a_symlink_not_its_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """keys --force over a symlink (planted in a shared folder) replaces the link with a
    private file: the key was written into the file the link pointed to."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    out = tmp_path / "dev-keys.json"
    out.symlink_to(victim)
    assert run(capsys, "keys", "--out", str(out), "--force")[0] == 0
    assert victim.read_text() == "precious\n"
    assert (victim.stat().st_mode & 0o777, out.is_symlink()) == (0o644, False)
    assert out.stat().st_mode & 0o777 == 0o600
    assert '"d"' in out.read_text()


def test_token_without_keys_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors are one line on stderr with exit code 2."""
    code, out, err = run(capsys, "token", "--sub", "a", "--key", str(tmp_path / "none.json"))
    assert (code, out) == (2, "")
    assert (
        err
        == f"asgi-guard: error: no key file {tmp_path / 'none.json'}: run 'asgi-guard keys' first, or give --secret\n"
    )
    (tmp_path / "junk.json").write_text("[]")
    assert run(capsys, "token", "--sub", "a", "--key", str(tmp_path / "junk.json"))[2].endswith(
        "is not a private JWKS made by 'asgi-guard keys'\n"
    )


def test_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check prints findings and exits 1 when any is an error, 0 otherwise."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[proxy]\ntrusted = ["*"]\n[jwt]\nsecret = "short"\n')
    code, out, _ = run(capsys, "check", "--config", str(bad))
    assert code == 1
    assert "AG003 [error] proxy.trusted contains '*'" in out
    assert out.splitlines()[-1] == "8 finding(s), 3 error(s)"
    good = tmp_path / "good.toml"
    good.write_text(
        '[proxy]\n[hosts]\nallowed = ["api.example.com"]\n[access_log]\n[https]\n[rate_limit]\nlimit = "10/second"\n[validation]\n'
        '[jwt]\nsecret = "0123456789abcdef0123456789abcdef"\nissuer = "i"\naudience = "a"\n'
    )
    assert run(capsys, "check", "--config", str(good)) == (0, "0 finding(s), 0 error(s)\n", "")
    assert run(capsys, "check", "--config", str(good), "--workers", "2")[0] == 1


def test_check_bad_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A broken config file is a one-line error, exit 2."""
    path = tmp_path / "g.toml"
    path.write_text('[[routes]]\npath = "/a"\nlimit = 3\n')
    code, _, err = run(capsys, "check", "--config", str(path))
    assert (code, err) == (
        2,
        "asgi-guard: error: routes[0].limit: Expected `str | object | null`, got `int`\n",
    )


def test_serve_rejects_bad_config_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """serve validates the app reference and config first."""
    path = tmp_path / "g.toml"
    path.write_text("[https]\nstatus_code = 200\n")
    code, _, err = run(capsys, "serve", "tests.conftest:RecordingApp", "--config", str(path))
    assert (code, err) == (
        2,
        "asgi-guard: error: https.status_code: must be one of 301, 302, 303, 307, 308, not 200\n",
    )
    code, _, err = run(capsys, "serve", "tests.nothing:app", "--config", str(path))
    assert code == 2
    assert err.startswith("asgi-guard: error: app: cannot import 'tests.nothing:app'")


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists every command."""
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert all(cmd in out for cmd in ("serve", "demo", "token", "keys", "check"))


def _wait_for(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5, verify=False)  # a probe: only whether it answers
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


@contextlib.contextmanager
def serving(argv: list[str], cwd: Path, env: dict[str, str], probe: str) -> Iterator[None]:
    """A server started with ``argv`` as a real process, up once ``probe`` answers."""
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        try:
            _wait_for(probe, proc)
        except AssertionError:
            assert proc.stderr is not None
            raise AssertionError(proc.stderr.read().decode()) from None
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.fixture
def demo() -> Iterator[tuple[str, str]]:
    """`python -m asgi_guard demo` as a real process on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "asgi_guard", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base + "/health", proc)
        banner = b""
        while b"429" not in banner:
            assert proc.stdout is not None
            banner += proc.stdout.readline()
        assert proc.stdout is not None
        banner += proc.stdout.readline()
        yield base, banner.decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_demo_serves_every_layer(demo: tuple[str, str]) -> None:
    """The demo's printed curl commands show 308, 200, 401, 403, 422, 201 and 429 for real."""
    base, banner = demo
    tokens = re.findall(r"Bearer ([A-Za-z0-9_.-]+)'", banner)
    reader, writer = tokens[0], tokens[2]
    https = {"x-forwarded-proto": "https"}
    order = {"product_id": 1, "quantity": 2}
    with httpx.Client(base_url=base) as client:
        redirect = client.get("/products")
        assert (redirect.status_code, redirect.headers["location"]) == (
            308,
            "https://127.0.0.1/products",
        )
        assert client.get("/products?limit=2", headers=https).json() == [
            {"id": 1, "name": "keyboard", "price_cents": 4900},
            {"id": 2, "name": "mouse", "price_cents": 1900},
        ]
        assert client.get("/orders", headers=https).status_code == 401
        assert (
            client.post(
                "/orders", json=order, headers={**https, "authorization": f"Bearer {reader}"}
            ).status_code
            == 403
        )
        bad = client.post(
            "/orders",
            json={**order, "quantity": 99},
            headers={**https, "authorization": f"Bearer {writer}"},
        )
        assert (bad.status_code, bad.json()["errors"]) == (
            422,
            [{"loc": "$.quantity", "msg": "Expected `int` <= 10"}],
        )
        created = client.post(
            "/orders", json=order, headers={**https, "authorization": f"Bearer {writer}"}
        )
        assert (created.status_code, created.json()) == (
            201,
            {"id": 1, "product_id": 1, "quantity": 2},
        )
        mine = client.get("/orders/1", headers={**https, "authorization": f"Bearer {reader}"})
        assert mine.json() == {"id": 1, "product_id": 1, "quantity": 2, "note": None}
        statuses = [
            client.post(
                "/orders", json=order, headers={**https, "authorization": f"Bearer {writer}"}
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [201, 201, 429]  # the 6th POST /orders this minute from this address
        injection = client.get("/products", params={"q": "' OR 1=1 --"}, headers=https)
        assert (injection.status_code, injection.json()) == (200, [])


class _Server:
    """A real uvicorn server in a thread, stopped by the fixture."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            proxy_headers=False,
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        _wait_for(f"http://127.0.0.1:{self.port}/health")
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_guarded_starlette_app_over_real_http(caplog: pytest.LogCaptureFixture) -> None:
    """Every layer over real HTTP through uvicorn: redirect, HSTS, auth, limits, validation, log."""
    import logging

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from asgi_guard import guard
    from asgi_guard.devkeys import DEV_AUDIENCE, DEV_ISSUER, generate_keys, mint_token, public_jwks

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def echo(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse(
            {"user": request.user.display_name, "scopes": sorted(request.user.scopes), "body": body}
        )

    keys = generate_keys()
    app = guard(
        Starlette(routes=[Route("/health", health), Route("/echo", echo, methods=["POST"])]),
        {
            "proxy": {},
            "access_log": {},
            "https": {"exempt": ["/health"]},
            "rate_limit": {"limit": "100/minute", "rules": {"POST /echo": "2/minute"}},
            "jwt": {
                "jwks": public_jwks(keys),
                "issuer": DEV_ISSUER,
                "audience": DEV_AUDIENCE,
                "rules": {"/health": "public", "POST /echo": ["echo"]},
            },
            "validation": {
                "schemas": {
                    "POST /echo": {
                        "type": "object",
                        "properties": {"n": {"type": "integer"}},
                        "required": ["n"],
                    }
                }
            },
        },
        environ={},
    )
    token = mint_token(keys, sub="carol", scopes=["echo"])
    headers = {
        "x-forwarded-proto": "https",
        "x-forwarded-for": "198.51.100.4",
        "authorization": f"Bearer {token}",
    }
    with (
        caplog.at_level(logging.INFO, "asgi_guard.access"),
        _Server(app) as base,
        httpx.Client(base_url=base) as client,
    ):
        assert client.post("/echo", json={"n": 1}).status_code == 308
        ok = client.post("/echo", json={"n": 1}, headers=headers)
        assert ok.json() == {"user": "carol", "scopes": ["echo"], "body": {"n": 1}}
        assert ok.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
        assert client.post("/echo", json={"n": "x"}, headers=headers).status_code == 422
        assert client.post("/echo", json={"n": 1}, headers=headers).status_code == 429
    records = [r for r in caplog.records if r.name == "asgi_guard.access" and r.path == "/echo"]  # type: ignore[attr-defined]
    assert [(r.status, r.client, r.scheme) for r in records] == [  # type: ignore[attr-defined]
        (308, "127.0.0.1", "http"),
        (200, "198.51.100.4", "https"),
        (422, "198.51.100.4", "https"),
        (429, "198.51.100.4", "https"),
    ]
    assert records[1].sub == "carol"  # type: ignore[attr-defined]


def test_demo_app_in_process() -> None:
    """The demo's app and config, driven in-process: scopes, BOLA-safe reads, unknown products."""
    import asyncio

    from asgi_guard import guard
    from asgi_guard.demo import build_demo, demo_config
    from asgi_guard.devkeys import generate_keys, mint_token

    from .conftest import client_for

    keys = generate_keys()
    app = guard(build_demo(), demo_config(keys), environ={})
    alice = {
        "authorization": f"Bearer {mint_token(keys, sub='alice', scopes=['orders:read', 'orders:write'])}"
    }
    bob = {"authorization": f"Bearer {mint_token(keys, sub='bob', scopes=['orders:read'])}"}

    async def scenario() -> None:
        async with client_for(app, base_url="https://testserver") as client:
            assert (await client.get("/health")).json() == {"status": "ok"}
            assert (await client.get("/products", params={"limit": 1, "q": "mon"})).json() == [
                {"id": 3, "name": "monitor", "price_cents": 18900}
            ]
            assert (await client.get("/products", params={"limit": 99})).status_code == 422
            assert (
                await client.post("/orders", json={"product_id": 99, "quantity": 1}, headers=alice)
            ).status_code == 404
            assert (
                await client.post(
                    "/orders", json={"product_id": 2, "quantity": 1, "note": "gift"}, headers=alice
                )
            ).status_code == 201
            assert (await client.get("/orders", headers=alice)).json() == [
                {"id": 1, "product_id": 2, "quantity": 1, "note": "gift"}
            ]
            assert (await client.get("/orders", headers=bob)).json() == []
            assert (
                await client.get("/orders/1", headers=bob)
            ).status_code == 404  # not bob's order
            assert (await client.get("/orders/x", headers=bob)).status_code == 404
            assert (
                await client.get(f"/orders/{2**64}", headers=bob)
            ).status_code == 404  # past SQLite's range
            huge = {"product_id": 2**64, "quantity": 1}
            assert (await client.post("/orders", json=huge, headers=alice)).status_code == 422

    asyncio.run(scenario())


# --- errors that teach, and the first hour -------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version and exits 0."""
    from asgi_guard import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert (info.value.code, capsys.readouterr().out) == (0, f"asgi-guard {__version__}\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tokn"], "argument COMMAND: invalid choice: 'tokn'"),
        (["token"], "the following arguments are required: --sub"),
        (["check", "--workers", "two"], "argument --workers: invalid int value: 'two'"),
        (["keys", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A usage mistake is one line on stderr, exit 2, pointing at --help."""
    code, out, err = run(capsys, *argv)
    assert (code, out, err.count("\n")) == (2, "", 1)
    assert err.startswith(f"asgi-guard: error: {message}")
    assert err.endswith("--help')\n")


def test_token_with_a_public_key_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """token --key on a public JWKS says so in one line (it used to raise a traceback)."""
    key_file = tmp_path / "dev-keys.json"
    assert run(capsys, "keys", "--out", str(key_file))[0] == 0
    public = tmp_path / "dev-keys.public.json"
    code, out, err = run(capsys, "token", "--sub", "a", "--key", str(public))
    assert (code, out, err) == (
        2,
        "",
        f"asgi-guard: error: {public} is not a private JWKS made by 'asgi-guard keys'\n",
    )


def test_keys_into_a_missing_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """keys --out in a folder that does not exist is one line, exit 2 (it used to be a traceback)."""
    out_file = tmp_path / "no" / "keys.json"
    assert run(capsys, "keys", "--out", str(out_file)) == (
        2,
        "",
        f"asgi-guard: error: cannot write {out_file}: No such file or directory\n",
    )


def _verify(token: str, **options: Any) -> Any:
    import asyncio

    from asgi_guard import JWTAuthMiddleware

    mw = JWTAuthMiddleware(lambda s, r, se: None, **options)  # type: ignore[arg-type, return-value]
    return asyncio.run(mw._authenticate(token.encode()))


def test_token_with_a_secret_and_a_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """token --secret mints HS256; --config takes issuer, audience and the secret (from the
    environment) of the config, so the token is one the configured app accepts."""
    secret = "s" * 40
    code, out, _ = run(capsys, "token", "--sub", "bob", "--scope", "a b", "--secret", secret)
    assert code == 0
    user = _verify(out.strip(), secret=secret, audience="asgi-guard-dev-api")
    assert (user.sub, user.scopes, user.claims["iss"]) == ("bob", {"a", "b"}, "asgi-guard-dev")

    config = tmp_path / "guard.toml"
    config.write_text('[jwt]\nissuer = "https://id.example"\naudience = ["api-1", "api-2"]\n')
    monkeypatch.setenv("ASGI_GUARD_JWT__SECRET", secret)
    code, out, _ = run(capsys, "token", "--sub", "carol", "--config", str(config))
    assert code == 0
    user = _verify(out.strip(), secret=secret, issuer="https://id.example", audience="api-1")
    assert (user.sub, user.claims["aud"]) == ("carol", "api-1")

    for short in ("", "s" * 31):
        assert run(capsys, "token", "--sub", "c", "--secret", short)[2] == (
            "asgi-guard: error: the secret is shorter than 32 bytes; use 32 or more random bytes\n"
        )

    config.write_text("[proxy]\n")
    monkeypatch.delenv("ASGI_GUARD_JWT__SECRET")
    assert run(capsys, "token", "--sub", "c", "--config", str(config))[2] == (
        f"asgi-guard: error: {config} has no [jwt] section\n"
    )


def test_token_with_a_config_of_several_issuers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """token --config with jwt.issuers mints for the entry --issuer names (else the first),
    with its iss, aud and secret: it ignored them and asked for a key file."""
    first, second = "f" * 40, "g" * 40
    config = tmp_path / "guard.toml"
    config.write_text(
        "[jwt]\nissuers = [\n"
        f'  {{issuer = "https://a.example", audience = ["api-a"], secret = "{first}"}},\n'
        f'  {{issuer = "https://b.example", audience = "api-b", secret = "{second}"}},\n]\n'
    )
    code, out, _ = run(capsys, "token", "--sub", "ann", "--config", str(config))
    assert code == 0
    user = _verify(out.strip(), secret=first, issuer="https://a.example", audience="api-a")
    assert user.sub == "ann"
    argv = ("token", "--sub", "bo", "--config", str(config), "--issuer", "https://b.example")
    code, out, _ = run(capsys, *argv)
    assert code == 0
    user = _verify(out.strip(), secret=second, issuer="https://b.example", audience="api-b")
    assert user.sub == "bo"
    argv = ("token", "--sub", "c", "--config", str(config), "--issuer", "https://c.example")
    assert run(capsys, *argv) == (
        2,
        "",
        f"asgi-guard: error: {config} lists no issuer 'https://c.example' in jwt.issuers\n",
    )


def test_token_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """token --help names the default issuer, audience, key file and lifetime."""
    with pytest.raises(SystemExit):
        main(["token", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("else asgi-guard-dev)", "else asgi-guard-dev- api)", "dev-keys.json", "3600"):
        assert text in out


def in_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run an in-process serve from ``folder``; what it sets (environment, sys.path) is undone."""
    monkeypatch.chdir(folder)
    monkeypatch.setattr(os, "environ", os.environ.copy())
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_serve_refuses_what_check_calls_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve --workers 2 with memory storage prints check's error and does not start."""
    in_folder(tmp_path, monkeypatch)
    (tmp_path / "guard.toml").write_text('[rate_limit]\nlimit = "5/second"\n')
    code, out, err = run(capsys, "serve", "tests.conftest:RecordingApp", "--workers", "2")
    assert (code, out) == (2, "")
    assert err.splitlines()[0].startswith("AG001 [error] HTTPS redirect and HSTS are off.")
    assert err.splitlines()[1].startswith("AG011 [error] Memory storage with 2 workers")
    assert err.splitlines()[2] == (
        "asgi-guard: error: not starting: 2 error(s) from 'asgi-guard check' above;"
        " fix them, or pass --ignore-check"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--log-level", "loud"], "uvicorn option: Invalid value for '--log-level'"),
        (["--no-such-option"], "uvicorn option: No such option"),
        (
            ["--proxy-headers"],
            "not available under asgi-guard serve: --proxy-headers (the [proxy] section decides"
            " whom to trust)",
        ),
        (
            ["--access-log"],
            "not available under asgi-guard serve: --access-log (it logs query strings"
            " unredacted; use [access_log])",
        ),
    ],
)
def test_serve_checks_uvicorn_options_first(
    extra: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Options for uvicorn are checked by uvicorn's parser before anything starts."""
    in_folder(tmp_path, monkeypatch)
    (tmp_path / "guard.toml").write_text("[proxy]\n")
    code, _, err = run(capsys, "serve", "tests.conftest:RecordingApp", *extra)
    assert code == 2
    assert err.startswith(f"asgi-guard: error: {message}")
    assert err.count("\n") == 1


def test_serve_without_a_config_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no --config, no guard.toml and no [tool.asgi-guard], serve names what it wants."""
    in_folder(tmp_path, monkeypatch)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert run(capsys, "serve", "tests.conftest:RecordingApp")[2] == (
        "asgi-guard: error: no config: give --config FILE, or add guard.toml or"
        " [tool.asgi-guard] in pyproject.toml to this folder\n"
    )


def test_serve_is_a_drop_in_for_uvicorn(tmp_path: Path) -> None:
    """From the app's own folder, without PYTHONPATH: the module imports, pyproject.toml's
    [tool.asgi-guard] is the config, and uvicorn's --root-path reaches the app."""
    (tmp_path / "fa.py").write_text(
        "async def app(scope, receive, send):\n"
        "    assert scope['type'] == 'http'\n"
        "    body = scope['root_path'].encode() + b' ' + scope['client'][0].encode()\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': body})\n"
    )
    (tmp_path / "pyproject.toml").write_text(
        '[tool.asgi-guard.proxy]\ntrusted = ["127.0.0.1"]\n'
        '[tool.asgi-guard.rate_limit]\nlimit = "1000/second"\n'
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)  # this tree, not the app's
    argv = [
        *(sys.executable, "-m", "asgi_guard", "serve", "fa:app", "--port", str(port)),
        *("--root-path", "/api", "--timeout-keep-alive", "2", "--log-level", "warning"),
        "--ignore-check",  # no [https]: check calls it an error
    ]
    with serving(argv, tmp_path, env, f"http://127.0.0.1:{port}/"):
        answer = httpx.get(f"http://127.0.0.1:{port}/x", headers={"x-forwarded-for": "192.0.2.9"})
    assert (answer.status_code, answer.text) == (200, "/api 192.0.2.9")
    assert answer.headers["ratelimit-policy"] == '"1000-per-1s";q=1000;w=1'


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as mkcert would make for a laptop."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_serve_dev_over_tls_for_a_browser(tmp_path: Path) -> None:
    """serve --dev with uvicorn's --ssl-* options: the page a browser opens is served over
    https on the same port, with HSTS max-age=0 (nothing to unlearn for localhost later)."""
    cert_file, key_file = _self_signed(tmp_path)
    (tmp_path / "docs_app.py").write_text(
        "async def app(scope, receive, send):\n"
        "    assert scope['type'] == 'http'\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': scope['scheme'].encode()})\n"
    )
    (tmp_path / "guard.toml").write_text(
        '[proxy]\ntrusted = ["10.0.0.0/8"]\n[https]\nallowed_hosts = ["api.example.com"]\n'
    )
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    argv = [
        *(sys.executable, "-m", "asgi_guard", "serve", "docs_app:app", "--dev"),
        *("--port", str(port), "--log-level", "warning"),
        *("--ssl-certfile", str(cert_file), "--ssl-keyfile", str(key_file)),
    ]
    with (
        serving(argv, tmp_path, env, f"https://127.0.0.1:{port}/"),
        httpx.Client(verify=ssl.create_default_context(cafile=str(cert_file))) as client,
    ):
        page = client.get(f"https://127.0.0.1:{port}/docs")
    assert (page.status_code, page.text) == (200, "https")
    assert page.headers["strict-transport-security"] == "max-age=0"


def test_check_finds_the_config_and_the_app_in_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """check reads ./guard.toml when no --config is given, imports --app from the current
    folder as serve does, and says where it looked when there is no config."""
    in_folder(tmp_path, monkeypatch)
    assert run(capsys, "check")[2].startswith("asgi-guard: error: no config: give --config FILE")
    (tmp_path / "guard.toml").write_text(
        '[jwt]\nsecret = "' + "s" * 32 + '"\nrules = {"/nowhere" = "public"}\n'
    )
    (tmp_path / "routes_app.py").write_text(
        "from starlette.applications import Starlette\n"
        "from starlette.responses import PlainTextResponse\n"
        "from starlette.routing import Route\n\n"
        "async def home(request):\n    return PlainTextResponse('hi')\n\n"
        "app = Starlette(routes=[Route('/home', home)])\n"
    )
    code, out, _ = run(capsys, "check", "--app", "routes_app:app")
    assert code == 1
    assert "AG030 [error] jwt.rules: '/nowhere' matches no route of the app" in out


def test_an_unexpected_error_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even an error nobody foresaw is one line and exit 2, not a traceback."""
    import asgi_guard.devkeys

    def broken() -> dict[str, Any]:
        raise RuntimeError("entropy ran out")

    monkeypatch.setattr(asgi_guard.devkeys, "generate_keys", broken)
    assert run(capsys, "keys", "--out", str(tmp_path / "k.json")) == (
        2,
        "",
        "asgi-guard: error: unexpected RuntimeError: entropy ran out\n",
    )
