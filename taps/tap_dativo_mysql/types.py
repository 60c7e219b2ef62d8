"""MySQL/MariaDB column types to JSON Schema, and PyMySQL values to JSON-ready values.

Values are PyMySQL's own (rows come from its unbuffered cursor, past SQLAlchemy).
``x-sql-datatype`` says what JSON alone would lose, as in tap-dativo-postgres:
``decimal(p,s)`` (and ``decimal(20,0)`` for unsigned bigint, whose top half no signed
64-bit integer holds) travel as exact decimal strings; binary values as base64, like
the Postgres tap's bytea; ``bit(n)`` as its n binary digits, like PostgreSQL's bit text.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy.types as sat
from singer_sdk.sql.connector import SQLToJSONSchema
from sqlalchemy.dialects import mysql

from dativo.errors import InternalError

# Iceberg (and Arrow's decimal128) hold at most 38 digits; wider decimals travel as
# exact decimal strings without a fixed precision.
MAX_DECIMAL_PRECISION = 38
UNSIGNED_BIGINT = "decimal(20,0)"
ZeroDates = Literal["null", "fail"]
Converter = Callable[[Any], Any]


class MySQLToJSONSchema(SQLToJSONSchema):
    """One small method per MySQL type family (singer-sdk dispatches on the class)."""

    @functools.singledispatchmethod
    def to_jsonschema(self, column_type: Any) -> dict:
        """Anything not registered below (char, text, enum, set, ...) travels as text."""
        return super().to_jsonschema(column_type)  # type: ignore[no-any-return]

    @to_jsonschema.register
    def integer_to_jsonschema(self, column_type: sat.Integer) -> dict:
        """tinyint(1) is MySQL's boolean; unsigned bigint goes beyond 2^63 - 1."""
        if isinstance(column_type, mysql.TINYINT) and column_type.display_width == 1:
            return {"type": ["boolean"]}
        if isinstance(column_type, mysql.BIGINT) and column_type.unsigned:
            return {"type": ["string"], "format": "x-singer.decimal",
                    "x-sql-datatype": UNSIGNED_BIGINT}
        return {"type": ["integer"]}

    @to_jsonschema.register
    def numeric_to_jsonschema(self, column_type: sat.Numeric) -> dict:
        """decimal(p,s) as an exact decimal string (``use_singer_decimal``, the default)
        or a JSON number with every digit; float and double as JSON numbers. Decimals
        wider than 38 digits are always strings: no fixed-point type downstream holds them.
        """
        if isinstance(column_type, sat.Float):
            return {"type": ["number"]}
        precision, scale = column_type.precision, column_type.scale
        if precision is None or precision > MAX_DECIMAL_PRECISION:
            return {"type": ["string"], "format": "x-singer.decimal", "x-sql-datatype": "decimal"}
        sql = f"decimal({precision},{scale or 0})"
        if self.use_singer_decimal:
            return {"type": ["string"], "format": "x-singer.decimal", "x-sql-datatype": sql}
        return {"type": ["number"], "x-sql-datatype": sql}

    @to_jsonschema.register
    def datetime_to_jsonschema(self, column_type: sat.DateTime) -> dict:
        """timestamp is an instant (read in the UTC session); datetime a wall-clock value."""
        if isinstance(column_type, sat.TIMESTAMP):
            return {"type": ["string"], "format": "date-time",
                    "x-sql-datatype": "timestamp with time zone"}
        return {"type": ["string"], "format": "date-time",
                "x-sql-datatype": "timestamp without time zone"}

    @to_jsonschema.register
    def time_to_jsonschema(self, column_type: sat.Time) -> dict:
        return {"type": ["string"], "format": "time", "x-sql-datatype": "time"}

    @to_jsonschema.register
    def year_to_jsonschema(self, column_type: mysql.YEAR) -> dict:
        return {"type": ["integer"]}

    @to_jsonschema.register
    def binary_to_jsonschema(self, column_type: sat._Binary) -> dict:
        return {"type": ["string"], "contentEncoding": "base64", "x-sql-datatype": "blob"}

    @to_jsonschema.register
    def bit_to_jsonschema(self, column_type: mysql.BIT) -> dict:
        return {"type": ["string"], "x-sql-datatype": f"bit({column_type.length or 1})"}

    @to_jsonschema.register
    def set_to_jsonschema(self, column_type: mysql.SET) -> dict:
        """The members joined by commas, as MySQL shows them: no maxLength (SQLAlchemy's
        length is the longest member's)."""
        return {"type": ["string"], "x-sql-datatype": "set"}

    @to_jsonschema.register
    def json_to_jsonschema(self, column_type: sat.JSON) -> dict:
        """MySQL's JSON type; MariaDB's JSON is longtext, so it arrives as text."""
        return {"type": ["string"], "x-sql-datatype": "json"}


