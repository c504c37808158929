"""What a route is limited to: static policies, and limits, costs and exemptions per caller.

A static policy is parsed once. A caller-dependent one (:class:`CallerPolicy`) chooses, per
request, one of the same static policies: by a claim of the verified token (the values are
parsed at start-up), or by callables of the scope. The counting that follows is the same,
so decisions stay exact with every strategy and storage, and the RateLimit fields show the
limit that applied.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

from limits import RateLimitItem, parse_many
from limits.errors import ConfigurationError as LimitsConfigurationError

from .._asgi import Scope
from ..errors import ConfigurationError
from ..jwt.user import AuthenticatedUser

__all__ = ["NO_LIMIT", "CallerPolicy", "Policy", "is_claim_limit", "parse_limit", "policy_of"]

_LIMIT_FORMS: Final = (
    "accepted: '100/minute', '100 per minute', '10/5 seconds', several joined by ';'"
    " ('10/second;1000/hour'); units: second, minute, hour, day, month, year"
)
_CLAIM_KEYS: Final = frozenset({"claim", "values", "default"})
#: Distinct limit strings a callable's answers are parsed for and kept; others are parsed
#: on each request (a callable's answers come from the app's code, but stay bounded anyway).
_MAX_REMEMBERED: Final = 256


class Policy:
    """The limits of one route (or of the default), with precomputed key parts and headers."""

    __slots__ = ("bucket", "cost", "limits", "local", "names", "policy_headers", "suffixes")

    def __init__(
        self, items: list[RateLimitItem], bucket: str, cost: int, processes: int = 1
    ) -> None:
        self.bucket = bucket
        self.cost = cost
        #: (limit, window in ms) per limit
        self.limits = [(item.amount, item.get_expiry() * 1000) for item in items]
        self.suffixes = [f"/{item.amount}/{item.get_expiry()}" for item in items]
        # The local fallback: each process's share, never below one request.
        self.local = [(max(1, n // processes), w) for n, w in self.limits]
        # RateLimit-Policy items: "name";q=<quota>;w=<window seconds> (structured fields).
        self.names = [b"%d-per-%ds" % (item.amount, item.get_expiry()) for item in items]
        self.policy_headers = [
            b'"%s";q=%d;w=%d' % (name, item.amount, item.get_expiry())
            for name, item in zip(self.names, items, strict=True)
        ]


NO_LIMIT: Final = Policy([], "", 0)


def parse_limit(option: str, value: Any) -> list[RateLimitItem]:
    """The items of a limit string, or a ConfigurationError naming ``option``."""
    if not isinstance(value, str):
        raise ConfigurationError(
            option, f"a rate limit is a string like '100/minute', not {value!r}"
        )
    try:
        items = parse_many(value)
    except (ValueError, LimitsConfigurationError):
        raise ConfigurationError(option, f"invalid rate {value!r}; {_LIMIT_FORMS}") from None
    if not items or any(item.amount < 1 for item in items):
        raise ConfigurationError(option, f"invalid rate {value!r}; {_LIMIT_FORMS}")
    return items


def is_claim_limit(value: Any) -> bool:
    """Whether a limit option is chosen by a claim: ``{claim, values, default}``."""
    return isinstance(value, Mapping) and "claim" in value


def _check_cost(option: str, cost: Any) -> int:
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
        raise ConfigurationError(option, f"cost must be a whole number >= 1, not {cost!r}")
    return cost


#: What the callables answer when they are sync: never awaitable, so never asked.
_PLAIN: Final = frozenset({str, int, bool})


async def _call(func: Callable[[Scope], Any], scope: Scope) -> Any:
    """``func(scope)``, awaited when it returns an awaitable (an async callable)."""
    result = func(scope)
    # A sync answer skips inspect.isawaitable: about 3,000 instructions a request fewer
    # (callgrind, layer:percaller-ratelimit: sync callable limit +7,541 -> +4,607 over static).
    if result.__class__ in _PLAIN:
        return result
    if inspect.isawaitable(result):
        result = await result
    return result


class CallerPolicy:
    """A policy chosen per request: its limit by a verified claim or a callable, its cost and
    exemption by callables. Sync or async callables receive the ASGI scope.

    A claim is read only from a token the JWT layer verified (``scope["user"]`` is its
    :class:`~asgi_guard.jwt.AuthenticatedUser`): a caller without one, or whose claim is not
    a listed string, gets ``default``. A callable that raises, or answers something that is
    not a limit string (a cost >= 1, a bool), raises: the request fails (500), it is never
    admitted unlimited.
    """

    __slots__ = (
        "bucket",
        "by_value",
        "claim",
        "cost",
        "default",
        "exempt",
        "limit",
        "option",
        "processes",
        "remembered",
    )

    def __init__(
        self,
        option: str,
        limit: Any,
        bucket: str,
        cost: int | Callable[[Scope], Any],
        exempt: Callable[[Scope], Any] | None,
        processes: int,
    ) -> None:
        self.option = option
        self.bucket = bucket
        self.processes = processes
        self.claim: str | None = None
        self.by_value: dict[str, Policy] = {}
        self.default: Policy | None = None
        self.limit: Callable[[Scope], Any] | None = None
        self.remembered: dict[str, Policy] = {}
        fixed = 1 if callable(cost) else cost
        if is_claim_limit(limit):
            unknown = set(limit) - _CLAIM_KEYS
            if unknown:
                raise ConfigurationError(option, f"unknown keys {sorted(unknown)}")
            claim, values = limit.get("claim"), limit.get("values")
            if not isinstance(claim, str) or not claim:
                raise ConfigurationError(f"{option}.claim", "must name a claim, e.g. 'plan'")
            if not isinstance(values, Mapping) or not values:
                raise ConfigurationError(
                    f"{option}.values",
                    "must map claim values to limits, e.g. {pro = '1000/minute'}",
                )
            if "default" not in limit:
                # A caller without the claim (or with an unverified one) must get a limit.
                raise ConfigurationError(
                    f"{option}.default", "is required: the limit of callers without the claim"
                )
            if not all(isinstance(value, str) for value in values):
                # Only a string claim selects a limit: a number here would match no token.
                raise ConfigurationError(
                    f"{option}.values", "claim values are strings, e.g. {'pro': '1000/minute'}"
                )
            self.claim = claim
            self.by_value = {
                str(value): Policy(
                    parse_limit(f"{option}.values[{value!r}]", text), bucket, fixed, processes
                )
                for value, text in values.items()
            }
            self.default = Policy(
                parse_limit(f"{option}.default", limit["default"]), bucket, fixed, processes
            )
        elif callable(limit):
            self.limit = limit
        else:
            self.default = Policy(parse_limit(option, limit), bucket, fixed, processes)
        self.cost: Callable[[Scope], Any] | None = cost if callable(cost) else None
        if exempt is not None and not callable(exempt):
            raise ConfigurationError(f"{option}.exempt", "must be a callable of the scope")
        self.exempt = exempt

    async def choose(self, scope: Scope) -> tuple[Policy, int]:
        """The policy and cost of this request; :data:`NO_LIMIT` when it is exempt."""
        if self.exempt is not None:
            exempt = await _call(self.exempt, scope)
            if exempt.__class__ is not bool:
                raise TypeError(f"{self.option}: exempt must answer True or False, not {exempt!r}")
            if exempt:
                return NO_LIMIT, 0
        if self.claim is not None:
            user = scope.get("user")
            policy = None
            if isinstance(user, AuthenticatedUser):
                value = user.claims.get(self.claim)
                if value.__class__ is str:
                    policy = self.by_value.get(value)
            if policy is None:
                policy = self.default
        elif self.limit is not None:
            policy = self._parsed(await _call(self.limit, scope))
        else:
            policy = self.default
        assert policy is not None
        if self.cost is None:
            return policy, policy.cost
        cost = await _call(self.cost, scope)
        if cost.__class__ is not int or cost < 1:
            raise TypeError(f"{self.option}: cost must answer a whole number >= 1, not {cost!r}")
        return policy, cost

    def _parsed(self, text: Any) -> Policy:
        policy = self.remembered.get(text) if text.__class__ is str else None
        if policy is None:
            # A wrong answer is the app's bug: an exception (a 500), never an unlimited pass.
            policy = Policy(parse_limit(self.option, text), self.bucket, 1, self.processes)
            if len(self.remembered) < _MAX_REMEMBERED:
                self.remembered[text] = policy
        return policy


def policy_of(
    option: str,
    limit: Any,
    bucket: str,
    cost: Any = 1,
    exempt: Any = None,
    processes: int = 1,
) -> Policy | CallerPolicy:
    """The policy of a limit option: static when nothing in it depends on the caller."""
    if not callable(cost):
        cost = _check_cost(option, cost)
    if exempt is None and not callable(cost) and not callable(limit) and not is_claim_limit(limit):
        return Policy(parse_limit(option, limit), bucket, cost, processes)
    return CallerPolicy(option, limit, bucket, cost, exempt, processes)
