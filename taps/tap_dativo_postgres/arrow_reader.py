"""A query's rows as Arrow record batches, read with ADBC: the BATCH fast path.

Apache Arrow's ADBC PostgreSQL driver runs the query as ``COPY ... TO STDOUT (FORMAT
binary)`` and decodes it into Arrow record batches in C++, so no row becomes a
Python object and no value becomes JSON text. Each column is then given the Arrow
type whose value equals what the RECORD path sends for it, so a table lands the same
whichever path the tap took:

- types Arrow has (integers, floats, booleans, text, dates, times, timestamps and
  arrays of them) are read as they are;
- ``numeric(p,s)`` arrives as text and is cast to ``decimal128(p,s)``; an
  unconstrained numeric stays exact text;
- json/jsonb stay Arrow's canonical JSON type (``arrow.json``), which Parquet keeps and
  DuckDB reads as JSON values, not as strings;
- uuid, interval, enums and the types ``needs_text`` names are selected as
  PostgreSQL's text (ISO 8601 intervals: the session sets ``IntervalStyle``), bytea as
  base64, exactly the strings the RECORD path sends; timetz too, the same time though
  PostgreSQL may print fewer digits (``+02``, ``.5``) than Python's isoformat;
- NaN and ±Infinity in real/double become NULL (the RECORD path's JSON writer does the
  same); in numeric they fail the read (``UnfitValue``), as on the RECORD path, and so
  do ±infinity dates and timestamps, which no Arrow or Iceberg type holds;
- a type the driver can only hand over as opaque bytes fails the read naming the
  column, rather than landing bytes where the RECORD path sends text.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import psycopg2.extensions
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
import sqlalchemy.types as sat
from sqlalchemy.dialects import postgresql as pg

from dativo.errors import InternalError
from tap_dativo_postgres.client import psycopg2_dsn
from tap_dativo_postgres.types import NON_FINITE_ADVICE, needs_text

# ADBC's text for PostgreSQL's non-finite numerics, and how PostgreSQL prints them.
NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_NON_FINITE_VALUES = pa.array(list(NON_FINITE))
_NUMERIC = re.compile(r"numeric\((\d+),(\d+)\)")
# Years 1-9999 as days and microseconds since the epoch: PostgreSQL's ±infinity (and
# BC dates) decode outside them.
_DAYS = (-719_162, 2_932_896)
_MICROS = (-62_135_596_800_000_000, 253_402_300_799_999_999)


class UnfitValue(InternalError):
    """A value the fast path cannot carry: a NaN or ±Infinity numeric, a ±infinity date
    or timestamp, or bytes of a type the driver cannot decode.

    ``row`` is the row as the driver read it (one-row batch), so the message can name
    its key.
    """

    def __init__(self, column: str, problem: str, row: pa.RecordBatch) -> None:
        super().__init__(f"column {column} {problem}")
        self.column, self.problem, self.row = column, problem, row


def arrow_column(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The select-list expression whose Arrow value is the RECORD path's value."""
    column_type = column.type
    item_type = column_type.item_type if isinstance(column_type, sat.ARRAY) else column_type
    if isinstance(column_type, sat.LargeBinary):  # (bytea[] streams take the record path)
        # PostgreSQL's base64 breaks lines every 76 characters; the RECORD path does not.
        encoded = sa.func.encode(column, "base64")
        return sa.func.translate(encoded, "\n", "").label(column.name)
    with_zone = isinstance(item_type, sat.Time) and item_type.timezone
    if needs_text(column_type) or with_zone or isinstance(
            item_type, sat.Uuid | pg.INTERVAL | sat.Enum):
        text_type: sat.TypeEngine[Any] = (sat.ARRAY(sat.Text) if item_type is not column_type
                                          else sat.Text())
        return sa.cast(column, text_type).label(column.name)
    return column


