"""The built-in demo: a small order API on SQLite, guarded by every layer.

Served by ``asgi-guard demo``. SQL uses parameters only (never string formatting); the guard
validates input shape, the database driver keeps data out of the SQL text.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any

import msgspec

from .devkeys import DEV_AUDIENCE, DEV_ISSUER, public_jwks

__all__ = ["NewOrder", "ProductQuery", "build_demo", "demo_config"]

#: The JWT ``typ`` of OAuth 2 access tokens (RFC 9068), which the demo's tokens carry: a media
#: type.
_RFC9068_TYP = "at+jwt"


class NewOrder(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /orders."""

    product_id: Annotated[int, msgspec.Meta(ge=1)]
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


def build_demo() -> Any:
    """The unguarded Starlette app of the demo."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    db = _database()

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

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
            Route("/products", products),
            Route("/orders", list_orders, methods=["GET"]),
            Route("/orders", create_order, methods=["POST"]),
            Route("/orders/{id}", get_order),
        ]
    )
