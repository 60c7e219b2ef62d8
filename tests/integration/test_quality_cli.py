"""``dativo quality check`` and ``dativo quality history`` (issue 16) on real SqlCatalog
tables loaded by the real target process.

``check`` measures the contract's rules on the table's current snapshot, prints one line
per rule, records the results in ``<table>__quality`` (snapshot id, ``check-<uuid>``
run id) and exits 2 only when a ``severity: error`` rule failed; every misuse is one
line and exit 2. ``history`` prints one line per recorded load, oldest first, with
failures, blocked commits and anomaly flags marked.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyiceberg.catalog import Catalog

from tests.conftest import BIN, REPO, run_target, singer_lines

TENANT = "acme"
ORDERS = "acme.shop.orders"
CUSTOMERS = "acme.shop.customers"
ROWS = [{"id": i, "status": None if i < 2 else "ok", "code": "AB12" if i % 2 else "XY99"}
        for i in range(10)]  # status null twice; code: five AB12, five XY99
PASSING = [{"name": "rows", "rule": "rowCount", "mustBe": 10, "severity": "error"},
           {"name": "keys", "rule": "duplicateCount", "mustBe": 0, "severity": "error"}]
NULLS = {"name": "status_nulls", "metric": "nullValues", "mustBeLessOrEqualTo": 2,
         "severity": "error"}
WARNING = {"name": "status_dupes", "metric": "duplicateValues", "mustBe": 0,
           "severity": "warning"}  # measures 7: fails, does not matter for the exit code
FAILING = {"name": "too_few", "rule": "rowCount", "mustBeGreaterThan": 100,
           "severity": "error"}


def contract(contracts: Path, name: str, *, table_rules: list[dict[str, Any]],
             status_rules: list[dict[str, Any]] | None = None) -> None:
    """An ODCS v3.0.2 contract for stream ``name`` in domain ``shop``."""
    status = {"name": "status", "logicalType": "string"}
    if status_rules:
        status["quality"] = list(status_rules)
    doc = {"apiVersion": "v3.0.2", "kind": "DataContract", "id": name, "name": name,
           "version": "1.0.0", "status": "active", "domain": "shop",
           "schema": [{"name": name, **({"quality": table_rules} if table_rules else {}),
                       "properties": [{"name": "id", "logicalType": "integer",
                                       "primaryKey": True, "required": True},
                                      status, {"name": "code", "logicalType": "string"}]}]}
    path = contracts / TENANT / "shop" / f"{name}.odcs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def messages(stream: str, rows: list[dict[str, Any]]) -> bytes:
    schema = {"type": "SCHEMA", "stream": stream, "key_properties": ["id"], "schema": {
        "properties": {"id": {"type": "integer"}, "status": {"type": ["string", "null"]},
                       "code": {"type": ["string", "null"]}}}}
    return singer_lines([schema, *({"type": "RECORD", "stream": stream, "record": r}
                                   for r in rows), {"type": "STATE", "value": {"n": len(rows)}}])


def dativo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dativo"), *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


class Project:
    """A contracts folder, a target config and its catalog, with both streams loaded."""

    def __init__(self, root: Path, *, mode: str = "warn") -> None:
        from dativo.iceberg.catalog import open_catalog

        self.contracts = root / "contracts"
        props = {"type": "sql", "uri": f"sqlite:///{root / 'catalog.db'}",
                 "warehouse": (root / "wh").as_uri()}
        self.config = root / "target.json"
        self.config.write_text(json.dumps({"tenant_id": TENANT, "validation_mode": mode,
                                           "contracts_dir": str(self.contracts),
                                           "catalog": props}))
        self.open = lambda: open_catalog(props)

    def load(self, stream: str, rows: list[dict[str, Any]], code: int = 0) -> None:
        result = run_target(self.config, messages(stream, rows))
        assert result.returncode == code, result.stderr.decode()[-2000:]

    def orders(self, **rules: Any) -> None:
        contract(self.contracts, "orders", **rules)

    def check(self, *args: str) -> subprocess.CompletedProcess[str]:
        return dativo("quality", "check", "--config", str(self.config), *args)

    def history(self, *args: str) -> subprocess.CompletedProcess[str]:
        return dativo("quality", "history", "--config", str(self.config), *args)

    def recorded(self, run_id: str) -> dict[str, dict[str, Any]]:
        rows = self.open().load_table(("acme", "shop", "orders__quality")).scan().to_arrow()
        return {r["rule"]: r for r in rows.to_pylist() if r["run_id"] == run_id}

    def snapshot_id(self) -> int:
        return self.open().load_table(("acme", "shop", "orders")).current_snapshot().snapshot_id


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """orders (a contract with rules, all passing on load) and customers (a contract
    without rules), each loaded once in warn mode."""
    project = Project(tmp_path_factory.mktemp("quality-cli"))
    project.orders(table_rules=PASSING, status_rules=[NULLS])
    contract(project.contracts, "customers", table_rules=[])
    project.load("orders", ROWS)
    project.load("customers", ROWS[:3])
    return project


def run_id(output: str) -> str:
    found = re.findall(r"as run (check-[0-9a-f-]{36})\n", output)
    assert len(found) == 1, output
    return found[0]


# -- check ---------------------------------------------------------------------------
def test_check_passes_prints_each_rule_and_records_it(project: Project) -> None:
    project.orders(table_rules=PASSING, status_rules=[NULLS, WARNING])
    result = project.check(ORDERS)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    snapshot = project.snapshot_id()
    assert lines[0] == f"{ORDERS} @ snapshot {snapshot}: 4 rule(s)"
    rules = {line.split()[1]: line.split() for line in lines[1:5]}
    assert rules["rows"][:4] == ["PASS", "rows", "measured", "10"]
    assert " ".join(rules["rows"][4:]) == "mustBe 10 (severity error)"
    assert rules["status_nulls"][:4] == ["PASS", "status_nulls", "measured", "2"]
    assert rules["status_dupes"][:4] == ["FAIL", "status_dupes", "measured", "7"]
    assert rules["status_dupes"][-2:] == ["(severity", "warning)"]
    assert lines[-1].startswith(f"{ORDERS}: 1 failed (0 with severity error); recorded in "
                                f"{ORDERS}__quality as run check-")
    rows = project.recorded(run_id(result.stdout))
    assert {name: (r["measured"], r["outcome"], r["snapshot_id"], r["kind"])
            for name, r in rows.items()} == {
        "rows": (10, "pass", snapshot, "rule"), "keys": (0, "pass", snapshot, "rule"),
        "status_nulls": (2, "pass", snapshot, "rule"),
        "status_dupes": (7, "fail", snapshot, "rule")}


def test_a_failed_error_rule_exits_2_and_is_recorded(project: Project) -> None:
    project.orders(table_rules=[*PASSING, FAILING], status_rules=[NULLS])
    result = project.check(ORDERS)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    line = next(x for x in result.stdout.splitlines() if " too_few " in x)
    assert line.split()[:4] == ["FAIL", "too_few", "measured", "10"]
    assert " ".join(line.split()[4:]) == "mustBeGreaterThan 100 (severity error)"
    assert f"{ORDERS}: 1 failed (1 with severity error)" in result.stdout
    rows = project.recorded(run_id(result.stdout))
    assert (rows["too_few"]["measured"], rows["too_few"]["outcome"]) == (10, "fail")
    assert rows["too_few"]["snapshot_id"] == project.snapshot_id()


def test_all_checks_each_loaded_table_with_rules(project: Project) -> None:
    project.orders(table_rules=PASSING, status_rules=[NULLS])
    result = project.check("--all")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{ORDERS} @ snapshot ")
    assert CUSTOMERS not in result.stdout  # its contract has no rules


@pytest.mark.parametrize(("args", "says"), [
    (("acme.shop.nope",), "table acme.shop.nope does not exist in the catalog; "
                          "`dativo table show --all` lists the tables"),
    (("orders",), "table 'orders': name it with its namespace, e.g. acme.crm.customers"),
    ((CUSTOMERS,), f"table {CUSTOMERS}: contract "),
    (("--all", ORDERS), "name tables to check or pass --all, not both"),
    ((), "name tables to check (e.g. acme.crm.customers) or pass --all"),
])
def test_a_misuse_is_one_line_and_exit_2(project: Project, args: tuple[str, ...],
                                         says: str) -> None:
    project.orders(table_rules=PASSING, status_rules=[NULLS])
    result = project.check(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert says in result.stderr
    if args == (CUSTOMERS,):
        assert "has no quality rules; add a quality list" in result.stderr


def test_a_table_without_a_contract_says_what_to_do(project: Project, tmp_path: Path) -> None:
    config = json.loads(project.config.read_text())
    (tmp_path / "empty").mkdir()
    other = tmp_path / "target.json"
    other.write_text(json.dumps({**config, "contracts_dir": str(tmp_path / "empty")}))
    result = dativo("quality", "check", "--config", str(other), ORDERS)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (f"table {ORDERS}: no contract of tenant acme describes it (looked under "
            f"{tmp_path / 'empty' / 'acme'}/*/ and stream_contracts); add its ODCS contract "
            "or map its stream in stream_contracts") in result.stderr


def test_a_contract_that_fails_the_lint(project: Project, tmp_path: Path) -> None:
    """An invalid contract of another table does not stop a named check; when it may be
    the table's own, or with --all, its lint error is the one line (exit 2)."""
    contracts = tmp_path / "contracts"
    contract(contracts, "orders", table_rules=PASSING)
    contract(contracts, "broken", table_rules=[{"rule": "rowCount", "mustBe": "ten"}])
    other = tmp_path / "target.json"
    other.write_text(json.dumps({**json.loads(project.config.read_text()),
                                 "contracts_dir": str(contracts)}))
    assert dativo("quality", "check", "--config", str(other), ORDERS).returncode == 0
    for args in (("--all",), (CUSTOMERS,)):
        result = dativo("quality", "check", "--config", str(other), *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert f"contract {contracts / 'acme' / 'shop' / 'broken.odcs.yaml'} is invalid" in (
            result.stderr), result.stderr
    assert f"table {CUSTOMERS}: no readable contract describes it, and 1 contract(s) " \
           "cannot be read; the first: contract " in result.stderr


def test_a_table_with_no_snapshot_yet(project: Project, tmp_path: Path) -> None:
    """Named, it is one line (exit 2), before any table is measured; --all skips it."""
    import pyarrow as pa

    contracts = tmp_path / "contracts"
    contract(contracts, "orders", table_rules=PASSING)
    contract(contracts, "fresh", table_rules=PASSING)
    project.open().create_table(("acme", "shop", "fresh"),
                                schema=pa.schema([pa.field("id", pa.int64())]))
    other = tmp_path / "target.json"
    other.write_text(json.dumps({**json.loads(project.config.read_text()),
                                 "contracts_dir": str(contracts)}))
    result = dativo("quality", "check", "--config", str(other), ORDERS, "acme.shop.fresh")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == ("error: table acme.shop.fresh has no snapshot yet "
                                     "(nothing was loaded into it); run the load first, "
                                     "then check it")
    every = dativo("quality", "check", "--config", str(other), "--all")
    assert every.returncode == 0, every.stderr
    assert "acme.shop.fresh" not in every.stdout and f"{ORDERS} @ snapshot" in every.stdout


def test_check_needs_the_config() -> None:
    result = dativo("quality", "check", ORDERS)
    assert result.returncode == 2
    assert "Missing option '--config'" in result.stderr


# -- history -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def histories(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """orders: a passing warn load, a strict load blocked by a failed rule, an anomaly
    flag recorded by hand (as the anomaly gate records one), then a failing check."""
    from dativo.iceberg.quality_table import quality_rows
    from dativo.quality.results import CheckResult

    root = tmp_path_factory.mktemp("quality-history")
    project = Project(root)
    project.orders(table_rules=PASSING, status_rules=[NULLS])
    project.load("orders", ROWS)
    strict = Project(root, mode="strict")
    strict.load("orders", [{"id": 20 + i, "status": None if i < 3 else "ok", "code": "Q"}
                           for i in range(10)], code=2)  # status_nulls measures 3: blocked
    flag = CheckResult(rule="rowCount", kind="anomaly", scope="run", column=None,
                       dimension=None, severity="warning", business_impact=None,
                       measured=1, threshold="band [8, 12]", outcome="flag",
                       message="rowCount 1 is outside its usual band [8, 12]")
    history = project.open().load_table(("acme", "shop", "orders__quality"))
    history.append(quality_rows([flag], run_id="anomaly-run", snapshot_id=123))
    project.orders(table_rules=[*PASSING, FAILING], status_rules=[NULLS])
    assert project.check(ORDERS).returncode == 2
    return project


def history_lines(result: subprocess.CompletedProcess[str]) -> list[list[str]]:
    assert result.returncode == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines()[2:]]


def test_history_shows_each_load_oldest_first_with_failures_marked(
        histories: Project) -> None:
    result = histories.history(ORDERS)
    lines = result.stdout.splitlines()
    assert lines[0] == f"{ORDERS}: the last 4 of 4 recorded load(s), oldest first"
    assert lines[1].split() == ["time", "(UTC)", "run", "id", "snapshot", "pass", "fail",
                                "flag", "failing"]
    rows = history_lines(result)
    snapshot = str(histories.snapshot_id())
    loaded, blocked, check = rows[0], rows[1], rows[-1]
    assert loaded[0] == "ok" and loaded[4:] == [snapshot, "3", "0", "0", "-"]
    assert blocked[0] == "BLOCKED" and blocked[4:8] == ["blocked", "2", "1", "0"]
    assert " ".join(blocked[8:]) == "failed: status_nulls (error)"
    assert len({loaded[3], blocked[3], check[3]}) == 3  # a run id per target run or check
    assert check[0] == "FAIL" and check[3].startswith("check-")
    assert check[4:8] == [snapshot, "3", "1", "0"]
    assert " ".join(check[8:]) == "failed: too_few (error)"


def test_history_marks_an_anomaly_flag(histories: Project) -> None:
    rows = history_lines(histories.history(ORDERS))
    flagged = [r for r in rows if r[3] == "anomaly-run"]
    assert len(flagged) == 1
    assert flagged[0][0] == "FLAG" and flagged[0][4:8] == ["123", "0", "0", "1"]
    assert " ".join(flagged[0][8:]) == "flagged: anomaly rowCount"


def test_history_last_shows_the_newest_loads(histories: Project) -> None:
    result = histories.history(ORDERS, "--last", "1")
    assert result.stdout.splitlines()[0] == (f"{ORDERS}: the last 1 of 4 recorded load(s), "
                                             "oldest first")
    rows = history_lines(result)
    assert len(rows) == 1 and rows[0][3].startswith("check-")


@pytest.mark.parametrize("last", ["0", "-3", "many"])
def test_history_last_must_be_a_positive_integer(histories: Project, last: str) -> None:
    result = histories.history(ORDERS, "--last", last)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Invalid value for '--last'" in result.stderr


def test_history_of_a_table_without_results_says_so(project: Project) -> None:
    """A table another tool wrote: no ``<table>__quality`` beside it."""
    import pyarrow as pa

    rows = pa.table({"id": pa.array([1], pa.int64())})
    catalog = project.open()
    catalog.create_namespace_if_not_exists(("acme", "other"))
    catalog.create_table(("acme", "other", "events"), schema=rows.schema).append(rows)
    result = project.history("acme.other.events")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "acme.other.events: no quality results recorded yet; the target records them in "
        "acme.other.events__quality at each load, and `dativo quality check "
        "acme.other.events --config <target config>` on demand")


@pytest.mark.parametrize(("table", "says"), [
    ("acme.shop.nope", "table acme.shop.nope does not exist in the catalog"),
    ("nope", "table 'nope': name it with its namespace"),
])
def test_history_of_a_bad_table_name_is_one_line(project: Project, table: str,
                                                 says: str) -> None:
    result = project.history(table)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and says in result.stderr


# -- table show ----------------------------------------------------------------------
def test_table_show_all_does_not_list_quality_tables(histories: Project) -> None:
    catalog: Catalog = histories.open()
    assert catalog.table_exists(("acme", "shop", "orders__quality"))
    result = dativo("table", "show", "--all", "--config", str(histories.config))
    assert result.returncode == 0, result.stderr
    assert f"== {ORDERS}: " in result.stdout
    assert "__quality" not in result.stdout


def test_meltano_runs_the_quality_history_command(histories: Project, tmp_path: Path) -> None:
    """``meltano invoke dativo:quality-history <table> ...`` (plugins/utilities/dativo.yml),
    in a copy of the repo's project."""
    import os
    import shutil

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "meltano.yml", project)
    shutil.copytree(REPO / "plugins", project / "plugins")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
    env.update({"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_DISABLE_TRACKING": "true", "PYTHONWARNINGS": "ignore"})
    result = subprocess.run([str(BIN / "meltano"), "invoke", "dativo:quality-history", ORDERS,
                             "--last", "2", "--config", str(histories.config)], cwd=project,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{ORDERS}: the last 2 of 4 recorded load(s), oldest first" in result.stdout
    assert "failed: too_few (error)" in result.stdout
