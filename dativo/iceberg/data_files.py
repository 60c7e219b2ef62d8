"""Parquet data files that span batches and roll over at the table's target size.

pyiceberg sizes files by *in-memory* Arrow bytes, one batch at a time, so a 200k-row
batch becomes a ~15 MB file and a large load leaves thousands of small files for
readers to open. Here each table (and partition) keeps one Parquet file open across
batches, appends every batch to it as a row group, and closes it once the bytes on
storage reach ``write.target-file-size-bytes``. Memory stays one batch: row groups are
written out as they come.

Rows in an open file are not committed, so the STATE covering them waits: the loader
asks :meth:`RollingDataFiles.oldest_open_drain` before emitting a STATE, and closes
files early when a STATE has waited too long (see ``max_state_lag_seconds``).

With many tables, open files are also capped (``max_open_files``): given an
:class:`~dativo.open_files.OpenFiles`, the least recently written file (of any table
sharing it) is closed early and handed to ``on_evicted`` to be committed.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
from pyiceberg.io import FileIO, OutputFile
from pyiceberg.io.fileformat import FileFormatFactory
from pyiceberg.io.pyarrow import (
    ParquetFormatWriter,
    _determine_partitions,
    _pyarrow_to_schema_without_ids,
    _to_requested_schema,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionKey
from pyiceberg.schema import Schema, sanitize_column_names, visit_with_partner
from pyiceberg.table import TableProperties, WriteTask
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.name_mapping import (
    MappedField,
    NameMapping,
    NameMappingAccessor,
    NameMappingProjectionVisitor,
)
from pyiceberg.typedef import Record
from pyiceberg.utils.properties import property_as_int

from dativo.open_files import OpenFiles

_PARQUET = FileFormatFactory.get(FileFormat.PARQUET)


class _SizedParquetWriter(ParquetFormatWriter):
    """pyiceberg's Parquet writer (field ids, column statistics), plus its size so far."""

    @property
    def bytes_written(self) -> int:
        return self._fos.tell() if self._fos is not None else 0


@dataclass
class _OpenFile:
    writer: _SizedParquetWriter
    output: OutputFile
    path: str
    partition_key: PartitionKey | None
    first_drain: int
    rows: int = 0


