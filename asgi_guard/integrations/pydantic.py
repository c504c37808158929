"""Pydantic models as route schemas: validated once, by pydantic, with the guard's answers.

:class:`~asgi_guard.ValidationMiddleware` takes a pydantic model (a ``BaseModel`` subclass,
or ``"module:Model"`` in a config) wherever it takes a msgspec type. The guard still does what
it does for every schema (size limit, media type, nesting depth, strict JSON); the decoded
body is then validated by the model as FastAPI validates a body parameter (pydantic's Python
mode over the parsed JSON), and the instance is what the app gets in
``scope["state"]["validated_body"]``. A model error is the guard's 422
``validation.invalid_body`` with ``errors: [{loc, msg}]``.

pydantic is not imported here: a model is recognised only when pydantic is already loaded,
which it is whenever a model exists.
"""

from __future__ import annotations

import sys
from typing import Any, Final, cast

import msgspec

__all__ = ["PydanticDecoder", "decoder_for"]

#: Decodes a whole body to plain JSON values, as strictly as msgspec reads JSON (no NaN, no
#: trailing data, UTF-8 only): the same refusals as every other schema.
_JSON: Final = msgspec.json.Decoder()


def _is_model(value: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    return (
        pydantic is not None
        and isinstance(value, type)
        and issubclass(value, pydantic.BaseModel)
        and value is not pydantic.BaseModel
    )


def _location(loc: tuple[int | str, ...]) -> str:
    """pydantic's ``loc`` tuple as the guard's JSON path, ``$.items[0].name``."""
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


class PydanticDecoder:
    """A body decoder with msgspec's interface (``decode(bytes)``) over a pydantic model.

    Raises ``msgspec.DecodeError`` for malformed JSON and ``msgspec.ValidationError``, worded
    as msgspec words it (the message, then the JSON path), for the first error of the model.
    """

    __slots__ = ("_error", "_validate", "model")

    def __init__(self, model: Any) -> None:
        import pydantic

        self.model = model
        self._validate = model.model_validate
        self._error = pydantic.ValidationError

    def decode(self, body: bytes) -> Any:
        """The model instance for ``body``."""
        data = _JSON.decode(body)
        try:
            return self._validate(data)
        except self._error as exc:
            first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
            raise msgspec.ValidationError(
                f"{first['msg']} - at `{_location(first['loc'])}`"
            ) from None


def decoder_for(value: Any) -> msgspec.json.Decoder[Any] | None:
    """A decoder when ``value`` is a pydantic model, else None (msgspec types, JSON Schema).

    Typed as msgspec's decoder, whose one method (``decode``) it has.
    """
    if not _is_model(value):
        return None
    return cast("msgspec.json.Decoder[Any]", PydanticDecoder(value))
