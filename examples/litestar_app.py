"""Litestar: global layers around the app object, per-handler policies through ``opt``.

Run: ``uvicorn examples.litestar_app:app``.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.middleware import DefineMiddleware

from asgi_guard import AccessLogMiddleware, AuthenticatedUser, JWTAuthMiddleware
from asgi_guard.integrations.litestar import HandlerPolicies, provide_user, provide_validated_body

SECRET = "development-only-secret-32-bytes!!"


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
    opt={"scopes": ["tasks:write"], "limit": "3/minute", "schema": NewTask},
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
    middleware=[DefineMiddleware(HandlerPolicies)],
    logging_config=None,
)
# Litestar runs its middleware after routing: authentication for every route goes around the
# app object, so unknown paths and 404s are covered too.
app = AccessLogMiddleware(
    JWTAuthMiddleware(
        litestar_app,
        secret=SECRET,
        issuer="https://issuer.example",
        audience="tasks-api",
        rules={"/health": "public", "/schema/{rest:path}": "public"},
    )
)
