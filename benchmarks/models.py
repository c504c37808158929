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
