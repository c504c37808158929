"""The route-pattern table every layer uses for per-route policies.

Patterns: ``"/items"``, ``"POST /items"``, ``"GET|HEAD /items/{id}"``, ``"/files/{rest:path}"``.
``{name}`` matches one non-empty path segment, ``{name:path}`` (last segment only) the rest of
the path, possibly empty. When several patterns match, the most specific wins: comparing
segment by segment from the left, a static segment beats ``{name}``, which beats
``{name:path}``; for the same path pattern, a method-specific entry beats an any-method one.
Trailing slashes select no other route: ``/orders/`` is matched as ``/orders`` (Litestar serves
it with the ``/orders`` handler; Starlette redirects it there), and ``{name:path}`` also matches
when the rest is empty and its slash absent, so a policy cannot be walked around with a slash.
Nor do repeated slashes: ``//orders`` and ``/orders//7`` are matched as ``/orders`` and
``/orders/7``, as Litestar routes them (Starlette answers them 404, where a policy is harmless).
A ``GET`` entry also holds for ``HEAD`` unless the same path names ``HEAD`` itself: HEAD is GET
without the content (RFC 9110 section 9.3.2), and frameworks such as Starlette answer it with
the GET handler, so a GET-only policy must not be walked around with HEAD.
An exact static path costs one dict lookup.

Methods are upper-case names from the IANA HTTP Method Registry (RFC 9110 section 16.1), so
a typo such as ``"GTE /admin"`` is a :class:`ConfigurationError` rather than a rule that never
applies. An extension method is opted into with a leading ``+``: ``"+PURGE /cache"``.
:meth:`RouteTable.match_scope` reads the request's path as the frameworks route it, or raises
:class:`~asgi_guard.target.TargetError` (see :mod:`asgi_guard.target`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final, Generic, TypeVar

from .errors import ConfigurationError
from .target import TargetError, route_path

__all__ = ["RouteTable", "parse_pattern"]

T = TypeVar("T")

_ANY: Final = "*"
_PARAM: Final = 1
_REST: Final = 2
#: The IANA HTTP Method Registry (RFC 9110 section 16.1), less the reserved "*".
# fmt: off
REGISTERED_METHODS: Final = frozenset([
    "ACL", "BASELINE-CONTROL", "BIND", "CHECKIN", "CHECKOUT", "CONNECT", "COPY", "DELETE",
    "GET", "HEAD", "LABEL", "LINK", "LOCK", "MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL",
    "MKREDIRECTREF", "MKWORKSPACE", "MOVE", "OPTIONS", "ORDERPATCH", "PATCH", "POST", "PRI",
    "PROPFIND", "PROPPATCH", "PUT", "QUERY", "REBIND", "REPORT", "SEARCH", "TRACE", "UNBIND",
    "UNCHECKOUT", "UNLINK", "UNLOCK", "UPDATE", "UPDATEREDIRECTREF", "VERSION-CONTROL",
])
# fmt: on
#: RFC 9110 section 5.6.2 tchar, less "|" (the separator of a method list).
_TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
# A static segment may hold RFC 3986 pchars; braces are reserved for parameters, and a
# control character is refused in a request path (asgi_guard.target), so never matches.
_BAD_STATIC: Final = frozenset("{}?#\\ ") | frozenset(map(chr, [*range(32), 127]))
_SLASHES: Final = re.compile("//+")

Segment = str | int  # a static segment's text, or _PARAM / _REST


def parse_pattern(pattern: str, option: str = "routes") -> tuple[tuple[str, ...], list[Segment]]:
    """Split ``pattern`` into its methods (``("*",)`` for any) and its path segments.

    Raises :class:`ConfigurationError` naming ``option`` for anything malformed.
    """
    if not isinstance(pattern, str):
        raise ConfigurationError(option, f"route pattern must be a string, got {pattern!r}")
    text = pattern.strip()
    methods: tuple[str, ...] = (_ANY,)
    if " " in text:
        method_text, _, text = text.partition(" ")
        text = text.strip()
        methods = tuple(
            dict.fromkeys(_method(name, pattern, option) for name in method_text.split("|"))
        )
    if not text.startswith("/"):
        raise ConfigurationError(option, f"route path must start with '/': {pattern!r}")
    segments: list[Segment] = []
    # "/orders/" is "/orders" and "/a//b" is "/a/b": empty segments select no other route.
    parts = [part for part in text[1:].split("/") if part]
    names_seen: set[str] = set()
    for index, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name, _, kind = part[1:-1].partition(":")
            if not name.isidentifier() or name in names_seen:
                raise ConfigurationError(option, f"invalid parameter {part!r} in route {pattern!r}")
            names_seen.add(name)
            if kind == "path":
                if index != len(parts) - 1:
                    raise ConfigurationError(
                        option, f"{{{name}:path}} must be the last segment in route {pattern!r}"
                    )
                segments.append(_REST)
            elif kind == "":
                segments.append(_PARAM)
            else:
                raise ConfigurationError(option, f"unknown converter {kind!r} in route {pattern!r}")
        elif _BAD_STATIC & set(part):
            raise ConfigurationError(option, f"invalid character in route {pattern!r}")
        else:
            segments.append(part)
    return methods, segments


def _method(name: str, pattern: str, option: str) -> str:
    """A pattern's method name, checked: registered, or an extension opted into with ``+``."""
    if name in REGISTERED_METHODS:
        return name
    if name[:1] == "+" and len(name) > 1 and set(name[1:]) <= _TOKEN_CHARS:
        return name[1:]
    raise ConfigurationError(
        option,
        f"{name!r} in route {pattern!r} is not a registered HTTP method (methods are"
        " case-sensitive, RFC 9110 section 9.1); write an extension method as '+NAME'",
    )


