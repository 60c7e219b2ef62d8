"""PostgreSQL column types to JSON Schema, and driver values to JSON-ready values.

The JSON Schema carries ``x-sql-datatype`` wherever JSON alone would lose meaning
(``numeric(p,s)``, ``timestamp`` without zone, ``interval``, ``bytea``), so a target
can pick an exact type: target-dativo-iceberg reads ``numeric(p,s)`` as a decimal.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy.types as sat
from singer_sdk.sql.connector import SQLToJSONSchema
from sqlalchemy.dialects import postgresql as pg

from dativo.errors import InternalError

# Iceberg (and Arrow's decimal128) hold at most 38 digits; wider or unconstrained
# numerics travel as exact decimal strings instead.
MAX_DECIMAL_PRECISION = 38
# What a json/jsonb value may be. Targets read an ``anyOf`` of several types as free
# JSON (target-dativo-iceberg keeps it as JSON text).
ANY_JSON = ("object", "array", "string", "number", "boolean")


class PostgresToJSONSchema(SQLToJSONSchema):
    """One small method per PostgreSQL type family (singer-sdk dispatches on the class)."""

    @functools.singledispatchmethod
    def to_jsonschema(self, column_type: Any) -> dict:
        """Anything not registered below (enums, citext, inet, ...) travels as text."""
        return super().to_jsonschema(column_type)  # type: ignore[no-any-return]

    @to_jsonschema.register
    def numeric_to_jsonschema(self, column_type: sat.Numeric) -> dict:
        """numeric(p,s) exactly; real and double precision as plain JSON numbers.

        With ``use_singer_decimal`` (this tap's default) the value is a decimal string
        (singer-sdk's ``x-singer.decimal``), which no JSON parser can round through a
        float; otherwise a JSON number with every digit. Either way ``x-sql-datatype``
        says ``numeric(p,s)``. Unconstrained (or wider than 38 digits) numerics are
        always strings: no fixed-point type downstream holds them.
        """
        if isinstance(column_type, sat.Float):
            return {"type": ["number"]}
        precision, scale = column_type.precision, column_type.scale
        if precision is None or precision > MAX_DECIMAL_PRECISION:
            return {"type": ["string"], "format": "x-singer.decimal", "x-sql-datatype": "numeric"}
        sql = f"numeric({precision},{scale or 0})"
        if self.use_singer_decimal:
            return {"type": ["string"], "format": "x-singer.decimal", "x-sql-datatype": sql}
        return {"type": ["number"], "x-sql-datatype": sql}

    @to_jsonschema.register
    def datetime_to_jsonschema(self, column_type: sat.DateTime) -> dict:
        """timestamptz is an instant; timestamp is a wall-clock value without a zone."""
        if column_type.timezone:
            return {"type": ["string"], "format": "date-time",
                    "x-sql-datatype": "timestamp with time zone"}
        return {"type": ["string"], "format": "date-time",
                "x-sql-datatype": "timestamp without time zone"}

    @to_jsonschema.register
    def interval_to_jsonschema(self, column_type: pg.INTERVAL) -> dict:
        """ISO 8601 durations (``P1Y2M3DT4H``): months and days stay apart, unlike timedelta."""
        return {"type": ["string"], "x-sql-datatype": "interval"}

    @to_jsonschema.register
    def bytea_to_jsonschema(self, column_type: sat.LargeBinary) -> dict:
        return {"type": ["string"], "contentEncoding": "base64", "x-sql-datatype": "bytea"}

    @to_jsonschema.register
    def uuid_to_jsonschema(self, column_type: sat.Uuid) -> dict:
        return {"type": ["string"], "format": "uuid"}

    @to_jsonschema.register
    def json_to_jsonschema(self, column_type: sat.JSON) -> dict:
        """Any JSON value (objects, arrays or scalars), sent parsed, not as text."""
        return {"anyOf": [{"type": kind} for kind in ANY_JSON]}

    @to_jsonschema.register
    def array_to_jsonschema(self, column_type: sat.ARRAY) -> dict:
        item = self.to_jsonschema(column_type.item_type)
        item_types = item.get("type", [])
        if isinstance(item_types, list) and "null" not in item_types:
            item = {**item, "type": [*item_types, "null"]}
        return {"type": ["array"], "items": item}

    @to_jsonschema.register
    def enum_to_jsonschema(self, column_type: sat.Enum) -> dict:
        """Enum labels are not pinned in the schema: ``ALTER TYPE ... ADD VALUE`` must not
        make new rows invalid before the next discovery."""
        return {"type": ["string"], "x-sql-datatype": f"enum {column_type.name}"}


def _iso(value: dt.date | dt.time) -> str:
    return value.isoformat()


def _base64(value: bytes | memoryview) -> str:
    return base64.b64encode(value).decode("ascii")


NON_FINITE_ADVICE = ("which JSON cannot carry exactly; store NULL instead, or cast the column "
                     "to double precision in a view and select the view")


class NonFiniteDecimal(InternalError):
    """Raised when a numeric is NaN or ±Infinity, which JSON cannot carry exactly; the
    stream translates it into a :class:`~dativo.errors.CodecError` naming the row."""


def _decimal(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise NonFiniteDecimal(str(value))
    return value


def _list(value: list[Any]) -> list[Any]:
    return [to_json(item) for item in value]


_CONVERT: dict[type, Callable[[Any], Any]] = {
    dt.datetime: _iso,
    dt.date: _iso,
    dt.time: _iso,
    Decimal: _decimal,
    uuid.UUID: str,
    memoryview: _base64,
    bytes: _base64,
    list: _list,
}


def decimal_text(value: Any) -> Any:
    """Unconstrained numerics (and arrays of them) as exact decimal strings."""
    if isinstance(value, list):
        return [decimal_text(item) for item in value]
    return None if value is None else str(_decimal(value))


def is_decimal_text(schema: dict[str, Any]) -> bool:
    """Whether a column's schema (or its array items) is an ``x-singer.decimal`` string."""
    if "items" in schema and isinstance(schema["items"], dict):
        return is_decimal_text(schema["items"])
    return schema.get("format") == "x-singer.decimal"


Converter = Callable[[Any], Any]
# Column types whose driver values are already what the schema says, or which
# ``converter_for`` handles; any other type is selected as ``::text`` (``needs_text``).
_DRIVER_TYPES = (sat.Integer, sat.Numeric, sat.Boolean, sat.String, sat.Date, sat.DateTime,
                 sat.Time, sat.LargeBinary, sat.Uuid, sat.JSON, sat.ARRAY, pg.INTERVAL)


def needs_text(column_type: sat.TypeEngine) -> bool:
    """Whether a column is read as PostgreSQL's text output: ranges, inet, tsvector, ...

    Their schema is a string, and psycopg2 would return objects (``NumericRange``)
    whose ``str()`` is not PostgreSQL's text.
    """
    if isinstance(column_type, sat.ARRAY):
        return needs_text(column_type.item_type)
    return not isinstance(column_type, _DRIVER_TYPES)


def _items(convert: Converter) -> Converter:
    return lambda values: [None if v is None else convert(v) for v in values]


def converter_for(schema: dict[str, Any]) -> Converter | None:
    """How a non-NULL driver value of a column with this JSON Schema becomes JSON-ready;
    None when it already is (integers, booleans, floats, text, json values).

    Decided once per column from the schema, so a row costs one dict and a few calls.
    """
    if is_decimal_text(schema):
        return decimal_text
    if "anyOf" in schema:
        return None  # json/jsonb: the driver returns parsed JSON
    declared = schema.get("type", [])
    types = [t for t in ([declared] if isinstance(declared, str) else declared) if t != "null"]
    kind = types[0] if len(types) == 1 else None
    if kind == "array" and isinstance(schema.get("items"), dict):
        item = converter_for(schema["items"])
        return None if item is None else _items(item)
    if kind in ("integer", "boolean"):
        return None
    if kind == "number":
        return _decimal if "x-sql-datatype" in schema else None
    if kind == "string":
        if schema.get("format") in ("date", "time", "date-time"):
            return _iso
        if schema.get("format") == "uuid":
            return str
        if schema.get("contentEncoding") == "base64":
            return _base64
        return None
    return to_json


def to_json(value: Any) -> Any:
    """One driver value as a JSON-ready value (exact decimals stay ``Decimal``).

    Raises:
        NonFiniteDecimal: The value is a NaN or infinite numeric.
    """
    convert = _CONVERT.get(type(value))
    return value if convert is None else convert(value)
