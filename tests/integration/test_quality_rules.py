"""Issue 16: a contract's ODCS quality rules, measured at commit time on real Iceberg
tables through the real target process, recorded in ``<table>__quality``.

One warn-mode load carries every rule type and every comparison key, each once passing
and once failing, so each case below asserts a recorded row (measured value, threshold,
outcome) of the same load. The strict cases check that a blocked commit changes nothing
(snapshot, STATE) and that the rerun after the fix loads every row exactly once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyiceberg.catalog import Catalog

from tests.conftest import BIN, REPO, emitted_states, run_target, singer_lines

TENANT = "acme"
TABLE = (TENANT, "shop", "orders")
HISTORY = (TENANT, "shop", "orders__quality")
SCHEMA = {"type": "SCHEMA", "stream": "orders", "key_properties": ["id"], "schema": {
    "properties": {"id": {"type": "integer"}, "status": {"type": ["string", "null"]},
                   "code": {"type": ["string", "null"]},
                   "amount": {"type": ["number", "null"]}}}}
# Ten rows: status null twice, '' once, 'N/A' once; code AB12 eight times, zz, XY99;
# one negative amount.
STATUS = [None, None, "", "N/A", "ok", "ok", "ok", "ok", "ok", "ok"]
CODES = ["AB12"] * 4 + ["zz", "XY99"] + ["AB12"] * 4
ROWS = [{"id": i, "status": STATUS[i], "code": CODES[i], "amount": -5.0 if i == 9 else i}
        for i in range(10)]


def write_contract(contracts: Path, table_rules: list[dict[str, Any]],
                   column_rules: dict[str, list[dict[str, Any]]]) -> Path:
    """An ODCS v3.0.2 contract for ``orders`` with these quality lists."""
    def column(name: str, logical: str, **more: Any) -> dict[str, Any]:
        prop = {"name": name, "logicalType": logical, **more}
        if column_rules.get(name):
            prop["quality"] = column_rules[name]
        return prop

    doc = {"apiVersion": "v3.0.2", "kind": "DataContract", "id": "orders", "name": "orders",
           "version": "1.0.0", "status": "active", "domain": "shop",
           "schema": [{"name": "orders", **({"quality": table_rules} if table_rules else {}),
                       "properties": [column("id", "integer", primaryKey=True, required=True),
                                      column("status", "string"), column("code", "string"),
                                      column("amount", "number")]}]}
    path = contracts / TENANT / "shop" / "orders.odcs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def messages(rows: list[dict[str, Any]], state: Any) -> bytes:
    return singer_lines([SCHEMA, *({"type": "RECORD", "stream": "orders", "record": r}
                                   for r in rows), {"type": "STATE", "value": state}])


def recorded(catalog: Catalog) -> dict[str, dict[str, Any]]:
    """The quality table's rows by rule name (the last one of each)."""
    rows = catalog.load_table(HISTORY).scan().to_arrow().sort_by("checked_at").to_pylist()
    return {row["rule"]: row for row in rows}


# -- every rule type and comparison key, passing and failing, in one load ----------------
def _count(name: str, key: str, bound: Any) -> dict[str, Any]:
    return {"name": name, "rule": "rowCount", key: bound, "severity": "error"}


