"""Decision metrics: the OpenTelemetry counter and histogram, and the on_decision hook."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from asgi_guard import ConfigurationError, Decision, MetricsMiddleware, guard
from asgi_guard._asgi import Problem, Receive, Scope, Send
from asgi_guard.metrics import AppTimer

from .conftest import RecordingApp, client_for, run_websocket
from .integrations.tokens import SECRET, bearer

pytestmark = pytest.mark.anyio

#: Decisions that guard()'s hook (named in config as "tests.test_metrics:DECISIONS.append")
#: receives.
DECISIONS: list[Decision] = []


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def reader_and_provider() -> tuple[InMemoryMetricReader, MeterProvider]:
    reader = InMemoryMetricReader()
    return reader, MeterProvider(metric_readers=[reader])


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    found = [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]
    return found


def counts(reader: InMemoryMetricReader) -> dict[tuple[str, str, str], int]:
    return {
        (p.attributes["layer"], p.attributes["code"], p.attributes["route"]): p.value
        for p in points(reader, "asgi_guard.decisions")
    }


def refusing(code: str) -> Any:
    """An app standing for a layer that refuses every request with ``code``."""
    problem = Problem(403, code, "Forbidden", "No.")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await problem.send(scope, receive, send)

    return app


async def test_counter_per_layer_and_route() -> None:
    """A refusal counts its layer's code, the layers before it ``ok``, the layers after it
    nothing; the route is the matched pattern, never the raw path."""
    reader, provider = reader_and_provider()
    mw = MetricsMiddleware(
        refusing("jwt.insufficient_scope"),
        layers=["https", "ratelimit", "jwt", "validation"],
        routes=["GET /orders/{id}", "/health"],
        meter_provider=provider,
    )
    async with client_for(mw) as client:
        for path in ("/orders/1", "/orders/2", "/elsewhere"):
            assert (await client.get(path)).status_code == 403
    assert counts(reader) == {
        ("https", "ok", "GET /orders/{id}"): 2,
        ("ratelimit", "ok", "GET /orders/{id}"): 2,
        ("jwt", "jwt.insufficient_scope", "GET /orders/{id}"): 2,
        ("https", "ok", "*"): 1,
        ("ratelimit", "ok", "*"): 1,
        ("jwt", "jwt.insufficient_scope", "*"): 1,
    }


async def test_histogram_records_the_time_outside_the_app() -> None:
    """The histogram holds the stack's time less the app's, read from an injected clock."""
    reader, provider = reader_and_provider()
    clock = Clock()

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        clock.now += 5.0  # the app's own time: not the stack's
        await RecordingApp()(scope, receive, send)

    async def layer(scope: Scope, receive: Receive, send: Send) -> None:
        clock.now += 0.25  # a layer's work before the app
        await AppTimer(slow_app, clock=clock)(scope, receive, send)

    mw = MetricsMiddleware(layer, layers=["jwt"], meter_provider=provider, clock=clock)
    async with client_for(mw) as client:
        assert (await client.get("/x")).status_code == 200
    (point,) = points(reader, "asgi_guard.added_duration")
    assert (point.count, point.sum) == (1, 0.25)
    assert point.explicit_bounds[:3] == (1e-6, 2.5e-6, 5e-6)  # microseconds, not milliseconds


async def test_app_exception_still_counts_the_admissions() -> None:
    """An app that raises was admitted by every layer: the decisions are counted, the error
    propagates unchanged."""
    seen: list[Decision] = []

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("app bug")

    mw = MetricsMiddleware(broken, layers=["jwt"], otel=False, on_decision=seen.append)
    async with client_for(mw) as client:
        with pytest.raises(RuntimeError, match="app bug"):
            await client.get("/x")
    assert seen == [Decision("jwt", "ok", "*", False)]


async def test_shadow_decision_is_marked_and_later_layers_still_count() -> None:
    """A shadow rate-limit decision is counted with its code and ``shadow``; the request went
    on, so the layers after it count too."""
    seen: list[Decision] = []

    async def shadow_then_ok(scope: Scope, receive: Receive, send: Send) -> None:
        info = scope["state"]["asgi_guard"]
        info.code, info.shadow = "ratelimit.exceeded", True
        await RecordingApp()(scope, receive, send)

    mw = MetricsMiddleware(
        shadow_then_ok, layers=["ratelimit", "jwt"], otel=False, on_decision=seen.append
    )
    async with client_for(mw) as client:
        assert (await client.get("/x")).status_code == 200
    assert seen == [
        Decision("ratelimit", "ratelimit.exceeded", "*", True),
        Decision("jwt", "ok", "*", False),
    ]


async def test_websocket_refusal_counted_and_lifespan_passes() -> None:
    """A websocket handshake refused before accept counts like an http refusal; lifespan
    scopes are not requests."""
    seen: list[Decision] = []
    mw = MetricsMiddleware(
        refusing("https.insecure"), layers=["https"], otel=False, on_decision=seen.append
    )
    sent = await run_websocket(mw)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    lifespan: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        lifespan.append(scope["type"])

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        return None

    await MetricsMiddleware(app, layers=["https"], otel=False, on_decision=seen.append)(
        {"type": "lifespan"}, receive, send
    )
    assert seen == [Decision("https", "https.insecure", "*", False)]
    assert lifespan == ["lifespan"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layers": ["jwt"], "otel": False}, "otel: with otel off, give on_decision"),
        ({"layers": ["jwt", "jwtt"]}, "layers: unknown layer 'jwtt'"),
        ({"layers": "jwt"}, "layers: must be a list of layer names, not one string"),
    ],
)
def test_configuration_that_cannot_record_is_refused(options: dict[str, Any], message: str) -> None:
    """A metrics layer that would record nowhere, or count a layer that does not exist, fails
    at construction."""
    with pytest.raises(ConfigurationError) as excinfo:
        MetricsMiddleware(RecordingApp(), **options)
    assert str(excinfo.value).startswith(message)


async def test_guard_counts_every_layer_of_the_stack() -> None:
    """From one config: each layer's decisions through the hook named in ``[metrics]``, with
    routes from every section, spelled differently in two of them."""
    DECISIONS.clear()
    config = {
        "https": {},
        "rate_limit": {"limit": "100/minute", "rules": {"GET|HEAD /orders": "50/minute"}},
        "jwt": {"secret": SECRET, "audience": "metrics-api"},
        "validation": {},
        "metrics": {"otel": False, "on_decision": "tests.test_metrics:DECISIONS.append"},
        "routes": [{"path": "GET /orders", "scopes": ["orders:read"]}],
    }
    app = RecordingApp()
    async with client_for(guard(app, config, environ={})) as client:
        assert (await client.get("http://testserver/orders")).status_code == 308
        assert (await client.get("/orders")).status_code == 401
        ok = bearer("metrics-api", "orders:read")
        assert (await client.get("/orders", headers=ok)).status_code == 200
        assert (await client.get("/other", headers=ok)).status_code == 200
    assert app.calls == 2
    route = "GET /orders"
    assert [
        Decision("https", "https.redirect", route, False),
        Decision("https", "ok", route, False),
        Decision("ratelimit", "ok", route, False),
        Decision("jwt", "jwt.missing", route, False),
        *(Decision(layer, "ok", route, False) for layer in ("https", "ratelimit", "jwt")),
        Decision("validation", "ok", route, False),
        *(Decision(layer, "ok", "*", False) for layer in ("https", "ratelimit", "jwt")),
        Decision("validation", "ok", "*", False),
    ] == DECISIONS


async def test_histogram_can_be_left_out() -> None:
    """``histogram = false`` records the counter alone."""
    reader, provider = reader_and_provider()
    mw = MetricsMiddleware(RecordingApp(), layers=["jwt"], histogram=False, meter_provider=provider)
    async with client_for(mw) as client:
        assert (await client.get("/x")).status_code == 200
    assert counts(reader) == {("jwt", "ok", "*"): 1}
    assert points(reader, "asgi_guard.added_duration") == []


def test_guard_refuses_an_unknown_hook() -> None:
    """A hook that cannot be imported fails at start-up, naming the option."""
    with pytest.raises(ConfigurationError) as excinfo:
        guard(RecordingApp(), {"metrics": {"on_decision": "tests.nowhere:hook"}}, environ={})
    assert str(excinfo.value).startswith("metrics.on_decision: cannot import 'tests.nowhere:hook'")
