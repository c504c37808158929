"""The built-in demo: a small order API on SQLite, guarded by every layer.

Served by ``asgi-guard demo``. SQL uses parameters only (never string formatting); the guard
validates input shape, the database driver keeps data out of the SQL text.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any

import msgspec

from .devkeys import DEV_AUDIENCE, DEV_ISSUER, public_jwks

__all__ = ["NewOrder", "ProductQuery", "build_demo", "demo_config", "openapi_document"]

#: The JWT ``typ`` of OAuth 2 access tokens (RFC 9068), which the demo's tokens carry: a media
#: type.
_RFC9068_TYP = "at+jwt"


#: SQLite integers are 64-bit: larger ids cannot exist, and must not reach the driver.
_MAX_ID = 2**63 - 1


class NewOrder(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /orders."""

    product_id: Annotated[int, msgspec.Meta(ge=1, le=_MAX_ID)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10)]
    note: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class ProductQuery(msgspec.Struct):
    """The query of GET /products."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10
    q: Annotated[str, msgspec.Meta(max_length=50)] = ""


def _database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.executescript(
        """
        CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL);
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY, owner TEXT NOT NULL, product_id INTEGER NOT NULL
                REFERENCES products(id), quantity INTEGER NOT NULL, note TEXT
        );
        """
    )
    db.executemany(
        "INSERT INTO products (name, price_cents) VALUES (?, ?)",
        [("keyboard", 4900), ("mouse", 1900), ("monitor", 18900), ("cable", 500)],
    )
    db.commit()
    return db


def demo_config(private_jwks: dict[str, Any]) -> dict[str, Any]:
    """The guard config of the demo: every layer on, with embedded development defaults."""
    return {
        "proxy": {"trusted": ["127.0.0.1", "::1"]},
        "access_log": {},
        "https": {"exempt": ["/health"]},
        "headers": {},
        "rate_limit": {"limit": "120/minute", "storage": "memory://"},
        "jwt": {
            "jwks": public_jwks(private_jwks),
            "issuer": DEV_ISSUER,
            "audience": DEV_AUDIENCE,
            "algorithms": ["ES256"],
            "token_type": _RFC9068_TYP,
        },
        "validation": {},
        "routes": [
            {"path": "GET /health", "public": True},
            {"path": "GET /openapi.json", "public": True},
            {"path": "GET /products", "public": True, "query": "asgi_guard.demo:ProductQuery"},
            {"path": "GET /orders", "scopes": ["orders:read"]},
            {"path": "GET /orders/{id}", "scopes": ["orders:read"]},
            {
                "path": "POST /orders",
                "scopes": ["orders:write"],
                "limit": "5/minute",
                "schema": "asgi_guard.demo:NewOrder",
            },
        ],
    }


def openapi_document() -> dict[str, Any]:
    """The demo's OpenAPI 3.1 document, including every answer the guard layers can give."""
    from .validation import openapi_components

    components = openapi_components({"POST /orders": NewOrder})
    problem = {
        "description": "A refusal by a guard layer (RFC 9457).",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    components["Problem"] = {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["type", "title", "status", "detail", "code"],
    }
    order = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "product_id": {"type": "integer"},
            "quantity": {"type": "integer"},
            "note": {"type": ["string", "null"]},
        },
        "required": ["id", "product_id", "quantity"],
    }
    product = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "price_cents": {"type": "integer"},
        },
        "required": ["id", "name", "price_cents"],
    }
    refusals = {str(code): problem for code in (400, 401, 403, 413, 415, 422, 429)}
    not_found = {
        "description": "No such object for this user.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }

    def ok(schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
        return {
            status: {"description": "Success.", "content": {"application/json": {"schema": schema}}}
        }

    secured: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "asgi-guard demo", "version": "1.0.0"},
        "paths": {
            "/health": {"get": {"responses": {**ok({"type": "object"}), **refusals}}},
            "/products": {
                "get": {
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 50},
                        },
                        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 50}},
                    ],
                    "responses": {**ok({"type": "array", "items": product}), **refusals},
                }
            },
            "/orders": {
                "get": {
                    "security": secured,
                    "responses": {**ok({"type": "array", "items": order}), **refusals},
                },
                "post": {
                    "security": secured,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/NewOrder"}
                            }
                        },
                    },
                    "responses": {**ok(order, "201"), "404": not_found, **refusals},
                },
            },
            "/orders/{id}": {
                "get": {
                    "security": secured,
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {**ok(order), "404": not_found, **refusals},
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def build_demo() -> Any:
    """The unguarded Starlette app of the demo."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    db = _database()

    document = openapi_document()

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(document)

    async def products(request: Request) -> JSONResponse:
        query: ProductQuery = request.scope["state"]["validated_query"]
        rows = db.execute(
            "SELECT id, name, price_cents FROM products WHERE name LIKE ? ORDER BY id LIMIT ?",
            (f"%{query.q}%", query.limit),
        ).fetchall()
        return JSONResponse([{"id": r[0], "name": r[1], "price_cents": r[2]} for r in rows])

    async def list_orders(request: Request) -> JSONResponse:
        rows = db.execute(
            "SELECT id, product_id, quantity, note FROM orders WHERE owner = ? ORDER BY id",
            (request.user.sub,),
        ).fetchall()
        return JSONResponse(
            [{"id": r[0], "product_id": r[1], "quantity": r[2], "note": r[3]} for r in rows]
        )

    async def get_order(request: Request) -> JSONResponse:
        try:
            order_id = int(request.path_params["id"])
        except ValueError:
            return JSONResponse({"detail": "not found"}, status_code=404)
        if not 1 <= order_id <= _MAX_ID:
            return JSONResponse({"detail": "not found"}, status_code=404)
        row = db.execute(
            "SELECT id, product_id, quantity, note FROM orders WHERE id = ? AND owner = ?",
            (order_id, request.user.sub),
        ).fetchone()
        if row is None:  # another user's order is as invisible as a missing one (no BOLA)
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse(
            {"id": row[0], "product_id": row[1], "quantity": row[2], "note": row[3]}
        )

    async def create_order(request: Request) -> JSONResponse:
        order: NewOrder = request.scope["state"]["validated_body"]
        if (
            db.execute("SELECT 1 FROM products WHERE id = ?", (order.product_id,)).fetchone()
            is None
        ):
            return JSONResponse({"detail": "unknown product"}, status_code=404)
        cursor = db.execute(
            "INSERT INTO orders (owner, product_id, quantity, note) VALUES (?, ?, ?, ?)",
            (request.user.sub, order.product_id, order.quantity, order.note),
        )
        db.commit()
        return JSONResponse(
            {"id": cursor.lastrowid, "product_id": order.product_id, "quantity": order.quantity},
            status_code=201,
        )

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/openapi.json", openapi),
            Route("/products", products),
            Route("/orders", list_orders, methods=["GET"]),
            Route("/orders", create_order, methods=["POST"]),
            Route("/orders/{id}", get_order),
        ]
    )
