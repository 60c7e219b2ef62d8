"""One stream per table or view, FULL_TABLE or INCREMENTAL (LOG_BASED: log_based.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import psycopg2
import sqlalchemy as sa

from dativo.errors import ConfigError, DativoError
from dativo.sql_fast_path import ArrowBatchesStream, row_key
from tap_dativo_postgres.client import PostgresConnector, select_rows
from tap_dativo_postgres.types import (
    NON_FINITE_ADVICE,
    Converter,
    NonFiniteDecimal,
    converter_for,
    is_decimal_text,
    needs_text,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from singer_sdk import Tap
    from singer_sdk.helpers._batch import BatchConfig
    from singer_sdk.helpers.types import Context
    from sqlalchemy.sql import selectable

    from tap_dativo_postgres.arrow_reader import ArrowTableReader

ColumnSelector = Callable[[sa.ColumnElement[Any]], sa.ColumnElement[Any]]


class SourceError(DativoError):
    """Raised when PostgreSQL refuses or breaks off a query (rights, a dropped table,
    a lost connection)."""


class PostgresStream(ArrowBatchesStream):
    """Rows of one table, read through a server-side cursor.

    INCREMENTAL reads order by the key NULLS FIRST, then the primary key
    (:class:`SQLTableStream`). The price of its ``>=`` is that the last bookmark's rows
    are sent again on every run. singer-sdk's conformance (off, see the base class)
    would also turn JSON scalars in json columns into strings.
    """

    connector_class = PostgresConnector
    fast_path_reader = "ADBC (COPY binary)"
    supports_nulls_first = True
    select_rows = staticmethod(select_rows)
    read_error = SourceError
    rerun_note = (" (an append-only target loads rows it committed after that STATE "
                  "again, see docs/tap-postgres.md)")

    def __init__(self, tap: Tap, catalog_entry: dict,
                 connector: PostgresConnector | None = None) -> None:
        super().__init__(tap, catalog_entry, connector)
        props = self.schema.get("properties", {})
        self._decimal_text = frozenset(n for n, p in props.items() if is_decimal_text(p))

    @property
    def pg_connector(self) -> PostgresConnector:
        connector = self.connector
        assert isinstance(connector, PostgresConnector)
        return connector

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Rows of the table, all of them or from the bookmark on."""
        self._check_replication_key()
        yield from super().get_records(context)

    def row_to_record(self, names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        """Driver values to JSON-ready ones, with each column's converter (types.py).

        Raises:
            CodecError: A numeric is NaN or infinite; the message names the stream,
                column and the row's primary key.
        """
        record = dict(zip(names, row, strict=True))
        name = ""
        try:
            for name, convert in self._converters_for(names):
                value = record[name]
                if value is not None:
                    record[name] = convert(value)
        except NonFiniteDecimal as exc:
            raise self._bad_value(record, f"column {name} is {exc}, {NON_FINITE_ADVICE}"
                                  ) from None
        return record

    def converter(self, prop: dict[str, Any]) -> Converter | None:
        return converter_for(prop)

    def build_query(self, *, context: Context | None = None,
                    select_as: ColumnSelector | None = None) -> selectable.Select:
        """singer-sdk's query, with each column selected as ``select_as`` says: by
        default, types the driver would return as objects (ranges, inet, ...) as text
        (see ``types.needs_text``)."""
        selected = self.get_selected_schema()["properties"].keys()
        table = self.connector.get_table(full_table_name=self.fully_qualified_name,
                                         column_names=selected)
        columns = [(select_as or record_column)(c) for c in table.columns]
        query = self.apply_query_filters(sa.select(*columns), table, context=context)
        return self.apply_query_limit(query)

    # BATCH messages (singer-sdk's ``batch_config``): dativo.sql_fast_path

    def _no_fast_path(self, batch_config: BatchConfig) -> str | None:
        """Why the rows cannot go from ADBC straight to Parquet, if they cannot."""
        why_not = super()._no_fast_path(batch_config)
        if why_not:
            return why_not
        binary_arrays = [name for name, prop in self.schema.get("properties", {}).items()
                         if isinstance(prop.get("items"), dict)
                         and prop["items"].get("contentEncoding") == "base64"]
        if binary_arrays:
            return f"bytea[] column {binary_arrays[0]} is sent as base64 per element"
        return None

    def arrow_record_batches(self, context: Context | None) -> Iterator[pa.RecordBatch]:
        """The rows through ADBC (``arrow_reader.py``), as the RECORD path's values."""
        # The parquet extra (pyarrow, ADBC), checked with batch_config in tap.py.
        from tap_dativo_postgres.arrow_reader import ArrowTableReader, arrow_column, literal_sql

        with self.pg_connector.connect() as conn:
            compiled = self.build_query(context=context, select_as=arrow_column).compile(
                dialect=conn.dialect)
            sql = literal_sql(conn.connection.dbapi_connection, str(compiled), compiled.params)
        reader = ArrowTableReader(self.pg_connector.fresh_url(),
                                  self.schema.get("properties", {}))
        yield from self._checked(reader, sql)

    def _checked(self, reader: ArrowTableReader, sql: str) -> Iterator[pa.RecordBatch]:
        from tap_dativo_postgres.arrow_reader import UnfitValue

        try:
            yield from reader.batches(sql)
        except UnfitValue as exc:
            raise self._bad_value(row_key(exc.row, self.primary_keys),
                                  f"column {exc.column} {exc.problem}") from None

    def _check_replication_key(self) -> None:
        if self.replication_key in self._decimal_text:
            raise ConfigError(
                f"stream '{self.name}': replication key {self.replication_key} is a numeric "
                "sent as a decimal string, whose text order is not its numeric order; set "
                "use_singer_decimal: false, or pick another replication key")

    def driver_errors(self) -> tuple[type[Exception], ...]:
        """psycopg2's; ADBC's only once the fast path has loaded it (it is the optional
        ``parquet`` extra, and unloaded it raises nothing)."""
        adbc = sys.modules.get("adbc_driver_manager")
        return (psycopg2.Error, *((adbc.Error,) if adbc else ()))


def record_column(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The select-list expression for the RECORD path: see ``types.needs_text``."""
    return sa.cast(column, sa.Text).label(column.name) if needs_text(column.type) else column
