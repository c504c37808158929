"""Config errors that teach: near-miss names, accepted values, and list values from the
environment. Reads the config's own types (``msgspec.inspect``), so it never drifts from them."""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

import msgspec

from .errors import ConfigurationError

__all__ = ["did_you_mean", "env_value", "struct_fields", "teach"]


def did_you_mean(name: str, known: Any, cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for a near miss among ``known``, else nothing."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def env_value(name: str, value: str, kind: msgspec.inspect.Type) -> Any:
    """A variable's value for an option of type ``kind``: JSON for lists and tables, or a
    comma-separated list (``10.0.0.0/8,127.0.0.1``) for an option that is only a list."""
    kinds = kind.types if isinstance(kind, msgspec.inspect.UnionType) else (kind,)
    containers = (msgspec.inspect.ListType, msgspec.inspect.DictType, msgspec.inspect.AnyType)
    if not any(isinstance(k, containers) for k in kinds):
        return value  # str, int, bool, enum: msgspec converts the string (strict=False)
    text = value.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigurationError(name, f"is not valid JSON: {exc}") from None
    if any(isinstance(k, msgspec.inspect.StrType) for k in kinds):
        return value  # a string is one of the accepted forms: take it as it is
    if any(isinstance(k, msgspec.inspect.ListType) for k in kinds):
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def _struct_info(cls: type) -> msgspec.inspect.StructType:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return info


def struct_fields(cls: type) -> dict[str, msgspec.inspect.Type]:
    """A Struct's field names and types."""
    return {f.name: f.type for f in _struct_info(cls).fields}


def _type_at(root: type, where: str) -> msgspec.inspect.Type | None:
    """The type at an error path such as ``routes[0]`` or ``rate_limit.strategy``."""
    kind: msgspec.inspect.Type = _struct_info(root)
    for part in [] if where == "config" else re.sub(r"\[\d+\]", "", where).split("."):
        kind = _unwrap(kind)
        if not isinstance(kind, msgspec.inspect.StructType):
            return None
        found = next((f.type for f in kind.fields if f.name == part), None)
        if found is None:
            return None
        kind = found
    return kind


def _unwrap(kind: msgspec.inspect.Type) -> msgspec.inspect.Type:
    """The struct or enum inside ``X | None`` and ``list[X]``."""
    if isinstance(kind, msgspec.inspect.UnionType):
        for member in kind.types:
            if isinstance(member, (msgspec.inspect.StructType, msgspec.inspect.LiteralType)):
                return member
    if isinstance(kind, msgspec.inspect.ListType):
        return _unwrap(kind.item_type)
    return kind


def teach(root: type, where: str, message: str) -> str:
    """A msgspec error message about ``root`` at ``where``, with what would have been accepted."""
    unknown = re.fullmatch(r"Object contains unknown field `(.+)`", message)
    raw = _type_at(root, where)
    kind = None if raw is None else _unwrap(raw)
    if unknown and isinstance(kind, msgspec.inspect.StructType):
        return message + did_you_mean(unknown[1], (f.name for f in kind.fields))
    if message.startswith("Invalid enum value") and isinstance(kind, msgspec.inspect.LiteralType):
        accepted = [repr(v) for v in kind.values]
        if isinstance(raw, msgspec.inspect.UnionType) and any(
            isinstance(k, msgspec.inspect.BoolType) for k in raw.types
        ):
            accepted += ["true", "false"]
        return f"{message}; accepted: {', '.join(accepted)}"
    return message
