"""Copy-on-write row changes: upsert by key, and retiring old table versions.

pyiceberg cannot write equality deletes, and its ``Table.upsert`` builds one predicate
term per key (a composite key of a 200k-row batch becomes a 200k-branch expression)
and holds every matched row in memory. Here a predicate only *prunes* files (by the
manifests' column bounds); each candidate file is then read on its own, changed with
Arrow one record batch at a time, and rewritten (into target-sized files) if anything
changed. Memory is a record batch plus the batch's keys, whatever the table's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    GreaterThanOrEqual,
    In,
    IsNull,
    LessThan,
    LessThanOrEqual,
)
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile, DataFileContent, ManifestEntryStatus
from pyiceberg.table import DataScan, FileScanTask, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import ancestors_of

from dativo.iceberg.data_files import RollingDataFiles
from dativo.iceberg.staging import DELETED_AT_COLUMN, VERSION_COLUMN

_IN_LIST_LIMIT = 200  # above this, pyiceberg's metrics evaluators give up on IN
_POSITION = "__dativo_position"

@dataclass(frozen=True)
class RowChange:
    """A copy-on-write change: which files may hold affected rows (``prune``), how many
    rows of a file it affects (``count``, given only ``columns``, so untouched files
    cost a narrow read), and the rows to keep in place of a slice of a file (``apply``).
    """

    prune: BooleanExpression
    columns: tuple[str, ...]
    count: Callable[[pa.Table], int]
    apply: Callable[[pa.Table], pa.Table]


@dataclass
class Rewrite:
    """Files a change replaces, the files replacing them, and how many rows it touched."""

    removed: list[DataFile] = field(default_factory=list)
    added: list[DataFile] = field(default_factory=list)
    rows_changed: int = 0


def rewrite_rows(tx: Transaction, io: FileIO, change: RowChange) -> Rewrite:
    """Apply ``change`` to every data file it affects, streaming one record batch at a
    time into new target-sized files.

    Reads the table as staged in ``tx``, so earlier changes of the same commit are seen.
    """
    outcome = Rewrite()
    metadata = tx.table_metadata
    if metadata.current_snapshot() is None:
        return outcome
    schema = metadata.schema()
    probe = ArrowScan(table_metadata=metadata, io=io, row_filter=AlwaysTrue(),
                      projected_schema=schema.select(*change.columns))
    reader = ArrowScan(table_metadata=metadata, io=io, projected_schema=schema,
                       row_filter=AlwaysTrue())
    output = RollingDataFiles(metadata, io)
    for task in DataScan(table_metadata=metadata, io=io, row_filter=change.prune).plan_files():
        touched = change.count(probe.to_table([task]))
        if not touched:
            continue
        outcome.removed.append(task.file)
        outcome.rows_changed += touched
        for batch in reader.to_record_batches([task]):
            kept = change.apply(pa.Table.from_batches([batch]))
            if kept.num_rows:
                outcome.added.extend(output.write(kept, drain=0))
    outcome.added.extend(output.close_all())
    return outcome


@dataclass
class TableDelta:
    """What the commits after a snapshot did to the table's data files."""

    added: list[DataFile] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)  # file paths
    commits: int = 0


def changes_since(metadata: TableMetadata, io: FileIO, base: int | None
                  ) -> TableDelta | None:
    """The data files added and removed by the commits after snapshot ``base`` (None:
    the empty table) up to the current one, from the manifests those commits wrote.

    None when that cannot be told for sure: ``base`` is no longer an ancestor of the
    current snapshot (a rollback, or expired), or a commit added delete files.
    """
    delta = TableDelta()
    for snapshot in ancestors_of(metadata.current_snapshot(), metadata):
        if snapshot.snapshot_id == base:
            return delta
        delta.commits += 1
        for manifest in snapshot.manifests(io):
            if manifest.added_snapshot_id != snapshot.snapshot_id:
                continue  # an older commit's manifest: nothing of this commit in it
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=False):
                if entry.snapshot_id != snapshot.snapshot_id:
                    continue
                if entry.data_file.content != DataFileContent.DATA:
                    return None
                if entry.status == ManifestEntryStatus.ADDED:
                    delta.added.append(entry.data_file)
                elif entry.status == ManifestEntryStatus.DELETED:
                    delta.deleted.add(entry.data_file.file_path)
    return delta if base is None else None


