"""``dativo maintain compact``: rewrite a table's small data files into target-size ones.

Frequent commits (``commit_interval_seconds``, ``max_state_lag_seconds``, upserts that
rewrite a file per batch) leave many small files, and every reader pays per file it
opens. Compaction reads the small files of a partition one at a time, streams their
record batches into new files that roll over at the target size (the target's own
:class:`~dativo.iceberg.data_files.RollingDataFiles`), and swaps old for new in
one overwrite snapshot: readers see the old files or the new ones, never both or
neither. Rows are copied as read: same values, same count, same partition; the table's
schema, partition spec and sort order are left as they are (files are not re-sorted).
The snapshot's operation is ``overwrite``: pyiceberg cannot write Iceberg's ``replace``,
so incremental readers see a rewrite of the same rows; the snapshot is marked
``dativo.maintenance: compact``.

Memory stays one input file plus one row group being written, whatever the table size.

Skipped: files under an older partition spec (they would change partition), files with
delete files (a foreign engine's merge-on-read; their rows need the deletes applied),
and partitions with fewer than two small files (nothing to merge).

Concurrency: a load may commit while compaction runs. The rewrite is done once; only
the commit is retried, on the refreshed table, and only while every replaced file is
still live and has no delete files (an upsert that rewrote one of them means the copy
would bring back replaced rows, so compaction stops and the new files are deleted).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table, TableProperties
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.utils.properties import property_as_int

from dativo.errors import CommitError
from dativo.iceberg.commits import commit_with_retry
from dativo.iceberg.data_files import RollingDataFiles
from dativo.iceberg.file_defaults import TARGET_FILE_SIZE_BYTES
from dativo.iceberg.naming import MAINTENANCE_PROPERTY, STATE_PROPERTY

LOGGER = logging.getLogger(__name__)

SMALL_FRACTION = 0.75
"""A file below this share of the target size is small (worth merging)."""
_BUFFER_BYTES = 64 * 1024 * 1024
"""Arrow bytes gathered into one write (row group) at most: a file is checked against
the target size after each write, so writes stay well below it too."""


@dataclass
class CompactReport:
    """Data files of one table before and after (or, in a dry run, as planned)."""

    table: str
    target_bytes: int
    files_before: int = 0
    bytes_before: int = 0
    rewritten: int = 0  # small files replaced
    rewritten_bytes: int = 0
    written: int = 0  # files written in their place
    written_bytes: int = 0
    partitions: int = 0
    snapshot_id: int | None = None

    @property
    def files_after(self) -> int:
        return self.files_before - self.rewritten + self.written

    @property
    def bytes_after(self) -> int:
        return self.bytes_before - self.rewritten_bytes + self.written_bytes


@dataclass
class _Plan:
    groups: list[list[FileScanTask]] = field(default_factory=list)

    @property
    def files(self) -> list[DataFile]:
        return [task.file for group in self.groups for task in group]


def target_file_size(table: Table, override_mb: int | None = None) -> int:
    """The size compaction aims at: ``override_mb``, else the table's
    ``write.target-file-size-bytes`` (the target pins it), else the target's default
    (:data:`~dativo.iceberg.file_defaults.TARGET_FILE_SIZE_BYTES`)."""
    if override_mb is not None:
        return override_mb * 1024 * 1024
    return property_as_int(table.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
                           TARGET_FILE_SIZE_BYTES) or TARGET_FILE_SIZE_BYTES


def compact(table: Table, *, target_bytes: int, dry_run: bool = False) -> CompactReport:
    """Merge the small files of each partition of ``table`` into target-size files.

    Raises:
        CommitError: Files cannot be read or written, or the table kept changing
            under the commit; nothing was changed.
    """
    name = ".".join(table.name())
    report = CompactReport(name, target_bytes)
    tasks = list(table.scan().plan_files()) if table.current_snapshot() else []
    report.files_before = len(tasks)
    report.bytes_before = sum(t.file.file_size_in_bytes for t in tasks)
    plan = _plan(table, tasks, target_bytes)
    report.partitions = len(plan.groups)
    report.rewritten = len(plan.files)
    report.rewritten_bytes = sum(f.file_size_in_bytes for f in plan.files)
    if dry_run or not plan.groups:
        return report
    added = _rewrite(table, plan, target_bytes)
    report.written = len(added)
    report.written_bytes = sum(f.file_size_in_bytes for f in added)
    report.snapshot_id = _commit(table, plan.files, added)
    LOGGER.info("Compacted %s: %d small file(s) into %d", name, report.rewritten,
                report.written)
    return report


def _plan(table: Table, tasks: Iterable[FileScanTask], target_bytes: int) -> _Plan:
    """Small files of the current spec without delete files, grouped by partition;
    only groups of two or more."""
    metadata = table.metadata
    spec, schema = metadata.spec(), metadata.schema()
    groups: dict[str, list[FileScanTask]] = {}
    for task in tasks:
        data_file = task.file
        if (task.delete_files or data_file.spec_id != metadata.default_spec_id
                or data_file.file_size_in_bytes >= target_bytes * SMALL_FRACTION):
            continue
        key = spec.partition_to_path(data_file.partition, schema)
        groups.setdefault(key, []).append(task)
    return _Plan([group for _, group in sorted(groups.items()) if len(group) >= 2])


def _rewrite(table: Table, plan: _Plan, target_bytes: int) -> list[DataFile]:
    """Write each group's rows into new rolling target-size files; on failure delete
    what was written."""
    metadata, io = table.metadata, table.io
    reader = ArrowScan(table_metadata=metadata, io=io, projected_schema=metadata.schema(),
                       row_filter=AlwaysTrue())
    rows_per_write = property_as_int(metadata.properties, TableProperties.PARQUET_ROW_GROUP_LIMIT,
                                     TableProperties.PARQUET_ROW_GROUP_LIMIT_DEFAULT) or 1
    bytes_per_write = min(_BUFFER_BYTES, max(1, target_bytes // 4))
    added: list[DataFile] = []
    output: RollingDataFiles | None = None
    try:
        for group in plan.groups:
            output = RollingDataFiles(metadata, io)
            output.target_bytes = target_bytes
            pending: list[pa.RecordBatch] = []
            rows = size = 0
            for task in group:  # one input file in memory at a time
                for batch in reader.to_record_batches([task]):
                    pending.append(batch)
                    rows, size = rows + batch.num_rows, size + batch.nbytes
                    if rows >= rows_per_write or size >= bytes_per_write:
                        added.extend(output.write(pa.Table.from_batches(pending), drain=0))
                        pending, rows, size = [], 0, 0
            if pending:
                added.extend(output.write(pa.Table.from_batches(pending), drain=0))
            added.extend(output.close_all())
            output = None
    except Exception as exc:
        if output is not None:
            try:
                added.extend(output.close_all())
            except Exception:  # a half-written file is left to remove-orphans
                LOGGER.debug("could not close a partly written file", exc_info=True)
        _delete_quietly(table, added)
        if isinstance(exc, OSError):
            raise CommitError(f"compacting {'.'.join(table.name())}: cannot read or write "
                              f"data files ({exc}); nothing was changed") from exc
        raise
    return added


def _commit(table: Table, removed: list[DataFile], added: list[DataFile]) -> int | None:
    """Replace ``removed`` by ``added`` in one snapshot, retrying the commit (not the
    rewrite, :func:`~dativo.iceberg.commits.commit_with_retry`) while the replaced
    files are still live in the refreshed table.

    The snapshot carries the newest ``dativo.state`` bookmark forward: the rows are the
    same, so the table keeps telling how far it is loaded even once older snapshots
    are expired.
    """
    def swap() -> int | None:
        _check_still_live(table, removed, added)
        _check_written(table, added)
        properties = {MAINTENANCE_PROPERTY: "compact"}
        bookmark = _newest_bookmark(table)
        if bookmark is not None:
            properties[STATE_PROPERTY] = bookmark
        with (table.transaction() as tx,
              tx.update_snapshot(snapshot_properties=properties).overwrite() as overwrite):
            for data_file in removed:
                overwrite.delete_data_file(data_file)
            for data_file in added:
                overwrite.append_data_file(data_file)
        snapshot = table.current_snapshot()
        return snapshot.snapshot_id if snapshot else None

    def gave_up(_: Exception, attempts: int) -> CommitError:
        _delete_quietly(table, added)
        return CommitError(f"compacting {'.'.join(table.name())}: the table kept changing "
                           f"under the commit after {attempts} attempts; nothing was "
                           "changed, rerun when loads are quieter")

    table.refresh()  # loads may have committed while the files were rewritten
    return commit_with_retry(table, swap, gave_up=gave_up)


def _check_still_live(table: Table, removed: list[DataFile], added: list[DataFile]) -> None:
    """Raise (after deleting ``added``) unless every file to replace is still in the
    current snapshot, without delete files."""
    live = {task.file.file_path: task for task in table.scan().plan_files()}
    gone = [f.file_path for f in removed
            if f.file_path not in live or live[f.file_path].delete_files]
    if gone:
        _delete_quietly(table, added)
        raise CommitError(f"compacting {'.'.join(table.name())}: {len(gone)} of the files "
                          "being compacted were changed by a concurrent commit (e.g. an "
                          "upsert); nothing was changed, rerun compact")


def _check_written(table: Table, added: list[DataFile]) -> None:
    """Raise unless every new file is still there: until the commit they are orphans,
    and a ``remove-orphans`` with a grace period shorter than this compaction may have
    deleted them."""
    missing = [f.file_path for f in added if not table.io.new_input(f.file_path).exists()]
    if missing:
        _delete_quietly(table, [f for f in added if f.file_path not in missing])
        raise CommitError(f"compacting {'.'.join(table.name())}: {len(missing)} new file(s) "
                          f"vanished before the commit (e.g. {missing[0]}), likely removed "
                          "by `remove-orphans`; nothing was changed, rerun compact with "
                          "remove-orphans' --older-than longer than compaction takes")


def _newest_bookmark(table: Table) -> str | None:
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        bookmark = snapshot.summary[STATE_PROPERTY] if snapshot.summary else None
        if bookmark is not None:
            return str(bookmark)
    return None


def _delete_quietly(table: Table, files: list[DataFile]) -> None:
    """Delete files no snapshot references; a failure leaves them to remove-orphans."""
    for data_file in files:
        try:
            table.io.delete(data_file.file_path)
        except OSError as exc:
            LOGGER.warning("Could not delete %s (remove-orphans will): %s",
                           data_file.file_path, exc)
