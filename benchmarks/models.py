"""The request body types the benchmarks validate against."""

from typing import Annotated

import msgspec


class Item(msgspec.Struct, forbid_unknown_fields=True):
    sku: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}-[0-9]+$")]
    qty: Annotated[int, msgspec.Meta(ge=1, le=100)]


class Order(msgspec.Struct, forbid_unknown_fields=True):
    customer: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    items: Annotated[list[Item], msgspec.Meta(min_length=1)]
    note: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class PlainItem(msgspec.Struct, forbid_unknown_fields=True):
    """Item without the ``pattern``: msgspec's regex checks are most of the decode's cost."""

    sku: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    qty: Annotated[int, msgspec.Meta(ge=1, le=100)]


class PlainOrder(msgspec.Struct, forbid_unknown_fields=True):
    """Order with :class:`PlainItem`: the same body, checked without regular expressions."""

    customer: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    items: Annotated[list[PlainItem], msgspec.Meta(min_length=1)]
    note: Annotated[str, msgspec.Meta(max_length=200)] | None = None
