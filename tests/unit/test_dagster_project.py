"""The project model Dagster builds from meltano.yml, the contracts and dativo-dagster.yml:
read from the repo's own project and from small projects written here, each mistake an
error naming what is wrong and what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dativo.errors import ConfigError
from dativo_dagster.environment import tenant_environment
from dativo_dagster.project import dagster_name, env_prefix, load_project
from dativo_dagster.settings import RetrySettings, load_settings, parse_settings
from tests.conftest import REPO


def write_project(root: Path, jobs: list[dict[str, Any]] | None = None,
                  schedules: list[dict[str, Any]] | None = None,
                  settings: dict[str, Any] | None = None) -> Path:
    """A Meltano project of one tap and two tenants' targets (no contracts)."""
    doc = {
        "default_environment": "dev",
        "plugins": {
            "extractors": [
                {"name": "tap-dativo-csv", "config": {"files": [
                    {"entity": "customers", "path": "c.csv"},
                    {"entity": "orders", "path": "o.csv"}]}},
                {"name": "tap-dativo-stripe", "select": ["customers.*", "charges.*"]},
                {"name": "tap-dativo-hubspot"},
            ],
            "loaders": [
                {"name": "target-dativo-iceberg", "config": {"tenant_id": "demo"}},
                {"name": "target-dativo-acme", "inherit_from": "target-dativo-iceberg",
                 "config": {"tenant_id": "acme"}},
            ],
        },
        "environments": [{"name": "dev"}],
        "jobs": jobs if jobs is not None else [
            {"name": "csv-job", "tasks": ["tap-dativo-csv target-dativo-iceberg"]},
            {"name": "stripe-job", "tasks": ["tap-dativo-stripe target-dativo-acme"]},
        ],
        "schedules": schedules or [],
    }
    root.mkdir(exist_ok=True)
    (root / "meltano.yml").write_text(yaml.safe_dump(doc))
    if settings is not None:
        (root / "dativo-dagster.yml").write_text(yaml.safe_dump(settings))
    return root


def test_the_repo_project_reads_into_two_tenants() -> None:
    project = load_project(REPO)
    assert project.environment == "dev"
    assert project.tenants == ("acme", "demo")
    demo = {p.job: p for p in project.of_tenant("demo")}
    assert set(demo) == {"demo-csv-to-iceberg", "postgres-to-iceberg"}
    tables = {t.key: t for t in demo["demo-csv-to-iceberg"].tables}
    assert set(tables) == {("demo", "crm", "customers"), ("demo", "default", "orders")}
    customers = tables[("demo", "crm", "customers")]
    assert customers.identifier == "demo.crm.customers"
    assert customers.contract_path == REPO / "odcs_contracts/demo/crm/customers.odcs.yaml"
    assert customers.contract_doc is not None and customers.contract_doc["domain"] == "crm"
    assert tables[("demo", "default", "orders")].contract is None
    acme_tables = {t.key for p in project.of_tenant("acme") for t in p.tables}
    assert ("acme", "stripe", "charges") in acme_tables
    assert ("acme", "stripe", "customers__md_files") in acme_tables  # Markdown-KV target
    assert {(s.name, s.job, s.cron) for s in project.schedules} == {
        ("demo_csv_hourly", "demo-csv-to-iceberg", "0 * * * *"),
        ("stripe_daily", "stripe-to-iceberg", "0 3 * * *")}
    assert "mysql-to-iceberg" not in {p.job for p in project.pipelines}  # skip: true
    assert project.settings.retries_of("stripe-to-iceberg") == RetrySettings(
        max_retries=2, delay_seconds=30, backoff="exponential", jitter="plus_minus")
    assert dagster_name("demo-csv-to-iceberg") == "demo_csv_to_iceberg"
    assert env_prefix("tap-dativo-csv") == "TAP_DATIVO_CSV_"


def test_streams_come_from_files_select_or_settings(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path / "p"))
    assert [t.stream for t in project.of_tenant("demo")[0].tables] == ["customers", "orders"]
    assert [t.stream for t in project.of_tenant("acme")[0].tables] == ["customers", "charges"]
    with pytest.raises(ConfigError, match=r"tenant 'nobody'; the tenants are: acme, demo"):
        project.of_tenant("nobody")


def test_a_job_whose_streams_cannot_be_known_is_refused(tmp_path: Path) -> None:
    jobs = [{"name": "hub", "tasks": ["tap-dativo-hubspot target-dativo-acme"]}]
    with pytest.raises(ConfigError, match=r"job 'hub'.*jobs\.hub\.streams"):
        load_project(write_project(tmp_path / "p", jobs))
    project = load_project(write_project(tmp_path / "p", jobs,
                                         settings={"jobs": {"hub": {"streams": ["deals"]}}}))
    assert [t.key for t in project.pipelines[0].tables] == [("acme", "default", "deals")]


def test_a_task_that_is_not_tap_target_is_refused(tmp_path: Path) -> None:
    jobs = [{"name": "odd", "tasks": ["tap-dativo-csv"]}]
    with pytest.raises(ConfigError, match=r"job 'odd': task 'tap-dativo-csv' is not "
                                          r"'<extractor> <loader>'.*jobs\.odd\.skip"):
        load_project(write_project(tmp_path / "p", jobs))


