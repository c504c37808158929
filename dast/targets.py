"""The apps the scanners attack besides the guarded demo, each served as a real process.

``python -m dast.targets bare --port N`` serves the demo's own Starlette app without the guard;
``python -m dast.targets vulnerable --port N`` serves the same app with one deliberately
injectable route, the proof that the scans catch a string-formatted query. Neither is part of
the package: they exist only to be scanned.

The demo's handlers read what the guard hands them (``scope["user"]``, the decoded query and
body in ``scope["state"]``). Without the guard, :class:`FrameworkShim` stands in for what a
framework does on its own, and no more: it converts integers as a framework's type hints would
(a non-integer is a plain 422) and passes strings through raw, with no length limit, no
authentication (every request acts as one fixed user), no rate limit. So the scanners' payloads
reach the SQL of the app itself, and only its parameterised queries stand between them and the
database.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from asgi_guard._asgi import Message, Receive, Scope, Send
from asgi_guard.demo import NewOrder, ProductQuery, build_demo

#: SQLite integers are 64-bit; a framework's ``int`` hint accepts more, the driver does not.
_INT64 = (-(2**63), 2**63 - 1)
_USER = "alice"


class _User:
    """What the guard's JWT layer would put in ``scope["user"]``: the one fixed user here."""

    is_authenticated = True
    sub = _USER
    display_name = _USER
    scopes = frozenset({"orders:read", "orders:write"})


class _Invalid(Exception):
    """Input a framework's own type conversion would refuse with a 422."""


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Invalid
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise _Invalid from None
    if not isinstance(value, int) or not _INT64[0] <= value <= _INT64[1]:
        raise _Invalid
    return value


def _query(raw: bytes) -> ProductQuery:
    fields = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    # A Struct's constructor checks no constraints: ``q`` goes through at any length, as the
    # bare app of a framework would take it.
    return ProductQuery(limit=_int(fields.get("limit", "10")), q=fields.get("q", ""))


def _body(raw: bytes) -> NewOrder:
    try:
        data = json.loads(raw)
    except ValueError:
        raise _Invalid from None
    if not isinstance(data, dict):
        raise _Invalid
    note = data.get("note")
    if note is not None and not isinstance(note, str):
        raise _Invalid
    return NewOrder(
        product_id=_int(data.get("product_id")), quantity=_int(data.get("quantity")), note=note
    )


class FrameworkShim:
    """Decode the query and body as a framework would, and log one JSON line per response.

    Args:
        app: the demo's Starlette app.
        log: where each response's ``{"method", "path", "query", "status"}`` line goes.
    """

    def __init__(self, app: Any, log: Any = sys.stdout) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["user"] = _User()
        state = scope.setdefault("state", {})
        status = 0

        async def logged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if scope["path"] == "/products":
                state["validated_query"] = _query(scope["query_string"])
            elif scope["path"] == "/orders" and scope["method"] == "POST":
                body = b""
                while True:
                    message = await receive()
                    body += message.get("body", b"")
                    if not message.get("more_body"):
                        break
                state["validated_body"] = _body(body)
                receive = _replay(body)
        except _Invalid:
            await _unprocessable(logged_send)
        else:
            try:
                await self.app(scope, receive, logged_send)
            except Exception:
                status = status or 500  # uvicorn answers 500: the scans must see it in the log
                raise
            finally:
                self._record(scope, status)
            return
        self._record(scope, status)

    def _record(self, scope: Scope, status: int) -> None:
        line = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode("latin-1"),
            "status": status,
        }
        self.log.write(json.dumps(line) + "\n")
        self.log.flush()


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _unprocessable(send: Send) -> None:
    body = b'{"detail":"unprocessable"}'
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def bare_app() -> FrameworkShim:
    """The demo's own app, without the guard."""
    return FrameworkShim(build_demo())


def vulnerable_app() -> FrameworkShim:
    """The demo's app with ``GET /products`` building its SQL by string formatting: injectable."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    demo = build_demo()
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.executescript(
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price_cents INTEGER);"
        "INSERT INTO products (name, price_cents) VALUES ('keyboard', 4900), ('mouse', 1900);"
    )

    async def products(request: Request) -> JSONResponse:
        query: ProductQuery = request.scope["state"]["validated_query"]
        # The flaw the scans must find: the query string is pasted into the SQL text.
        sql = f"SELECT id, name, price_cents FROM products WHERE name LIKE '%{query.q}%' LIMIT {query.limit}"  # noqa: S608
        rows = db.execute(sql).fetchall()
        return JSONResponse([{"id": r[0], "name": r[1], "price_cents": r[2]} for r in rows])

    # The first matching route wins: this one shadows the demo's safe /products.
    return FrameworkShim(Starlette(routes=[Route("/products", products), *demo.routes]))


APPS = {"bare": bare_app, "vulnerable": vulnerable_app}


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one of :data:`APPS` with uvicorn on 127.0.0.1."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m dast.targets", description=__doc__)
    parser.add_argument("app", choices=sorted(APPS))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        APPS[args.app](),
        host="127.0.0.1",
        port=args.port,
        access_log=False,
        server_header=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
