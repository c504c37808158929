"""Decision metrics: one counter per layer decision, and the time the stack adds per request.

Every refusal in the stack goes through :class:`~asgi_guard._asgi.Problem`, which records its
stable code (``jwt.expired``, ``ratelimit.exceeded``, ...) in the request's record. The code's
prefix names the layer that refused; the layers before it in the stack admitted the request,
the layers after it never saw it. So one outer layer derives every layer's decision from the
stack order and the final code, and no layer carries a metrics hook on its hot path.

The counter ``asgi_guard.decisions`` has the attributes ``layer``, ``code`` (the stable code,
or ``ok``) and ``route`` (the matched route pattern, never the raw path, so its cardinality is
bounded by the config). The histogram ``asgi_guard.added_duration`` records the seconds the
stack spent on a request outside the app.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, NamedTuple

from ._asgi import ASGIApp, Receive, Scope, Send, request_info
from .errors import ConfigurationError
from .routes import RouteTable

__all__ = ["AppTimer", "Decision", "MetricsMiddleware"]

#: The route attribute of requests that match no configured pattern.
UNMATCHED: Final = "*"
_STATE_KEY: Final = "asgi_guard.app_seconds"
#: Seconds: the stack adds microseconds (the SDK's default buckets are for milliseconds).
_BUCKETS: Final = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 0.1]
#: Layers that can refuse, by the prefix of their refusal codes.
KNOWN_LAYERS: Final = frozenset({"host", "https", "ratelimit", "jwt", "validation"})


class Decision(NamedTuple):
    """One layer's decision on one request, as the ``on_decision`` hook receives it."""

    layer: str
    """The layer, by the prefix of its codes: ``host``, ``https``, ``ratelimit``, ``jwt``,
    ``validation``."""
    code: str
    """``ok``, or the stable code of the refusal (or of a shadow decision)."""
    route: str
    """The matched route pattern, or ``*``."""
    shadow: bool
    """True for a rate limit in shadow mode that would have refused."""


