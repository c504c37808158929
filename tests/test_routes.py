"""The shared route table: syntax, precedence and agreement with a reference matcher."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_guard import ConfigurationError, RouteTable
from asgi_guard.routes import parse_pattern

TABLE = RouteTable(
    {
        "/items": "items-any",
        "POST /items": "items-post",
        "GET|HEAD /items/{id}": "item-get",
        "/items/special": "special",
        "/items/{id}/parts/{part}": "part",
        "/files/{rest:path}": "files",
        "/files/static/{rest:path}": "static-files",
        "/": "root",
    }
)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/items", "items-any"),
        ("POST", "/items", "items-post"),
        ("DELETE", "/items", "items-any"),
        ("GET", "/items/7", "item-get"),
        ("HEAD", "/items/7", "item-get"),
        ("DELETE", "/items/7", None),
        ("GET", "/items/special", "special"),
        ("POST", "/items/special", "special"),
        ("GET", "/items/7/parts/3", "part"),
        ("GET", "/items//parts/3", None),  # as /items/parts/3: slashes collapse, as in Litestar
        ("GET", "//items/7", "item-get"),
        ("GET", "///items///7///", "item-get"),
        ("GET", "/files//static//x.css", "static-files"),
        ("GET", "/files/", "files"),
        ("GET", "/files", "files"),  # an empty rest, its slash absent
        ("GET", "/files/a/b/c", "files"),
        ("GET", "/files/static/x.css", "static-files"),
        ("GET", "/", "root"),
        ("GET", "/items/", "items-any"),  # trailing slashes select no other route
        ("POST", "/items//", "items-post"),
        ("GET", "/items/7/", "item-get"),
        ("GET", "//", "root"),
        ("GET", "", None),
        ("GET", "items", None),
        ("GET", "/nothing", None),
    ],
)
def test_match(method: str, path: str, expected: str | None) -> None:
    """Each request finds the most specific pattern, or none."""
    assert TABLE.match(method, path) == expected


def test_method_specific_beats_any_method_for_same_path() -> None:
    """For one path pattern, an entry naming the method wins over an any-method entry."""
    table = RouteTable({"/a/{x}": 1, "PUT /a/{x}": 2})
    assert table.match("PUT", "/a/b") == 2
    assert table.match("GET", "/a/b") == 1


@pytest.mark.parametrize(
    ("patterns", "path", "expected"),
    [
        ({"GET /a": 1}, "/a", 1),
        ({"GET /a/{x}": 1}, "/a/b", 1),
        ({"GET /a/{rest:path}": 1}, "/a/b/c", 1),
        ({"GET /a": 1, "/a": 2}, "/a", 1),  # as for GET: the GET entry beats the any-method one
        ({"GET /a": 1, "HEAD /a": 2}, "/a", 2),
        ({"HEAD|POST /a": 2, "GET /a": 1}, "/a", 2),
        ({"POST /a": 1}, "/a", None),
        ({"GET /a": 1, "/{x}": 2}, "/a", 1),
        ({"GET /{x}": 1, "/a": 2}, "/a", 2),
    ],
)
def test_head_follows_get(patterns: dict[str, int], path: str, expected: int | None) -> None:
    """HEAD is GET without content (RFC 9110 section 9.3.2), and Starlette serves it with the
    GET handler: a GET policy holds for HEAD unless the path names HEAD itself."""
    table = RouteTable(patterns)
    assert table.match("HEAD", path) == expected
    assert table.match_scope({"method": "HEAD", "path": path}) == expected


def test_static_segment_beats_parameter_even_when_method_specific() -> None:
    """Path specificity is compared before the method."""
    table = RouteTable({"GET /a/{x}": 1, "/a/b": 2})
    assert table.match("GET", "/a/b") == 2


def test_falls_back_to_parameter_route_when_static_route_has_other_method() -> None:
    """A static path registered for POST only does not hide a parameter route for GET."""
    table = RouteTable({"POST /a/b": 1, "/a/{x}": 2})
    assert table.match("GET", "/a/b") == 2
    assert table.match("POST", "/a/b") == 1


@pytest.mark.parametrize(
    "pattern",
    [
        "items",
        "get /items",
        "GET|/items",
        "GET  ",
        "/files/{rest:path}/more",
        "/a/{1x}",
        "/a/{x}/{x}",
        "/a/{x:int}",
        "/a/b{x}",
        "/a/b?c",
        "/a\\b",
        "G3T /a",
    ],
)
def test_invalid_patterns_raise(pattern: str) -> None:
    """Malformed patterns are a ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError, match=r"^rules: "):
        RouteTable({pattern: 1}, option="rules")


