"""tap-dativo-postgres with ``batch_config``: Parquet BATCH files against a real PostgreSQL.

FULL_TABLE and INCREMENTAL streams take the ADBC fast path (COPY binary -> Arrow ->
Parquet files of ``batch_size`` rows, a STATE after each); their files must hold
exactly the rows and values the RECORD path sends, and their bookmarks must match it.
LOG_BASED falls back to files of the RECORD path's records. Bad config, unreadable
tables and non-finite numerics fail with one line and exit code 2.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from tests.integration.test_tap_postgres import (
    TapRun,
    discover,
    fresh_database,
    run_tap,
    select,
    tap_config,
)
from tests.integration.test_tap_postgres_cdc import LOG_BASED, cdc_db  # noqa: F401
from tests.services.batch_messages import all_rows, batch_settings, batches, file_rows
from tests.services.postgres import PostgresServer

FAST_PATH = "reading columns through ADBC"


def kinds(run: TapRun) -> list[str]:
    """The message types after the SCHEMA, in order."""
    return [m["type"] for m in run.messages if m["type"] != "SCHEMA"]


def bookmark(state: dict[str, Any], stream: str) -> Any:
    return state["bookmarks"][stream].get("replication_key_value")


def error_lines(run: TapRun) -> list[str]:
    """The messages of the run's ERROR log lines, without time and logger."""
    return [line.rsplit(" | ", 1)[-1] for line in run.stderr.splitlines()
            if " | ERROR " in line]


def sync(tmp_path: Path, postgres: PostgresServer, database: str, stream: str,
         meta: dict[str, Any] | None = None, batch_size: int | None = None,
         state: dict[str, Any] | None = None, **extra: Any) -> TapRun:
    """One run of ``stream``: BATCH files of ``batch_size`` rows, or RECORDs if None."""
    config = tap_config(postgres, database, **extra)
    catalog = select(discover(tmp_path, config), {stream: dict(meta or {})})
    if batch_size is not None:
        config["batch_config"] = batch_settings(tmp_path, batch_size)
    return run_tap(tmp_path, config, catalog=catalog, state=state)


