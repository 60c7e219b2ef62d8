"""The asset checks of dativo_dagster on a real load: one `meltano run` of the demo into a
copied project's SQLite-catalog warehouse, then the checks executed in process by
Dagster, reading the target's config through `meltano config` as a deployment does.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dativo.errors import ConfigError
from dativo_dagster.checks import (
    FRESHNESS,
    QUALITY,
    build_checks,
    contract_sla,
    freshness_result,
    quality_result,
)
from dativo_dagster.project import Table, load_project
from tests.conftest import REPO
from tests.e2e.test_meltano_run import CUSTOMERS, copy_project, meltano, warehouse

CUSTOMERS_KEY = dg.AssetKey(["demo", "crm", "customers"])
ORDERS_KEY = dg.AssetKey(["demo", "default", "orders"])
CONTRACT = Path("odcs_contracts/demo/crm/customers.odcs.yaml")


def dagster_project(root: Path) -> Path:
    project = copy_project(root)
    shutil.copy(REPO / "dativo-dagster.yml", project)
    return project


def set_sla(project: Path, sla: list[dict[str, object]]) -> None:
    path = project / CONTRACT
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["slaProperties"] = sla
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def run_checks(project: Path) -> dict[dg.AssetCheckKey, dg.AssetCheckEvaluation]:
    """Every check of the demo tenant's CSV pipeline, executed by Dagster in process."""
    checks = [c for c in build_checks(load_project(project), "demo")
              if CUSTOMERS_KEY in {k.asset_key for k in c.check_keys}]
    keys = {dg.AssetKey(["demo", "crm", "customers"]), ORDERS_KEY}
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([*(dg.AssetSpec(k) for k in keys), *checks],
                                selection=dg.AssetSelection.checks(*checks),
                                instance=instance)
    assert result.success
    return {e.asset_check_key: e for e in result.get_asset_check_evaluations()}


def test_checks_of_the_demo_load(tmp_path: Path) -> None:
    project = dagster_project(tmp_path / "project")
    meltano(project, "--environment", "dev", "run", "tap-dativo-csv", "target-dativo-iceberg")

    found = run_checks(project)
    assert set(found) == {dg.AssetCheckKey(CUSTOMERS_KEY, FRESHNESS),
                          dg.AssetCheckKey(CUSTOMERS_KEY, QUALITY),
                          dg.AssetCheckKey(ORDERS_KEY, QUALITY)}  # orders: no contract, no SLA
    fresh = found[dg.AssetCheckKey(CUSTOMERS_KEY, FRESHNESS)]
    assert fresh.passed
    assert fresh.metadata["sla"].value == "latency 1 d"
    assert fresh.metadata["sla_seconds"].value == 86400.0
    assert 0 <= fresh.metadata["age_seconds"].value < 600
    quality = found[dg.AssetCheckKey(CUSTOMERS_KEY, QUALITY)]
    assert not quality.passed
    assert quality.severity == dg.AssetCheckSeverity.WARN
    assert quality.metadata["failing_rules"].value == ["all_customers_landed"]
    assert quality.metadata["failed"].value == 1
    assert quality.metadata["failed_errors"].value == 0
    assert quality.metadata["passed"].value >= 4  # customers_loaded, one_row_per_customer...
    assert found[dg.AssetCheckKey(ORDERS_KEY, QUALITY)].passed

    # The same commit against an SLA of 1 s, evaluated 2 s later: stale.
    set_sla(project, [{"property": "frequency", "value": 1, "unit": "s"},
                      {"property": "retention", "value": 3, "unit": "y"}])
    time.sleep(2)
    stale = run_checks(project)[dg.AssetCheckKey(CUSTOMERS_KEY, FRESHNESS)]
    assert not stale.passed
    assert stale.severity == dg.AssetCheckSeverity.WARN
    assert stale.metadata["sla"].value == "frequency 1 s"
    assert stale.metadata["age_seconds"].value >= 2
    assert stale.metadata["last_commit"].value == fresh.metadata["last_commit"].value

    catalog = warehouse(project)
    table = _customers(project)
    # A regulatory SLA fails as an ERROR; a table never committed fails, saying so.
    set_sla(project, [{"property": "latency", "value": 1, "unit": "s", "driver": "regulatory"}])
    sla = contract_sla(_customers(project))
    assert sla is not None and sla.severity == dg.AssetCheckSeverity.ERROR
    never = freshness_result(catalog, dataclasses.replace(table, name="prospects"), sla)
    assert not never.passed
    assert "never committed" in (never.description or "")

    # Without <table>__quality the check is the dead-letter ratio of the newest load:
    # 4 of the export's 10 customers were dead-lettered.
    catalog.drop_table((*CUSTOMERS[:2], CUSTOMERS[2] + "__quality"))
    ratio = quality_result(catalog, table)
    assert not ratio.passed
    assert ratio.severity == dg.AssetCheckSeverity.WARN
    assert (ratio.metadata["committed"].value, ratio.metadata["dead_lettered"].value) == (6, 4)
    assert ratio.metadata["dead_letter_ratio"].value == 0.4


def _customers(project: Path) -> Table:
    pipeline = next(p for p in load_project(project).of_tenant("demo")
                    if p.job == "demo-csv-to-iceberg")
    return next(t for t in pipeline.tables if t.name == "customers")


@pytest.mark.parametrize(("entry", "named"), [
    ({"property": "latency", "value": 1, "unit": "fortnight"}, "slaProperties[0].unit"),
    ({"property": "latency", "value": "soon", "unit": "d"}, "slaProperties[0].value"),
    ({"property": "latency", "value": 0, "unit": "d"}, "slaProperties[0].value"),
])
def test_a_bad_sla_is_an_error_naming_it(tmp_path: Path, entry: dict[str, object],
                                         named: str) -> None:
    project = dagster_project(tmp_path / "project")
    set_sla(project, [entry])
    with pytest.raises(ConfigError, match=rf"customers\.odcs\.yaml: {re.escape(named)}"):
        build_checks(load_project(project), "demo")
