"""Which failed Dagster runs are retried, for real: a source that is down past the tap's own
retries (exit code 75) is run again by the RetryPolicy and lands its rows once; a strict
contract violation (exit code 2) fails at once, in one attempt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dativo_dagster.definitions import build_definitions
from dativo_dagster.meltano_runs import MeltanoRun, RunReport
from dativo_dagster.retries import failure_of, retry_policy
from dativo_dagster.settings import RetrySettings
from tests.conftest import read_table
from tests.e2e.test_dagster_assets import dagster_project
from tests.e2e.test_meltano_run import CUSTOMERS as DEMO_CUSTOMERS
from tests.e2e.test_meltano_run import warehouse
from tests.services.http_fixture import Fault
from tests.services.stripe_api import API_KEY, StripeApi

STRIPE_CUSTOMERS = ("acme", "stripe", "customers")
STRIPE_CHARGES = ("acme", "stripe", "charges")


def retrying_project(root: Path) -> Path:
    """The copied project, its dativo-dagster.yml retrying twice without delay."""
    project = dagster_project(root)
    settings = yaml.safe_load((project / "dativo-dagster.yml").read_text())
    settings["retries"] = {"max_retries": 2, "delay_seconds": 0, "backoff": "none",
                           "jitter": "none"}
    (project / "dativo-dagster.yml").write_text(yaml.safe_dump(settings))
    return project


@pytest.fixture(autouse=True)
def _no_meltano_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("MELTANO_")]:
        monkeypatch.delenv(key)


@pytest.fixture
def stripe_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeApi]:
    api = StripeApi().start()
    # One retry of its own per request (the tap's budget), so two 503s in a row end the
    # tap's run; the settings are integers (Meltano 4.4 cannot pass a decimal from env).
    for key, value in {"API_KEY": API_KEY, "API_BASE": api.url, "LOOKBACK_SECONDS": "0",
                       "MAX_RETRIES": "1"}.items():
        monkeypatch.setenv(f"TAP_DATIVO_STRIPE_{key}", value)
    yield api
    api.stop()


def events_of(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> list:
    return [e for e in result.all_events if e.event_type == kind]


def messages(error: dg.SerializableErrorInfo | None) -> str:
    """The messages of an error and its causes (a retry wraps the Failure)."""
    found = []
    while error is not None:
        found.append(error.message)
        error = error.cause
    return "\n".join(found)


def test_source_down_is_retried_and_lands_once(stripe_api: StripeApi, tmp_path: Path) -> None:
    customers = [stripe_api.create("customers", email=f"c{n}@example.com") for n in range(3)]
    stripe_api.create("charges", amount=2500, customer=customers[0]["id"])
    stripe_api.inject(Fault("status", times=2, status=503))
    project = retrying_project(tmp_path / "project")
    job = build_definitions(project, "acme").resolve_job_def("stripe_to_iceberg")

    result = job.execute_in_process(raise_on_error=False)

    assert result.success, [messages(e.step_failure_data.error)
                            for e in events_of(result, dg.DagsterEventType.STEP_FAILURE)]
    assert len(stripe_api.served(faulted=True)) == 2  # the tap's request and its one retry
    retries = events_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert len(retries) == 1
    message = messages(retries[0].event_specific_data.error)
    assert "tap-dativo-stripe exited 75" in message and "retriable" in message
    assert len(events_of(result, dg.DagsterEventType.STEP_RESTARTED)) == 1
    assert not events_of(result, dg.DagsterEventType.STEP_FAILURE)
    catalog = warehouse(project)
    rows = read_table(catalog, STRIPE_CUSTOMERS).to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(c["id"] for c in customers)
    assert len(read_table(catalog, STRIPE_CHARGES)) == 1
    committed = {tuple(m.asset_key.path): m.metadata["rows_committed"].value
                 for m in result.asset_materializations_for_node(
                     "stripe_to_iceberg__meltano_run")}
    assert committed == {STRIPE_CUSTOMERS: 3, STRIPE_CHARGES: 1}


def test_strict_contract_violation_fails_once_without_retry(tmp_path: Path) -> None:
    project = retrying_project(tmp_path / "project")
    job = build_definitions(project, "demo").resolve_job_def("demo_csv_to_iceberg")

    result = job.execute_in_process(
        run_config={"ops": {"demo_csv_to_iceberg__meltano_run": {
            "config": {"environment": "ci"}}}},
        raise_on_error=False)

    assert not result.success
    assert len(events_of(result, dg.DagsterEventType.STEP_START)) == 1
    assert not events_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    failures = events_of(result, dg.DagsterEventType.STEP_FAILURE)
    assert len(failures) == 1
    data = failures[0].step_failure_data
    assert "target-dativo-iceberg exited 2" in data.error.message
    assert "not retried" in data.error.message
    assert data.user_failure_data.metadata["retriable"].value is False
    assert data.user_failure_data.metadata["exit_code"].value != 0
    assert not warehouse(project).table_exists(DEMO_CUSTOMERS)


def _report(plugin: str, code: int) -> RunReport:
    return RunReport(plugin, "target" if plugin.startswith("target") else "tap", code,
                     code == 75, None if code == 0 else f"{plugin} failed", None)


@pytest.mark.parametrize(("exit_code", "codes", "retriable"), [
    (1, {"tap-dativo-stripe": 75, "target-dativo-iceberg": 0}, True),
    (1, {"tap-dativo-stripe": 75, "target-dativo-iceberg": 75}, True),
    (1, {"tap-dativo-stripe": 75, "target-dativo-iceberg": 2}, False),
    (1, {"tap-dativo-stripe": 1}, False),
    (1, {}, False),  # meltano failed before any plugin could report
    (1, {"tap-dativo-stripe": 0, "target-dativo-iceberg": 0}, False),
])
def test_only_failures_every_plugin_reports_retriable_are_retried(
        exit_code: int, codes: dict[str, int], retriable: bool) -> None:
    run = MeltanoRun(("meltano", "run"), exit_code,
                     tuple(_report(p, c) for p, c in codes.items()), ("last line",))
    failure = failure_of(run, "stripe_to_iceberg")
    assert failure.allow_retries is retriable
    assert failure.metadata["retriable"].value is retriable
    if not codes or all(c == 0 for c in codes.values()):
        assert "no dativo plugin reported a failure (last line: last line)" \
            in (failure.description or "")


def test_retry_settings_become_a_policy() -> None:
    policy = retry_policy(RetrySettings(max_retries=3, delay_seconds=5,
                                        backoff="exponential", jitter="full"))
    assert policy == dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL,
                                    jitter=dg.Jitter.FULL)
    assert retry_policy(RetrySettings(max_retries=0)) is None