COMPARISON_CASES: dict[str, tuple[dict[str, Any], str]] = {  # rowCount is 10
    f"{key}-{outcome}": (_count(f"{key}-{outcome}", key, bound), outcome)
    for key, passing, failing in [
        ("mustBe", 10, 9), ("mustNotBe", 9, 10), ("mustBeGreaterThan", 9, 10),
        ("mustBeGreaterOrEqualTo", 10, 11), ("mustBeLessThan", 11, 10),
        ("mustBeLessOrEqualTo", 10, 9), ("mustBeBetween", [5, 10], [11, 20]),
        ("mustNotBeBetween", [11, 20], [5, 10])]
    for outcome, bound in (("pass", passing), ("fail", failing))
}
# name -> (where: "table" or a column, entry, measured, outcome)
RULE_CASES: dict[str, tuple[str, dict[str, Any], float, str]] = {
    "v30 rowCount pass": ("table", {"rule": "rowCount", "mustBeGreaterThan": 0}, 10, "pass"),
    "v31 rowCount fail": ("table", {"metric": "rowCount", "mustBeGreaterThan": 10}, 10, "fail"),
    "v30 nullValues pass": ("status", {"rule": "nullValues", "mustBeLessOrEqualTo": 2}, 2,
                            "pass"),
    "v31 nullValues percent fail": ("status", {"metric": "nullValues", "mustBeLessThan": 10,
                                               "unit": "percent"}, 20, "fail"),
    "v30 nullCheck fail (implied mustBe 0)": ("status", {"rule": "nullCheck"}, 2, "fail"),
    "v30 nullCheck pass": ("id", {"rule": "nullCheck"}, 0, "pass"),
    "v31 missingValues pass": ("status", {"metric": "missingValues", "mustBe": 4,
                                          "arguments": {"missingValues": [None, "", "N/A"]}},
                               4, "pass"),
    "v31 missingValues percent fail": ("status", {
        "metric": "missingValues", "mustBeLessThan": 30, "unit": "percent",
        "arguments": {"missingValues": [None, "", "N/A"]}}, 40, "fail"),
    "v31 invalidValues list pass": ("code", {"metric": "invalidValues", "mustBeLessThan": 2,
                                             "arguments": {"validValues": ["AB12", "XY99"]}},
                                    1, "pass"),
    "v31 invalidValues pattern fail": ("code", {
        "metric": "invalidValues", "mustBe": 0,
        "arguments": {"pattern": "^[A-Z]{2}[0-9]{2}$"}}, 1, "fail"),
    "v30 validValues measured fail": ("code", {"rule": "validValues",
                                               "validValues": ["AB12"], "mustBe": 0}, 2,
                                      "fail"),
    "v30 validValues measured pass": ("code", {"rule": "validValues",
                                               "validValues": ["AB12", "XY99"],
                                               "mustBeLessOrEqualTo": 1}, 1, "pass"),
    "v31 invalidValues pattern pass": ("code", {
        "metric": "invalidValues", "mustBe": 0,
        "arguments": {"pattern": "^[A-Za-z0-9]+$"}}, 0, "pass"),
    "v31 invalidValues list fail": ("code", {"metric": "invalidValues", "mustBeLessThan": 1,
                                             "arguments": {"validValues": ["AB12"]}},
                                    2, "fail"),
    "v31 duplicateValues over properties pass": ("table", {
        "metric": "duplicateValues", "mustBe": 0,
        "arguments": {"properties": ["id", "code"]}}, 0, "pass"),
    "v30 duplicateCount column fail": ("code", {"rule": "duplicateCount",
                                                "mustBeLessThan": 7}, 7, "fail"),
    "v31 duplicateValues column fail": ("code", {"metric": "duplicateValues",
                                                 "mustBeLessThan": 5}, 7, "fail"),
    "v31 duplicateValues percent pass": ("code", {"metric": "duplicateValues",
                                                  "mustBeLessOrEqualTo": 70,
                                                  "unit": "percent"}, 70, "pass"),
    "v31 duplicateValues over properties fail": ("table", {
        "metric": "duplicateValues", "mustBe": 0,
        "arguments": {"properties": ["code", "status"]}}, 4, "fail"),
    "v30 duplicateCount on the key pass": ("table", {"rule": "duplicateCount", "mustBe": 0},
                                           0, "pass"),
    "v30 uniqueCheck pass": ("id", {"rule": "uniqueCheck"}, 0, "pass"),
    "v30 uniqueCheck fail": ("code", {"rule": "uniqueCheck"}, 7, "fail"),
    "sql {object} pass": ("table", {"type": "sql", "mustBe": 1,
                                    "query": "SELECT count(*) FROM {object} WHERE amount < 0"},
                          1, "pass"),
    "sql {object} fail": ("table", {"type": "sql", "mustBe": 0,
                                    "query": "SELECT count(*) FROM {object} WHERE amount < 0"},
                          1, "fail"),
    "sql {property} run scope fail": ("amount", {
        "type": "sql", "mustBeGreaterOrEqualTo": 0, "query": "SELECT min({property}) FROM "
        "{object}", "customProperties": [{"property": "dativo.scope", "value": "run"}]},
        -5, "fail"),
}


