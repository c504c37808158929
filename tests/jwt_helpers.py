"""Keys, token minting (honest and forged) and a real JWKS HTTP server for the JWT tests."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, OKPKey, RSAKey

NOW = 1_800_000_000.0
ISSUER = "https://issuer.example"
AUDIENCE = "orders-api"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


class Keys:
    """One key of each family, with kids."""

    def __init__(self) -> None:
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
        self.ed = OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"})
        self.attacker = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
        self.secret = "s" * 40
        self.hmac = OctKey.import_key(self.secret.encode())

    def jwks(self, *names: str) -> dict[str, Any]:
        keys = [getattr(self, name) for name in (names or ("rsa", "ec", "ed"))]
        return KeySet(keys).as_dict(private=False)  # type: ignore[return-value]


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 600,
        "scope": "orders:read orders:write",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def mint(
    key: Any, alg: str = "RS256", header: dict[str, Any] | None = None, **claim_overrides: Any
) -> str:
    """A correctly signed token."""
    hdr = {"alg": alg, "typ": "JWT"}
    if getattr(key, "kid", None):
        hdr["kid"] = key.kid
    hdr.update(header or {})
    registry = None
    if alg == "EdDSA":
        import warnings

        from joserfc.errors import SecurityWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            return jwt.encode(hdr, claims(**claim_overrides), key, algorithms=[alg])
    return jwt.encode(hdr, claims(**claim_overrides), key, algorithms=[alg], registry=registry)


def forge_hmac(secret: bytes, header: dict[str, Any], payload: dict[str, Any] | str) -> str:
    """An HS256 token signed with arbitrary bytes (e.g. an RSA public key)."""
    body = payload if isinstance(payload, str) else b64json(payload)
    signing_input = f"{b64json(header)}.{body}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def unsigned(header: dict[str, Any], payload: dict[str, Any] | str, signature: bytes = b"") -> str:
    body = payload if isinstance(payload, str) else b64json(payload)
    return f"{b64json(header)}.{body}.{b64(signature)}"


class JWKSServer:
    """A real HTTP server on 127.0.0.1 serving a JWKS and an OIDC discovery document.

    Hostile modes: ``trickle`` sends the whole answer (status line included) one byte every
    ``trickle`` seconds; ``hang`` accepts and never answers; ``content_encoding`` labels the
    body (``"gzip"`` with no ``body`` compresses the JWKS; a given ``body`` is sent as it is).
    """

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.status = 200
        self.cache_control: str | None = "max-age=600"
        self.delay = 0.0
        self.body: bytes | None = None
        self.redirect_to: str | None = None
        self.content_encoding: str | None = None
        self.trickle = 0.0
        self.jwks_uri: str | None = None
        self.hang = False
        self.hits: dict[str, int] = {}
        self.closed = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if server.delay:
                    time.sleep(server.delay)
                if server.hang:
                    server.closed.wait()
                    return
                if self.path == "/.well-known/openid-configuration":
                    body = json.dumps(
                        {"issuer": server.url, "jwks_uri": server.jwks_uri or server.url + "/jwks"}
                    ).encode()
                elif server.redirect_to is not None:
                    self.send_response(302)
                    self.send_header("location", server.redirect_to)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                elif server.body is not None:
                    body = server.body
                else:
                    body = json.dumps(server.jwks).encode()
                    if server.content_encoding == "gzip":
                        body = gzip.compress(body)
                head = [f"HTTP/1.1 {server.status} X", "content-type: application/json"]
                if server.cache_control:
                    head.append(f"cache-control: {server.cache_control}")
                if server.content_encoding:
                    head.append(f"content-encoding: {server.content_encoding}")
                head.append(f"content-length: {len(body)}")
                answer = ("\r\n".join(head) + "\r\n\r\n").encode() + body
                self.close_connection = True
                if not server.trickle:
                    self.wfile.write(answer)
                    return
                try:
                    for i in range(len(answer)):
                        if server.closed.wait(server.trickle):
                            return
                        self.wfile.write(answer[i : i + 1])
                except OSError:
                    return  # the client gave up: what a trickling server is for

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def jwks_hits(self) -> int:
        return self.hits.get("/jwks", 0)

    def close(self) -> None:
        self.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()
