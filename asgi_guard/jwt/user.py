"""What the app sees after authentication: ``scope["user"]`` and ``scope["auth"]``."""

from __future__ import annotations

from typing import Any

__all__ = ["ANONYMOUS", "AnonymousUser", "AuthenticatedUser"]


class AuthenticatedUser:
    """The caller of a verified token.

    Has the attributes Starlette's and Litestar's ``request.user`` users expect
    (``is_authenticated``, ``display_name``, ``identity``). ``claims`` is the verified payload;
    treat it as read-only: it is shared by every request carrying the same cached token.
    """

    __slots__ = ("claims", "scopes", "sub")

    def __init__(self, sub: str | None, scopes: frozenset[str], claims: dict[str, Any]) -> None:
        self.sub = sub
        self.scopes = scopes
        self.claims = claims

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.sub or ""

    @property
    def identity(self) -> str:
        return self.sub or ""

    def __repr__(self) -> str:
        return f"AuthenticatedUser(sub={self.sub!r}, scopes={sorted(self.scopes)!r})"


class AnonymousUser:
    """The caller of a public route that sent no valid token."""

    __slots__ = ()
    sub = None
    scopes: frozenset[str] = frozenset()
    claims: dict[str, Any] = {}  # noqa: RUF012 - never mutated

    @property
    def is_authenticated(self) -> bool:
        return False

    @property
    def display_name(self) -> str:
        return ""

    @property
    def identity(self) -> str:
        return ""

    def __repr__(self) -> str:
        return "AnonymousUser()"


ANONYMOUS = AnonymousUser()