@pytest.fixture(scope="module")
def warn_load(tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[subprocess.CompletedProcess[bytes], Catalog]:
    """One warn-mode load of :data:`ROWS` under every case's rule."""
    from dativo.iceberg.catalog import open_catalog

    tmp = tmp_path_factory.mktemp("quality")
    table_rules = [rule for rule, _ in COMPARISON_CASES.values()]
    column_rules: dict[str, list[dict[str, Any]]] = {}
    for name, (where, entry, _, _) in RULE_CASES.items():
        rule = {"name": name, "severity": "error", "dimension": "completeness",
                "businessImpact": "operational", **entry}
        (table_rules if where == "table" else column_rules.setdefault(where, [])).append(rule)
    write_contract(tmp / "contracts", table_rules, column_rules)
    props = {"type": "sql", "uri": f"sqlite:///{tmp / 'catalog.db'}",
             "warehouse": (tmp / "wh").as_uri()}
    config = tmp / "target.json"
    config.write_text(json.dumps({"tenant_id": TENANT, "validation_mode": "warn",
                                  "contracts_dir": str(tmp / "contracts"), "catalog": props}))
    result = run_target(config, messages(ROWS, {"upto": 9}))
    return result, open_catalog(props)


@pytest.mark.parametrize("case", sorted(COMPARISON_CASES))
def test_each_comparison_key_passes_and_fails(
        warn_load: tuple[subprocess.CompletedProcess[bytes], Catalog], case: str) -> None:
    result, catalog = warn_load
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    row = recorded(catalog)[case]
    assert row["measured"] == 10
    assert row["outcome"] == COMPARISON_CASES[case][1]
    assert row["threshold"].startswith(case.rsplit("-", 1)[0] + " ")


@pytest.mark.parametrize("case", sorted(RULE_CASES))
def test_each_rule_type_records_its_measured_value(
        warn_load: tuple[subprocess.CompletedProcess[bytes], Catalog], case: str) -> None:
    result, catalog = warn_load
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    _, _, measured, outcome = RULE_CASES[case]
    row = recorded(catalog)[case]
    assert (row["measured"], row["outcome"]) == (measured, outcome), row["message"]
    assert (row["severity"], row["dimension"], row["business_impact"], row["kind"]) == (
        "error", "completeness", "operational", "rule")


def test_warn_mode_loads_logs_each_failure_and_summarises_the_snapshot(
        warn_load: tuple[subprocess.CompletedProcess[bytes], Catalog]) -> None:
    result, catalog = warn_load
    assert emitted_states(result) == [{"upto": 9}]
    table = catalog.load_table(TABLE)
    snapshot = table.current_snapshot()
    assert snapshot is not None and table.scan().to_arrow().num_rows == 10
    rows = {rule: row for rule, row in recorded(catalog).items() if row["kind"] == "rule"}
    failed = [r for r in rows.values() if r["outcome"] == "fail"]
    warnings = [line for line in result.stderr.decode().splitlines()
                if "WARNING" in line and "Quality fail" in line]
    assert len(warnings) == len(failed)
    assert {r["snapshot_id"] for r in rows.values()} == {snapshot.snapshot_id}
    summary = json.loads(snapshot.summary["dativo.quality"])
    assert summary["pass"] == len(rows) - len(failed)
    assert summary["fail"] == {"error": len(failed)}


# -- strict: a blocked commit changes nothing; the rerun after the fix loads once --------
@pytest.fixture
def strict_target(tmp_path: Path, catalog_props: dict[str, str],
                  target_config: Callable[..., Path]) -> Path:
    write_contract(tmp_path / "contracts", [{"rule": "duplicateCount", "mustBe": 0,
                                             "severity": "warning"}],
                   {"status": [{"metric": "nullValues", "mustBe": 0, "severity": "error"}]})
    return target_config(validation_mode="strict", contracts_dir=str(tmp_path / "contracts"),
                         batch_size_rows=5, commit_interval_seconds=0)


def test_strict_blocks_the_commit_and_the_rerun_loads_every_row_once(
        strict_target: Path, open_catalog: Callable[[], Catalog]) -> None:
    good = [{"id": i, "status": "ok", "code": "AB12", "amount": 1.0} for i in range(1, 11)]
    bad = [dict(r, status=None) if r["id"] == 8 else r for r in good]
    first = singer_lines([SCHEMA, *({"type": "RECORD", "stream": "orders", "record": r}
                                    for r in bad[:5]), {"type": "STATE", "value": {"upto": 5}},
                          *({"type": "RECORD", "stream": "orders", "record": r}
                            for r in bad[5:]), {"type": "STATE", "value": {"upto": 10}}])
    result = run_target(strict_target, first)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr[-2000:]
    assert emitted_states(result) == [{"upto": 5}]  # nothing past the blocked batch
    error = stderr.strip().splitlines()[-1]
    assert ("stream 'orders', table acme.shop.orders: quality rule status.nullValues "
            "(nullValues, run scope) measured 1, which fails mustBe 0") in error
    catalog = open_catalog()
    table = catalog.load_table(TABLE)
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary["dativo.state"] == '{"upto":5}'
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2, 3, 4, 5]
    blocked = [r for r in catalog.load_table(HISTORY).scan().to_arrow().to_pylist()
               if r["snapshot_id"] is None]
    assert [(r["rule"], r["measured"], r["outcome"]) for r in blocked if
            r["outcome"] == "fail"] == [("status.nullValues", 1.0, "fail")]

    # Resumed after {"upto": 5} with the same bad rows: blocked again, the table does
    # not move and no STATE is emitted.
    again = run_target(strict_target, singer_lines([
        SCHEMA, *({"type": "RECORD", "stream": "orders", "record": r} for r in bad[5:]),
        {"type": "STATE", "value": {"upto": 10}}]))
    assert again.returncode == 2 and emitted_states(again) == []
    assert catalog.load_table(TABLE).current_snapshot().snapshot_id == snapshot.snapshot_id

    # The fix: the tap resumes after {"upto": 5} and sends rows 6-10 with a status.
    rerun = run_target(strict_target, singer_lines([
        SCHEMA, *({"type": "RECORD", "stream": "orders", "record": r} for r in good[5:]),
        {"type": "STATE", "value": {"upto": 10}}]))
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert emitted_states(rerun) == [{"upto": 10}]
    ids = catalog.load_table(TABLE).scan().to_arrow().column("id").to_pylist()
    assert sorted(ids) == list(range(1, 11))  # nothing lost, nothing doubled


