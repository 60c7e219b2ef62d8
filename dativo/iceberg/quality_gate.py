"""The read view a quality gate gets of a commit in flight, and the summary it adds.

:class:`CommitRows` implements :class:`dativo.quality.gate.CommitView` for
:meth:`~dativo.iceberg.writer.IcebergWriter.commit_files`: the rows the commit adds (its
new data files, read with pyiceberg's ``ArrowScan``) and the table as the staged
transaction would leave it (a scan of the transaction's metadata), each projected to the
columns the rules read and streamed as an Arrow ``RecordBatchReader``, so neither is
held in memory whole. The gate's summary property is set on the staged snapshot before
the commit, through ``Summary.__setitem__`` on the ``AddSnapshotUpdate`` the
transaction holds (``Transaction._updates``, covered by
``tests/unit/test_quality_gate_iceberg.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, schema_to_pyarrow
from pyiceberg.manifest import DataFile
from pyiceberg.schema import Schema
from pyiceberg.table import DataScan, FileScanTask, Table, Transaction
from pyiceberg.table.update import AddSnapshotUpdate

from dativo.iceberg.staging import FileBatch, TableChange


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
        self.same_rows = base is None and all(  # the table's first rows: one read does
            isinstance(c, FileBatch) and c.keys is None for c in changes)
        for data_file in self._added:  # rolled files carry no spec id until a manifest
            if not hasattr(data_file, "_spec_id"):  # is read; theirs is the table's
                data_file.spec_id = self._metadata.default_spec_id

    def _schema(self, columns: Sequence[str] | None) -> Schema:
        schema = self._metadata.schema()
        if columns is None:
            return schema
        names = list(columns) or [schema.fields[0].name]
        return schema.select(*names)

    def run_rows(self, columns: Sequence[str] | None) -> pa.RecordBatchReader:
        projected = self._schema(columns)
        target = schema_to_pyarrow(projected)
        batches = ArrowScan(self._metadata, self._io, projected, AlwaysTrue()
                            ).to_record_batches([FileScanTask(f) for f in self._added])
        return pa.RecordBatchReader.from_batches(target, batches).cast(target)

    def table_rows(self, columns: Sequence[str] | None) -> pa.RecordBatchReader:
        fields = ("*",) if columns is None else tuple(c for c in self._schema(columns)
                                                      .column_names)
        return DataScan(table_metadata=self._metadata, io=self._io,
                        selected_fields=fields).to_arrow_batch_reader()


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
