"""The quality history beside a stream's table: ``<table>__quality``.

One row per rule (and per anomaly metric) per commit: the
:class:`~dativo.quality.results.CheckResult` plus the run id, the snapshot id the
commit made (null for a commit the gate blocked: its failures are recorded so a user
can see why) and the time. Created on first use in the table's namespace, like the
dead-letter table; read back for anomaly bands and ``dativo quality history``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from dativo.quality.results import CheckResult

QUALITY_SCHEMA = pa.schema([
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("snapshot_id", pa.int64()),
    pa.field("checked_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("rule", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("scope", pa.string(), nullable=False),
    pa.field("column", pa.string()),
    pa.field("dimension", pa.string()),
    pa.field("severity", pa.string()),
    pa.field("business_impact", pa.string()),
    pa.field("measured", pa.float64()),
    pa.field("threshold", pa.string()),
    pa.field("outcome", pa.string(), nullable=False),
    pa.field("message", pa.string(), nullable=False),
])
"""The columns of ``<table>__quality``."""


def quality_rows(results: Sequence[CheckResult], *, run_id: str,
                 snapshot_id: int | None, checked_at: datetime | None = None) -> pa.Table:
    """``results`` as rows of :data:`QUALITY_SCHEMA` (one Arrow table, no per-row
    Python beyond building the columns)."""
    at = checked_at or datetime.now(timezone.utc)
    rows = [asdict(r) for r in results]
    columns = {f.name: [row.get(f.name) for row in rows] for f in QUALITY_SCHEMA
               if f.name not in ("run_id", "snapshot_id", "checked_at")}
    n = len(rows)
    return pa.table({"run_id": [run_id] * n, "snapshot_id": [snapshot_id] * n,
                     "checked_at": [at] * n, **columns}, schema=QUALITY_SCHEMA)


def history(table: Table, *, last: int | None = None) -> pa.Table:
    """The recorded rows, oldest first; ``last``: only the rows of the last ``last``
    snapshot ids (loads), for the anomaly bands and the CLI."""
    rows = table.scan().to_arrow().sort_by([("checked_at", "ascending")])
    if last is None or not rows.num_rows:
        return rows
    loads = [s for s in dict.fromkeys(rows.column("snapshot_id").to_pylist()) if s is not None]
    keep = set(loads[-last:])
    import pyarrow.compute as pc

    return rows.filter(pc.is_in(rows.column("snapshot_id"), pa.array(sorted(keep), pa.int64())))


def profiles(table: Table, *, last: int) -> list[dict[str, float]]:
    """The profile metrics (``kind = 'profile'``) of the last ``last`` committed loads,
    oldest first, one ``{metric: value}`` per load: the history
    :func:`dativo.quality.anomaly.flags` compares a new load with. Blocked loads (no
    snapshot) are not part of it. Only the profile rows' four columns are read (the
    target reads this once per table per run)."""
    from pyiceberg.expressions import EqualTo

    if last <= 0 or table.current_snapshot() is None:
        return []
    rows = table.scan(row_filter=EqualTo("kind", "profile"),
                      selected_fields=("snapshot_id", "checked_at", "rule", "measured")
                      ).to_arrow().sort_by([("checked_at", "ascending")])
    loads: dict[int, dict[str, float]] = {}
    for snapshot, rule, measured in zip(rows.column("snapshot_id").to_pylist(),
                                        rows.column("rule").to_pylist(),
                                        rows.column("measured").to_pylist(), strict=True):
        if snapshot is not None and measured is not None:
            loads.setdefault(snapshot, {})[rule] = measured
    return list(loads.values())[-last:]
