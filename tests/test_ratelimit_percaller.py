"""Caller-dependent rate limits: a limit chosen by a verified claim, and callables for limit,
cost and exemption (sync and async), on memory and real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from asgi_guard import (
    ConfigurationError,
    Decision,
    JWTAuthMiddleware,
    MetricsMiddleware,
    RateLimitMiddleware,
    guard,
)
from asgi_guard._asgi import Scope, request_info

from .conftest import RecordingApp, client_for
from .integrations.tokens import SECRET
from .servers import uvicorn_server
from .test_ratelimit import limiter, storage  # noqa: F401  # the shared fixtures

pytestmark = pytest.mark.anyio

AUDIENCE = "plans-api"
PLANS = {"claim": "plan", "values": {"free": "2/minute", "pro": "5/minute"}, "default": "1/minute"}
#: A fixed clock at the start of a minute, so the fields' reset is exact.
WINDOW_START = 1_800_000_000.0
#: Decisions guard()'s hook receives (named as "tests.test_ratelimit_percaller:DECISIONS.append").
DECISIONS: list[Decision] = []


def token(secret: str = SECRET, exp_in: int = 300, **claims: Any) -> str:
    now = int(time.time())
    body = {"aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + exp_in, **claims}
    return jwt.encode(
        {"alg": "HS256"}, body, OctKey.import_key(secret.encode()), algorithms=["HS256"]
    )


def auth(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


def plan_stack(app: RecordingApp, **jwt_options: Any) -> Any:
    """JWT, then a limiter keyed by subject whose limit the ``plan`` claim chooses."""
    layer = RateLimitMiddleware(
        app, limit=PLANS, key="sub", strategy="moving-window", clock=lambda: WINDOW_START
    )
    return JWTAuthMiddleware(layer, secret=SECRET, audience=AUDIENCE, **jwt_options)


async def admitted(asgi: Any, headers: dict[str, str], n: int, path: str = "/x") -> list[int]:
    async with client_for(asgi) as client:
        return [(await client.get(path, headers=headers)).status_code for _ in range(n)]


# --- a limit chosen by a verified claim --------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "limit"),
    [({"plan": "pro"}, 5), ({"plan": "free"}, 2), ({}, 1), ({"plan": "gold"}, 1)],
)
async def test_claim_chooses_the_limit_and_headers_show_it(
    app: RecordingApp, claims: dict[str, Any], limit: int
) -> None:
    """Each plan gets its own limit exactly; an absent or unlisted plan gets the default, and
    the RateLimit fields name the limit that applied."""
    stack = plan_stack(app)
    headers = auth(token(sub=f"user-{uuid.uuid4().hex[:6]}", **claims))
    async with client_for(stack) as client:
        first = await client.get("/x", headers=headers)
        statuses = [first.status_code] + [
            (await client.get("/x", headers=headers)).status_code for _ in range(limit)
        ]
    assert statuses == [200] * limit + [429]
    assert first.headers["ratelimit-policy"] == f'"{limit}-per-60s";q={limit};w=60'
    assert first.headers["ratelimit"] == f'"{limit}-per-60s";r={limit - 1};t=60'


@pytest.mark.parametrize("plan", [["pro"], 5, True, {"pro": 1}, None])
async def test_non_string_claims_get_the_default(app: RecordingApp, plan: Any) -> None:
    """A plan claim that is not a string (list, number, bool, object, null) never matches."""
    stack = plan_stack(app)
    headers = auth(token(sub=uuid.uuid4().hex, plan=plan))
    assert await admitted(stack, headers, 2) == [200, 429]


async def test_forged_plan_claim_on_a_public_route_gets_the_default(app: RecordingApp) -> None:
    """A token with ``plan = pro`` whose signature is wrong (or that expired) is never read:
    on a public route the caller is anonymous and gets the default limit."""
    layer = RateLimitMiddleware(app, limit=PLANS, key="sub")
    stack = JWTAuthMiddleware(layer, secret=SECRET, audience=AUDIENCE, default="public")
    forged = token(secret="an-attacker-secret-of-32-bytes!!", plan="pro", sub="mallory")
    assert await admitted(stack, auth(forged), 2) == [200, 429]
    expired = token(exp_in=-3600, plan="pro", sub="mallory")
    assert await admitted(stack, auth(expired), 1) == [429]  # same client IP, same default bucket
    assert [scope["user"].is_authenticated for scope in app.scopes] == [False]


async def test_claims_placed_in_the_scope_by_others_are_not_verified(app: RecordingApp) -> None:
    """Before JWT (or beside another auth layer), a dict in ``scope["auth"]`` is not a verified
    token: the default limit applies whatever it says."""
    layer = RateLimitMiddleware(app, limit=PLANS)

    async def framework_auth(scope: Scope, receive: Any, send: Any) -> None:
        scope["auth"] = {"plan": "pro", "sub": "mallory"}
        await layer(scope, receive, send)

    assert await admitted(framework_auth, {}, 2) == [200, 429]


async def test_claim_limit_counts_exactly_under_concurrency(app: RecordingApp) -> None:
    """60 concurrent requests of one pro caller admit exactly 5."""
    stack = plan_stack(app)
    headers = auth(token(sub=uuid.uuid4().hex, plan="pro"))
    async with client_for(stack) as client:
        results = await asyncio.gather(*(client.get("/x", headers=headers) for _ in range(60)))
    assert sorted(r.status_code for r in results) == [200] * 5 + [429] * 55


# --- callables --------------------------------------------------------------------------------


def header_limit(scope: Scope) -> str:
    """A sync limit callable: 3/minute for callers sending ``x-tier: gold``."""
    return "3/minute" if (b"x-tier", b"gold") in scope["headers"] else "1/minute"


async def async_header_limit(scope: Scope) -> str:
    """The same, async."""
    await asyncio.sleep(0)
    return header_limit(scope)


@pytest.mark.parametrize("func", [header_limit, async_header_limit])
async def test_callable_limit_sync_and_async(
    limiter: Any,  # noqa: F811
    app: RecordingApp,
    storage: str,  # noqa: F811
    func: Any,
) -> None:
    """A callable limit, sync or async, is enforced exactly on memory and Redis, and the
    fields show the limit it chose."""
    run = uuid.uuid4().hex
    mw = limiter(app, limit=func, storage=storage, key=lambda scope: run)
    async with client_for(mw) as client:
        gold = [await client.get("/x", headers={"x-tier": "gold"}) for _ in range(4)]
        plain = [await client.get("/y") for _ in range(1)]
    assert [r.status_code for r in gold] == [200, 200, 200, 429]
    assert gold[0].headers["ratelimit-policy"] == '"3-per-60s";q=3;w=60'
    # Another limit, another counter: the plain caller's 1/minute is fresh.
    assert [r.status_code for r in plain] == [200]
    assert plain[0].headers["ratelimit-policy"] == '"1-per-60s";q=1;w=60'


async def test_callable_limit_is_exact_under_concurrency(
    limiter: Any,  # noqa: F811
    app: RecordingApp,
    storage: str,  # noqa: F811
) -> None:
    """80 concurrent requests through an async limit callable admit exactly its 3."""
    key = uuid.uuid4().hex
    mw = limiter(app, limit=async_header_limit, storage=storage, key=lambda scope: key)
    async with client_for(mw) as client:
        results = await asyncio.gather(
            *(client.get("/x", headers={"x-tier": "gold"}) for _ in range(80))
        )
    assert sorted(r.status_code for r in results) == [200] * 3 + [429] * 77


async def test_cost_and_exempt_callables(app: RecordingApp) -> None:
    """A cost callable counts each request for what it answers; an exempt callable lets its
    requests through uncounted and without RateLimit fields."""

    async def cost(scope: Scope) -> int:
        return 3 if scope["method"] == "POST" else 1

    def exempt(scope: Scope) -> bool:
        return bool(scope["path"] == "/health")

    mw = RateLimitMiddleware(
        app, limit="5/minute", cost=cost, exempt=exempt, strategy="moving-window"
    )
    async with client_for(mw) as client:
        health = [await client.get("/health") for _ in range(10)]
        post = await client.post("/x")
        gets = [(await client.get("/x")).status_code for _ in range(3)]
    assert {r.status_code for r in health} == {200}
    assert all("ratelimit" not in r.headers for r in health)
    assert post.headers["ratelimit"] == '"5-per-60s";r=2;t=60'
    assert gets == [200, 200, 429]


async def test_rule_with_callables_and_a_claim(app: RecordingApp) -> None:
    """Rules take the same forms: a claim limit directly, or a dict with callables."""
    rules = {
        "/plans": PLANS,
        "/upload": {"limit": "4/minute", "cost": lambda scope: 2, "exempt": lambda scope: False},
    }
    layer = RateLimitMiddleware(app, limit="100/minute", rules=rules, key="sub")
    stack = JWTAuthMiddleware(layer, secret=SECRET, audience=AUDIENCE)
    headers = auth(token(sub=uuid.uuid4().hex, plan="free"))
    assert await admitted(stack, headers, 3, "/plans") == [200, 200, 429]
    assert await admitted(stack, headers, 3, "/upload") == [200, 200, 429]


class Boom(Exception):
    """The app's own callable failing."""


