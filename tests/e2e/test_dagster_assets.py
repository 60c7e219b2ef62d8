"""The demo tenant's Dagster assets materialized for real: `meltano run` of the demo job in
a copied project, into its SQLite-catalog warehouse, through the definitions Dagster loads.

Two runs: a subset (customers only), then the whole job (orders lands, customers adds
nothing as the tap's bookmark holds). Each run is checked for rows, metadata and state.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from dativo.errors import ConfigError
from dativo_dagster.assets import PipelineRunConfig, _owners, op_name
from dativo_dagster.definitions import build_definitions
from dativo_dagster.environment import tenant_environment
from dativo_dagster.meltano_runs import run_environment
from dativo_dagster.project import Pipeline, load_project
from tests.conftest import REPO, read_table
from tests.e2e.test_meltano_run import (
    CUSTOMERS,
    DEAD_LETTER,
    ORDERS,
    VALID_CUSTOMER_IDS,
    copy_project,
    warehouse,
)

JOB = "demo_csv_to_iceberg"
OP = f"{JOB}__meltano_run"
STRIPE_SECRET = "sk_live_must_never_reach_demo_0123456789"
TEAM_AND_TAGS = """
team:
  - username: alice@example.com
    role: owner
  - name: CRM data
    role: steward
  - username: bob@example.com
    role: owner
    dateOut: "2025-01-01"
tags: [crm, pii, not a dagster key]
"""


def dagster_project(root: Path) -> Path:
    """A copy of the repo's Meltano project with its dativo-dagster.yml."""
    project = copy_project(root)
    shutil.copy(REPO / "dativo-dagster.yml", project)
    return project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = dagster_project(tmp_path / "project")
    with (root / "odcs_contracts/demo/crm/customers.odcs.yaml").open("a") as contract:
        contract.write(TEAM_AND_TAGS)
    # Another tenant's secret in the orchestrator's environment.
    monkeypatch.setenv("TAP_DATIVO_STRIPE_API_KEY", STRIPE_SECRET)
    for key in [k for k in os.environ if k.startswith("MELTANO_")]:
        monkeypatch.delenv(key)
    return root


def materialized(result: dg.ExecuteInProcessResult) -> dict[tuple[str, ...], dict]:
    """Asset key path -> its materialization's metadata values."""
    return {tuple(m.asset_key.path): {k: v.value for k, v in m.metadata.items()}
            for m in result.asset_materializations_for_node(OP)}


def test_demo_assets_materialize_subset_then_all_without_duplicates(project: Path) -> None:
    defs = build_definitions(project, "demo")
    job = defs.resolve_job_def(JOB)
    assert job.tags["dativo/pipeline"] == "demo-csv-to-iceberg"

    # The specs carry the contract: description, owners, tags, columns, the file.
    spec = next(s for s in defs.resolve_all_asset_specs() if s.key.path == list(CUSTOMERS))
    assert spec.group_name == "crm"
    assert "Customer master data for the CRM domain." in (spec.description or "")
    assert list(spec.owners) == ["alice@example.com", "team:CRM_data"]
    assert dict(spec.tags) == {"crm": "", "pii": "", "dagster/kind/iceberg": ""}
    assert spec.metadata["contract"].value == str(
        project / "odcs_contracts/demo/crm/customers.odcs.yaml")
    assert spec.metadata["dativo/table"] == "demo.crm.customers"
    columns = {c.name: c for c in spec.metadata["dagster/column_schema"].columns}
    assert list(columns) == ["customer_id", "email", "full_name", "country", "signup_date",
                             "lifetime_value", "tier"]
    assert columns["customer_id"].type == "bigint"
    assert columns["customer_id"].constraints.other == ["primary key"]
    assert not columns["customer_id"].constraints.nullable
    assert columns["customer_id"].constraints.unique
    assert columns["email"].type == "string" and not columns["email"].constraints.nullable
    assert columns["country"].constraints.nullable

    # Run config: full_refresh is known, a misspelled key is refused.
    assert op_name(_pipeline(project)) == OP
    run_config = {"ops": {OP: {"config": {"full_refresh": True, "environment": "ci"}}}}
    assert dg.validate_run_config(job, run_config)["ops"][OP]["config"]["full_refresh"]
    with pytest.raises(dg.DagsterInvalidConfigError, match="full_refesh"):
        dg.validate_run_config(job, {"ops": {OP: {"config": {"full_refesh": True}}}})

    # Run 1: only customers, through dagster.materialize.
    instance = dg.DagsterInstance.ephemeral()
    pipeline_assets = defs.resolve_assets_def(dg.AssetKey(list(CUSTOMERS)))
    assert pipeline_assets.op.pool == "dativo/demo-csv-to-iceberg"  # one writer per table
    result = dg.materialize([pipeline_assets], selection=[dg.AssetKey(list(CUSTOMERS))],
                            instance=instance)
    assert result.success
    catalog = warehouse(project)
    assert sorted(read_table(catalog, CUSTOMERS).column("customer_id").to_pylist()) \
        == VALID_CUSTOMER_IDS
    assert not catalog.table_exists(ORDERS)  # the orders stream was not selected
    customers_snapshot = catalog.load_table(CUSTOMERS).current_snapshot().snapshot_id
    meta = materialized(result)
    assert list(meta) == [CUSTOMERS]
    assert meta[CUSTOMERS]["rows_committed"] == 6
    assert meta[CUSTOMERS]["rows_rejected"] == 4
    assert meta[CUSTOMERS]["rows_received"] == 10
    assert meta[CUSTOMERS]["snapshot_id"] == customers_snapshot
    assert meta[CUSTOMERS]["dagster/row_count"] == 6  # the table after the commit
    assert meta[CUSTOMERS]["table"] == "demo.crm.customers"
    assert meta[CUSTOMERS]["dead_letter_table"] == ".".join(DEAD_LETTER)
    assert meta[CUSTOMERS]["data_files"] == 1
    assert meta[CUSTOMERS]["bytes_written"] > 0
    # The other tenant's secret never reached the run (nor its log).
    entries = instance.all_logs(result.run_id)
    logs = "\n".join(str(e.user_message) for e in entries)
    assert "demo.crm.customers" in logs  # the target's lines are in the run's log
    # at the level Meltano gave them
    assert {e.level for e in entries if "4 record(s) rejected" in str(e.user_message)} \
        == {logging.WARNING}
    assert STRIPE_SECRET not in logs

    # Run 2: the whole asset job; customers' bookmark holds, so it commits nothing.
    result = job.execute_in_process(instance=instance)
    assert result.success
    catalog = warehouse(project)
    assert sorted(read_table(catalog, CUSTOMERS).column("customer_id").to_pylist()) \
        == VALID_CUSTOMER_IDS
    assert catalog.load_table(CUSTOMERS).current_snapshot().snapshot_id == customers_snapshot
    assert sorted(read_table(catalog, ORDERS).column("order_id").to_pylist()) == [
        str(i) for i in range(1001, 1007)]
    meta = materialized(result)
    assert set(meta) == {CUSTOMERS, ORDERS}
    assert meta[CUSTOMERS]["rows_committed"] == 0
    assert meta[CUSTOMERS]["snapshot_id"] is None
    assert meta[ORDERS]["rows_committed"] == 6
    assert meta[ORDERS]["dead_letter_table"] is None
    assert meta[ORDERS]["snapshot_id"] == \
        catalog.load_table(ORDERS).current_snapshot().snapshot_id


