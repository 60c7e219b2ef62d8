"""`meltano run tap-dativo-csv target-dativo-iceberg` with the tap's batch_config set:
the rows travel as BATCH files, and land, dead-letter and bookmark as RECORDs do."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from tests.conftest import read_table
from tests.e2e.test_meltano_run import (
    CUSTOMERS,
    DEAD_LETTER,
    ORDERS,
    STATE_ID,
    VALID_CUSTOMER_IDS,
    copy_project,
    meltano,
    warehouse,
)

# Rows 5-8 of samples/demo/customers.csv break the contract (see test_meltano_run.py).
EXPECTED_DEAD = {
    5: [{"field": "email", "rule": "format"}],
    6: [{"field": "lifetime_value", "rule": "minimum"}],
    7: [{"field": "signup_date", "rule": "type"}],
    8: [{"field": "tier", "rule": "validValues"}],
}


@pytest.mark.parametrize(("fmt", "compression"), [("parquet", "none"), ("jsonl", "gzip")])
def test_meltano_run_with_batch_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       fmt: str, compression: str) -> None:
    project = copy_project(tmp_path / "project")
    batches = tmp_path / "batches"
    # Meltano's env vars for the nested settings in plugins/extractors/tap-dativo-csv.yml.
    monkeypatch.setenv("TAP_DATIVO_CSV_BATCH_CONFIG_ENCODING_FORMAT", fmt)
    monkeypatch.setenv("TAP_DATIVO_CSV_BATCH_CONFIG_ENCODING_COMPRESSION", compression)
    monkeypatch.setenv("TAP_DATIVO_CSV_BATCH_CONFIG_STORAGE_ROOT", batches.as_uri())
    monkeypatch.setenv("TAP_DATIVO_CSV_BATCH_CONFIG_BATCH_SIZE", "4")
    # Outside the project's ./output/batches (the default), so the target is told.
    monkeypatch.setenv("TARGET_DATIVO_ICEBERG_BATCH_ROOTS", json.dumps([str(batches)]))
    run = meltano(project, "--environment", "dev", "run", "tap-dativo-csv",
                  "target-dativo-iceberg")
    assert "RECORD" not in run.stdout
    suffix = ".parquet" if fmt == "parquet" else ".jsonl.gz"
    files = list(batches.iterdir())  # 10 customers and 6 orders, 4 rows a file
    assert len(files) == 5 and all(f.name.endswith(suffix) for f in files), files

    catalog = warehouse(project)
    customers = sorted(read_table(catalog, CUSTOMERS).to_pylist(),
                       key=lambda r: r["customer_id"])
    assert [r["customer_id"] for r in customers] == VALID_CUSTOMER_IDS
    ada = customers[0]
    assert (ada["email"], ada["full_name"], ada["country"], ada["tier"]) == (
        "ada@example.com", "Ada Lovelace", "GB", "gold")
    assert ada["lifetime_value"] == Decimal("1250.50")
    assert ada["signup_date"].isoformat() == "2024-01-15"
    dead = {}
    for row in read_table(catalog, DEAD_LETTER).to_pylist():
        record = orjson.loads(row["record_json"])
        dead[int(record["customer_id"])] = row["reasons"]
    assert dead == EXPECTED_DEAD
    orders = read_table(catalog, ORDERS)
    assert sorted(orders.column("order_id").to_pylist()) == [str(i) for i in range(1001, 1007)]

    state = json.loads(meltano(project, "state", "get", STATE_ID).stdout)
    bookmarks = state["singer_state"]["bookmarks"]
    assert {stream: [(p["context"]["_sdc_source_file"], "replication_key_value" in p)
                     for p in entry["partitions"]] for stream, entry in bookmarks.items()} == {
        "customers": [("samples/demo/customers.csv", True)],
        "orders": [("samples/demo/orders.csv", True)]}
    summary = catalog.load_table(ORDERS).current_snapshot().summary
    assert json.loads(summary["dativo.state"])["bookmarks"]["orders"] == bookmarks["orders"]

    if fmt == "parquet":  # a rerun reads no file again and commits nothing
        snapshots = {t: catalog.load_table(t).current_snapshot().snapshot_id
                     for t in (CUSTOMERS, DEAD_LETTER, ORDERS)}
        meltano(project, "--environment", "dev", "run", "tap-dativo-csv",
                "target-dativo-iceberg")
        catalog = warehouse(project)
        assert {t: catalog.load_table(t).current_snapshot().snapshot_id
                for t in snapshots} == snapshots
        assert len(list(batches.iterdir())) == 5