def raising(scope: Scope) -> Any:
    raise Boom("the plan service is down")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"limit": raising}, Boom),
        ({"limit": "5/minute", "cost": raising}, Boom),
        ({"limit": "5/minute", "exempt": raising}, Boom),
        ({"limit": lambda scope: None}, ConfigurationError),
        ({"limit": lambda scope: "5/fortnight"}, ConfigurationError),
        ({"limit": "5/minute", "cost": lambda scope: 0}, TypeError),
        ({"limit": "5/minute", "cost": lambda scope: True}, TypeError),
        ({"limit": "5/minute", "exempt": lambda scope: None}, TypeError),
        ({"limit": "5/minute", "exempt": lambda scope: 1}, TypeError),
    ],
)
async def test_failing_callables_fail_the_request(
    app: RecordingApp, options: dict[str, Any], error: type[Exception]
) -> None:
    """A callable that raises or answers the wrong type raises out of the layer (the server's
    500), never reaches the app, and records the ``ratelimit.policy_error`` code."""
    mw = RateLimitMiddleware(app, **options)
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": [],
        "client": ("203.0.113.9", 1),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        raise AssertionError("nothing may be sent")

    with pytest.raises(error):
        await mw(scope, receive, send)
    assert app.calls == 0
    assert request_info(scope).code == "ratelimit.policy_error"


