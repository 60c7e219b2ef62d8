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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.sql import SQLStream

from dativo.batch_files import BatchFilesStream
from dativo.errors import CodecError
from dativo.sql_fast_path import row_key
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
    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig
    from singer_sdk.helpers.types import Context

    from dativo.batch_files import BatchFileWriter


class SnowflakeStream(BatchFilesStream, SQLStream):
    """Rows of one table or view of ``database``."""

    connector_class = SnowflakeConnector
    # Values are made JSON-ready in ``_record``; singer-sdk's conformance would walk
    # every value again.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

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

    @property
    def fetch_rows(self) -> int:
        return int(self.config.get("fetch_rows") or 10_000)

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

    def _bad_value(self, row: Mapping[str, Any], message: str) -> CodecError:
        key = {k: row.get(k) for k in self.primary_keys}
        return CodecError(f"stream '{self.name}', row {key or dict(row)}: {message}")

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

    def get_batches(self, batch_config: BatchConfig, context: Context | None = None
                    ) -> Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        """Parquet BATCH files of the connector's Arrow batches; otherwise files of the
        records the RECORD path would send, with the reason logged."""
        why_not = ("the fast path writes Parquet" if batch_config.encoding.format != "parquet"
                   else None if self.unmapped() else "a stream map changes the records")
        if why_not:
            self.logger.info("stream '%s': BATCH files of records (%s)", self.name, why_not)
            yield from super().get_batches(batch_config, context)
            return
        self.logger.info("stream '%s': reading Arrow result batches (fetch_arrow_batches) "
                         "into Parquet BATCH files of %d rows", self.name,
                         batch_config.batch_size)
        yield from self._arrow_batches(self.batch_writer(batch_config), context)

    def _arrow_batches(self, writer: BatchFileWriter, context: Context | None
                       ) -> Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        """As :class:`dativo.sql_fast_path.ArrowBatchesStream`: the bookmark is taken
        from the last row of each file, so the STATE singer-sdk writes after a BATCH
        message covers only rows already in a file."""
        # Sets the bookmark that the query starts from, as _sync_records does.
        self._write_starting_replication_value(context)
        key = self.replication_key
        convert = converter_for(self.schema["properties"].get(key or "", {})) if key else None
        with self.snowflake.connect() as conn, self._errors(), \
                self.get_record_counter() as counter:
            names, _columns, cursor = self._execute(conn, context)
            batches = self._conformed(names, cursor.fetch_arrow_batches())
            for encoding, manifest, written in writer.arrow_batches(batches):
                counter.increment(written.rows)
                if key:
                    value = written.last_row.column(key)[0].as_py()
                    bookmark = convert(value) if convert and value is not None else value
                    self._increment_stream_state({key: bookmark}, context=context)
                yield encoding, manifest
        self._finalize_state(self.stream_state)

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
