"""Issue 16 points 3-5: anomaly detection with no configuration, the reject ratio, the
drift history and the quality metrics, through the real target process on real
Iceberg (SqlCatalog) tables, recorded in ``<table>__quality``.

One catalog serves the eleven-plus loads of the acceptance case (10 loads of about
1,000 rows, then 10 rows: flagged; then 1,050: not), so the module runs in seconds.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyiceberg.catalog import Catalog, load_catalog

from tests.conftest import BIN, emitted_states, run_target, singer_lines

TENANT = "acme"
PROPERTIES = {"id": {"type": "integer"}, "amount": {"type": ["integer", "null"]},
              "status": {"type": ["string", "null"]},
              "created": {"type": ["string", "null"], "format": "date-time"}}


def schema(stream: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "key_properties": ["id"],
            "schema": {"properties": properties or PROPERTIES}}


def rows(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` rows of a steady source: ids spread over 0..99,999, amounts 1..50,
    a tenth of the statuses null, times within one month."""
    rng = random.Random(seed)
    return [{"id": i, "amount": rng.randint(1, 50),
             "status": rng.choice(["new", "paid", "shipped", "new", "paid", "shipped",
                                   "new", "paid", "shipped", None]),
             "created": f"2026-01-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"}
            for i in sorted(rng.sample(range(100_000), count))]


def load(config: Path, stream: str, records: list[dict[str, Any]], state: Any, *,
         properties: dict[str, Any] | None = None) -> subprocess.CompletedProcess[bytes]:
    lines = singer_lines([schema(stream, properties),
                          *({"type": "RECORD", "stream": stream, "record": r} for r in records),
                          {"type": "STATE", "value": state}])
    return run_target(config, lines)


def quality_rows(catalog: Catalog, table: tuple[str, ...]) -> list[dict[str, Any]]:
    history = catalog.load_table((*table[:-1], f"{table[-1]}__quality"))
    return history.scan().to_arrow().sort_by("checked_at").to_pylist()


def of_snapshot(catalog: Catalog, table: tuple[str, ...], kind: str) -> dict[str, dict]:
    """The current snapshot's ``kind`` rows of the table's quality history, by rule."""
    snapshot = catalog.load_table(table).current_snapshot()
    assert snapshot is not None
    return {r["rule"]: r for r in quality_rows(catalog, table)
            if r["snapshot_id"] == snapshot.snapshot_id and r["kind"] == kind}


