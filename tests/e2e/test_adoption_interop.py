"""Interop (issue 13, part 4): tap-dativo-csv with the demo CSV feeds another vendor's
target, meltanolabs-target-postgres from PyPI in a venv of its own, into a throwaway
PostgreSQL. It used to crash on the demo's '2024-13-01' in a DATE column; now the valid
rows load and the rejected ones land in ``customers__rejected``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import BIN, REPO
from tests.services.postgres import PostgresServer

TARGET_POSTGRES = "meltanolabs-target-postgres==0.8.1"
VENV = Path(tempfile.gettempdir()) / "dativo-interop" / "meltanolabs-target-postgres-0.8.1"
DEMO = REPO / "samples" / "demo"


@pytest.fixture(scope="session")
def target_postgres() -> Path:
    """target-postgres installed with uv into a venv of its own, kept across sessions
    (a marker file says the install finished)."""
    executable = VENV / "bin" / "target-postgres"
    marker = VENV / ".installed"
    if not marker.exists():
        shutil.rmtree(VENV, ignore_errors=True)
        uv = str(BIN / "uv")
        subprocess.run([uv, "venv", "-q", "--python", "3.11", str(VENV)], check=True,
                       timeout=600)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(VENV / "bin" / "python"),
                        TARGET_POSTGRES], check=True, timeout=1200)
        marker.write_text(TARGET_POSTGRES)
    return executable


@pytest.mark.parametrize("on_invalid_value", [None, "reject"])
def test_demo_csv_loads_into_meltanolabs_target_postgres(
        tmp_path: Path, postgres: PostgresServer, target_postgres: Path,
        on_invalid_value: str | None) -> None:
    database = f"interop_{on_invalid_value or 'default'}"
    postgres.create_database(database)
    for name in ("customers.csv", "orders.csv"):
        shutil.copy(DEMO / name, tmp_path / name)
    tap_config = {"files": [{"entity": "customers", "path": "customers.csv"},
                            {"entity": "orders", "path": "orders.csv"}],
                  "tenant_id": "demo", "contracts_dir": str(REPO / "odcs_contracts")}
    if on_invalid_value is not None:
        tap_config["on_invalid_value"] = on_invalid_value
    (tmp_path / "tap.json").write_text(json.dumps(tap_config))
    (tmp_path / "target.json").write_text(json.dumps({
        "host": postgres.host, "port": postgres.port, "user": postgres.user,
        "password": "", "database": database, "default_target_schema": "demo"}))
    pipeline = (f"set -o pipefail; {BIN / 'tap-dativo-csv'} --config tap.json | "
                f"{target_postgres} --config target.json")
    result = subprocess.run(["bash", "-c", pipeline], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env={**os.environ}, check=False)
    assert result.returncode == 0, result.stderr[-3000:]

    def query(sql: str) -> list[list[str]]:
        return [row.split("|") for row in postgres.psql(sql, database).splitlines()]

    assert query("SELECT customer_id, email, signup_date, lifetime_value, tier "
                 "FROM demo.customers ORDER BY customer_id") == [
        ["1", "ada@example.com", "2024-01-15", "1250.50", "gold"],
        ["2", "grace@example.com", "2024-02-03", "980.00", "silver"],
        ["3", "alan@example.com", "2024-02-28", "310.25", "bronze"],
        ["4", "katherine@example.com", "2024-03-12", "2200.00", "gold"],
        ["6", "barbara@example.com", "2024-04-02", "-20.00", "silver"],
        ["8", "margaret@example.com", "2024-05-19", "1800.00", "platinum"],
        ["9", "tim@example.com", "2024-06-01", "720.40", "silver"],
        ["10", "radia@example.com", "2024-06-21", "505.00", "bronze"],
    ]
    assert query("SELECT data_type FROM information_schema.columns WHERE table_schema = "
                 "'demo' AND table_name = 'customers' AND column_name = 'signup_date'"
                 ) == [["date"]]
    assert query("SELECT _sdc_source_lineno, raw_line, reason FROM demo.customers__rejected "
                 "ORDER BY 1") == [
        ["6", "5,not-an-email,Edsger Dijkstra,NL,2024-03-30,150.75,bronze",
         "email: 'not-an-email' is not a valid email"],
        ["8", "7,donald@example.com,Donald Knuth,US,2024-13-01,640.10,gold",
         "signup_date: '2024-13-01' is not a valid date (month must be in 1..12)"],
    ]
    assert query("SELECT count(*) FROM demo.orders") == [["6"]]
