"""JSON Schema ``pattern`` on query parameters: matched in linear time, exactly as ECMA-262."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any
from urllib.parse import quote

import msgspec
import orjson
import pytest

from asgi_guard import ConfigurationError, ValidationMiddleware, compile_schema
from asgi_guard.validation.patterns import LinearPattern, pattern_checker

from .conftest import RecordingApp, client_for
from .test_json_schema_suite import SUITE

pytestmark = pytest.mark.anyio


#: Runs the attack in a child: on Python's backtracking re it never ends, and a hung event loop
#: cannot time itself out. Prints (status, code, loc, app calls) as JSON.
_ATTACK = textwrap.dedent(
    """
    import asyncio, json, sys
    from asgi_guard import ValidationMiddleware

    calls = []

    async def app(scope, receive, send):
        calls.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def main():
        schema = json.loads(sys.argv[1])
        layer = ValidationMiddleware(app, query={"GET /x": schema})
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/x", "raw_path": b"/x",
                 "query_string": sys.argv[2].encode(), "headers": []}
        await layer(scope, receive, send)
        status = sent[0]["status"]
        body = json.loads(sent[1]["body"]) if status != 200 else {}
        errors = body.get("errors") or [{}]
        print(json.dumps([status, body.get("code"), errors[0].get("loc"), len(calls)]))

    asyncio.run(main())
    """
)

_REDOS = {
    "type": "object",
    "properties": {
        "q": {"type": "string", "pattern": "^(a+)+$"},
        "tags": {"type": "array", "items": {"type": "string", "pattern": "^(a|aa)+$"}},
    },
}


def _attack(query: str) -> list[Any]:
    done = subprocess.run(
        [sys.executable, "-c", _ATTACK, json.dumps(_REDOS), query],
        capture_output=True,
        timeout=60,  # the old engine needs about 2 ** 5000 steps for the hostile value
        check=True,
    )
    result: list[Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=" + "a" * 5000 + "!", [422, "validation.invalid_query", "query.q", 0]),
        ("tags=a&tags=" + "a" * 5000 + "!", [422, "validation.invalid_query", "query.tags[1]", 0]),
        ("q=" + "a" * 5000 + "&tags=" + "a" * 5000, [200, None, None, 1]),
    ],
)
def test_redos_query_is_answered_not_hung(query: str, expected: list[Any]) -> None:
    """A 5,000-character query value against a nested quantifier (exponential on a backtracking
    engine) is answered, refused with the field named or admitted, within the child's timeout."""
    assert _attack(query) == expected


async def test_refusal_names_the_field_and_never_echoes_the_value() -> None:
    """A value failing its pattern is a 422 validation.invalid_query naming the field; the
    problem document holds neither the value nor the pattern."""
    app = RecordingApp()
    layer = ValidationMiddleware(app, query={"GET /x": _REDOS})
    async with client_for(layer) as client:
        response = await client.get("/x", params={"q": "aaaSECRET"})
    assert response.status_code == 422
    document = orjson.loads(response.content)
    assert document["code"] == "validation.invalid_query"
    assert document["errors"] == [{"loc": "query.q", "msg": "Expected `str` matching regex"}]
    assert b"SECRET" not in response.content
    assert b"(a+)" not in response.content
    assert app.calls == 0


#: (pattern, value, matches in ECMA-262 with the u flag), searched as JSON Schema does.
ECMA_CASES = [
    ("^[a-z0-9]+$", "admin", True),
    ("^[a-z0-9]+$", "admin\n", False),  # $ is the end of input, not before a final newline
    ("^\\d+$", "42", True),
    ("^\\d+$", "\u09ea\u09e8", False),  # \d is ASCII
    ("^\\w+$", "\u00e9t\u00e9", False),  # \w is ASCII
    ("^\\s$", "\ufeff", True),  # ECMA WhiteSpace includes U+FEFF
    ("^\\s$", "\x1c", False),  # Python's \s includes the information separators
    ("^.$", "\u2028", False),  # . excludes every line terminator
    ("^.$", "\r", False),
    ("^.$", "\U0001f432", True),  # one code point
    ("^[^a]$", "\U0001f432", True),
    ("b", "abc", True),  # not anchored
    ("^(?:ab){2}$", "abab", True),
    ("^(?:ab){2}$", "ababab", False),
    ("^a{2,3}$", "aaaa", False),
    ("^(?!admin$)[a-z]+$", "admin", False),
    ("^(?!admin$)[a-z]+$", "admins", True),
    ("^\\x41\\u00e9$", "A\u00e9", True),
    ("^[\\d-]+$", "1-2", True),
    ("^(a+)+$", "a" * 16 + "!", False),
]