def holds_any_key(files: list[DataFile], metadata: TableMetadata, io: FileIO,
                  keys: list[pa.Table]) -> bool:
    """Whether a row of ``files`` has one of ``keys`` (reading only the key columns)."""
    if not files or not keys:
        return False
    changes = [without_keys(k) for k in keys]
    columns = sorted({c for change in changes for c in change.columns})
    probe = ArrowScan(table_metadata=metadata, io=io, row_filter=AlwaysTrue(),
                      projected_schema=metadata.schema().select(*columns))
    return any(change.count(rows) for data_file in files
               for rows in [probe.to_table([FileScanTask(data_file)])]
               for change in changes)


def without_keys(keys: pa.Table) -> RowChange:
    """Upsert: drop existing rows whose key is in ``keys`` (the batch then adds them)."""
    names = tuple(keys.column_names)

    def matching(rows: pa.Table) -> pa.Table:
        """Positions of ``rows`` whose key is in ``keys``, joining only the keys (Arrow
        cannot carry nested columns through a join)."""
        probe = pa.table({n: keys.column(n).cast(rows.schema.field(n).type) for n in names})
        positions = rows.select(list(names)).append_column(
            _POSITION, pa.array(range(rows.num_rows), pa.int64()))
        return positions.join(probe, keys=list(names), join_type="left semi")

    def apply(rows: pa.Table) -> pa.Table:
        hit = matching(rows).column(_POSITION)
        if not len(hit):
            return rows
        keep = pc.invert(pc.is_in(pa.array(range(rows.num_rows), pa.int64()), value_set=hit))
        return rows.filter(keep)

    return RowChange(_key_prune_filter(keys), names, lambda rows: matching(rows).num_rows,
                     apply)


def older_versions(version: int) -> BooleanExpression:
    """Rows loaded under a table version before ``version`` (ACTIVATE_VERSION)."""
    return LessThan(VERSION_COLUMN, version)


def drop_older_versions(version: int) -> RowChange:
    """Hard delete: drop rows of versions before ``version``."""

    def older(rows: pa.Table) -> pa.ChunkedArray:
        return pc.fill_null(pc.less(rows.column(VERSION_COLUMN), version), False)

    return RowChange(older_versions(version), (VERSION_COLUMN,),
                     lambda rows: pc.sum(older(rows).cast(pa.int64())).as_py() or 0,
                     lambda rows: rows.filter(pc.invert(older(rows))))


def mark_older_versions_deleted(version: int, at: datetime) -> RowChange:
    """Soft delete: set ``_sdc_deleted_at`` on live rows of versions before ``version``."""

    def stale(rows: pa.Table) -> pa.ChunkedArray:
        return pc.fill_null(pc.and_(pc.less(rows.column(VERSION_COLUMN), version),
                                    pc.is_null(rows.column(DELETED_AT_COLUMN))), False)

    def apply(rows: pa.Table) -> pa.Table:
        index = rows.schema.get_field_index(DELETED_AT_COLUMN)
        column = rows.column(index)
        return rows.set_column(index, rows.schema.field(index),
                               pc.if_else(stale(rows), pa.scalar(at, column.type), column))

    return RowChange(And(older_versions(version), IsNull(DELETED_AT_COLUMN)),
                     (VERSION_COLUMN, DELETED_AT_COLUMN),
                     lambda rows: pc.sum(stale(rows).cast(pa.int64())).as_py() or 0, apply)


def _key_prune_filter(keys: pa.Table) -> BooleanExpression:
    """A predicate true for every row with one of ``keys`` (and few others)."""
    terms: list[BooleanExpression] = []
    for name in keys.column_names:
        column = keys.column(name)
        bounds = pc.min_max(column)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is None:
            continue
        try:
            terms += [GreaterThanOrEqual(name, low), LessThanOrEqual(name, high)]
            if len(keys.column_names) == 1 and keys.num_rows <= _IN_LIST_LIMIT:
                terms.append(In(name, set(column.to_pylist())))
        except (TypeError, ValueError):
            continue  # a key type pyiceberg cannot compare: no pruning on it
    if not terms:
        return AlwaysTrue()
    return terms[0] if len(terms) == 1 else And(*terms)
