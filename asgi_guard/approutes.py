"""The routes an app's own router serves (Starlette, FastAPI, Litestar), as route patterns.

Used by :func:`asgi_guard.check.check_app` to compare a config's rules with the app. Nothing
here imports a framework: routers are recognised by their attributes, so an app wrapped in
middlewares (``guard()``'s layers, Starlette's ``Middleware``) is unwrapped through ``.app``.
"""

from __future__ import annotations

import re
from typing import Any, Final, NamedTuple

from .routes import _PARAM, _REST, Segment, parse_pattern

__all__ = ["AppRoute", "app_routes", "overlaps"]

# {name}, {name:converter}: Starlette's and Litestar's path parameters.
_PARAMETER: Final = re.compile(r"\{([A-Za-z_]\w*)(?::([A-Za-z_]\w*))?\}")
_UNWRAP_DEPTH: Final = 32


class AppRoute(NamedTuple):
    """One route of the app: its methods (None: any) and its path as a route pattern."""

    methods: frozenset[str] | None
    path: str

    @property
    def segments(self) -> list[Segment]:
        """The path's segments, as :func:`~asgi_guard.routes.parse_pattern` splits them."""
        return parse_pattern(self.path, "app")[1]


def _pattern(template: str) -> str:
    """A framework's path template as a route pattern: converters dropped except ``path``; a
    segment mixing text and a parameter (``{name}.txt``) is read as a parameter."""
    parts = []
    for part in template.split("/"):
        found = _PARAMETER.search(part)
        if found is None:
            parts.append(part)
        elif found.group(2) == "path":
            parts.append(f"{{{found.group(1)}:path}}")
            break
        else:
            parts.append(f"{{{found.group(1)}}}")
    return "/".join(parts) or "/"


def _join(prefix: str, path: str) -> str:
    return (prefix.rstrip("/") + "/" + path.lstrip("/")).rstrip("/") or "/"


def _router(app: Any) -> Any:
    """The innermost object with a ``routes`` list, through middleware ``.app`` attributes."""
    for _ in range(_UNWRAP_DEPTH):
        routes = getattr(app, "routes", None)
        if isinstance(routes, list):
            return app
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def _starlette(routes: list[Any], prefix: str, out: list[AppRoute]) -> None:
    for route in routes:
        kind = type(route).__mro__
        names = {cls.__name__ for cls in kind}
        path = getattr(route, "path", "")
        if "Mount" in names:
            inner = getattr(route, "routes", None) or []
            if inner:
                _starlette(inner, _join(prefix, _pattern(path)), out)
            else:  # a mounted app whose routes are not known: everything under it
                out.append(AppRoute(None, _join(prefix, _pattern(path)) + "/{rest:path}"))
        elif "WebSocketRoute" in names:
            out.append(AppRoute(frozenset({"GET"}), _join(prefix, _pattern(path))))
        elif "Route" in names:
            methods = getattr(route, "methods", None)
            out.append(
                AppRoute(frozenset(methods) if methods else None, _join(prefix, _pattern(path)))
            )
        elif "Host" in names:
            _starlette(getattr(route, "routes", None) or [], prefix, out)


def _litestar(routes: list[Any], out: list[AppRoute]) -> None:
    for route in routes:
        names = {cls.__name__ for cls in type(route).__mro__}
        path = _pattern(route.path)
        if "WebSocketRoute" in names:
            out.append(AppRoute(frozenset({"GET"}), path))
        elif "ASGIRoute" in names:
            handler = getattr(route, "route_handler", None)
            mount = bool(getattr(handler, "is_mount", False))
            out.append(AppRoute(None, _join(path, "{rest:path}") if mount else path))
        else:
            out.append(AppRoute(frozenset(getattr(route, "methods", ())) or None, path))


def app_routes(app: Any) -> list[AppRoute] | None:
    """The app's routes, or None when no Starlette, FastAPI or Litestar router is found."""
    router = _router(app)
    if router is None:
        return None
    out: list[AppRoute] = []
    if any(cls.__name__ == "Litestar" for cls in type(router).__mro__):
        _litestar(router.routes, out)
    else:
        _starlette(router.routes, "", out)
    return out


def overlaps(a: list[Segment], b: list[Segment]) -> bool:
    """Whether some path matches both segment lists (``{name}``: one non-empty segment,
    ``{name:path}``: the rest, possibly empty)."""
    for x, y in zip(a, b, strict=False):
        if x == _REST or y == _REST:
            return True
        if x != y and x != _PARAM and y != _PARAM:
            return False
    rest = a[len(b) :] or b[len(a) :]
    return not rest or rest == [_REST]
