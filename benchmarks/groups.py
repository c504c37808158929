"""The benchmark groups: the floor, each layer alone, the whole stack, and the peers."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from asgi_guard import HTTPSRedirectMiddleware, ProxyHeadersMiddleware, RouteTable
from asgi_guard._asgi import ASGIApp, Receive, Send
from asgi_guard._asgi import Scope as ASGIScope

from .harness import Case, Group, Scope
from .minimal import MinimalAccessLog, MinimalValidation

HEADERS = [
    (b"host", b"api.example.com"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"application/json"),
]


def scope_factory(
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "GET",
    path: str = "/items",
    scheme: str = "https",
    client: str = "203.0.113.7",
) -> Callable[[], Scope]:
    """A fresh scope per request (layers may rewrite it), sharing the immutable parts."""
    hdrs = HEADERS + (headers or [])
    raw = path.encode()

    def make() -> Scope:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": scheme,
            "path": path,
            "raw_path": raw,
            "root_path": "",
            "query_string": b"",
            "headers": hdrs,
            "client": (client, 50000),
            "server": ("127.0.0.1", 8000),
        }

    return make


_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json")],
}
_BODY = {"type": "http.response.body", "body": b'{"ok":true}'}


async def raw_app(scope: ASGIScope, receive: Receive, send: Send) -> None:
    """The baseline: a raw ASGI app answering a small JSON body."""
    await send(dict(_START))
    await send(_BODY)


async def raw_app_reading_body(scope: ASGIScope, receive: Receive, send: Send) -> None:
    """The baseline for body-reading layers: reads the whole body first."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(dict(_START))
    await send(_BODY)


async def empty_coroutine() -> None:
    """The baseline of library-level groups: awaiting a coroutine that does nothing."""
    return None


