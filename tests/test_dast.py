"""The black-box scan driver (dast/): what it attacks and how it judges, without the scanners.

The scans themselves run in ``nox -s dast``; these pin the pieces that decide a verdict.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_guard.demo import openapi_document
from asgi_guard.devkeys import generate_keys, mint_token
from dast.__main__ import _target_checks
from dast.openapi import Operation, example, operations
from dast.runner import Result, Target, _banner_token, _judge_traffic, _judge_wapiti
from dast.scanners import (
    CI,
    sqlmap_command,
    sqlmap_findings,
    sqlmap_tested,
    traffic_statuses,
    wapiti_findings,
)
from dast.targets import bare_app, vulnerable_app

pytestmark = pytest.mark.anyio


def test_every_operation_of_the_demo_document_with_valid_examples() -> None:
    """Each operation of the demo's document, with values its schemas accept."""
    found = operations(openapi_document())
    assert [(o.label, o.query, o.path_params, o.body, o.skipped) for o in found] == [
        ("GET /health", {}, {}, None, ()),
        ("GET /products", {"limit": "1", "q": "a"}, {}, None, ()),
        ("GET /orders", {}, {}, None, ()),
        ("POST /orders", {}, {}, {"product_id": 1, "quantity": 1, "note": "a"}, ()),
        ("GET /orders/{id}", {}, {"id": "1"}, None, ()),
    ]
    assert [o.parameters for o in found if o.parameters] == [
        ("limit", "q"),
        ("product_id", "quantity", "note"),
        ("id",),
    ]


def test_examples_follow_the_schema() -> None:
    """Example, enum, references, nullable unions and string lengths all give valid values."""
    document: dict[str, Any] = {"components": {"schemas": {"Kind": {"enum": ["x", "y"]}}}}
    assert example({"$ref": "#/components/schemas/Kind"}, document) == "x"
    assert example({"type": "string", "example": "given"}, document) == "given"
    assert example({"type": "string", "minLength": 3}, document) == "aaa"
    assert example({"type": ["null", "integer"], "minimum": 5}, document) == 5
    assert example({"anyOf": [{"type": "null"}, {"type": "boolean"}]}, document) is True
    assert example({"type": "array", "items": {"type": "number"}}, document) == [1]


def test_a_header_parameter_is_named_as_not_scanned() -> None:
    """Parameters no scanner here reaches are listed, not silently dropped."""
    document = {
        "paths": {
            "/x": {
                "post": {
                    "parameters": [{"name": "X-Key", "in": "header", "schema": {}}],
                    "requestBody": {"content": {"text/plain": {"schema": {}}}},
                }
            }
        }
    }
    (operation,) = operations(document)
    assert operation.skipped == ("header X-Key", "body (text/plain)")
    assert operation.parameters == ()


def test_sqlmap_commands_for_query_path_and_body(tmp_path: Path) -> None:
    """Query parameters are named with -p, path values marked with *, JSON bodies posted."""
    headers = ["Authorization: Bearer t"]
    base = "http://127.0.0.1:1"
    query = sqlmap_command(
        Operation("GET", "/products", query={"limit": "1", "q": "a"}),
        base,
        headers,
        tmp_path,
        CI,
        None,
    )
    assert query[:5] == ["sqlmap", "-u", f"{base}/products?limit=1&q=a", "-p", "limit,q"]
    assert "--technique=BEUST" in query
    assert "--level=2" in query
    assert "--headers=Authorization: Bearer t" in query
    assert not any(a.startswith("--time-limit") for a in query)
    path = sqlmap_command(
        Operation("GET", "/o/{id}", query={"v": "a b"}, path_params={"id": "1"}),
        base,
        headers,
        tmp_path,
        CI,
        30,
    )
    assert path[:3] == ["sqlmap", "-u", f"{base}/o/1*?v=a%20b*"]
    assert path[-1] == "--time-limit=30"
    body = sqlmap_command(
        Operation("POST", "/orders", body={"n": 1}), base, headers, tmp_path, CI, None
    )
    assert body[3:7] == ["--data", '{"n": 1}', "--method", "POST"]
    assert "--headers=Authorization: Bearer t\nContent-Type: application/json" in body


