"""Issue 16: IcebergWriter.commit_files(gate=): the gate sees the rows a commit adds and
the would-be snapshot, its properties land in the snapshot summary (through the staged
``AddSnapshotUpdate``, pyiceberg's ``Transaction._updates``), and a gate that raises
leaves the table as it was."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pytest

from dativo.errors import QualityError
from dativo.iceberg.quality_gate import CommitRows
from dativo.iceberg.staging import FileBatch
from dativo.iceberg.writer import IcebergWriter
from tests.quality_writer import CONTRACT, SCHEMA, sql_writer


@pytest.fixture
def writer(tmp_path: Path) -> IcebergWriter:
    return sql_writer(tmp_path)


def batch(writer: IcebergWriter, ids: list[int]) -> list[FileBatch]:
    table = writer.ensure_table(CONTRACT, SCHEMA)
    data = pa.table({"id": ids, "v": [str(i) for i in ids]}, schema=SCHEMA)
    return [FileBatch(writer.write_files(table, data))]


def test_the_gate_sees_run_and_table_rows_and_annotates_the_snapshot(
        writer: IcebergWriter) -> None:
    table = writer.ensure_table(CONTRACT, SCHEMA)
    writer.commit_files(table, batch(writer, [1, 2]), {})
    seen: dict[str, list[int]] = {}

    def gate(view: CommitRows) -> Mapping[str, str]:
        seen["run"] = sorted(view.run_rows(["id"]).read_all().column("id").to_pylist())
        seen["table"] = sorted(view.table_rows(None).read_all().column("id").to_pylist())
        return {"dativo.quality": '{"pass":1}'}

    snapshot = writer.commit_files(table, batch(writer, [3]), {"k": "v"}, gate=gate)
    assert seen == {"run": [3], "table": [1, 2, 3]}
    table.refresh()
    current = table.current_snapshot()
    assert current is not None and current.snapshot_id == snapshot
    assert (current.summary["dativo.quality"], current.summary["k"]) == ('{"pass":1}', "v")


def test_a_raising_gate_commits_nothing(writer: IcebergWriter) -> None:
    table = writer.ensure_table(CONTRACT, SCHEMA)
    before = writer.commit_files(table, batch(writer, [1]), {})

    def gate(view: CommitRows) -> Mapping[str, str]:
        raise QualityError("blocked", stream="s", table=view.table)

    with pytest.raises(QualityError, match="blocked"):
        writer.commit_files(table, batch(writer, [2]), {}, gate=gate)
    table.refresh()
    assert table.current_snapshot().snapshot_id == before
    assert table.scan().to_arrow().column("id").to_pylist() == [1]


def test_the_quality_table_keeps_results_and_profiles_per_load(writer: IcebergWriter) -> None:
    from dativo.iceberg.quality_table import history, profiles, quality_rows
    from dativo.quality.results import CheckResult

    def result(rule: str, kind: str, value: float) -> CheckResult:
        return CheckResult(rule=rule, kind=kind, scope="run", column=None,  # type: ignore[arg-type]
                           dimension=None, severity=None, business_impact=None,
                           measured=value, threshold=None,
                           outcome="info" if kind == "profile" else "pass", message="m")

    quality = writer.quality_table(CONTRACT)
    assert quality.name() == ("acme", "d", "t__quality")
    for snapshot, count in ((11, 100.0), (None, 5.0), (12, 110.0), (13, 90.0)):
        rows = quality_rows([result("row_count", "profile", count),
                             result("rowCount", "rule", count)], run_id="r",
                            snapshot_id=snapshot)
        writer.commit_files(quality, [FileBatch(writer.write_files(quality, rows))], {})
    quality.refresh()
    assert history(quality).num_rows == 8
    assert history(quality, last=2).column("snapshot_id").to_pylist() == [12, 12, 13, 13]
    assert profiles(quality, last=2) == [{"row_count": 110.0}, {"row_count": 90.0}]
    assert profiles(quality, last=5) == [{"row_count": 100.0}, {"row_count": 110.0},
                                         {"row_count": 90.0}]


def test_a_commit_that_lost_a_race_is_gated_again_on_the_new_snapshot(
        writer: IcebergWriter) -> None:
    table = writer.ensure_table(CONTRACT, SCHEMA)
    writer.commit_files(table, batch(writer, [1]), {})
    other = writer.catalog.load_table(table.name())
    seen: list[list[int]] = []

    def gate(view: CommitRows) -> Mapping[str, str]:
        seen.append(sorted(view.table_rows(["id"]).read_all().column("id").to_pylist()))
        if len(seen) == 1:  # another writer commits while this commit is being checked
            writer.commit_files(other, batch(writer, [2]), {})
        return {"dativo.quality": str(len(seen))}

    writer.commit_files(table, batch(writer, [3]), {}, gate=gate)
    assert seen == [[1, 3], [1, 2, 3]]
    table.refresh()
    assert table.current_snapshot().summary["dativo.quality"] == "2"
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2, 3]
