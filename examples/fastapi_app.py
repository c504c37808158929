"""FastAPI with asgi_guard layers added as middleware, and handler-level scope dependencies.

Run: ``uvicorn examples.fastapi_app:app``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import Depends, FastAPI

from asgi_guard import (
    AuthenticatedUser,
    JWTAuthMiddleware,
    RateLimitMiddleware,
    ValidationMiddleware,
    openapi_components,
)
from asgi_guard.integrations.fastapi import require_scopes, validated_body

SECRET = "development-only-secret-32-bytes!!"


class NewItem(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    price_cents: Annotated[int, msgspec.Meta(ge=0)]


app = FastAPI(title="Items API")
# Starlette applies the last added middleware outermost: rate limit, then JWT, then validation.
app.add_middleware(ValidationMiddleware, schemas={"POST /items": NewItem})
app.add_middleware(
    JWTAuthMiddleware,
    secret=SECRET,
    issuer="https://issuer.example",
    audience="items-api",
    rules={"GET /items": "public", "/docs": "public", "/openapi.json": "public"},
)
app.add_middleware(RateLimitMiddleware, limit="100/minute")

ITEMS: list[dict[str, object]] = []


@app.get("/items")
async def list_items() -> list[dict[str, object]]:
    return ITEMS


@app.post("/items", status_code=201)
async def create_item(
    user: Annotated[AuthenticatedUser, require_scopes("items:write")],
    item: Annotated[NewItem, Depends(validated_body)],
) -> dict[str, object]:
    record = {"name": item.name, "price_cents": item.price_cents, "owner": user.sub}
    ITEMS.append(record)
    return record


def custom_openapi() -> dict[str, object]:
    """The generated document, plus the msgspec schemas the middleware validates against."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version="1.0.0", routes=app.routes)
        schema.setdefault("components", {}).setdefault("schemas", {}).update(
            openapi_components({"POST /items": NewItem})
        )
        app.openapi_schema = schema
    return app.openapi_schema


app.openapi = custom_openapi  # type: ignore[method-assign]
