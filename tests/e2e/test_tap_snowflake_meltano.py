"""`meltano run snowflake-to-iceberg` (the job in meltano.yml) on a copy of the project,
against a throwaway Snowflake (fakesnow's server).

Connection settings and the stream's replication metadata come from the environment, as
they would in a deployment (``host``/``port``/``protocol`` point the tap at the test
server); Meltano keeps the bookmark between two runs. The table has no contract, so the
target types it from the tap's SCHEMA and the rows land in ``demo.default.sales_payments``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import read_table
from tests.e2e.test_meltano_run import copy_project, meltano, warehouse
from tests.integration.test_tap_snowflake import fresh_database
from tests.services.snowflake import SnowflakeServer, running_snowflake

STATE_ID = "dev:tap-dativo-snowflake-to-target-dativo"
PAYMENTS = [
    """CREATE TABLE SALES.PAYMENTS (ID INT PRIMARY KEY, AMOUNT NUMBER(12,2) NOT NULL,
         PAYER VARCHAR(64), PAID_AT TIMESTAMP_NTZ NOT NULL)""",
    """INSERT INTO SALES.PAYMENTS VALUES (1, 10.50, 'Zoë \N{GRINNING FACE}',
         '2024-01-01 10:00:00.123456'), (2, 0.00, NULL, '2024-01-02 00:00:00'),
         (3, 9999999999.99, 'Bob', '2024-01-03 12:00:00')""",
]
EXPECTED = [
    {"id": 1, "amount": Decimal("10.50"), "payer": "Zoë \N{GRINNING FACE}",
     "paid_at": dt.datetime(2024, 1, 1, 10, 0, 0, 123456)},
    {"id": 2, "amount": Decimal("0.00"), "payer": None, "paid_at": dt.datetime(2024, 1, 2)},
    {"id": 3, "amount": Decimal("9999999999.99"), "payer": "Bob",
     "paid_at": dt.datetime(2024, 1, 3, 12)},
]


@pytest.fixture(scope="module")
def snowflake() -> Iterator[SnowflakeServer]:
    with running_snowflake() as server:
        yield server


@pytest.fixture
def shop(snowflake: SnowflakeServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database with ``payments``; the job's settings in Meltano's variables,
    INCREMENTAL on ``id``."""
    database = fresh_database(snowflake, PAYMENTS)
    for key, value in {"ACCOUNT": "dativo-test", "USER": snowflake.user,
                       "PASSWORD": snowflake.password, "DATABASE": database,
                       "HOST": snowflake.host, "PORT": str(snowflake.port),
                       "PROTOCOL": "http", "_SELECT": json.dumps(["sales-payments.*"]),
                       "_METADATA": json.dumps({"sales-payments": {
                           "replication-method": "INCREMENTAL",
                           "replication-key": "id"}})}.items():
        monkeypatch.setenv(f"TAP_DATIVO_SNOWFLAKE_{key}", value)
    return database


def landed(project: Path) -> list[dict[str, Any]]:
    rows = read_table(warehouse(project), ("demo", "default", "sales_payments"))
    return sorted(rows.to_pylist(), key=lambda r: r["id"])


def bookmark(project: Path) -> object:
    state = json.loads(meltano(project, "state", "get", STATE_ID).stdout)
    return state["singer_state"]["bookmarks"]["sales-payments"]["replication_key_value"]


def test_snowflake_to_iceberg_job_loads_then_resumes_from_its_bookmark(
    snowflake: SnowflakeServer, shop: str, tmp_path: Path
) -> None:
    project = copy_project(tmp_path / "project")
    meltano(project, "--environment", "dev", "run", "snowflake-to-iceberg")
    assert [{k: r[k] for k in EXPECTED[0]} for r in landed(project)] == EXPECTED
    assert meltano(project, "state", "list").stdout.split() == [STATE_ID]
    assert bookmark(project) == 3

    snowflake.sql("INSERT INTO SALES.PAYMENTS VALUES (4, 1.25, 'Dee', '2024-01-04')", shop)
    meltano(project, "--environment", "dev", "run", "snowflake-to-iceberg")
    ids = [r["id"] for r in landed(project)]
    # INCREMENTAL reads `id >= 3` (docs/tap-snowflake.md): row 3 again, row 4 once, 1-2 not.
    assert (ids.count(1), ids.count(2), ids.count(4)) == (1, 1, 1)
    assert bookmark(project) == 4
