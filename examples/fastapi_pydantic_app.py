"""FastAPI with pydantic models: the guard validates each body once, FastAPI documents it.

Run: ``asgi-guard serve examples.fastapi_pydantic_app:app --dev`` (with a guard.toml), or
``uvicorn examples.fastapi_pydantic_app:guarded --no-proxy-headers``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field

from asgi_guard import guard
from asgi_guard.integrations.fastapi import openapi_responses, require_scopes, validated_body


class NewItem(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    price_cents: int = Field(ge=0)


# Every route documents the guard's problem+json answers (401, 403, 413, 415, 422, 429, ...).
app = FastAPI(title="Items API", responses=openapi_responses())


@app.post(
    "/items",
    status_code=201,
    # Documented for clients; validated by the guard, which hands over the model instance.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": NewItem.model_json_schema()}},
        }
    },
)
async def create_item(
    item: Annotated[NewItem, Depends(validated_body)],
    user: Annotated[Any, require_scopes("items:write")],
) -> dict[str, Any]:
    return {"name": item.name, "price_cents": item.price_cents, "owner": user.sub}


@app.put("/items/{item_id}")
async def replace_item(item_id: int, item: NewItem) -> dict[str, Any]:
    """Here FastAPI validates the body itself; the guard only checks it is JSON, and small."""
    return {"id": item_id, "name": item.name}


guarded = guard(
    app,
    {
        "jwt": {
            "secret": "development-only-secret-32-bytes!!",
            "issuer": "https://issuer.example",
            "audience": "items-api",
            "rules": {"/docs": "public", "/openapi.json": "public"},
        },
        "validation": {"max_body_size": 4096},
        "routes": [
            {"path": "POST /items", "schema": "examples.fastapi_pydantic_app:NewItem"},
            {"path": "PUT /items/{item_id}", "schema": "typing:Any"},
        ],
    },
    environ={},
)