async def test_failing_callable_is_a_500_through_a_framework() -> None:
    """Under Starlette, the error reaches its error middleware: a 500, the endpoint unrun."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    calls: list[str] = []

    async def endpoint(request: Any) -> PlainTextResponse:
        calls.append(request.url.path)
        return PlainTextResponse("ok")

    starlette = Starlette(routes=[Route("/x", endpoint)])
    starlette.add_middleware(RateLimitMiddleware, limit=raising)
    transport = httpx.ASGITransport(app=starlette, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/x")
    assert response.status_code == 500
    assert calls == []


async def test_failing_callable_is_a_500_from_uvicorn(app: RecordingApp) -> None:
    """Under a real uvicorn, a raising limit callable is the server's 500; the app never runs."""
    mw = RateLimitMiddleware(app, limit=raising)
    async with (
        uvicorn_server(mw, uds=False) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as client,
    ):
        response = await client.get("/x")
    assert response.status_code == 500
    assert app.calls == 0


# --- configuration ----------------------------------------------------------------------------


def test_toml_claim_limit_runs_after_jwt(tmp_path: Any) -> None:
    """A claim limit in a TOML file with an identity key builds the identity limiter."""
    path = tmp_path / "guard.toml"
    path.write_text(
        f"""
[jwt]
secret = "{SECRET}"
audience = "{AUDIENCE}"

[rate_limit]
key = "sub"
limit = {{claim = "plan", values = {{free = "2/minute", pro = "5/minute"}}, default = "1/minute"}}

[[routes]]
path = "POST /reports"
limit = {{claim = "plan", values = {{pro = "10/hour"}}, default = "1/hour"}}
cost = 2
"""
    )
    stack = guard(RecordingApp(), path, environ={})
    assert isinstance(stack, JWTAuthMiddleware)
    assert isinstance(stack.app, RateLimitMiddleware)


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"rate_limit": {"limit": PLANS}}, "rate_limit.limit"),
        ({"rate_limit": {"key": "header:x-api-key", "limit": PLANS}}, "rate_limit.limit"),
        ({"rate_limit": {"rules": {"/a": PLANS}}}, "rate_limit.rules['/a']"),
        ({"rate_limit": {"rules": {"/a": {"limit": PLANS, "cost": 2}}}}, "rate_limit.rules['/a']"),
        ({"rate_limit": {}, "routes": [{"path": "/b", "limit": PLANS}]}, "routes[0].limit"),
    ],
)
def test_claim_limit_before_jwt_is_refused(config: dict[str, Any], option: str) -> None:
    """A claim limit in the IP-keyed limiter (which runs before JWT, where no claim is
    verified) is a ConfigurationError naming the option."""
    config = {"jwt": {"secret": SECRET}, **config}
    with pytest.raises(ConfigurationError) as excinfo:
        guard(RecordingApp(), config, environ={})
    assert excinfo.value.option == option
    assert "needs the verified token" in excinfo.value.message


