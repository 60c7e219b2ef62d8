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
  base64, exactly the strings the RECORD path sends.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import psycopg2.extensions
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
import sqlalchemy.types as sat
from sqlalchemy.dialects import postgresql as pg

from tap_dativo_postgres.client import psycopg2_dsn
from tap_dativo_postgres.types import is_decimal_text, needs_text

# How ADBC spells PostgreSQL's NaN and ±Infinity numerics (and PostgreSQL itself).
NON_FINITE = pa.array(["nan", "inf", "-inf", "NaN", "Infinity", "-Infinity"])
_NUMERIC = re.compile(r"numeric\((\d+),(\d+)\)")


class NonFiniteNumeric(ValueError):
    """A numeric column holds NaN or ±Infinity, which no decimal type (nor JSON) holds.

    ``row`` is the row as the driver read it, so the message can name its key.
    """

    def __init__(self, column: str, value: str, row: dict[str, Any]) -> None:
        super().__init__(f"column {column} is {value}")
        self.column, self.value, self.row = column, value, row


def arrow_column(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The select-list expression whose Arrow value is the RECORD path's value."""
    column_type = column.type
    item_type = column_type.item_type if isinstance(column_type, sat.ARRAY) else column_type
    if isinstance(item_type, sat.LargeBinary) and item_type is column_type:
        # PostgreSQL's base64 breaks lines every 76 characters; the RECORD path does not.
        encoded = sa.func.encode(column, "base64")
        return sa.func.translate(encoded, "\n", "").label(column.name)
    if needs_text(column_type) or isinstance(
            item_type, sat.Uuid | pg.INTERVAL | sat.Enum | sat.LargeBinary):
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
        """The rows of ``sql`` (literal SQL: ADBC binds no psycopg2 parameters).

        Raises:
            adbc_driver_manager.Error: PostgreSQL refused or broke off the query.
            NonFiniteNumeric: A numeric value is NaN or infinite.
        """
        with contextlib.closing(adbc.connect(self._conninfo)) as conn, \
                contextlib.closing(conn.cursor()) as cursor:
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
            schema: pa.Schema | None = None
            for batch in reader:
                if schema is None:
                    schema = self.arrow_schema(batch.schema)
                yield self._conform(batch, schema)

    def arrow_schema(self, source: pa.Schema) -> pa.Schema:
        """The Arrow schema the batches are given: no driver metadata or extension
        types, numerics as the decimals (or text) the stream's schema declares."""
        fields = []
        for field in source:
            fields.append(pa.field(field.name, self._arrow_type(field),
                                   nullable=field.nullable))
        return pa.schema(fields)

    def _arrow_type(self, field: pa.Field) -> pa.DataType:
        kind = _storage(field.type)
        prop = self._properties.get(field.name, {})
        precision_scale = _decimal_of(prop)
        if precision_scale is not None:
            decimal = pa.decimal128(*precision_scale)
            return pa.list_(decimal) if pa.types.is_list(kind) else decimal
        if pa.types.is_list(kind):
            return pa.list_(_storage(kind.value_type))
        return kind

    def _conform(self, batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
        columns = []
        for index, field in enumerate(schema):
            column = _strip_extension(batch.column(index))
            numeric = column.type != field.type or is_decimal_text(
                self._properties.get(field.name, {}))
            if numeric and (row := _non_finite_row(column)) is not None:
                raise NonFiniteNumeric(field.name, _flat(column)[row[1]].as_py(),
                                       batch.slice(row[0], 1).to_pylist()[0])
            if column.type != field.type:
                column = column.cast(field.type)
            columns.append(column)
        return pa.RecordBatch.from_arrays(columns, schema=schema)


def _decimal_of(prop: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(p, s)`` of a ``numeric(p,s)`` column (or array), from ``x-sql-datatype``."""
    item = prop.get("items") if isinstance(prop.get("items"), dict) else prop
    assert isinstance(item, Mapping)
    found = _NUMERIC.fullmatch(str(item.get("x-sql-datatype", "")))
    return (int(found[1]), int(found[2])) if found else None


def _storage(kind: pa.DataType) -> pa.DataType:
    """A driver-specific extension type (numeric is ``arrow.opaque`` over text) as its
    storage type; Arrow's canonical JSON type stays."""
    return kind.storage_type if _driver_extension(kind) else kind  # type: ignore[attr-defined]


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


def _non_finite_row(column: pa.Array) -> tuple[int, int] | None:
    """``(row, value index)`` of the first NaN or ±Infinity numeric text, if any: those
    fail the read, as on the RECORD path."""
    values = _flat(column)
    if not pa.types.is_string(values.type):
        return None
    bad = pc.is_in(values, value_set=NON_FINITE)
    if not pc.any(bad).as_py():
        return None
    index = pc.index(bad, True).as_py()
    if values is column:
        return index, index
    return pc.list_parent_indices(column)[index].as_py(), index


def literal_sql(psycopg2_connection: Any, sql: str, params: Sequence[Any] | Mapping[str, Any]
                ) -> str:
    """``sql`` with its parameters rendered as psycopg2 would send them (so the
    bookmark compares exactly as on the RECORD path)."""
    with psycopg2_connection.cursor() as cursor:
        return str(cursor.mogrify(sql, params).decode())


AdbcError = adbc_driver_manager.Error
