"""tap-dativo-csv | target-dativo-iceberg through a real shell pipe, on the demo files.

The unit and integration suites run each plugin alone; this is the only place the two
talk over an OS pipe, so it checks what a user of the pair sees: the CSV values in
Iceberg, the contract's rejects in the dead-letter table, and state that resumes.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyiceberg.catalog import Catalog

from tests.conftest import BIN, REPO, read_table

CUSTOMERS = ("demo", "crm", "customers")
DEAD_LETTER = ("demo", "crm", "customers__dead_letter")
ORDERS = ("demo", "default", "orders")

# Physical line in customers.csv -> the (field, rule) the contract rejects it for.
# The contract's header comment names the same four rows on purpose.
BAD_LINES = {
    6: [{"field": "email", "rule": "format"}],  # not-an-email
    7: [{"field": "lifetime_value", "rule": "minimum"}],  # -20.00
    8: [{"field": "signup_date", "rule": "type"}],  # 2024-13-01
    9: [{"field": "tier", "rule": "validValues"}],  # platinum
}

# How a CSV cell of each contract logicalType reads back from Iceberg.
FROM_CSV: dict[str, Callable[[str], Any]] = {
    "integer": int,
    "number": Decimal,
    "date": dt.date.fromisoformat,
    "string": str,
}

# Both exit codes go to a file; the pipe itself fails when either side does (as with
# pipefail, but reporting the tap's code first, since a tap failure is the root cause).
PIPE = (
    '"$TAP" --config "$1" ${TAP_STATE:+--state "$TAP_STATE"} 2>"$3" '
    '| "$TARGET" --config "$2" 2>"$4"\n'
    'status=("${PIPESTATUS[@]}")\n'
    'echo "${status[@]}" >"$5"\n'
    'exit $(( status[0] ? status[0] : status[1] ))\n'
)


@dataclass(frozen=True)
class PipeRun:
    """What one pipe run left behind: exit codes, the target's STATE lines, both logs."""

    returncode: int
    tap_returncode: int
    target_returncode: int
    states: list[Any]
    tap_stderr: str
    target_stderr: str


@dataclass(frozen=True)
class Project:
    """The demo files copied into tmp_path, with tap and target configs pointing at them."""

    root: Path
    customers: Path
    orders: Path
    contract: Path
    tap_config: Path
    target_config: Path

    def pipe(self, state: Path | None = None, *, name: str = "run") -> PipeRun:
        """Run ``tap | target`` in bash, as a user would, with both stderrs kept apart."""
        logs = self.root / name
        logs.mkdir()
        env = {
            **os.environ,
            "TAP": str(BIN / "tap-dativo-csv"),
            "TARGET": str(BIN / "target-dativo-iceberg"),
            "TAP_STATE": str(state or ""),
            "PYTHONWARNINGS": "ignore",
        }
        args = [self.tap_config, self.target_config, logs / "tap.err", logs / "target.err",
                logs / "status"]
        result = subprocess.run(["bash", "-c", PIPE, "pipe", *map(str, args)],
                                capture_output=True, timeout=120, cwd=self.root, env=env)
        tap_rc, target_rc = map(int, (logs / "status").read_text().split())
        return PipeRun(
            returncode=result.returncode,
            tap_returncode=tap_rc,
            target_returncode=target_rc,
            states=[json.loads(line) for line in result.stdout.splitlines() if line.strip()],
            tap_stderr=(logs / "tap.err").read_text(),
            target_stderr=(logs / "target.err").read_text(),
        )


@pytest.fixture
def project(tmp_path: Path, target_config: Callable[..., Path]) -> Project:
    """Absolute paths everywhere, so nothing depends on the directory pytest runs in."""
    shutil.copytree(REPO / "samples", tmp_path / "samples")
    shutil.copytree(REPO / "odcs_contracts", tmp_path / "odcs_contracts")
    contracts = tmp_path / "odcs_contracts"
    customers = tmp_path / "samples/demo/customers.csv"
    orders = tmp_path / "samples/demo/orders.csv"
    tap_config = tmp_path / "tap.json"
    tap_config.write_text(json.dumps({
        "tenant_id": "demo",
        "contracts_dir": str(contracts),
        # The target's dead-letter table gets every bad row (as in make demo).
        "on_invalid_value": "pass",
        "files": [
            {"entity": "customers", "path": str(customers), "keys": ["customer_id"]},
            {"entity": "orders", "path": str(orders), "keys": ["order_id"]},
        ],
    }))
    return Project(
        root=tmp_path, customers=customers, orders=orders,
        contract=contracts / "demo/crm/customers.odcs.yaml", tap_config=tap_config,
        target_config=target_config(tenant_id="demo", contracts_dir=str(contracts)),
    )


def csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(physical line, row) for every data row; the demo files have no multi-line cells."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [(number, row) for number, row in enumerate(csv.DictReader(handle), start=2)]


def contract_types(contract: Path) -> dict[str, str]:
    """Column -> logicalType, straight from the ODCS file the pipeline is typed by."""
    spec = yaml.safe_load(contract.read_text())
    return {p["name"]: p["logicalType"] for p in spec["schema"][0]["properties"]}


def typed(row: dict[str, str], types: dict[str, str]) -> dict[str, Any]:
    return {name: FROM_CSV[types[name]](cell) if cell != "" else None
            for name, cell in row.items()}


def bookmarked_files(state: dict[str, Any]) -> dict[str, str]:
    """Stream -> the file its single partition bookmarks."""
    return {stream: entry["partitions"][0]["context"]["_sdc_source_file"]
            for stream, entry in state["bookmarks"].items()}


