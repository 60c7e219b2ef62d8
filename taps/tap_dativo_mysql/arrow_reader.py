"""A query's rows as Arrow record batches, read with connectorx: the BATCH fast path.

connectorx (Rust) reads MySQL's binary protocol straight into Arrow arrays, so no row
becomes a Python object and no value becomes JSON text. Measured on the throwaway
MariaDB of the tests (2 cores, a 1M-row table of bigint, int, unsigned bigint,
decimal(20,4), double, varchar, datetime(6), date, json and tinyint(1), reading Arrow
batches and counting rows over TCP; 3 runs each, other work on the machine):

- connectorx 0.4.6, binary protocol: 1.13M to 1.62M rows/s, peak RSS 132 MiB (over
  the Unix socket 1.45M to 1.85M); text protocol 0.83M to 0.94M rows/s;
- DuckDB 1.4.4 with its mysql extension (duckdb-ext-mysql 1.4.4.20260205, for the
  same duckdb 1.4.4 as the venv's): 107k to 139k rows/s, peak RSS 152 to 164 MiB
  (2 threads: slower). It also reads decimal(65,30) as a double (digits lost), TIME as
  text, and zero dates as NULL without saying so.

connectorx is ten times faster, so it is the reader. Its own limits are worked around
in the SELECT list (:func:`arrow_column`), so each column arrives as the value the
RECORD path sends (the stream's JSON schema decides the Arrow type):

- decimals (and unsigned bigints) are selected as text (``CAST(... AS CHAR)``): its
  Rust decimal holds 28 digits and panics on decimal(65,30); ``decimal(p,s)`` up to 38
  digits is then cast to Arrow ``decimal128(p,s)``, wider ones stay exact text;
- binary and blob as base64 text, bit(n) as its n binary digits, as the RECORD path;
- zero dates (``0000-00-00``, a zero month or day) are selected as NULL beside a check
  column holding their text, so the stream can warn naming the row or fail
  (``zero_dates``), as the RECORD path does; a TIME outside 00:00:00-23:59:59 likewise
  fails naming the row (connectorx would panic on either);
- timestamps are read in a UTC session (``SET time_zone='+00:00'`` on every
  connection) and typed UTC; tinyint(1) becomes boolean, FLOAT is selected as text and
  parsed as the double the RECORD path sends (PyMySQL parses MySQL's text, so 0.1
  stays 0.1, not float32's 0.10000000149); MySQL's binary JSON type is selected as its
  text, as PyMySQL reads it (MariaDB's JSON is text already).

A column of a type not listed here (spatial types, ...) makes the stream send files of
records instead, with the column named in the log (:func:`unsupported_column`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
import sqlalchemy.types as sat
from sqlalchemy.dialects import mysql

from dativo.errors import InternalError

LOGGER = logging.getLogger(__name__)
SESSION = "SET time_zone='+00:00'"
CHECK_PREFIX = "_dativo_check_"
_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")
READABLE = (sat.Integer, sat.Numeric, sat.Date, sat.DateTime, sat.Time, sat.String,
            sat._Binary, sat.JSON, sat.Boolean, mysql.BIT, mysql.YEAR, sat.Enum)


class ReadFailed(InternalError):
    """connectorx refused or broke off the query (its error or panic text); the stream
    turns it into its read error naming the table."""


class UnfitValue(InternalError):
    """A value the RECORD path would refuse: a zero date under ``zero_dates: fail``, or
    a TIME that is no time of day. ``row`` is its one-row batch (the key is read there);
    ``problem`` follows the column name as on the RECORD path (``" is ..."``, ``": ..."``)."""

    def __init__(self, column: str, problem: str, row: pa.RecordBatch) -> None:
        super().__init__(f"column {column}{problem}")
        self.column, self.problem, self.row = column, problem, row


@dataclass(frozen=True)
class Check:
    """A check column: NULL, or the MySQL text of a value the RECORD path cannot send."""

    column: str
    kind: str  # "zero date" or "time"


def unsupported_column(columns: Sequence[sa.Column[Any]]) -> str | None:
    """Why the fast path cannot read these columns, naming the first it cannot."""
    for column in columns:
        if not isinstance(column.type, READABLE):
            known = ("a type SQLAlchemy does not know" if isinstance(column.type, sat.NullType)
                     else f"type {column.type!r}")
            return f"column {column.name} has {known}, which the columnar reader does not read"
    return None


def arrow_column(column: sa.Column[Any], prop: Mapping[str, Any]
                 ) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any] | None]:
    """The select-list expression whose connectorx value is the RECORD path's value,
    and the check column it needs (zero dates, times of day), if any."""
    kind = column.type
    sql_type = str(prop.get("x-sql-datatype", ""))
    if isinstance(kind, sat.Date | sat.DateTime):
        bad = sa.or_(sa.func.year(column) == 0, sa.func.month(column) == 0,
                     sa.func.dayofmonth(column) == 0)
        return _unless(bad, column)
    if isinstance(kind, sat.Time):
        return _unless(sa.or_(column < "00:00:00", column >= "24:00:00"), column)
    if sql_type.startswith("decimal") or isinstance(kind, mysql.FLOAT | sat.JSON):
        return sa.cast(column, sa.CHAR).label(column.name), None
    if prop.get("contentEncoding") == "base64":
        encoded = sa.func.replace(sa.func.to_base64(column), "\n", "")
        return encoded.label(column.name), None
    if sql_type.startswith("bit("):
        digits = sa.func.lpad(sa.func.bin(column.op("+")(0)), int(sql_type[4:-1]), "0")
        return digits.label(column.name), None
    return column, None


def _unless(bad: sa.ColumnElement[bool], column: sa.Column[Any]
            ) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    value = sa.case((bad, sa.null()), else_=column).label(column.name)
    return value, sa.case((bad, sa.cast(column, sa.CHAR)), else_=sa.null())


def arrow_type(prop: Mapping[str, Any]) -> pa.DataType:
    """The Arrow type of a column with JSON schema ``prop``: the RECORD path's value."""
    declared = prop.get("type", [])
    kinds = [t for t in ([declared] if isinstance(declared, str) else declared) if t != "null"]
    kind, fmt = (kinds[0] if kinds else "string"), prop.get("format")
    decimal = _DECIMAL.fullmatch(str(prop.get("x-sql-datatype", "")))
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
        zone = "UTC" if prop.get("x-sql-datatype") == "timestamp with time zone" else None
        return pa.timestamp("us", tz=zone)
    if fmt == "time":
        return pa.time64("us")
    return pa.string()


