"""One stream per table or view, FULL_TABLE or INCREMENTAL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pymysql
import sqlalchemy as sa
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.sql import SQLStream

from dativo.batch_files import BatchFilesStream
from dativo.errors import CodecError, DativoError
from tap_dativo_mysql.client import MySQLConnector, select_rows
from tap_dativo_mysql.types import Converter, ZeroDate, converter_for

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context
    from sqlalchemy.sql import selectable


class MySQLReadError(DativoError):
    """Raised when MySQL refuses or breaks off a query (rights, a dropped table, a lost
    connection)."""


class MySQLStream(BatchFilesStream, SQLStream):
    """Rows of one table, read through an unbuffered cursor.

    INCREMENTAL reads ``WHERE key >= bookmark ORDER BY key, <primary key>``: ``>=``
    re-reads the rows that share the last bookmark value (a row committed later with
    that same value is therefore never skipped), and the primary key makes the order
    stable, so an interrupted sync resumes from its last STATE (``is_sorted``). MySQL
    sorts NULL first in ascending order, as singer-sdk's NULLS FIRST asks.
    """

    connector_class = MySQLConnector
    # Values are made JSON-ready in ``row_to_record``; singer-sdk's conformance would
    # walk every value again.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap, catalog_entry: dict,
                 connector: MySQLConnector | None = None) -> None:
        super().__init__(tap, catalog_entry, connector)
        self._converters: dict[tuple[str, ...], list[tuple[str, Converter]]] = {}

    @property
    def mysql_connector(self) -> MySQLConnector:
        connector = self.connector
        assert isinstance(connector, MySQLConnector)
        return connector

    @property
    def fetch_rows(self) -> int:
        return int(self.config["fetch_rows"])

    def apply_query_filters(self, query: selectable.Select, table: sa.Table, *,
                            context: Context | None = None) -> selectable.Select:
        """singer-sdk's ``>=`` bookmark filter, plus the primary key as a tie-breaker."""
        query = super().apply_query_filters(query, table, context=context)
        if self.replication_key:
            keys = [table.columns[k] for k in self.primary_keys if k in table.columns]
            query = query.order_by(*keys)
        return query

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Rows of the table, all of them or from the bookmark on."""
        with self._source_errors(), self.mysql_connector.connect() as conn:
            names, rows = select_rows(conn, self.build_query(context=context),
                                      self.fetch_rows)
            with contextlib.closing(rows):  # before the connection goes
                for row in rows:
                    yield self.row_to_record(names, row)

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

    def _converters_for(self, names: Sequence[str]) -> list[tuple[str, Converter]]:
        key = tuple(names)
        found = self._converters.get(key)
        if found is None:
            props = self.schema.get("properties", {})
            zero_dates = self.config.get("zero_dates") or "null"
            found = [(name, convert) for name in names
                     if (convert := converter_for(props.get(name, {}), zero_dates))]
            self._converters[key] = found
        return found

    def _key(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: row.get(k) for k in self.primary_keys}

    def _bad_value(self, row: Mapping[str, Any], message: str) -> CodecError:
        return CodecError(f"stream '{self.name}', row {self._key(row) or dict(row)}: {message}")

    @contextlib.contextmanager
    def _source_errors(self) -> Iterator[None]:
        """Driver errors as one line naming the stream and table."""
        try:
            yield
        except sa.exc.NoSuchTableError:
            raise MySQLReadError(f"stream '{self.name}': reading {self.fully_qualified_name} "
                              "failed: the table no longer exists; run --discover again (or "
                              "deselect the stream)") from None
        except (sa.exc.DBAPIError, pymysql.Error) as exc:
            cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc
            args = getattr(cause, "args", ())
            reason = str(args[-1] if args else cause).strip().splitlines() or [
                type(cause).__name__]
            raise MySQLReadError(f"stream '{self.name}': reading {self.fully_qualified_name} "
                              f"failed: {reason[0]}; rerun when the server is back: it "
                              "starts again from the last STATE, so no row is lost") from None
