"""Request validation with msgspec: bounded body reading, content negotiation, schemas.

``middleware`` is the layer; ``body`` and ``deadline`` read a body within its limits;
``query`` checks query strings; ``types`` walks msgspec's type tree (nesting, arrays, floats);
``schema``, ``json_schema`` and ``ecma`` compile JSON Schemas; ``problems`` holds the answers;
``openapi`` the components for a framework's OpenAPI document.
"""

from .middleware import ValidationMiddleware
from .openapi import openapi_components
from .schema import compile_schema

__all__ = ["ValidationMiddleware", "compile_schema", "openapi_components"]
