"""What to attack: every operation of an OpenAPI document, with a valid example request.

A scanner needs one request that the app accepts to start from; its payloads then replace one
value at a time. The examples come from the document itself (``example``, ``default``, ``enum``,
bounds), so the same code drives the scans of any app that publishes its document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

__all__ = ["Operation", "example", "operations"]

_METHODS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class Operation:
    """One operation of the document with example values for each of its parameters."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    path_params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    #: Parameters no scanner here can reach (headers, cookies, non-JSON bodies), named.
    skipped: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``"GET /orders/{id}"``."""
        return f"{self.method} {self.path}"

    @property
    def parameters(self) -> tuple[str, ...]:
        """Every injectable parameter, in the order a scan tests them: path, query, body."""
        return (*self.path_params, *self.query, *(self.body or {}))

    def url(self, base: str, marker: str = "") -> str:
        """The example URL; ``marker`` follows each path value (sqlmap's ``*`` injection mark)."""
        path = self.path
        for name, value in self.path_params.items():
            path = path.replace("{" + name + "}", value + marker)
        query = urlencode(self.query)
        return base.rstrip("/") + path + (f"?{query}" if query else "")


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 32:  # a reference cycle must not hang the runner
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
        seen += 1
    return schema


def example(schema: dict[str, Any], document: dict[str, Any]) -> Any:
    """A value valid for ``schema``: the first of its example, default, enum, or one in bounds."""
    schema = _resolve(schema, document)
    if "example" in schema:
        return schema["example"]
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("default") is not None:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        branches = [_resolve(b, document) for b in schema.get(key, [])]
        usable = [b for b in branches if b.get("type") != "null"]
        if usable:
            return example(usable[0], document)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind in ("integer", "number"):
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return True
    if kind == "array":
        return [example(schema.get("items", {}), document)]
    if kind == "object" or "properties" in schema:
        return {name: example(sub, document) for name, sub in schema["properties"].items()}
    if kind == "null":
        return None
    return "a" * max(schema.get("minLength", 1), 1)


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _operation(method: str, path: str, item: dict[str, Any], document: dict[str, Any]) -> Operation:
    spec = item[method]
    query: dict[str, str] = {}
    path_params: dict[str, str] = {}
    skipped: list[str] = []
    for parameter in [*item.get("parameters", []), *spec.get("parameters", [])]:
        parameter = _resolve(parameter, document)
        value = _text(example(parameter.get("schema", {}), document))
        where = parameter.get("in")
        if where == "query":
            query[parameter["name"]] = value
        elif where == "path":
            path_params[parameter["name"]] = value
        else:
            skipped.append(f"{where} {parameter['name']}")
    body = None
    content = _resolve(spec.get("requestBody", {}), document).get("content", {})
    if "application/json" in content:
        value = example(content["application/json"].get("schema", {}), document)
        if isinstance(value, dict):
            body = value
        else:
            skipped.append("body (not a JSON object)")
    elif content:
        skipped.append(f"body ({', '.join(content)})")
    return Operation(method.upper(), path, query, path_params, body, tuple(skipped))


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation of ``document``, in document order."""
    return [
        _operation(method, path, item, document)
        for path, item in document.get("paths", {}).items()
        for method in _METHODS
        if method in item
    ]