async def test_identity_limit_may_be_chosen_by_a_claim(app: RecordingApp) -> None:
    """With an IP key, ``identity_limit`` takes the claim limit, after JWT."""
    config = {
        "jwt": {"secret": SECRET, "audience": AUDIENCE},
        "rate_limit": {"limit": "100/minute", "identity_limit": PLANS},
    }
    stack = guard(app, config, environ={})
    headers = auth(token(sub=uuid.uuid4().hex, plan="free"))
    assert await admitted(stack, headers, 3) == [200, 200, 429]


@pytest.mark.parametrize(
    ("limit", "option", "message"),
    [
        ({"claim": "plan", "values": {"pro": "5/minute"}}, "rate_limit.limit", "default"),
        ({"claim": "", "values": {"a": "1/minute"}, "default": "1/minute"}, "limit.claim", "must"),
        ({"claim": "plan", "values": {}, "default": "1/minute"}, "limit.values", "must map"),
        (
            {"claim": "plan", "values": {"pro": "5/fortnight"}, "default": "1/minute"},
            "limit.values['pro']",
            "invalid rate",
        ),
    ],
)
def test_bad_claim_limits(limit: dict[str, Any], option: str, message: str) -> None:
    """Malformed claim limits fail at start-up, naming the exact place (a default is required:
    callers without the claim must still be limited)."""
    config = {"jwt": {"secret": SECRET}, "rate_limit": {"key": "sub", "limit": limit}}
    with pytest.raises(ConfigurationError) as excinfo:
        guard(RecordingApp(), config, environ={})
    assert excinfo.value.option.endswith(option)
    assert message in excinfo.value.message


def test_cost_and_exempt_need_a_limit() -> None:
    """``cost=``/``exempt=`` without ``limit=`` would mean nothing: refused."""
    with pytest.raises(ConfigurationError, match="limit"):
        RateLimitMiddleware(RecordingApp(), exempt=lambda scope: True)
    with pytest.raises(ConfigurationError, match="limit"):
        RateLimitMiddleware(RecordingApp(), cost=2)
    with pytest.raises(ConfigurationError, match="exempt"):
        RateLimitMiddleware(RecordingApp(), rules={"/a": {"limit": "1/minute", "exempt": True}})


async def test_metrics_count_plan_refusals_and_policy_errors() -> None:
    """A plan limit's 429 is counted for the rate-limit layer after JWT admitted the request."""
    DECISIONS.clear()
    config = {
        "jwt": {"secret": SECRET, "audience": AUDIENCE},
        "rate_limit": {"key": "sub", "limit": PLANS},
        "metrics": {
            "otel": False,
            "on_decision": "tests.test_ratelimit_percaller:DECISIONS.append",
        },
    }
    stack = guard(RecordingApp(), config, environ={})
    headers = auth(token(sub=uuid.uuid4().hex))
    assert await admitted(stack, headers, 2) == [200, 429]
    assert [
        Decision("jwt", "ok", "*", False),
        Decision("ratelimit", "ok", "*", False),
        Decision("jwt", "ok", "*", False),
        Decision("ratelimit", "ratelimit.exceeded", "*", False),
    ] == DECISIONS


async def test_metrics_count_a_failing_callable() -> None:
    """A callable that raises is counted as ``ratelimit.policy_error``, never as ``ok``."""
    DECISIONS.clear()
    inner = RateLimitMiddleware(RecordingApp(), limit=raising)
    mw = MetricsMiddleware(
        inner, layers=["ratelimit", "validation"], otel=False, on_decision=DECISIONS.append
    )
    async with client_for(mw) as client:
        with pytest.raises(Boom):
            await client.get("/x")
    assert [Decision("ratelimit", "ratelimit.policy_error", "*", False)] == DECISIONS
