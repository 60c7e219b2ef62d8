"""The run report of each plugin process (DATIVO_RUN_REPORT_DIR) and exit code 75: what
an orchestrator reads instead of the logs (issue 17)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from pyiceberg.catalog import Catalog

from dativo.run_report import ENV_VAR
from tests.conftest import BIN, emitted_states, read_table, run_target, singer_lines
from tests.integration.test_tap_postgres import (
    discover,
    fresh_database,
    run_tap,
    select,
    tap_config,
)
from tests.services.postgres import PostgresServer

SCHEMA = {"type": "SCHEMA", "stream": "users", "key_properties": ["id"],
          "schema": {"type": "object", "properties": {"id": {"type": "integer"},
                                                      "name": {"type": ["string", "null"]}}}}


def record(i: Any, name: str = "n") -> dict[str, Any]:
    return {"type": "RECORD", "stream": "users", "record": {"id": i, "name": name}}


def state(n: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"bookmarks": {"users": {"id": n}}}}


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The report folder, named by the variable for every process the test starts."""
    folder = tmp_path / "reports"
    folder.mkdir()
    monkeypatch.setenv(ENV_VAR, str(folder))
    return folder


def the_report(folder: Path, plugin: str) -> dict[str, Any]:
    [path] = folder.iterdir()  # exactly one file, and no .tmp left behind
    assert path.name.startswith(f"{plugin}-") and path.suffix == ".json", path.name
    int(path.stem.removeprefix(f"{plugin}-"))  # <plugin>-<pid>.json
    report: dict[str, Any] = orjson.loads(path.read_bytes())
    assert report["plugin"] == plugin
    return report


def test_the_target_reports_what_it_committed_as_the_table_holds_it(
    reports: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """Two commits (a STATE per batch of 2 rows) and rejected records: the report's counts
    are the rows of the table and its dead-letter table, its snapshots the table's."""
    messages = [SCHEMA, record(1), record(2), state(2), record(3), record("four"),
                record(5), record(None), state(5)]
    result = run_target(target_config(batch_size_rows=2, commit_interval_seconds=0),
                        singer_lines(messages))
    assert result.returncode == 0, result.stderr.decode()
    assert emitted_states(result)[-1] == {"bookmarks": {"users": {"id": 5}}}
    report = the_report(reports, "target-dativo-iceberg")
    assert (report["kind"], report["exit_code"], report["retriable"], report["error"]) == (
        "target", 0, False, None)
    summary = report["summary"]
    assert summary["state_emitted"] == {"bookmarks": {"users": {"id": 5}}}
    users = summary["streams"]["users"]
    catalog = open_catalog()
    table = catalog.load_table(("acme", "default", "users"))
    dead = read_table(catalog, ("acme", "default", "users__dead_letter"))
    assert users["committed"] == table.scan().to_arrow().num_rows == 4
    assert users["rejected"] == dead.num_rows == 2
    assert users["received"] == 6
    assert (users["table"], users["dead_letter_table"]) == (
        "acme.default.users", "acme.default.users__dead_letter")
    snapshots = users["snapshots"]
    assert [s["snapshot_id"] for s in snapshots] == users["snapshot_ids"]
    assert len(snapshots) >= 2
    assert snapshots[-1]["snapshot_id"] == table.current_snapshot().snapshot_id
    for entry in snapshots:
        snapshot = table.snapshot_by_id(entry["snapshot_id"])
        assert snapshot is not None and snapshot.summary is not None
        assert entry["committed_at_ms"] == snapshot.timestamp_ms
        assert entry["added_data_files"] == int(snapshot.summary["added-data-files"]) > 0
        assert entry["added_files_size"] == int(snapshot.summary["added-files-size"]) > 0
        assert entry["added_records"] == int(snapshot.summary["added-records"])
        assert entry["total_records"] == int(snapshot.summary["total-records"])
    assert sum(s["added_records"] for s in snapshots) == 4


def test_a_strict_refusal_is_a_user_error_with_its_line_and_what_got_done(
    reports: Path, target_config: Callable[..., Path],
) -> None:
    result = run_target(target_config(validation_mode="strict"),
                        singer_lines([SCHEMA, record(1), record(None), state(2)]))
    assert result.returncode == 2
    report = the_report(reports, "target-dativo-iceberg")
    assert (report["exit_code"], report["retriable"]) == (2, False)
    assert report["error"].startswith("stream 'users': validation_mode=strict rejected 1 of 2")
    assert "\n" not in report["error"] and report["error"] in result.stderr.decode()
    users = report["summary"]["streams"]["users"]
    assert (users["committed"], users["rejected"], users["snapshots"]) == (0, 1, [])
    assert (users["table"], users["dead_letter_table"]) == (
        None, "acme.default.users__dead_letter")
    assert report["summary"]["state_emitted"] is None


def test_bad_input_after_a_commit_reports_the_commit(
    reports: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """A failed run's summary holds what it did commit: the rows before the bad line."""
    stdin = singer_lines([SCHEMA, record(1), record(2), state(2)]) + b"{not json\n"
    result = run_target(target_config(), stdin)
    assert result.returncode == 2
    report = the_report(reports, "target-dativo-iceberg")
    assert report["error"].startswith("line 5: not valid JSON")
    users = report["summary"]["streams"]["users"]
    table = open_catalog().load_table(("acme", "default", "users"))
    assert users["committed"] == table.scan().to_arrow().num_rows == 2
    assert users["snapshot_ids"] == [table.current_snapshot().snapshot_id]


def test_without_the_variable_no_report_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target_config: Callable[..., Path],
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    result = run_target(target_config(), singer_lines([SCHEMA, record(1), state(1)]), cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    assert list(work.iterdir()) == []
    assert not list(tmp_path.rglob("target-dativo-iceberg-*.json"))


def test_a_report_folder_that_is_missing_is_a_warning_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog],
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "no" / "such"))
    result = run_target(target_config(), singer_lines([SCHEMA, record(1), state(1)]))
    assert result.returncode == 0, result.stderr.decode()
    assert emitted_states(result) == [{"bookmarks": {"users": {"id": 1}}}]
    assert b"WARNING" in result.stderr and b"could not be written" in result.stderr
    assert read_table(open_catalog(), ("acme", "default", "users")).num_rows == 1


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_source_that_refuses_the_connection_is_retriable(
    reports: Path, postgres: PostgresServer, tmp_path: Path,
) -> None:
    """With the catalog Meltano passes, the sync connects first: a refused connection is
    exit 75, and the report says the run may be retried."""
    database = fresh_database(postgres, "CREATE TABLE t (id int PRIMARY KEY)")
    catalog = select(discover(tmp_path, tap_config(postgres, database)), {"public-t": {}})
    for path in reports.iterdir():
        path.unlink()  # the discovery's own report
    run = run_tap(tmp_path, {**tap_config(postgres, database), "port": closed_port()},
                  catalog=catalog)
    assert run.returncode == 75, run.stderr
    assert "Traceback" not in run.stderr
    report = the_report(reports, "tap-dativo-postgres")
    assert (report["kind"], report["exit_code"], report["retriable"]) == ("tap", 75, True)
    assert report["error"].startswith("stream 'public-t': reading public.t failed: ")
    assert "Connection refused" in report["error"] and report["error"] in run.stderr
    assert report["summary"] == {"records": {}}


