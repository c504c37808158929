"""RateLimitMiddleware: per-route limits, 429 problem+json and IETF RateLimit fields."""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.storage import storage_from_string

from .._asgi import ASGIApp, Problem, Receive, Scope, Send, request_info
from ..errors import ConfigurationError
from ..routes import RouteTable
from ..target import TargetError
from .breaker import Breaker
from .fields import Shown, tighter
from .keys import KeyFunc, encode_id, key_function
from .memory import MemoryCounters
from .policies import NO_LIMIT, CallerPolicy, Policy, is_claim_limit, policy_of
from .windows import STRATEGIES

__all__ = ["RateLimitMiddleware"]

logger = logging.getLogger("asgi_guard.ratelimit")

_EXCEEDED: Final = Problem(
    429, "ratelimit.exceeded", "Too Many Requests", "The rate limit for this route was exceeded."
)
_UNAVAILABLE: Final = Problem(
    503, "ratelimit.unavailable", "Service Unavailable", "Rate limiting is unavailable."
)
_POLICY_ERROR: Final = "ratelimit.policy_error"
_EXEMPT: Final = "exempt"
_ON_ERROR: Final = ("open", "closed", "local")


def _counters(uri: Any, strategy: str, timeout: float) -> Any:
    """The counters for ``uri``: in memory, on Redis (our scripts), or any limits storage."""
    if not isinstance(uri, str) or "://" not in uri:
        # Never echoed with an "@": a mistyped URI still holds its password.
        shown = "that" if "@" in str(uri) else repr(uri)
        raise ConfigurationError(
            "storage", f"must be a storage URI such as 'memory://', not {shown}"
        )
    scheme = uri.split("://", 1)[0].lower()
    base = scheme.removeprefix("async+")
    if base == "memory":
        return MemoryCounters(strategy)
    if base in ("redis", "rediss", "redis+unix", "redis+cluster", "rediss+cluster"):
        if importlib.util.find_spec("redis") is None:
            raise ConfigurationError(
                "storage", f"{base}:// needs a Redis client: pip install 'asgi-guard[redis]'"
            )
        from .redis import RedisCounters

        try:
            return RedisCounters(uri, strategy, timeout)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError("storage", f"invalid Redis URI: {exc}") from None
    if base.startswith("valkey") and importlib.util.find_spec("valkey") is None:
        raise ConfigurationError("storage", f"{base}:// needs valkey: pip install valkey")
    from .generic import LimitsCounters

    options: dict[str, Any] = {}
    if base.startswith("redis") and importlib.util.find_spec("redis") is not None:
        options["implementation"] = "redispy"
    try:
        # wrap_exceptions: every client library's errors arrive as limits' StorageError.
        full = uri if scheme.startswith("async+") else "async+" + uri
        storage = storage_from_string(full, wrap_exceptions=True, **options)
        return LimitsCounters(storage, strategy, timeout)
    except LimitsConfigurationError as exc:
        raise ConfigurationError("storage", str(exc)) from None
    except NotImplementedError:
        # The scheme only: the URI may carry a password.
        raise ConfigurationError(
            "strategy", f"{strategy} is not supported by {scheme}:// storage"
        ) from None