class Empty:
    """An empty pass-through layer: the floor cost of one more ASGI hop."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _nest(n: int) -> Any:
    app: Any = raw_app
    for _ in range(n):
        app = Empty(app)
    return app


def floor() -> Group:
    get = scope_factory()
    return Group(
        "floor",
        [Case("raw ASGI app", raw_app, get)]
        + [Case(f"{n} empty layers", _nest(n), get) for n in (1, 3, 5)],
        "What an ASGI hop costs on this machine.",
    )


def proxy_layer() -> Group:
    get = scope_factory(
        [(b"x-forwarded-for", b"198.51.100.23"), (b"x-forwarded-proto", b"https")],
        scheme="http",
        client="10.0.0.1",
    )
    fwd = scope_factory(
        [(b"forwarded", b"for=198.51.100.23;proto=https")], scheme="http", client="10.0.0.1"
    )
    return Group(
        "layer:proxy",
        [
            Case("raw ASGI app", raw_app, get),
            Case(
                "ProxyHeaders x-forwarded (trusted peer)",
                ProxyHeadersMiddleware(raw_app, trusted=["10.0.0.0/8"]),
                get,
            ),
            Case(
                "ProxyHeaders forwarded (trusted peer)",
                ProxyHeadersMiddleware(raw_app, trusted=["10.0.0.0/8"], mode="forwarded"),
                fwd,
            ),
        ],
    )


def https_layer() -> Group:
    get = scope_factory()
    return Group(
        "layer:https",
        [
            Case("raw ASGI app", raw_app, get),
            Case("HTTPSRedirect https pass-through + HSTS", HTTPSRedirectMiddleware(raw_app), get),
            Case(
                "HTTPSRedirect http -> 308",
                HTTPSRedirectMiddleware(raw_app),
                scope_factory(scheme="http"),
            ),
        ],
    )


def routes() -> Group:
    table = RouteTable(
        {f"/r{i}/{{id}}": i for i in range(50)}
        | {f"/static/{i}": i for i in range(50)}
        | {"/items": 1, "GET /orders": 2}
    )

    async def exact() -> None:
        table.match("GET", "/items")

    async def param() -> None:
        table.match("GET", "/r42/17")

    # What the layers call: the scope's path, relative to root_path, as the frameworks read it.
    exact_scope = {"type": "http", "method": "GET", "path": "/items", "root_path": ""}
    param_scope = {"type": "http", "method": "GET", "path": "/r42/17", "root_path": ""}
    rooted_scope = {"type": "http", "method": "GET", "path": "/api/items", "root_path": "/api"}
    method_scope = {"type": "http", "method": "GET", "path": "/orders", "root_path": ""}

    async def exact_from_scope() -> None:
        table.match_scope(exact_scope)

    async def param_from_scope() -> None:
        table.match_scope(param_scope)

    async def exact_under_root_path() -> None:
        table.match_scope(rooted_scope)

    async def exact_with_method_from_scope() -> None:
        table.match_scope(method_scope)

    return Group(
        "routes",
        [
            Case("empty coroutine", call=empty_coroutine),
            Case("exact path", call=exact),
            Case("one-parameter path", call=param),
            Case("exact path, from a scope", call=exact_from_scope),
            Case("one-parameter path, from a scope", call=param_from_scope),
            Case("exact path under a root_path, from a scope", call=exact_under_root_path),
            Case("exact GET-only path, from a scope", call=exact_with_method_from_scope),
        ],
        "Route-table lookups among 101 patterns (overhead = cost of a lookup).",
    )


# --- JWT ------------------------------------------------------------------------------------


def _jwt_material() -> dict[str, Any]:
    import time as _time

    from joserfc import jwt
    from joserfc.jwk import ECKey, OctKey, RSAKey

    rsa = RSAKey.generate_key(2048, parameters={"kid": "r1"})
    ec = ECKey.generate_key("P-256", parameters={"kid": "e1"})
    now = int(_time.time())
    claims = {
        "iss": "https://issuer.example",
        "aud": "api",
        "sub": "alice",
        "exp": now + 3600,
        "iat": now,
        "scope": "orders:read orders:write",
    }
    secret = "s" * 40
    return {
        "rsa": rsa,
        "ec": ec,
        "secret": secret,
        "claims": claims,
        "rs256": jwt.encode({"alg": "RS256", "kid": "r1"}, claims, rsa, algorithms=["RS256"]),
        "es256": jwt.encode({"alg": "ES256", "kid": "e1"}, claims, ec, algorithms=["ES256"]),
        "hs256": jwt.encode(
            {"alg": "HS256"}, claims, OctKey.import_key(secret.encode()), algorithms=["HS256"]
        ),
        "jwks": {"keys": [rsa.as_dict(private=False), ec.as_dict(private=False)]},
    }


_JWT: dict[str, Any] = {}


def jwt_material() -> dict[str, Any]:
    if not _JWT:
        _JWT.update(_jwt_material())
    return _JWT


def _bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"Bearer " + token.encode())]


def pyjwt_peer(app: Any, key: Any, alg: str) -> Any:
    """The hand-written alternative: a BaseHTTPMiddleware checking a bearer token with pyjwt."""
    import jwt as pyjwt
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import JSONResponse

    class PyJWTMiddleware(BaseHTTPMiddleware):
        async def dispatch(self, request: Any, call_next: Any) -> Any:
            header = request.headers.get("authorization", "")
            if not header.lower().startswith("bearer "):
                return JSONResponse({"detail": "missing"}, status_code=401)
            try:
                claims = pyjwt.decode(
                    header[7:],
                    key,
                    algorithms=[alg],
                    audience="api",
                    issuer="https://issuer.example",
                )
            except pyjwt.PyJWTError:
                return JSONResponse({"detail": "invalid"}, status_code=401)
            request.scope["auth"] = claims
            return await call_next(request)

    return PyJWTMiddleware(app)


def jwt_layer() -> list[Group]:
    from joserfc import jwt
    from joserfc.jwk import KeySet

    from asgi_guard import JWTAuthMiddleware

    m = jwt_material()
    iss, aud = "https://issuer.example", "api"
    cached = JWTAuthMiddleware(raw_app, jwks=m["jwks"], issuer=iss, audience=aud)
    uncached = JWTAuthMiddleware(raw_app, jwks=m["jwks"], cache_size=0, issuer=iss, audience=aud)
    hs = JWTAuthMiddleware(raw_app, secret=m["secret"], cache_size=0, issuer=iss, audience=aud)
    keyset = KeySet.import_key_set(m["jwks"])
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": "https://issuer.example"},
        aud={"essential": True, "value": "api"},
    )
    rs_token = m["rs256"]

    async def joserfc_decode() -> None:
        token = jwt.decode(rs_token, keyset, algorithms=["RS256"])
        registry.validate(token.claims)

    rs = scope_factory(_bearer(m["rs256"]))
    es = scope_factory(_bearer(m["es256"]))
    hs_scope = scope_factory(_bearer(m["hs256"]))
    public_pem = m["rsa"].get_op_key("verify")
    return [
        Group(
            "layer:jwt",
            [
                Case("raw ASGI app", raw_app, rs),
                Case("JWTAuth cached token (RS256)", cached, rs),
                Case("JWTAuth uncached RS256", uncached, rs),
                Case("JWTAuth uncached ES256", uncached, es),
                Case("JWTAuth uncached HS256", hs, hs_scope),
                Case(
                    "peer: BaseHTTPMiddleware + pyjwt RS256",
                    pyjwt_peer(raw_app, public_pem, "RS256"),
                    rs,
                ),
            ],
        ),
        Group(
            "library:jwt",
            [
                Case("empty coroutine", call=empty_coroutine),
                Case("joserfc jwt.decode + claims validation (RS256)", call=joserfc_decode),
            ],
            "The library floor an uncached RS256 verification is compared with.",
        ),
    ]


# --- rate limiting ------------------------------------------------------------------------

BIG_LIMIT = "100000000/minute"


def starlette_app(*middleware: Any, route_decorator: Any = None) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def items(request: Any) -> Any:
        return JSONResponse({"ok": True})

    endpoint = route_decorator(items) if route_decorator else items
    return Starlette(
        routes=[Route("/items", endpoint, methods=["GET", "POST"])], middleware=list(middleware)
    )


def ratelimit_layer() -> list[Group]:
    from limits import parse
    from limits.aio.storage import MemoryStorage
    from limits.aio.strategies import SlidingWindowCounterRateLimiter
    from slowapi import Limiter
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address
    from starlette.middleware import Middleware

    from asgi_guard import RateLimitMiddleware

    item = parse(BIG_LIMIT)
    limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def limits_hit() -> None:
        await limiter.hit(item, "bench", "203.0.113.7")

    async def limits_hit_stats() -> None:
        await limiter.hit(item, "bench", "203.0.113.7")
        await limiter.get_window_stats(item, "bench", "203.0.113.7")

    get = scope_factory()
    layer = Group(
        "layer:ratelimit",
        [
            Case("raw ASGI app", raw_app, get),
            Case(
                "RateLimit memory, IETF headers", RateLimitMiddleware(raw_app, limit=BIG_LIMIT), get
            ),
            Case(
                "RateLimit memory, no headers",
                RateLimitMiddleware(raw_app, limit=BIG_LIMIT, headers=False),
                get,
            ),
        ],
    )
    library = Group(
        "library:limits",
        [
            Case("empty coroutine", call=empty_coroutine),
            Case("limits sliding-window hit", call=limits_hit),
            Case("limits hit + get_window_stats", call=limits_hit_stats),
        ],
        "The library floor the layer is compared with.",
    )

    slow = Limiter(key_func=get_remote_address, default_limits=[BIG_LIMIT])
    slow_app = starlette_app(Middleware(SlowAPIASGIMiddleware))
    slow_app.state.limiter = slow
    deco = Limiter(key_func=get_remote_address)
    deco_app = starlette_app(route_decorator=deco.limit(BIG_LIMIT))
    deco_app.state.limiter = deco

    peers = Group(
        "peer:ratelimit",
        [
            Case("Starlette app", starlette_app(), get),
            Case(
                "asgi_guard RateLimit around Starlette",
                RateLimitMiddleware(starlette_app(), limit=BIG_LIMIT),
                get,
            ),
            Case("slowapi SlowAPIASGIMiddleware", slow_app, get),
            Case("slowapi @limiter.limit decorator", deco_app, get),
            *litestar_ratelimit_cases(get),
        ],
        "The same limit on the same Starlette/Litestar endpoint.",
    )
    return [layer, library, peers]


def litestar_app(middleware: list[Any] | None = None) -> Any:
    from litestar import Litestar
    from litestar import get as lget

    @lget("/items", sync_to_thread=False)
    def items() -> dict[str, bool]:
        return {"ok": True}

    return Litestar(route_handlers=[items], middleware=middleware or [], logging_config=None)


def litestar_ratelimit_cases(get: Any) -> list[Case]:
    from litestar.middleware.rate_limit import RateLimitConfig

    from asgi_guard import RateLimitMiddleware

    config = RateLimitConfig(rate_limit=("minute", 100_000_000))
    return [
        Case("Litestar app", litestar_app(), get),
        Case(
            "asgi_guard RateLimit around Litestar",
            RateLimitMiddleware(litestar_app(), limit=BIG_LIMIT),
            get,
        ),
        Case("Litestar RateLimitMiddleware", litestar_app([config.middleware]), get),
    ]


# --- validation -------------------------------------------------------------------------------

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "customer": {"type": "string", "minLength": 1, "maxLength": 64},
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"},
                    "qty": {"type": "integer", "minimum": 1, "maximum": 100},
                },
                "required": ["sku", "qty"],
                "additionalProperties": False,
            },
        },
        "note": {"type": ["string", "null"], "maxLength": 200},
    },
    "required": ["customer", "items"],
    "additionalProperties": False,
}
ORDER_BODY = (
    b'{"customer": "customer-0042", "items": [{"sku": "ABC-1", "qty": 2}, {"sku": "XYZ-77", "qty": 1},'
    b' {"sku": "QRS-123", "qty": 5}], "note": "leave at the door, ring twice please"}'
)
POST_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(ORDER_BODY)).encode()),
]


def order_struct() -> Any:
    from .models import Order

    return Order


def validation_layer() -> list[Group]:
    import jsonschema
    import jsonschema_rs
    import msgspec
    import orjson

    from asgi_guard import ValidationMiddleware, compile_schema

    post = scope_factory(POST_HEADERS, method="POST", path="/orders")
    from .models import PlainOrder

    order = order_struct()
    compiled = msgspec.json.Decoder(compile_schema(ORDER_SCHEMA))
    hand = msgspec.json.Decoder(order)
    plain = msgspec.json.Decoder(PlainOrder)
    validator = jsonschema.Draft202012Validator(ORDER_SCHEMA)

    async def by_hand() -> None:
        hand.decode(ORDER_BODY)

    async def by_compiled() -> None:
        compiled.decode(ORDER_BODY)

    async def by_plain() -> None:
        plain.decode(ORDER_BODY)

    async def by_jsonschema() -> None:
        validator.validate(orjson.loads(ORDER_BODY))

    rust = jsonschema_rs.Draft202012Validator(ORDER_SCHEMA, validate_formats=True)

    async def by_jsonschema_rs() -> None:  # the layer's JSON Schema path
        rust.is_valid(msgspec.json.decode(ORDER_BODY))

    layer = Group(
        "layer:validation",
        [
            Case("raw ASGI app reading the body", raw_app_reading_body, post, ORDER_BODY),
            Case(
                "Validation, msgspec Struct",
                ValidationMiddleware(raw_app_reading_body, schemas={"POST /orders": order}),
                post,
                ORDER_BODY,
            ),
            Case(
                "Validation, JSON Schema (jsonschema-rs)",
                ValidationMiddleware(raw_app_reading_body, schemas={"POST /orders": ORDER_SCHEMA}),
                post,
                ORDER_BODY,
            ),
            Case(
                "Validation, msgspec Struct without the sku pattern",
                ValidationMiddleware(raw_app_reading_body, schemas={"POST /orders": PlainOrder}),
                post,
                ORDER_BODY,
            ),
            Case(
                "yardstick: minimal validation layer, the Struct without the pattern",
                MinimalValidation(raw_app_reading_body, {"/orders": {"POST": plain}}),
                post,
                ORDER_BODY,
            ),
            Case(
                "peer: BaseHTTPMiddleware + jsonschema",
                jsonschema_peer(raw_app_reading_body),
                post,
                ORDER_BODY,
            ),
        ],
        f"A {len(ORDER_BODY)}-byte JSON order.",
    )
    library = Group(
        "library:validation",
        [
            Case("empty coroutine", call=empty_coroutine),
            Case("msgspec, hand-written Struct", call=by_hand),
            Case("msgspec, compiled JSON Schema", call=by_compiled),
            Case("msgspec, Struct without the sku pattern", call=by_plain),
            Case("orjson + jsonschema", call=by_jsonschema),
            Case("msgspec decode + jsonschema-rs", call=by_jsonschema_rs),
        ],
        "Decoding and validating the same body.",
    )
    return [layer, library]


def jsonschema_peer(app: Any) -> Any:
    """The hand-written alternative: a BaseHTTPMiddleware validating with jsonschema."""
    import json

    import jsonschema
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import JSONResponse

    validator = jsonschema.Draft202012Validator(ORDER_SCHEMA)

    class SchemaMiddleware(BaseHTTPMiddleware):
        async def dispatch(self, request: Any, call_next: Any) -> Any:
            if request.method != "POST":  # like the guard: only routes with a body schema
                return await call_next(request)
            try:
                validator.validate(json.loads(await request.body()))
            except (ValueError, jsonschema.ValidationError):
                return JSONResponse({"detail": "invalid"}, status_code=422)
            return await call_next(request)

    return SchemaMiddleware(app)


# --- access log ------------------------------------------------------------------------------


def _null_logger(name: str, handler_class: Any = None) -> Any:
    import logging

    from asgi_guard import JSONLinesHandler

    logger = logging.getLogger(name)
    logger.handlers.clear()
    stream = open(os.devnull, "w")  # noqa: SIM115 - lives for the process
    logger.addHandler((handler_class or JSONLinesHandler)(stream))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def logging_peer(app: Any, logger: Any) -> Any:
    """The hand-written alternative: a BaseHTTPMiddleware logging each request."""
    import time as _time

    from starlette.middleware.base import BaseHTTPMiddleware

    class LoggingMiddleware(BaseHTTPMiddleware):
        async def dispatch(self, request: Any, call_next: Any) -> Any:
            start = _time.perf_counter()
            response = await call_next(request)
            logger.info(
                "%s %s %s %.3f",
                request.method,
                request.url.path,
                response.status_code,
                (_time.perf_counter() - start) * 1000,
                extra={"client": request.client.host if request.client else None},
            )
            return response

    return LoggingMiddleware(app)


def accesslog_layer() -> list[Group]:
    import logging

    from asgi_guard import AccessLogMiddleware

    on = _null_logger("bench.access")
    stdlib = _null_logger("bench.access.stdlib", logging.StreamHandler)
    off = logging.getLogger("bench.off")
    off.setLevel(logging.WARNING)
    peer_logger = _null_logger("bench.peer", logging.StreamHandler)
    minimal = _null_logger("bench.minimal", logging.StreamHandler)
    get = scope_factory([(b"referer", b"https://example.com/page")])
    return [
        Group(
            "layer:accesslog",
            [
                Case("raw ASGI app", raw_app, get),
                Case(
                    "AccessLog, JSONLinesHandler to a null stream",
                    AccessLogMiddleware(raw_app, logger=on),
                    get,
                ),
                Case(
                    "AccessLog, logging.StreamHandler to a null stream",
                    AccessLogMiddleware(raw_app, logger=stdlib),
                    get,
                ),
                Case("AccessLog, logger disabled", AccessLogMiddleware(raw_app, logger=off), get),
                Case(
                    "yardstick: minimal access-log layer, the same record",
                    MinimalAccessLog(raw_app, minimal),
                    get,
                ),
                Case("peer: logging BaseHTTPMiddleware", logging_peer(raw_app, peer_logger), get),
            ],
        ),
        logging_references(),
    ]


def logging_references() -> Group:
    """The yardsticks the access-log target was set against, measured in the same run: a plain
    ``logger.info(extra=...)`` with an orjson formatter, and orjson plus a stream write alone."""
    import logging

    import orjson

    class OrjsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return orjson.dumps({key: getattr(record, key) for key in names}).decode()

    fields: dict[str, Any] = {
        "method": "GET",
        "path": "/items",
        "query": "",
        "status": 200,
        "duration_ms": 0.012,
        "bytes": 15,
        "client": "203.0.113.7",
        "scheme": "https",
        "http_version": "1.1",
        "user_agent": "bench/1.0",
        "referer": "https://example.com/page",
        "request_id": "3f9a0c1d2e4b-42",
        "sub": None,
        "code": None,
        "ratelimit": None,
        "disconnected": False,
    }
    names = ("msg", "created", *fields)
    logger = _null_logger("bench.reference", logging.StreamHandler)
    logger.handlers[0].setFormatter(OrjsonFormatter())
    stream = open(os.devnull, "w")  # noqa: SIM115 - lives for the process

    async def logger_info() -> None:
        logger.info("access", extra=fields)

    async def orjson_and_write() -> None:
        stream.write(orjson.dumps(fields).decode() + "\n")
        stream.flush()

    return Group(
        "library:logging",
        [
            Case("empty coroutine", call=empty_coroutine),
            Case("logger.info(extra=...), orjson formatter, null stream", call=logger_info),
            Case("orjson.dumps + stream write and flush", call=orjson_and_write),
        ],
        "The reference points of the access-log target, in the same run.",
    )


# --- the whole stack --------------------------------------------------------------------------


def peer_stack(app: Any) -> Any:
    """The same jobs done by the peers: uvicorn-style proxy headers aside, Starlette's HTTPS
    redirect, slowapi, pyjwt and jsonschema in BaseHTTPMiddlewares, and a logging middleware."""
    import logging

    from slowapi import Limiter
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address
    from starlette.applications import Starlette
    from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware as StarletteHTTPS
    from starlette.routing import Mount

    m = jwt_material()
    _null_logger("bench.peerstack")
    public_pem = m["rsa"].get_op_key("verify")
    inner = jsonschema_peer(app)
    inner = pyjwt_peer(inner, public_pem, "RS256")
    limited = Starlette(routes=[Mount("/", app=inner)])
    limited.state.limiter = Limiter(key_func=get_remote_address, default_limits=[BIG_LIMIT])
    limited.add_middleware(SlowAPIASGIMiddleware)
    outer = StarletteHTTPS(limited)
    return logging_peer(outer, logging.getLogger("bench.peerstack"))


def stacks() -> list[Group]:
    """The whole stack as guard() builds it (see :mod:`benchmarks.stack`)."""
    from .stack import stacks as build

    return build()


def metrics_layer() -> Group:
    """The decision metrics: the hook alone, and the OpenTelemetry SDK's counter and histogram."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from asgi_guard import MetricsMiddleware
    from asgi_guard.metrics import AppTimer

    get = scope_factory()
    layers = ["https", "ratelimit", "jwt", "validation"]
    routes = ["GET /items", "POST /orders", "/orders/{id}"]
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return Group(
        "layer:metrics",
        [
            Case("raw ASGI app", raw_app, get),
            Case(
                "Metrics on_decision hook (4 layers)",
                MetricsMiddleware(
                    raw_app,
                    layers=layers,
                    routes=routes,
                    otel=False,
                    on_decision=lambda decision: None,
                ),
                get,
            ),
            Case(
                "Metrics OpenTelemetry SDK (4 layers, histogram)",
                MetricsMiddleware(
                    AppTimer(raw_app), layers=layers, routes=routes, meter_provider=provider
                ),
                get,
            ),
        ],
        "Off, the layer is not in the stack and costs nothing.",
    )


