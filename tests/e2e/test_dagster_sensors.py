"""The sensors of dativo-dagster.yml, evaluated with Dagster's in-process sensor API on a
copied project whose CSV tap reads a glob in the watched folder.

The runs a file-arrival sensor requests are executed for real (two `meltano run`s into
the copy's SQLite-catalog warehouse), and the second run's success event drives the
run-status sensor of a chain. The S3 case lists a prefix on the throwaway S3 server.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from dativo.errors import ConfigError
from dativo_dagster.definitions import build_definitions
from dativo_dagster.sensors import AFTER_RUN_TAG, FILE_TAG
from tests.conftest import REPO, read_table
from tests.e2e.test_meltano_run import CUSTOMERS, copy_project, warehouse
from tests.services.s3 import S3Server

JOB = "demo-csv-to-iceberg"
OP = "demo_csv_to_iceberg__meltano_run"
CHAIN = "demo_csv_to_iceberg__then__postgres_to_iceberg"
HEADER = "customer_id,email,full_name,country,signup_date,lifetime_value,tier\n"
ROWS = {
    1: "1,ada@example.com,Ada Lovelace,GB,2024-01-15,1250.50,gold\n",
    2: "2,grace@example.com,Grace Hopper,US,2024-02-03,980.00,silver\n",
    3: "3,alan@example.com,Alan Turing,GB,2024-02-28,310.25,bronze\n",
    4: "4,katherine@example.com,Katherine Johnson,US,2024-03-12,2200.00,gold\n",
    9: "9,tim@example.com,Tim Berners-Lee,GB,2024-06-01,720.40,silver\n",
}


def sensor_project(root: Path, *, sensors: list[dict[str, Any]] | None = None,
                   chains: list[dict[str, str]] | None = None) -> Path:
    """A copy of the repo's project whose customers come from samples/incoming/*.csv,
    watched by sensor ``arrivals`` (unless ``sensors`` says otherwise)."""
    project = copy_project(root)
    meltano_yml = project / "meltano.yml"
    doc = yaml.safe_load(meltano_yml.read_text(encoding="utf-8"))
    csv = next(p for p in doc["plugins"]["extractors"] if p["name"] == "tap-dativo-csv")
    csv["config"]["files"] = [{"entity": "customers", "path": "samples/incoming/*.csv",
                               "keys": ["customer_id"]}]
    meltano_yml.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    (project / "samples" / "incoming").mkdir()
    settings = yaml.safe_load((REPO / "dativo-dagster.yml").read_text(encoding="utf-8"))
    settings["sensors"] = sensors if sensors is not None else [
        {"name": "arrivals", "job": JOB, "watch": "samples/incoming", "pattern": "*.csv"}]
    settings["chains"] = chains or []
    (project / "dativo-dagster.yml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    return project


def sensors_of(root: Path, tenant: str = "demo") -> dict[str, dg.SensorDefinition]:
    """The tenant's sensors, as its code location's definitions hold them."""
    repository = build_definitions(root, tenant).get_repository_def()
    return {s.name: s for s in repository.sensor_defs}


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None,
         defs: dg.Definitions | None = None) -> tuple[list[dg.RunRequest], str | None]:
    """One evaluation, as the sensor daemon makes it (a run-status sensor reads the
    instance's run events from ``cursor`` on, so it needs the repository)."""
    repository = defs.get_repository_def() if defs is not None else None
    data = sensor.evaluate_tick(dg.build_sensor_context(
        instance=instance, cursor=cursor, repository_def=repository))
    return list(data.run_requests or []), data.cursor


def write_csv(path: Path, *ids: int) -> None:
    path.write_text(HEADER + "".join(ROWS[i] for i in ids), encoding="utf-8")


def test_file_sensor_runs_the_job_once_per_new_or_changed_file(tmp_path: Path) -> None:
    project = sensor_project(tmp_path / "project", chains=[
        {"after": JOB, "run": "postgres-to-iceberg"}])
    incoming = project / "samples" / "incoming"
    write_csv(incoming / "a.csv", 1, 2)
    (incoming / "notes.txt").write_text("not a csv")
    defs = build_definitions(project, "demo")
    sensors = {s.name: s for s in defs.get_repository_def().sensor_defs}
    assert set(sensors) == {"arrivals", CHAIN}
    arrivals, chain = sensors["arrivals"], sensors[CHAIN]
    assert arrivals.job_name == "demo_csv_to_iceberg"
    assert isinstance(chain, dg.RunStatusSensorDefinition)
    assert chain.job_name == "postgres_to_iceberg"
    job = defs.resolve_job_def("demo_csv_to_iceberg")

    with dg.DagsterInstance.ephemeral() as instance:
        chained, chain_cursor = tick(chain, instance, None, defs)
        assert chained == []  # the first tick only starts reading from now
        # The first tick: a.csv is new to the sensor.
        requests, cursor = tick(arrivals, instance, None)
        assert [r.tags[FILE_TAG] for r in requests] == ["samples/incoming/a.csv"]
        stat = (incoming / "a.csv").stat()
        assert requests[0].run_key == \
            f"samples/incoming/a.csv@{stat.st_mtime_ns}:{stat.st_size}"
        assert json.loads(cursor or "") == {
            "samples/incoming/a.csv": f"{stat.st_mtime_ns}:{stat.st_size}"}
        first = job.execute_in_process(instance=instance, tags=requests[0].tags)
        assert first.success
        assert first.dagster_run.tags[FILE_TAG] == "samples/incoming/a.csv"
        assert _customer_ids(project) == [1, 2]
        # The chain: the successful run of the demo job requests postgres-to-iceberg.
        chained, chain_cursor = tick(chain, instance, chain_cursor, defs)
        assert [(r.run_key, r.tags[AFTER_RUN_TAG]) for r in chained] == [
            (f"postgres-to-iceberg@{first.run_id}", first.run_id)]

        # A new file: exactly one request, and its run reads only the new file.
        write_csv(incoming / "b.csv", 3, 4)
        requests, cursor = tick(arrivals, instance, cursor)
        assert [r.tags[FILE_TAG] for r in requests] == ["samples/incoming/b.csv"]
        second = job.execute_in_process(instance=instance, tags=requests[0].tags)
        assert second.success
        assert _customer_ids(project) == [1, 2, 3, 4]  # no duplicate of a.csv's rows
        assert tick(arrivals, instance, cursor)[0] == []  # the same files again: none

        # A failed run of the demo job (an unknown Meltano environment) chains nothing.
        failed = job.execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"ops": {OP: {"config": {"environment": "no-such-env"}}}})
        assert not failed.success
        chained, chain_cursor = tick(chain, instance, chain_cursor, defs)
        assert [r.tags[AFTER_RUN_TAG] for r in chained] == [second.run_id]  # not failed's
        assert tick(chain, instance, chain_cursor, defs)[0] == []

        # A changed file: one request; a deleted file drops out of the cursor.
        with (incoming / "b.csv").open("a", encoding="utf-8") as changed:
            changed.write(ROWS[9])
        requests, cursor = tick(arrivals, instance, cursor)
        assert [r.tags[FILE_TAG] for r in requests] == ["samples/incoming/b.csv"]
        (incoming / "a.csv").unlink()
        requests, cursor = tick(arrivals, instance, cursor)
        assert requests == []
        assert list(json.loads(cursor or "")) == ["samples/incoming/b.csv"]

        # Symlinks out of the watched folder are not followed.
        outside = tmp_path / "outside"
        outside.mkdir()
        write_csv(outside / "secret.csv", 9)
        os.symlink(outside / "secret.csv", incoming / "link.csv")
        os.symlink(outside, incoming / "linked_dir")
        requests, cursor = tick(arrivals, instance, cursor)
        assert requests == []
        assert list(json.loads(cursor or "")) == ["samples/incoming/b.csv"]


