"""Rate-limit strings ("100/minute", "10/second;1000/hour"), read once at start-up."""

from __future__ import annotations

from typing import Any, Final

from limits import RateLimitItem, parse_many
from limits.errors import ConfigurationError as LimitsConfigurationError

from ..errors import ConfigurationError

__all__ = ["parse_limit"]

_LIMIT_FORMS: Final = (
    "accepted: '100/minute', '100 per minute', '10/5 seconds', several joined by ';'"
    " ('10/second;1000/hour'); units: second, minute, hour, day, month, year"
)


def parse_limit(option: str, value: Any) -> list[RateLimitItem]:
    """The limits of ``value``; a :class:`ConfigurationError` naming ``option`` otherwise."""
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