def test_pipe_lands_csv_values_and_dead_letters_the_four_bad_rows(
    project: Project, open_catalog: Callable[[], Catalog]
) -> None:
    run = project.pipe()
    assert (run.returncode, run.tap_returncode, run.target_returncode) == (0, 0, 0), (
        run.tap_stderr + run.target_stderr)
    catalog = open_catalog()
    # Columns outside the contract are not loaded, and the target says so, in the log
    # and in the run summary.
    assert ("Stream 'customers': column(s) _sdc_source_file, _sdc_source_file_mtime, "
            "_sdc_source_lineno are in the SCHEMA but not in contract") in run.target_stderr
    summary = json.loads(run.target_stderr.split("Run summary: ", 1)[1].splitlines()[0])
    assert summary["streams"]["customers"]["schema_drift"] == {
        "schema_only": ["_sdc_source_file", "_sdc_source_file_mtime", "_sdc_source_lineno"]}
    assert summary["streams"]["orders"]["schema_drift"] == {}

    types = contract_types(project.contract)
    rows = csv_rows(project.customers)
    assert len(rows) == 10
    # The test's list of bad rows must match the file, or every check below is hollow.
    by_line = dict(rows)
    assert by_line[6]["email"] == "not-an-email"
    assert by_line[7]["lifetime_value"] == "-20.00"
    assert by_line[8]["signup_date"] == "2024-13-01"
    assert by_line[9]["tier"] == "platinum"

    landed = read_table(catalog, CUSTOMERS)
    assert landed.schema.names == list(types)  # contract columns only, in contract order
    assert [str(landed.schema.field(n).type) for n in ("customer_id", "signup_date",
                                                       "lifetime_value")] == [
        "int64", "date32[day]", "decimal128(12, 2)"]
    expected = [typed(row, types) for line, row in rows if line not in BAD_LINES]
    assert sorted(landed.to_pylist(), key=lambda r: r["customer_id"]) == expected

    dead = sorted(read_table(catalog, DEAD_LETTER).to_pylist(), key=lambda r: r["line_number"])
    assert [(d["stream"], d["line_number"], d["reasons"]) for d in dead] == [
        ("customers", line, reasons) for line, reasons in BAD_LINES.items()]
    assert len({d["run_id"] for d in dead}) == 1
    for entry in dead:
        sent = json.loads(entry["record_json"], parse_float=Decimal)
        row = by_line[entry["line_number"]]
        # The record as the tap sent it: numbers parsed, the bad cell as its raw text.
        assert {name: sent[name] for name in row} == {
            **row, "customer_id": int(row["customer_id"]),
            "lifetime_value": Decimal(row["lifetime_value"])}
        assert sent["_sdc_source_lineno"] == entry["line_number"]
        assert sent["_sdc_source_file"] == str(project.customers)

    orders = sorted(read_table(catalog, ORDERS).to_pylist(), key=lambda r: r["_sdc_source_lineno"])
    order_rows = csv_rows(project.orders)
    header = list(order_rows[0][1])
    schema = catalog.load_table(ORDERS).schema()
    assert {str(schema.find_field(name).field_type) for name in header} == {"string"}
    assert [{name: r[name] for name in header} for r in orders] == [row for _, row in order_rows]
    assert [(r["_sdc_source_lineno"], r["_sdc_source_file"]) for r in orders] == [
        (line, str(project.orders)) for line, _ in order_rows]

    assert bookmarked_files(run.states[-1]) == {
        "customers": str(project.customers), "orders": str(project.orders)}
    assert "Traceback" not in run.tap_stderr + run.target_stderr


def test_last_state_resumes_the_tap_and_a_rerun_adds_no_rows(
    project: Project, open_catalog: Callable[[], Catalog]
) -> None:
    first = project.pipe(name="first")
    assert first.returncode == 0, first.tap_stderr + first.target_stderr
    state = project.root / "state.json"
    state.write_text(json.dumps(first.states[-1]))
    catalog = open_catalog()
    snapshots = {t: catalog.load_table(t).current_snapshot().snapshot_id
                 for t in (CUSTOMERS, DEAD_LETTER, ORDERS)}

    tap = subprocess.run(
        [str(BIN / "tap-dativo-csv"), "--config", str(project.tap_config), "--state", str(state)],
        capture_output=True, timeout=60, cwd=project.root,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert tap.returncode == 0, tap.stderr.decode()
    kinds = [json.loads(line)["type"] for line in tap.stdout.splitlines()]
    assert "RECORD" not in kinds
    assert kinds.count("SCHEMA") == 2
    for path in (project.customers, project.orders):
        assert f"skipping unchanged file {path}" in tap.stderr.decode()

    second = project.pipe(state, name="second")
    assert second.returncode == 0, second.tap_stderr + second.target_stderr
    assert second.states[-1] == first.states[-1]
    catalog = open_catalog()
    assert {t: catalog.load_table(t).current_snapshot().snapshot_id
            for t in snapshots} == snapshots
    assert [read_table(catalog, t).num_rows for t in (CUSTOMERS, DEAD_LETTER, ORDERS)] == [
        6, 4, 6]
    assert sorted(read_table(catalog, CUSTOMERS).column("customer_id").to_pylist()) == [
        1, 2, 3, 4, 9, 10]


def test_ragged_row_fails_the_pipe_naming_file_and_line(project: Project) -> None:
    lines = project.customers.read_text().splitlines(keepends=True)
    lines.insert(3, "11,short@example.com,Short Row\n")  # becomes physical line 4
    project.customers.write_text("".join(lines))

    run = project.pipe()
    assert run.returncode != 0
    assert run.tap_returncode == 2
    assert f"line 4: {project.customers}: expected 7 columns, got 3" in run.tap_stderr
    assert "Traceback" not in run.tap_stderr + run.target_stderr
    # No STATE got through, so the next run re-reads the file instead of skipping it.
    assert run.states == []
