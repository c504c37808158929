"""JSON Schema (draft 2020-12) body validation with jsonschema-rs, refusing what it cannot mean.

jsonschema-rs passes every runnable group of the official JSON-Schema-Test-Suite for draft
2020-12, required and optional (ECMA-262 regular expressions, RFC formats, big numbers), so it
is used as it is. What this module adds is failing closed at construction: a schema that would
need a document fetched over the network, another draft's meta-schema, an unknown ``format`` or
an unknown (possibly misspelt) keyword is a :class:`ConfigurationError` naming the keyword and
its location, never a rule silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import unquote

import jsonschema_rs

from ..errors import ConfigurationError
from .ecma import Untranslatable, exact_for_rust

__all__ = ["SchemaValidator", "safe_loc"]

_DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"
#: Keywords whose value is one subschema (draft 2020-12, sections 10-11 of the core and
#: section 6 of the validation vocabulary).
_ONE: Final = frozenset(
    {
        "additionalProperties",
        "items",
        "contains",
        "not",
        "if",
        "then",
        "else",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "contentSchema",
    }
)
_LIST: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_MAP: Final = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
#: Keywords with a value that is no schema: assertions, identifiers and annotations.
_VALUES: Final = frozenset(
    {
        "type",
        "enum",
        "const",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxContains",
        "minContains",
        "maxProperties",
        "minProperties",
        "required",
        "dependentRequired",
        "format",
        "contentEncoding",
        "contentMediaType",
        "$schema",
        "$id",
        "$anchor",
        "$dynamicAnchor",
        "$ref",
        "$dynamicRef",
        "$vocabulary",
        "$comment",
        "title",
        "description",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "examples",
    }
)
#: Errors listed in a 422 at most: a body can fail many keywords, the answer stays small.
MAX_ERRORS: Final = 10
#: A member name shown in ``loc``: short, printable, nothing that needs quoting.
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}\Z")
_UNKNOWN_FORMAT: Final = re.compile(r"Unknown format: '(.*)'")
_REMOTE: Final = re.compile(r"Resource '([^']*)' is not present")


def _subschemas(schema: Mapping[str, Any], where: str) -> Iterator[tuple[Any, str]]:
    for keyword, value in schema.items():
        if keyword in _ONE:
            yield value, f"{where}.{keyword}"
        elif keyword in _LIST and isinstance(value, list):
            yield from ((item, f"{where}.{keyword}[{i}]") for i, item in enumerate(value))
        elif keyword in _MAP and isinstance(value, Mapping):
            yield from ((item, f"{where}.{keyword}.{name}") for name, item in value.items())


def _walk(schema: Any, where: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    """Every schema object in ``schema`` with its location (boolean schemas have none)."""
    if isinstance(schema, Mapping):
        yield schema, where
        for sub, at in _subschemas(schema, where):
            yield from _walk(sub, at)


def _pointers(schema: Any, pointer: str, out: set[str]) -> set[str]:
    """The JSON Pointers (RFC 6901, as ``#`` fragments) of every schema in ``schema``."""
    out.add(pointer)
    if isinstance(schema, Mapping):
        for keyword, value in schema.items():
            token = f"{pointer}/{_escape_token(keyword)}"
            if keyword in _ONE:
                _pointers(value, token, out)
            elif keyword in _LIST and isinstance(value, list):
                for i, item in enumerate(value):
                    _pointers(item, f"{token}/{i}", out)
            elif keyword in _MAP and isinstance(value, Mapping):
                for name, item in value.items():
                    _pointers(item, f"{token}/{_escape_token(name)}", out)
    return out


def _escape_token(name: Any) -> str:
    return str(name).replace("~", "~0").replace("/", "~1")


def _check_references(schema: Any, option: str) -> None:
    """Refuse a same-document ``$ref`` to a place that holds no schema (``#/examples/0``,
    ``#/$defs``): it would be read as one, unchecked, its misspelt keywords ignored. A
    fragment is read in the schema resource it is written in (the nearest ``$id``)."""
    resources: dict[int, set[str]] = {}

    def check(node: Any, where: str, resource: Mapping[str, Any]) -> None:
        if not isinstance(node, Mapping):
            return
        if "$id" in node:
            resource = node
        for keyword in ("$ref", "$dynamicRef"):
            target = node.get(keyword)
            if not isinstance(target, str) or not target.startswith("#/"):
                continue
            pointers = resources.get(id(resource))
            if pointers is None:
                pointers = resources[id(resource)] = _pointers(resource, "#", set())
            if unquote(target) not in pointers:
                raise ConfigurationError(
                    option, f"'{keyword}' {target!r} at {where}.{keyword} names no subschema"
                )
        for sub, at in _subschemas(node, where):
            check(sub, at, resource)

    if isinstance(schema, Mapping):
        check(schema, "$", schema)


def _check_keywords(schema: Any, option: str) -> None:
    """Refuse another draft's meta-schema, keywords that would be ignored, and references to
    what is no schema."""
    for node, where in _walk(schema, "$"):
        declared = node.get("$schema", _DRAFT)
        if declared not in (_DRAFT, _DRAFT + "#"):
            # Another draft or a custom meta-schema changes what keywords mean; only 2020-12
            # is read here, so anything else would be validated by rules it does not state.
            raise ConfigurationError(
                option, f"'$schema' {declared!r} is not draft 2020-12 at {where}.$schema"
            )
        for keyword in node:
            if keyword not in _VALUES and keyword not in _ONE | _LIST | _MAP:
                if isinstance(keyword, str) and keyword.startswith("x-"):
                    continue  # OpenAPI extensions: annotations by convention
                raise ConfigurationError(
                    option,
                    f"unknown keyword {keyword!r} at {where}.{keyword}: JSON Schema would"
                    " ignore it (a misspelt keyword validates nothing)",
                )
    _check_references(schema, option)


def _exact_patterns(schema: Any, where: str, option: str) -> Any:
    """A copy of ``schema`` whose ``pattern`` values and ``patternProperties`` names match
    exactly what ECMA-262 matches under jsonschema-rs (see :func:`exact_for_rust`)."""
    if not isinstance(schema, Mapping):
        return schema

    def exact(pattern: Any, at: str) -> Any:
        if not isinstance(pattern, str):
            return pattern  # the meta-schema check names it
        try:
            return exact_for_rust(pattern)
        except Untranslatable as exc:
            keyword = at.rsplit(".", 1)[-1] if at.endswith(".pattern") else "patternProperties"
            raise ConfigurationError(
                option, f"'{keyword}' cannot be enforced exactly: {exc} at {at}"
            ) from None

    copy = dict(schema)
    for keyword, value in schema.items():
        at = f"{where}.{keyword}"
        if keyword == "pattern":
            copy[keyword] = exact(value, at)
        elif keyword in _ONE:
            copy[keyword] = _exact_patterns(value, at, option)
        elif keyword in _LIST and isinstance(value, list):
            copy[keyword] = [_exact_patterns(v, f"{at}[{i}]", option) for i, v in enumerate(value)]
        elif keyword in _MAP and isinstance(value, Mapping):
            copy[keyword] = {
                (exact(name, at) if keyword == "patternProperties" else name): _exact_patterns(
                    sub, f"{at}.{name}", option
                )
                for name, sub in value.items()
            }
    return copy


def _locate(schema: Any, keyword: str, value: str | None) -> str:
    """Where ``keyword`` first appears in ``schema`` holding the end of ``value`` (or, without
    a value, anything but a same-document reference)."""
    for node, where in _walk(schema, "$"):
        found = node.get(keyword)
        if isinstance(found, str) and (
            value.endswith(found) if value is not None else not found.startswith("#")
        ):
            return f"{where}.{keyword}"
    return "$"


def _refusal(schema: Any, option: str, message: str) -> ConfigurationError:
    """The construction error of jsonschema-rs, located in the schema."""
    unknown = _UNKNOWN_FORMAT.match(message)
    if unknown:
        where = _locate(schema, "format", unknown.group(1))
        return ConfigurationError(
            option, f"format {unknown.group(1)!r} cannot be enforced at {where}"
        )
    remote = _REMOTE.match(message)
    if remote:
        # Fetching at start-up would make the rules depend on another server: refused.
        where = next(
            (
                at
                for keyword in ("$ref", "$dynamicRef")
                for value in (remote.group(1), None)
                if (at := _locate(schema, keyword, value)) != "$"
            ),
            "$",
        )
        return ConfigurationError(
            option, f"'$ref' needs a document outside the schema at {where}: {message}"
        )
    return ConfigurationError(option, f"not a valid JSON Schema: {message}")


def _no_retrieval(uri: str) -> Any:
    raise ValueError(f"{uri} is not part of the schema")


class SchemaValidator:
    """A draft 2020-12 validator for decoded JSON bodies, built once per route.

    Formats are asserted (RFC 3339 date-time, RFC 4122 uuid, ...), as the suite's optional
    format tests expect: a string the format does not describe is refused.
    """

    __slots__ = ("_validator",)

    def __init__(self, schema: Any, option: str) -> None:
        if not isinstance(schema, (Mapping, bool)):
            raise ConfigurationError(option, "a JSON Schema must be an object or a boolean")
        _check_keywords(schema, option)
        exact = _exact_patterns(schema, "$", option)
        try:
            self._validator = jsonschema_rs.Draft202012Validator(
                exact,
                validate_formats=True,
                ignore_unknown_formats=False,
                retriever=_no_retrieval,
                mask="***",
            )
        except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError) as exc:
            raise _refusal(schema, option, str(exc).splitlines()[0]) from None

    def errors(self, value: Any) -> list[dict[str, str]] | None:
        """None when ``value`` is valid, else ``[{loc, msg}]`` that never quote the input."""
        if self._validator.is_valid(value):
            return None
        found: list[dict[str, str]] = []
        for error in self._validator.iter_errors(value):
            found.extend(_entries(error))
            if len(found) >= MAX_ERRORS:
                return found[:MAX_ERRORS]
        # is_valid and iter_errors agree; a regex that gave up (backtracking limit) reports
        # through either one, and an undecided body is refused, never admitted.
        return found or [{"loc": "$", "msg": "The value could not be validated"}]


def _entries(error: jsonschema_rs.ValidationError) -> list[dict[str, str]]:
    loc = safe_loc(error.instance_path)
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        return [
            {"loc": safe_loc([*error.instance_path, name]), "msg": "Unknown member"}
            for name in kind.unexpected
        ]
    keyword = next((part for part in reversed(error.schema_path) if isinstance(part, str)), "")
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Type):
        return [{"loc": loc, "msg": f"Expected {' or '.join(kind.types)}"}]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        name = kind.property
        shown = safe_loc([*error.instance_path, name]) if isinstance(name, str) else loc
        return [{"loc": shown, "msg": "Required member missing"}]
    return [{"loc": loc, "msg": f"Fails the schema's '{keyword}'"}]


def safe_loc(path: Any) -> str:
    """A JSONPath-like location (``$.items[0].sku``); member names that are long, not
    printable or need quoting are shown as ``*``, so the input is never echoed."""
    parts = ["$"]
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif isinstance(part, str) and _NAME.match(part):
            parts.append(f".{part}")
        else:
            parts.append(".*")
    return "".join(parts)
