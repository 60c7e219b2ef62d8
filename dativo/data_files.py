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
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass

import pyarrow as pa
from pyiceberg.io import FileIO, OutputFile
from pyiceberg.io.fileformat import FileFormatFactory
from pyiceberg.io.pyarrow import (
    ParquetFormatWriter,
    _determine_partitions,
    _to_requested_schema,
    pyarrow_to_schema,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionKey
from pyiceberg.schema import sanitize_column_names
from pyiceberg.table import TableProperties, WriteTask
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.typedef import Record
from pyiceberg.utils.properties import property_as_int

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

    def __init__(self, metadata: TableMetadata, io: FileIO) -> None:
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

    def fits(self, metadata: TableMetadata) -> bool:
        """Whether files opened under this writer's schema and spec suit ``metadata``."""
        return (metadata.current_schema_id == self.metadata.current_schema_id
                and metadata.default_spec_id == self.metadata.default_spec_id)

    @property
    def open_rows(self) -> int:
        return sum(f.rows for f in self._open.values())

    def oldest_open_drain(self) -> int | None:
        """The earliest drain whose rows sit in a still-open file, if any."""
        return min((f.first_drain for f in self._open.values() if f.rows), default=None)

    def write(self, data: pa.Table, drain: int) -> list[DataFile]:
        """Append ``data`` (rows of drain number ``drain``); return the files it filled."""
        task_schema = pyarrow_to_schema(
            data.schema, name_mapping=self.metadata.schema().name_mapping,
            format_version=self.metadata.format_version)
        closed = []
        for key, partition_key, rows in self._partitions(data):
            current = self._open.get(key) or self._start(key, partition_key, drain)
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
        return opened

    def _finish(self, key: str) -> DataFile:
        done = self._open.pop(key)
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
