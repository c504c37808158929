"""The stack as data: guard() builds exactly the rows of STACK, and the config uses public names."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from asgi_guard import guard
from asgi_guard.stack import ROUTE_RULES, STACK

from .conftest import RecordingApp
from .test_config import FULL

pytestmark = pytest.mark.anyio

PACKAGE = Path(__file__).resolve().parent.parent / "asgi_guard"


def built(app: Any) -> list[str]:
    """The class of each layer from the outside in, as "module:Class"."""
    names = []
    while not isinstance(app, RecordingApp):
        names.append(f"{type(app).__module__}:{type(app).__name__}")
        app = app.app
    return names


def test_guard_builds_the_rows_of_the_table_in_order() -> None:
    """With every section on (metrics with its histogram too), the layers guard() builds are
    the STACK rows, outermost first, each one once (the two rate-limit rows both present)."""
    config = {**FULL, "metrics": {"otel": False, "histogram": False, "on_decision": "builtins:id"}}
    rows = [layer.factory for layer in STACK if layer.factory != "asgi_guard.metrics:AppTimer"]
    classes = built(guard(RecordingApp(), config, environ={}))
    # The classes live in their modules; the table names them by their public home.
    assert [name.rpartition(":")[2] for name in classes] == [row.rpartition(":")[2] for row in rows]


def test_route_rules_cover_every_route_field() -> None:
    """Every field of a [[routes]] entry but its path (and cost, read with limit, and public,
    read with scopes) is merged by one row of ROUTE_RULES."""
    from asgi_guard.config import RouteConfig

    fields = set(RouteConfig.__struct_fields__) - {"path", "cost", "public"}
    assert {rule.field for rule in ROUTE_RULES} == fields


def test_config_and_stack_import_no_private_names_of_layers() -> None:
    """config.py and stack.py import only public names from the layers' modules."""
    for module in ("config.py", "stack.py"):
        tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
        private = [
            f"{node.module}.{alias.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module not in (None, "_asgi", "_teach")
            for alias in node.names
            if alias.name.startswith("_")
        ]
        assert private == [], module


async def test_the_benchmarked_stack_serves_its_requests() -> None:
    """The stack benchmark measures admitted requests: guard() from its config answers the
    raw app's 200 to the GET and the validated POST, from rotating clients, with HSTS and
    one RateLimit pair."""
    import logging

    from benchmarks.groups import ORDER_BODY, POST_HEADERS, _bearer, jwt_material
    from benchmarks.stack import guarded, rotating_scope

    from .conftest import Channel

    logger = logging.getLogger("test.stack.bench")
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False
    token = _bearer(jwt_material()["rs256"])
    for scope, body in (
        (rotating_scope(token), b""),
        (rotating_scope(token + POST_HEADERS, method="POST", path="/orders"), ORDER_BODY),
    ):
        for _ in range(3):
            channel = Channel([{"type": "http.request", "body": body, "more_body": False}])
            sent = await channel.run(guarded(RecordingApp(), "test.stack.bench"), scope())
            names = [key for key, _ in sent[0]["headers"]]
            assert sent[0]["status"] == 200, sent
            assert names.count(b"strict-transport-security") == 1
            assert names.count(b"ratelimit") == 1
