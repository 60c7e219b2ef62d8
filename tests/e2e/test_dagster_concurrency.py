"""Many runs at once through Dagster (docs/orchestration.md, "Many runs on one machine"):
six asset-job runs start together, each a real ``meltano run`` into one shared catalog (a
SqlCatalog on a throwaway PostgreSQL, the catalog docs/catalogs.md names for several
writers):

- four jobs, each loading its own entity into its own table;
- one job run twice at the same moment, over two different input files, appending into
  one table. Two runs of one Meltano job in one project share its state id, and Meltano
  refuses the second while the first runs; so, as two deployments (or two machines)
  would, the second run is the same job in a second copy of the project, which has its
  own Meltano system database and so its own state. (In one deployment the run queue's
  ``dativo/pipeline`` limit never starts them together: orchestration/dagster_home.)

Every table must end with exactly the ids of its input rows: none lost, none twice, and
both writers' commits must be in the shared table's history. Whether the two commits
collide depends on timing; when they do, the loser's commit is retried on the winner's
snapshot (docs/catalogs.md, "Several writers at once"; tests/integration/
test_concurrent_writers.py forces such collisions without Dagster).

And the queue itself: under ``dagster dev`` with that instance config, two runs of one
job launched together run one after the other. Also here, without a run: the instance
config of ``make dagster`` queues runs and allows one per value of the ``dativo/pipeline``
tag (every asset job carries it) and one per pool (every pipeline's step is in the pool
``dativo/<job>``).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from pyiceberg.catalog import load_catalog

from dativo.iceberg.catalog import default_catalog_properties
from dativo_dagster.definitions import PIPELINE_TAG, build_definitions
from tests.conftest import BIN, REPO, read_table
from tests.services.dagster_server import graphql, stop, wait_for_server
from tests.services.ports import free_port
from tests.services.postgres import PostgresServer

ENTITIES = ("alpha", "beta", "gamma", "delta")
ENTITY_ROWS = 300
EVENT_ROWS = 600
BATCH_ROWS = 50  # data files of 50 rows, committed as soon as written
RUN_B_IDS = 100_000  # the second events input's ids start here


def write_csv(path: Path, first_id: int, rows: int, label: str) -> list[int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = list(range(first_id, first_id + rows))
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "source", "payload"])
        writer.writerows([i, label, f"{label}-{i}"] for i in ids)
    return ids


def meltano_project(root: Path, catalog: dict[str, str]) -> Path:
    """A Meltano project of five jobs, each with a tap of its own (so its own state id):
    load-<entity> for the four entities and load-events, all into one shared catalog."""
    root.mkdir()
    shutil.copytree(REPO / "plugins", root / "plugins")
    taps = [{"name": "tap-dativo-csv", "variant": "dativo", "config": {"tenant_id": "demo"}}]
    jobs = []
    for entity in (*ENTITIES, "events"):
        taps.append({"name": f"tap-{entity}", "inherit_from": "tap-dativo-csv",
                     "config": {"files": [{"entity": entity, "path": f"inbox/{entity}.csv",
                                           "keys": ["id"]}]}})
        jobs.append({"name": f"load-{entity}",
                     "tasks": [f"tap-{entity} target-dativo-iceberg"]})
    project = {
        "project_id": f"dagster-concurrency-{root.name}",
        "default_environment": "dev",
        "send_anonymous_usage_stats": False,
        "plugins": {
            "extractors": taps,
            "loaders": [{"name": "target-dativo-iceberg", "variant": "dativo", "config": {
                "tenant_id": "demo", "catalog": catalog, "load_method": "append-only",
                "batch_size_rows": BATCH_ROWS, "commit_interval_seconds": 0,
                "anomaly_detection": False}}],
        },
        "environments": [{"name": "dev"}],
        "jobs": jobs,
    }
    (root / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    # no retries: a run that failed must show here, not pass on a second attempt
    (root / "dativo-dagster.yml").write_text(yaml.safe_dump(
        {"environment": "dev", "retries": {"max_retries": 0}}))
    # Meltano creates its system database on a project's first command; six first
    # commands at once would race to create it.
    subprocess.run([str(BIN / "meltano"), "state", "list"], cwd=root, env=meltano_env(),
                   check=True, capture_output=True, timeout=300)
    return root


def meltano_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
    env.update({"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_DISABLE_TRACKING": "true", "PYTHONWARNINGS": "ignore"})
    return env


@pytest.fixture
def shared_catalog(postgres: PostgresServer, tmp_path: Path) -> dict[str, str]:
    """An empty PostgreSQL-backed SqlCatalog, warehouse in tmp_path."""
    return {"name": "shared", "type": "sql",
            "uri": postgres.create_database(f"dagster_{uuid.uuid4().hex[:12]}"),
            "warehouse": (tmp_path / "warehouse").as_uri()}


def test_six_runs_at_once_lose_and_double_no_row(
        tmp_path: Path, shared_catalog: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the meltano processes of the runs inherit this process's environment
    for key in [k for k in os.environ if k.startswith("MELTANO_")]:
        monkeypatch.delenv(key)
    for key, value in meltano_env().items():
        monkeypatch.setenv(key, value)
    first = meltano_project(tmp_path / "first", shared_catalog)
    second = meltano_project(tmp_path / "second", shared_catalog)
    expected = {entity: write_csv(first / "inbox" / f"{entity}.csv", 1 + n * 10_000,
                                  ENTITY_ROWS, entity)
                for n, entity in enumerate(ENTITIES)}
    events_a = write_csv(first / "inbox" / "events.csv", 1, EVENT_ROWS, "a")
    events_b = write_csv(second / "inbox" / "events.csv", RUN_B_IDS, EVENT_ROWS, "b")

    defs_first = build_definitions(first, "demo")
    defs_second = build_definitions(second, "demo")
    runs: list[tuple[str, dg.Definitions, str]] = [
        *((entity, defs_first, f"load_{entity}") for entity in ENTITIES),
        ("events-a", defs_first, "load_events"),
        ("events-b", defs_second, "load_events")]
    start = threading.Barrier(len(runs))

    def run(defs: dg.Definitions, job: str) -> dg.ExecuteInProcessResult:
        job_def = defs.resolve_job_def(job)
        start.wait()
        return job_def.execute_in_process(raise_on_error=False)

    with ThreadPoolExecutor(len(runs)) as pool:
        futures = {name: pool.submit(run, defs, job) for name, defs, job in runs}
        results = {name: future.result() for name, future in futures.items()}

    for name, result in results.items():
        failures = [e.message for e in result.all_events if e.is_failure]
        assert result.success, f"run {name} failed: {failures}"
    metadata = {name: {e.asset_key.path[-1]: e.materialization.metadata
                       for e in result.get_asset_materialization_events()}
                for name, result in results.items()}

    props = dict(shared_catalog)
    catalog = load_catalog(props.pop("name"), **props)
    for entity, ids in expected.items():
        table = read_table(catalog, ("demo", "default", entity))
        assert sorted(int(i) for i in table.column("id").to_pylist()) == ids, entity
        assert metadata[entity][entity]["rows_committed"].value == ENTITY_ROWS
    events = catalog.load_table(("demo", "default", "events"))
    rows = events.scan().to_arrow()
    assert sorted(int(i) for i in rows.column("id").to_pylist()) == events_a + events_b
    assert sorted(rows.column("source").to_pylist()) == ["a"] * EVENT_ROWS + ["b"] * EVENT_ROWS
    history = {s.snapshot_id for s in events.snapshots()}
    reported: dict[str, Any] = {name: metadata[name]["events"]
                                for name in ("events-a", "events-b")}
    for name, values in reported.items():
        assert values["rows_committed"].value == EVENT_ROWS, name
        assert values["rows_rejected"].value == 0, name
    # each writer's own commit is in the table's history: neither replaced the other's
    landed = {values["snapshot_id"].value for values in reported.values()}
    assert len(landed) == 2 and landed <= history


def test_the_instance_queues_one_run_per_pipeline_at_a_time(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "orchestration" / "dagster_home" / "dagster.yaml", home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        config = instance.get_concurrency_config()  # what the queue daemon applies
        queue = config.run_queue_config
        assert queue is not None and queue.max_concurrent_runs > 1
        assert queue.tag_concurrency_limits == [
            {"key": PIPELINE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
        assert config.pool_config.default_pool_limit == 1
        assert config.pool_config.pool_granularity.value == "run"
    defs = build_definitions(REPO, "demo")
    jobs = {job.name: job.tags.get(PIPELINE_TAG) for job in defs.resolve_all_job_defs()
            if not job.name.startswith("__")}
    assert jobs["demo_csv_to_iceberg"] == "demo-csv-to-iceberg"
    assert all(jobs.values()), jobs
    # a run launched from the asset graph has no job tag: its step's pool holds it back
    pools = {defs.resolve_assets_def(key).op.pool for key in defs.resolve_all_asset_keys()}
    assert "dativo/demo-csv-to-iceberg" in pools and None not in pools


LAUNCH = """
mutation {
  launchRun(executionParams: {
      selector: {repositoryLocationName: "demo", repositoryName: "__repository__",
                 jobName: "demo_csv_to_iceberg"},
      runConfigData: {}}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""


def test_the_queue_runs_two_runs_of_one_job_one_after_the_other(tmp_path: Path) -> None:
    """``dagster dev`` (webserver and daemon) on a copy of the demo project, with
    orchestration/dagster_home/dagster.yaml: two runs of the demo job launched together
    both succeed, the second starts only after the first ended (one run per
    ``dativo/pipeline`` value), and the demo rows land once."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("meltano.yml", "dativo-dagster.yml", "workspace.yaml"):
        shutil.copy(REPO / name, project)
    for folder in ("plugins", "samples", "odcs_contracts"):
        shutil.copytree(REPO / folder, project / folder)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "orchestration" / "dagster_home" / "dagster.yaml", home)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in meltano_env().items() if not k.startswith(("DAGSTER_", "DATIVO_"))}
    env.update({"DAGSTER_HOME": str(home), "DATIVO_MELTANO_PROJECT": str(project)})
    log = tmp_path / "dagster-dev.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1",
             "-p", str(port)], cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        wait_for_server(f"{base}/server_info", server, log)
        launched = [graphql(base, LAUNCH)["launchRun"] for _ in range(2)]
        assert [r["__typename"] for r in launched] == ["LaunchRunSuccess"] * 2, launched
        run_ids = [r["run"]["runId"] for r in launched]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                records = [instance.get_run_record_by_id(i) for i in run_ids]
                if all(r is not None and r.dagster_run.is_finished for r in records):
                    break
                time.sleep(1)
            else:
                raise AssertionError(f"the runs did not end within 600 s:\n"
                                     f"{log.read_text(errors='replace')[-3000:]}")
            assert [r.dagster_run.status for r in records] == [
                dg.DagsterRunStatus.SUCCESS] * 2, log.read_text(errors="replace")[-3000:]
            assert all(r.dagster_run.tags.get(PIPELINE_TAG) == "demo-csv-to-iceberg"
                       for r in records)
            first, second = sorted(records, key=lambda r: r.start_time or 0)
            assert first.end_time is not None and second.start_time is not None
            assert second.start_time >= first.end_time  # queued while the first ran
    finally:
        stop(server)
    props = default_catalog_properties(project / "output" / "warehouse")
    catalog = load_catalog(props.pop("name"), **props)
    customers = read_table(catalog, ("demo", "crm", "customers"))
    assert sorted(customers.column("customer_id").to_pylist()) == [1, 2, 3, 4, 9, 10]