def test_settings_for_an_unknown_job_name_the_jobs(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", settings={"jobs": {"csv-jbo": {"skip": True}}})
    with pytest.raises(ConfigError, match=r"jobs\.csv-jbo: meltano.yml has no job 'csv-jbo'; "
                                          r"the jobs are: csv-job, stripe-job"):
        load_project(root)


def test_two_jobs_writing_one_table_are_refused(tmp_path: Path) -> None:
    jobs = [{"name": "one", "tasks": ["tap-dativo-csv target-dativo-iceberg"]},
            {"name": "two", "tasks": ["tap-dativo-csv target-dativo-iceberg"]}]
    with pytest.raises(ConfigError, match=r"jobs 'one' and 'two' both load "
                                          r"demo\.default\.customers.*skip: true"):
        load_project(write_project(tmp_path / "p", jobs))


def test_two_jobs_of_one_dagster_name_are_refused(tmp_path: Path) -> None:
    """``csv-job`` and ``csv_job`` would both be the Dagster job ``csv_job``."""
    jobs = [{"name": "csv-job", "tasks": ["tap-dativo-csv target-dativo-iceberg"]},
            {"name": "csv_job", "tasks": ["tap-dativo-stripe target-dativo-acme"]}]
    with pytest.raises(ConfigError, match=r"jobs 'csv-job' and 'csv_job' both become the "
                                          r"Dagster job 'csv_job'; rename one"):
        load_project(write_project(tmp_path / "p", jobs))


@pytest.mark.parametrize(("interval", "cron"), [
    ("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@weekly", "0 0 * * 0"),
    ("*/5 * * * *", "*/5 * * * *")])
def test_schedules_become_cron(tmp_path: Path, interval: str, cron: str) -> None:
    root = write_project(tmp_path / "p", schedules=[
        {"name": "csv-often", "job": "csv-job", "interval": interval}])
    assert [(s.name, s.job, s.cron) for s in load_project(root).schedules] == [
        ("csv_often", "csv-job", cron)]


@pytest.mark.parametrize(("schedule", "error"), [
    ({"name": "s", "job": "csv-job", "interval": "@once"}, r"interval '@once'.*dagster job"),
    ({"name": "s", "job": "csv-job", "interval": "0 3 * *"}, r"interval '0 3 \* \*' is not"),
    ({"name": "s", "job": "nope", "interval": "@daily"},
     r"schedule 's': no job 'nope'; the jobs are: csv-job, stripe-job"),
    ({"name": "s", "extractor": "tap-dativo-csv", "interval": "@daily"},
     r"schedule 's' names no job"),
])
def test_bad_schedules_are_refused(tmp_path: Path, schedule: dict[str, str],
                                   error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_project(write_project(tmp_path / "p", schedules=[schedule]))


@pytest.mark.parametrize(("doc", "error"), [
    ({"retires": {}}, r"\(top level\): unknown key 'retires' \(did you mean 'retries'\?\)"),
    ({"retries": {"max_retry": 1}},
     r"retries: unknown key 'max_retry' \(did you mean 'max_retries'\?\)"),
    ({"jobs": {"a": {"stream": ["x"]}}},
     r"jobs\.a: unknown key 'stream' \(did you mean 'streams'\?\)"),
    ({"retries": {"backoff": "fibonacci"}}, r"retries\.backoff: 'fibonacci' is not one of"),
    ({"sensors": [{"name": "bad name", "job": "j", "watch": "w"}]}, r"sensors\.0\.name"),
    ({"sensors": [{"name": "a", "job": "j", "watch": "w"},
                  {"name": "a", "job": "k", "watch": "v"}]}, r"two sensors are named 'a'"),
])
def test_settings_errors_name_the_key(doc: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        parse_settings(doc, "dativo-dagster.yml")


def test_settings_defaults_and_per_job_retries(tmp_path: Path) -> None:
    assert load_settings(tmp_path).retries == RetrySettings()
    settings = parse_settings({"retries": {"max_retries": 5},
                               "jobs": {"a": {"retries": {"max_retries": 0}}}})
    assert settings.retries_of("a").max_retries == 0
    assert settings.retries_of("b").max_retries == 5
    (tmp_path / "dativo-dagster.yml").write_text("retries: [unclosed\n")
    with pytest.raises(ConfigError, match=r"cannot be read as YAML"):
        load_settings(tmp_path)


def test_a_tenants_environment_has_no_other_tenants_plugin_settings(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path / "p"))
    base = {
        "TAP_DATIVO_STRIPE_API_KEY": "sk_acme",
        "TAP_DATIVO_CSV_FILES": "[]",
        "TARGET_DATIVO_ACME_TENANT_ID": "acme",
        "TARGET_DATIVO_ICEBERG_VALIDATION_MODE": "warn",  # inherited by acme's target
        "TAP_DATIVO_HUBSPOT_ACCESS_TOKEN": "no tenant's",
        "PATH": "/bin",
    }
    demo = tenant_environment(project, "demo", base)
    # A plugin no job of the tenant uses (hubspot here) keeps its settings out too.
    assert demo == {"TAP_DATIVO_CSV_FILES": "[]",
                    "TARGET_DATIVO_ICEBERG_VALIDATION_MODE": "warn", "PATH": "/bin"}
    acme = tenant_environment(project, "acme", base)
    assert acme["TAP_DATIVO_STRIPE_API_KEY"] == "sk_acme"
    assert acme["TARGET_DATIVO_ACME_TENANT_ID"] == "acme"
    assert acme["TARGET_DATIVO_ICEBERG_VALIDATION_MODE"] == "warn"
    assert "TAP_DATIVO_CSV_FILES" not in acme
    assert project.plugins_of("acme") == {"tap-dativo-stripe", "target-dativo-acme",
                                          "target-dativo-iceberg"}


def test_a_missing_meltano_yml_says_where_to_point(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"meltano.yml does not exist; point "
                                          r"DATIVO_MELTANO_PROJECT"):
        load_project(tmp_path)