class AppTimer:
    """Times the app alone, so :class:`MetricsMiddleware` can subtract it from the stack's time.

    ``guard()`` puts it directly around the app. The time includes the app's own ``send``
    calls (the layers' response wrappers and the server's writes), which cannot be told apart
    from inside the app.
    """

    def __init__(self, app: ASGIApp, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = self.clock()
        try:
            await self.app(scope, receive, send)
        finally:
            state = scope.get("state")
            if state is not None:
                state[_STATE_KEY] = state.get(_STATE_KEY, 0.0) + (self.clock() - started)


class MetricsMiddleware:
    """Counts every layer's decision and records the time the stack adds to each request.

    Place it outside every layer whose decisions it counts; ``layers`` lists those layers by
    their code prefix, outermost first. Through the OpenTelemetry metrics API (the ``metrics``
    extra) when ``meter_provider`` is given or ``otel`` is true; through ``on_decision`` for
    other systems. With neither, it is a :class:`ConfigurationError`: a metrics layer that
    records nowhere cannot mean what it says.

    Args:
        layers: the layers whose decisions are counted, by code prefix, outermost first.
        routes: route patterns; the ``route`` attribute is the one a request matches, or ``*``.
        otel: record through the OpenTelemetry metrics API.
        histogram: also record ``asgi_guard.added_duration`` (the SDK's histogram is the
            costlier half of the layer: see docs/metrics.md).
        meter_provider: an OpenTelemetry ``MeterProvider``; the global one by default.
        on_decision: called with every :class:`Decision`, in the request's task.
        clock: a monotonic clock in seconds; injectable for tests.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        layers: Sequence[str],
        routes: Iterable[str] = (),
        otel: bool = True,
        histogram: bool = True,
        meter_provider: Any = None,
        on_decision: Callable[[Decision], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.clock = clock
        if isinstance(layers, str):
            raise ConfigurationError("layers", "must be a list of layer names, not one string")
        unknown = [layer for layer in layers if layer not in KNOWN_LAYERS]
        if unknown:
            raise ConfigurationError(
                "layers", f"unknown layer {unknown[0]!r}; known: {', '.join(sorted(KNOWN_LAYERS))}"
            )
        # A layer used twice (an IP and an identity rate limit) is counted once, where it
        # first decides: the code alone cannot tell which of the two refused.
        self.layers: tuple[str, ...] = tuple(dict.fromkeys(layers))
        self.routes: RouteTable[str] = RouteTable(
            {pattern: pattern for pattern in dict.fromkeys(routes)}, option="routes"
        )
        self.on_decision = on_decision
        # Counted in this dict on the hot path; the OpenTelemetry SDK reads it when it
        # collects (an observable counter). Counter.add with attributes per decision measured
        # about 25 us a request for four layers on a loaded machine; a dict increment ~0.1 us.
        self._counts: dict[tuple[str, str, str, bool], int] = {}
        # One Decision per (layer, code, route, shadow), made once: bounded by the config.
        self._decisions: dict[tuple[str, str, str, bool], Decision] = {}
        self._histogram: Any = None
        if otel or meter_provider is not None:
            meter = _meter(meter_provider)
            meter.create_observable_counter(
                "asgi_guard.decisions",
                callbacks=[self._observe],
                unit="{decision}",
                description="Decisions of the guard's layers, by layer, code and route.",
            )
            if histogram:
                self._histogram = meter.create_histogram(
                    "asgi_guard.added_duration",
                    unit="s",
                    description="Time the guard's layers added to a request, outside the app.",
                    explicit_bucket_boundaries_advisory=_BUCKETS,
                )
        elif on_decision is None:
            raise ConfigurationError(
                "otel", "with otel off, give on_decision: nothing would record"
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = self.clock()
        info = request_info(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            elapsed = self.clock() - started
            route = self.routes.match_scope_or_none(scope) if self.routes else None
            self._record(info.code, info.shadow, route or UNMATCHED)
            if self._histogram is not None:
                app_seconds: float = scope["state"].get(_STATE_KEY, 0.0)
                self._histogram.record(max(elapsed - app_seconds, 0.0))

    def _record(self, code: str | None, shadow: bool, route: str) -> None:
        refused_by = code.partition(".")[0] if code is not None else None
        # Only a rate limit decides in shadow mode; a later refusal overwrites its code.
        shadow = shadow and refused_by == "ratelimit"
        if refused_by == "target":
            # An unreadable target (asgi_guard.target), refused by whichever layer picks a
            # route first: one decision of its own, and no layer counted as "ok".
            assert code is not None
            self._count(refused_by, code, route, False)
            return
        for layer in self.layers:
            if layer == refused_by:
                assert code is not None
                self._count(layer, code, route, shadow)
                if not shadow:
                    return  # the layers after it never saw the request
            else:
                self._count(layer, "ok", route, False)

    def _count(self, layer: str, code: str, route: str, shadow: bool) -> None:
        key = (layer, code, route, shadow)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        if self.on_decision is not None:
            decision = self._decisions.get(key)
            if decision is None:
                decision = self._decisions[key] = Decision(layer, code, route, shadow)
            self.on_decision(decision)

    def _observe(self, options: Any) -> Iterable[Any]:
        """The counts so far, as the OpenTelemetry SDK collects them (cumulative)."""
        from opentelemetry.metrics import Observation

        for (layer, code, route, shadow), value in list(self._counts.items()):
            attributes: dict[str, Any] = {"layer": layer, "code": code, "route": route}
            if shadow:
                attributes["shadow"] = True
            yield Observation(value, attributes)


def _meter(meter_provider: Any) -> Any:
    try:
        from opentelemetry import metrics
    except ImportError:  # pragma: no cover - the extra is installed wherever tests run
        raise ConfigurationError(
            "metrics", "OpenTelemetry metrics need the extra: pip install 'asgi-guard[metrics]'"
        ) from None
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    return provider.get_meter("asgi_guard")
