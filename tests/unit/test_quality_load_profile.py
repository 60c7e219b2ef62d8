"""Issue 16 #4: a commit's anomaly profile from its files' statistics
(:meth:`CommitRows.stats`, decoded per Iceberg type onto the profile's scales) and its
distinct counts (:func:`distinct_estimates`), on a real local Iceberg table; the result
matches :func:`dativo.quality.anomaly.profile`, which reads every row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from dativo.contracts import Contract, FieldSpec
from dativo.iceberg.quality_gate import CommitRows
from dativo.iceberg.staging import FileBatch
from dativo.iceberg.writer import IcebergWriter
from dativo.quality import anomaly
from dativo.quality.load_profile import distinct_estimates, load_profile

CONTRACT = Contract(name="t", fields=(FieldSpec("id", "integer", required=True,
                                                primary_key_position=1),), domain="d")
UTC = dt.timezone.utc
SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string()),
    pa.field("price", pa.decimal128(10, 2)), pa.field("ratio", pa.float64()),
    pa.field("day", pa.date32()), pa.field("at", pa.time64("us")),
    pa.field("ts", pa.timestamp("us", tz="UTC")), pa.field("blob", pa.binary()),
    pa.field("tags", pa.list_(pa.string())),
])
ROWS = pa.table({
    "id": [1, 2, 3, 4], "name": ["a", "b", "b", None],
    "price": [Decimal("1.50"), None, Decimal("-2.25"), Decimal("10.00")],
    "ratio": [0.5, None, None, 2.0],
    "day": [dt.date(2026, 1, 2), dt.date(1970, 1, 11), None, dt.date(2026, 1, 1)],
    "at": [dt.time(0, 0, 1), dt.time(12, 0), None, None],
    "ts": [dt.datetime(2026, 1, 1, tzinfo=UTC), None, None,
           dt.datetime(1970, 1, 1, 0, 0, 2, tzinfo=UTC)],
    "blob": [b"x", None, b"y", b"z"], "tags": [["t"], None, [], ["u", "v"]],
}, schema=SCHEMA)


@pytest.fixture
def writer(tmp_path: Path) -> IcebergWriter:
    return IcebergWriter({"type": "sql", "uri": f"sqlite:///{tmp_path / 'c.db'}",
                          "warehouse": (tmp_path / "wh").as_uri()}, "acme")


def test_the_stats_profile_matches_the_row_profile(writer: IcebergWriter) -> None:
    """Two files in one commit: counts add up, bounds are the extremes of both, and every
    metric equals the one computed from the rows (strings have no min/max; binary and
    nested columns have no distinct count, and nested ones no null ratio)."""
    table = writer.ensure_table(CONTRACT, SCHEMA)
    files = writer.write_files(table, ROWS.slice(0, 2)) + writer.write_files(table,
                                                                              ROWS.slice(2))
    seen: dict[str, float] = {}

    def gate(view: CommitRows) -> Mapping[str, str]:
        stats = view.stats()
        assert stats.scalar == ("id", "name", "price", "ratio", "day", "at", "ts")
        seen.update(load_profile(stats, distinct_estimates(view.run_rows, stats.scalar,
                                                           rows=stats.rows), rejects=1))
        return {}

    writer.commit_files(table, [FileBatch(files)], {}, gate=gate)
    from_rows = anomaly.profile(ROWS.drop_columns(["blob", "tags"]), 1)
    assert {k: v for k, v in seen.items() if k != "null_ratio:blob"} == pytest.approx(
        from_rows)
    assert seen["min:day"] == 10 and seen["max:ts"] == 1_767_225_600
    assert seen["min:at"] == 1 and seen["max:price"] == 10
    assert seen["null_ratio:blob"] == 0.25 and "distinct:blob" not in seen
    assert not any(k.endswith(":tags") for k in seen)
    assert seen["reject_ratio"] == 0.2


@pytest.mark.parametrize("rows", [3, 10_000_000], ids=["exact", "sketch"])
def test_distinct_counts_every_chunk_of_a_wide_reader(rows: int) -> None:
    """1,100 columns are read in three projections (one per 512), each counted; a column
    of nulls counts 0."""
    names = [f"c{i}" for i in range(1_100)]
    data = pa.table({n: [1, 2, 3 if i % 2 else None] for i, n in enumerate(names)})
    reads: list[int] = []

    def read(columns: list[str]) -> pa.RecordBatchReader:
        reads.append(len(columns))
        return data.select(columns).to_reader()

    found = distinct_estimates(read, names, rows=rows)
    assert reads == [512, 512, 76]
    assert found == {n: 3.0 if i % 2 else 2.0 for i, n in enumerate(names)}
    assert distinct_estimates(read, [], rows=rows) == {}
