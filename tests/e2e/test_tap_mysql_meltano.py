"""`meltano run mysql-to-iceberg` (the job in meltano.yml) on a copy of the project,
against the throwaway MariaDB of the test session.

Connection settings and the stream's replication metadata come from the environment,
as they would in a deployment; Meltano keeps the bookmark between two runs. The table
has no contract, so the target types it from the tap's SCHEMA (``validation_mode: warn``
in the dev environment) and the rows land in ``demo.default.<db>_payments``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN, REPO, read_table
from tests.e2e.test_meltano_run import copy_project, meltano, warehouse
from tests.integration.test_tap_mysql import fresh_database
from tests.services.mariadb import MariaDBServer

STATE_ID = "dev:tap-dativo-mysql-to-target-dativo"
PAYMENTS = """
CREATE TABLE payments (id bigint PRIMARY KEY, amount decimal(12,2) NOT NULL,
                       payer varchar(64), paid_at datetime(6) NOT NULL,
                       ref bigint unsigned);
INSERT INTO payments VALUES
  (1, 10.50, 'Zoë 😀', '2024-01-01 10:00:00.123456', 18446744073709551615),
  (2, 0.00, NULL, '2024-01-02 00:00:00', 0),
  (3, 9999999999.99, 'Bob', '2024-01-03 12:00:00', 42);
"""
EXPECTED = [
    {"id": 1, "amount": Decimal("10.50"), "payer": "Zoë \N{GRINNING FACE}",
     "paid_at": dt.datetime(2024, 1, 1, 10, 0, 0, 123456), "ref": Decimal(2**64 - 1)},
    {"id": 2, "amount": Decimal("0.00"), "payer": None,
     "paid_at": dt.datetime(2024, 1, 2), "ref": Decimal(0)},
    {"id": 3, "amount": Decimal("9999999999.99"), "payer": "Bob",
     "paid_at": dt.datetime(2024, 1, 3, 12), "ref": Decimal(42)},
]


@pytest.fixture
def shop(mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database with ``payments``; the job's settings in Meltano's variables,
    INCREMENTAL on ``id``."""
    database = fresh_database(mariadb, PAYMENTS)
    stream = f"{database}-payments"
    for key, value in {"HOST": mariadb.host, "PORT": str(mariadb.port),
                       "USER": mariadb.user, "PASSWORD": mariadb.password,
                       "DATABASE": database, "_SELECT": json.dumps([f"{stream}.*"]),
                       "_METADATA": json.dumps({stream: {
                           "replication-method": "INCREMENTAL",
                           "replication-key": "id"}})}.items():
        monkeypatch.setenv(f"TAP_DATIVO_MYSQL_{key}", value)
    return database


def landed(project: Path, database: str) -> list[dict[str, Any]]:
    rows = read_table(warehouse(project), ("demo", "default", f"{database}_payments"))
    return sorted(rows.to_pylist(), key=lambda r: r["id"])


def bookmark(project: Path, database: str) -> object:
    state = json.loads(meltano(project, "state", "get", STATE_ID).stdout)
    return state["singer_state"]["bookmarks"][f"{database}-payments"]["replication_key_value"]


def test_mysql_to_iceberg_job_loads_then_resumes_from_its_bookmark(
    mariadb: MariaDBServer, shop: str, tmp_path: Path
) -> None:
    project = copy_project(tmp_path / "project")
    meltano(project, "--environment", "dev", "run", "mysql-to-iceberg")
    assert [{k: r[k] for k in EXPECTED[0]} for r in landed(project, shop)] == EXPECTED
    assert meltano(project, "state", "list").stdout.split() == [STATE_ID]
    assert bookmark(project, shop) == 3

    mariadb.sql("INSERT INTO payments VALUES (4, 1.25, 'Dee', '2024-01-04 00:00:00', 7)", shop)
    meltano(project, "--environment", "dev", "run", "mysql-to-iceberg")
    ids = [r["id"] for r in landed(project, shop)]
    # INCREMENTAL reads `id >= 3` (docs/tap-mysql.md): row 3 again, row 4 once, 1-2 not.
    assert (ids.count(1), ids.count(2), ids.count(4)) == (1, 1, 1)
    assert bookmark(project, shop) == 4


def test_mysql_to_iceberg_job_through_parquet_batch_files(
    shop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same job with ``batch_config`` set through Meltano's settings: the tap's
    connectorx fast path writes Parquet files into the project's ./output/batches (the
    target's default batch_roots), the target loads them."""
    project = tmp_path / "project"
    batches = project / "output" / "batches"
    monkeypatch.setenv("TAP_DATIVO_MYSQL_BATCH_CONFIG_ENCODING_FORMAT", "parquet")
    monkeypatch.setenv("TAP_DATIVO_MYSQL_BATCH_CONFIG_STORAGE_ROOT", batches.as_uri())
    copy_project(project)
    result = meltano(project, "--environment", "dev", "run", "mysql-to-iceberg")
    assert "reading columns through connectorx" in result.stderr
    assert len(list(batches.glob("*.parquet"))) == 1
    assert [{k: r[k] for k in EXPECTED[0]} for r in landed(project, shop)] == EXPECTED
    assert bookmark(project, shop) == 3


def test_the_meltano_block_of_docs_tap_mysql_runs_as_written(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    """docs/tap-mysql.md's block, run literally by bash in a copy of the project, with
    the connection variables it asks the reader to set pointing at database ``shop``."""
    guide = (REPO / "docs" / "tap-mysql.md").read_text()
    block = re.search(r"## Meltano\n.*?```bash\n(.*?)```", guide, re.DOTALL)
    assert block is not None
    mariadb.sql("DROP DATABASE IF EXISTS shop")
    mariadb.create_database("shop")
    mariadb.sql("CREATE TABLE orders (id int PRIMARY KEY, amount decimal(10,2) NOT NULL, "
                "updated_at datetime(6) NOT NULL); INSERT INTO orders VALUES "
                "(1, 10.50, '2024-01-01 10:00:00'), (2, 3.00, '2024-01-02 00:00:00.5')", "shop")
    project = copy_project(tmp_path / "project")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_"))}
    env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_DISABLE_TRACKING": "true", "PYTHONWARNINGS": "ignore",
                "TAP_DATIVO_MYSQL_HOST": mariadb.host, "TAP_DATIVO_MYSQL_PORT": str(mariadb.port),
                "TAP_DATIVO_MYSQL_USER": mariadb.user,
                "TAP_DATIVO_MYSQL_PASSWORD": mariadb.password,
                "TAP_DATIVO_MYSQL_DATABASE": "shop"})
    run = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.group(1)], cwd=project,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = read_table(warehouse(project), ("demo", "default", "shop_orders")).to_pylist()
    assert sorted((r["id"], r["amount"], r["updated_at"]) for r in rows) == [
        (1, Decimal("10.50"), dt.datetime(2024, 1, 1, 10)),
        (2, Decimal("3.00"), dt.datetime(2024, 1, 2, 0, 0, 0, 500000))]
    state = json.loads(run.stdout[run.stdout.index("{"):])
    assert state["singer_state"]["bookmarks"]["shop-orders"]["replication_key_value"] == (
        "2024-01-02T00:00:00.500000")
