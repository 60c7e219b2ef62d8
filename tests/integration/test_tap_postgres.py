"""tap-dativo-postgres as a process against a real throwaway PostgreSQL.

Config and discovery (keys, filters), FULL_TABLE and INCREMENTAL syncs with their
exact records and STATE, and the server-side cursor. The helpers here are shared by
the other ``test_tap_postgres*`` modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN
from tests.services.postgres import PostgresServer

TAP = str(BIN / "tap-dativo-postgres")


@dataclass(frozen=True)
class TapRun:
    """One tap process: exit code, every Singer message it wrote, and its log."""

    returncode: int
    messages: list[dict[str, Any]]
    stderr: str

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"] for m in self.messages
                if m["type"] == "RECORD" and m["stream"] == stream]

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    def schema(self, stream: str) -> dict[str, Any]:
        return next(m for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream)


def fresh_database(postgres: PostgresServer, sql: str) -> str:
    """A new database with ``sql`` applied; returns its name."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    postgres.psql(sql, name)
    return name


def tap_config(postgres: PostgresServer, database: str, **extra: Any) -> dict[str, Any]:
    return {"host": postgres.host, "port": postgres.port, "user": postgres.user,
            "database": database, **extra}


def run_tap(tmp_path: Path, config: dict[str, Any], *args: str,
            catalog: dict[str, Any] | None = None, state: dict[str, Any] | None = None,
            timeout: float = 120) -> TapRun:
    """Run the tap's console script with config/catalog/state files in ``tmp_path``."""
    files = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    files.mkdir()
    argv = [TAP, "--config", str(_dump(files / "config.json", config)), *args]
    if catalog is not None:
        argv += ["--catalog", str(_dump(files / "catalog.json", catalog))]
    if state is not None:
        argv += ["--state", str(_dump(files / "state.json", state))]
    result = subprocess.run(argv, capture_output=True, timeout=timeout,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    out = result.stdout.decode()
    messages = [json.loads(line, parse_float=Decimal) for line in out.splitlines()
                if line.startswith("{") and '"type"' in line]
    return TapRun(result.returncode, messages, result.stderr.decode())


def discover(tmp_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run([TAP, "--config", str(_dump(tmp_path / "discover.json", config)),
                             "--discover"], capture_output=True, timeout=120,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def select(catalog: dict[str, Any], streams: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Keep only ``streams``, selected, with their stream-level metadata overrides
    (``replication-method``, ``replication-key``), as Meltano's ``select`` and
    ``metadata`` settings would write them."""
    kept = []
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] not in streams:
            continue
        for item in entry["metadata"]:
            item["metadata"]["selected"] = True
            if not item["breadcrumb"]:
                item["metadata"].update(streams[entry["tap_stream_id"]])
        # Meltano also writes each key, underscored, on the stream itself.
        entry.update({key.replace("-", "_"): value
                      for key, value in streams[entry["tap_stream_id"]].items()})
        kept.append(entry)
    assert {e["tap_stream_id"] for e in kept} == set(streams)
    return {"streams": kept}


def keys_by_stream(catalog: dict[str, Any]) -> dict[str, list[str]]:
    return {e["tap_stream_id"]: e["key_properties"] for e in catalog["streams"]}


def _dump(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


SHOP = """
CREATE SCHEMA sales;
CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2) NOT NULL, note text);
CREATE TABLE order_lines (order_id int, line int, sku text, PRIMARY KEY (order_id, line));
CREATE TABLE codes (code text NOT NULL, label text);
CREATE UNIQUE INDEX codes_code ON codes (code);
CREATE TABLE audit_log (id bigint PRIMARY KEY);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;
CREATE TABLE sales.leads (id int PRIMARY KEY, email text);
INSERT INTO orders VALUES (1, 10.50, 'first'), (2, 250.00, NULL), (3, 0.01, 'third');
INSERT INTO order_lines VALUES (1, 1, 'A'), (1, 2, 'B'), (2, 1, 'C');
"""


@pytest.fixture
def shop(postgres: PostgresServer) -> str:
    return fresh_database(postgres, SHOP)


def test_about_lists_every_setting_and_marks_secrets(tmp_path: Path) -> None:
    result = subprocess.run([TAP, "--about", "--format", "json"], capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    about = json.loads(result.stdout)
    settings = about["settings"]["properties"]
    assert set(settings) >= {"host", "port", "user", "password", "database", "sslmode",
                             "sqlalchemy_url", "filter_schemas", "filter_tables",
                             "fetch_rows", "replication_slot_prefix", "publication_name"}
    assert all(settings[key].get("description") for key in settings)
    assert {key for key, spec in settings.items() if spec.get("secret")} >= {
        "password", "sqlalchemy_url"}
    assert settings["sslmode"]["enum"][:2] == ["disable", "allow"]
    assert {"discover", "catalog", "state"} <= set(about["capabilities"])


def test_discover_finds_keys_of_tables_views_and_unique_indexes(
    postgres: PostgresServer, shop: str, tmp_path: Path
) -> None:
    catalog = discover(tmp_path, tap_config(postgres, shop))
    assert keys_by_stream(catalog) == {
        "public-orders": ["id"],
        "public-order_lines": ["order_id", "line"],
        "public-codes": ["code"],
        "public-audit_log": ["id"],
        "public-big_orders": [],
        "sales-leads": ["id"],
    }
    orders = next(e for e in catalog["streams"] if e["tap_stream_id"] == "public-orders")
    assert orders["schema"]["properties"]["amount"] == {
        "type": ["string", "null"], "format": "x-singer.decimal",
        "x-sql-datatype": "numeric(10,2)"}
    assert orders["schema"]["properties"]["note"] == {"type": ["string", "null"]}
    root = next(m["metadata"] for m in orders["metadata"] if not m["breadcrumb"])
    assert root["schema-name"] == "public"
    assert root["table-key-properties"] == ["id"]


@pytest.mark.parametrize(("filters", "expected"), [
    ({"filter_schemas": ["sales"]}, {"sales-leads"}),
    ({"filter_tables": ["order*"]}, {"public-orders", "public-order_lines"}),
    ({"filter_tables": ["sales.*", "public.codes"]}, {"sales-leads", "public-codes"}),
    ({"filter_schemas": ["public"], "filter_tables": ["*_log", "big_*"]},
     {"public-audit_log", "public-big_orders"}),
])
def test_schema_and_table_filters_limit_discovery(
    postgres: PostgresServer, shop: str, tmp_path: Path, filters: dict[str, Any],
    expected: set[str],
) -> None:
    catalog = discover(tmp_path, tap_config(postgres, shop, **filters))
    assert set(keys_by_stream(catalog)) == expected


def test_sqlalchemy_url_discovers_the_same_catalog(
    postgres: PostgresServer, shop: str, tmp_path: Path
) -> None:
    by_parts = discover(tmp_path, tap_config(postgres, shop))
    by_url = discover(tmp_path, {"sqlalchemy_url": postgres.dsn(shop), "sslmode": "disable"})
    assert by_url == by_parts


@pytest.mark.parametrize(("config", "message"), [
    ({"sqlalchemy_url": "postgresql://u@h/db", "host": "h"},
     "sqlalchemy_url and host are both set"),
    ({"host": "127.0.0.1", "user": "postgres"}, "database: required (or set sqlalchemy_url)"),
    ({"sqlalchemy_url": "mysql://u@h/db"}, "sqlalchemy_url: scheme 'mysql' is not PostgreSQL"),
    ({"host": "127.0.0.1", "user": "postgres", "database": "x", "sslmode": "sometimes"},
     "sslmode"),
])
def test_bad_config_names_the_key_and_exits_2(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    for args in (("--discover",), ()):
        run = run_tap(tmp_path, config, *args)
        assert run.returncode != 0
        assert message in run.stderr
        assert "Traceback" not in run.stderr
        assert run.messages == []


def test_unreachable_server_names_the_url_but_not_the_password(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    config = tap_config(postgres, "no_such_db", password="s3cret-pw")
    run = run_tap(tmp_path, config, "--discover")
    assert run.returncode == 2
    assert (f"cannot connect to postgresql+psycopg2://postgres:***@127.0.0.1:"
            f"{postgres.port}/no_such_db: ") in run.stderr
    assert 'database "no_such_db" does not exist' in run.stderr
    assert "s3cret-pw" not in run.stderr
    assert "Traceback" not in run.stderr


def test_full_table_emits_every_row_and_an_empty_bookmark(
    postgres: PostgresServer, shop: str, tmp_path: Path
) -> None:
    config = tap_config(postgres, shop)
    catalog = select(discover(tmp_path, config), {"public-orders": {}, "public-order_lines": {}})
    run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert sorted(run.records("public-orders"), key=lambda r: r["id"]) == [
        {"id": 1, "amount": "10.50", "note": "first"},
        {"id": 2, "amount": "250.00", "note": None},
        {"id": 3, "amount": "0.01", "note": "third"},
    ]
    assert sorted((r["order_id"], r["line"], r["sku"]) for r in
                  run.records("public-order_lines")) == [(1, 1, "A"), (1, 2, "B"), (2, 1, "C")]
    assert run.schema("public-orders")["key_properties"] == ["id"]
    assert run.states[-1] == {"bookmarks": {"public-orders": {}, "public-order_lines": {}}}

    # use_singer_decimal false: JSON numbers, still with every digit and the scale.
    as_numbers = run_tap(tmp_path, {**config, "use_singer_decimal": False},
                         catalog=select(discover(tmp_path, {**config, "use_singer_decimal":
                                                            False}), {"public-orders": {}}))
    amounts = [r["amount"] for r in sorted(as_numbers.records("public-orders"),
                                           key=lambda r: r["id"])]
    assert [(type(a), str(a)) for a in amounts] == [
        (Decimal, "10.50"), (Decimal, "250.00"), (Decimal, "0.01")]
    assert as_numbers.schema("public-orders")["schema"]["properties"]["amount"] == {
        "type": ["number", "null"], "x-sql-datatype": "numeric(10,2)"}


EVENTS = """
CREATE TABLE events (id int PRIMARY KEY, updated_at timestamptz, v text);
INSERT INTO events VALUES
  (3, '2024-01-01 10:00:00+00', 'c'),
  (1, '2024-01-01 09:00:00+00', 'a'),
  (2, '2024-01-01 10:00:00+00', 'b'),
  (4, NULL, 'never updated');
"""
T9 = "2024-01-01T09:00:00+00:00"
T10 = "2024-01-01T10:00:00+00:00"
T11 = "2024-01-01T11:00:00+00:00"


def _ids_and_times(records: Iterable[dict[str, Any]]) -> list[tuple[int, str | None]]:
    return [(r["id"], r["updated_at"]) for r in records]


def test_incremental_resends_the_last_bookmark_and_never_loses_a_row_sharing_it(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    database = fresh_database(postgres, EVENTS)
    config = tap_config(postgres, database)
    catalog = select(discover(tmp_path, config), {"public-events": {
        "replication-method": "INCREMENTAL", "replication-key": "updated_at"}})

    first = run_tap(tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    # NULL keys first, then by key, ties broken by the primary key.
    assert _ids_and_times(first.records("public-events")) == [
        (4, None), (1, T9), (2, T10), (3, T10)]
    bookmark = first.states[-1]["bookmarks"]["public-events"]
    assert bookmark == {"replication_key": "updated_at", "replication_key_value": T10}

    # Committed after the first run, with exactly the bookmark's value: a `>` filter
    # would skip row 5 forever. Row 1 moves backwards in time, so it is not re-read.
    postgres.psql("INSERT INTO events VALUES (5, '2024-01-01 10:00:00+00', 'e'), "
                  "(6, '2024-01-01 11:00:00+00', 'f'); "
                  "UPDATE events SET updated_at = '2024-01-01 08:00:00+00' WHERE id = 1", database)
    second = run_tap(tmp_path, config, catalog=catalog, state=first.states[-1])
    assert second.returncode == 0, second.stderr
    assert _ids_and_times(second.records("public-events")) == [
        (2, T10), (3, T10), (5, T10), (6, T11)]
    assert second.records("public-events")[2] == {"id": 5, "updated_at": T10, "v": "e"}
    assert second.states[-1]["bookmarks"]["public-events"] == {
        "replication_key": "updated_at", "replication_key_value": T11}

    third = run_tap(tmp_path, config, catalog=catalog, state=second.states[-1])
    assert _ids_and_times(third.records("public-events")) == [(6, T11)]


def test_rows_stream_through_a_server_side_cursor_in_fetch_rows_chunks(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    database = fresh_database(postgres, "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h "
                                        "FROM generate_series(1, 2500) g")
    postgres.psql(f'ALTER DATABASE "{database}" SET log_statement = \'all\'')
    config = tap_config(postgres, database, fetch_rows=1000)
    catalog = select(discover(tmp_path, config), {"public-big": {}})
    run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert sorted(r["id"] for r in run.records("public-big")) == list(range(1, 2501))
    log = (postgres.socket_dir / "log").read_text()
    statements = [line for line in log.splitlines() if "statement:" in line]
    declares = [line for line in statements if "DECLARE" in line and "big" in line]
    fetches = [line for line in statements if "FETCH FORWARD 1000" in line]
    assert declares, "the SELECT must run as a named (server-side) cursor"
    assert len(fetches) >= 3  # 2500 rows in chunks of 1000, never all at once


def test_a_null_fetch_rows_takes_the_default(
    postgres: PostgresServer, shop: str, tmp_path: Path
) -> None:
    """Meltano sends a declared but unset setting as null: the schema's default applies."""
    config = tap_config(postgres, shop, fetch_rows=None)
    run = run_tap(tmp_path, config, catalog=select(discover(tmp_path, config),
                                                   {"public-orders": {}}))
    assert run.returncode == 0, run.stderr
    assert sorted(r["id"] for r in run.records("public-orders")) == [1, 2, 3]


def test_unreadable_table_fails_the_stream_with_one_clear_line(
    postgres: PostgresServer, shop: str, tmp_path: Path
) -> None:
    role = f"reader_{shop}"
    postgres.psql(f'CREATE ROLE "{role}" LOGIN; GRANT SELECT ON orders TO "{role}"', shop)
    catalog = select(discover(tmp_path, tap_config(postgres, shop)),
                     {"public-orders": {}, "public-order_lines": {}})
    run = run_tap(tmp_path, {**tap_config(postgres, shop), "user": role}, catalog=catalog)
    assert run.returncode == 2
    assert ("stream 'public-order_lines': reading public.order_lines failed: permission "
            "denied for table order_lines") in run.stderr
    assert "Traceback" not in run.stderr
    assert run.records("public-order_lines") == []


@pytest.mark.parametrize("url_style", [False, True])
def test_sslmode_reaches_libpq(
    postgres: PostgresServer, shop: str, tmp_path: Path, url_style: bool
) -> None:
    """The throwaway server has no TLS, so ``require`` must fail, naming the cause."""
    config = ({"sqlalchemy_url": postgres.dsn(shop)} if url_style
              else tap_config(postgres, shop))
    run = run_tap(tmp_path, {**config, "sslmode": "require"}, "--discover")
    assert run.returncode == 2
    assert "server does not support SSL, but SSL was required" in run.stderr
    assert "Traceback" not in run.stderr