def _pipeline(project: Path) -> Pipeline:
    return load_project(project).of_tenant("demo")[0]


def test_tenants_are_isolated(project: Path, tmp_path: Path) -> None:
    demo = build_definitions(project, "demo")
    acme = build_definitions(project, "acme")
    demo_keys = {tuple(s.key.path) for s in demo.resolve_all_asset_specs()}
    acme_keys = {tuple(s.key.path) for s in acme.resolve_all_asset_specs()}
    assert demo_keys and {k[0] for k in demo_keys} == {"demo"}
    assert acme_keys and {k[0] for k in acme_keys} == {"acme"}
    assert ("acme", "stripe", "customers") in acme_keys
    assert {j.name for j in demo.resolve_all_job_defs()} >= {JOB}
    assert "stripe_to_iceberg" not in {j.name for j in demo.resolve_all_job_defs()}

    loaded = load_project(project)
    base = {"TAP_DATIVO_STRIPE_API_KEY": STRIPE_SECRET, "TAP_DATIVO_CSV_TENANT_ID": "demo",
            "TARGET_DATIVO_ICEBERG_VALIDATION_MODE": "warn", "HOME": "/home/x"}
    assert "TAP_DATIVO_STRIPE_API_KEY" not in tenant_environment(loaded, "demo", base)
    assert tenant_environment(loaded, "acme", base)["TAP_DATIVO_STRIPE_API_KEY"] \
        == STRIPE_SECRET
    env = run_environment(loaded, _pipeline(project), ["customers"], tmp_path, base)
    assert not any(k.startswith("TAP_DATIVO_STRIPE") for k in env)
    assert env["TAP_DATIVO_CSV__SELECT"] == '["customers.*"]'
    assert env["DATIVO_RUN_REPORT_DIR"] == str(tmp_path)
    assert env["TAP_DATIVO_CSV_TENANT_ID"] == "demo" and env["HOME"] == "/home/x"

    with pytest.raises(ConfigError, match=r"tenant 'nobody'.*the tenants are: acme, demo"):
        build_definitions(project, "nobody")


def test_specs_of_a_table_without_contract_and_of_team_shapes(project: Path) -> None:
    defs = build_definitions(project, "demo")
    orders = next(s for s in defs.resolve_all_asset_specs() if s.key.path == list(ORDERS))
    assert orders.group_name == "default"
    assert orders.metadata == {"dativo/table": "demo.default.orders"}  # no contract
    assert orders.description \
        == "Iceberg table demo.default.orders, written by stream 'orders'."
    assert not orders.owners
    # ODCS v3.1 nests the members under team.members; v3.0.2 lists them.
    team = {"team": {"name": "crm", "members": [{"username": "carol"},
                                                 {"name": "Dan", "dateOut": "2024-01-01"}]}}
    assert _owners(team) == ["team:carol"]
    assert _owners({"team": [{"username": "x@example.com"}, {"role": "nobody"}]}) == [
        "x@example.com"]


def test_locations_and_defs_read_the_environment(project: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATIVO_MELTANO_PROJECT", str(project))
    monkeypatch.delenv("DATIVO_TENANT", raising=False)
    locations = importlib.import_module("dativo_dagster.locations")
    package = importlib.import_module("dativo_dagster")
    acme = locations.acme
    assert {s.key.path[0] for s in acme.resolve_all_asset_specs()} == {"acme"}
    assert locations.acme is acme  # built once per process
    with pytest.raises(ConfigError, match=r"tenants acme, demo; set DATIVO_TENANT"):
        package.defs  # noqa: B018 - the attribute is built on access
    monkeypatch.setenv("DATIVO_TENANT", "demo")
    assert {s.key.path[0] for s in package.defs.resolve_all_asset_specs()} == {"demo"}
    with pytest.raises(AttributeError):
        package.nothing  # noqa: B018
    assert PipelineRunConfig().full_refresh is False
