"""Issue 16, ``<table>__quality`` in many-stream runs: reading the history never
creates an empty table, the first load's rows are its first snapshot, later loads
append to it, and a history another writer created in the meantime is appended to,
not replaced (SqlCatalog tables, the real target process)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from dativo.contracts import Contract, FieldSpec
from dativo.iceberg.naming import RUN_ID_PROPERTY
from dativo.iceberg.quality_record import existing_quality_table, record_quality
from dativo.iceberg.quality_table import quality_rows
from dativo.iceberg.writer import IcebergWriter
from dativo.quality.results import CheckResult
from tests.conftest import emitted_states, run_target, singer_lines

TABLE = ("acme", "default", "orders")
QUALITY = ("acme", "default", "orders__quality")


def _load(config: Path, ids: range, state: int) -> None:
    lines = singer_lines([
        {"type": "SCHEMA", "stream": "orders", "key_properties": ["id"],
         "schema": {"properties": {"id": {"type": "integer"},
                                   "amount": {"type": ["integer", "null"]}}}},
        *({"type": "RECORD", "stream": "orders", "record": {"id": i, "amount": i % 7}}
          for i in ids),
        {"type": "STATE", "value": {"orders": state}}])
    result = run_target(config, lines)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert emitted_states(result) == [{"orders": state}]


def _profile(catalog: Catalog, snapshot_id: int) -> dict[str, float]:
    rows = catalog.load_table(QUALITY).scan().to_arrow().to_pylist()
    return {r["rule"]: r["measured"] for r in rows
            if r["snapshot_id"] == snapshot_id and r["kind"] == "profile"}


def test_a_fresh_tables_quality_history_starts_with_its_first_rows(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """The first load's profile is the quality table's first snapshot (no empty
    table committed before it); the second load appends a second snapshot."""
    config = target_config()
    _load(config, range(5), 1)
    catalog = open_catalog()
    data = catalog.load_table(TABLE).current_snapshot()
    quality = catalog.load_table(QUALITY)
    assert data is not None and quality.current_snapshot() is not None
    assert len(quality.snapshots()) == 1
    first = quality.current_snapshot()
    assert first.summary[RUN_ID_PROPERTY] == data.summary[RUN_ID_PROPERTY]
    profile = _profile(catalog, data.snapshot_id)
    assert profile["row_count"] == 5 and profile["reject_ratio"] == 0
    assert profile["distinct:amount"] == 5

    _load(config, range(5, 12), 2)
    second = catalog.load_table(TABLE).current_snapshot()
    quality = catalog.load_table(QUALITY)
    assert len(quality.snapshots()) == 2
    assert _profile(catalog, second.snapshot_id)["row_count"] == 7
    assert _profile(catalog, data.snapshot_id)["row_count"] == 5  # kept


CONTRACT = Contract(name="orders", fields=(FieldSpec("id", "integer"),), domain="default")


def _result(rule: str, measured: float) -> CheckResult:
    return CheckResult(rule=rule, kind="profile", scope="run", column=None,  # type: ignore[arg-type]
                       dimension=None, severity=None, business_impact=None,
                       measured=measured, threshold=None, outcome="info", message="m")


@pytest.fixture
def writers(catalog_props: dict[str, str]) -> tuple[IcebergWriter, IcebergWriter]:
    """Two writers on one catalog, as two target processes have."""
    return IcebergWriter(catalog_props, "acme"), IcebergWriter(catalog_props, "acme")


def test_a_quality_table_created_meanwhile_by_another_writer_is_appended_to(
    writers: tuple[IcebergWriter, IcebergWriter], open_catalog: Callable[[], Catalog],
) -> None:
    """Both writers found no ``orders__quality``; the second one's create loses the
    race, and its rows are appended to the winner's table: both loads are kept."""
    mine, other = writers
    mine.catalog.create_namespace_if_not_exists(TABLE[:-1])
    assert existing_quality_table(mine, CONTRACT) is None
    assert existing_quality_table(other, CONTRACT) is None
    won = record_quality(other, CONTRACT, None, quality_rows(
        [_result("row_count", 10)], run_id="a", snapshot_id=1), {RUN_ID_PROPERTY: "a"})
    assert len(won.snapshots()) == 1

    lost = record_quality(mine, CONTRACT, None, quality_rows(
        [_result("row_count", 20)], run_id="b", snapshot_id=2), {RUN_ID_PROPERTY: "b"})
    assert lost.metadata.table_uuid == won.metadata.table_uuid
    again = record_quality(mine, CONTRACT, lost, quality_rows(  # the returned table: no load
        [_result("row_count", 30)], run_id="b", snapshot_id=3), {RUN_ID_PROPERTY: "b"})
    assert again is lost

    table = open_catalog().load_table(QUALITY)
    assert len(table.snapshots()) == 3
    rows = table.scan().to_arrow().sort_by("snapshot_id").to_pylist()
    assert [(r["run_id"], r["snapshot_id"], r["measured"]) for r in rows] == [
        ("a", 1, 10.0), ("b", 2, 20.0), ("b", 3, 30.0)]
    assert [s.summary[RUN_ID_PROPERTY] for s in table.snapshots()] == ["a", "b", "b"]


def test_a_quality_table_that_cannot_take_the_rows_does_not_fail_the_load(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """A ``orders__quality`` made by hand with other columns: the data commit has
    landed, so the run still ends 0 with its STATE, and says what was not recorded."""
    catalog = open_catalog()
    catalog.create_namespace(TABLE[:-1])
    catalog.create_table(QUALITY, schema=pa.schema([pa.field("note", pa.string())]))
    config = target_config()
    lines = singer_lines([
        {"type": "SCHEMA", "stream": "orders", "key_properties": ["id"],
         "schema": {"properties": {"id": {"type": "integer"}}}},
        {"type": "RECORD", "stream": "orders", "record": {"id": 1}},
        {"type": "STATE", "value": {"orders": 1}}])
    result = run_target(config, lines)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr[-3000:]
    assert emitted_states(result) == [{"orders": 1}]
    assert "could not be recorded in acme.default.orders__quality" in stderr
    assert "Traceback" not in stderr
    assert open_catalog().load_table(TABLE).scan().to_arrow().column("id").to_pylist() == [1]
