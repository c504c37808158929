"""The JSON Schema compiler agrees with jsonschema-rs-rs, and refuses what it cannot enforce exactly."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_guard import ConfigurationError, compile_schema
from asgi_guard.validation.json_schema import SchemaValidator
from asgi_guard.validation.patterns import pattern_checker

ORDER = {
    "$defs": {
        "item": {
            "type": "object",
            "properties": {
                "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"},
                "qty": {"type": "integer", "minimum": 1, "maximum": 99},
            },
            "required": ["sku", "qty"],
            "additionalProperties": False,
        }
    },
    "type": "object",
    "properties": {
        "customer": {"type": "string", "minLength": 2, "maxLength": 10},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1, "maxItems": 3},
        "priority": {"enum": ["low", "high", None]},
        "discount": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5},
        "gift": {"type": "boolean"},
        "note": {"type": ["string", "null"], "maxLength": 5},
        "version": {"const": 2},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 2},
        "ref": {
            "anyOf": [{"type": "string", "format": "uuid"}, {"type": "integer", "multipleOf": 5}]
        },
        "when": {"type": "string", "format": "date"},
        "meta": {"type": "object", "properties": {"a": {"type": "string"}}},
    },
    "required": ["customer", "items"],
    "additionalProperties": False,
}

VALID_ITEM = {"sku": "ABC-1", "qty": 3}
BASE = {"customer": "bob", "items": [VALID_ITEM]}

CORPUS: list[Any] = [
    BASE,
    {**BASE, "priority": "low"},
    {**BASE, "priority": None},
    {**BASE, "priority": "urgent"},
    {**BASE, "discount": 0.25},
    {**BASE, "discount": 0},
    {**BASE, "discount": 0.5},
    {**BASE, "discount": 1},
    {**BASE, "gift": True},
    {**BASE, "gift": 1},
    {**BASE, "note": None},
    {**BASE, "note": "hi"},
    {**BASE, "note": "too long"},
    {**BASE, "version": 2},
    {**BASE, "version": 3},
    {**BASE, "tags": {"a": "x"}},
    {**BASE, "tags": {"a": "x", "b": "y", "c": "z"}},
    {**BASE, "tags": {"a": 1}},
    {**BASE, "ref": "6f1c2b0e-8d9a-4c1e-9a55-0a3f7b6c2d11"},
    {**BASE, "ref": 10},
    {**BASE, "ref": 11},
    {**BASE, "ref": "not-a-uuid"},
    {**BASE, "when": "2026-11-23"},
    {**BASE, "when": "2026-13-01"},
    {**BASE, "meta": {"a": "x", "extra": [1, 2]}},
    {**BASE, "meta": {"a": 5}},
    {**BASE, "unknown": 1},
    {"customer": "b", "items": [VALID_ITEM]},
    {"customer": "bob"},
    {"customer": "bob", "items": []},
    {"customer": "bob", "items": [VALID_ITEM] * 4},
    {"customer": "bob", "items": [{"sku": "abc-1", "qty": 3}]},
    {"customer": "bob", "items": [{"sku": "XABC-1", "qty": 3}]},
    {"customer": "bob", "items": [{"sku": "ABC-1", "qty": 0}]},
    {"customer": "bob", "items": [{"sku": "ABC-1", "qty": 100}]},
    {"customer": "bob", "items": [{"sku": "ABC-1", "qty": "3"}]},
    {"customer": "bob", "items": [{"sku": "ABC-1"}]},
    {"customer": "bob", "items": [{"sku": "ABC-1", "qty": 3, "x": 1}]},
    {"customer": None, "items": [VALID_ITEM]},
    [],
    "string",
    None,
]

SMALL_SCHEMAS: list[dict[str, Any]] = [
    {"type": "integer", "minimum": -3, "maximum": 3},
    {"type": "number", "multipleOf": 0.5},
    {"type": "string", "pattern": "a+b"},
    {"type": ["integer", "string"]},
    {"type": "array", "items": {"type": "boolean"}},
    {"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "integer"}}]},
    {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x", "y"]},
    {"enum": [1, 2, "three"]},
    {"type": "string", "enum": ["three", 2]},
    {"type": ["integer", "null"], "const": 2},
    {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 1},
    {"type": "number", "exclusiveMinimum": -1, "exclusiveMaximum": 3.5},
    {"type": "string", "format": "uuid"},
    {"type": "string", "pattern": "^[a-z0-9]+$"},
    {"type": "string", "pattern": "^\\d+$"},
    {"allOf": [{"type": "integer"}]},
    {"type": "object", "additionalProperties": False},
    {
        "$defs": {"n": {"type": "integer"}},
        "type": "array",
        "items": {"$ref": "#/$defs/n"},
        "maxItems": 2,
    },
    {},
]
SMALL_INSTANCES: list[Any] = [
    0,
    3,
    4,
    -4,
    1.5,
    2.0,
    "ab",
    "aab",
    "b",
    True,
    None,
    [],
    [True],
    [1],
    {"x": 1},
    {"x": 1, "y": None},
    "three",
    2,
]


def validates(kind: Any, instance: Any) -> bool:
    """The compiled type's verdict as the layer gives it: msgspec's decode, then the patterns,
    which run on a linear engine after conversion (never on Python's backtracking re)."""
    try:
        value = msgspec.json.decode(orjson.dumps(instance), type=kind)
    except msgspec.ValidationError:
        return False
    checker = pattern_checker(kind)
    return checker is None or checker(value) is None


def reference(schema: dict[str, Any], instance: Any) -> bool:
    """The verdict of ValidationMiddleware's JSON Schema path: jsonschema-rs, which passes the
    official suite (ECMA-262 patterns and RFC formats included; python-jsonschema reads
    patterns with Python's re), with its '.' made ECMA-exact."""
    return SchemaValidator(schema, "reference").errors(instance) is None


@pytest.mark.parametrize("instance", CORPUS)
def test_order_schema_agrees_with_jsonschema(instance: Any) -> None:
    """The compiled order schema accepts exactly what jsonschema-rs accepts."""
    assert validates(compile_schema(ORDER), instance) == reference(ORDER, instance)


@pytest.mark.parametrize("schema", SMALL_SCHEMAS)
def test_small_schemas_agree_with_jsonschema(schema: dict[str, Any]) -> None:
    """Each keyword alone agrees with jsonschema-rs on a shared set of instances (integral floats aside)."""
    compiled = compile_schema(schema)
    for instance in SMALL_INSTANCES:
        if isinstance(instance, float) and instance.is_integer():
            continue  # see test_integral_floats_are_not_integers
        assert validates(compiled, instance) == reference(schema, instance), instance


def test_integral_floats_are_not_integers() -> None:
    """Stricter than jsonschema on purpose: 2.0 is not the integer 2 (type, enum or const)."""
    for schema in ({"type": "integer"}, {"enum": [2]}, {"const": 2}):
        assert reference(schema, 2.0) is True
        assert validates(compile_schema(schema), 2.0) is False


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-200, 200)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["customer", "items", "sku", "qty", "note", "x"]), children, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_random_instances_agree(instance: Any) -> None:
    """Random JSON values get the same verdict from the compiled schema and from jsonschema-rs."""
    if any(isinstance(v, float) and v.is_integer() for v in _leaves(instance)):
        return
    for schema in (ORDER, *SMALL_SCHEMAS):
        assert validates(compile_schema(schema), instance) == reference(schema, instance)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    return [value]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "format": "email"}, "format 'email' cannot be enforced at $.format"),
        (
            {"type": "array", "uniqueItems": True},
            "keyword 'uniqueItems' cannot be enforced at $.uniqueItems",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string", "maxLenght": 3}}},
            "keyword 'maxLenght' cannot be enforced at $.properties.a.maxLenght",
        ),
        ({"not": {"type": "string"}}, "keywords ['not'] need a 'type' at $"),
        (
            {"type": "object", "patternProperties": {"^a": {}}},
            "keyword 'patternProperties' cannot be enforced",
        ),
        (
            {"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "string"}},
            "a schema for additional properties is not supported",
        ),
        ({"$ref": "https://example.com/schema"}, "only local '#/$defs/...' references"),
        ({"$defs": {"n": {"$ref": "#/$defs/n"}}, "$ref": "#/$defs/n"}, "recursive reference"),
        ({"$ref": "#/$defs/missing"}, "unresolvable reference"),
        (
            {
                "anyOf": [
                    {"type": "object", "properties": {"a": {}}},
                    {"type": "object", "properties": {"b": {}}},
                ]
            },
            "this union cannot be enforced exactly",
        ),
        ({"enum": [1.5]}, "'enum' value 1.5 cannot be enforced (only strings, integers, null)"),
        ({"type": "integer", "minimum": 1.5}, "'minimum' of an integer must be whole"),
        ({"type": "string", "pattern": "("}, "'pattern' cannot be enforced exactly"),
        ({"type": "string", "pattern": "\\bword"}, "the escape '\\b' at $.pattern"),
        ({"type": "string", "pattern": "\\p{L}"}, "the escape '\\p' at $.pattern"),
        ({"type": "string", "pattern": "(?<n>a)"}, "the group '(?<n' at $.pattern"),
        ({"type": "string", "pattern": "a{,3}"}, "no {n}, {n,} or {n,m} quantifier"),
        ({"type": "string", "pattern": "a*+"}, "a possessive quantifier"),
        ({"type": "string", "pattern": "[\\d-z]"}, "a range with a class escape"),
        (
            {"oneOf": [{"type": "integer"}, {"type": "number"}]},
            "'oneOf' members that can match the same value cannot be enforced at $.oneOf[1]",
        ),
        ({"oneOf": [True, True]}, "'oneOf' members that can match the same value"),
        ({"oneOf": [{"minimum": 1}, {"type": "string"}]}, "at $.oneOf[0]"),
        ({"type": "string", "format": "date-time"}, "format 'date-time' cannot be enforced"),
        ({"type": "string", "format": "time"}, "format 'time' cannot be enforced"),
        (
            {
                "$defs": {"n": {"type": "integer"}},
                "type": "object",
                "properties": {
                    "a": {"$id": "/inner", "$defs": {"n": {"type": "string"}}, "$ref": "#/$defs/n"}
                },
            },
            "'$id' in a subschema is not supported at $.properties.a.$id",
        ),
        (
            {"type": "object", "properties": {'say "hi"': {"type": "string"}}},
            "'properties' names holding quotes, backslashes or control characters",
        ),
        (
            {"type": "object", "properties": {"a\\b": {}}, "required": ["a\\b"]},
            "'properties' names holding quotes",
        ),
        ({"type": "object", "properties": {"a\nb": {}}}, "'properties' names holding quotes"),
        (False, "the schema 'false' (nothing valid) cannot be enforced at $"),
        ({"type": "string", "minLength": -1}, "'minLength' must be a whole number >= 0"),
        ({"type": "widget"}, "unknown type 'widget'"),
        (
            {"type": ["string", "null"], "uniqueItems": True},
            "keyword 'uniqueItems' cannot be enforced",
        ),
        (
            {"allOf": [{"type": "string"}, {"minLength": 2}]},
            "'allOf' is only supported with a single member",
        ),
        (
            {"type": "object", "properties": {"a": 5}},
            "a schema must be an object, not 5 at $.properties.a",
        ),
        ({"$ref": "#/$defs/a", "type": "string"}, "'$ref' beside other keywords is not supported"),
        (
            {"anyOf": [{"type": "string"}], "type": "string"},
            "'anyOf' beside other keywords is not supported",
        ),
        ({"const": 1, "minimum": 0}, "'const' beside other keywords is not supported"),
        ({"enum": []}, "'enum' must be a non-empty list"),
        ({"type": "string", "enum": [1, 2]}, "no 'enum' value has the declared type"),
        ({"type": ["string", "string"]}, "'type' list must be non-empty and without repeats"),
        (
            {"type": "object", "properties": [], "required": []},
            "'properties' must be an object and 'required' a list",
        ),
        (
            {"type": "object", "properties": {"a": {}}, "minProperties": 1},
            "'minProperties'/'maxProperties' with 'properties' is not supported",
        ),
        (
            {"type": "string", "format": "date", "minLength": 1},
            "'format' beside length or pattern keywords is not supported",
        ),
        ({"type": "array", "items": [{"type": "string"}]}, "tuple-form 'items' is not supported"),
        ({"type": "integer", "maximum": True}, "'maximum' must be a number"),
        ({"type": "boolean", "minimum": 1}, "keyword 'minimum' cannot be enforced"),
        ({"$defs": 5, "$ref": "#/$defs/x"}, "unresolvable reference"),
    ],
)
def test_unenforceable_keywords_are_configuration_errors(schema: Any, message: str) -> None:
    """Anything the compiler cannot honour exactly fails loudly, naming keyword and location."""
    with pytest.raises(ConfigurationError) as info:
        compile_schema(schema, option="schemas['/x']")
    assert info.value.option == "schemas['/x']"
    assert message in info.value.message