def test_warning_severity_never_blocks_in_strict(
        strict_target: Path, open_catalog: Callable[[], Catalog]) -> None:
    rows = [{"id": 1, "status": "ok", "code": "A", "amount": 1.0}] * 2  # a duplicate key
    result = run_target(strict_target, messages(rows, {"upto": 1}))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert emitted_states(result) == [{"upto": 1}]
    assert recorded(open_catalog())["duplicateCount"]["measured"] == 1


def test_run_scope_sees_the_commit_and_table_scope_the_whole_table(
        tmp_path: Path, target_config: Callable[..., Path],
        open_catalog: Callable[[], Catalog]) -> None:
    """A second load: rowCount (run) counts its two rows, duplicateCount (table) finds
    the key it repeats from the first load, and a sql rule scoped to the run does not."""
    write_contract(tmp_path / "contracts", [
        {"rule": "rowCount", "mustBe": 2, "name": "rows"},
        {"rule": "duplicateCount", "mustBe": 0, "name": "keys"},
        {"type": "sql", "name": "run_ids", "mustBe": 0, "query": "SELECT count(*) FROM "
         "{object} WHERE id < 3", "customProperties": [
             {"property": "dativo.scope", "value": "run"}]}], {})
    config = target_config(contracts_dir=str(tmp_path / "contracts"))
    first = [{"id": i, "status": "ok", "code": "A", "amount": 1.0} for i in (1, 2)]
    second = [{"id": i, "status": "ok", "code": "A", "amount": 1.0} for i in (2, 3)]
    assert run_target(config, messages(first, {"upto": 2})).returncode == 0
    result = run_target(config, messages(second, {"upto": 3}))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    catalog = open_catalog()
    snapshot = catalog.load_table(TABLE).current_snapshot()
    rows = {r["rule"]: r for r in catalog.load_table(HISTORY).scan().to_arrow().to_pylist()
            if r["snapshot_id"] == snapshot.snapshot_id and r["kind"] == "rule"}
    assert {name: (r["scope"], r["measured"], r["outcome"]) for name, r in rows.items()} == {
        "rows": ("run", 2, "pass"), "keys": ("table", 1, "fail"),
        "run_ids": ("run", 1, "fail")}