class ArrowTableReader:
    """Runs SELECTs through connectorx and yields their rows as typed record batches."""

    def __init__(self, url: str, properties: Mapping[str, Mapping[str, Any]],
                 checks: Sequence[Check], batch_rows: int,
                 on_zero_date: Callable[[str, str, pa.RecordBatch], None] | None) -> None:
        """``url``: connectorx's ``mysql://`` URL (:func:`connectorx_url`).
        ``checks``: the check columns, in the order they follow the table's columns.
        ``on_zero_date(column, text, row)``: told of each zero date (sent as NULL); None
        fails the read on the first (``zero_dates: fail``)."""
        self._url, self._properties, self._checks = url, properties, checks
        self._batch_rows, self._on_zero_date = batch_rows, on_zero_date

    def batches(self, queries: Sequence[str]) -> Iterator[pa.RecordBatch]:
        """The rows of ``queries`` (literal SQL), read in parallel when there are several
        (one connection each; batches of different queries interleave).

        Raises:
            ReadFailed: MySQL refused or broke off a query, or connectorx failed.
            UnfitValue: A zero date (``zero_dates: fail``) or a TIME beyond a day.
        """
        import connectorx

        try:
            reader = connectorx.read_sql(
                self._url, list(queries) if len(queries) > 1 else queries[0],
                return_type="arrow_stream", batch_size=self._batch_rows,
                pre_execution_query=SESSION)
            schema: pa.Schema | None = None
            for batch in reader:
                schema = schema or self._schema(batch.schema)
                yield self._conform(batch, schema)
        except (RuntimeError, pa.ArrowException) as exc:
            raise ReadFailed(self._said(exc)) from None
        except BaseException as exc:  # a Rust panic is pyo3's PanicException
            if type(exc).__name__ != "PanicException":
                raise
            raise ReadFailed(f"connectorx failed: {self._said(exc)}") from None

    def _said(self, exc: BaseException) -> str:
        """The error's first line, never the password (connectorx may quote its URL)."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        password = sa.engine.make_url(self._url).password
        return text.replace(str(password), "***") if password else text

    def _schema(self, source: pa.Schema) -> pa.Schema:
        fields = source.names[:len(source) - len(self._checks)]
        return pa.schema([pa.field(name, arrow_type(self._properties.get(name, {})))
                          for name in fields])

    def _conform(self, batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
        if self._checks:
            self._check(batch, len(schema))
        columns = []
        for index, field in enumerate(schema):
            column = batch.column(index)
            if column.type != field.type:
                column = column.cast(field.type)
            columns.append(column)
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    def _check(self, batch: pa.RecordBatch, first: int) -> None:
        """Each non-NULL check value: a zero date (warned of, or failed) or a time that
        is no time of day (failed), as the RECORD path's converters do."""
        for offset, check in enumerate(self._checks):
            texts = batch.column(first + offset)
            if texts.null_count == len(texts):
                continue
            for row in pc.indices_nonzero(pc.is_valid(texts)).to_pylist():
                text, one = texts[row].as_py(), batch.slice(row, 1)
                if check.kind == "time":
                    raise UnfitValue(check.column, _time_problem(text), one)
                if self._on_zero_date is None:
                    raise UnfitValue(check.column, f" is the zero date {text}; set "
                                     "zero_dates: null to send it as null", one)
                self._on_zero_date(check.column, text, one)


def _time_problem(text: str) -> str:
    """The RECORD path's words for a TIME that is a duration (types._time)."""
    shown = text.rstrip("0").rstrip(".") if "." in text else text
    return (f": the time {shown} is not a time of day (00:00:00 to 23:59:59); to load "
            "durations, read the table through a view with TIME_TO_SEC(column) and select "
            "the view")


def connectorx_url(url: sa.engine.URL, database: str | None) -> str:
    """connectorx's URL for the tap's connection: ``mysql://`` with the password
    percent-encoded, without the tap's query (connectorx refuses ``charset``; it always
    speaks utf8mb4), and over TCP as PyMySQL connects: by default its driver switches to
    the server's Unix socket when it runs on the same machine, where the user would be
    ``'user'@'localhost'``, another account with other grants."""
    return url.set(drivername="mysql", query={"prefer_socket": "false"},
                   database=url.database or database).render_as_string(hide_password=False)


def literal_sql(pymysql_connection: Any, sql: str, params: Sequence[Any] | Mapping[str, Any]
                ) -> str:
    """``sql`` with its parameters rendered as PyMySQL would send them (so the bookmark
    compares exactly as on the RECORD path)."""
    with pymysql_connection.cursor() as cursor:
        return str(cursor.mogrify(sql, params))
