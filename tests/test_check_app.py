"""check() and ``asgi-guard check --app``: rules compared with the app's own router."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from asgi_guard import ConfigurationError, guard
from asgi_guard.approutes import app_routes, overlaps
from asgi_guard.check import check, check_app
from asgi_guard.cli import main
from asgi_guard.routes import parse_pattern

from .integrations.tokens import SECRET
from .parity_apps import CONFIG, FRAMEWORKS, litestar_app

#: For the command line test, which names the app as module:attribute.
APP = litestar_app()

TYPO = {"jwt": {"secret": SECRET, "default": "public", "rules": {"GTE /admin": ["admin"]}}}


def test_a_typo_in_a_method_fails_check_and_guard() -> None:
    """ "GTE /admin" is a ConfigurationError in check() as in guard(), naming the pattern."""
    for build in (lambda: check(TYPO, environ={}), lambda: guard(APP, TYPO, environ={})):
        with pytest.raises(ConfigurationError) as caught:
            build()
        assert "'GTE' in route 'GTE /admin' is not a registered HTTP method" in str(caught.value)


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_app_routes_read_each_router(framework: str) -> None:
    """The routers of Starlette, FastAPI and Litestar, unwrapped from guard(), as patterns."""
    routes = app_routes(guard(FRAMEWORKS[framework](), CONFIG))
    assert routes is not None
    mine = {
        (route.path, tuple(sorted(route.methods or ())))
        for route in routes
        if not route.path.startswith(("/schema", "/docs", "/openapi", "/redoc"))
    }
    served = {"starlette": ("GET", "HEAD"), "fastapi": ("GET",), "litestar": ("GET", "OPTIONS")}
    get = served[framework]
    post = ("POST",) if framework != "litestar" else ("OPTIONS", "POST")
    assert mine == {
        ("/", get),
        ("/admin", get),
        ("/orders", post),
        ("/items/{id}", get),
        ("/files/{rest:path}", get),
        ("/ws", ("GET",)),
        ("/sub/{rest:path}", ()),
    }


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_rules_matching_no_route_are_errors(framework: str) -> None:
    """A rule whose path or method the app does not serve is AG030, naming option and pattern."""
    config: dict[str, Any] = {
        **CONFIG,
        "jwt": {
            **CONFIG["jwt"],
            "default": "authenticated",
            "rules": {"GET /admn": ["admin"], "POST /items/{id}": "deny", "/sub/x": "public"},
        },
        "access_log": {"exclude": ["GET /health"]},
    }
    findings = check_app(config, FRAMEWORKS[framework](), environ={})
    assert [(f.code, f.level, f.message) for f in findings] == [
        (
            "AG030",
            "error",
            f"{where}: {pattern!r} matches no route of the app, so it guards nothing.",
        )
        for where, pattern in [
            ("jwt.rules", "GET /admn"),
            ("jwt.rules", "POST /items/{id}"),
            ("access_log.exclude", "GET /health"),
        ]
    ]


def test_routes_falling_to_a_public_default_are_listed() -> None:
    """With jwt.default = "public", every route without a JWT rule is named in AG031."""
    findings = check_app(CONFIG, FRAMEWORKS["starlette"](), environ={})
    assert [(f.code, f.level, f.message) for f in findings] == [
        ("AG031", "warning", "GET / fall to jwt.default = 'public': no token is needed.")
    ]
    config = {**CONFIG, "routes": [r for r in CONFIG["routes"] if r["path"] != "GET /admin"]}
    assert check_app(config, FRAMEWORKS["starlette"](), environ={})[0].message == (
        "GET /, GET /admin fall to jwt.default = 'public': no token is needed."
    )


def test_an_app_without_a_known_router_is_a_configuration_error() -> None:
    """check_app() refuses an app whose router it cannot read, rather than report nothing."""

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError

    with pytest.raises(ConfigurationError, match="no Starlette, FastAPI or Litestar router"):
        check_app(CONFIG, bare, environ={})


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("/items/{id}", "/items/special", True),
        ("/items/{id}", "/items", False),
        ("/files/{rest:path}", "/files", True),
        ("/files/{rest:path}", "/files/a/b/c", True),
        ("/a/{x}/c", "/a/b/{y}", True),
        ("/a/b", "/a/c", False),
        ("/a", "/a/b", False),
        ("/", "/{rest:path}", True),
    ],
)
def test_overlaps(a: str, b: str, expected: bool) -> None:
    """Two patterns overlap when some path matches both, in either order."""
    sa, sb = parse_pattern(a)[1], parse_pattern(b)[1]
    assert overlaps(sa, sb) is expected
    assert overlaps(sb, sa) is expected


def test_check_command_reads_the_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``asgi-guard check --app`` adds the router findings and exits 1 on AG030."""
    path = tmp_path / "g.toml"
    path.write_text(
        f'[jwt]\nsecret = "{SECRET}"\naudience = "a"\nissuer = "i"\n'
        '[jwt.rules]\n"GET /admn" = ["admin"]\n"/" = "public"\n'
    )
    code = main(["check", "--config", str(path), "--app", "tests.test_check_app:APP"])
    out = capsys.readouterr().out
    assert code == 1
    assert "AG030 [error] jwt.rules: 'GET /admn' matches no route of the app" in out
    main(["check", "--config", str(path)])
    assert "AG030" not in capsys.readouterr().out  # the router is read only with --app


def test_nested_mounts_and_converters_become_patterns() -> None:
    """Mounted routers join their prefixes, and converters other than path are dropped."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Host, Mount, Route

    async def endpoint(request: Any) -> PlainTextResponse:
        return PlainTextResponse("")

    app = Starlette(
        routes=[
            Mount(
                "/v1",
                routes=[
                    Route("/users/{id:int}", endpoint, methods=["PUT"]),
                    Mount("/files", routes=[Route("/{name}.txt", endpoint)]),
                ],
            ),
            Host("api.example.com", app=Starlette(routes=[Route("/h", endpoint)])),
        ]
    )
    routes = app_routes(app)
    assert routes is not None
    assert [(r.path, sorted(r.methods or ())) for r in routes] == [
        ("/v1/users/{id}", ["PUT"]),
        ("/v1/files/{name}", ["GET", "HEAD"]),
        ("/h", ["GET", "HEAD"]),
    ]