class ArrowTableReader:
    """Runs one SELECT through ADBC and yields its rows as typed record batches."""

    def __init__(self, url: sa.engine.URL, properties: Mapping[str, dict[str, Any]]) -> None:
        """``properties``: the stream's JSON Schema properties, which say per column
        what the RECORD path sends (and so which Arrow type to give it)."""
        self._conninfo = psycopg2.extensions.make_dsn(**psycopg2_dsn(url))
        self._properties = properties

    def batches(self, sql: str) -> Iterator[pa.RecordBatch]:
        """The rows of ``sql`` (literal SQL: ADBC binds no psycopg2 parameters). The
        connection closes when the iterator ends or is closed.

        Raises:
            adbc_driver_manager.Error: PostgreSQL refused or broke off the query.
            UnfitValue: A value the fast path cannot carry (see the module doc).
        """
        with contextlib.closing(adbc.connect(self._conninfo)) as conn, \
                contextlib.closing(conn.cursor()) as cursor:
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
            schema = self.arrow_schema(reader.schema)
            for batch in reader:
                yield self._conform(batch, schema)

    def arrow_schema(self, source: pa.Schema) -> pa.Schema:
        """The Arrow schema the batches are given: no driver metadata or extension
        types, numerics as the decimals (or text) the stream's schema declares."""
        return pa.schema([pa.field(field.name, self._arrow_type(field),
                                   nullable=field.nullable) for field in source])

    def _arrow_type(self, field: pa.Field) -> pa.DataType:
        kind = _storage(field.type)
        precision_scale = _decimal_of(self._properties.get(field.name, {}))
        if precision_scale is not None:
            decimal = pa.decimal128(*precision_scale)
            return pa.list_(decimal) if pa.types.is_list(kind) else decimal
        if pa.types.is_list(kind):
            return pa.list_(_storage(kind.value_type))
        return kind

    def _conform(self, batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
        columns = []
        for index, field in enumerate(schema):
            driver_type = batch.schema.field(index).type
            column = _strip_extension(batch.column(index))
            problem = _problem(driver_type, column)
            if problem is not None:
                row, text = problem
                raise UnfitValue(field.name, text, batch.slice(row, 1))
            if pa.types.is_floating(column.type):
                column = _finite_or_null(column)
            if column.type != field.type:
                column = column.cast(field.type)
            columns.append(column)
        return pa.RecordBatch.from_arrays(columns, schema=schema)


def _decimal_of(prop: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(p, s)`` of a ``numeric(p,s)`` column (or array), from ``x-sql-datatype``."""
    items = prop.get("items")
    item = items if isinstance(items, Mapping) else prop
    found = _NUMERIC.fullmatch(str(item.get("x-sql-datatype", "")))
    return (int(found[1]), int(found[2])) if found else None


def _storage(kind: pa.DataType) -> pa.DataType:
    """A driver-specific extension type (numeric is ``arrow.opaque`` over text) as its
    storage type; Arrow's canonical JSON type stays."""
    return kind.storage_type if _driver_extension(kind) else kind


def _driver_extension(kind: pa.DataType) -> bool:
    # ``arrow.opaque`` (numeric) derives from BaseExtensionType, not ExtensionType.
    return isinstance(kind, pa.BaseExtensionType) and not isinstance(kind, pa.JsonType)


def _strip_extension(column: pa.Array) -> pa.Array:
    if _driver_extension(column.type):
        return column.storage
    if pa.types.is_list(column.type) and _driver_extension(column.type.value_type):
        return pa.ListArray.from_arrays(column.offsets, column.values.storage,
                                        mask=column.is_null())
    return column


def _flat(column: pa.Array) -> pa.Array:
    return pc.list_flatten(column) if pa.types.is_list(column.type) else column


def _row_of(column: pa.Array, value_index: int) -> int:
    """The row holding flattened value ``value_index`` (itself, unless a list)."""
    if not pa.types.is_list(column.type):
        return value_index
    return int(pc.list_parent_indices(column)[value_index].as_py())


def _problem(driver_type: pa.DataType, column: pa.Array) -> tuple[int, str] | None:
    """``(row, what is wrong)`` for the first value the fast path cannot carry."""
    values = _flat(column)
    item_type = driver_type.value_type if pa.types.is_list(driver_type) else driver_type
    if _driver_extension(item_type):
        if not pa.types.is_string(values.type):
            return 0, (f"has a type ADBC cannot decode ({item_type}); select it cast to "
                       "text in a view, or send this stream as RECORDs")
        bad = pc.is_in(values, value_set=_NON_FINITE_VALUES)  # numeric text
        if pc.any(bad).as_py():
            index = pc.index(bad, True).as_py()
            spelled = NON_FINITE[values[index].as_py()]
            return _row_of(column, index), f"is {spelled}, {NON_FINITE_ADVICE}"
        return None
    bounds = (_DAYS if pa.types.is_date32(values.type) else
              _MICROS if pa.types.is_timestamp(values.type) else None)
    if bounds is None or len(values) == values.null_count:
        return None
    numbers = values.cast(pa.int32() if bounds is _DAYS else pa.int64())
    outside = pc.or_(pc.less(numbers, bounds[0]), pc.greater(numbers, bounds[1]))
    if not pc.any(outside).as_py():
        return None
    index = pc.index(outside, True).as_py()
    return _row_of(column, index), ("is ±infinity or outside years 1-9999, which no "
                                    "Arrow or Iceberg type holds; store NULL instead, or "
                                    "send this stream as RECORDs")


def _finite_or_null(column: pa.Array) -> pa.Array:
    """NaN and ±Infinity floats as NULL, as the RECORD path's JSON writer sends them."""
    values = _flat(column)
    if pa.types.is_list(column.type) or pc.all(pc.is_finite(values)).as_py() is not False:
        return column
    return pc.if_else(pc.is_finite(column), column, pa.scalar(None, column.type))


def literal_sql(psycopg2_connection: Any, sql: str, params: Sequence[Any] | Mapping[str, Any]
                ) -> str:
    """``sql`` with its parameters rendered as psycopg2 would send them (so the
    bookmark compares exactly as on the RECORD path)."""
    with psycopg2_connection.cursor() as cursor:
        return str(cursor.mogrify(sql, params).decode())