def config_file(folder: Path, catalog: dict[str, str], **more: Any) -> Path:
    path = folder / f"target-{len(list(folder.glob('target-*.json')))}.json"
    path.write_text(json.dumps({"tenant_id": TENANT, "validation_mode": "warn",
                                "catalog": catalog, **more}))
    return path


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Ten loads of 985 to 1,015 rows of ``orders``, with no contract and no quality
    setting; then one of 10 rows (metrics exported to a textfile), then one of 1,050."""
    folder = tmp_path_factory.mktemp("anomaly")
    (folder / "warehouse").mkdir()
    (folder / "metrics").mkdir()
    warehouse = folder / "warehouse"
    props = {"name": "test", "type": "sql", "uri": f"sqlite:///{warehouse / 'catalog.db'}",
             "warehouse": warehouse.as_uri()}
    config = config_file(folder, props)
    jitter = [3, -12, 8, 15, -5, 0, -15, 11, -7, 4]
    for run, delta in enumerate(jitter):
        result = load(config, "orders", rows(1_000 + delta, run), {"run": run})
        assert result.returncode == 0, result.stderr.decode()[-3000:]
    catalog = load_catalog(**props)
    small = load(config_file(folder, props, metrics={"textfile_dir": str(folder / "metrics")}),
                 "orders", rows(10, 100), {"run": "small"})
    small_flags = of_snapshot(catalog, ("acme", "default", "orders"), "anomaly")
    usual = load(config, "orders", rows(1_050, 101), {"run": "usual"})
    return {"config": config, "props": props, "catalog": catalog, "folder": folder,
            "small": small, "small_flags": small_flags, "usual": usual}


def test_a_load_of_10_rows_after_ten_of_about_1000_is_flagged_not_blocked(
        steady: dict[str, Any]) -> None:
    small = steady["small"]
    assert small.returncode == 0, small.stderr.decode()[-3000:]
    assert emitted_states(small) == [{"run": "small"}]
    flag = steady["small_flags"]["row_count"]
    assert flag["outcome"] == "flag" and flag["measured"] == 10
    assert "median" in flag["threshold"] and "over 10 loads" in flag["threshold"]
    warnings = [line for line in small.stderr.decode().splitlines()
                if "WARNING" in line and "row_count = 10 is below its usual range" in line]
    assert len(warnings) == 1
    assert "Stream 'orders', table acme.default.orders" in warnings[0]
    assert "acme.default.orders__quality" in warnings[0]
    assert flag["snapshot_id"] is not None  # recorded with the commit: loaded all the same


def test_a_load_of_1050_rows_is_not_flagged(steady: dict[str, Any]) -> None:
    usual = steady["usual"]
    assert usual.returncode == 0, usual.stderr.decode()[-3000:]
    checks = of_snapshot(steady["catalog"], ("acme", "default", "orders"), "anomaly")
    assert checks["row_count"]["outcome"] == "pass"
    assert checks["row_count"]["measured"] == 1_050
    assert [r["rule"] for r in checks.values() if r["outcome"] == "flag"] == []
    assert "anomaly:" not in usual.stderr.decode()


def test_each_load_records_its_profile(steady: dict[str, Any]) -> None:
    """Row count and per column null ratio, distinct estimate, min/max of numbers and
    timestamps: one profile row set per committed load."""
    profile = of_snapshot(steady["catalog"], ("acme", "default", "orders"), "profile")
    assert profile["row_count"]["measured"] == 1_050
    assert profile["reject_ratio"]["measured"] == 0
    assert 0.05 < profile["null_ratio:status"]["measured"] < 0.15
    assert profile["null_ratio:id"]["measured"] == 0
    assert profile["distinct:status"]["measured"] == 3
    assert profile["min:amount"]["measured"] == 1 and profile["max:amount"]["measured"] == 50
    assert profile["distinct:id"]["measured"] == 1_050  # exact at this size
    january = 1_767_225_600  # 2026-01-01T00:00:00Z, seconds
    assert january <= profile["min:created"]["measured"] < profile["max:created"]["measured"]
    assert profile["max:created"]["measured"] < january + 31 * 86_400
    assert "min:status" not in profile  # strings have no min/max
    loads = {r["snapshot_id"] for r in quality_rows(steady["catalog"],
                                                   ("acme", "default", "orders"))
             if r["kind"] == "profile"}
    assert len(loads) == 12


def test_the_quality_metrics_are_exported(steady: dict[str, Any]) -> None:
    text = (steady["folder"] / "metrics" / "target-dativo-iceberg.prom").read_text()
    lines = text.splitlines()
    flagged = [ln for ln in lines if ln.startswith("dativo_quality_checks_total{")
               and 'kind="anomaly"' in ln and 'outcome="flag"' in ln]
    assert flagged and float(flagged[0].split()[-1]) >= 1
    assert any(ln.startswith("dativo_quality_measured_value{") and 'rule="row_count"' in ln
               and ln.split()[-1] == "10.0" for ln in lines), text
    assert all('table="acme.default.orders"' in ln and 'tenant="acme"' in ln
               and 'plugin="target-dativo-iceberg"' in ln for ln in flagged)


def test_the_reject_ratio_counts_the_rejects_since_the_last_commit(
        steady: dict[str, Any]) -> None:
    """5 of 105 records contradict the SCHEMA (warn mode: dead-lettered): the load's
    reject ratio is 5/105."""
    good = rows(100, 7)
    bad = [{"id": f"bad-{i}", "amount": 1} for i in range(5)]
    result = load(steady["config"], "payments", good + bad, {"payments": 1})
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    profile = of_snapshot(steady["catalog"], ("acme", "default", "payments"), "profile")
    assert profile["row_count"]["measured"] == 100
    assert profile["reject_ratio"]["measured"] == pytest.approx(5 / 105)
    dead = steady["catalog"].load_table(("acme", "default", "payments__dead_letter"))
    assert dead.scan().to_arrow().num_rows == 5
    tables = {t[-1] for t in steady["catalog"].list_tables(("acme", "default"))}
    assert "payments__dead_letter__quality" not in tables  # dead letters are never profiled


def write_contract(contracts: Path, name: str, *, block: bool = False) -> None:
    doc: dict[str, Any] = {
        "apiVersion": "v3.0.2", "kind": "DataContract", "id": name, "name": name,
        "version": "1.0.0", "status": "active", "domain": "shop",
        "schema": [{"name": name, "properties": [
            {"name": "id", "logicalType": "integer", "primaryKey": True, "required": True},
            {"name": "amount", "logicalType": "integer"},
            {"name": "status", "logicalType": "string"},
            {"name": "created", "logicalType": "date", "physicalType": "timestamptz"}]}]}
    if block:
        doc["schema"][0]["customProperties"] = [{"property": "anomaly", "value": "block"}]
    path = contracts / TENANT / "shop" / f"{name}.odcs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_schema_drift_is_recorded_with_the_next_commit(
        tmp_path: Path, target_config: Callable[..., Path],
        open_catalog: Callable[[], Catalog]) -> None:
    """A SCHEMA column the contract lacks (evolve adds it), then one more: each run's
    drift is a kind=drift row of its commit, and the table's evolution one too."""
    write_contract(tmp_path / "contracts", "users")
    config = target_config(contracts_dir=str(tmp_path / "contracts"), schema_evolution="evolve")
    first = {**PROPERTIES, "email": {"type": ["string", "null"]}}
    result = load(config, "users", [{"id": 1, "email": "a@example.com"}], {"u": 1},
                  properties=first)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    table = ("acme", "shop", "users")
    drift = of_snapshot(open_catalog(), table, "drift")
    assert set(drift) == {"drift:email"}
    assert "column email is in the SCHEMA but not in contract" in drift["drift:email"]["message"]
    assert drift["drift:email"]["outcome"] == "info"
    second = {**first, "phone": {"type": ["string", "null"]}}
    result = load(config, "users", [{"id": 2, "phone": "555"}], {"u": 2}, properties=second)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    messages = [r["message"] for r in quality_rows(open_catalog(), table)
                if r["kind"] == "drift" and r["rule"] == "drift:phone"]
    assert any("column phone is in the SCHEMA but not in contract" in m for m in messages)
    assert any("evolved: +phone string" in m for m in messages), messages


