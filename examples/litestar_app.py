"""Litestar: the guard around the app object, per-handler policies through ``opt``.

Run: ``asgi-guard serve examples.litestar_app:litestar_app --config guard.toml``, or
``uvicorn examples.litestar_app:app --no-proxy-headers``.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, get, post
from litestar.di import NamedDependency, Provide

from asgi_guard import AuthenticatedUser, guard
from asgi_guard.integrations.litestar import GuardPlugin, provide_user, provide_validated_body

CONFIG: dict[str, Any] = {
    "access_log": {},
    "rate_limit": {"limit": "100/minute"},  # its storage and key are the handlers' too
    "jwt": {
        "secret": "development-only-secret-32-bytes!!",
        "issuer": "https://issuer.example",
        "audience": "tasks-api",
        "rules": {"/health": "public", "/schema/{rest:path}": "public"},
    },
}


class NewTask(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/me", sync_to_thread=False)
def me(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"sub": request.user.sub, "scopes": sorted(request.user.scopes)}


@post(
    "/tasks",
    # Checked when the app is created; "tasks:write" is one scope, as in the JWT rules.
    opt={"scopes": "tasks:write", "limit": "3/minute", "schema": NewTask},
    dependencies={
        "user": Provide(provide_user, sync_to_thread=False),
        "task": Provide(provide_validated_body, sync_to_thread=False),
    },
    sync_to_thread=False,
)
def create_task(
    user: NamedDependency[AuthenticatedUser], task: NamedDependency[NewTask]
) -> dict[str, str | None]:
    return {"title": task.title, "owner": user.sub}


litestar_app = Litestar(
    route_handlers=[health, me, create_task],
    plugins=[GuardPlugin(CONFIG, environ={})],
    logging_config=None,
)
# Litestar runs its middleware after routing: the global layers go around the app object, so
# unknown paths and 404s are covered too.
# Litestar types its scope as TypedDicts, which mypy does not accept as ASGI's mutable mapping.
app = guard(litestar_app, CONFIG, environ={})  # type: ignore[arg-type]
