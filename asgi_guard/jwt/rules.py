"""What a route requires of a token: nothing (public), a valid token, scopes, or no access;
and the RFC 6750 section 3.1 answer when a scope is missing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from .._asgi import ASGIApp, Problem, Receive, Scope, Send
from ..errors import ConfigurationError
from .user import AuthenticatedUser

__all__ = [
    "MISSING",
    "PREFLIGHT",
    "PUBLIC",
    "RequireScopes",
    "Rule",
    "ScopeRequirement",
    "parse_rule",
]

MISSING: Final = Problem(401, "jwt.missing", "Unauthorized", "An access token is required.")
PUBLIC: Final = "public"


class ScopeRequirement:
    """Scopes a request needs, with its RFC 6750 section 3.1 ``insufficient_scope`` answer."""

    __slots__ = ("headers", "problem", "scopes")

    def __init__(self, scopes: frozenset[str], realm: str = "api") -> None:
        self.scopes = scopes
        listed = " ".join(sorted(scopes))
        self.problem = Problem(
            403,
            "jwt.insufficient_scope",
            "Forbidden",
            f"The access token lacks a required scope: {listed}.",
        )
        challenge = f'Bearer realm="{realm}", error="insufficient_scope", scope="{listed}"'
        self.headers = ((b"www-authenticate", challenge.encode()),)

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 403 naming the required scopes."""
        await self.problem.send(scope, receive, send, self.headers)


class RequireScopes:
    """Require scopes of the user a :class:`JWTAuthMiddleware` further out authenticated.

    For per-handler checks where routing happens inside the app (e.g. Litestar handler
    ``opt``): 401 when the caller is anonymous, 403 when a scope is missing.
    """

    def __init__(self, app: ASGIApp, *, scopes: Iterable[str], realm: str = "api") -> None:
        self.app = app
        self.requirement = ScopeRequirement(parse_rule("scopes", list(scopes)).scopes, realm)
        self._missing = ((b"www-authenticate", f'Bearer realm="{realm}"'.encode()),)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        user = scope.get("user")
        # Only a token's caller counts: a framework's own authenticated user (Starlette's,
        # Litestar's) carries no token scopes.
        if not isinstance(user, AuthenticatedUser):
            await MISSING.send(scope, receive, send, self._missing)
        elif not self.requirement.scopes <= user.scopes:
            await self.requirement.refuse(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class Rule:
    """What a route requires: nothing (public), a valid token, scopes, or no access (deny)."""

    __slots__ = ("deny", "public", "requirement", "scopes")

    def __init__(
        self, *, public: bool = False, deny: bool = False, scopes: frozenset[str] = frozenset()
    ) -> None:
        self.public = public
        self.deny = deny
        self.scopes = scopes
        self.requirement: ScopeRequirement | None = None


#: The rule of a CORS preflight: public (see ``public_preflight``).
PREFLIGHT: Final = Rule(public=True)


def parse_rule(option: str, value: Any) -> Rule:
    if value == PUBLIC:
        return Rule(public=True)
    if value == "authenticated":
        return Rule()
    if value == "deny":
        return Rule(deny=True)
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(
        isinstance(item, str)
        and item
        and item.isprintable()
        and " " not in item
        and '"' not in item
        and "\\" not in item
        for item in value
    ):
        raise ConfigurationError(
            option,
            f"a rule is a list of scopes, 'public', 'authenticated' or 'deny', not {value!r}",
        )
    return Rule(scopes=frozenset(value))
