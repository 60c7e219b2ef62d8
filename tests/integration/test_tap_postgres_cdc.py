"""LOG_BASED CDC over a pgoutput slot, against a real PostgreSQL with wal_level=logical.

First run: a consistent snapshot. Later runs: exactly the inserts, updates and deletes
committed while the tap was stopped, with the LSN in state. A run killed mid-stream
resumes from its last STATE without losing a change.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog

from tests.conftest import emitted_states, read_table, run_target, singer_lines
from tests.e2e.test_tap_postgres_types import TYPES_SQL
from tests.integration.test_tap_postgres import (
    TAP,
    discover,
    fresh_database,
    run_tap,
    select,
    tap_config,
)
from tests.services.postgres import PostgresServer

STREAM = "public-accounts"
SETUP = """
CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, balance numeric(10,2),
  tags text[], meta jsonb, opened timestamptz);
INSERT INTO accounts VALUES
  (1, 'ada', 10.00, '{a}', '{"vip": true}', '2024-01-01 00:00:00+00'),
  (2, 'bob', 20.50, NULL, NULL, NULL),
  (3, 'cy', 0.01, '{}', '[]', '2024-03-01 12:30:00+00');
CREATE PUBLICATION dativo FOR TABLE accounts;
"""
LOG_BASED = {"replication-method": "LOG_BASED"}


@pytest.fixture
def cdc_db(postgres: PostgresServer) -> Iterator[str]:
    """A database with a published table; its replication slots are dropped afterwards
    (the test cluster allows only a few)."""
    database = fresh_database(postgres, SETUP)
    yield database
    postgres.psql("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                  f"WHERE database = '{database}' AND active_pid IS NOT NULL")
    _wait_for(lambda: postgres.psql(
        f"SELECT count(*) FROM pg_replication_slots WHERE database = '{database}' "
        "AND active") .strip() == "0")
    postgres.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                  f"WHERE database = '{database}'")


def _wait_for(condition: Callable[[], bool], what: str = "condition") -> None:
    """Wait for the server to catch up (a killed client's walsender to exit); a bound
    against hanging, not a timing assertion."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within 60 s")
        time.sleep(0.1)


def _catalog(tmp_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    return select(discover(tmp_path, config), {STREAM: dict(LOG_BASED)})


def _without_lsn(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "_sdc_lsn"} for r in records]


def test_null_slot_prefix_and_publication_take_the_defaults(
    postgres: PostgresServer, cdc_db: str, tmp_path: Path
) -> None:
    """Meltano sends declared but unset settings as null: not a slot named ``None_...``."""
    config = tap_config(postgres, cdc_db, replication_slot_prefix=None, publication_name=None)
    run = run_tap(tmp_path, config, catalog=_catalog(tmp_path, config))
    assert run.returncode == 0, run.stderr
    assert run.states[-1]["bookmarks"][STREAM]["slot"] == f"dativo_{cdc_db}_public_accounts"


