"""``load_method: upsert``: replace rows by primary key, copy-on-write, in bounded memory.

pyiceberg cannot write equality deletes, and its ``Table.upsert`` builds one predicate
term per key (a composite key of a 200k-row batch becomes a 200k-branch expression)
and holds every matched row in memory. Here a batch's keys only *prune* files, by
their min/max range (and an ``IN`` list when short, which the manifest metrics can
also use); each candidate file is then read on its own, its rows whose key is in the
batch are dropped with an Arrow anti-join, and the rest is rewritten. Memory is one
data file plus the batch's keys, whatever the table's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    GreaterThanOrEqual,
    In,
    LessThanOrEqual,
)
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile
from pyiceberg.table import DataScan, Transaction

_IN_LIST_LIMIT = 200  # above this, pyiceberg's metrics evaluators give up on IN
_POSITION = "__dativo_position"


@dataclass
class KeyedRewrite:
    """What replacing one batch's keys does to the table's existing files."""

    removed: list[DataFile] = field(default_factory=list)
    added: list[DataFile] = field(default_factory=list)
    rows_replaced: int = 0


def rewrite_matching_rows(tx: Transaction, io: FileIO, keys: pa.Table,
                          write: Callable[[pa.Table], list[DataFile]]) -> KeyedRewrite:
    """Plan the removal of every existing row whose key is in ``keys``.

    Reads the table as staged in ``tx`` (so earlier batches of the same commit are
    seen), one candidate file at a time; files without a matching row are untouched.
    """
    outcome = KeyedRewrite()
    metadata = tx.table_metadata
    if metadata.current_snapshot() is None or keys.num_rows == 0:
        return outcome
    schema = metadata.schema()
    scan = DataScan(table_metadata=metadata, io=io, row_filter=_prune_filter(keys))
    reader = ArrowScan(table_metadata=metadata, io=io, projected_schema=schema,
                       row_filter=AlwaysTrue())
    for task in scan.plan_files():
        existing = reader.to_table([task])
        probe = pa.table({name: keys.column(name).cast(existing.schema.field(name).type)
                          for name in keys.column_names})
        # Join only the keys (Arrow cannot carry nested columns through a join), then
        # take the surviving rows in their original order.
        positions = existing.select(keys.column_names).append_column(
            _POSITION, pa.array(range(existing.num_rows), pa.int64()))
        survivors = positions.join(probe, keys=keys.column_names, join_type="left anti")
        if survivors.num_rows == existing.num_rows:
            continue
        kept_at = survivors.column(_POSITION)
        kept = existing.take(kept_at.take(pc.sort_indices(kept_at)))
        outcome.removed.append(task.file)
        outcome.rows_replaced += existing.num_rows - kept.num_rows
        if kept.num_rows:
            outcome.added.extend(write(kept))
    return outcome


def _prune_filter(keys: pa.Table) -> BooleanExpression:
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
