"""Compile JSON Schema (the subset msgspec can honour exactly) into msgspec types.

A keyword that cannot be enforced exactly is a :class:`ConfigurationError` naming the keyword
and where it is: silently dropping ``pattern`` or ``maximum`` would let invalid input through.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Annotated, Any, Final, Literal, Union

import msgspec

from ..errors import ConfigurationError
from .ecma import Untranslatable, translate
from .patterns import KEY, LinearPattern

__all__ = ["compile_schema"]

#: Keywords that only annotate; they never change what validates.
_ANNOTATIONS: Final = frozenset(
    {
        "title",
        "description",
        "$schema",
        "$id",
        "$comment",
        "examples",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
#: Formats msgspec checks exactly by their grammars. ``date-time`` and ``time`` are not here:
#: msgspec also reads a space for ``T`` and ``+0000`` offsets, outside RFC 3339 section 5.6.
_FORMATS: Final[dict[str, Any]] = {
    "date": datetime.date,
    # RFC 4122 section 3 (hyphens required); msgspec's UUID also reads the 32-hex form.
    "uuid": Annotated[
        str, msgspec.Meta(pattern="^[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\\Z")
    ],
}
#: Characters msgspec cannot have in a field name: they would need escaping in its messages.
_BAD_NAME: Final = re.compile(r'["\\\x00-\x1f\x7f]')
_NUMERIC: Final = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
)
#: The keywords each type can enforce exactly.
_PER_TYPE: Final[dict[str, frozenset[str]]] = {
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "integer": _NUMERIC,
    "number": _NUMERIC,
    "array": frozenset({"items", "minItems", "maxItems"}),
    "object": frozenset(
        {"properties", "required", "additionalProperties", "minProperties", "maxProperties"}
    ),
    "boolean": frozenset(),
    "null": frozenset(),
}
_SIMPLE: Final[dict[str, Any]] = {
    "boolean": bool,
    "null": None,
    "integer": int,
    "number": float,
    "string": str,
}


def _is_type(value: Any, kind: Any) -> bool:
    """Whether a JSON value is of a JSON Schema type (booleans are not numbers)."""
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    return False


def _json_types(schema: Any) -> set[str] | None:
    """The JSON types a schema admits at most, when its ``type`` says so (else None)."""
    kind = schema.get("type") if isinstance(schema, Mapping) else None
    kinds = set(kind) if isinstance(kind, list) else {kind} if isinstance(kind, str) else None
    if kinds is None or not all(isinstance(k, str) for k in kinds):
        return None
    if kinds & {"integer", "number"}:
        kinds |= {"integer", "number"}  # every integer is a number
    return kinds


class _Compiler:
    def __init__(self, root: Mapping[str, Any], option: str) -> None:
        self.root = root
        self.option = option
        self.defs: dict[str, Any] = {}
        self.resolving: set[str] = set()
        self.structs = 0

    def error(self, where: str, message: str) -> ConfigurationError:
        return ConfigurationError(self.option, f"{message} at {where}")

    def compile(self, schema: Any, where: str) -> Any:
        if schema is True or schema == {}:
            return Any
        if schema is False:
            raise self.error(where, "the schema 'false' (nothing valid) cannot be enforced")
        if not isinstance(schema, Mapping):
            raise self.error(where, f"a schema must be an object, not {schema!r}")
        if where != "$" and ("$id" in schema or "$schema" in schema):
            # A new base URI changes what "#/$defs/..." inside it points to.
            keyword = "$id" if "$id" in schema else "$schema"
            raise self.error(f"{where}.{keyword}", f"'{keyword}' in a subschema is not supported")
        keys = set(schema) - _ANNOTATIONS - {"$defs", "definitions"}
        if "$ref" in keys:
            if keys != {"$ref"}:
                raise self.error(where, "'$ref' beside other keywords is not supported")
            return self.ref(schema["$ref"], where)
        for combinator in ("anyOf", "oneOf"):
            if combinator in keys:
                if keys != {combinator}:
                    raise self.error(
                        where, f"'{combinator}' beside other keywords is not supported"
                    )
                if not isinstance(schema[combinator], list) or not schema[combinator]:
                    raise self.error(where, f"'{combinator}' must be a non-empty list")
                if combinator == "oneOf":
                    self.disjoint(schema["oneOf"], f"{where}.oneOf")
                members = [
                    self.compile(s, f"{where}.{combinator}[{i}]")
                    for i, s in enumerate(schema[combinator])
                ]
                return self.union(members, f"{where}.{combinator}")
        if "allOf" in keys:
            parts = schema["allOf"]
            if keys != {"allOf"} or not isinstance(parts, list) or len(parts) != 1:
                raise self.error(where, "'allOf' is only supported with a single member")
            return self.compile(parts[0], f"{where}.allOf[0]")
        if "const" in keys or "enum" in keys:
            keyword = "const" if "const" in keys else "enum"
            if keys - {keyword, "type"}:
                raise self.error(where, f"'{keyword}' beside other keywords is not supported")
            values = [schema["const"]] if keyword == "const" else schema["enum"]
            if not isinstance(values, list) or not values:
                raise self.error(where, "'enum' must be a non-empty list")
            if "type" in schema:
                # Keep only the values the type admits, as a validator checking both would.
                types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
                values = [v for v in values if any(_is_type(v, t) for t in types)]
                if not values:
                    raise self.error(where, f"no '{keyword}' value has the declared type")
            return self.literal(values, f"{where}.{keyword}")
        kind = schema.get("type")
        if kind is None:
            if keys:
                raise self.error(where, f"keywords {sorted(keys)} need a 'type'")
            return Any
        if isinstance(kind, list):
            if len(set(kind)) != len(kind) or not kind:
                raise self.error(where, "'type' list must be non-empty and without repeats")
            others = {k: v for k, v in schema.items() if k != "type"}
            known = set().union(*(_PER_TYPE.get(t, set()) for t in kind if isinstance(t, str)))
            self.no_more(set(others) - _ANNOTATIONS - {"$defs", "definitions"}, known, where)
            members = [self.compile({**self.applicable(others, t), "type": t}, where) for t in kind]
            return self.union(members, f"{where}.type")
        return self.single(kind, schema, keys - {"type"}, where)

    @staticmethod
    def applicable(keywords: dict[str, Any], kind: str) -> dict[str, Any]:
        return {
            k: v
            for k, v in keywords.items()
            if k in _PER_TYPE.get(kind, set()) or k in _ANNOTATIONS
        }

    def single(self, kind: Any, schema: Mapping[str, Any], keys: set[str], where: str) -> Any:
        if kind in ("boolean", "null"):
            self.no_more(keys, set(), where)
            return _SIMPLE[kind]
        if kind in ("integer", "number"):
            self.no_more(keys, _NUMERIC, where)
            meta: dict[str, Any] = {}
            for keyword, name in (
                ("minimum", "ge"),
                ("maximum", "le"),
                ("exclusiveMinimum", "gt"),
                ("exclusiveMaximum", "lt"),
                ("multipleOf", "multiple_of"),
            ):
                if keyword in schema:
                    value = schema[keyword]
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        raise self.error(f"{where}.{keyword}", f"'{keyword}' must be a number")
                    if kind == "integer" and not float(value).is_integer():
                        raise self.error(
                            f"{where}.{keyword}", f"'{keyword}' of an integer must be whole"
                        )
                    meta[name] = int(value) if kind == "integer" else value
            base = int if kind == "integer" else float
            return Annotated[base, msgspec.Meta(**meta)] if meta else base
        if kind == "string":
            self.no_more(keys, {"minLength", "maxLength", "pattern", "format"}, where)
            meta = {}
            if "minLength" in schema:
                meta["min_length"] = self.count(schema, "minLength", where)
            if "maxLength" in schema:
                meta["max_length"] = self.count(schema, "maxLength", where)
            if "pattern" in schema:
                pattern = schema["pattern"]
                if not isinstance(pattern, str):
                    raise self.error(f"{where}.pattern", "'pattern' must be a string")
                try:
                    translate(pattern)  # refuses what no engine here reads as ECMA-262 does
                    # Not Meta(pattern=): msgspec would run Python's backtracking re, and
                    # "^(a+)+$" on "a" * 30 + "!" takes minutes. patterns.py checks it.
                    meta["extra"] = {KEY: LinearPattern(pattern)}
                    meta["extra_json_schema"] = {"pattern": pattern}
                except Untranslatable as exc:
                    raise self.error(
                        f"{where}.pattern", f"'pattern' cannot be enforced exactly: {exc}"
                    ) from None
            if "format" in schema:
                fmt = schema["format"]
                if fmt not in _FORMATS:
                    raise self.error(f"{where}.format", f"format {fmt!r} cannot be enforced")
                if meta:
                    raise self.error(
                        where, "'format' beside length or pattern keywords is not supported"
                    )
                return _FORMATS[fmt]
            return Annotated[str, msgspec.Meta(**meta)] if meta else str
        if kind == "array":
            self.no_more(keys, {"items", "minItems", "maxItems"}, where)
            items = schema.get("items", True)
            if isinstance(items, list):
                raise self.error(f"{where}.items", "tuple-form 'items' is not supported")
            inner = self.compile(items, f"{where}.items")
            meta = {}
            if "minItems" in schema:
                meta["min_length"] = self.count(schema, "minItems", where)
            if "maxItems" in schema:
                meta["max_length"] = self.count(schema, "maxItems", where)
            return Annotated[list[inner], msgspec.Meta(**meta)] if meta else list[inner]  # type: ignore[valid-type]
        if kind == "object":
            return self.object(schema, keys, where)
        raise self.error(f"{where}.type", f"unknown type {kind!r}")

    def object(self, schema: Mapping[str, Any], keys: set[str], where: str) -> Any:
        self.no_more(
            keys,
            {"properties", "required", "additionalProperties", "minProperties", "maxProperties"},
            where,
        )
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        extra = schema.get("additionalProperties", True)
        if not isinstance(properties, Mapping) or not isinstance(required, list):
            raise self.error(where, "'properties' must be an object and 'required' a list")
        if not properties and not required:
            meta: dict[str, Any] = {}
            if "minProperties" in schema:
                meta["min_length"] = self.count(schema, "minProperties", where)
            if "maxProperties" in schema:
                meta["max_length"] = self.count(schema, "maxProperties", where)
            if extra is False:
                meta["max_length"] = 0  # no properties and none allowed: only {}
                value: Any = Any
            else:
                value = self.compile(extra, f"{where}.additionalProperties")
            kind = dict[str, value]
            return Annotated[kind, msgspec.Meta(**meta)] if meta else kind
        if extra not in (True, False):
            raise self.error(
                f"{where}.additionalProperties",
                "a schema for additional properties is not supported",
            )
        if "minProperties" in schema or "maxProperties" in schema:
            raise self.error(
                where, "'minProperties'/'maxProperties' with 'properties' is not supported"
            )
        fields: list[tuple[str, Any, Any]] = []
        names = list(properties) + [name for name in required if name not in properties]
        for index, name in enumerate(names):
            if not isinstance(name, str) or _BAD_NAME.search(name):
                raise self.error(
                    f"{where}.properties",
                    "'properties' names holding quotes, backslashes or control characters"
                    " are not supported",
                )
            field_type = self.compile(properties.get(name, True), f"{where}.properties.{name}")
            if name in required:
                fields.append((f"f{index}", field_type, msgspec.field(name=name)))
            else:
                fields.append(
                    (
                        f"f{index}",
                        Union[field_type, msgspec.UnsetType],  # noqa: UP007
                        msgspec.field(default=msgspec.UNSET, name=name),
                    )
                )
        self.structs += 1
        return msgspec.defstruct(
            f"Schema{self.structs}", fields, kw_only=True, forbid_unknown_fields=extra is False
        )

    def ref(self, ref: Any, where: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith(("#/$defs/", "#/definitions/")):
            raise self.error(
                where, f"only local '#/$defs/...' references are supported, not {ref!r}"
            )
        if ref in self.defs:
            return self.defs[ref]
        if ref in self.resolving:
            raise self.error(where, f"recursive reference {ref!r} is not supported")
        section, name = ref[2:].split("/", 1)
        target = (
            self.root.get(section, {}).get(name)
            if isinstance(self.root.get(section), Mapping)
            else None
        )
        if target is None:
            raise self.error(where, f"unresolvable reference {ref!r}")
        self.resolving.add(ref)
        self.defs[ref] = self.compile(target, f"$.{section}.{name}")
        self.resolving.discard(ref)
        return self.defs[ref]

    def literal(self, values: list[Any], where: str) -> Any:
        for value in values:
            if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int))):
                raise self.error(
                    where,
                    f"'{where.rsplit('.', 1)[-1]}' value {value!r} cannot be enforced"
                    " (only strings, integers, null)",
                )
        return Literal[tuple(values)]

    def disjoint(self, members: list[Any], where: str) -> None:
        """Refuse a ``oneOf`` whose members could both match one value: msgspec's unions
        take the first that does, which is ``anyOf``. Members that each admit only their
        declared JSON types, all different, can never overlap."""
        seen: set[str] = set()
        for index, member in enumerate(members):
            kinds = _json_types(member)
            if kinds is None or kinds & seen:
                raise self.error(
                    f"{where}[{index}]",
                    "'oneOf' members that can match the same value cannot be enforced",
                )
            seen |= kinds

    def union(self, members: list[Any], where: str) -> Any:
        if len(members) == 1:
            return members[0]
        union: Any = Union[tuple(members)]  # noqa: UP007
        try:
            msgspec.json.Decoder(union)
        except TypeError as exc:
            raise self.error(where, f"this union cannot be enforced exactly ({exc})") from None
        return union

    def no_more(self, keys: AbstractSet[str], allowed: AbstractSet[str], where: str) -> None:
        unknown = keys - allowed
        if unknown:
            keyword = sorted(unknown)[0]
            raise self.error(f"{where}.{keyword}", f"keyword '{keyword}' cannot be enforced")

    def count(self, schema: Mapping[str, Any], keyword: str, where: str) -> int:
        value = schema[keyword]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(f"{where}.{keyword}", f"'{keyword}' must be a whole number >= 0")
        return value


def compile_schema(schema: Mapping[str, Any], option: str = "schemas") -> Any:
    """A msgspec type that accepts exactly the JSON values ``schema`` accepts, once the
    ``pattern`` keywords it carries are checked by
    :func:`~asgi_guard.validation.patterns.pattern_checker` (msgspec alone would run them on
    Python's backtracking ``re``; :class:`ValidationMiddleware` does both).

    Raises :class:`ConfigurationError` (naming ``option``, the keyword and its location) for
    anything it cannot enforce exactly.
    """
    compiler = _Compiler(schema, option)
    compiled = compiler.compile(schema, "$")
    try:
        msgspec.json.Decoder(compiled)
    except TypeError as exc:  # pragma: no cover - unions are checked where they are built
        raise ConfigurationError(option, f"schema cannot be enforced: {exc}") from None
    return compiled