class ZeroDate(InternalError):
    """Raised when a date or datetime is MySQL's zero date (``0000-00-00``) and
    ``zero_dates`` is ``fail``; the stream translates it into a CodecError naming the row."""


def _declared(schema: dict[str, Any]) -> tuple[str | None, str, str]:
    declared = schema.get("type", [])
    types = [t for t in ([declared] if isinstance(declared, str) else declared) if t != "null"]
    return (types[0] if len(types) == 1 else None, str(schema.get("format", "")),
            str(schema.get("x-sql-datatype", "")))


def _time(value: dt.timedelta | dt.time) -> str:
    """PyMySQL returns TIME as a timedelta. MySQL's TIME is also a duration of up to
    ±838 hours, which JSON Schema's ``time`` (a time of day) cannot hold, so such a value
    stops the run instead of being wrapped into a day.
    """
    if isinstance(value, dt.time):
        return value.isoformat()
    if not dt.timedelta(0) <= value < dt.timedelta(days=1):
        raise ValueError(f"the time {_mysql_time(value)} is not a time of day "
                         "(00:00:00 to 23:59:59); to load durations, read the table "
                         "through a view with TIME_TO_SEC(column) and select the view")
    return (dt.datetime.min + value).time().isoformat()


def _mysql_time(value: dt.timedelta) -> str:
    """A duration as MySQL prints it: ``-838:59:59``, ``25:00:00.5``."""
    sign, value = ("-", -value) if value < dt.timedelta(0) else ("", value)
    minutes, seconds = divmod(value.seconds, 60)
    text = f"{sign}{value.days * 24 + minutes // 60:02d}:{minutes % 60:02d}:{seconds:02d}"
    return text + (f".{value.microseconds:06d}".rstrip("0") if value.microseconds else "")


def _utc(value: dt.datetime) -> str:
    return value.replace(tzinfo=dt.timezone.utc).isoformat()


def _decimal_text(value: Decimal | int) -> str:
    """Plain digits, with the column's scale (``0.00``, never ``0E-2``)."""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _bits(length: int) -> Converter:
    return lambda value: format(int.from_bytes(value, "big"), f"0{length}b")


def _zero_dates(convert: Converter, mode: ZeroDates) -> Converter:
    """PyMySQL returns a date it cannot parse (``0000-00-00``, ``2024-00-10``) as text."""
    def converted(value: Any) -> Any:
        if not isinstance(value, str):
            return convert(value)
        if mode == "fail":
            raise ZeroDate(value)
        return None
    return converted


def converter_for(schema: dict[str, Any], zero_dates: ZeroDates) -> Converter | None:
    """How a non-NULL PyMySQL value of a column with this JSON Schema becomes
    JSON-ready; None when it already is (integers, floats, exact ``Decimal`` numbers,
    which the Singer writer prints with every digit, text).

    A converter of a date or datetime column returns None for a zero date when
    ``zero_dates`` is ``null`` (the stream warns), or raises :class:`ZeroDate`.
    """
    kind, fmt, sql = _declared(schema)
    if kind == "boolean":
        return bool
    if fmt == "x-singer.decimal":
        return _decimal_text
    if fmt == "date":
        return _zero_dates(dt.date.isoformat, zero_dates)
    if fmt == "date-time":
        to_text = _utc if sql == "timestamp with time zone" else dt.datetime.isoformat
        return _zero_dates(to_text, zero_dates)
    if fmt == "time":
        return _time
    if schema.get("contentEncoding") == "base64":
        return lambda value: base64.b64encode(value).decode("ascii")
    if sql.startswith("bit("):
        return _bits(int(sql[4:-1]))
    return None
