"""Rate limiting on the ``limits`` library (async API), in memory or on Redis/Valkey."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.errors import StorageError
from limits.storage import storage_from_string

from ._asgi import ASGIApp, BoundedMemo, Problem, Receive, Scope, Send, request_info, with_headers
from .errors import ConfigurationError
from .routes import RouteTable
from .target import TargetError

__all__ = ["RateLimitMiddleware"]

logger = logging.getLogger("asgi_guard.ratelimit")

_STRATEGIES: Final[dict[str, type[RateLimiter]]] = {
    "sliding-window": SlidingWindowCounterRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}
_EXCEEDED: Final = Problem(
    429, "ratelimit.exceeded", "Too Many Requests", "The rate limit for this route was exceeded."
)
_UNAVAILABLE: Final = Problem(
    503, "ratelimit.unavailable", "Service Unavailable", "Rate limiting is unavailable."
)
#: Identifiers made only of these characters (and short) are used as they are; anything else
#: is hashed. Neither "/" (limits' key separator) nor the "=" / "#" markers are in the set, so
#: the encoding is injective: two identities never share a counter.
_SAFE_ID: Final = re.compile(r"[A-Za-z0-9._:@+-]{1,64}")
_BREAKER_MIN, _BREAKER_MAX = 1.0, 30.0
_EXEMPT: Final = "exempt"

KeyFunc = Callable[[Scope], "str | None"]


class _Policy:
    """The limits of one route (or of the default), with precomputed header parts."""

    __slots__ = ("bucket", "cost", "items", "names", "policy_headers", "test_first")

    def __init__(self, items: list[RateLimitItem], bucket: str, cost: int) -> None:
        self.items = items
        self.bucket = bucket
        self.cost = cost
        self.test_first = len(items) > 1
        # RateLimit-Policy items: "name";q=<quota>;w=<window seconds> (structured fields).
        self.names = [b"%d-per-%ds" % (item.amount, item.get_expiry()) for item in items]
        self.policy_headers = [
            b'"%s";q=%d;w=%d' % (name, item.amount, item.get_expiry())
            for name, item in zip(self.names, items, strict=True)
        ]


_NO_LIMIT: Final = _Policy([], "", 0)


def _parse_limit(option: str, value: Any) -> list[RateLimitItem]:
    if not isinstance(value, str):
        raise ConfigurationError(
            option, f"a rate limit is a string like '100/minute', not {value!r}"
        )
    try:
        items = parse_many(value)
    except (ValueError, LimitsConfigurationError):
        raise ConfigurationError(option, f"invalid rate {value!r}") from None
    if not items or any(item.amount < 1 for item in items):
        raise ConfigurationError(option, f"invalid rate {value!r}")
    return items


def _encode_id(value: str) -> str:
    if _SAFE_ID.fullmatch(value):
        return "=" + value
    return "#" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _address_key(host: str, ipv6_prefix: int) -> str:
    """The identity of a client address: IPv4 as it is, IPv6 as its /``ipv6_prefix`` network.

    One subscriber gets a whole /64 (or more) and may use every address in it; counting each
    address apart would let one client multiply its limit by 2**64.
    """
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return "ip" + _encode_id(host)
    if address.ipv4_mapped is not None:
        return "ip" + _encode_id(str(address.ipv4_mapped))
    # The zone id ("%eth0", free text) goes too: it names no other client.
    bits = 128 - ipv6_prefix
    network = ipaddress.IPv6Address(int(address) >> bits << bits)
    return f"ip={network.compressed}@{ipv6_prefix}"


def _key_function(key: str | KeyFunc, ipv6_prefix: int = 64) -> Callable[[Scope], str]:
    """Build the request -> identifier function once; identity keys fall back to the IP."""
    networks = BoundedMemo(max_entries=4096, max_key=64)

    def ip(scope: Scope) -> str:
        client = scope.get("client")
        if not client:
            return "ip=-"
        host: str = client[0]
        if ":" not in host:
            return "ip" + _encode_id(host)
        identity: str | None = networks.get(host)
        if identity is None:
            identity = networks.remember(host, len(host), _address_key(host, ipv6_prefix))
        return identity

    if callable(key):
        func = key

        def custom(scope: Scope) -> str:
            value = func(scope)
            return ip(scope) if value is None else "fn" + _encode_id(str(value))

        return custom
    if key == "ip":
        return ip
    if key == "sub" or key.startswith("claim:"):
        claim = "sub" if key == "sub" else key[6:]
        if not claim:
            raise ConfigurationError("key", "claim: needs a claim name")

        def by_claim(scope: Scope) -> str:
            auth = scope.get("auth")
            value = auth.get(claim) if isinstance(auth, dict) else None
            if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
                return "c" + _encode_id(str(value))
            return ip(scope)

        return by_claim
    if key.startswith("header:"):
        name = key[7:].strip().lower().encode("latin-1")
        if not name:
            raise ConfigurationError("key", "header: needs a header name")

        def by_header(scope: Scope) -> str:
            for header, value in scope["headers"]:
                if header == name and value:
                    return "h" + _encode_id(value.decode("latin-1"))
            return ip(scope)

        return by_header
    raise ConfigurationError(
        "key", f"must be 'ip', 'sub', 'claim:<name>', 'header:<name>' or a callable, not {key!r}"
    )


class SweepingMemoryStorage(MemoryStorage):
    """limits' async memory storage, sweeping expired keys at most once per second.

    The stock class schedules a sweep of *every* key after *every* hit: under a running event
    loop that is a task and O(keys) work per request. Sweeping once a second keeps memory just as
    bounded (idle clients are still dropped once their windows pass) at a constant cost.
    """

    sweep_interval: float = 1.0

    def __init__(
        self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._next_sweep = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_interval
            await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]

    # The sliding-window counter, the default strategy, inlined: the same keys, counters and
    # arithmetic as limits' MemoryStorage, without its per-call lock and nested awaits. Nothing
    # here awaits between reading and writing a counter, so on one event loop it is atomic.

    def _count(self, key: str, now: float) -> int:
        if self.expirations.get(key, 0) <= now:
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
            return 0
        return self.storage.get(key, 0)

    def _window(self, key: str, expiry: int, now: float) -> tuple[int, float, int, float, str]:
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous = self._count(previous_key, now)
        current = self._count(current_key, now)
        previous_ttl = 0.0 if previous == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous, previous_ttl, current, current_ttl, current_key

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        if amount > limit:
            return False
        now = time.time()
        previous, previous_ttl, current, _, current_key = self._window(key, expiry, now)
        if math.floor(previous * previous_ttl / expiry + current) + amount > limit:
            return False
        if current == 0:
            # A new window counter lives twice the window, as in limits.
            self.expirations[current_key] = now + 2 * expiry
        self.storage[current_key] = current + amount
        await self._MemoryStorage__schedule_expiry()
        return True

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        return self._window(key, expiry, time.time())[:4]

    async def hit_with_stats(
        self, key: str, limit: int, expiry: int, amount: int
    ) -> tuple[bool, int, float]:
        """Acquire and read the window in one step: (admitted, remaining, seconds to reset).

        The figures are those of limits' SlidingWindowCounterRateLimiter.get_window_stats,
        computed from the same read instead of a second pass through the strategy.
        """
        now = time.time()
        previous, previous_ttl, current, current_ttl, current_key = self._window(key, expiry, now)
        admitted = (
            amount <= limit
            and math.floor(previous * previous_ttl / expiry + current) + amount <= limit
        )
        if admitted:
            if current == 0:
                self.expirations[current_key] = now + 2 * expiry
            current += amount
            self.storage[current_key] = current
            await self._MemoryStorage__schedule_expiry()
        remaining = max(0, limit - math.floor(previous * previous_ttl / expiry + current))
        if not (previous or current):
            return admitted, remaining, 0.0
        previous_reset = previous_ttl % (expiry / previous) if previous else math.inf
        current_reset = current_ttl % expiry if current else math.inf
        return admitted, remaining, min(previous_reset, current_reset)


#: Only when limits' memory storage has the hook this relies on; else the stock class is used.
_FAST_MEMORY: Final = hasattr(MemoryStorage, "_MemoryStorage__schedule_expiry")


def _storage(uri: str) -> Any:
    """An async ``limits`` storage for ``uri``, with the installed Redis client chosen for it."""
    if not isinstance(uri, str) or "://" not in uri:
        raise ConfigurationError(
            "storage", f"must be a storage URI such as 'memory://', not {uri!r}"
        )
    scheme = uri.split("://", 1)[0].lower()
    base = scheme.removeprefix("async+")
    full = uri if scheme.startswith("async+") else "async+" + uri
    options: dict[str, Any] = {}
    if base == "memory" and _FAST_MEMORY:
        return SweepingMemoryStorage(full, wrap_exceptions=True)
    if base.startswith("redis") or base == "rediss":
        if importlib.util.find_spec("redis") is not None:
            options["implementation"] = "redispy"
        elif importlib.util.find_spec("coredis") is None:
            raise ConfigurationError(
                "storage", f"{base}:// needs a Redis client: pip install 'asgi-guard[redis]'"
            )
    elif base.startswith("valkey") and importlib.util.find_spec("valkey") is None:
        raise ConfigurationError("storage", f"{base}:// needs valkey: pip install valkey")
    try:
        # wrap_exceptions: every client library's errors arrive as limits' StorageError.
        return storage_from_string(full, wrap_exceptions=True, **options)
    except LimitsConfigurationError as exc:
        raise ConfigurationError("storage", str(exc)) from None


class _Breaker:
    """Stops calling a failing storage for a back-off period: 1 s doubling to 30 s."""

    __slots__ = ("backoff", "open_until")

    def __init__(self) -> None:
        self.open_until = 0.0
        self.backoff = _BREAKER_MIN

    def trip(self, now: float, error: BaseException) -> None:
        self.open_until = now + self.backoff
        logger.warning(
            "rate-limit storage failed (%s); %s for %.0f s",
            type(error).__name__,
            "not calling it",
            self.backoff,
        )
        self.backoff = min(self.backoff * 2, _BREAKER_MAX)

    def reset(self) -> None:
        self.backoff = _BREAKER_MIN


class RateLimitMiddleware:
    """Per-route rate limits, answered with 429 problem+json and IETF RateLimit headers.

    Counting is done by ``limits`` (sliding-window counter by default) on an async storage:
    ``memory://`` in process, or ``redis://`` / ``rediss://`` / ``redis+cluster://`` /
    ``redis+sentinel://`` / ``valkey://`` shared by every process. A refused request gets
    429 with ``Retry-After`` (RFC 9110 section 10.2.3), consumes nothing, and never reaches the
    app. Admitted responses carry ``RateLimit-Policy`` and ``RateLimit``
    (draft-ietf-httpapi-ratelimit-headers) for the tightest limit.

    Args:
        limit: default limit for routes no rule matches, e.g. ``"100/minute"`` or
            ``"10/second; 1000/hour"`` (all enforced); None limits only the ``rules`` routes.
        rules: route pattern -> limit string, ``"exempt"``, or a dict with ``limit``, ``cost``
            and ``group`` (rules sharing a group name share counters).
        strategy: ``"sliding-window"``, ``"moving-window"`` or ``"fixed-window"``.
        storage: a ``limits`` storage URI.
        key: ``"ip"`` (``scope["client"]``, as resolved by ProxyHeadersMiddleware),
            ``"sub"``, ``"claim:<name>"``, ``"header:<name>"``, or a callable
            ``(scope) -> str | None``. Identity keys fall back to the IP when absent.
        headers: True (IETF headers), ``"legacy"`` (also ``X-RateLimit-*``), or False.
        shadow: count and record decisions, but never refuse (a dry run).
        on_storage_error: ``"open"`` admits requests while the storage fails; ``"closed"``
            answers 503.
        storage_timeout: seconds a network storage may take before it counts as failed.
        ipv6_prefix: IPv6 clients are counted per network of this prefix length (64: one
            subscriber's network; 128: each address). IPv4-mapped addresses count as IPv4.
        clock: returns the current Unix time (for Retry-After and reset figures).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: str | None = None,
        rules: Mapping[str, Any] | None = None,
        strategy: Literal["sliding-window", "moving-window", "fixed-window"] = "sliding-window",
        storage: str = "memory://",
        key: str | KeyFunc = "ip",
        headers: bool | Literal["legacy"] = True,
        shadow: bool = False,
        on_storage_error: Literal["open", "closed"] = "open",
        storage_timeout: float = 0.5,
        ipv6_prefix: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if strategy not in _STRATEGIES:
            raise ConfigurationError(
                "strategy", f"must be one of {', '.join(_STRATEGIES)}, not {strategy!r}"
            )
        if on_storage_error not in ("open", "closed"):
            raise ConfigurationError("on_storage_error", "must be 'open' or 'closed'")
        if headers not in (True, False, "legacy"):
            raise ConfigurationError("headers", "must be True, False or 'legacy'")
        self.app = app
        self.storage = _storage(storage)
        try:
            self.limiter = _STRATEGIES[strategy](self.storage)
        except NotImplementedError:
            raise ConfigurationError(
                "strategy", f"{strategy} is not supported by {storage}"
            ) from None
        self._network = not storage.split("://", 1)[0].lower().endswith("memory")
        if (
            not isinstance(ipv6_prefix, int)
            or isinstance(ipv6_prefix, bool)
            or not 1 <= ipv6_prefix <= 128
        ):
            raise ConfigurationError("ipv6_prefix", "must be a prefix length from 1 to 128")
        self._key = _key_function(key, ipv6_prefix)
        self.headers = headers
        self.shadow = shadow
        self.fail_closed = on_storage_error == "closed"
        self.storage_timeout = storage_timeout
        self.clock = clock
        self._breaker = _Breaker()
        # Window figures cost a second storage call: read them only when something shows them.
        self._stats = headers is not False
        # Our memory storage answers the sliding window's hit and figures in one step.
        self._one_step = strategy == "sliding-window" and isinstance(
            self.storage, SweepingMemoryStorage
        )

        self._default = None if limit is None else _Policy(_parse_limit("limit", limit), "d", 1)
        policies: dict[str, _Policy] = {}
        for index, (pattern, value) in enumerate((rules or {}).items()):
            option = f"rules[{pattern!r}]"
            if value == _EXEMPT:
                policies[pattern] = _NO_LIMIT
                continue
            cost, group = 1, None
            if isinstance(value, Mapping):
                unknown = set(value) - {"limit", "cost", "group"}
                if unknown:
                    raise ConfigurationError(option, f"unknown keys {sorted(unknown)}")
                cost, group, value = value.get("cost", 1), value.get("group"), value.get("limit")
                if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
                    raise ConfigurationError(option, "cost must be a whole number >= 1")
                if group is not None and not isinstance(group, str):
                    raise ConfigurationError(option, "group must be a string")
            bucket = f"g{_encode_id(group)}" if group else f"r{index}"
            policies[pattern] = _Policy(_parse_limit(option, value), bucket, cost)
        for policy in [self._default, *policies.values()]:
            if policy is not None and strategy == "fixed-window":
                policy.test_first = True  # fixed-window hits count even when refused
        self._rules: RouteTable[_Policy] = RouteTable(policies, option="rules")

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
        if policy is None or policy is _NO_LIMIT:
            await self.app(scope, receive, send)
            return

        now = self.clock()
        if self._breaker.open_until > now:
            await self._storage_down(scope, receive, send)
            return
        identity = self._key(scope)
        try:
            if self._network:
                async with asyncio.timeout(self.storage_timeout):
                    decision = await self._decide(policy, identity, self._stats)
            else:
                decision = await self._decide(policy, identity, self._stats)
        except (StorageError, TimeoutError, OSError) as error:  # down, slow or broken: never a 500
            self._breaker.trip(now, error)
            await self._storage_down(scope, receive, send)
            return
        self._breaker.reset()
        allowed, index, remaining, reset = decision
        info = request_info(scope) if remaining >= 0 or not allowed else None
        if info is not None:
            info.ratelimit = (policy.items[index].amount, remaining, reset)
        if not allowed:
            assert info is not None
            if not self.shadow:
                await _EXCEEDED.send(scope, receive, send, ((b"retry-after", b"%d" % reset),))
                return
            info.code = _EXCEEDED.code
            info.shadow = True
        if self.headers and kind == "http":
            send = with_headers(send, self._header_values(policy, index, remaining, reset))
        await self.app(scope, receive, send)

    async def _decide(
        self, policy: _Policy, identity: str, stats: bool
    ) -> tuple[bool, int, int, int]:
        """Hit every limit of the policy: (admitted, index of the tightest limit, remaining, reset).

        With several limits (or a fixed window, whose hits count even when refused), all are
        tested first, so a refused request consumes nothing. Window figures are read only when
        ``stats`` is asked for or the request is refused; otherwise they are -1.
        """
        limiter = self.limiter
        items, bucket, cost = policy.items, policy.bucket, policy.cost
        if self._one_step and len(items) == 1:
            item = items[0]
            admitted, left, reset_in = await self.storage.hit_with_stats(
                item.key_for(bucket, identity), item.amount, item.get_expiry(), cost
            )
            wait = math.ceil(reset_in)
            return admitted, 0, left, max(wait, 1) if not admitted else wait
        refused = -1
        if policy.test_first:
            for index, item in enumerate(items):
                if not await limiter.test(item, bucket, identity, cost=cost):
                    refused = index
                    break
        if refused < 0:
            for index, item in enumerate(items):
                if not await limiter.hit(item, bucket, identity, cost=cost):
                    refused = index
                    break
        if refused < 0 and not stats:
            return True, 0, -1, -1
        now = self.clock()  # after the hits, so a fresh window reads as its full length
        tightest, remaining, reset = 0, -1, -1
        for index in (refused,) if refused >= 0 else range(len(items)):
            reset_at, left = await limiter.get_window_stats(items[index], bucket, identity)
            wait = max(math.ceil(reset_at - now), 1 if refused >= 0 else 0)
            if remaining < 0 or (left, -wait) < (remaining, -reset):
                tightest, remaining, reset = index, left, wait
        return refused < 0, tightest, remaining, reset

    def _header_values(
        self, policy: _Policy, index: int, remaining: int, reset: int
    ) -> list[tuple[bytes, bytes]]:
        name = policy.names[index]
        headers = [
            (b"ratelimit-policy", policy.policy_headers[index]),
            (b"ratelimit", b'"%s";r=%d;t=%d' % (name, remaining, reset)),
        ]
        if self.headers == "legacy":
            headers += [
                (b"x-ratelimit-limit", b"%d" % policy.items[index].amount),
                (b"x-ratelimit-remaining", b"%d" % remaining),
                (b"x-ratelimit-reset", b"%d" % reset),
            ]
        return headers

    async def aclose(self) -> None:
        """Close the storage's network connections (call it at shutdown, e.g. in a lifespan)."""
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()
        timer = getattr(self.storage, "timer", None)
        if timer is not None:
            timer.cancel()

    async def _storage_down(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fail_closed:
            retry = max(int(self._breaker.open_until - self.clock()), 1)
            await _UNAVAILABLE.send(scope, receive, send, ((b"retry-after", str(retry).encode()),))
            return
        await self.app(scope, receive, send)