@pytest.mark.parametrize(
    ("schema", "instance"),
    [
        ({"type": "string", "pattern": "^[a-z0-9]+$"}, "admin\n"),  # ECMA's $ is end of input
        ({"type": "string", "pattern": "^\\d+$"}, "\u09ea\u09e8"),  # Bengali 42: \d is ASCII
        ({"type": "string", "pattern": "^\\w+$"}, "\u00e9"),
        ({"type": "string", "pattern": "^\\S$"}, "\ufeff"),  # ECMA's \s includes the BOM
        ({"type": "string", "pattern": "^.$"}, "\u2028"),  # . stops at every line terminator
        ({"type": "string", "format": "uuid"}, "2eb8aa087bac4f4e9a3a2b4c5d6e7f80"),
        ({"type": "string", "format": "uuid"}, "{2eb8aa08-7bac-4f4e-9a3a-2b4c5d6e7f80}"),
    ],
)
def test_ecma_and_rfc_exactness(schema: dict[str, Any], instance: str) -> None:
    """Patterns follow ECMA-262 and formats their RFC grammars, where Python's re and
    msgspec's UUID would accept these strings."""
    assert validates(compile_schema(schema), instance) is False
    assert reference(schema, instance) is False


@pytest.mark.parametrize(
    ("schema", "instance"),
    [
        ({"type": "string", "pattern": "^[a-z0-9]+$"}, "admin"),
        ({"type": "string", "pattern": "^\\d+$"}, "42"),
        ({"type": "string", "pattern": "^\\s$"}, "\u3000"),
        ({"type": "string", "format": "uuid"}, "2EB8AA08-7bac-4f4e-9a3a-2b4c5d6e7f80"),
        ({"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 3}]}, 5),
    ],
)
def test_exact_translations_still_accept(schema: dict[str, Any], instance: Any) -> None:
    """The translated patterns, formats and disjoint oneOf accept what the specification does."""
    assert validates(compile_schema(schema), instance) is True
    assert reference(schema, instance) is True