def test_anomaly_block_in_strict_mode_blocks_the_commit_and_the_rerun_loads_once(
        tmp_path: Path, target_config: Callable[..., Path],
        open_catalog: Callable[[], Catalog]) -> None:
    write_contract(tmp_path / "contracts", "orders", block=True)
    config = target_config(validation_mode="strict", anomaly_min_loads=3,
                           contracts_dir=str(tmp_path / "contracts"))
    for run in range(3):  # few loads: a steady status keeps null ratios from jittering
        batch = [{**r, "id": r["id"] + run * 100_000, "status": "new"} for r in rows(200, run)]
        assert load(config, "orders", batch, {"run": run}).returncode == 0
    table = open_catalog().load_table(("acme", "shop", "orders"))
    before = table.current_snapshot().snapshot_id
    tiny = [{**r, "id": r["id"] + 300_000} for r in rows(5, 50)]
    blocked = load(config, "orders", tiny, {"run": "tiny"})
    err = blocked.stderr.decode()
    assert blocked.returncode == 2, err[-3000:]
    assert emitted_states(blocked) == []
    assert "row_count = 5 is below its usual range" in err and "anomaly: block" in err
    table = open_catalog().load_table(("acme", "shop", "orders"))
    assert table.current_snapshot().snapshot_id == before
    assert table.scan().to_arrow().num_rows == 600
    flags = [r for r in quality_rows(open_catalog(), ("acme", "shop", "orders"))
             if r["kind"] == "anomaly" and r["outcome"] == "flag" and r["snapshot_id"] is None]
    assert [r["rule"] for r in flags if r["rule"] == "row_count"] == ["row_count"]
    # The fix: the source sends its full load again.
    full = [{**r, "id": r["id"] + 300_000, "status": "new"} for r in rows(200, 51)]
    rerun = load(config, "orders", full, {"run": "tiny"})
    assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
    assert emitted_states(rerun) == [{"run": "tiny"}]
    ids = open_catalog().load_table(("acme", "shop", "orders")).scan().to_arrow().column("id")
    assert len(ids) == 800 and len(set(ids.to_pylist())) == 800


def test_lint_reports_a_misspelt_anomaly_action(tmp_path: Path) -> None:
    write_contract(tmp_path, "orders", block=True)
    path = tmp_path / TENANT / "shop" / "orders.odcs.yaml"
    path.write_text(path.read_text().replace("value: block", "value: blok"))
    result = subprocess.run([str(BIN / "dativo"), "contract", "lint", str(path)],
                            capture_output=True, timeout=60)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 2, output
    assert "anomaly value 'blok' is not one of block, record; did you mean 'block'?" in output


def test_anomaly_detection_false_keeps_tables_without_rules_plain(
        tmp_path: Path, target_config: Callable[..., Path],
        open_catalog: Callable[[], Catalog]) -> None:
    """``anomaly_detection: false``: a table without rules gets no ``__quality`` at
    all; one with rules records its rules' results, and no profile or flag."""
    contracts = tmp_path / "contracts"
    write_contract(contracts, "ruled")
    path = contracts / TENANT / "shop" / "ruled.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["schema"][0]["quality"] = [{"type": "library", "rule": "rowCount", "name": "some_rows",
                                    "mustBeGreaterThan": 0}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    config = target_config(contracts_dir=str(contracts), anomaly_detection=False)
    for stream in ("plain", "ruled"):
        result = load(config, stream, rows(20, seed=7), {stream: 1})
        assert result.returncode == 0, result.stderr.decode()[-3000:]
        assert emitted_states(result) == [{stream: 1}]
    catalog = open_catalog()
    assert catalog.load_table(("acme", "default", "plain")).scan().to_arrow().num_rows == 20
    tables = {t[-1] for t in catalog.list_tables(("acme", "default"))}
    assert "plain__quality" not in tables
    recorded = quality_rows(catalog, ("acme", "shop", "ruled"))
    assert [(r["rule"], r["kind"], r["measured"], r["outcome"]) for r in recorded] == [
        ("some_rows", "rule", 20.0, "pass")]
