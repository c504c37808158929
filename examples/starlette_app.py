"""A Starlette app guarded by the whole stack from one config dict.

Run: ``uvicorn examples.starlette_app:app`` (with ``ASGI_GUARD_JWT__SECRET`` set to 32+ bytes).
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_guard import guard


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def me(request: Request) -> JSONResponse:
    # request.user / request.auth come from JWTAuthMiddleware, unchanged Starlette API.
    return JSONResponse({"sub": request.user.display_name, "scopes": sorted(request.user.scopes)})


async def create_note(request: Request) -> JSONResponse:
    note = request.scope["state"]["validated_body"]  # already decoded and validated
    return JSONResponse({"created": note}, status_code=201)


CONFIG = {
    "proxy": {"trusted": ["127.0.0.1"]},
    "access_log": {},
    "https": {},
    "rate_limit": {"limit": "100/minute"},
    "jwt": {"issuer": "https://issuer.example", "audience": "notes-api"},
    "validation": {},
    "routes": [
        {"path": "GET /health", "public": True, "redirect_exempt": True},
        {"path": "GET /me", "scopes": []},
        {
            "path": "POST /notes",
            "scopes": ["notes:write"],
            "limit": "10/minute",
            "schema": {
                "type": "object",
                "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 280}},
                "required": ["text"],
                "additionalProperties": False,
            },
        },
    ],
}

starlette_app = Starlette(
    routes=[
        Route("/health", health),
        Route("/me", me),
        Route("/notes", create_note, methods=["POST"]),
    ]
)
# The HMAC secret comes from the environment (ASGI_GUARD_JWT__SECRET), never from a file; the
# development value below is used only when the variable is not set.
environ = {"ASGI_GUARD_JWT__SECRET": "development-only-secret-32-bytes!!", **os.environ}
app = guard(starlette_app, CONFIG, environ=environ)
