"""tap-dativo-csv installed on its own, as `meltano install` installs it (uv venv + uv pip
install, non-editable, from the local distributions): none of the Iceberg, Stripe or
ADBC libraries comes along, and the tap still syncs the demo CSV with its contract."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.venv_sizes import copy_sources

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"  # Meltano 4.4 depends on uv
FORBIDDEN = ("pyarrow", "pyiceberg", "pyiceberg-core", "duckdb", "stripe")


@pytest.fixture(scope="module")
def csv_tap_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("tap-dativo-csv") / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)],
                   check=True)
    sources = copy_sources(venv.parent / "sources", "dativo", "taps/tap_dativo_csv")
    subprocess.run([str(UV), "pip", "install", "--quiet", f"--python={venv / 'bin/python'}",
                    *map(str, sources)], check=True, timeout=600)
    return venv


def installed(venv: Path) -> set[str]:
    listed = subprocess.run(
        [str(UV), "pip", "list", "--format=json", f"--python={venv / 'bin/python'}"],
        check=True, capture_output=True, text=True).stdout
    return {item["name"].lower() for item in json.loads(listed)}


def test_the_csv_tap_pulls_no_iceberg_stripe_or_adbc(csv_tap_venv: Path) -> None:
    names = installed(csv_tap_venv)
    assert {"dativo-core", "tap-dativo-csv", "singer-sdk"} <= names
    assert [n for n in names if n in FORBIDDEN or n.startswith("adbc-driver-")] == []


def test_the_csv_tap_alone_syncs_the_demo_csv(csv_tap_venv: Path, tmp_path: Path) -> None:
    """The demo rows that break no rule of the contract (what happens to the others is
    ``on_invalid_value``'s business, tested elsewhere), typed by the repo's contract."""
    demo = (REPO / "samples/demo/customers.csv").read_text(encoding="utf-8").splitlines()
    customers = tmp_path / "customers.csv"
    customers.write_text("\n".join([demo[0], *demo[1:5], *demo[9:11]]) + "\n",
                         encoding="utf-8")
    config = tmp_path / "tap.json"
    config.write_text(json.dumps({
        "tenant_id": "demo", "contracts_dir": str(REPO / "odcs_contracts"),
        "files": [{"entity": "customers", "path": str(customers), "keys": ["customer_id"]}],
    }))
    result = subprocess.run([str(csv_tap_venv / "bin/tap-dativo-csv"), "--config", str(config)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    with customers.open(newline="", encoding="utf-8") as handle:
        expected = [row["customer_id"] for row in csv.DictReader(handle)]
    assert expected == ["1", "2", "3", "4", "9", "10"]
    assert [r["customer_id"] for r in records] == [int(key) for key in expected]
    assert records[0]["lifetime_value"] == 1250.5  # typed by the contract, not CSV text
    [schema] = [m for m in messages if m["type"] == "SCHEMA"]
    assert schema["key_properties"] == ["customer_id"]
    assert "typed by contract" in result.stderr


def test_parquet_batches_without_the_extra_name_it(csv_tap_venv: Path, tmp_path: Path
                                                   ) -> None:
    config = tmp_path / "tap.json"
    config.write_text(json.dumps({
        "files": [{"entity": "customers", "path": str(REPO / "samples/demo/customers.csv")}],
        "batch_config": {"encoding": {"format": "parquet"},
                         "storage": {"root": tmp_path.as_uri()}},
    }))
    result = subprocess.run([str(csv_tap_venv / "bin/tap-dativo-csv"), "--config", str(config)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert ("batch_config.encoding.format: parquet needs pyarrow, which is not installed; "
            "pip install 'tap-dativo-csv[parquet]' (or use jsonl)") in result.stderr
    assert "Traceback" not in result.stderr


def test_dativo_core_alone_lints_and_names_the_iceberg_extra(csv_tap_venv: Path,
                                                             tmp_path: Path) -> None:
    """The `dativo` command comes with dativo-core: contract lint needs nothing more,
    the table commands need the iceberg extra and say so."""
    dativo = str(csv_tap_venv / "bin/dativo")
    contract = REPO / "odcs_contracts/demo/crm/customers.odcs.yaml"
    lint = subprocess.run([dativo, "contract", "lint", str(contract)], capture_output=True,
                          text=True, timeout=120)
    assert (lint.returncode, lint.stdout.strip()) == (0, f"{contract}: ok")
    (tmp_path / "catalog.db").touch()  # a catalog that exists (dativo checks that first)
    config = tmp_path / "target.json"
    config.write_text(json.dumps({"catalog": {
        "name": "t", "type": "sql", "uri": f"sqlite:///{tmp_path / 'catalog.db'}",
        "warehouse": tmp_path.as_uri()}}))
    show = subprocess.run([dativo, "table", "show", "--all", "--config", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert show.returncode == 2
    assert show.stderr.strip() == ("error: this command needs pyiceberg, which is not "
                                   "installed; pip install 'dativo-core[iceberg]'")
