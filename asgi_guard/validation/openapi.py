"""OpenAPI components for the types a validation layer checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["openapi_components"]


def openapi_components(schemas: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAPI ``components.schemas`` for the msgspec types of ``schemas`` (route -> type).

    JSON Schema dicts are returned as they are, named after their route. Merge the result into
    a FastAPI or Litestar app's OpenAPI document.
    """
    types = {pattern: value for pattern, value in schemas.items() if not isinstance(value, Mapping)}
    _, components = msgspec.json.schema_components(
        list(types.values()), ref_template="#/components/schemas/{name}"
    )
    for pattern, value in schemas.items():
        if isinstance(value, Mapping):
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", pattern).strip("_") or "root"
            components[name] = dict(value)
    return components