class _Node(Generic[T]):
    __slots__ = ("param", "rest", "static", "values")

    def __init__(self) -> None:
        self.static: dict[str, _Node[T]] = {}
        self.param: _Node[T] | None = None
        self.rest: dict[str, T] | None = None  # values of a {name:path} ending here
        self.values: dict[str, T] | None = None  # values of a pattern ending at this node


def _pick(values: Mapping[str, T] | None, method: str) -> tuple[bool, T | None]:
    if values is None:
        return False, None
    if method in values:
        return True, values[method]
    if _ANY in values:
        return True, values[_ANY]
    return False, None


class RouteTable(Generic[T]):
    """Maps route patterns to values; :meth:`match` finds the most specific one for a request.

    Built once from ``(pattern, value)`` pairs; the same pattern twice is a
    :class:`ConfigurationError`.
    """

    __slots__ = ("_dynamic", "_root", "_static", "patterns")

    def __init__(
        self, routes: Mapping[str, T] | Iterable[tuple[str, T]] = (), *, option: str = "routes"
    ) -> None:
        self._static: dict[str, dict[str, T]] = {}
        self._root: _Node[T] = _Node()
        self.patterns: list[str] = []
        items = routes.items() if isinstance(routes, Mapping) else routes
        seen: set[tuple[str, str]] = set()
        for pattern, value in items:
            methods, segments = parse_pattern(pattern, option)
            shape = "/" + "/".join(s if isinstance(s, str) else f"{{{s}}}" for s in segments)
            for method in methods:
                if (method, shape) in seen:
                    raise ConfigurationError(option, f"route {pattern!r} is given twice")
                seen.add((method, shape))
                self._insert(method, segments, value)
            self.patterns.append(pattern)
        for values in self._value_maps():
            if "GET" in values and "HEAD" not in values:
                values["HEAD"] = values["GET"]
        # Only static patterns: a path missing from the dict matches nothing, no walk needed.
        root = self._root
        self._dynamic = bool(root.static) or root.param is not None or root.rest is not None

    @staticmethod
    def of_patterns(patterns: Iterable[str], *, option: str) -> RouteTable[bool]:
        """A set of routes (exemptions, exclusions): each pattern maps to True.

        A bare string is refused: iterated, it would be read as one pattern per character.
        """
        if isinstance(patterns, (str, bytes)):
            raise ConfigurationError(option, "must be a list of route patterns, not one string")
        return RouteTable(dict.fromkeys(patterns, True), option=option)

    def _value_maps(self) -> list[dict[str, T]]:
        """Every method -> value map of the table."""
        maps = list(self._static.values())
        nodes = [self._root]
        while nodes:
            node = nodes.pop()
            maps += [m for m in (node.values, node.rest) if m is not None]
            nodes += node.static.values()
            if node.param is not None:
                nodes.append(node.param)
        return maps

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def _insert(self, method: str, segments: list[Segment], value: T) -> None:
        if all(isinstance(s, str) for s in segments):
            path = "/" + "/".join(s for s in segments if isinstance(s, str))
            self._static.setdefault(path, {})[method] = value
            return
        node = self._root
        for segment in segments:
            if segment == _REST:
                if node.rest is None:
                    node.rest = {}
                node.rest[method] = value
                return
            if segment == _PARAM:
                if node.param is None:
                    node.param = _Node()
                node = node.param
            else:
                assert isinstance(segment, str)
                node = node.static.setdefault(segment, _Node())
        if node.values is None:
            node.values = {}
        node.values[method] = value

    def match(self, method: str, path: str) -> T | None:
        """The value of the most specific pattern matching ``method`` and ``path``, or None."""
        if "//" in path:  # Litestar routes //orders and /orders//7 as /orders and /orders/7
            path = _SLASHES.sub("/", path)
        if path[-1:] == "/" and len(path) > 1:
            path = path[:-1]
        exact = self._static.get(path)
        if exact is not None:
            found, value = _pick(exact, method)
            if found:
                return value
        if not self._dynamic or not path.startswith("/"):
            return None
        return self._walk(self._root, path[1:].split("/"), 0, method)[1]

    def match_scope(self, scope: MutableMapping[str, Any]) -> T | None:
        """:meth:`match` for an ASGI scope: its method (GET for a websocket) and its path
        relative to ``root_path``, as the framework's own router sees it.

        Raises :class:`~asgi_guard.target.TargetError` for a target the frameworks do not
        all read as the guard would (:func:`~asgi_guard.target.route_path`).
        """
        path: str = scope["path"]
        root: str | None = scope.get("root_path")
        if root:
            # route_path()'s common case, inline: root_path prefixing the path. An exact path
            # under a root_path adds 5,054 instructions a lookup (benchmarks.instructions,
            # routes), against 13,515 calling route_path() here and 7,035 before the check.
            end = len(root)
            if path.startswith(root) and (len(path) == end or path[end] == "/") and end > 1:
                path = path[end:] or "/"
            else:
                path = route_path(scope)
        method: str = scope.get("method", "GET")
        exact = self._static.get(path)
        if exact is not None:
            # match()'s first case, inline: this runs on every request. A static pattern's
            # path is canonical, so route_path() could not have changed or refused it.
            if method in exact:
                return exact[method]
            if _ANY in exact:
                return exact[_ANY]
        return self.match(method, route_path(scope))

    def match_scope_or_none(self, scope: MutableMapping[str, Any]) -> T | None:
        """:meth:`match_scope`, but None for a target it would refuse.

        For a layer whose routes only relax or label something (an exemption, a quiet log
        route, per-route headers, a metric's route): read as no route, an unreadable target
        gets the layer's default and never the exception.
        """
        try:
            return self.match_scope(scope)
        except TargetError:
            return None

    def _walk(
        self, node: _Node[T], parts: list[str], index: int, method: str
    ) -> tuple[bool, T | None]:
        if index == len(parts):
            found, value = _pick(node.values, method)
            # A {name:path} ending here matches an empty rest ("/files" for "/files/{p:path}").
            return (found, value) if found else _pick(node.rest, method)
        part = parts[index]
        child = node.static.get(part)
        if child is not None:
            found, value = self._walk(child, parts, index + 1, method)
            if found:
                return found, value
        if node.param is not None and part:
            found, value = self._walk(node.param, parts, index + 1, method)
            if found:
                return found, value
        return _pick(node.rest, method)