def _customer_ids(project: Path) -> list[int]:
    return sorted(read_table(warehouse(project), CUSTOMERS).column("customer_id").to_pylist())


def test_s3_prefix_sensor(tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3.create_bucket("dagster-arrivals")
    project = sensor_project(tmp_path / "project", sensors=[
        {"name": "s3_arrivals", "job": JOB, "watch": f"s3://{bucket}/incoming",
         "pattern": "*.csv"}])
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_REGION", s3.region)
    client = s3.filesystem()
    _put(client, f"{bucket}/incoming/a.csv", HEADER + ROWS[1])
    _put(client, f"{bucket}/incoming/readme.txt", "not a csv")
    _put(client, f"{bucket}/elsewhere/x.csv", HEADER + ROWS[2])
    sensor = sensors_of(project)["s3_arrivals"]

    with dg.DagsterInstance.ephemeral() as instance:
        requests, cursor = tick(sensor, instance, None)
        assert [r.tags[FILE_TAG] for r in requests] == [f"s3://{bucket}/incoming/a.csv"]
        assert requests[0].run_key.startswith(f"s3://{bucket}/incoming/a.csv@")
        assert tick(sensor, instance, cursor)[0] == []
        _put(client, f"{bucket}/incoming/b.csv", HEADER + ROWS[3])
        requests, cursor = tick(sensor, instance, cursor)
        assert [r.tags[FILE_TAG] for r in requests] == [f"s3://{bucket}/incoming/b.csv"]
        assert sorted(json.loads(cursor or "")) == [f"s3://{bucket}/incoming/a.csv",
                                                    f"s3://{bucket}/incoming/b.csv"]


def _put(client: Any, path: str, text: str) -> None:
    with client.open_output_stream(path) as out:
        out.write(text.encode())


@pytest.mark.parametrize(("settings", "named"), [
    ({"sensors": [{"name": "s", "job": "no-such-job", "watch": "samples/incoming"}]},
     r"sensors\[0\]\.job: 'no-such-job'"),
    ({"sensors": [{"name": "s", "job": JOB, "watch": "samples/incoming",
                   "pattern": "../*.csv"}]}, r"sensors\[0\]\.pattern"),
    ({"sensors": [{"name": "s", "job": JOB, "watch": "samples/incoming",
                   "pattern": "/etc/*.csv"}]}, r"sensors\[0\]\.pattern"),
    ({"chains": [{"after": JOB, "run": "stripe-to-iceberg"}]}, r"chains\[0\]: job"),
    ({"chains": [{"after": JOB, "run": "nope"}]}, r"chains\[0\]\.run: 'nope'"),
])
def test_bad_sensor_settings_are_errors_naming_the_entry(
        tmp_path: Path, settings: Mapping[str, Any], named: str) -> None:
    project = sensor_project(tmp_path / "project", sensors=settings.get("sensors", []),
                             chains=settings.get("chains"))
    with pytest.raises(ConfigError, match=named):
        sensors_of(project)


def test_a_tenant_gets_only_its_own_sensors(tmp_path: Path) -> None:
    project = sensor_project(tmp_path / "project", sensors=[
        {"name": "demo_files", "job": JOB, "watch": "samples/incoming"},
        {"name": "acme_files", "job": "stripe-to-iceberg", "watch": "samples/incoming"}],
        chains=[{"after": "stripe-to-iceberg", "run": "hubspot-to-iceberg"}])
    assert set(sensors_of(project, "demo")) == {"demo_files"}
    assert set(sensors_of(project, "acme")) == {
        "acme_files", "stripe_to_iceberg__then__hubspot_to_iceberg"}
    shutil.rmtree(project / "samples" / "incoming")
    with dg.DagsterInstance.ephemeral() as instance, \
            pytest.raises(ConfigError, match="does not exist"):
        tick(sensors_of(project, "demo")["demo_files"], instance, None)
