"""Snowflake column types to JSON Schema, the select-list expression of each column, and
the values of both read paths (RECORD: the connector's Python values; BATCH fast path:
its Arrow batches) made equal.

``x-sql-datatype`` says what JSON alone would lose, as in the other SQL taps:
``decimal(p,s)`` travels as an exact decimal string; ``timestamp with time zone``
(TIMESTAMP_LTZ and TIMESTAMP_TZ) as a UTC instant, ``timestamp without time zone``
(TIMESTAMP_NTZ) as the wall-clock value it is. VARIANT, OBJECT and ARRAY are JSON values
(sent parsed, like tap-dativo-postgres's jsonb); BINARY is selected as base64 text
(``BASE64_ENCODE``), GEOGRAPHY and GEOMETRY as GeoJSON text (the session's
``GEOGRAPHY_OUTPUT_FORMAT``), so both paths read the same string.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

# Iceberg (and Arrow's decimal128) hold at most 38 digits: Snowflake's NUMBER maximum.
MAX_DECIMAL_PRECISION = 38
# What a VARIANT value may be; target-dativo-iceberg keeps an ``anyOf`` as JSON text.
ANY_JSON = ("object", "array", "string", "number", "boolean")
JSON_TYPES = ("VARIANT", "OBJECT", "ARRAY")
SPATIAL_TYPES = ("GEOGRAPHY", "GEOMETRY")
TEXT_TYPES = ("TEXT", "VARCHAR", "CHAR", "CHARACTER", "STRING")
FLOAT_TYPES = ("FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL")
TIMESTAMPS = {"TIMESTAMP_NTZ": "timestamp without time zone",
              "DATETIME": "timestamp without time zone",
              "TIMESTAMP_LTZ": "timestamp with time zone",
              "TIMESTAMP_TZ": "timestamp with time zone"}
_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")
_UNQUOTED = re.compile(r"[A-Z_][A-Z0-9_$]*")
_INT64 = (-(2**63), 2**63 - 1)
Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class Column:
    """One column as INFORMATION_SCHEMA.COLUMNS describes it; ``source`` is its exact
    Snowflake name, ``name`` the stream's (:func:`property_name`)."""

    source: str
    data_type: str
    precision: int | None
    scale: int | None
    nullable: bool

    @property
    def name(self) -> str:
        return property_name(self.source)

    @property
    def known(self) -> bool:
        kind = self.data_type
        return (kind in ("NUMBER", "BOOLEAN", "DATE", "TIME", "BINARY") or kind in TEXT_TYPES
                or kind in FLOAT_TYPES or kind in TIMESTAMPS or kind in JSON_TYPES
                or kind in SPATIAL_TYPES)


def property_name(source: str) -> str:
    """Snowflake's case-insensitive names (stored upper-case: an unquoted ``id`` is
    ``ID``) in lower case, as snowflake-sqlalchemy and the Singer Snowflake taps name
    them; a quoted mixed-case name stays as it is."""
    return source.lower() if _UNQUOTED.fullmatch(source) else source


def quoted(source: str) -> str:
    """An exact Snowflake name as a quoted identifier."""
    return '"' + source.replace('"', '""') + '"'


def jsonschema(column: Column, *, use_singer_decimal: bool) -> dict[str, Any]:
    """The JSON schema of ``column`` (without nullability: the caller adds it)."""
    kind = column.data_type
    if kind == "NUMBER":
        precision = column.precision or MAX_DECIMAL_PRECISION
        if not column.scale:
            return {"type": ["integer"]}
        sql = f"decimal({precision},{column.scale})"
        if use_singer_decimal:
            return {"type": ["string"], "format": "x-singer.decimal", "x-sql-datatype": sql}
        return {"type": ["number"], "x-sql-datatype": sql}
    if kind in FLOAT_TYPES:
        return {"type": ["number"]}
    if kind == "BOOLEAN":
        return {"type": ["boolean"]}
    if kind == "DATE":
        return {"type": ["string"], "format": "date"}
    if kind == "TIME":
        return {"type": ["string"], "format": "time", "x-sql-datatype": "time"}
    if kind in TIMESTAMPS:
        return {"type": ["string"], "format": "date-time", "x-sql-datatype": TIMESTAMPS[kind]}
    if kind in JSON_TYPES:
        return {"anyOf": [{"type": t} for t in ANY_JSON]}
    if kind == "BINARY":
        return {"type": ["string"], "contentEncoding": "base64", "x-sql-datatype": "binary"}
    if kind in SPATIAL_TYPES:
        return {"type": ["string"], "contentMediaType": "application/geo+json",
                "x-sql-datatype": kind.lower()}
    return {"type": ["string"]}  # text, and types not listed above as their text


def select_expression(column: Column) -> str:
    """The select-list item whose value both paths send as it is or convert alike."""
    name = quoted(column.source)
    if column.data_type == "BINARY":
        return f"BASE64_ENCODE({name}) AS {name}"
    if not column.known:
        return f"TO_VARCHAR({name}) AS {name}"
    return name


def _declared(schema: Mapping[str, Any]) -> tuple[str | None, str, str]:
    declared = schema.get("type", [])
    types = [t for t in ([declared] if isinstance(declared, str) else declared) if t != "null"]
    return (types[0] if len(types) == 1 else None, str(schema.get("format", "")),
            str(schema.get("x-sql-datatype", "")))


def _utc(value: dt.datetime) -> str:
    """An instant in UTC; the session's TIMEZONE is UTC, so a naive value is UTC too."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc).isoformat()
    return value.astimezone(dt.timezone.utc).isoformat()


def _decimal_text(value: Decimal | int) -> str:
    """Plain digits, with the column's scale (``0.00``, never ``0E-2``)."""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes | bytearray) else value


def _int64(value: int) -> int:
    """NUMBER(p,0) is an integer column (INT is NUMBER(38,0)); a value beyond 64 bits
    fits no integer type downstream."""
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"{value} does not fit a 64-bit integer; select the column cast "
                         "to NUMBER(38,s>0) or VARCHAR in a view")
    return value


def converter_for(schema: Mapping[str, Any]) -> Converter | None:
    """How a non-NULL connector value of a column with this JSON Schema becomes
    JSON-ready; None when it already is (floats, booleans, text, and exact ``Decimal``
    numbers, which the Singer writer prints with every digit). Integers are checked to
    fit 64 bits, as the fast path's Arrow cast checks them."""
    if "anyOf" in schema:
        return _json
    kind, fmt, sql = _declared(schema)
    if kind == "integer":
        return _int64
    if fmt == "x-singer.decimal":
        return _decimal_text
    if fmt in ("date", "time"):
        return lambda value: value.isoformat()
    if fmt == "date-time":
        return _utc if sql == "timestamp with time zone" else dt.datetime.isoformat
    return None


def arrow_type(prop: Mapping[str, Any]) -> pa.DataType:
    """The Arrow type of a column with JSON schema ``prop``: the RECORD path's value."""
    import pyarrow as pa

    if "anyOf" in prop:
        return pa.json_()
    kind, fmt, sql = _declared(prop)
    decimal = _DECIMAL.fullmatch(sql)
    if decimal:
        return pa.decimal128(int(decimal[1]), int(decimal[2]))
    if kind == "boolean":
        return pa.bool_()
    if kind == "integer":
        return pa.int64()
    if kind == "number":
        return pa.float64()
    if fmt == "date":
        return pa.date32()
    if fmt == "date-time":
        return pa.timestamp("us", tz="UTC" if sql == "timestamp with time zone" else None)
    if fmt == "time":
        return pa.time64("us")
    return pa.string()