@pytest.mark.parametrize(("pattern", "value", "matches"), ECMA_CASES)
async def test_query_pattern_decides_as_ecma_262(pattern: str, value: str, matches: bool) -> None:
    """A query parameter's pattern admits exactly the values ECMA-262 matches."""
    app = RecordingApp()
    schema = {"type": "object", "properties": {"v": {"type": "string", "pattern": pattern}}}
    layer = ValidationMiddleware(app, query={"GET /x": schema})
    async with client_for(layer) as client:
        response = await client.get("/x", params={"v": value})
    assert (response.status_code, app.calls) == ((200, 1) if matches else (422, 0))


def _suite_pattern_cases() -> list[tuple[str, str, str, bool]]:
    """(where, pattern, string, valid) for every suite group that is only a string pattern."""
    draft = SUITE / "draft2020-12"
    assert draft.is_dir(), f"JSON-Schema-Test-Suite not found at {SUITE}"
    found = []
    for path in sorted(draft.rglob("*.json")):
        for group in json.loads(path.read_text(encoding="utf-8")):
            schema = group["schema"]
            if not isinstance(schema, dict) or "pattern" not in schema:
                continue
            if set(schema) - {"$schema", "type", "pattern"}:
                continue
            for case in group["tests"]:
                if isinstance(case["data"], str):
                    where = f"{path.name} | {group['description']} | {case['description']}"
                    found.append((where, schema["pattern"], case["data"], case["valid"]))
    return found


async def test_suite_pattern_cases_through_the_query() -> None:
    """Every string case of the suite's pattern-only groups is decided through a query as the
    suite says, or its pattern is refused at construction with a ConfigurationError."""
    agreed: list[str] = []
    refused: set[str] = set()
    wrong: list[str] = []
    for where, pattern, value, valid in _suite_pattern_cases():
        schema = {"type": "object", "properties": {"v": {"type": "string", "pattern": pattern}}}
        app = RecordingApp()
        try:
            layer = ValidationMiddleware(app, query={"GET /x": schema})
        except ConfigurationError:
            refused.add(pattern)
            continue
        async with client_for(layer) as client:
            response = await client.get(f"/x?v={quote(value, safe='')}")
        if (response.status_code == 200) == valid:
            agreed.append(where)
        else:
            wrong.append(where)
    assert wrong == []
    # \cC, \p{...} and \p{digit} have no exact form here; the rest is decided.
    assert refused == {"^\\cC$", "^\\cc$", "\\p{Letter}cole", "^\\p{digit}+$", "^\\p{Letter}+$"}
    assert len(agreed) == 56


def test_compiled_type_carries_the_pattern_not_a_python_regex() -> None:
    """compile_schema leaves no Meta(pattern=) for msgspec's re: the pattern is a LinearPattern
    in Meta.extra and the ECMA-262 text in the type's JSON Schema."""
    compiled = compile_schema({"type": "string", "pattern": "^(a+)+$", "maxLength": 9000})
    info = msgspec.inspect.type_info(compiled)
    assert isinstance(info, msgspec.inspect.Metadata)
    assert isinstance(info.type, msgspec.inspect.StrType)
    assert info.type.pattern is None
    assert info.type.max_length == 9000
    assert repr((info.extra or {})["asgi_guard.pattern"]) == "LinearPattern('^(a+)+$')"
    assert msgspec.json.schema(compiled) == {
        "type": "string",
        "maxLength": 9000,
        "pattern": "^(a+)+$",
    }
    checker = pattern_checker(compiled)
    assert checker is not None
    assert checker("a" * 5000 + "!") == []
    assert checker("a" * 5000) is None
    assert pattern_checker(compile_schema({"type": "string", "maxLength": 3})) is None


def test_checker_follows_unions_lists_dicts_and_structs() -> None:
    """The checker finds a failing string inside arrays, maps, objects and unions, at the
    path msgspec would name, and leaves values of other union members alone."""
    compiled = compile_schema(
        {
            "type": "object",
            "properties": {
                "u": {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^b"}]},
                "m": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "pattern": "^c"},
                },
                "l": {"type": "array", "items": {"type": "string", "pattern": "^d"}},
            },
        }
    )
    checker = pattern_checker(compiled)
    assert checker is not None

    def path(value: dict[str, Any]) -> list[str | int] | None:
        return checker(msgspec.convert(value, compiled))

    assert path({"u": 5, "m": {"k": "c"}, "l": ["d", "dd"]}) is None
    assert path({"u": "x"}) == ["u"]
    assert path({"m": {"k": "c", "j": "x"}}) == ["m", "j"]
    assert path({"l": ["d", "x"]}) == ["l", 1]


def test_lone_surrogate_matches_nothing() -> None:
    """A string no JSON text can hold matches no pattern (refused, never an error)."""
    assert LinearPattern("^").matches("\ud800") is False
    assert LinearPattern("^").matches("a") is True