def test_a_discovery_that_cannot_reach_the_source_is_retriable(
    reports: Path, postgres: PostgresServer, tmp_path: Path,
) -> None:
    """Meltano discovers first when it has no catalog: refused there is exit 75 as well,
    while a refused login or database stays a user error (exit 2)."""
    database = fresh_database(postgres, "CREATE TABLE t (id int PRIMARY KEY)")
    run = run_tap(tmp_path, {**tap_config(postgres, database), "port": closed_port()},
                  "--discover")
    assert run.returncode == 75, run.stderr
    report = the_report(reports, "tap-dativo-postgres")
    assert (report["exit_code"], report["retriable"], report["summary"]) == (75, True, None)
    assert report["error"].startswith("cannot connect to postgresql+psycopg2://")
    assert "Connection refused" in report["error"]
    for path in reports.iterdir():
        path.unlink()
    missing = run_tap(tmp_path, tap_config(postgres, "no_such_db"), "--discover")
    assert missing.returncode == 2, missing.stderr
    report = the_report(reports, "tap-dativo-postgres")
    assert (report["exit_code"], report["retriable"]) == (2, False)
    assert 'database "no_such_db" does not exist' in report["error"]


def test_a_tap_reports_the_records_it_sent_per_stream(
    reports: Path, postgres: PostgresServer, tmp_path: Path,
) -> None:
    database = fresh_database(postgres, "CREATE TABLE t (id int PRIMARY KEY); "
                                        "INSERT INTO t SELECT generate_series(1, 7)")
    catalog = select(discover(tmp_path, tap_config(postgres, database)), {"public-t": {}})
    discovery = the_report(reports, "tap-dativo-postgres")  # --discover ends with one too
    assert (discovery["exit_code"], discovery["error"], discovery["summary"]) == (0, None, None)
    for path in reports.iterdir():
        path.unlink()
    run = run_tap(tmp_path, tap_config(postgres, database), catalog=catalog)
    assert run.returncode == 0, run.stderr
    report = the_report(reports, "tap-dativo-postgres")
    assert (report["exit_code"], report["retriable"], report["error"]) == (0, False, None)
    assert report["summary"] == {"records": {"public-t": len(run.records("public-t"))}}
    assert len(run.records("public-t")) == 7


def test_a_config_error_of_a_tap_is_reported_as_a_user_error(
    reports: Path, tmp_path: Path,
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"files": [{"entity": "x", "path": "x.csv"}],
                                  "on_invalid_value": "drop"}))
    result = subprocess.run([str(BIN / "tap-dativo-csv"), "--config", str(config)],
                            capture_output=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 2
    report = the_report(reports, "tap-dativo-csv")
    assert (report["kind"], report["exit_code"], report["retriable"]) == ("tap", 2, False)
    assert "on_invalid_value" in report["error"]
