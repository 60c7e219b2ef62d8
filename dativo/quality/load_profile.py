"""One commit's anomaly profile, cheaply (issue 16, point 4).

:func:`dativo.quality.anomaly.profile` measures everything in DuckDB over the rows; on
every commit of every table that would read every column of every row again. Most of
the profile is already in the commit's data files: Iceberg keeps, per file, the row
count and per column the null count and the lower and upper bounds. So the row count,
the null ratios and min/max come from those statistics (:class:`CommitStats`, built by
:meth:`dativo.iceberg.quality_gate.CommitRows.stats`), and only the distinct estimates
read rows: DuckDB's ``approx_count_distinct`` (HyperLogLog, a few KiB per column) over
a streamed reader of the scalar columns, :data:`~dativo.quality.anomaly.CHUNK_COLUMNS`
at a time, so no column is ever held in memory whole.

The metric names are :mod:`dativo.quality.anomaly`'s (``row_count``, ``reject_ratio``,
``null_ratio:<col>``, ``distinct:<col>``, ``min:<col>``, ``max:<col>``), so its
:func:`~dativo.quality.anomaly.flags` and the recorded history read the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dativo.quality.anomaly import CHUNK_COLUMNS, REJECT_RATIO, ROW_COUNT

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

EXACT_CELLS = 1_000_000
"""Up to this many rows x columns per query, distinct values are counted exactly
(``count(DISTINCT hash(c))``: 8 bytes per value, no string copied, ~24 MB of hash
tables at most); beyond, DuckDB's HyperLogLog sketch (a few KiB per column). The sketch
is off by up to ~25% around 1,000 values (1,050 ids estimated as 1,329), which would
make a load's distinct count jump for no reason; above a million cells it is within a
few percent."""
DUCKDB_THREADS = 2
"""Threads of the distinct-estimate query: the commit thread waits for it, and the
machine's other cores still parse and write the next batches."""


@dataclass(frozen=True, slots=True)
class ColumnStats:
    """One top-level column's statistics over the files a commit adds."""

    nulls: int | None
    """Null values; ``None`` when a file kept no count (then no null ratio)."""
    low: float | None = None
    """The least value as a number (see :class:`CommitStats`); ``None``: not comparable
    (strings, booleans, binary) or no value."""
    high: float | None = None


@dataclass(frozen=True, slots=True)
class CommitStats:
    """What the data files a commit adds say of their rows.

    Bounds are floats on :func:`~dativo.quality.anomaly.profile`'s scales: numbers and
    decimals as doubles, dates as days and timestamps as seconds since 1970-01-01 UTC,
    times as seconds since midnight.
    """

    rows: int
    columns: dict[str, ColumnStats] = field(default_factory=dict)
    """Top-level primitive columns, in table order (nested ones have no own stats)."""
    scalar: tuple[str, ...] = ()
    """The columns whose distinct values DuckDB can estimate (not binary, not nested)."""


def load_profile(stats: CommitStats, distinct: Mapping[str, float], rejects: int
                 ) -> dict[str, float]:
    """The commit's metrics by name, in :func:`~dativo.quality.anomaly.profile`'s order:
    the row count, the reject ratio (``rejects`` over rows + rejects; 0 for neither),
    then per column its null ratio, distinct estimate, min and max where known."""
    if rejects < 0:
        raise ValueError(f"rejects {rejects} is negative")
    total = stats.rows + rejects
    values = {ROW_COUNT: float(stats.rows), REJECT_RATIO: rejects / total if total else 0.0}
    for name, column in stats.columns.items():
        if column.nulls is not None:
            values[f"null_ratio:{name}"] = column.nulls / stats.rows if stats.rows else 0.0
        if name in distinct:
            values[f"distinct:{name}"] = float(distinct[name])
        if column.low is not None:
            values[f"min:{name}"] = column.low
        if column.high is not None:
            values[f"max:{name}"] = column.high
    return values


def connection() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for :func:`distinct_estimates`: opening one costs ~25 ms, as
    much as a small commit, so a run opens one and passes it to every call."""
    import duckdb

    return duckdb.connect(config={"threads": DUCKDB_THREADS})


def distinct_estimates(read: Callable[[Sequence[str]], pa.RecordBatchReader],
                       columns: Sequence[str], *, rows: int,
                       con: duckdb.DuckDBPyConnection | None = None) -> dict[str, float]:
    """Each column's distinct values (nulls aside), by name: exact while ``rows`` times
    the columns of a query stay within :data:`EXACT_CELLS`, else DuckDB's HyperLogLog
    estimate.

    ``read(names)`` returns a fresh reader of the commit's rows projected to ``names``;
    it is called once per :data:`CHUNK_COLUMNS` columns (a 5,000-column table is read
    in 10 passes rather than held in memory). Columns are queried under positional
    aliases, so any name is safe and ``A`` and ``a`` stay two columns. ``con``: a
    connection of :func:`connection` (a cursor of it is used, so it is not shared
    with another thread); by default a private one is opened and closed.
    """
    if not columns:
        return {}
    found: dict[str, float] = {}
    cursor = connection() if con is None else con.cursor()
    try:
        for start in range(0, len(columns), CHUNK_COLUMNS):
            chunk = list(columns[start:start + CHUNK_COLUMNS])
            exact = rows * len(chunk) <= EXACT_CELLS
            found.update(_estimate(cursor, read(chunk), chunk, exact=exact))
    finally:
        cursor.close()
    return found


def _estimate(con: duckdb.DuckDBPyConnection, reader: pa.RecordBatchReader,
              names: list[str], *, exact: bool) -> dict[str, float]:
    import pyarrow as pa

    aliases = [f"c{i}" for i in range(len(names))]
    schema = pa.schema([f.with_name(a) for f, a in zip(reader.schema, aliases, strict=True)])
    renamed = pa.RecordBatchReader.from_batches(
        schema, (batch.rename_columns(aliases) for batch in reader))
    con.register("dativo_distinct", renamed)
    try:
        counts = [f'count(DISTINCT hash("{a}")) FILTER (WHERE "{a}" IS NOT NULL)' if exact
                  else f'approx_count_distinct("{a}")' for a in aliases]
        row = con.execute(f"SELECT {', '.join(counts)} FROM dativo_distinct").fetchone()
    finally:
        con.unregister("dativo_distinct")
    assert row is not None  # an aggregate without GROUP BY returns one row
    return {name: float(value or 0) for name, value in zip(names, row, strict=True)}