class RollingDataFiles:
    """One table's open data files (one per partition), each closed at the target size.

    Not thread-safe: the loader's commit thread owns it.
    """

    def __init__(self, metadata: TableMetadata, io: FileIO, open_files: OpenFiles | None = None,
                 on_evicted: Callable[[DataFile], None] | None = None) -> None:
        """``open_files``: the cap this table's open files count against; a file it
        closes early is passed to ``on_evicted`` (required with ``open_files``)."""
        if open_files is not None and on_evicted is None:
            raise ValueError("open_files needs on_evicted, or evicted files would be lost")
        self.metadata = metadata
        self.io = io
        self.target_bytes = property_as_int(
            metadata.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT) or 0
        schema = metadata.schema()
        self._file_schema = sanitize_column_names(schema)
        self._locations = load_location_provider(metadata.location, metadata.properties)
        self._write_uuid = uuid.uuid4()
        self._counter = itertools.count()
        self._open: dict[str, _OpenFile] = {}
        self._open_files = open_files
        self._task_schemas: dict[pa.Schema, Schema] = {}
        self._on_evicted = on_evicted

    def fits(self, metadata: TableMetadata) -> bool:
        """Whether files opened under this writer's schema and spec suit ``metadata``."""
        return (metadata.current_schema_id == self.metadata.current_schema_id
                and metadata.default_spec_id == self.metadata.default_spec_id)

    @property
    def has_open_files(self) -> bool:
        return bool(self._open)

    @property
    def open_rows(self) -> int:
        return sum(f.rows for f in self._open.values())

    def oldest_open_drain(self) -> int | None:
        """The earliest drain whose rows sit in a still-open file, if any."""
        return min((f.first_drain for f in self._open.values() if f.rows), default=None)

    def write(self, data: pa.Table, drain: int) -> list[DataFile]:
        """Append ``data`` (rows of drain number ``drain``); return the files it filled."""
        task_schema = self._task_schemas.get(data.schema)
        if task_schema is None:  # every batch of a stream has the same schema
            task_schema = self._task_schemas[data.schema] = task_schema_of(
                data.schema, self.metadata)
        closed = []
        for key, partition_key, rows in self._partitions(data):
            current = self._open.get(key)
            if current is None:
                current = self._start(key, partition_key, drain)
            elif self._open_files is not None:
                self._open_files.used((self, key))
            current.writer.write(pa.Table.from_batches(
                [_to_requested_schema(requested_schema=self._file_schema, file_schema=task_schema,
                                      batch=batch, include_field_ids=True, format_model=_PARQUET)
                 for batch in rows.to_batches()]))
            current.rows += rows.num_rows
            if current.writer.bytes_written >= self.target_bytes:
                closed.append(self._finish(key))
        return closed

    def close_all(self) -> list[DataFile]:
        return [self._finish(key) for key in list(self._open)]

    def _partitions(self, data: pa.Table) -> list[tuple[str, PartitionKey | None, pa.Table]]:
        spec = self.metadata.spec()
        if spec.is_unpartitioned():
            return [("", None, data)]
        return [(part.partition_key.to_path(), part.partition_key, part.arrow_table_partition)
                for part in _determine_partitions(spec, self.metadata.schema(), data)]

    def _start(self, key: str, partition_key: PartitionKey | None, drain: int) -> _OpenFile:
        task = WriteTask(write_uuid=self._write_uuid, task_id=next(self._counter),
                         record_batches=[], schema=self._file_schema)
        path = self._locations.new_data_location(
            data_file_name=task.generate_data_file_filename("parquet"),
            partition_key=partition_key)
        output = self.io.new_output(path)
        writer = _SizedParquetWriter(output, self._file_schema, self.metadata.properties)
        opened = self._open[key] = _OpenFile(writer, output, path, partition_key, drain)
        if self._open_files is not None:
            self._open_files.opened((self, key), lambda: self._evict(key))
        return opened

    def _evict(self, key: str) -> None:
        """Close ``key``'s file before its target size: too many files are open."""
        if self._on_evicted is not None:
            self._on_evicted(self._finish(key))

    def _finish(self, key: str) -> DataFile:
        done = self._open.pop(key)
        if self._open_files is not None:
            self._open_files.closed((self, key))
        statistics = done.writer.close()
        return DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=done.path,
            file_format=FileFormat.PARQUET,
            partition=done.partition_key.partition if done.partition_key else Record(),
            file_size_in_bytes=len(done.output),
            sort_order_id=None,
            spec_id=self.metadata.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **statistics.to_serialized_dict(),
        )


def task_schema_of(schema: pa.Schema, metadata: TableMetadata) -> Schema:
    """pyiceberg's ``pyarrow_to_schema(schema, name_mapping=...)``: the table's field ids
    for Arrow columns without ids, found by name in O(columns) (pyiceberg scans the
    mapping for every column: 2.7 s for a 5,000-column table, on every write)."""
    return visit_with_partner(
        _pyarrow_to_schema_without_ids(schema, format_version=metadata.format_version),
        metadata.schema().name_mapping, NameMappingProjectionVisitor(), _IndexedMapping())


class _IndexedMapping(NameMappingAccessor):
    """Finds a column's mapped field in a per-struct dictionary (first match wins, as in
    pyiceberg's linear scan)."""

    def __init__(self) -> None:
        # Keyed by id(); the mapping is kept alive with its index, so ids are not reused.
        self._indexes: dict[int, tuple[object, dict[str, MappedField]]] = {}

    def field_partner(self, partner_struct: list[MappedField] | MappedField | None, _: int,
                      field_name: str) -> MappedField | None:
        if partner_struct is None:
            return None
        fields: list[MappedField] | NameMapping = (
            partner_struct.fields if isinstance(partner_struct, MappedField) else partner_struct)
        entry = self._indexes.get(id(fields))
        if entry is None:
            index: dict[str, MappedField] = {}
            for mapped in fields:
                for name in mapped.names:
                    index.setdefault(name, mapped)
            entry = self._indexes[id(fields)] = (fields, index)
        return entry[1].get(field_name)
