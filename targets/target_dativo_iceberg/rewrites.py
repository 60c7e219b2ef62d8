"""Copy-on-write row changes: upsert by key, and retiring old table versions.

pyiceberg cannot write equality deletes, and its ``Table.upsert`` builds one predicate
term per key (a composite key of a 200k-row batch becomes a 200k-branch expression)
and holds every matched row in memory. Here a predicate only *prunes* files (by the
manifests' column bounds); each candidate file is then read on its own, changed with
Arrow, and rewritten if anything changed. Memory is one data file plus the batch's
keys, whatever the table's size.
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
from pyiceberg.manifest import DataFile
from pyiceberg.table import DataScan, Transaction

from target_dativo_iceberg.staging import DELETED_AT_COLUMN, VERSION_COLUMN

_IN_LIST_LIMIT = 200  # above this, pyiceberg's metrics evaluators give up on IN
_POSITION = "__dativo_position"

RowChange = Callable[[pa.Table], tuple[pa.Table, int] | None]
"""Given one data file's rows: the rows to put in its place and how many rows were
dropped or changed, or ``None`` when the file stays as it is."""


@dataclass
class Rewrite:
    """Files a change replaces, the files replacing them, and how many rows it touched."""

    removed: list[DataFile] = field(default_factory=list)
    added: list[DataFile] = field(default_factory=list)
    rows_changed: int = 0


def rewrite_rows(tx: Transaction, io: FileIO, prune: BooleanExpression, change: RowChange,
                 write: Callable[[pa.Table], list[DataFile]]) -> Rewrite:
    """Apply ``change`` to every data file that ``prune`` may match, one at a time.

    Reads the table as staged in ``tx``, so earlier changes of the same commit are seen.
    """
    outcome = Rewrite()
    metadata = tx.table_metadata
    if metadata.current_snapshot() is None:
        return outcome
    scan = DataScan(table_metadata=metadata, io=io, row_filter=prune)
    reader = ArrowScan(table_metadata=metadata, io=io, projected_schema=metadata.schema(),
                       row_filter=AlwaysTrue())
    for task in scan.plan_files():
        existing = reader.to_table([task])
        changed = change(existing)
        if changed is None:
            continue
        kept, rows = changed
        outcome.removed.append(task.file)
        outcome.rows_changed += rows
        if kept.num_rows:
            outcome.added.extend(write(kept))
    return outcome


def without_keys(keys: pa.Table) -> tuple[BooleanExpression, RowChange]:
    """Upsert: drop existing rows whose key is in ``keys`` (the batch then adds them)."""

    def change(existing: pa.Table) -> tuple[pa.Table, int] | None:
        probe = pa.table({name: keys.column(name).cast(existing.schema.field(name).type)
                          for name in keys.column_names})
        # Join only the keys (Arrow cannot carry nested columns through a join), then
        # take the surviving rows in their original order.
        positions = existing.select(keys.column_names).append_column(
            _POSITION, pa.array(range(existing.num_rows), pa.int64()))
        survivors = positions.join(probe, keys=keys.column_names, join_type="left anti")
        if survivors.num_rows == existing.num_rows:
            return None
        kept_at = survivors.column(_POSITION)
        return (existing.take(kept_at.take(pc.sort_indices(kept_at))),
                existing.num_rows - survivors.num_rows)

    return _key_prune_filter(keys), change


def older_versions(version: int) -> BooleanExpression:
    """Rows loaded under a table version before ``version`` (ACTIVATE_VERSION)."""
    return LessThan(VERSION_COLUMN, version)


def mark_older_versions_deleted(version: int, at: datetime
                                ) -> tuple[BooleanExpression, RowChange]:
    """Soft delete: set ``_sdc_deleted_at`` on live rows of versions before ``version``."""

    def change(existing: pa.Table) -> tuple[pa.Table, int] | None:
        stale = pc.and_(pc.less(existing.column(VERSION_COLUMN), version),
                        pc.is_null(existing.column(DELETED_AT_COLUMN)))
        stale = pc.fill_null(stale, False)
        count = pc.sum(stale.cast(pa.int64())).as_py() or 0
        if not count:
            return None
        index = existing.schema.get_field_index(DELETED_AT_COLUMN)
        column = existing.column(index)
        stamp = pa.scalar(at, column.type)
        return existing.set_column(index, existing.schema.field(index),
                                   pc.if_else(stale, stamp, column)), count

    return And(older_versions(version), IsNull(DELETED_AT_COLUMN)), change


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
