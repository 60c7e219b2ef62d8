"""Parquet BATCH files: checked as Arrow, never decoded to Python objects.

Columns are cast to the contract's strict Arrow types and checked by the same DuckDB
rule query as a strictly-read RECORD batch. A column that cannot be cast without loss
(say text in an integer column) sends that file through the jsonl path instead:
DuckDB writes it as RECORD-shaped JSON, so every row gets exactly the reasons a
RECORD with those values would.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from dativo.contracts import CompiledContract, FieldSpec
from target_dativo_iceberg.batch_jsonl import FileSpooledBatch, split_checked
from target_dativo_iceberg.batch_roots import BatchSource
from target_dativo_iceberg.batch_sources import (
    BatchMessage,
    TapFileBatch,
    open_native,
    unreadable,
)
from target_dativo_iceberg.batches import CheckedBatch, RejectedRecord, check_pretyped

LOGGER = logging.getLogger(__name__)
ROW = "__dativo_row"  # DuckDB's alias for a whole row


def parquet_batches(message: BatchMessage, source: BatchSource, spool_dir: Path,
                    batch_size_rows: int) -> Iterator[ParquetFileBatch]:
    """One batch per run of row groups holding up to ``batch_size_rows`` rows.

    Only the footer is read here (so a missing or corrupt file fails at its BATCH
    line); the data is read on the check thread.
    """
    uri = source.uri
    try:
        with open_native(source) as handle:
            metadata = pq.ParquetFile(handle).metadata
    except (OSError, pa.ArrowException, ValueError) as exc:  # RefusedFile included
        raise unreadable(message.stream, message.line, uri, exc) from exc

    def batch(groups: list[int], first_row: int, rows: int) -> ParquetFileBatch:
        return ParquetFileBatch(message.stream, groups, spool_dir, rows, uri=uri,
                                batch_line=message.line, first_row=first_row,
                                version=message.version, source=source)

    groups: list[int] = []
    rows = first_row = 0
    for index in range(metadata.num_row_groups):
        group_rows = metadata.row_group(index).num_rows
        if groups and rows + group_rows > batch_size_rows:
            yield batch(groups, first_row, rows)
            groups, first_row, rows = [], first_row + rows, 0
        groups.append(index)
        rows += group_rows
    if rows:
        yield batch(groups, first_row, rows)


@dataclass
class ParquetFileBatch(TapFileBatch):
    """Row groups of one Parquet BATCH file."""

    stream: str
    row_groups: list[int]
    spool_dir: Path
    rows: int = 0

    def check(self, con: duckdb.DuckDBPyConnection, compiled: CompiledContract,
              schema: pa.Schema, *, read_versions: bool = False) -> CheckedBatch:
        """Cast to the contract's strict types and run the rule query; a lossy column
        (or a contract the strict reader cannot express) goes through JSON instead.
        Rows carry the BATCH message's ``version`` when it has one (singer-sdk sends
        none: the stream's activated version then applies).

        Raises:
            CodecError: The file cannot be read; names the BATCH line and the file.
        """
        try:
            with open_native(self.source) as handle:
                table = pq.ParquetFile(handle).read_row_groups(self.row_groups)
        except (OSError, pa.ArrowException, ValueError) as exc:  # RefusedFile included
            raise unreadable(self.stream, self.batch_line, self.uri, exc) from exc
        records = _strict_records(table, compiled)
        if records is None:
            return self._check_as_json(con, compiled, schema, table, read_versions)
        checked = check_pretyped(con, compiled, records)
        return split_checked(checked, schema, functools.partial(self._rejected_rows, con, table),
                             read_versions, self.version)

    def _rejected_rows(self, con: duckdb.DuckDBPyConnection, table: pa.Table, rows: list[int],
                       reasons: list[list[dict[str, str]]]) -> list[RejectedRecord]:
        """The (few) rejected rows as JSON, via DuckDB: no Python object per value."""
        self.log_rejected(self.stream, rows)
        texts = _rows_as_json(con, table.take(rows))
        return [RejectedRecord(self.batch_line, text, row_reasons)
                for text, row_reasons in zip(texts, reasons, strict=True)]

    def _check_as_json(self, con: duckdb.DuckDBPyConnection, compiled: CompiledContract,
                       schema: pa.Schema, table: pa.Table,
                       read_versions: bool) -> CheckedBatch:
        """Write the rows as RECORD-shaped JSON (DuckDB, vectorised) and check that."""
        LOGGER.debug("Stream '%s': BATCH file %s is not strictly typed, checking as JSON",
                      self.stream, self.uri)
        fd, path = tempfile.mkstemp(prefix="batch-", suffix=".ndjson", dir=self.spool_dir)
        os.close(fd)
        con.register("__dativo_parquet", _decimals_as_text(table))
        try:
            # The alias is one no column is named: a column ``t`` would win over ``AS t``.
            con.execute(f"COPY (SELECT {ROW} AS record FROM __dativo_parquet AS {ROW}) TO "
                        f"'{path.replace(chr(39), chr(39) * 2)}' (FORMAT JSON)")
        finally:
            con.unregister("__dativo_parquet")
        spooled = FileSpooledBatch(self.stream, path, rows=table.num_rows, uri=self.uri,
                                   batch_line=self.batch_line, first_row=self.first_row,
                                   version=self.version)
        spooled.run_rows.append(0)
        spooled.run_lines.append(self.batch_line)
        try:
            return spooled.check(con, compiled, schema, read_versions=read_versions)
        finally:
            spooled.discard()


def _decimals_as_text(table: pa.Table) -> pa.Table:
    """Decimal columns as exact text: as JSON numbers, wide ones would read back
    through a double (and be rejected by the ``precision`` rule)."""
    for index, column in enumerate(table.schema):
        if pa.types.is_decimal(column.type):
            table = table.set_column(index, column.name, table.column(index).cast(pa.string()))
    return table


def _rows_as_json(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> list[str]:
    """The rejected rows (few) as JSON objects, for the dead-letter table."""
    con.register("__dativo_rejected", rows)
    try:
        result = con.execute(f"SELECT to_json({ROW})::VARCHAR FROM __dativo_rejected AS {ROW}")
        return [text for (text,) in result.fetchall()]
    finally:
        con.unregister("__dativo_rejected")


def _strict_records(table: pa.Table, compiled: CompiledContract) -> pa.Table | None:
    """``table`` as one ``record`` struct column of the contract's strict types, or
    ``None`` when a column cannot be cast without loss (or, under ``freeze``, the
    file has columns the contract lacks), so the JSON path must decide per row."""
    strict = compiled.columnar_schema
    if strict is None or compiled.pretyped_query is None:
        return None
    specs = {spec.name: spec for spec in compiled.contract.fields}
    if compiled.unknown_columns_query is not None and set(table.column_names) - set(specs):
        return None
    arrays, fields = [], []
    for target in strict.field("record").type:
        if target.name in table.column_names:
            column = table.column(target.name)
            if specs[target.name].kind == "json":
                if not isinstance(column.type, pa.JsonType):
                    return None  # a string could be JSON text or a JSON string value
                column = pa.chunked_array([c.storage for c in column.chunks], target.type)
            elif column.type != target.type:
                if not _castable(column.type, target.type, specs[target.name]):
                    return None
                try:
                    column = column.cast(target.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                    return None
        else:
            column = pa.nulls(table.num_rows, target.type)
        arrays.append(column.combine_chunks() if isinstance(column, pa.ChunkedArray)
                      else column)
        fields.append(pa.field(target.name, target.type))
    return pa.table({"record": pa.StructArray.from_arrays(arrays, fields=fields)})


def _castable(source: pa.DataType, target: pa.DataType, spec: FieldSpec) -> bool:
    """Whether a safe Arrow cast gives the value the JSON path would give: same type
    family only (a float 1.0 for an integer is a type error there, not 1)."""
    types = pa.types
    if types.is_null(source):  # a column with no value in this file
        return True
    if types.is_dictionary(source):  # e.g. categoricals written by pandas
        return _castable(source.value_type, target, spec)
    if spec.kind in ("date", "time", "timestamp"):  # checked as text in SQL
        return (types.is_string(source) or types.is_large_string(source)
                or (spec.kind == "date" and types.is_date(source))
                or (spec.kind == "time" and types.is_time(source))
                or (spec.kind == "timestamp" and types.is_timestamp(source)))
    if types.is_integer(target):
        return types.is_integer(source)
    if types.is_floating(target):
        return types.is_integer(source) or types.is_floating(source)
    if types.is_decimal(target):
        return types.is_decimal(source) or types.is_integer(source)
    if types.is_string(target):
        return types.is_large_string(source) or types.is_string_view(source)
    if types.is_timestamp(target):
        return types.is_timestamp(source) or types.is_string(source) or \
            types.is_large_string(source)
    return (types.is_struct(target) and types.is_struct(source)) or (
        types.is_list(target) and (types.is_list(source) or types.is_large_list(source)))
