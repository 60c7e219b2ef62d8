"""One stream per table or view, FULL_TABLE or INCREMENTAL; with ``batch_config``
Parquet, read column-wise through connectorx (``fast_path.py``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import pymysql

from dativo.errors import DativoError
from tap_dativo_mysql.client import MySQLConnector, select_rows
from tap_dativo_mysql.fast_path import MySQLFastPath
from tap_dativo_mysql.types import Converter, ZeroDate, converter_for


class MySQLReadError(DativoError):
    """Raised when MySQL refuses or breaks off a query (rights, a dropped table, a lost
    connection)."""


class MySQLStream(MySQLFastPath):
    """Rows of one table, read through an unbuffered cursor (:class:`SQLTableStream`
    orders INCREMENTAL reads). MySQL sorts NULL first in ascending order, as
    singer-sdk's NULLS FIRST asks.
    """

    connector_class = MySQLConnector
    select_rows = staticmethod(select_rows)
    read_error = MySQLReadError

    def row_to_record(self, names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        """PyMySQL values to JSON-ready ones, with each column's converter (types.py).

        Raises:
            CodecError: A value no JSON type holds exactly (a zero date with
                ``zero_dates: fail``, a time beyond 24 hours); the message names the
                stream, column and the row's primary key.
        """
        record = dict(zip(names, row, strict=True))
        for name, convert in self._converters_for(names):
            value = record[name]
            if value is None:
                continue
            try:
                record[name] = convert(value)
            except ZeroDate:
                raise self._bad_value(record, f"column {name} is the zero date {value}; "
                                      "set zero_dates: null to send it as null") from None
            except ValueError as exc:
                raise self._bad_value(record, f"column {name}: {exc}") from None
            if record[name] is None:
                self.logger.warning("stream '%s', row %s: column %s is the zero date %s; "
                                    "sent as null (zero_dates: null)", self.name,
                                    self._key(record), name, value)
        return record

    def converter(self, prop: dict[str, Any]) -> Converter | None:
        return converter_for(prop, self.config.get("zero_dates") or "null")

    def driver_errors(self) -> tuple[type[Exception], ...]:
        """PyMySQL's; the fast path's only once it has loaded (the optional ``parquet``
        extra)."""
        reader = sys.modules.get("tap_dativo_mysql.arrow_reader")
        return (pymysql.Error, *((reader.ReadFailed,) if reader else ()))

    def driver_reason(self, cause: BaseException) -> str:
        """PyMySQL's message is its last argument (the first is the error number)."""
        args = getattr(cause, "args", ())
        return str(args[-1] if args else cause)
