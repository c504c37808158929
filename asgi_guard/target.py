"""The canonical request target: the path the app's router routes, or a refusal.

A per-route policy only holds if the guard picks its route from the same path the framework
routes. Starlette, FastAPI and Litestar, run behind uvicorn (``h11`` and ``httptools``) and
called directly as ASGI apps, agree on most targets, and where the guard can read a target
as they do it does; the cases below are where they disagree or read a target differently
from its text, and the guard refuses them (400, ``target.invalid``) rather than guess:

- **No leading slash** (``GET admin HTTP/1.1``, which uvicorn's h11 parser passes on as the
  path ``admin``; an absolute-form ``http://host/admin`` under h11). Litestar serves ``admin``
  with its ``/admin`` handler, Starlette answers 404. Not origin-form (RFC 9112 section 3.2.1).
  The empty path is ``/`` (Litestar serves its root there, Starlette redirects to it).
- **A ``root_path`` that is not a prefix of the path at a segment boundary but occurs in it**
  (``/x/api/admin`` or ``/apiadmin`` under ``/api``). Starlette strips ``root_path`` only as
  such a prefix; Litestar cuts the path after the first occurrence anywhere and serves
  ``/admin``. A ``root_path`` that does not occur at all leaves the path as it is in both.
- **Control characters** (``%00``, ``%0A``, ``%0D``, ``%7F``...). Starlette and FastAPI serve
  ``/admin%0A`` with their ``/admin`` handler (a regex ``$`` matches before a final newline),
  Litestar answers 404; NUL has no meaning in any path (RFC 3986 section 2 allows none).

Repeated and trailing slashes are read as Litestar routes them (see :mod:`asgi_guard.routes`).
Dot segments, ``;params``, percent-encoded slashes (servers decode them into ``path``), case
and non-ASCII characters are routed literally by all three frameworks, and so by the guard.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any, Final

from ._asgi import Problem

__all__ = ["TargetError", "route_path"]

_CONTROL: Final = re.compile("[\x00-\x1f\x7f]")

NOT_ORIGIN_FORM: Final = Problem(
    400, "target.invalid", "Bad Request", "The request target must be a path starting with '/'."
)
ROOT_PATH: Final = Problem(
    400, "target.invalid", "Bad Request", "The request path does not start with the root path."
)
CONTROL: Final = Problem(
    400, "target.invalid", "Bad Request", "The request path contains control characters."
)


class TargetError(Exception):
    """The request target cannot be read exactly as the frameworks route it.

    ``problem`` is the 400 answer; a layer that picks a policy by route sends it instead of
    calling the app, a layer that only relaxes something (an exemption, a quiet log) treats
    the request as matching no route.
    """

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def route_path(scope: MutableMapping[str, Any]) -> str:
    """The path the app routes: ``scope["path"]`` relative to ``root_path``.

    Raises :class:`TargetError` for a target the frameworks read differently (see above).
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and root != "/":  # under "/", both read "/admin" as /admin
        end = len(root)
        if path.startswith(root) and (len(path) == end or path[end] == "/"):
            path = path[end:]
        elif root in path:
            raise TargetError(ROOT_PATH)
    if not path:
        return "/"
    if path[0] != "/":
        raise TargetError(NOT_ORIGIN_FORM)
    if not path.isprintable() and _CONTROL.search(path) is not None:
        raise TargetError(CONTROL)
    return path