# -- sql rules: time limit, and writes refused at lint -----------------------------------
def test_a_slow_sql_rule_is_stopped_at_the_time_limit(
        tmp_path: Path, target_config: Callable[..., Path],
        open_catalog: Callable[[], Catalog]) -> None:
    slow = ("SELECT count(*) FROM {object}, range(100000000) a, range(100000000) b "
            "WHERE a.range + b.range < 0")
    write_contract(tmp_path / "contracts", [{"type": "sql", "name": "slow", "query": slow,
                                             "mustBe": 0, "severity": "error"}], {})
    config = target_config(validation_mode="strict", contracts_dir=str(tmp_path / "contracts"),
                           quality_sql_timeout_seconds=0.5)
    started = time.monotonic()
    result = run_target(config, messages(ROWS[:3], {"upto": 2}), timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 2
    error = result.stderr.decode().strip().splitlines()[-1]
    assert ("quality rule slow (sql, table scope) was not measured (stopped after "
            "quality_sql_timeout_seconds=0.5; make the query cheaper or raise that setting)"
            ) in error
    assert emitted_states(result) == []
    assert recorded(open_catalog())["slow"]["outcome"] == "fail"


@pytest.mark.parametrize("query", [
    "DROP TABLE {object}",
    "CREATE TABLE x AS SELECT * FROM {object}",
    "COPY (SELECT * FROM {object}) TO '/tmp/out.csv'",
    "ATTACH '/tmp/other.db' AS other; SELECT count(*) FROM {object}",
    "INSTALL httpfs; SELECT count(*) FROM {object}",
    "SELECT count(*) FROM {object}; DELETE FROM {object}",
    "WITH gone AS (DELETE FROM {object} RETURNING *) SELECT count(*) FROM gone",
])
def test_a_sql_rule_that_writes_is_refused_at_lint(tmp_path: Path, query: str) -> None:
    path = write_contract(tmp_path / "contracts", [{"type": "sql", "query": query,
                                                    "mustBe": 0}], {})
    result = subprocess.run([str(BIN / "dativo"), "contract", "lint", str(path)],
                            capture_output=True, timeout=60)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 2, output
    assert str(path) in output and "schema[0].quality[0]" in output
    assert "the query must" in output


# -- docs/data-quality.md runs as written ----------------------------------------------
DOC = REPO / "docs" / "data-quality.md"
FENCE = re.compile(r"^(`{3,})(\w*)\n(.*?)^\1$", re.MULTILINE | re.DOTALL)


def test_the_guide_runs_as_written(tmp_path: Path) -> None:
    """Every ``bash`` block of the guide, in order, in an empty folder: the contract
    lints clean, the warn load records its failing warning rule, the strict load is
    blocked, and the data table keeps the first load's ten rows."""
    from dativo.iceberg.catalog import default_catalog_properties, open_catalog

    blocks = [m.group(3) for m in FENCE.finditer(DOC.read_text(encoding="utf-8"))
              if m.group(2) == "bash"]
    assert blocks
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", "".join(blocks)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "orders.odcs.yaml: ok" in result.stdout
    assert '{"orders":10}' in result.stdout and "blocked: exit 2" in result.stdout
    assert "no_negative_totals (sql, table scope) measured 1, which fails mustBe 0" in (
        result.stderr)
    catalog = open_catalog(default_catalog_properties(
        tmp_path / "quality-demo" / "output" / "warehouse"))
    assert catalog.load_table(TABLE).scan().to_arrow().num_rows == 10
    history = catalog.load_table(HISTORY).scan().to_arrow().to_pylist()
    assert {(r["rule"], r["outcome"], r["snapshot_id"] is None) for r in history
            if r["kind"] == "rule"} == {
        ("rowCount", "pass", False), ("no_negative_totals", "fail", False),
        ("status.nullValues", "pass", False), ("rowCount", "pass", True),
        ("no_negative_totals", "fail", True), ("status.nullValues", "fail", True)}
