"""`meltano run postgres-to-iceberg` (the job in meltano.yml) on a copy of the project.

Connection settings and the stream's CDC metadata come from the environment, as they
would in a deployment; Meltano keeps the LSN state between the two runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import read_table
from tests.e2e.test_meltano_run import copy_project, meltano, warehouse
from tests.e2e.test_tap_postgres_contract import ROWS, sample_schema
from tests.integration.test_tap_postgres import fresh_database
from tests.services.postgres import PostgresServer

STATE_ID = "dev:tap-dativo-postgres-to-target-dativo"
ACCOUNTS = ("demo", "shop", "accounts")


@pytest.fixture
def shop(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    database = fresh_database(postgres, sample_schema() + ROWS)
    for key, value in {"HOST": postgres.host, "PORT": str(postgres.port),
                       "USER": postgres.user, "DATABASE": database,
                       "_SELECT": json.dumps(["public-accounts.*"]),
                       "_METADATA": json.dumps({"public-accounts": {
                           "replication-method": "LOG_BASED"}})}.items():
        monkeypatch.setenv(f"TAP_DATIVO_POSTGRES_{key}", value)
    yield database
    postgres.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                  f"WHERE database = '{database}' AND NOT active")


def test_postgres_to_iceberg_job_snapshots_then_streams_changes(
    postgres: PostgresServer, shop: str, tmp_path: Path
) -> None:
    project = copy_project(tmp_path / "project")
    meltano(project, "--environment", "dev", "run", "postgres-to-iceberg")
    rows = read_table(warehouse(project), ACCOUNTS).to_pylist()
    assert sorted(r["id"] for r in rows) == [1, 2]  # row 3 breaks the contract (email)
    assert meltano(project, "state", "list").stdout.split() == [STATE_ID]
    state = json.loads(meltano(project, "state", "get", STATE_ID).stdout)
    first_lsn = state["singer_state"]["bookmarks"]["public-accounts"]["lsn"]

    postgres.psql("DELETE FROM accounts WHERE id = 1", shop)
    meltano(project, "--environment", "dev", "run", "postgres-to-iceberg")
    rows = read_table(warehouse(project), ACCOUNTS).to_pylist()
    assert sorted((r["id"], r["_sdc_deleted_at"] is not None) for r in rows) == [
        (1, False), (1, True), (2, False)]
    state = json.loads(meltano(project, "state", "get", STATE_ID).stdout)
    assert state["singer_state"]["bookmarks"]["public-accounts"]["lsn"] > first_lsn


def test_postgres_to_iceberg_job_through_parquet_batch_files(
    postgres: PostgresServer, shop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same job with ``batch_config`` set through Meltano's settings: the tap's
    ADBC fast path writes Parquet files, the target loads them under the contract.
    The files go to the project's ./output/batches, the target's default batch_roots
    (Meltano runs both plugins in the project directory)."""
    project = tmp_path / "project"
    batches = project / "output" / "batches"
    for key, value in {"_METADATA": json.dumps({"public-accounts": {
                           "replication-method": "INCREMENTAL",
                           "replication-key": "id"}}),
                       "BATCH_CONFIG_ENCODING_FORMAT": "parquet",
                       "BATCH_CONFIG_STORAGE_ROOT": batches.as_uri()}.items():
        monkeypatch.setenv(f"TAP_DATIVO_POSTGRES_{key}", value)
    copy_project(project)
    result = meltano(project, "--environment", "dev", "run", "postgres-to-iceberg")
    assert "reading columns through ADBC" in result.stderr
    assert len(list(batches.glob("*.parquet"))) == 1
    rows = read_table(warehouse(project), ACCOUNTS).to_pylist()
    assert sorted(r["id"] for r in rows) == [1, 2]  # row 3 breaks the contract (email)
    state = json.loads(meltano(project, "state", "get", STATE_ID).stdout)
    assert state["singer_state"]["bookmarks"]["public-accounts"]["replication_key_value"] == 3
