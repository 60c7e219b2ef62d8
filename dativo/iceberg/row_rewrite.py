"""Rewriting a table's rows in place, in one copy-on-write commit (``dativo keys rewrap``).

Outside a load, a job that changes values row by row (re-encrypting them under a new
key) rewrites each affected data file once, streaming it one record batch at a time
(:func:`~dativo.iceberg.rewrites.rewrite_rows`: the files a load's upsert rewrites are
written the same way), and swaps old files for new in one overwrite snapshot marked
``dativo.maintenance: <job>``. Readers see the old files or the new ones, never both.
As with ``dativo maintain compact``, the snapshot carries the newest ``dativo.state``
bookmark forward.

Concurrency: a load may commit while the files are rewritten. Only the commit is
retried (:func:`~dativo.iceberg.commits.commit_with_retry`) while every replaced file
is still live; when a concurrent commit replaced one of them (an upsert), the rewrite
is planned again on the new snapshot and the first copy deleted, so the commit never
brings back rows another writer replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from dativo.errors import CommitError
from dativo.iceberg.commits import commit_with_retry
from dativo.iceberg.maintenance.compact import _delete_quietly, _newest_bookmark
from dativo.iceberg.naming import MAINTENANCE_PROPERTY, STATE_PROPERTY
from dativo.iceberg.rewrites import Rewrite, RowChange, rewrite_rows

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableRewrite:
    """What one rewrite committed: files replaced and written, rows ``count`` found."""

    table: str
    files_removed: int = 0
    files_added: int = 0
    rows_changed: int = 0
    snapshot_id: int | None = None


def every_file(columns: Sequence[str], count: Callable[[pa.Table], int],
               apply: Callable[[pa.Table], pa.Table]) -> RowChange:
    """A change that may touch any data file: ``count`` (given only ``columns``) says
    how much of a file it changes (0: the file is left alone), ``apply`` changes a slice
    of a file's rows."""
    return RowChange(AlwaysTrue(), tuple(columns), count, apply)


def file_rows(table: Table, columns: Sequence[str]) -> Iterator[pa.Table]:
    """``columns`` of each live data file of ``table``, one file at a time (what a job
    reads to find the files it must rewrite, before writing any)."""
    metadata = table.metadata
    if metadata.current_snapshot() is None:
        return
    probe = ArrowScan(table_metadata=metadata, io=table.io, row_filter=AlwaysTrue(),
                      projected_schema=metadata.schema().select(*columns))
    for task in table.scan().plan_files():
        yield probe.to_table([task])


def rewrite_table(table: Table, change: RowChange, *, job: str) -> TableRewrite:
    """Rewrite every file of ``table`` that ``change`` touches, in one overwrite commit.

    Raises:
        CommitError: Files cannot be read or written, or the table kept changing under
            the commit; nothing was changed.
    """
    name = ".".join(table.name())
    pending: Rewrite | None = None

    def attempt() -> TableRewrite:
        nonlocal pending
        if pending is not None and not _still_live(table, pending.removed):
            LOGGER.info("A concurrent commit replaced files %s was rewriting; rewriting "
                        "again on the new snapshot", job)
            _delete_quietly(table, pending.added)
            pending = None
        if pending is None:
            pending = _rewrite(table, change, job)
        if not pending.removed:
            return TableRewrite(name)
        properties = {MAINTENANCE_PROPERTY: job}
        bookmark = _newest_bookmark(table)
        if bookmark is not None:
            properties[STATE_PROPERTY] = bookmark
        with (table.transaction() as tx,
              tx.update_snapshot(snapshot_properties=properties).overwrite() as overwrite):
            for data_file in pending.removed:
                overwrite.delete_data_file(data_file)
            for data_file in pending.added:
                overwrite.append_data_file(data_file)
        snapshot = table.current_snapshot()
        return TableRewrite(name, len(pending.removed), len(pending.added),
                            pending.rows_changed, snapshot.snapshot_id if snapshot else None)

    def gave_up(_: Exception, attempts: int) -> CommitError:
        if pending is not None:
            _delete_quietly(table, pending.added)
        return CommitError(f"{job} of {name}: the table kept changing under the commit "
                           f"after {attempts} attempts; nothing was changed, rerun when "
                           "loads are quieter")

    table.refresh()
    return commit_with_retry(table, attempt, gave_up=gave_up)


def _rewrite(table: Table, change: RowChange, job: str) -> Rewrite:
    """The files ``change`` touches, rewritten (not committed) on the table as it is."""
    try:
        return rewrite_rows(table.transaction(), table.io, change)
    except OSError as exc:
        raise CommitError(f"{job} of {'.'.join(table.name())}: cannot read or write data "
                          f"files ({exc}); nothing was changed") from exc


def _still_live(table: Table, files: list[DataFile]) -> bool:
    live = {task.file.file_path for task in table.scan().plan_files()}
    return all(f.file_path in live for f in files)
