"""The one exception asgi_guard raises to its users."""

from __future__ import annotations

__all__ = ["ConfigurationError"]


class ConfigurationError(ValueError):
    """An option given to a layer or to :func:`asgi_guard.guard` is invalid.

    Raised at construction, never per request. ``option`` names the offending option
    (a dotted path for config files, e.g. ``routes[2].limit``).
    """

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        self.message = message
        super().__init__(f"{option}: {message}")