def test_full_table_is_three_parquet_files_with_a_state_after_each(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """25,000 rows at batch_size 10,000: three files (10k/10k/5k), every row exactly
    once with its values, and not a single RECORD. A FULL_TABLE state never changes
    and singer-sdk writes a STATE only when it changed: one, after the first BATCH."""
    database = fresh_database(postgres, """
        CREATE TABLE big (id int PRIMARY KEY, h text NOT NULL, amount numeric(10,2));
        INSERT INTO big SELECT g, md5(g::text), g / 100.0 FROM generate_series(1, 25000) g;
    """)
    run = sync(tmp_path, postgres, database, "public-big", batch_size=10_000)
    assert run.returncode == 0, run.stderr
    assert FAST_PATH in run.stderr
    assert kinds(run) == ["BATCH", "STATE", "BATCH", "BATCH"]
    files = [file_rows(b) for b in batches(run, "public-big")]
    assert [len(rows) for rows in files] == [10_000, 10_000, 5_000]
    rows = sorted((row for rows in files for row in rows), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(1, 25_001))
    for row in (rows[0], rows[12_344], rows[-1]):
        assert row["h"] == hashlib.md5(str(row["id"]).encode()).hexdigest()
        assert row["amount"] == Decimal(row["id"]) / 100
    assert run.states[-1] == {"bookmarks": {"public-big": {}}}


EVENTS = """
CREATE TABLE events (id int PRIMARY KEY, updated_at timestamptz, n int, v text);
INSERT INTO events SELECT g, timestamptz '2024-01-01 00:00:00+00' + (g / 3) * interval '1 min',
  g / 3, 'v' || g FROM generate_series(1, 25) g;
INSERT INTO events VALUES (100, NULL, NULL, 'no key');
"""
# New rows at, and after, the first run's bookmark; old rows moved forward past it
# (they must come again) and one moved backwards (it must not).
CHANGES = """
INSERT INTO events VALUES
  (26, timestamptz '2024-01-01 00:08:00+00', 8, 'same as bookmark'),
  (27, timestamptz '2024-01-01 00:30:00+00', 30, 'newer');
UPDATE events SET updated_at = timestamptz '2024-01-01 00:20:00+00', n = 20 WHERE id IN (1, 2);
UPDATE events SET updated_at = timestamptz '2023-12-31 00:00:00+00', n = -1 WHERE id = 24;
"""


def _as_json(value: Any) -> Any:
    """A Parquet key value in the JSON form a STATE bookmark holds."""
    return value.isoformat() if isinstance(value, dt.datetime) else value


@pytest.mark.parametrize("key", ["updated_at", "n"])
def test_incremental_bookmarks_advance_per_file_and_match_the_record_path(
    postgres: PostgresServer, tmp_path: Path, key: str
) -> None:
    """Each STATE after a BATCH holds the key of that file's last row (monotonic, in the
    RECORD path's JSON form); a rerun from the final state delivers exactly the rows with
    key >= bookmark (the bookmark's own rows again), with the RECORD path's bookmark."""
    database = fresh_database(postgres, EVENTS)
    meta = {"replication-method": "INCREMENTAL", "replication-key": key}
    stream = "public-events"

    def both(states: tuple[dict[str, Any] | None, dict[str, Any] | None]
             ) -> tuple[TapRun, TapRun]:
        fast = sync(tmp_path, postgres, database, stream, meta, 10, state=states[0])
        slow = sync(tmp_path, postgres, database, stream, meta, state=states[1])
        assert (fast.returncode, slow.returncode) == (0, 0), fast.stderr + slow.stderr
        assert FAST_PATH in fast.stderr
        return fast, slow

    fast, slow = both((None, None))
    assert kinds(fast) == ["BATCH", "STATE"] * 3 + ["STATE"]
    per_file = [bookmark(s, stream) for s in fast.states[:3]]
    assert per_file == [_as_json(file_rows(b)[-1][key]) for b in batches(fast, stream)]
    assert per_file == sorted(per_file) and len(set(per_file)) == 3
    assert bookmark(fast.states[-1], stream) == bookmark(slow.states[-1], stream) == {
        "updated_at": "2024-01-01T00:08:00+00:00", "n": 8}[key]
    assert sorted(r["id"] for r in all_rows(fast, stream)) == sorted(
        r["id"] for r in slow.records(stream)) == [*range(1, 26), 100]

    postgres.psql(CHANGES, database)
    mark = bookmark(fast.states[-1], stream)
    expected = sorted(int(i) for i in postgres.psql(
        f"SELECT id FROM events WHERE {key} >= '{mark}'", database).split())
    assert expected == [1, 2, 25, 26, 27]  # 24 moved backwards, 100 has no key
    fast2, slow2 = both((fast.states[-1], slow.states[-1]))
    assert sorted(r["id"] for r in all_rows(fast2, stream)) == expected
    assert sorted(r["id"] for r in slow2.records(stream)) == expected
    assert bookmark(fast2.states[-1], stream) == bookmark(slow2.states[-1], stream) == {
        "updated_at": "2024-01-01T00:30:00+00:00", "n": 30}[key]


VALUES_SQL = r"""
CREATE TABLE vals (id int PRIMARY KEY, amount numeric(10,2), at timestamptz, day date,
  note text, ok boolean, doc jsonb, nums int[]);
INSERT INTO vals VALUES
  (1, -12345678.90, '2024-01-02 03:04:05.678901+02', '2024-02-29',
   E'say "hi"\nit''s \\ ünïcødé ✓ 😀', true, '{"a": [1, 2.5, "x"], "b": null}', '{1,NULL,3}'),
  (2, 0.10, '1970-01-01 00:00:00+00', '0001-01-01', '', false, '"just a string"', '{}'),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (4, 5.00, '2024-06-30 23:59:59.999999-07', '9999-12-31', 'tab	end', true, '[]', '{-7}');
"""


def _from_record(record: dict[str, Any]) -> dict[str, Any]:
    """A RECORD's JSON values as the Python values its Parquet row should hold."""
    decode = {"amount": Decimal, "at": dt.datetime.fromisoformat, "day": dt.date.fromisoformat}
    return {name: (decode[name](value) if name in decode and value is not None else value)
            for name, value in record.items()}


def test_parquet_values_equal_the_record_paths_values(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """numeric(10,2), timestamptz, date, awkward text, boolean, jsonb and int[] read
    through ADBC equal the RECORD path's values: decimals with their scale, timestamps
    as the same instant, jsonb as the same JSON."""
    database = fresh_database(postgres, VALUES_SQL)
    fast = sync(tmp_path, postgres, database, "public-vals", batch_size=3)
    slow = sync(tmp_path, postgres, database, "public-vals")
    assert (fast.returncode, slow.returncode) == (0, 0), fast.stderr + slow.stderr
    assert FAST_PATH in fast.stderr
    rows = sorted(all_rows(fast, "public-vals"), key=lambda r: r["id"])
    records = sorted(slow.records("public-vals"), key=lambda r: r["id"])
    assert len(rows) == len(records) == 4
    for row, record in zip(rows, records, strict=True):
        want = _from_record(record)
        got = {**row, "doc": None if row["doc"] is None else json.loads(row["doc"])}
        assert got == want
        if want["amount"] is not None:
            assert got["amount"].as_tuple().exponent == -2
        if want["at"] is not None:
            assert got["at"].utcoffset() is not None
    assert rows[0]["note"] == 'say "hi"\nit\'s \\ ünïcødé ✓ 😀'
    assert rows[0]["at"] == dt.datetime(2024, 1, 2, 1, 4, 5, 678901, tzinfo=dt.timezone.utc)


NON_FINITE_SQL = """
CREATE TABLE fixed (id int PRIMARY KEY, x numeric(10,2));
INSERT INTO fixed SELECT g, g FROM generate_series(1, 5) g;
INSERT INTO fixed VALUES (6, 'NaN'), (7, 7);
CREATE TABLE free (id int PRIMARY KEY, x numeric);
INSERT INTO free VALUES (1, 1), (2, 'Infinity'), (3, 3);
"""


@pytest.mark.parametrize(("stream", "key"), [("public-fixed", 6), ("public-free", 2)])
def test_non_finite_numeric_fails_like_the_record_path(
    postgres: PostgresServer, tmp_path: Path, stream: str, key: int
) -> None:
    """A NaN/Infinity numeric fails the batch run as it fails the RECORD path: exit 2,
    one line naming stream, primary key and column, no traceback, no BATCH for its file."""
    database = fresh_database(postgres, NON_FINITE_SQL)
    slow = sync(tmp_path, postgres, database, stream)
    fast = sync(tmp_path, postgres, database, stream, batch_size=2)
    message = f"stream '{stream}', row {{'id': {key}}}: column x is "
    assert slow.returncode == 2 and message in slow.stderr  # the reference behaviour
    assert fast.returncode == 2, fast.stderr
    assert len([line for line in error_lines(fast) if message in line]) == 1, fast.stderr
    assert "Traceback" not in fast.stderr
    delivered = [row["id"] for row in all_rows(fast, stream)]
    assert key not in delivered and delivered == sorted(delivered)


def test_log_based_stream_falls_back_to_files_of_records(
    postgres: PostgresServer, cdc_db: str, tmp_path: Path  # noqa: F811
) -> None:
    """LOG_BASED with Parquet batch_config: no ADBC read, yet the snapshot and then the
    later changes arrive as Parquet BATCH files, with the slot's LSN in state."""
    stream = "public-accounts"
    first = sync(tmp_path, postgres, cdc_db, stream, LOG_BASED, batch_size=2)
    assert first.returncode == 0, first.stderr
    assert FAST_PATH not in first.stderr
    assert first.records(stream) == []
    assert [len(file_rows(b)) for b in batches(first, stream)] == [2, 1]
    snapshot = sorted(all_rows(first, stream), key=lambda r: r["id"])
    assert [(r["id"], r["name"], r["balance"], r["_sdc_deleted_at"]) for r in snapshot] == [
        (1, "ada", "10.00", None), (2, "bob", "20.50", None), (3, "cy", "0.01", None)]
    lsn = first.states[-1]["bookmarks"][stream]["lsn"]
    assert all(r["_sdc_lsn"] <= lsn for r in snapshot)

    postgres.psql("INSERT INTO accounts (id, name) VALUES (4, 'dee'); "
                  "DELETE FROM accounts WHERE id = 1", cdc_db)
    second = sync(tmp_path, postgres, cdc_db, stream, LOG_BASED, batch_size=2,
                  state=first.states[-1])
    assert second.returncode == 0, second.stderr
    changes = all_rows(second, stream)
    assert [(r["id"], r["name"], r["_sdc_deleted_at"] is None) for r in changes] == [
        (4, "dee", True), (1, None, False)]
    assert second.states[-1]["bookmarks"][stream]["lsn"] > lsn


@pytest.mark.parametrize(("batch_config", "message"), [
    ({"encoding": {"format": "csv"}}, "config['batch_config']['encoding']['format']"),
    ({"encoding": {"format": "parquet", "compression": "zip"}},
     "config['batch_config']['encoding']['compression']"),
    ({"encoding": {"format": "parquet"}, "batch_size": 0},
     "batch_config.batch_size: must be a positive integer, got 0"),
    ({"encoding": {"format": "parquet"}, "batch_size": "10"},
     "'10' is not of type 'integer', 'null' in config['batch_config']['batch_size']"),
])
def test_bad_batch_config_names_the_key_before_connecting(
    postgres: PostgresServer, tmp_path: Path, batch_config: dict[str, Any], message: str,
) -> None:
    """The config is refused before any connection: the server's port is wrong, yet
    the error is the batch_config key, not a connection failure. (Enum values and types
    fail the config schema, the others dativo's checks: both are one line, exit 2.)"""
    database = fresh_database(postgres, "CREATE TABLE t (id int PRIMARY KEY)")
    catalog = select(discover(tmp_path, tap_config(postgres, database)), {"public-t": {}})
    config = {**tap_config(postgres, database), "port": 1, "batch_config": batch_config}
    run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert "cannot connect" not in run.stderr and "Traceback" not in run.stderr
    assert run.messages == []


@pytest.fixture
def shop(postgres: PostgresServer) -> Iterator[str]:
    yield fresh_database(postgres, """
        CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2), note text);
        INSERT INTO orders VALUES (1, 1.00, 'a'), (2, 2.00, 'b');
    """)


def _batch_run(postgres: PostgresServer, shop: str, tmp_path: Path, sql: str,
               **extra: Any) -> TapRun:
    """Discover ``orders``, run ``sql`` (as the superuser), then sync in batch mode."""
    catalog = select(discover(tmp_path, tap_config(postgres, shop)), {"public-orders": {}})
    postgres.psql(sql, shop)
    config = tap_config(postgres, shop, batch_config=batch_settings(tmp_path, 10), **extra)
    return run_tap(tmp_path, config, catalog=catalog)


@pytest.mark.parametrize("break_it", [
    "revoke",
    "drop table",
])
def test_unreadable_table_in_batch_mode_is_one_source_error_line(
    postgres: PostgresServer, shop: str, tmp_path: Path, break_it: str
) -> None:
    """A role without SELECT, or a table dropped after discovery: exit 2, one
    SourceError line naming the stream, the table and the cause, no traceback, no BATCH."""
    role = f"nobody_{shop}"
    sql, cause, extra = {
        "revoke": (f'CREATE ROLE "{role}" LOGIN; REVOKE ALL ON orders FROM "{role}"',
                   "permission denied for table orders", {"user": role}),
        "drop table": ("DROP TABLE orders", "orders", {}),
    }[break_it]
    run = _batch_run(postgres, shop, tmp_path, sql, **extra)
    assert run.returncode == 2, run.stderr
    failed = [line for line in error_lines(run) if "stream 'public-orders': reading " in line]
    assert len(failed) == 1, run.stderr
    assert "reading public.orders failed: " in failed[0] and cause in failed[0]
    assert "Traceback" not in run.stderr
    assert batches(run, "public-orders") == []


def test_column_dropped_after_discovery_is_left_out_as_on_the_record_path(
    postgres: PostgresServer, shop: str, tmp_path: Path
) -> None:
    """A selected column dropped after discovery: both paths read the columns that
    remain (exit 0), so the files hold what the RECORDs would have."""
    catalog = select(discover(tmp_path, tap_config(postgres, shop)), {"public-orders": {}})
    postgres.psql("ALTER TABLE orders DROP COLUMN note", shop)
    fast = run_tap(tmp_path, tap_config(postgres, shop, batch_config=batch_settings(
        tmp_path, 10)), catalog=catalog)
    slow = run_tap(tmp_path, tap_config(postgres, shop), catalog=catalog)
    assert (fast.returncode, slow.returncode) == (0, 0), fast.stderr + slow.stderr
    assert FAST_PATH in fast.stderr
    assert all_rows(fast, "public-orders") == [
        {"id": 1, "amount": Decimal("1.00")}, {"id": 2, "amount": Decimal("2.00")}]
    assert slow.records("public-orders") == [
        {"id": 1, "amount": "1.00"}, {"id": 2, "amount": "2.00"}]


EDGE_SQL = r"""
CREATE TABLE edges (id int PRIMARY KEY, tz timetz, f double precision, d date,
                    secret text);
INSERT INTO edges VALUES
  (1, '10:00:00+02', 'NaN', '2024-01-01', 's1'),
  (2, '23:59:59.5-05:30', 'Infinity', '2024-01-02', 's2'),
  (3, NULL, 1.5, NULL, 's3');
CREATE TABLE blobs (id int PRIMARY KEY, b bytea[]);
INSERT INTO blobs VALUES (1, ARRAY['\x0001'::bytea, NULL]), (2, NULL);
CREATE TABLE forever (id int PRIMARY KEY, d date);
INSERT INTO forever VALUES (1, '2024-01-01'), (2, 'infinity'), (3, '2024-01-03');
"""


def test_edge_values_equal_the_record_path(postgres: PostgresServer, tmp_path: Path) -> None:
    """timetz is text (not ADBC's opaque bytes), NaN and Infinity doubles are NULL as
    the RECORD path's JSON writer sends them, dates stay dates."""
    database = fresh_database(postgres, EDGE_SQL)
    slow = sync(tmp_path, postgres, database, "public-edges")
    fast = sync(tmp_path, postgres, database, "public-edges", batch_size=10)
    assert (slow.returncode, fast.returncode) == (0, 0), slow.stderr + fast.stderr
    assert FAST_PATH in fast.stderr
    records = sorted(slow.records("public-edges"), key=lambda r: r["id"])
    rows = sorted(all_rows(fast, "public-edges"), key=lambda r: r["id"])
    def times(values: list[str | None]) -> list[dt.time | None]:  # text digits may differ
        return [None if v is None else dt.time.fromisoformat(v) for v in values]

    assert times([r["tz"] for r in rows]) == times([r["tz"] for r in records]) == times(
        ["10:00:00+02:00", "23:59:59.5-05:30", None])
    assert [r["f"] for r in rows] == [r["f"] for r in records] == [None, None, Decimal("1.5")]
    assert [r["d"] for r in rows] == [dt.date(2024, 1, 1), dt.date(2024, 1, 2), None]


def test_bytea_arrays_fall_back_to_files_of_records(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """bytea[] travels as base64 per element, which ADBC cannot give: files of records."""
    database = fresh_database(postgres, EDGE_SQL)
    fast = sync(tmp_path, postgres, database, "public-blobs", batch_size=10)
    assert fast.returncode == 0, fast.stderr
    assert FAST_PATH not in fast.stderr and "bytea[] column b" in fast.stderr
    rows = sorted(all_rows(fast, "public-blobs"), key=lambda r: r["id"])
    assert [r["b"] for r in rows] == [["AAE=", None], None]


def test_infinite_date_fails_with_one_line_naming_the_row(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """'infinity' has no Arrow or Iceberg value: exit 2, one line with row key and column."""
    database = fresh_database(postgres, EDGE_SQL)
    fast = sync(tmp_path, postgres, database, "public-forever", batch_size=10)
    assert fast.returncode == 2, fast.stderr
    [line] = [x for x in error_lines(fast) if "stream 'public-forever'" in x]
    assert "row {'id': 2}: column d is ±infinity or outside years 1-9999" in line
    assert "Traceback" not in fast.stderr and batches(fast, "public-forever") == []


@pytest.mark.parametrize("batch_format", ["parquet", "jsonl"])
def test_stream_maps_apply_to_batch_files(
    postgres: PostgresServer, tmp_path: Path, batch_format: str
) -> None:
    """A map that renames the stream, drops a column and filters rows reaches the files
    (singer-sdk's own BATCH path would write unmapped records)."""
    database = fresh_database(postgres, EDGE_SQL)
    maps = {"stream_maps": {"public-edges": {"__alias__": "edges_clean", "secret": None,
                                             "__filter__": "id != 2"}}}
    config = tap_config(postgres, database, **maps,
                        batch_config=batch_settings(tmp_path, 10, batch_format))
    catalog = select(discover(tmp_path, config), {"public-edges": {}})
    run = run_tap(tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert FAST_PATH not in run.stderr
    [message] = batches(run, "edges_clean")
    uri = message["manifest"][0]
    if batch_format == "parquet":
        rows = file_rows(message)
    else:
        rows = [json.loads(line) for line in Path(unquote(urlparse(uri).path)).read_text(
            ).splitlines()]
    assert sorted(r["id"] for r in rows) == [1, 3]
    assert all("secret" not in r for r in rows)
