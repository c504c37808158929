"""What a msgspec type lets through: how deep it nests, whether it skips input, floats."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

import msgspec

__all__ = ["has_float", "list_fields", "nesting", "non_finite", "skips_input"]

_LEAVES: Final = (
    msgspec.inspect.NoneType,
    msgspec.inspect.BoolType,
    msgspec.inspect.IntType,
    msgspec.inspect.FloatType,
    msgspec.inspect.StrType,
    msgspec.inspect.BytesType,
    msgspec.inspect.ByteArrayType,
    msgspec.inspect.MemoryViewType,
    msgspec.inspect.DateTimeType,
    msgspec.inspect.DateType,
    msgspec.inspect.TimeType,
    msgspec.inspect.TimeDeltaType,
    msgspec.inspect.UUIDType,
    msgspec.inspect.DecimalType,
    msgspec.inspect.LiteralType,
    msgspec.inspect.EnumType,
)
_ARRAYS: Final = (
    msgspec.inspect.ListType,
    msgspec.inspect.SetType,
    msgspec.inspect.FrozenSetType,
    msgspec.inspect.VarTupleType,
)


def nesting(info: msgspec.inspect.Type, visiting: set[int]) -> float:
    """How deep a JSON value decoded as ``info`` can nest; infinite when the decoder may
    descend into input it does not type (Any, skipped unknown fields, recursive types)."""
    if isinstance(info, _LEAVES):
        return 0
    if isinstance(info, msgspec.inspect.Metadata):
        return nesting(info.type, visiting)
    if isinstance(info, msgspec.inspect.UnionType):
        return max(nesting(t, visiting) for t in info.types)
    if isinstance(info, _ARRAYS):
        return 1 + nesting(info.item_type, visiting)
    if isinstance(info, msgspec.inspect.TupleType):
        return 1 + max((nesting(t, visiting) for t in info.item_types), default=0)
    if isinstance(info, msgspec.inspect.DictType):
        return 1 + nesting(info.value_type, visiting)
    if isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields:
        if id(info) in visiting:
            return float("inf")
        visiting.add(id(info))
        depth = 1 + max((nesting(f.type, visiting) for f in info.fields), default=0)
        visiting.discard(id(info))
        return depth
    return float("inf")  # Any, Raw, custom types, and types that skip unknown fields


def _reaches(
    info: msgspec.inspect.Type,
    test: Callable[[msgspec.inspect.Type], bool | None],
    visiting: set[int],
) -> bool:
    """Whether ``test`` is True for some type inside ``info`` (None: look at what it holds)."""
    found = test(info)
    if found is not None:
        return found
    inner: tuple[msgspec.inspect.Type, ...] = ()
    if isinstance(info, msgspec.inspect.Metadata):
        inner = (info.type,)
    elif isinstance(info, msgspec.inspect.UnionType):
        inner = info.types
    elif isinstance(info, _ARRAYS):
        inner = (info.item_type,)
    elif isinstance(info, msgspec.inspect.TupleType):
        inner = info.item_types
    elif isinstance(info, msgspec.inspect.DictType):
        inner = (info.key_type, info.value_type)
    elif isinstance(info, (msgspec.inspect.StructType, msgspec.inspect.TypedDictType)):
        if id(info) in visiting:
            return False
        visiting.add(id(info))
        inner = tuple(f.type for f in info.fields)
    return any(_reaches(t, test, visiting) for t in inner)


def has_float(info: msgspec.inspect.Type, visiting: set[int]) -> bool:
    """Whether a value of type ``info`` can hold a float anywhere (Any keeps the query's
    strings as they are)."""
    return _reaches(
        info, lambda t: True if isinstance(t, msgspec.inspect.FloatType) else None, visiting
    )


def non_finite(value: Any, loc: str) -> str | None:
    """Where a NaN or infinity is in a converted query, or None."""
    if type(value) is float:
        return None if math.isfinite(value) else loc
    if isinstance(value, msgspec.Struct):
        # Named as in the query (a compiled JSON Schema renames its fields).
        value = {
            wire: getattr(value, name)
            for name, wire in zip(
                value.__struct_fields__, value.__struct_encode_fields__, strict=True
            )
        }
    if isinstance(value, dict):
        items: Any = value.items()
        return next(
            (found for key, item in items if (found := non_finite(item, f"{loc}.{key}"))),
            None,
        )
    if isinstance(value, (list, tuple, set, frozenset)):
        return next(
            (found for i, item in enumerate(value) if (found := non_finite(item, f"{loc}[{i}]"))),
            None,
        )
    return None


def list_fields(kind: Any) -> frozenset[str]:
    """Query parameters that take several values: the fields of a Struct whose type is an
    array (list, set, frozenset, tuple), alone, annotated, or in a union (``set[str] | None``)."""
    info = msgspec.inspect.type_info(kind)
    if isinstance(info, msgspec.inspect.StructType):
        return frozenset(f.encode_name for f in info.fields if _is_array(f.type))
    return frozenset()


def _is_array(info: msgspec.inspect.Type) -> bool:
    """Whether a value of type ``info`` may be a JSON array: the same array types the nesting
    walk descends into, so the two never disagree on what a list is."""
    if isinstance(info, msgspec.inspect.Metadata):
        return _is_array(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_array(t) for t in info.types)
    return isinstance(info, (*_ARRAYS, msgspec.inspect.TupleType))


def _skipping(info: msgspec.inspect.Type) -> bool | None:
    if isinstance(info, msgspec.inspect.StructType):
        return None if info.forbid_unknown_fields else True
    if isinstance(info, (msgspec.inspect.TypedDictType, msgspec.inspect.DataclassType)):
        return True  # unknown members are skipped
    if isinstance(info, (msgspec.inspect.RawType, msgspec.inspect.CustomType)):
        return True
    return None  # Any is decoded whole (and strictly); leaves and containers: look inside


def skips_input(info: msgspec.inspect.Type, visiting: set[int]) -> bool:
    """Whether decoding as ``info`` can pass over part of the body unread: unknown members of
    a Struct, TypedDict or dataclass, or a ``Raw`` value. msgspec skips those without
    checking their UTF-8 or the range of their numbers, which the app's own parser then
    meets (see ValidationMiddleware: such routes decode the whole body once more)."""
    return _reaches(info, _skipping, visiting)
