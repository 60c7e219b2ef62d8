"""One stream per table or view, FULL_TABLE or INCREMENTAL, read through the Snowflake
connector; with ``batch_config`` Parquet, its Arrow result batches
(``fetch_arrow_batches``) go straight to Parquet BATCH files (the fast path).

INCREMENTAL reads ``WHERE key >= bookmark ORDER BY key, <primary key>``, as the other
SQL taps (:class:`dativo.sql_taps.SQLTableStream`): ``>=`` re-reads the rows that share
the last bookmark value, and the primary key makes the order stable, so an interrupted
sync resumes from its last STATE.

Column names are read again from INFORMATION_SCHEMA at each sync (one query), so the
stream's lower-case names (:func:`~tap_dativo_snowflake.types.property_name`) are
selected by their exact Snowflake names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from snowflake.connector import errors as sf_errors

from dativo.errors import CodecError
from dativo.sql_fast_path import ArrowBatchesStream, row_key
from tap_dativo_snowflake.client import SnowflakeConnector, SnowflakeReadError, read_errors
from tap_dativo_snowflake.types import (
    Column,
    Converter,
    arrow_type,
    converter_for,
    quoted,
    select_expression,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from singer_sdk.helpers.types import Context


class SnowflakeStream(ArrowBatchesStream):
    """Rows of one table or view of ``database``; the fast path's choice, Parquet files,
    records metric and per-file bookmarks are :class:`ArrowBatchesStream`'s."""

    connector_class = SnowflakeConnector
    read_error = SnowflakeReadError
    fast_path_reader = "Arrow result batches (fetch_arrow_batches)"

    @property
    def snowflake(self) -> SnowflakeConnector:
        connector = self.connector
        assert isinstance(connector, SnowflakeConnector)
        return connector

    @property
    def source_schema(self) -> str:
        return str(self.metadata.root.schema_name)

    @property
    def source_table(self) -> str:
        return str(self._singer_catalog_entry.table)

    @property
    def qualified(self) -> str:
        """The table's exact name, for messages and SQL."""
        return ".".join(quoted(part) for part in (self.snowflake.database,
                                                   self.source_schema, self.source_table))

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Rows of the table, all of them or from the bookmark on."""
        with self.snowflake.connect() as conn, self._errors():
            names, _columns, cursor = self._execute(conn, context)
            converters = [(index, convert) for index, name in enumerate(names)
                          if (convert := converter_for(self.schema["properties"][name]))]
            while rows := cursor.fetchmany(self.fetch_rows):
                for row in rows:
                    yield self._record(names, row, converters)

    def _record(self, names: Sequence[str], row: Sequence[Any],
                converters: Sequence[tuple[int, Converter]]) -> dict[str, Any]:
        values = list(row)
        for index, convert in converters:
            if values[index] is not None:
                try:
                    values[index] = convert(values[index])
                except ValueError as exc:  # an integer beyond 64 bits, bad JSON
                    record = dict(zip(names, row, strict=True))
                    raise self._bad_value(record, f"column {names[index]}: {exc}") from None
        return dict(zip(names, values, strict=True))

    def _execute(self, conn: Any, context: Context | None
                 ) -> tuple[list[str], list[Column], Any]:
        """The stream's SELECT, run; its property names, columns and cursor."""
        columns = self._columns(conn)
        names = list(columns)
        sql = (f"SELECT {', '.join(select_expression(columns[n]) for n in names)} "
               f"FROM {self.qualified}")
        params: dict[str, Any] = {}
        key = self.replication_key
        if key:
            start = self.get_starting_replication_key_value(context)
            if start is not None:
                # the state keeps ISO text for dates and times: Snowflake casts it to
                # the column's type
                sql += f" WHERE {quoted(columns[key].source)} >= %(start)s"
                params["start"] = start
            order = [key, *(k for k in self.primary_keys if k != key)]
            sql += " ORDER BY " + ", ".join(quoted(columns[k].source) for k in order)
        cursor = conn.cursor()
        cursor.execute(sql, params)
        return names, [columns[n] for n in names], cursor

    def _columns(self, conn: Any) -> dict[str, Column]:
        """The selected columns by property name, as Snowflake names them now.

        Raises:
            SnowflakeReadError: The table or a selected column no longer exists.
        """
        found = self.snowflake.table_columns(conn, self.source_schema, self.source_table)
        by_name = {c.name: c for c in found.get((self.source_schema, self.source_table), [])}
        if not by_name:
            raise SnowflakeReadError(f"stream '{self.name}': table {self.qualified} no longer "
                                     "exists; run --discover again (or deselect the stream)")
        wanted = [name for name in self.get_selected_schema().get("properties", {})]
        gone = [name for name in wanted if name not in by_name]
        if gone:
            raise SnowflakeReadError(f"stream '{self.name}': columns {gone} of "
                                     f"{self.qualified} no longer exist; run --discover again")
        return {name: by_name[name] for name in wanted}

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        with read_errors(f"stream '{self.name}': reading {self.qualified}"):
            yield

    def _source_errors(self) -> contextlib.AbstractContextManager[None]:
        """Snowflake's errors as one line: refusals exit 2, the unreachable 75."""
        return self._errors()

    def converter(self, prop: dict[str, Any]) -> Converter | None:
        return converter_for(prop)

    def driver_errors(self) -> tuple[type[Exception], ...]:
        return (sf_errors.Error,)

    def arrow_record_batches(self, context: Context | None) -> Iterator[pa.RecordBatch]:
        """The query's result as the connector's Arrow batches, typed as the RECORD
        path's values; the session closes when the run stops reading."""
        with self.snowflake.connect() as conn:
            names, _columns, cursor = self._execute(conn, context)
            yield from self._conformed(names, cursor.fetch_arrow_batches())

    def _conformed(self, names: Sequence[str], tables: Iterable[pa.Table]
                   ) -> Iterator[pa.RecordBatch]:
        """Each result batch with the stream's names and the Arrow types whose values
        equal the RECORD path's (:func:`~tap_dativo_snowflake.types.arrow_type`)."""
        import pyarrow as pa

        properties = self.schema["properties"]
        schema = pa.schema([pa.field(n, arrow_type(properties[n])) for n in names])
        for table in tables:
            for batch in table.to_batches():
                batch = batch.rename_columns(list(names))
                if batch.num_rows:
                    yield pa.RecordBatch.from_arrays(
                        [self._column(batch, index, field) for index, field in
                         enumerate(schema)], schema=schema)

    def _column(self, batch: pa.RecordBatch, index: int, field: pa.Field) -> pa.Array:
        """One result column as ``field``'s type.

        Raises:
            CodecError: A value the type cannot hold (a NUMBER(p,0) beyond 64 bits),
                naming the row's key.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        column = batch.column(index)
        if isinstance(field.type, pa.JsonType):
            storage = column if pa.types.is_string(column.type) else column.cast(pa.string())
            return pa.ExtensionArray.from_storage(field.type, storage)
        if pa.types.is_floating(field.type):
            column = column.cast(field.type)
            finite = pc.is_finite(column)
            if pc.all(finite).as_py() is False:  # NaN and ±Infinity: null, as in JSON
                column = pc.if_else(finite, column, pa.scalar(None, field.type))
            return column
        if column.type == field.type:
            return column
        # timestamps and times arrive in nanoseconds: the RECORD path's Python values
        # hold microseconds, so the extra digits are cut alike
        truncating = pa.types.is_timestamp(field.type) or pa.types.is_time(field.type)
        try:
            return pc.cast(column, field.type, safe=not truncating)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise self._unfit(batch, index, field, exc) from None

    def _unfit(self, batch: pa.RecordBatch, index: int, field: pa.Field,
               exc: Exception) -> CodecError:
        """The error naming the first row whose value ``field`` cannot hold."""
        import pyarrow as pa

        for row in range(batch.num_rows):
            one = batch.slice(row, 1)
            try:
                one.column(index).cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return CodecError(f"stream '{self.name}', row {row_key(one, self.primary_keys)}"
                                  f": column {field.name}: {one.column(index)[0]} does not "
                                  f"fit {field.type}")
        return CodecError(f"stream '{self.name}': column {field.name}: {exc}")