class RateLimitMiddleware:
    """Per-route rate limits, answered with 429 problem+json and IETF RateLimit fields.

    Counting is exact and atomic per decision: in process (``memory://``), or on Redis
    (``redis://``, ``rediss://``, ``redis+unix://``, ``redis+cluster://``) with one Lua script
    per decision, shared by every process; other ``limits`` URIs (``valkey://``,
    ``redis+sentinel://``...) go through limits' strategies. A refused request gets 429 with
    ``Retry-After`` (RFC 9110 section 10.2.3): the exact whole seconds after which a retry is
    admitted. It consumes nothing and never reaches the app. Responses, refusals included,
    carry ``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers) for
    the tightest limit, one pair however many rate-limit layers the request passed.

    Args:
        limit: default limit for routes no rule matches, e.g. ``"100/minute"`` or
            ``"10/second; 1000/hour"`` (all enforced); None limits only the ``rules`` routes.
            Per caller: ``{"claim": "plan", "values": {"pro": "1000/minute"}, "default":
            "10/minute"}`` (a claim of the verified token chooses; place the layer after
            JWTAuthMiddleware), or a callable ``(scope) -> str``, sync or async.
        rules: route pattern -> a limit (as ``limit``), ``"exempt"``, or a dict with ``limit``,
            ``cost``, ``group`` (rules sharing a group name share counters) and ``exempt``.
        cost: hits a request of the default limit counts for: a whole number >= 1, or a
            callable ``(scope) -> int``, sync or async.
        exempt: a callable ``(scope) -> bool``, sync or async: True lets the request through
            uncounted. A callable that raises or answers the wrong type fails the request
            (the exception propagates, a 500): it never admits a request unlimited.
        strategy: ``"sliding-window"``, ``"moving-window"`` or ``"fixed-window"``.
        storage: a storage URI; on Redis, ``?max_connections=N`` bounds the calls in flight
            per process (32 by default; the others wait their turn).
        key: ``"ip"`` (``scope["client"]``, as resolved by ProxyHeadersMiddleware),
            ``"sub"``, ``"claim:<name>"``, ``"header:<name>"``, or a callable
            ``(scope) -> str | None``. Identity keys fall back to the IP when absent.
        headers: True (IETF fields), ``"legacy"`` (also ``X-RateLimit-*``), or False.
        shadow: count and record decisions, but never refuse (a dry run).
        on_storage_error: while a network storage fails, ``"open"`` admits requests,
            ``"closed"`` answers 503, ``"local"`` counts in process against each limit divided
            by ``processes``.
        processes: how many processes share the storage (for ``"local"``).
        storage_timeout: seconds a network storage may keep a call waiting (waiting for the
            event loop does not count).
        ipv6_prefix: IPv6 clients are counted per network of this prefix length (64: one
            subscriber's network; 128: each address). IPv4-mapped addresses count as IPv4.
        clock: returns the current Unix time (for windows, Retry-After and the breaker).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: str | Mapping[str, Any] | Callable[[Scope], Any] | None = None,
        rules: Mapping[str, Any] | None = None,
        cost: int | Callable[[Scope], Any] = 1,
        exempt: Callable[[Scope], Any] | None = None,
        strategy: Literal["sliding-window", "moving-window", "fixed-window"] = "sliding-window",
        storage: str = "memory://",
        key: str | KeyFunc = "ip",
        headers: bool | Literal["legacy"] = True,
        shadow: bool = False,
        on_storage_error: Literal["open", "closed", "local"] = "open",
        processes: int = 1,
        storage_timeout: float = 0.5,
        ipv6_prefix: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                "strategy", f"must be one of {', '.join(STRATEGIES)}, not {strategy!r}"
            )
        if on_storage_error not in _ON_ERROR:
            raise ConfigurationError("on_storage_error", "must be 'open', 'closed' or 'local'")
        if headers not in (True, False, "legacy"):
            raise ConfigurationError("headers", "must be True, False or 'legacy'")
        if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
            raise ConfigurationError("processes", "must be a whole number >= 1")
        if (
            not isinstance(storage_timeout, (int, float))
            or isinstance(storage_timeout, bool)
            or not storage_timeout > 0
        ):
            raise ConfigurationError("storage_timeout", "must be a number of seconds > 0")
        if (
            not isinstance(ipv6_prefix, int)
            or isinstance(ipv6_prefix, bool)
            or not 1 <= ipv6_prefix <= 128
        ):
            raise ConfigurationError("ipv6_prefix", "must be a prefix length from 1 to 128")
        self.app = app
        self._key = key_function(key, ipv6_prefix)
        self.storage = _counters(storage, strategy, float(storage_timeout))
        self._memory = isinstance(self.storage, MemoryCounters)
        self._prefix = getattr(self.storage, "prefix", "")
        self._close = "}" if self._prefix.endswith("{") else ""
        self.headers = headers
        self._legacy = headers == "legacy"
        self.shadow = shadow
        self.on_storage_error = on_storage_error
        self.clock = clock
        self._breaker = Breaker()
        self._local = MemoryCounters(strategy) if on_storage_error == "local" else None

        self._default: Policy | CallerPolicy | None = None
        if limit is not None or callable(cost) or exempt is not None:
            if limit is None:
                raise ConfigurationError("limit", "cost= and exempt= apply to limit=: give one")
            self._default = policy_of("limit", limit, "d", cost, exempt, processes)
        elif cost != 1:
            raise ConfigurationError("cost", "applies to limit=: give one")
        policies: dict[str, Policy | CallerPolicy] = {}
        for index, (pattern, value) in enumerate((rules or {}).items()):
            option = f"rules[{pattern!r}]"
            if value == _EXEMPT:
                policies[pattern] = NO_LIMIT
                continue
            rule_cost, group, rule_exempt = 1, None, None
            if isinstance(value, Mapping) and not is_claim_limit(value):
                unknown = set(value) - {"limit", "cost", "group", "exempt"}
                if unknown:
                    raise ConfigurationError(option, f"unknown keys {sorted(unknown)}")
                rule_cost = value.get("cost", 1)
                group, rule_exempt = value.get("group"), value.get("exempt")
                value = value.get("limit")
                if group is not None and not isinstance(group, str):
                    raise ConfigurationError(option, "group must be a string")
            bucket = f"g{encode_id(group)}" if group else f"r{index}"
            policies[pattern] = policy_of(option, value, bucket, rule_cost, rule_exempt, processes)
        self._rules: RouteTable[Policy | CallerPolicy] = RouteTable(policies, option="rules")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        policy = self._default
        if self._rules:
            try:
                policy = self._rules.match_scope(scope) or policy
            except TargetError as error:  # a path the app may route elsewhere: no policy fits
                await error.problem.send(scope, receive, send)
                return
        if policy is None or policy is NO_LIMIT:
            await self.app(scope, receive, send)
            return
        if policy.__class__ is CallerPolicy:
            assert isinstance(policy, CallerPolicy)
            try:
                policy, cost = await policy.choose(scope)
            except Exception:
                # The app's own callable failed: the error propagates (a 500, as from the app),
                # and the record says which layer it stopped in; never an unlimited admit.
                request_info(scope).code = _POLICY_ERROR
                raise
            if policy is NO_LIMIT:
                await self.app(scope, receive, send)
                return
        else:
            assert isinstance(policy, Policy)
            cost = policy.cost

        now = self.clock()
        now_ms = round(now * 1000)
        stem = f"{self._prefix}{policy.bucket}/{self._key(scope)}{self._close}"
        items = [
            (stem + suffix, limit, window)
            for suffix, (limit, window) in zip(policy.suffixes, policy.limits, strict=True)
        ]
        shown = True
        if self._memory:
            admitted, figures = self.storage.decide(items, cost, now_ms)
        else:
            breaker = self._breaker
            ticket = breaker.ticket(now)
            decision = None
            if ticket is not None:
                try:
                    if breaker.is_probe(ticket):
                        await self.storage.discard_idle()
                    decision = await self.storage.decide(items, cost, now_ms)
                except Exception as error:  # every client error is a storage failure, never a 500
                    breaker.failure(ticket, self.clock(), error)
                except BaseException:  # cancelled mid-call: a lost probe must not block the next
                    breaker.abandon(ticket, self.clock())
                    raise
                else:
                    breaker.success(ticket, self.clock())
            if decision is None:
                if self._local is None:
                    await self._storage_down(scope, receive, send, now)
                    return
                # Counted in process: the figures are this process's share, not shown.
                items = [
                    (key, n, w) for (key, _, _), (n, w) in zip(items, policy.local, strict=True)
                ]
                decision = self._local.decide(items, cost, now_ms)
                shown = False
            admitted, figures = decision

        # The limit to show: the one refusing longest, or the one with the fewest remaining.
        index = 0
        if admitted:
            for position in range(1, len(figures)):
                if (figures[position][0], -figures[position][1]) < (
                    figures[index][0],
                    -figures[index][1],
                ):
                    index = position
        else:
            for position in range(1, len(figures)):
                if figures[position][1] > figures[index][1]:
                    index = position
        remaining, wait = figures[index]
        reset = -(-wait // 1000)  # whole seconds, rounded up: a retry then is admitted
        if not admitted:
            reset = max(reset, 1)
        info = request_info(scope)
        amount = items[index][1]
        info.note_limit(amount, remaining, reset, not admitted)
        # One RateLimit pair per response, the tightest limit's, whatever the number of layers:
        # the first layer files the record with the context's response hook, later ones update it.
        record: Shown | None = info.ratelimit_fields
        if shown and kind == "http":
            if record is not None:
                if not admitted or tighter(remaining, reset, (0, record.remaining, record.reset)):
                    record.update(
                        policy.policy_headers[index], policy.names[index], amount, remaining, reset
                    )
            elif self.headers:
                record = info.ratelimit_fields = Shown(
                    policy.policy_headers[index],
                    policy.names[index],
                    amount,
                    remaining,
                    reset,
                    self._legacy,
                )
                send = info.add_headers(send, record)
        if not admitted:
            if not self.shadow:
                # The fields come from the record, written by whichever layer filed it.
                extra = [(b"retry-after", b"%d" % reset)]
                await _EXCEEDED.send(scope, receive, send, extra)
                return
            info.code = _EXCEEDED.code
            info.shadow = True
        await self.app(scope, receive, send)

    async def aclose(self) -> None:
        """Close the storage's network connections (call it at shutdown, e.g. in a lifespan)."""
        close = getattr(self.storage, "aclose", None)
        if close is not None:
            await close()

    async def _storage_down(self, scope: Scope, receive: Receive, send: Send, now: float) -> None:
        if self.on_storage_error == "closed":
            retry = max(-int(-self._breaker.retry_after(now) // 1), 1)
            await _UNAVAILABLE.send(scope, receive, send, ((b"retry-after", b"%d" % retry),))
            return
        await self.app(scope, receive, send)