def test_sqlmap_log_names_each_tested_parameter() -> None:
    """GET, JSON and marked URI parameters are mapped back to the document's names."""
    log = "\n".join(
        [
            "[INFO] testing for SQL injection on GET parameter 'q'",
            "[INFO] testing for SQL injection on (custom) POST parameter 'JSON note'",
            "[INFO] testing for SQL injection on URI parameter '#2*'",
            "[INFO] testing for SQL injection on URI parameter '#1*'",
        ]
    )
    operation = Operation("GET", "/o/{id}", query={"v": "1"}, path_params={"id": "1"})
    assert sqlmap_tested(log, operation) == ["q", "note", "v", "id"]


def test_sqlmap_injection_points_are_findings() -> None:
    """Each injection point of sqlmap's JSON report is one finding with its techniques."""
    report = {
        "success": True,
        "data": [
            {"type_name": "TARGET", "value": {"url": "http://x/"}},
            {
                "type_name": "TECHNIQUES",
                "value": [
                    {
                        "place": "GET",
                        "parameter": "q",
                        "data": [{"title": "AND boolean-based blind"}, {"title": "UNION query"}],
                    }
                ],
            },
        ],
    }
    assert sqlmap_findings(report) == [
        "sqlmap: GET parameter 'q': AND boolean-based blind; UNION query"
    ]
    assert sqlmap_findings({"success": True, "data": []}) == []


def test_traffic_statuses_count_every_answer() -> None:
    """The status of each answer in sqlmap's traffic file, bodies ignored."""
    traffic = (
        "HTTP request [#1]:\nGET / HTTP/1.1\n\nHTTP response [#1] (200 OK):\n\n{}\n"
        "HTTP request [#2]:\nGET / HTTP/1.1\n\nHTTP response [#2] (500 Internal Server Error):\n"
        "body mentions HTTP response [#3] (200 OK):\n"
    )
    assert traffic_statuses(traffic) == [200, 500]


def _wapiti_item(module: str, info: str, parameter: str = "") -> dict[str, str]:
    return {"method": "GET", "path": "/", "parameter": parameter, "module": module, "info": info}


def test_wapiti_accepts_only_the_listed_messages() -> None:
    """An accepted header note is reported as accepted; any other text or any anomaly fails."""
    report = {
        "vulnerabilities": {
            "Content Security Policy Configuration": [_wapiti_item("csp", "CSP is not set")],
            "SQL Injection": [_wapiti_item("sql", "SQL error", "q")],
            "Clickjacking Protection": [
                _wapiti_item("http_headers", "X-Frame-Options is not set (again)")
            ],
        },
        "anomalies": {"Internal Server Error": [_wapiti_item("csp", "CSP is not set")]},
    }
    findings, accepted = wapiti_findings(report)
    assert findings == [
        "wapiti sql: SQL Injection: GET / parameter 'q': SQL error",
        "wapiti http_headers: Clickjacking Protection: GET /: X-Frame-Options is not set (again)",
        "wapiti csp: Internal Server Error: GET /: CSP is not set",
    ]
    assert accepted == [
        "wapiti csp: Content Security Policy Configuration: GET /: CSP is not set "
        "(accepted: the guard's headers layer sets it)"
    ]


