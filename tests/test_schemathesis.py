"""schemathesis drives the demo API through the whole guard stack: no 500s, every answer documented."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from asgi_guard import guard
from asgi_guard.demo import build_demo, demo_config
from asgi_guard.devkeys import generate_keys, mint_token

KEYS = generate_keys()
# Limits high enough that generated requests reach validation and the app, not just 429.
CONFIG = demo_config(KEYS)
CONFIG["rate_limit"]["limit"] = "100000/minute"
for route in CONFIG["routes"]:
    if "limit" in route:
        route["limit"] = "100000/minute"
APP = guard(build_demo(), CONFIG, environ={})
TOKEN = mint_token(KEYS, sub="fuzzer", scopes=["orders:read", "orders:write"])
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", APP, headers={"x-forwarded-proto": "https"}
)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_demo_api_conforms(case: Any) -> None:
    """Generated requests (valid and not) never get a 500, and every response matches the document."""
    headers = {"x-forwarded-proto": "https", "authorization": f"Bearer {TOKEN}"}
    case.call_and_validate(
        headers=headers,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
