"""JSON Schema ``pattern`` on query strings, matched in linear time.

msgspec runs ``Meta(pattern=...)`` through Python's backtracking ``re``: ``^(a+)+$`` against
a few dozen ``a`` and a ``!`` holds the event loop for seconds. A compiled schema therefore
carries its patterns as :class:`LinearPattern` (in ``Meta.extra``), checked after msgspec's
conversion by the engine JSON Schema bodies already use (jsonschema-rs: Rust's ``regex``, linear
in the input; a pattern with lookaround runs under its backtracking limit, and a match it gives
up on is a refusal, never an admission).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import jsonschema_rs
import msgspec

from .ecma import Untranslatable, exact_for_rust

__all__ = ["KEY", "Checker", "LinearPattern", "pattern_checker"]

#: The ``msgspec.Meta.extra`` key under which a compiled schema keeps its pattern.
KEY: Final = "asgi_guard.pattern"

#: Path (names and indexes) to the first string failing its pattern, or None.
Checker = Callable[[Any], "list[str | int] | None"]


class LinearPattern:
    """An ECMA-262 ``pattern`` matched as JSON Schema bodies match it (jsonschema-rs), with the
    exactness rewrites of :func:`~asgi_guard.validation.ecma.exact_for_rust`."""

    __slots__ = ("_valid", "pattern")

    def __init__(self, pattern: str) -> None:
        """Raises :class:`Untranslatable` when the engine cannot match ``pattern`` exactly."""
        self.pattern = pattern
        try:
            validator = jsonschema_rs.Draft202012Validator({"pattern": exact_for_rust(pattern)})
        except jsonschema_rs.ValidationError as exc:
            raise Untranslatable(str(exc).splitlines()[0]) from None
        self._valid = validator.is_valid

    def matches(self, value: str) -> bool:
        """Whether ``value`` matches (searched, not anchored, as JSON Schema reads it)."""
        try:
            return self._valid(value)
        except ValueError:  # a lone surrogate is no JSON string: no match
            return False

    def __repr__(self) -> str:
        return f"LinearPattern({self.pattern!r})"


def _node(info: msgspec.inspect.Type, memo: dict[int, Checker | None]) -> Checker | None:
    """The checker for values of ``info``; None when no pattern is reachable from it. Each
    checker looks only at values of its own Python type: msgspec unions hold at most one
    string-like, one array-like and one object-like member, so a value meets one member."""
    key = id(info)
    if key in memo:
        return memo[key]
    # A recursive type reaches itself again while being built: that use defers to the result.
    cell: list[Checker | None] = [None]
    memo[key] = lambda value: check(value) if (check := cell[0]) is not None else None
    cell[0] = memo[key] = _build(info, memo)
    return cell[0]


def _build(info: msgspec.inspect.Type, memo: dict[int, Checker | None]) -> Checker | None:
    if isinstance(info, msgspec.inspect.Metadata):
        inner = _node(info.type, memo)
        pattern = (info.extra or {}).get(KEY)
        if not isinstance(pattern, LinearPattern):
            return inner
        matches = pattern.matches
        return lambda value: [] if type(value) is str and not matches(value) else None
    if isinstance(info, msgspec.inspect.UnionType):
        members = [c for c in (_node(t, memo) for t in info.types) if c is not None]
        if not members:
            return None
        return lambda value: next((p for c in members if (p := c(value)) is not None), None)
    if isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.SetType)):
        item = _node(info.item_type, memo)
        if item is None:
            return None
        return lambda value: (
            next(([i, *p] for i, v in enumerate(value) if (p := item(v)) is not None), None)
            if isinstance(value, (list, set))
            else None
        )
    if isinstance(info, msgspec.inspect.DictType):
        member = _node(info.value_type, memo)
        if member is None:
            return None
        return lambda value: (
            next(([k, *p] for k, v in value.items() if (p := member(v)) is not None), None)
            if type(value) is dict
            else None
        )
    if isinstance(info, msgspec.inspect.StructType):
        fields = [
            (f.name, f.encode_name, c)
            for f in info.fields
            if (c := _node(f.type, memo)) is not None
        ]
        if not fields:
            return None
        cls = info.cls
        return lambda value: (
            next(
                (
                    [wire, *p]
                    for name, wire, check in fields
                    if (p := check(getattr(value, name))) is not None
                ),
                None,
            )
            if isinstance(value, cls)
            else None
        )
    return None


def pattern_checker(kind: Any) -> Checker | None:
    """A function returning the path to the first string of a converted ``kind`` value that
    fails its :class:`LinearPattern` (None when all match); None when ``kind`` has none."""
    return _node(msgspec.inspect.type_info(kind), {})