#: Group-name prefixes each builder makes, so --only builds (and imports) just what it runs.
BUILDERS: list[tuple[tuple[str, ...], Callable[[], Group | list[Group]]]] = [
    (("floor",), floor),
    (("layer:proxy",), proxy_layer),
    (("layer:https",), https_layer),
    (("routes",), routes),
    (("layer:jwt", "library:jwt"), jwt_layer),
    (("layer:ratelimit", "library:limits", "peer:ratelimit"), ratelimit_layer),
    (("layer:validation", "library:validation"), validation_layer),
    (("layer:accesslog", "library:logging"), accesslog_layer),
    (("layer:metrics",), metrics_layer),
    (("stack:get", "stack:post", "stack:layers"), stacks),
    (("layer:headers", "layer:hosts"), lambda: _headers_groups()),
]


def _headers_groups() -> list[Group]:
    from .headers import build  # imports this module: loaded only when run

    return build()


def _ratelimit_decisions() -> Group:
    from .ratelimit_redis import ratelimit_decisions  # starts a redis-server: only when run

    return ratelimit_decisions()


BUILDERS.append((("decision:ratelimit",), _ratelimit_decisions))


def build_groups(only: list[str] | None = None) -> list[Group]:
    """Every group, or those whose name starts with one of ``only``."""
    groups: list[Group] = []
    for names, builder in BUILDERS:
        if only and not any(name.startswith(prefix) for name in names for prefix in only):
            continue
        built = builder()
        groups.extend(built if isinstance(built, list) else [built])
    if only:
        groups = [g for g in groups if any(g.name.startswith(prefix) for prefix in only)]
    return groups


def _percaller_groups() -> list[Group]:
    from .percaller import build  # imports this module: loaded only when run

    return build()


BUILDERS.append((("layer:percaller-ratelimit", "layer:percaller-jwt"), _percaller_groups))