def test_non_string_pattern_raises() -> None:
    """A pattern must be text."""
    with pytest.raises(ConfigurationError, match="must be a string"):
        RouteTable([(3, 1)])  # type: ignore[arg-type]


def test_duplicate_pattern_raises() -> None:
    """The same route twice (even with other parameter names) is an error."""
    with pytest.raises(ConfigurationError, match="given twice"):
        RouteTable([("GET /a/{x}", 1), ("GET /a/{y}", 2)])


def test_parse_pattern_dedupes_methods() -> None:
    """A repeated method in one pattern is kept once."""
    assert parse_pattern("GET|GET|HEAD /a") == (("GET", "HEAD"), ["a"])


def test_empty_table_is_falsy() -> None:
    """Layers skip matching entirely when no routes are configured."""
    assert not RouteTable({})
    assert RouteTable({"/a": 1})


# --- property test against a regex reference ------------------------------------------------

SEGMENTS = st.sampled_from(["a", "b", "c", "{p}", "{q}"])
METHODS = st.sampled_from(["*", "GET", "POST", "GET|POST", "HEAD", "HEAD|POST"])


def _kinds(pattern_path: str) -> tuple[int, ...]:
    out = []
    for seg in pattern_path[1:].split("/"):
        out.append(2 if seg.endswith(":path}") else 1 if seg.startswith("{") else 0)
    return tuple(out)


def _reference(patterns: list[tuple[str, str, int]], method: str, path: str) -> int | None:
    """Sort by (segment kinds, any-method last) and take the first regex match."""
    ordered = sorted(patterns, key=lambda p: (_kinds(p[1]), p[0] == "*"))
    # HEAD follows GET, unless the same path names HEAD itself.
    names_head = {path for methods, path, _ in patterns if "HEAD" in methods.split("|")}
    path = re.sub("/+", "/", path)  # repeated slashes select no other route
    if len(path) > 1:
        path = path.rstrip("/") or "/"  # trailing slashes select no other route
    for methods, pattern_path, value in ordered:
        listed = methods.split("|")
        if method == "HEAD" and pattern_path not in names_head and "GET" in listed:
            listed.append("HEAD")
        if methods != "*" and method not in listed:
            continue
        regex = ""
        for seg in pattern_path[1:].split("/"):
            if seg.endswith(":path}"):
                regex += "(?:/(.*))?"  # the rest may be empty, its slash too
            elif seg.startswith("{"):
                regex += "/[^/]+"
            else:
                regex += "/" + re.escape(seg)
        if re.fullmatch(regex, path):
            return value
    return None


@st.composite
def tables(draw: st.DrawFn) -> list[tuple[str, str, int]]:
    entries: dict[tuple[str, tuple[int, ...], str], tuple[str, str, int]] = {}
    for value in range(draw(st.integers(1, 8))):
        segs = draw(st.lists(SEGMENTS, min_size=1, max_size=3))
        names = iter("uvw")
        segs = [f"{{{next(names)}}}" if s.startswith("{") else s for s in segs]
        if draw(st.booleans()):
            segs.append("{rest:path}")
        path = "/" + "/".join(segs)
        methods = draw(METHODS)
        shape = re.sub(r"\{\w+\}", "{}", path)
        key = (methods, _kinds(path), shape)
        if any(s == shape and set(m.split("|")) & set(methods.split("|")) for m, _, s in entries):
            continue
        entries[key] = (methods, path, value)
    return list(entries.values())


@settings(max_examples=300, deadline=None)
@given(
    tables(),
    st.sampled_from(["GET", "HEAD", "POST", "PUT"]),
    st.lists(st.sampled_from(["a", "b", "c", "d", ""]), min_size=0, max_size=5),
)
def test_matches_reference(
    patterns: list[tuple[str, str, int]], method: str, parts: list[str]
) -> None:
    """The trie and the exact-path dict agree with a brute-force regex matcher."""
    table = RouteTable([(p if m == "*" else f"{m} {p}", v) for m, p, v in patterns])
    path = "/" + "/".join(parts)
    assert table.match(method, path) == _reference(patterns, method, path)
