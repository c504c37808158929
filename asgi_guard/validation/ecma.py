"""ECMA-262 regular expressions (JSON Schema's ``pattern`` dialect) as exact Python ``re``.

Only what maps exactly is translated; anything else is refused, so a pattern never means
something else than the schema says. In ECMA-262 (with the ``u`` flag, as JSON Schema
validators read it):

- ``$`` matches only at the end of the input; Python's ``$`` also matches before a final
  newline (``"admin\\n"`` would pass ``^[a-z0-9]+$``): it becomes ``\\Z``.
- ``\\d``, ``\\w`` and ``\\s`` are ASCII digits, ASCII word characters and ECMA's WhiteSpace
  and LineTerminator list; Python's match any Unicode digit (``"৪২"``), letter, space.
- ``.`` excludes every line terminator (``\\n \\r \\u2028 \\u2029``), not only ``\\n``.
"""

from __future__ import annotations

import re
import warnings
from typing import Final

__all__ = ["Untranslatable", "exact_for_rust", "translate"]

_DIGIT: Final = "0-9"
_WORD: Final = "A-Za-z0-9_"
#: ECMA-262 WhiteSpace (with Unicode Zs) and LineTerminator.
_SPACE: Final = (
    "\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
)
_CLASSES: Final = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
_DOT: Final = "[^\\n\\r\\u2028\\u2029]"
#: Escapes that mean the same single character in both dialects.
_SAME: Final = frozenset("tnrfv") | frozenset("\\/.*+?()[]{}|^$-")
_HEX: Final = re.compile(r"x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}")
_SURROGATE: Final = re.compile(r"u[dD][89a-fA-F]")
_LONE: Final = re.compile(r"[\ud800-\udfff]")
_BRACES: Final = re.compile(r"\{[0-9]+(?:,[0-9]*)?\}")
#: Group openers with the same meaning in both: plain, non-capturing, lookaheads.
_GROUPS: Final = ("(?:", "(?=", "(?!")


class Untranslatable(ValueError):
    """The pattern uses something whose ECMA-262 meaning Python's ``re`` cannot match exactly."""


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """The Python text for the escape at ``pattern[i] == "\\\\"``, and the index after it."""
    if i + 1 >= len(pattern):
        raise Untranslatable("a trailing backslash")
    char = pattern[i + 1]
    if char in _CLASSES:
        inner = _CLASSES[char]
        return (inner if in_class else f"[{inner}]"), i + 2
    if char in "DWS":
        if in_class:
            raise Untranslatable(f"'\\{char}' inside a character class")
        return f"[^{_CLASSES[char.lower()]}]", i + 2
    if char in _SAME:
        return pattern[i : i + 2], i + 2
    hex_escape = _HEX.match(pattern, i + 1)
    if hex_escape:
        if _SURROGATE.match(hex_escape.group()):
            # With the u flag, "\\uD83D\\uDE00" is one code point (U+1F600); Python reads two
            # lone surrogates, which no decoded string holds: "[^\\uD83D\\uDE00]" would admit
            # the very character ECMA-262 excludes.
            raise Untranslatable(f"the surrogate escape '\\{hex_escape.group()}'")
        return "\\" + hex_escape.group(), hex_escape.end()
    if char == "0" and not pattern[i + 2 : i + 3].isdigit():
        return "\\x00", i + 2
    raise Untranslatable(f"the escape '\\{char}'")


def translate(pattern: str) -> str:
    """The Python ``re`` pattern matching exactly what the ECMA-262 ``pattern`` matches, used
    with ``re.search`` (JSON Schema patterns are not anchored). Raises
    :class:`Untranslatable` naming what it cannot carry over."""
    if _LONE.search(pattern):
        raise Untranslatable("a surrogate code point (no character of a JSON string)")
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            start = i
            text, i = _escape(pattern, i, in_class)
            if (
                in_class
                and pattern[start + 1] in _CLASSES
                and (
                    (pattern[start - 1] == "-" and pattern[start - 2] not in "[^")
                    or (pattern.startswith("-", i) and not pattern.startswith("-]", i))
                )
            ):
                raise Untranslatable("a range with a class escape at one end")
            out.append(text)
            continue
        if in_class:
            if char == "]":
                in_class = False
            elif char == "[" or pattern.startswith(("--", "&&", "~~", "||"), i):
                # Python reads these as (future) set operations; ECMA as literals.
                raise Untranslatable(f"{pattern[i : i + 2]!r} inside a character class")
            out.append(char)
            i += 1
            continue
        if char == "[":
            in_class = True
            if pattern.startswith("[^]", i) or pattern.startswith("[]", i):
                raise Untranslatable("an empty character class")
            opener = "[^" if pattern.startswith("[^", i) else "["
            out.append(opener)
            i += len(opener)
            continue
        if char == "(" and pattern.startswith("(?", i):
            if not pattern.startswith(_GROUPS, i):
                raise Untranslatable(f"the group {pattern[i : i + 4]!r}")
            out.append(pattern[i : i + 3])
            i += 3
            continue
        if char == "{":
            # Python reads "{,3}" as a quantifier and a stray "{" as a literal; ECMA (u) not.
            braces = _BRACES.match(pattern, i)
            if braces is None:
                raise Untranslatable("a '{' that is no {n}, {n,} or {n,m} quantifier")
            out.append(braces.group())
            i = braces.end()
        else:
            out.append("\\Z" if char == "$" else _DOT if char == "." else char)
            i += 1
        if char in "*+?}" and pattern.startswith("+", i):
            raise Untranslatable("a possessive quantifier (Python only)")
    if in_class:
        raise Untranslatable("an unterminated character class")
    translated = "".join(out)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            re.compile(translated)
    except (re.error, FutureWarning, DeprecationWarning) as exc:
        raise Untranslatable(f"not a regular expression Python reads the same ({exc})") from None
    return translated


def exact_for_rust(pattern: str) -> str:
    """The ECMA-262 ``pattern`` rewritten so that jsonschema-rs's engine matches exactly what
    ECMA-262 does, or :class:`Untranslatable`.

    jsonschema-rs translates ECMA's classes (``\\d``, ``\\w``, ``\\s``) to their ASCII
    meaning, but its ``.`` still matches ``\\r``, U+2028 and U+2029, its ``\\b`` and ``\\B``
    use Unicode word characters (``a\\Bé`` would match ``"aé"``), and it accepts inline flags
    such as ``(?i)`` that ECMA-262 has no syntax for.
    """
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1 : i + 2]
            if not in_class and escaped in ("b", "B"):
                raise Untranslatable(f"'\\{escaped}' (a word boundary by ASCII word characters)")
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern.startswith(("[^]", "[]"), i):  # "]" first is no end in some engines
                raise Untranslatable("an empty character class")
        elif char == ".":
            char = _DOT
        elif (
            char == "("
            and pattern.startswith("(?", i)
            and not pattern.startswith(("(?:", "(?=", "(?!", "(?<=", "(?<!", "(?<"), i)
        ):
            raise Untranslatable(f"the group {pattern[i : i + 4]!r}")
        out.append(char)
        i += 1
    return "".join(out)
