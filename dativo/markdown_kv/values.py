"""One value <-> its Markdown-KV text, shared by both dialects.

The rule that keeps types and text apart (``parse(render(x)) == x``):

* ``None`` is ``null``; booleans are ``true`` / ``false``; integers, floats and
  ``Decimal`` are JSON numbers (``12``, ``12.5``, ``1e+16``, ``12.50``).
* A string is written **bare** (exactly as it is) when it cannot be misread: it is not
  empty, has no leading or trailing whitespace, only printable characters, does not
  start with ``"``, ``[`` or ``{``, and is not ``null``/``true``/``false`` or a JSON
  number. ``Ann``, ``a: b``, ``x :: y``, ``01``, ``+1`` and ``NaN`` are bare.
* A string with line breaks whose first line could be bare, and whose other lines are
  non-empty without trailing whitespace, is written on **continuation lines**: the first
  line after the separator, each further line indented by two spaces.
* Every other string is a JSON string literal: ``""``, ``"12"``, ``"true"``,
  ``" padded "``, ``"a\\n\\nb"``.
* Lists and dicts are compact JSON (``{"a":[1,2]}``).

Reading applies the same rule backwards: a token starting with ``"``, ``[`` or ``{`` is
JSON, ``null``/``true``/``false`` and JSON numbers are those values, anything else is the
string itself. Hand-written ``key:`` with nothing after it reads as ``""``, or, when
indented lines follow, as those lines (YAML-style block text).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from dativo.markdown_kv.errors import MarkdownKVError

INDENT = "  "
"""Prefix of a continuation line."""

ParseFloat = Callable[[str], Any]

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERALS: dict[str, Any] = {"null": None, "true": True, "false": False}
_JSON_START = frozenset('"[{')
_NUMBER_START = frozenset("-0123456789")


def is_bare(text: str) -> bool:
    """True when ``text`` reads back as itself without quoting."""
    if text == "" or text[0] in _JSON_START or not text.isprintable():
        return False
    if text[0].isspace() or text[-1].isspace() or text in _LITERALS:
        return False
    # Only a leading digit or minus sign can start a JSON number (cheap pre-check).
    return not (text[0] in _NUMBER_START and _NUMBER.fullmatch(text) is not None)


def encode_value(value: Any, *, key: str = "") -> str:
    """The text of ``value`` after ``key: `` (may hold ``\\n  `` continuation lines).

    Raises:
        MarkdownKVError: The value is not JSON-like (a set, a datetime, NaN, a dict with
            non-string keys, a string that is not valid Unicode).
    """
    kind = type(value)
    if kind is int:  # the common scalars first: this runs once per value rendered
        return str(value)
    if value is None:
        return "null"
    if kind is str or isinstance(value, str):
        if is_bare(value):
            return value
        if "\n" in value:
            block = _continued(value)
            if block is not None:
                return block
        return compact_json(value, key=key)
    return compact_json(value, key=key)


def _continued(text: str) -> str | None:
    lines = text.split("\n")
    if not is_bare(lines[0]):
        return None
    for line in lines[1:]:
        if line == "" or not line.isprintable() or line != line.rstrip():
            return None
    return ("\n" + INDENT).join(lines)


def compact_json(value: Any, *, key: str = "") -> str:
    """Compact JSON of a JSON-like value; ``Decimal`` keeps its digits.

    Raises:
        MarkdownKVError: The value (or a nested one) has no exact JSON form.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError as exc:
            raise _unencodable(key, value, "is not valid Unicode text") from exc
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _unencodable(key, value, "is not a finite number")
        return repr(value)  # shortest round-trip form; valid JSON for finite floats
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _unencodable(key, value, "is not a finite number")
        return str(value)
    if isinstance(value, Mapping):
        parts = []
        for name, item in value.items():
            if not isinstance(name, str):
                raise _unencodable(key, value, f"has a non-string key {name!r}")
            parts.append(f"{compact_json(name, key=key)}:{compact_json(item, key=key)}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return "[" + ",".join(compact_json(item, key=key) for item in value) + "]"
    raise _unencodable(key, value, f"has type {type(value).__name__}, which has no JSON form")


def _unencodable(key: str, value: Any, why: str) -> MarkdownKVError:
    return MarkdownKVError(
        f"value {str(value)[:40]!r} {why}; convert it to a string, number, boolean, "
        "null, list or dict before rendering", key=key or None)


def decode_value(token: str, *, parse_float: ParseFloat = float) -> tuple[Any, bool]:
    """Return ``(value, continuable)``; only a bare string may take continuation lines.

    Raises:
        ValueError: The token starts like JSON but is not valid JSON; the caller adds
            file, line and key.
    """
    if token == "":
        return "", False
    if token[0] in _JSON_START:
        return json.loads(token, parse_float=parse_float, parse_constant=_no_constant), False
    if token in _LITERALS:
        return _LITERALS[token], False
    if _NUMBER.fullmatch(token) is not None:
        if "." in token or "e" in token or "E" in token:
            return parse_float(token), False
        return int(token), False
    return token, True


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
