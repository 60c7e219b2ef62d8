"""What an orchestrator's checks read of a table: when dativo last committed to it, how
many rows a run added, and the quality results of the newest recorded load.

Only commits the target made count: their snapshot summaries carry
:data:`~dativo.iceberg.naming.RUN_ID_PROPERTY`, which ``dativo maintain`` snapshots
(compaction, expiry) do not, so maintenance never makes a stale table look fresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dativo.iceberg.naming import QUALITY_SUFFIX, RUN_ID_PROPERTY

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


@dataclass(frozen=True, slots=True)
class DativoCommit:
    """The newest snapshot of a table that a dativo load committed."""

    run_id: str
    snapshot_id: int
    committed_at_ms: int


def last_dativo_commit(catalog: Catalog, identifier: Sequence[str]) -> DativoCommit | None:
    """The table's newest dativo snapshot; ``None`` when the table does not exist or no
    dativo load ever committed to it."""
    table_id = tuple(identifier)
    if not catalog.table_exists(table_id):
        return None
    newest: DativoCommit | None = None
    for snapshot in catalog.load_table(table_id).snapshots():
        run_id = snapshot.summary.get(RUN_ID_PROPERTY) if snapshot.summary else None
        if run_id and (newest is None or snapshot.timestamp_ms >= newest.committed_at_ms):
            newest = DativoCommit(str(run_id), snapshot.snapshot_id, snapshot.timestamp_ms)
    return newest


def records_added_by_run(catalog: Catalog, identifier: Sequence[str], run_id: str) -> int:
    """Rows the run ``run_id`` added to the table (its snapshots' ``added-records``); 0
    when the table does not exist or the run committed nothing to it."""
    table_id = tuple(identifier)
    if not catalog.table_exists(table_id):
        return 0
    added = 0
    for snapshot in catalog.load_table(table_id).snapshots():
        summary = snapshot.summary
        if summary is not None and summary.get(RUN_ID_PROPERTY) == run_id:
            added += int(summary.get("added-records") or 0)
    return added


def latest_quality_results(catalog: Catalog,
                           identifier: Sequence[str]) -> list[dict[str, Any]] | None:
    """The rows of ``<table>__quality`` recorded by its newest run (a load's quality gate,
    or a ``dativo quality check``); ``None`` when the table has no quality table."""
    from dativo.iceberg.quality_table import history

    *namespace, name = tuple(identifier)
    quality_id = (*namespace, name + QUALITY_SUFFIX)
    if not catalog.table_exists(quality_id):
        return None
    rows = history(catalog.load_table(quality_id)).to_pylist()
    if not rows:
        return []
    newest = rows[-1]["run_id"]
    return [row for row in rows if row["run_id"] == newest]
