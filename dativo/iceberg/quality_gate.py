"""The read view a quality gate gets of a commit in flight, and the summary it adds.

:class:`CommitRows` implements :class:`dativo.quality.gate.CommitView` for
:meth:`~dativo.iceberg.writer.IcebergWriter.commit_files`: the rows the commit adds (its
new data files, read with pyiceberg's ``ArrowScan``) and the table as the staged
transaction would leave it (a scan of the transaction's metadata), each projected to the
columns the rules read and streamed as an Arrow ``RecordBatchReader``. A gate reads
the added rows several times (one query for the library rules, one per sql rule, the
anomaly profile's distinct counts), so a commit whose rows are small (:data:`HOLD_BYTES`)
is read once, its columns held in memory for the gate, and every later projection is
served from them; a larger commit, and the whole table, are streamed, so neither is
ever held whole. The gate's summary property is set on the staged snapshot before
the commit, through ``Summary.__setitem__`` on the ``AddSnapshotUpdate`` the
transaction holds (``Transaction._updates``, covered by
``tests/unit/test_quality_gate_iceberg.py``).

For the anomaly profile, :meth:`CommitRows.stats` reads the added files' statistics
(row count, null counts, bounds decoded per column type) without reading a row, and
:meth:`CommitRows.schema_changes` says which columns the commit's schema added or
widened since the table's last snapshot (the drift history).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from decimal import Decimal

import pyarrow as pa
from pyiceberg.conversions import from_bytes
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, schema_to_pyarrow
from pyiceberg.manifest import DataFile
from pyiceberg.schema import Schema
from pyiceberg.table import DataScan, FileScanTask, Table, Transaction
from pyiceberg.table.update import AddSnapshotUpdate
from pyiceberg.types import (
    BinaryType,
    DateType,
    DecimalType,
    DoubleType,
    FixedType,
    FloatType,
    IntegerType,
    LongType,
    PrimitiveType,
    TimestampNanoType,
    TimestampType,
    TimestamptzNanoType,
    TimestamptzType,
    TimeType,
    UUIDType,
)

from dativo.iceberg.staging import FileBatch, TableChange
from dativo.quality.load_profile import ColumnStats, CommitStats

# Bound bytes -> the profile's float scale (see CommitStats): from_bytes gives ints for
# these (days, microseconds, nanoseconds), Decimal for decimals.
_SCALES: dict[type, float] = {IntegerType: 1, LongType: 1, FloatType: 1, DoubleType: 1,
                              DecimalType: 1, DateType: 1, TimeType: 1e-6,
                              TimestampType: 1e-6, TimestamptzType: 1e-6,
                              TimestampNanoType: 1e-9, TimestamptzNanoType: 1e-9}
_NO_DISTINCT = (BinaryType, FixedType, UUIDType)
HOLD_BYTES = 128 * 2**20
"""Most Arrow memory the added rows a gate reads may take to be held for the whole gate
(read once rather than once per query). Decoded columns are ~8x their compressed
Parquet size in the 1M-row bench (105 MiB of Arrow for 13 MiB of Parquet; a
dictionary-encoded string column up to 50x), so the files' compressed column sizes only
rule out a commit that cannot fit; a read that grows past this bound is dropped and the
commit streamed instead, so at most this much is ever held."""


class CommitRows:
    """The rows of one commit in flight (``run_rows``) and of its would-be snapshot
    (``table_rows``), as fresh readers projected to the columns asked for."""

    def __init__(self, table: Table, tx: Transaction, changes: Sequence[TableChange]) -> None:
        self.table = ".".join(table.name())
        self._io = table.io
        self._metadata = tx.table_metadata
        self._added: list[DataFile] = [f for c in changes if isinstance(c, FileBatch)
                                       for f in c.files]
        base = table.metadata.current_snapshot_id  # what the transaction was staged on
        self._base = base
        self.same_rows = base is None and all(  # the table's first rows: one read does
            isinstance(c, FileBatch) and c.keys is None for c in changes)
        self.hold = True
        """Whether :meth:`run_rows` may hold a small commit's columns for later reads;
        a gate that reads each column once (the anomaly profile alone) clears it."""
        self._lock = threading.Lock()  # the gate's queries run on two threads
        self._held: pa.Table | None = None
        self._hold_tried = False
        for data_file in self._added:  # rolled files carry no spec id until a manifest
            if not hasattr(data_file, "_spec_id"):  # is read; theirs is the table's
                data_file.spec_id = self._metadata.default_spec_id

    def stats(self) -> CommitStats:
        """The added files' statistics: rows, and per top-level primitive column its
        null count and (numbers, dates, times, timestamps) its bounds. No row is read."""
        columns: dict[str, ColumnStats] = {}
        scalar = []
        for column in self._metadata.schema().fields:
            kind = column.field_type
            if not isinstance(kind, PrimitiveType):
                continue  # nested: its leaves have the stats, the column has none
            if not isinstance(kind, _NO_DISTINCT):
                scalar.append(column.name)
            columns[column.name] = self._column_stats(column.field_id, kind)
        return CommitStats(sum(f.record_count for f in self._added), columns, tuple(scalar))

    def _column_stats(self, field_id: int, kind: PrimitiveType) -> ColumnStats:
        counts = [f.null_value_counts.get(field_id) if f.null_value_counts else None
                  for f in self._added]
        nulls = None if any(c is None for c in counts) else sum(c or 0 for c in counts)
        scale = _SCALES.get(type(kind))
        if scale is None:
            return ColumnStats(nulls)
        lows = [_number(kind, f.lower_bounds.get(field_id), scale)
                for f in self._added if f.lower_bounds]
        highs = [_number(kind, f.upper_bounds.get(field_id), scale)
                 for f in self._added if f.upper_bounds]
        low = min((v for v in lows if v is not None), default=None)
        high = max((v for v in highs if v is not None), default=None)
        return ColumnStats(nulls, low, high)

    def schema_changes(self) -> list[tuple[str, str]]:
        """``(column, change)`` for each top-level column the commit's schema added
        (``+name type``) or widened (``name int -> long``) since the schema of the
        table's last snapshot; none for a table's first snapshot."""
        base = self._metadata.snapshot_by_id(self._base) if self._base is not None else None
        old = (self._metadata.schema_by_id(base.schema_id)
               if base is not None and base.schema_id is not None else None)
        after = self._metadata.schema()
        if old is None or old.schema_id == after.schema_id:
            return []
        before = {f.field_id: f for f in old.fields}
        return [(f.name, f"+{f.name} {f.field_type}" if f.field_id not in before
                 else f"{f.name} {before[f.field_id].field_type} -> {f.field_type}")
                for f in after.fields
                if f.field_id not in before or before[f.field_id].field_type != f.field_type]

    def _schema(self, columns: Sequence[str] | None) -> Schema:
        schema = self._metadata.schema()
        if columns is None:
            return schema
        names = list(columns) or [schema.fields[0].name]
        return schema.select(*names)

    def run_rows(self, columns: Sequence[str] | None) -> pa.RecordBatchReader:
        """The added rows projected to ``columns``: from the held columns when the commit
        is small enough (:meth:`_hold`), else streamed from its data files."""
        projected = self._schema(columns)
        names = projected.column_names
        with self._lock:  # one thread reads, the other waits and uses what it read
            if not self._hold_tried and self.hold:
                self._hold_tried = True
                self._held = self._hold(names)
            held = self._held
        if held is not None and set(names) <= set(held.column_names):
            return held.select(names).to_reader()
        return self._stream(projected)

    def _hold(self, asked: Sequence[str]) -> pa.Table | None:
        """The added rows' columns held for the gate: those first asked for plus every
        top-level scalar column (the anomaly profile counts each one's distinct values),
        or ``None`` when their compressed size or, while reading, their Arrow size
        exceeds :data:`HOLD_BYTES` (then every read streams)."""
        schema = self._metadata.schema()
        names = [f.name for f in schema.fields
                 if f.name in asked or (isinstance(f.field_type, PrimitiveType)
                                        and not isinstance(f.field_type, _NO_DISTINCT))]
        projected = schema.select(*names)
        ids = set(projected.field_ids)
        compressed = sum(sum(v for k, v in f.column_sizes.items() if k in ids)
                         if f.column_sizes else f.file_size_in_bytes for f in self._added)
        if compressed > HOLD_BYTES:
            return None
        reader = self._stream(projected)
        batches, size = [], 0
        try:
            for batch in reader:
                size += batch.nbytes
                if size > HOLD_BYTES:
                    return None
                batches.append(batch)
        finally:
            reader.close()
        return pa.Table.from_batches(batches, schema=reader.schema)

    def _stream(self, projected: Schema) -> pa.RecordBatchReader:
        target = schema_to_pyarrow(projected)
        batches = ArrowScan(self._metadata, self._io, projected, AlwaysTrue()
                            ).to_record_batches([FileScanTask(f) for f in self._added])
        return pa.RecordBatchReader.from_batches(target, batches).cast(target)

    def table_rows(self, columns: Sequence[str] | None) -> pa.RecordBatchReader:
        fields = ("*",) if columns is None else tuple(c for c in self._schema(columns)
                                                      .column_names)
        return DataScan(table_metadata=self._metadata, io=self._io,
                        selected_fields=fields).to_arrow_batch_reader()


def _number(kind: PrimitiveType, bound: bytes | None, scale: float) -> float | None:
    """A bound as a float on the profile's scale; NaN bounds say nothing."""
    if bound is None:
        return None
    value = from_bytes(kind, bound)
    number = float(value) * scale if isinstance(value, (int, float, Decimal)) else None
    return None if number is None or number != number else number


def annotate(tx: Transaction, properties: Mapping[str, str]) -> None:
    """Add ``properties`` to the summary of the last snapshot ``tx`` stages (the one the
    commit returns), after the gate has seen the staged rows."""
    if not properties:
        return
    staged = [u for u in tx._updates if isinstance(u, AddSnapshotUpdate)]
    if not staged or staged[-1].snapshot.summary is None:
        return
    summary = staged[-1].snapshot.summary
    for key, value in properties.items():
        summary[key] = value
