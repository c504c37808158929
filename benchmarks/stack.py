"""The whole stack as ``guard()`` builds it from one config, beside bare Starlette and the peers.

One config, as a user writes it: trusted proxy, HTTPS with HSTS, one IP limit, a JWT scope
rule, a JSON Schema body, the access log. Requests come from 1000 rotating clients (the
forwarded address changes request to request, so the rate limiter keeps 1000 live counters).
The access log runs with the handler ``guard()`` users get by default (JSONLinesHandler) and
with a ``logging.StreamHandler``, which most users configure; both write to a null stream.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from .harness import Case, Group, Scope

#: Distinct client addresses the requests rotate through.
CLIENTS = 1000


def rotating_scope(
    headers: list[tuple[bytes, bytes]], method: str = "GET", path: str = "/items"
) -> Callable[[], Scope]:
    """Fresh scopes from a trusted proxy, each forwarding the next of ``CLIENTS`` addresses."""
    from .groups import HEADERS, scope_factory

    header_lists = [
        [
            *HEADERS,
            (b"x-forwarded-for", b"198.51.%d.%d" % divmod(n, 250)),
            (b"x-forwarded-proto", b"https"),
            *headers,
        ]
        for n in range(CLIENTS)
    ]
    turn = itertools.cycle(header_lists)
    base = scope_factory(method=method, path=path, scheme="http", client="10.0.0.1")

    def make() -> Scope:
        scope = base()
        scope["headers"] = next(turn)
        return scope

    return make


def guard_config(logger: str) -> dict[str, Any]:
    """The config of the benchmarked stack, logging to ``logger``."""
    from .groups import BIG_LIMIT, ORDER_SCHEMA, jwt_material

    m = jwt_material()
    return {
        "proxy": {"trusted": ["10.0.0.0/8"]},
        "https": {},
        "rate_limit": {"limit": BIG_LIMIT},
        "jwt": {
            "jwks": m["jwks"],
            "issuer": "https://issuer.example",
            "audience": "api",
            "rules": {"POST /orders": ["orders:write"]},
        },
        "validation": {"schemas": {"POST /orders": ORDER_SCHEMA}},
        "access_log": {"logger": logger},
    }


def guarded(app: Any, logger: str, without: str | None = None) -> Any:
    """``app`` behind ``guard()`` with :func:`guard_config`, less the section ``without``."""
    from asgi_guard import guard

    config = guard_config(logger)
    config.pop(without or "", None)
    return guard(app, config, environ={})


def bare_starlette() -> Any:
    """A bare Starlette app answering what the raw app answers, on two routes."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def items(request: Request) -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    async def orders(request: Request) -> Response:
        await request.body()
        return Response(b'{"ok":true}', media_type="application/json")

    return Starlette(routes=[Route("/items", items), Route("/orders", orders, methods=["POST"])])


def stacks() -> list[Group]:
    """GET and POST through the raw app, bare Starlette, guard() with each handler, and the
    peer stack, in one group each (so in one run)."""
    from asgi_guard import JSONLinesHandler

    from .groups import (
        ORDER_BODY,
        POST_HEADERS,
        _bearer,
        _null_logger,
        jwt_material,
        peer_stack,
        raw_app_reading_body,
    )

    _null_logger("bench.stack", JSONLinesHandler)
    _null_logger("bench.stack.stdlib", logging.StreamHandler)
    token = _bearer(jwt_material()["rs256"])
    get = rotating_scope(token)
    post = rotating_scope(token + POST_HEADERS, method="POST", path="/orders")
    starlette = bare_starlette()
    groups = []
    for name, scope, body, what in (
        ("stack:get", get, b"", "GET with a cached RS256 token"),
        ("stack:post", post, ORDER_BODY, f"POST of a {len(ORDER_BODY)}-byte order, validated"),
    ):
        groups.append(
            Group(
                name,
                [
                    Case("raw ASGI app", raw_app_reading_body, scope, body),
                    Case("bare Starlette app", starlette, scope, body),
                    Case(
                        "guard(), default handler (JSONLinesHandler)",
                        guarded(raw_app_reading_body, "bench.stack"),
                        scope,
                        body,
                    ),
                    Case(
                        "guard(), logging.StreamHandler",
                        guarded(raw_app_reading_body, "bench.stack.stdlib"),
                        scope,
                        body,
                    ),
                    Case("peer stack", peer_stack(raw_app_reading_body), scope, body),
                ],
                f"{what}, from {CLIENTS} rotating clients, through guard() as one config"
                " builds it: proxy, HTTPS+HSTS, an IP limit, a JWT scope rule, a JSON Schema"
                " body, the access log.",
            )
        )
    # What each layer costs inside the stack: the POST with one section left out at a time.
    groups.append(
        Group(
            "stack:layers",
            [
                Case("raw ASGI app", raw_app_reading_body, post, ORDER_BODY),
                Case(
                    "guard(), every section",
                    guarded(raw_app_reading_body, "bench.stack"),
                    post,
                    ORDER_BODY,
                ),
                *(
                    Case(
                        f"guard() without [{section}]",
                        guarded(raw_app_reading_body, "bench.stack", without=section),
                        post,
                        ORDER_BODY,
                    )
                    for section in guard_config("bench.stack")
                    if section != "proxy"  # without it, every request is redirected
                ),
            ],
            "The POST of stack:post with one section of the config left out at a time: the"
            " difference to every section is what that layer costs inside the stack.",
        )
    )
    return groups
