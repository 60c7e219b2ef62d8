"""The pure parts of dativo_dagster's checks: a contract's SLA, and where the default
catalog of a project is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dativo.errors import ConfigError
from dativo_dagster.catalogs import project_catalog_properties
from dativo_dagster.checks import contract_sla
from dativo_dagster.project import Table


def table(sla: Any) -> Table:
    doc = {} if sla is None else {"slaProperties": sla}
    return Table("demo", "crm", "customers", "customers",
                 contract_path=Path("odcs_contracts/demo/crm/customers.odcs.yaml"),
                 contract_doc=doc)


@pytest.mark.parametrize(("sla", "seconds", "text"), [
    ([{"property": "latency", "value": 1, "unit": "d"}], 86400, "latency 1 d"),
    ([{"property": "frequency", "value": 2, "unit": "hours"},
      {"property": "latency", "value": 30, "unit": "min"}], 1800, "latency 30 min"),
    ([{"property": "retention", "value": 3, "unit": "y"},
      {"property": "frequency", "value": 1.5, "unit": "H"}], 5400, "frequency 1.5 H"),
    ([{"property": "latency", "value": 45, "unit": "s"}], 45, "latency 45 s"),
])
def test_sla_prefers_latency_and_reads_units(sla: Any, seconds: float, text: str) -> None:
    found = contract_sla(table(sla))
    assert found is not None
    assert (found.seconds, found.text, found.severity) == (
        seconds, text, dg.AssetCheckSeverity.WARN)


def test_no_sla_no_freshness_check() -> None:
    assert contract_sla(table(None)) is None
    assert contract_sla(table([{"property": "retention", "value": 3, "unit": "y"}])) is None


def test_sla_without_unit_is_named() -> None:
    with pytest.raises(ConfigError, match=r"slaProperties\[1\]\.unit: missing"):
        contract_sla(table([{"property": "retention", "value": 3, "unit": "y"},
                            {"property": "latency", "value": 3}]))


def test_default_catalog_is_under_the_project_root(tmp_path: Path) -> None:
    unset = {"name": None, "type": None, "uri": None, "warehouse": None}
    props = project_catalog_properties(tmp_path, unset)
    assert props["uri"] == f"sqlite:///{tmp_path / 'output/warehouse/catalog.db'}"
    assert props["warehouse"] == (tmp_path / "output/warehouse").as_uri()
    assert project_catalog_properties(tmp_path, None) == props
    own = {"name": "lake", "type": "rest", "uri": "http://catalog:8181", "s3": {"endpoint": None}}
    assert project_catalog_properties(tmp_path, own) == {
        "name": "lake", "type": "rest", "uri": "http://catalog:8181"}
