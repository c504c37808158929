"""Coverage-guided fuzzing (atheris) of the parsers that read attacker bytes.

Short run (CI, via ``nox -s security``)::

    python fuzz/fuzz_parsers.py -runs=20000 -max_len=512

Longer run, keeping a corpus between runs::

    mkdir -p fuzz/corpus && python fuzz/fuzz_parsers.py fuzz/corpus -max_total_time=3600

Each input picks one parser with its first byte. Any exception other than the documented
refusals, or a broken invariant, is a crash that atheris reports with the input that caused it.
"""

from __future__ import annotations

import sys

import atheris

# types-atheris declares instrument_imports in import_hook but omits the package re-export.
with atheris.instrument_imports():  # type: ignore[attr-defined]
    from asgi_guard._asgi import parse_host
    from asgi_guard.accesslog import REDACTED, _text, redact_query
    from asgi_guard.jwt.middleware import _bearer
    from asgi_guard.jwt.tokens import TokenError, parse
    from asgi_guard.proxy import _parse_forwarded, _parse_node
    from asgi_guard.routes import RouteTable

ROUTES = RouteTable(
    {"/items": 1, "GET /items/{id}": 2, "/files/{rest:path}": 3, "POST|PUT /a/{x}/b": 4}
)


def check_host(data: bytes) -> None:
    result = parse_host(data.decode("latin-1"))
    if result is not None:
        host, port = result
        assert host == host.lower()
        assert "/" not in host
        assert "@" not in host
        assert "\\" not in host
        assert port is None or 0 < port < 65536


def check_forwarded(data: bytes) -> None:
    elements = _parse_forwarded(data.decode("latin-1"))
    if elements is not None:
        for element in elements:
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in element.items())
            if "for" in element:
                _parse_node(element["for"])


def check_query(data: bytes) -> None:
    text = _text(data, 2048)
    redacted = redact_query(text)
    assert isinstance(redacted, str)
    assert "\n" not in redacted
    assert "\r" not in redacted
    for part in redacted.split("&"):
        name, _, value = part.partition("=")
        if name.lower() in ("token", "password", "access_token", "secret"):
            assert value == REDACTED


def check_bearer(data: bytes) -> None:
    result = _bearer([(b"authorization", data)])
    assert result is None or isinstance(result, bytes) or hasattr(result, "code")


def check_token(data: bytes) -> None:
    try:
        header, claims, signing_input, signature = parse(data)
    except TokenError:
        return
    assert isinstance(header, dict)
    assert isinstance(claims, dict)
    assert isinstance(signing_input, bytes)
    assert isinstance(signature, bytes)


def check_route(data: bytes) -> None:
    method, _, path = data.decode("latin-1").partition(" ")
    ROUTES.match(method, path)


TARGETS = [check_host, check_forwarded, check_query, check_bearer, check_token, check_route]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    TARGETS[data[0] % len(TARGETS)](data[1:])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
