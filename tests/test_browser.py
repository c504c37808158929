"""A real browser's view: headless Chromium enforces the guard's CSP, framing and Host policies.

The pages are served by real uvicorn on 127.0.0.1 through guard(); Chromium (Debian's
``chromium``, which ``nox -s tests`` installs) loads them with ``--dump-dom`` and no network
beyond loopback.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_guard import build_csp, guard, inline_script_hashes

from .conftest import uvicorn_server

#: An inline script rewrites the paragraph: "blocked" stays only if the CSP stopped it.
PAGE = (
    "<!doctype html><html><body><p id=s>blocked</p>"
    "<script>document.getElementById('s').textContent='ran'</script></body></html>"
)
#: Frames the API page (refused by the default headers) and a framable copy of it; its own
#: inline script, allowed by hash, reports what each frame shows.
FRAMES = (
    "<!doctype html><html><body><p id=out>pending</p>"
    "<iframe id=a src=/page></iframe><iframe id=b src=/framable></iframe>"
    "<script>window.addEventListener('load', () => {"
    " const show = (id) => { const d = document.getElementById(id).contentDocument;"
    " return d && d.getElementById('s') ? d.getElementById('s').textContent : 'refused'; };"
    " document.getElementById('out').textContent = 'page:' + show('a') + ' framable:' + show('b');"
    "});</script></body></html>"
)


def _app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def page(request: Any) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def frames(request: Any) -> HTMLResponse:
        return HTMLResponse(FRAMES)

    routes = [Route(path, page) for path in ("/page", "/framable", "/hashed")]
    return Starlette(routes=[*routes, Route("/frames", frames)])


CONFIG: dict[str, Any] = {
    "hosts": {"allowed": ["127.0.0.1"]},
    "headers": {},
    "routes": [
        {
            "path": "GET /frames",
            "headers": {
                "content_security_policy": build_csp(
                    {
                        "default-src": ["'none'"],
                        "script-src": inline_script_hashes(FRAMES),
                        "frame-src": ["'self'"],
                        "frame-ancestors": ["'none'"],
                    }
                )
            },
        },
        {
            "path": "GET /framable",
            "headers": {
                "frame_options": "SAMEORIGIN",
                "content_security_policy": "default-src 'none'; frame-ancestors 'self'",
            },
        },
        {
            "path": "GET /hashed",
            "headers": {
                "content_security_policy": build_csp(
                    {"default-src": ["'none'"], "script-src": inline_script_hashes(PAGE)}
                )
            },
        },
    ],
}


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    """The guarded pages on real uvicorn (httptools) on a free loopback port."""
    with uvicorn_server(guard(_app(), CONFIG, environ={})) as port:
        yield port


def dump_dom(url: str, profile: Path) -> str:
    """The DOM Chromium builds for ``url`` once scripts and frames have run (bounded: 60 s)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed (Debian: apt-get install -y chromium)")
    command = [
        binary,
        "--headless",
        # Only this test's own loopback pages are loaded; the sandbox needs setuid helpers or
        # user namespaces that containers and root often lack.
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # Nothing but loopback resolves: the test must not reach any network.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_csp_blocks_inline_script_and_framing_is_refused(server: int, tmp_path: Path) -> None:
    """In Chromium, the default headers refuse the frame, the default CSP blocks the inline
    script of a framable page, and the hash-allowed script of the framing page runs."""
    dom = dump_dom(f"http://127.0.0.1:{server}/frames", tmp_path)
    assert '<p id="out">page:refused framable:blocked</p>' in dom


def test_hashed_inline_script_runs_and_unhashed_does_not(server: int, tmp_path: Path) -> None:
    """The same page: its inline script is blocked by the default CSP, run under its hash."""
    assert '<p id="s">blocked</p>' in dump_dom(f"http://127.0.0.1:{server}/page", tmp_path)
    assert '<p id="s">ran</p>' in dump_dom(f"http://127.0.0.1:{server}/hashed", tmp_path)


def test_foreign_host_refused_in_the_browser(server: int, tmp_path: Path) -> None:
    """A page reached under another name (as after DNS rebinding) is refused: the browser sees
    the problem document, not the page."""
    dom = dump_dom(f"http://localhost:{server}/page", tmp_path)
    assert '"code":"host.not_allowed"' in dom
    assert "blocked" not in dom
    # The refusal itself, over the wire.
    response = httpx.get(f"http://127.0.0.1:{server}/page", headers={"host": "localhost"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


#: Stands in for jsDelivr's swagger-ui-bundle.js (no network here): records that the page's
#: inline script called it.
SWAGGER_STUB = (
    "window.SwaggerUIBundle = function (config) {"
    " document.body.setAttribute('data-swagger', 'started ' + config.url); return {}; };"
    "SwaggerUIBundle.presets = {apis: {}}; SwaggerUIBundle.SwaggerUIStandalonePreset = {};"
)


def test_fastapi_docs_inline_script_runs_under_its_hash(tmp_path: Path) -> None:
    """FastAPI's real /docs page, under the documented CSP (its inline script allowed by hash),
    starts Swagger UI in Chromium; with the API default CSP it does not."""
    from fastapi import FastAPI
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse, Response

    api = FastAPI(docs_url=None)
    stub = "/static/swagger-ui-bundle.js"

    def page() -> bytes:
        # As FastAPI builds /docs, with the script served from loopback.
        return bytes(
            get_swagger_ui_html(
                openapi_url=str(api.openapi_url),
                title=f"{api.title} - Swagger UI",
                oauth2_redirect_url=api.swagger_ui_oauth2_redirect_url,
                init_oauth=api.swagger_ui_init_oauth,
                swagger_ui_parameters=api.swagger_ui_parameters,
                swagger_js_url=stub,
                swagger_css_url="/static/swagger-ui.css",
            ).body
        )

    @api.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page())

    @api.get("/plain-docs", include_in_schema=False)
    def plain_docs() -> HTMLResponse:
        return HTMLResponse(page())

    @api.get(stub, include_in_schema=False)
    def bundle() -> Response:
        return Response(SWAGGER_STUB, media_type="text/javascript")

    docs_csp = build_csp(
        {
            "default-src": ["'none'"],
            "script-src": ["'self'", *inline_script_hashes(page())],
            "style-src": ["'self'"],
            "connect-src": ["'self'"],
            "frame-ancestors": ["'none'"],
        }
    )
    config = {
        "headers": {},
        "routes": [{"path": "GET /docs", "headers": {"content_security_policy": docs_csp}}],
    }
    with uvicorn_server(guard(api, config, environ={})) as port:
        started = dump_dom(f"http://127.0.0.1:{port}/docs", tmp_path / "a")
        default = dump_dom(f"http://127.0.0.1:{port}/plain-docs", tmp_path / "b")
    assert 'data-swagger="started /openapi.json"' in started
    assert "data-swagger" not in default
