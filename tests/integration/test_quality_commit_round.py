"""Issue 16: a publish's quality gates are all or nothing across its tables.

Two streams with ``severity: error`` rules in one strict run publish together; when the
second one's rule fails, the first must not land either (no STATE is emitted, so the
rerun from the last STATE would load its rows twice). Checked through the real target
on SqlCatalog tables, then at the writer: :meth:`IcebergWriter.check_files` runs the gate
without committing, and ``commit_files(checked=)`` commits that plan without running the
gate again, unless another writer committed in between.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from pyiceberg.catalog import Catalog

from dativo.errors import QualityError
from dativo.iceberg.quality_gate import CommitRows
from dativo.iceberg.staging import FileBatch
from dativo.iceberg.writer import IcebergWriter
from tests.conftest import emitted_states, run_target, singer_lines
from tests.quality_writer import CONTRACT, SCHEMA, sql_writer

TENANT = "acme"
STREAMS = ("orders", "refunds")  # staged, so gated, in this order


def schema(stream: str) -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "key_properties": ["id"], "schema": {
        "properties": {"id": {"type": "integer"}, "status": {"type": ["string", "null"]}}}}


def write_contracts(contracts: Path) -> None:
    """Each stream: ``status`` must never be null (``severity: error``)."""
    for stream in STREAMS:
        doc = {"apiVersion": "v3.0.2", "kind": "DataContract", "id": stream, "name": stream,
               "version": "1.0.0", "status": "active", "domain": "shop",
               "schema": [{"name": stream, "properties": [
                   {"name": "id", "logicalType": "integer", "primaryKey": True,
                    "required": True},
                   {"name": "status", "logicalType": "string", "quality": [
                       {"metric": "nullValues", "mustBe": 0, "severity": "error"}]}]}]}
        path = contracts / TENANT / "shop" / f"{stream}.odcs.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


def load(ids: range, state: Any, *, null_in: str | None = None) -> bytes:
    """Both streams' rows ``ids`` then one STATE; ``null_in``'s last row has no status."""
    messages: list[dict[str, Any]] = []
    for stream in STREAMS:
        messages.append(schema(stream))
        messages += [{"type": "RECORD", "stream": stream, "record": {
            "id": i, "status": None if stream == null_in and i == ids[-1] else "ok"}}
            for i in ids]
    return singer_lines([*messages, {"type": "STATE", "value": state}])


@pytest.fixture
def strict_target(tmp_path: Path, target_config: Callable[..., Path]) -> Path:
    write_contracts(tmp_path / "contracts")
    return target_config(validation_mode="strict", contracts_dir=str(tmp_path / "contracts"),
                         commit_interval_seconds=3600)


def snapshots(catalog: Catalog) -> dict[str, int | None]:
    ids = {}
    for stream in STREAMS:
        snapshot = catalog.load_table((TENANT, "shop", stream)).current_snapshot()
        ids[stream] = snapshot.snapshot_id if snapshot else None
    return ids


def ids_of(catalog: Catalog, stream: str) -> list[int]:
    table = catalog.load_table((TENANT, "shop", stream))
    return sorted(table.scan().to_arrow().column("id").to_pylist())


def history(catalog: Catalog, stream: str) -> list[dict[str, Any]]:
    return catalog.load_table((TENANT, "shop", f"{stream}__quality")).scan().to_arrow(
        ).to_pylist()


def test_two_gated_tables_that_pass_land_together_with_the_state(
        strict_target: Path, open_catalog: Callable[[], Catalog]) -> None:
    result = run_target(strict_target, load(range(1, 4), {"upto": 3}))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert emitted_states(result) == [{"upto": 3}]
    stderr = result.stderr.decode()
    catalog = open_catalog()
    for stream, snapshot_id in snapshots(catalog).items():
        # Checked before either commits, then committed without running the gate again.
        assert len(re.findall(rf"Stream '{stream}': \d+ quality check", stderr)) == 1
        assert ids_of(catalog, stream) == [1, 2, 3]
        snapshot = catalog.load_table((TENANT, "shop", stream)).current_snapshot()
        assert snapshot.summary["dativo.state"] == '{"upto":3}'
        assert json.loads(snapshot.summary["dativo.quality"])["fail"] == {}
        rows = [r for r in history(catalog, stream) if r["kind"] == "rule"]
        assert [(r["rule"], r["outcome"], r["snapshot_id"]) for r in rows] == [
            ("status.nullValues", "pass", snapshot_id)]  # gated once, recorded once


def test_a_block_in_the_second_table_lands_neither_and_the_rerun_loads_once(
        strict_target: Path, open_catalog: Callable[[], Catalog]) -> None:
    first = run_target(strict_target, load(range(1, 4), {"upto": 3}))
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    catalog = open_catalog()
    before = snapshots(catalog)

    # Rows 4-6 of both streams; refunds' row 6 breaks its rule. orders passes its gate,
    # but must not commit: no STATE follows, and the rerun sends its rows again.
    blocked = run_target(strict_target, load(range(4, 7), {"upto": 6}, null_in="refunds"))
    stderr = blocked.stderr.decode()
    assert blocked.returncode == 2, stderr[-2000:]
    assert emitted_states(blocked) == []
    assert ("stream 'refunds', table acme.shop.refunds: quality rule status.nullValues "
            "(nullValues, run scope) measured 1, which fails mustBe 0"
            ) in stderr.strip().splitlines()[-1]
    assert snapshots(catalog) == before
    assert ids_of(catalog, "orders") == ids_of(catalog, "refunds") == [1, 2, 3]
    failed = [(r["rule"], r["measured"], r["outcome"]) for r in history(catalog, "refunds")
              if r["snapshot_id"] is None and r["outcome"] == "fail"]
    assert failed == [("status.nullValues", 1.0, "fail")]
    assert all(r["snapshot_id"] == before["orders"] for r in history(catalog, "orders"))

    # The fix: the tap resumes after {"upto": 3}, the last STATE emitted.
    rerun = run_target(strict_target, load(range(4, 7), {"upto": 6}))
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert emitted_states(rerun) == [{"upto": 6}]
    for stream in STREAMS:
        assert ids_of(catalog, stream) == [1, 2, 3, 4, 5, 6]  # none lost, none doubled


# -- the writer: check_files, then commit_files(checked=) -------------------------------
@pytest.fixture
def writer(tmp_path: Path) -> IcebergWriter:
    return sql_writer(tmp_path, TENANT)


def batch(writer: IcebergWriter, ids: list[int], value: str = "new",
          keyed: bool = False) -> list[FileBatch]:
    table = writer.ensure_table(CONTRACT, SCHEMA)
    data = pa.table({"id": ids, "v": [value] * len(ids)}, schema=SCHEMA)
    keys = data.select(["id"]) if keyed else None
    return [FileBatch(writer.write_files(table, data), keys)]


class CountingGate:
    """A gate that records the table rows of every commit it sees."""

    def __init__(self, block: bool = False) -> None:
        self.seen: list[list[tuple[int, str]]] = []
        self.block = block

    def __call__(self, view: CommitRows) -> Mapping[str, str]:
        rows = view.table_rows(["id", "v"]).read_all().to_pylist()
        self.seen.append(sorted((r["id"], r["v"]) for r in rows))
        if self.block:
            raise QualityError("blocked", stream="t", table=view.table, failures=())
        return {"dativo.quality": f"check {len(self.seen)}"}


def rows(table: Any) -> list[tuple[int, str]]:
    table.refresh()
    return sorted((r["id"], r["v"]) for r in table.scan().to_arrow().to_pylist())


@pytest.mark.parametrize("mode", ["append", "upsert", "overwrite"])
def test_a_checked_commit_runs_the_gate_once(writer: IcebergWriter, mode: Any) -> None:
    table = writer.ensure_table(CONTRACT, SCHEMA)
    writer.commit_files(table, batch(writer, [1, 2], "old"), {})
    changes, gate = batch(writer, [2, 3], keyed=mode == "upsert"), CountingGate()
    checked = writer.check_files(table, changes, {"k": "v"}, mode=mode, gate=gate)
    assert rows(table) == [(1, "old"), (2, "old")]  # checking commits nothing
    writer.commit_files(table, changes, {"k": "v"}, mode=mode, gate=gate, checked=checked)
    expected = {"append": [(1, "old"), (2, "new"), (2, "old"), (3, "new")],
                "upsert": [(1, "old"), (2, "new"), (3, "new")],
                "overwrite": [(2, "new"), (3, "new")]}[mode]
    assert gate.seen == [expected]  # the check saw the snapshot that landed
    assert rows(table) == expected
    summary = table.current_snapshot().summary
    assert (summary["dativo.quality"], summary["k"]) == ("check 1", "v")


def test_a_checked_commit_is_gated_again_after_a_concurrent_commit(
        writer: IcebergWriter) -> None:
    table = writer.ensure_table(CONTRACT, SCHEMA)
    writer.commit_files(table, batch(writer, [1], "old"), {})
    changes, gate = batch(writer, [3]), CountingGate()
    checked = writer.check_files(table, changes, {}, gate=gate)
    other = writer.catalog.load_table(table.name())
    writer.commit_files(other, batch(writer, [2], "other"), {})  # lands after the check
    writer.commit_files(table, changes, {}, gate=gate, checked=checked)
    assert gate.seen == [[(1, "old"), (3, "new")], [(1, "old"), (2, "other"), (3, "new")]]
    assert rows(table) == [(1, "old"), (2, "other"), (3, "new")]
    assert table.current_snapshot().summary["dativo.quality"] == "check 2"


def test_a_blocked_check_commits_nothing(writer: IcebergWriter) -> None:
    table = writer.ensure_table(CONTRACT, SCHEMA)
    before = writer.commit_files(table, batch(writer, [1], "old"), {})
    with pytest.raises(QualityError):
        writer.check_files(table, batch(writer, [2]), {}, gate=CountingGate(block=True))
    table.refresh()
    assert table.current_snapshot().snapshot_id == before
    assert rows(table) == [(1, "old")]


def test_a_checked_commit_blocked_on_its_second_gate_commits_nothing(
        writer: IcebergWriter) -> None:
    """The rare race: the rows another writer committed after the check make the gate,
    run again, block; only that writer's commit is in the table."""
    table = writer.ensure_table(CONTRACT, SCHEMA)
    writer.commit_files(table, batch(writer, [1], "old"), {})
    changes, gate = batch(writer, [3]), CountingGate()
    checked = writer.check_files(table, changes, {}, gate=gate)
    other = writer.catalog.load_table(table.name())
    landed = writer.commit_files(other, batch(writer, [2], "other"), {})
    gate.block = True
    with pytest.raises(QualityError):
        writer.commit_files(table, changes, {}, gate=gate, checked=checked)
    assert len(gate.seen) == 2
    table.refresh()
    assert table.current_snapshot().snapshot_id == landed
    assert rows(table) == [(1, "old"), (2, "other")]
