"""The local mode (``dev = true``, ``asgi-guard serve --dev``): a config a laptop can serve.

On a laptop the client, the "proxy" (``curl -H 'X-Forwarded-Proto: https'``) and the server all
sit on loopback, the server speaks plain HTTP on a port of its own, and a browser keeps any HSTS
policy it is sent for ``localhost``. The local mode changes exactly those three things and
nothing else: every layer still runs, so what works locally is what production enforces.
"""

from __future__ import annotations

from typing import Final

import msgspec

from .config import GuardConfig, ProxyConfig

__all__ = ["LOOPBACK", "local_mode"]

#: Loopback addresses, and the names a local redirect may point to.
LOOPBACK: Final = ("127.0.0.1", "::1")
_LOCAL_HOSTS: Final = ("localhost", "127.0.0.1")


def local_mode(cfg: GuardConfig) -> GuardConfig:
    """``cfg`` for a local server: loopback is a trusted proxy, HSTS is off, redirects may point
    to ``localhost`` or ``127.0.0.1`` and keep the port the client used (or go to
    ``https.https_port`` when one is set)."""
    proxy = cfg.proxy or ProxyConfig()
    trusted = [*proxy.trusted, *(a for a in LOOPBACK if a not in proxy.trusted)]
    changes: dict[str, object] = {"proxy": msgspec.structs.replace(proxy, trusted=trusted)}
    if cfg.https is not None:
        allowed = cfg.https.allowed_hosts
        if allowed is not None:
            allowed = [*allowed, *(h for h in _LOCAL_HOSTS if h not in allowed)]
        changes["https"] = msgspec.structs.replace(
            cfg.https,
            # max-age=0 also makes a browser forget a policy it kept for this host
            # (RFC 6797 section 6.1.1), so a later production-like run cannot lock it out.
            hsts_max_age=0,
            hsts_include_subdomains=False,
            hsts_preload=False,
            host=None,
            allowed_hosts=allowed,
            # The client's port, unless an HTTPS port of its own is configured.
            keep_port=cfg.https.https_port == 443,
        )
    return msgspec.structs.replace(cfg, **changes)
