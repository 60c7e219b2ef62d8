"""The example contract (odcs_contracts/demo/shop/accounts.odcs.yaml) on its sample
schema: PostgreSQL CDC through tap-dativo-postgres into target-dativo-iceberg.

The sample schema is read from the contract's header comment, so the two cannot drift.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog

from tests.conftest import REPO, read_table, run_target, singer_lines
from tests.integration.test_tap_postgres import (
    discover,
    fresh_database,
    run_tap,
    select,
    tap_config,
)
from tests.services.postgres import PostgresServer

CONTRACT = REPO / "odcs_contracts/demo/shop/accounts.odcs.yaml"
ACCOUNTS = ("demo", "shop", "accounts")
DEAD = ("demo", "shop", "accounts__dead_letter")
UTC = dt.timezone.utc


def sample_schema() -> str:
    """The SQL in the contract's header comment (the indented ``#   `` lines)."""
    lines = [line[4:] for line in CONTRACT.read_text().splitlines() if line.startswith("#   ")]
    assert lines and lines[0].startswith("CREATE TYPE")
    return "\n".join(lines)


ROWS = """
INSERT INTO accounts VALUES
  (1, 'ada@example.com', 'Ada', 'pro', 120.50, '2024-01-01 09:00:00+01', '1990-12-10',
   '{early,vip}', '{"lang": "en", "alerts": true}'),
  (2, 'bob@example.com', NULL, 'free', 0.00, '2024-02-01 00:00:00+00', NULL, '{}', NULL),
  (3, 'not-an-email', 'Cy', 'enterprise', 9999999999.99, '2024-03-01 12:00:00+00', NULL,
   NULL, '[]');
CREATE PUBLICATION dativo FOR TABLE accounts;
"""


@pytest.fixture
def shop(postgres: PostgresServer) -> Iterator[str]:
    database = fresh_database(postgres, sample_schema() + ROWS)
    yield database
    postgres.psql("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                  f"WHERE database = '{database}' AND active_pid IS NOT NULL")
    postgres.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                  f"WHERE database = '{database}' AND NOT active")


def test_cdc_rows_land_typed_by_the_example_contract(
    postgres: PostgresServer, shop: str, tmp_path: Path,
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    config = tap_config(postgres, shop)
    catalog = select(discover(tmp_path, config),
                     {"public-accounts": {"replication-method": "LOG_BASED"}})
    first = run_tap(tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    postgres.psql("DELETE FROM accounts WHERE id = 2; "
                  "UPDATE accounts SET balance = 121.00 WHERE id = 1", shop)
    second = run_tap(tmp_path, config, catalog=catalog, state=first.states[-1])
    assert second.returncode == 0, second.stderr

    target = target_config(tenant_id="demo", contracts_dir=str(REPO / "odcs_contracts"))
    loaded = run_target(target, singer_lines(first.messages + second.messages[1:]))
    assert loaded.returncode == 0, loaded.stderr.decode()
    assert "No ODCS contract for stream 'public-accounts'" not in loaded.stderr.decode()

    table = open_catalog().load_table(ACCOUNTS)
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert types == {"id": "long", "email": "string", "name": "string", "tier": "string",
                     "balance": "decimal(12, 2)", "opened": "timestamptz",
                     "birthday": "date", "tags": "list<string>", "prefs": "string",
                     "_sdc_lsn": "long", "_sdc_deleted_at": "timestamptz"}
    rows = sorted(read_table(open_catalog(), ACCOUNTS).to_pylist(),
                  key=lambda r: (r["_sdc_lsn"], r["id"]))
    for row in rows:
        row.pop("_sdc_lsn")
        row["prefs"] = json.loads(row["prefs"]) if row["prefs"] is not None else None
    deleted_at = rows[2]["_sdc_deleted_at"]
    assert rows == [
        {"id": 1, "email": "ada@example.com", "name": "Ada", "tier": "pro",
         "balance": Decimal("120.50"), "opened": dt.datetime(2024, 1, 1, 8, tzinfo=UTC),
         "birthday": dt.date(1990, 12, 10), "tags": ["early", "vip"],
         "prefs": {"lang": "en", "alerts": True}, "_sdc_deleted_at": None},
        {"id": 2, "email": "bob@example.com", "name": None, "tier": "free",
         "balance": Decimal("0.00"), "opened": dt.datetime(2024, 2, 1, tzinfo=UTC),
         "birthday": None, "tags": [], "prefs": None, "_sdc_deleted_at": None},
        {"id": 2, "email": None, "name": None, "tier": None, "balance": None, "opened": None,
         "birthday": None, "tags": None, "prefs": None, "_sdc_deleted_at": deleted_at},
        {"id": 1, "email": "ada@example.com", "name": "Ada", "tier": "pro",
         "balance": Decimal("121.00"), "opened": dt.datetime(2024, 1, 1, 8, tzinfo=UTC),
         "birthday": dt.date(1990, 12, 10), "tags": ["early", "vip"],
         "prefs": {"lang": "en", "alerts": True}, "_sdc_deleted_at": None},
    ]
    assert deleted_at is not None and deleted_at.tzinfo is not None
    dead = read_table(open_catalog(), DEAD).to_pylist()
    assert [(json.loads(d["record_json"])["id"], d["reasons"]) for d in dead] == [
        (3, [{"field": "email", "rule": "format"}])]
