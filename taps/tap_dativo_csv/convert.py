"""Contract kinds to JSON Schema, and CSV cell text to typed JSON values.

:func:`converter` never raises: a cell that does not parse as its column's kind is
kept as the original text. That is the ``on_invalid_value: pass`` behaviour, for a
target with a dead-letter table (target-dativo-iceberg); the other settings check each
cell against the SCHEMA first (:mod:`tap_dativo_csv.columns`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
from collections.abc import Callable
from typing import Any

from singer_sdk import typing as th

from dativo.contracts import FieldSpec

Converter = Callable[[str], Any]

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_STRING_FORMATS = {"email", "uuid", "uri", "date", "date-time"}
_ANY_JSON = {"type": ["object", "array", "string", "number", "boolean", "null"]}


def json_type(spec: FieldSpec) -> th.JSONTypeHelper:
    """The singer-sdk type for a contract field (nullability is added by Property)."""
    simple: dict[str, type[th.JSONTypeHelper]] = {
        "integer": th.IntegerType,
        "number": th.NumberType,
        "decimal": th.NumberType,
        "boolean": th.BooleanType,
        "date": th.DateType,
        "time": th.TimeType,
        "timestamp": th.DateTimeType,
        "timestamptz": th.DateTimeType,
    }
    if spec.kind in simple:
        return simple[spec.kind]()
    if spec.kind == "string":
        if spec.format in _STRING_FORMATS:
            return th.CustomType({"type": ["string"], "format": spec.format})
        return th.StringType()
    if spec.kind == "object" and spec.children:
        return th.ObjectType(*(property_for(child) for child in spec.children))
    if spec.kind == "array":
        item = json_type(spec.item) if spec.item else th.CustomType(dict(_ANY_JSON))
        return th.ArrayType(item)
    return th.CustomType(dict(_ANY_JSON))


def property_for(spec: FieldSpec) -> th.Property:
    """A nullable property unless the contract marks the field required."""
    return th.Property(spec.name, json_type(spec), required=spec.required,
                       description=spec.description)


def as_string(cell: str) -> str | None:
    """Untyped columns keep their text; only an empty cell becomes null."""
    return cell if cell != "" else None


def parser(kind: str) -> Converter:
    """The parser of a typed kind: stripped, non-empty text to its value, or
    ValueError/ArithmeticError (see :func:`converter` for the lenient form)."""
    return _PARSERS[kind]


def converter(kind: str) -> Converter:
    """Return the cell converter for a contract kind (strings are kept as text)."""
    parse = _PARSERS.get(kind)
    if parse is None:
        return as_string

    def convert(cell: str) -> Any:
        text = cell.strip()
        if text == "":
            return None
        try:
            return parse(text)
        except (ValueError, ArithmeticError):
            return cell

    return convert


def _integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(text)
    return int(text)


def _number(text: str) -> float:
    """Plain decimal notation only: no NaN/Infinity (not JSON) and no ``1_000``."""
    if not _NUMBER.fullmatch(text):
        raise ValueError(text)
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e999 overflows to inf
        raise ValueError(text)
    return value


def _decimal(text: str) -> decimal.Decimal:
    """Exact: singer-sdk writes Decimal with simplejson(use_decimal=True), digit for digit."""
    if not _NUMBER.fullmatch(text):
        raise ValueError(text)
    return decimal.Decimal(text)


def _boolean(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError(text) from None


def _fail(text: str) -> Any:
    raise ValueError(text)


def _datetime(text: str) -> dt.datetime:
    # Python 3.10's fromisoformat does not know the "Z" suffix.
    return dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def _timestamp(text: str) -> str:
    return _datetime(text).isoformat()


def _timestamptz(text: str) -> str:
    """A value without an offset is taken as UTC, as singer-sdk does for naive datetimes."""
    value = _datetime(text)
    return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).isoformat()


def _json(text: str) -> Any:
    return json.loads(text, parse_float=decimal.Decimal, parse_constant=_fail)


def _json_of(kind: type) -> Converter:
    def parse(text: str) -> Any:
        value = _json(text)
        return value if isinstance(value, kind) else _fail(text)

    return parse


_PARSERS: dict[str, Converter] = {
    "integer": _integer,
    "number": _number,
    "decimal": _decimal,
    "boolean": _boolean,
    "date": lambda text: dt.date.fromisoformat(text).isoformat(),
    "time": lambda text: dt.time.fromisoformat(text).isoformat(),
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
    "object": _json_of(dict),
    "array": _json_of(list),
    "json": _json,
}