def test_snapshot_then_exactly_the_changes_made_while_stopped(
    postgres: PostgresServer, cdc_db: str, tmp_path: Path
) -> None:
    config = tap_config(postgres, cdc_db)
    catalog = _catalog(tmp_path, config)

    first = run_tap(tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    snapshot = first.records(STREAM)
    assert _without_lsn(snapshot) == [
        {"id": 1, "name": "ada", "balance": "10.00", "tags": ["a"], "meta": {"vip": True},
         "opened": "2024-01-01T00:00:00+00:00", "_sdc_deleted_at": None},
        {"id": 2, "name": "bob", "balance": "20.50", "tags": None, "meta": None,
         "opened": None, "_sdc_deleted_at": None},
        {"id": 3, "name": "cy", "balance": "0.01", "tags": [], "meta": [],
         "opened": "2024-03-01T12:30:00+00:00", "_sdc_deleted_at": None},
    ]
    state = first.states[-1]["bookmarks"][STREAM]
    slot = f"dativo_{cdc_db}_public_accounts"
    assert state["slot"] == slot
    # All snapshot rows carry the slot's consistent point; the run then streamed on to
    # its end marker, so the bookmark is at or past it.
    (point,) = {r["_sdc_lsn"] for r in snapshot}
    assert point <= state["lsn"]
    assert postgres.psql("SELECT plugin FROM pg_replication_slots WHERE slot_name = "
                         f"'{slot}'").strip() == "pgoutput"
    schema = first.schema(STREAM)["schema"]["properties"]
    assert schema["_sdc_deleted_at"]["format"] == "date-time"
    assert schema["name"]["type"] == ["string", "null"]  # a delete carries only the key

    postgres.psql("INSERT INTO accounts VALUES (4, 'dee', 5.25, '{x,y}', '{\"n\": 1}', "
                  "'2024-05-05 05:05:05.5+02'); "
                  "UPDATE accounts SET balance = 99.99, tags = '{b}' WHERE id = 2; "
                  "DELETE FROM accounts WHERE id = 3; "
                  "BEGIN; UPDATE accounts SET name = 'ADA' WHERE id = 1; "
                  "INSERT INTO accounts (id, name) VALUES (5, 'eve'); COMMIT;", cdc_db)
    second = run_tap(tmp_path, config, catalog=catalog, state=first.states[-1])
    assert second.returncode == 0, second.stderr
    changes = second.records(STREAM)
    deleted_at = changes[2]["_sdc_deleted_at"]
    assert _without_lsn(changes) == [
        {"id": 4, "name": "dee", "balance": "5.25", "tags": ["x", "y"], "meta": {"n": 1},
         "opened": "2024-05-05T03:05:05.500000+00:00", "_sdc_deleted_at": None},
        {"id": 2, "name": "bob", "balance": "99.99", "tags": ["b"], "meta": None,
         "opened": None, "_sdc_deleted_at": None},
        {"id": 3, "name": None, "balance": None, "tags": None, "meta": None, "opened": None,
         "_sdc_deleted_at": deleted_at},
        {"id": 1, "name": "ADA", "balance": "10.00", "tags": ["a"], "meta": {"vip": True},
         "opened": "2024-01-01T00:00:00+00:00", "_sdc_deleted_at": None},
        {"id": 5, "name": "eve", "balance": None, "tags": None, "meta": None, "opened": None,
         "_sdc_deleted_at": None},
    ]
    assert deleted_at is not None and deleted_at.endswith("+00:00")
    lsns = [r["_sdc_lsn"] for r in changes]
    assert lsns == sorted(lsns) and lsns[0] >= state["lsn"]
    new_state = second.states[-1]["bookmarks"][STREAM]
    assert new_state["lsn"] > lsns[-1]

    third = run_tap(tmp_path, config, catalog=catalog, state=second.states[-1])
    assert third.returncode == 0, third.stderr
    assert third.records(STREAM) == []
    assert third.states[-1]["bookmarks"][STREAM]["lsn"] >= new_state["lsn"]


def test_change_values_are_typed_exactly_like_snapshot_values(
    postgres: PostgresServer, cdc_db: str, tmp_path: Path
) -> None:
    """The same row read by the snapshot (driver values) and from the WAL (text)."""
    postgres.psql(TYPES_SQL + "CREATE PUBLICATION kinds_pub FOR TABLE kinds;", cdc_db)
    config = tap_config(postgres, cdc_db, publication_name="kinds_pub")
    catalog = select(discover(tmp_path, config), {"public-kinds": dict(LOG_BASED)})
    first = run_tap(tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    postgres.psql("INSERT INTO kinds SELECT id + 10, si, i, bi, num, wide, free, r, d, b, t, "
                  "vc, c, u, dt, tm, ts, tstz, iv, j, jb, ia, ta, by, m FROM kinds", cdc_db)
    second = run_tap(tmp_path, config, catalog=catalog, state=first.states[-1])
    assert second.returncode == 0, second.stderr
    from_snapshot = _without_lsn(first.records("public-kinds"))
    from_wal = [{**r, "id": r["id"] - 10} for r in _without_lsn(second.records("public-kinds"))]
    assert len(from_snapshot) == 3
    assert from_wal == from_snapshot


def test_killed_run_resumes_from_its_last_state_without_losing_a_change(
    postgres: PostgresServer, cdc_db: str, tmp_path: Path
) -> None:
    config = tap_config(postgres, cdc_db)
    catalog = _catalog(tmp_path, config)
    first = run_tap(tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    # 25 transactions of 1,000 rows (psql runs one -c string as a single transaction
    # unless it says otherwise); singer-sdk writes a STATE every 10,000 records.
    postgres.psql("".join(
        f"BEGIN; INSERT INTO accounts (id, name) SELECT g, 'n' || g FROM "
        f"generate_series({100 + t * 1000}, {99 + (t + 1) * 1000}) g; COMMIT;"
        for t in range(25)), cdc_db)
    expected = set(range(100, 25_100))

    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    (tmp_path / "state.json").write_text(json.dumps(first.states[-1]))
    tap = subprocess.Popen(
        [TAP, "--config", str(tmp_path / "config.json"), "--catalog",
         str(tmp_path / "catalog.json"), "--state", str(tmp_path / "state.json")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert tap.stdout is not None
    delivered: list[int] = []  # records a target would have committed with that STATE
    pending: list[int] = []
    resume: dict[str, Any] | None = None
    start_lsn = first.states[-1]["bookmarks"][STREAM]["lsn"]
    for line in tap.stdout:
        message = json.loads(line)
        if message["type"] == "RECORD":
            pending.append(message["record"]["id"])
        elif message["type"] == "STATE":
            delivered += pending
            pending = []
            if message["value"]["bookmarks"][STREAM].get("lsn", 0) > start_lsn:
                resume = message["value"]
                break
    tap.kill()
    tap.wait()
    tap.stdout.close()
    assert resume is not None, "the tap ended before emitting a mid-stream STATE"
    assert 0 < len(delivered) < len(expected)
    _wait_for(lambda: postgres.psql(
        f"SELECT count(*) FROM pg_replication_slots WHERE database = '{cdc_db}' "
        "AND active").strip() == "0", "the killed tap's walsender to exit")

    second = run_tap(tmp_path, config, catalog=catalog, state=resume)
    assert second.returncode == 0, second.stderr
    again = [r["id"] for r in second.records(STREAM)]
    assert set(delivered) | set(again) == expected
    # Resuming re-sends at most the transaction that was open at the STATE.
    assert len(set(delivered) & set(again)) <= 1000
    assert len(again) == len(set(again))


def test_table_outside_the_publication_names_the_sql_to_run(
    postgres: PostgresServer, cdc_db: str, tmp_path: Path
) -> None:
    config = tap_config(postgres, cdc_db, publication_name="elsewhere")
    run = run_tap(tmp_path, config, catalog=_catalog(tmp_path, config))
    assert run.returncode == 2
    assert ("stream 'public-accounts': table public.accounts is not in publication "
            "'elsewhere' (publication_name); run CREATE PUBLICATION \"elsewhere\" FOR TABLE "
            "\"public\".\"accounts\"") in run.stderr
    assert "Traceback" not in run.stderr
    assert run.records(STREAM) == []


BIG_TEXT = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g)"


def test_unchanged_toasted_value_needs_replica_identity_full(
    postgres: PostgresServer, cdc_db: str, tmp_path: Path
) -> None:
    postgres.psql(f"UPDATE accounts SET name = {BIG_TEXT} WHERE id = 1", cdc_db)
    config = tap_config(postgres, cdc_db)
    catalog = _catalog(tmp_path, config)
    first = run_tap(tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    postgres.psql("UPDATE accounts SET balance = 1.00 WHERE id = 1", cdc_db)

    failed = run_tap(tmp_path, config, catalog=catalog, state=first.states[-1])
    assert failed.returncode == 2
    assert ("stream 'public-accounts': an UPDATE left the large (TOASTed) column name "
            "unchanged") in failed.stderr
    assert 'ALTER TABLE "public"."accounts" REPLICA IDENTITY FULL' in failed.stderr
    assert "Traceback" not in failed.stderr

    postgres.psql("ALTER TABLE accounts REPLICA IDENTITY FULL; "
                  "UPDATE accounts SET balance = 2.00 WHERE id = 1", cdc_db)
    later = run_tap(tmp_path, config, catalog=catalog, state=failed.states[-1])
    assert later.returncode == 2  # the first UPDATE is still unreadable: nothing skipped
    big = postgres.psql("SELECT name FROM accounts WHERE id = 1", cdc_db).strip()
    fresh = run_tap(tmp_path, config, catalog=catalog)  # resync: snapshot again
    assert fresh.returncode == 0, fresh.stderr
    assert next(r for r in fresh.records(STREAM) if r["id"] == 1)["name"] == big
    postgres.psql("UPDATE accounts SET balance = 3.00 WHERE id = 1", cdc_db)
    after = run_tap(tmp_path, config, catalog=catalog, state=fresh.states[-1])
    assert after.returncode == 0, after.stderr
    assert [(r["id"], r["name"], r["balance"]) for r in after.records(STREAM)] == [
        (1, big, "3.00")]


def test_deletes_land_in_iceberg_with_their_deleted_at(
    postgres: PostgresServer, cdc_db: str, tmp_path: Path,
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    config = tap_config(postgres, cdc_db)
    catalog = _catalog(tmp_path, config)
    first = run_tap(tmp_path, config, catalog=catalog)
    postgres.psql("DELETE FROM accounts WHERE id = 2", cdc_db)
    second = run_tap(tmp_path, config, catalog=catalog, state=first.states[-1])
    assert second.returncode == 0, second.stderr
    loaded = run_target(target_config(validation_mode="strict"),
                        singer_lines(first.messages + second.messages[1:]))
    assert loaded.returncode == 0, loaded.stderr.decode()
    assert emitted_states(loaded)[-1] == second.states[-1]
    rows = read_table(open_catalog(), ("acme", "default", "public_accounts")).to_pylist()
    deletes = [(r["id"], r["name"]) for r in rows if r["_sdc_deleted_at"] is not None]
    assert deletes == [(2, None)]
    assert sorted(r["id"] for r in rows) == [1, 2, 2, 3]