@pytest.mark.parametrize("accept", [True, False])
def test_missing_header_notes_pass_only_without_the_guard(tmp_path: Path, accept: bool) -> None:
    """Missing-header notes pass without the guard only: through it they are findings."""
    report = {
        "infos": {"crawled_pages_nbr": 3},
        "vulnerabilities": {
            "MIME Type Confusion": [
                _wapiti_item("http_headers", "X-Content-Type-Options is not set")
            ]
        },
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    result = Result("app", "wapiti", "every operation")
    _judge_wapiti(tmp_path, "[*] Launching module http_headers\n", accept, result)
    line = "wapiti http_headers: MIME Type Confusion: GET /: X-Content-Type-Options is not set"
    assert result.tested == ["http_headers"]
    assert (result.findings, len(result.accepted)) == (([], 1) if accept else ([line], 0))
    assert result.failures == []


def test_traffic_with_a_5xx_or_only_gate_refusals_fails() -> None:
    """A 5xx fails the scan; requests all refused before validation mean it tested nothing."""
    result = Result("guarded", "sqlmap", "GET /x")
    _judge_traffic(
        [
            {"status": 401, "code": "jwt.unknown_key"},
            {"status": 429, "code": "ratelimit.exceeded"},
            {"status": 308, "code": "https.redirect"},
        ],
        result,
    )
    assert (result.statuses, result.reached) == ({308: 1, 401: 1, 429: 1}, 0)
    assert result.failures == [
        "no request got past authentication and rate limiting: the scan tested nothing"
    ]
    result = Result("guarded", "sqlmap", "GET /x")
    _judge_traffic(
        [{"status": 422, "code": "validation.invalid_query"}, {"status": 500, "code": None}],
        result,
    )
    assert (result.reached, result.codes) == (2, {"validation.invalid_query": 1})
    assert result.failures == ["the target answered 1 request(s) with a 5xx"]


def test_the_guarded_demo_must_show_rate_limits_and_validation() -> None:
    """A guarded run whose scans met no 429 or no validation refusal fails; other targets don't."""
    quiet = Result("guarded", "wapiti", "every operation", codes={"validation.invalid_body": 3})
    bare = Result("bare", "wapiti", "every operation")
    targets = [Target("guarded", "guarded"), Target("bare", "bare")]
    assert _target_checks([quiet, bare], targets) == {"guarded": ["the rate limits never engaged"]}
    limited = Result("guarded", "sqlmap", "GET /x", codes={"ratelimit.exceeded": 1})
    assert _target_checks([quiet, limited], targets) == {"guarded": []}


def test_the_banner_token_is_the_one_that_may_write() -> None:
    """Of the demo's printed tokens, the runner takes the one with orders:write."""
    keys = generate_keys()
    reader = mint_token(keys, sub="alice", scopes=["orders:read"])
    writer = mint_token(keys, sub="alice", scopes=["orders:read", "orders:write"])
    banner = f"  curl -H 'Authorization: Bearer {reader}' x\n  curl -H 'Authorization: Bearer {writer}' y\n"
    assert _banner_token(banner) == writer
    payload = writer.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["scope"] == "orders:read orders:write"
    with pytest.raises(RuntimeError, match="no token with orders:write"):
        _banner_token(f"Bearer {reader}'")


async def test_the_bare_app_keeps_strings_raw_and_its_queries_parameterised() -> None:
    """Without the guard, a long hostile q reaches the SQL as data; a non-integer limit is a 422."""
    log: list[str] = []
    app = bare_app()
    app.log = type(
        "Log", (), {"write": lambda self, s: log.append(s), "flush": lambda self: None}
    )()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        hostile = await client.get("/products", params={"q": "' OR 1=1 -- " + "x" * 300})
        assert (hostile.status_code, hostile.json()) == (200, [])
        assert (await client.get("/products", params={"limit": "1 OR 1=1"})).status_code == 422
        created = await client.post("/orders", json={"product_id": 1, "quantity": 99, "note": "'"})
        assert created.json() == {"id": 1, "product_id": 1, "quantity": 99}
        assert (await client.post("/orders", json={"product_id": "1"})).status_code == 422
        assert (await client.get("/orders/1' OR '1'='1")).status_code == 404
    assert [json.loads(line)["status"] for line in log] == [200, 422, 201, 422, 404]


async def test_the_vulnerable_variant_is_injectable() -> None:
    """The proof's variant pastes q into its SQL: a tautology returns rows, a quote a 500."""
    app = vulnerable_app()
    app.log = type("Log", (), {"write": lambda self, s: None, "flush": lambda self: None})()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        injected = await client.get("/products", params={"q": "zzz' OR 1=1 --"})
        assert injected.json() == [
            {"id": 1, "name": "keyboard", "price_cents": 4900},
            {"id": 2, "name": "mouse", "price_cents": 1900},
        ]
        assert (await client.get("/products", params={"q": "'"})).status_code == 500
