"""tap-dativo-mysql with ``batch_config`` Parquet: the connectorx fast path against a
throwaway MariaDB.

The Parquet files must hold exactly the rows and values the RECORD path sends (every
type of issue 15, zero dates, a TIME that is no time of day), bookmarks must match it,
``partitions`` must read every row once whatever the keys, each fallback says why, and
the files must land in Iceberg through target-dativo-iceberg.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog

from tests.conftest import BIN, read_table, run_target
from tests.e2e.test_tap_mysql_types import BINARY, EXPECTED_ROWS, EXPECTED_TYPES
from tests.integration.test_tap_mysql import TYPES, ZERO, fresh_database, incremental, tap_config
from tests.services.batch_messages import all_rows, batch_settings, batches, file_rows
from tests.services.mariadb import MariaDBServer
from tests.services.tap_process import TapRun, discover, run_tap, select

TAP = "tap-dativo-mysql"
FAST_PATH = "reading columns through connectorx"


def states(run: TapRun) -> list[dict[str, Any]]:
    return [m["value"] for m in run.messages if m["type"] == "STATE"]


def as_record(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row in the JSON form of a RECORD: decimals as their digits (with the
    scale), dates, datetimes and times as ISO 8601."""
    def json_form(value: Any) -> Any:
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, dt.date | dt.time):
            return value.isoformat()
        return value
    return {name: json_form(value) for name, value in row.items()}


def sync(tmp_path: Path, mariadb: MariaDBServer, db: str, catalog: dict[str, Any] | None,
         batch_size: int | None = None, table: str = "t",
         state: dict[str, Any] | None = None, **extra: Any) -> TapRun:
    """One run of ``<db>-<table>``: Parquet BATCH files of ``batch_size`` rows, or
    RECORDs if None."""
    config = tap_config(mariadb, db, **extra)
    if catalog is None:
        catalog = select(discover(TAP, tmp_path, config), {f"{db}-{table}"})
    if batch_size is not None:
        config["batch_config"] = batch_settings(tmp_path, batch_size)
    return run_tap(TAP, tmp_path, config, catalog=catalog, state=state)


def both(tmp_path: Path, mariadb: MariaDBServer, db: str, table: str = "t",
         batch_size: int = 2, **extra: Any) -> tuple[TapRun, TapRun]:
    """The same stream through the fast path and the RECORD path."""
    fast = sync(tmp_path, mariadb, db, None, batch_size, table, **extra)
    slow = sync(tmp_path, mariadb, db, None, None, table, **extra)
    return fast, slow


FLOATS = """
CREATE TABLE t (id int PRIMARY KEY, f float, f2 float(10,3), d double, u int unsigned,
  y year, big bigint unsigned, note varchar(20));
INSERT INTO t VALUES (1, 0.1, 1.5, 0.1, 1, 2000, 9223372036854775808, 'a'),
  (2, 1.2345678, 3.125, 1e-300, 4294967295, 1901, 1, 'b'),
  (3, 3.4e38, -0.001, -1.7976931348623157e308, 0, 2155, 18446744073709551614, NULL),
  (4, -1.17549e-38, 0, 5e-324, NULL, NULL, NULL, '');
"""


@pytest.mark.parametrize("sql", [TYPES, FLOATS], ids=["types", "floats"])
def test_parquet_rows_equal_the_record_paths_rows(
    mariadb: MariaDBServer, tmp_path: Path, sql: str
) -> None:
    """Every type of issue 15 (unsigned bigint 2^64-1, decimal(65,30), datetime(6),
    timestamp(6) in UTC, emoji, binary, bit(64), set, enum, json) and FLOAT's shortest
    digits: the Parquet rows, in JSON form, are the RECORDs."""
    db = fresh_database(mariadb, sql)
    fast, slow = both(tmp_path, mariadb, db)
    assert (fast.returncode, slow.returncode) == (0, 0), fast.stderr + slow.stderr
    assert FAST_PATH in fast.stderr
    assert not fast.records(f"{db}-t")
    files = batches(fast, f"{db}-t")
    assert len(files) == 2  # batch_size 2, two rows per file
    got = sorted((as_record(r) for r in all_rows(fast, f"{db}-t")), key=lambda r: r["id"])
    want = sorted(slow.records(f"{db}-t"), key=lambda r: r["id"])
    assert got == want


def test_parquet_types_follow_the_schema(mariadb: MariaDBServer, tmp_path: Path) -> None:
    """decimal(p,s) and unsigned bigint as Arrow decimals, wider decimals as text,
    timestamp in UTC, datetime without a zone, tinyint(1) boolean."""
    db = fresh_database(mariadb, TYPES)
    fast = sync(tmp_path, mariadb, db, None, 10)
    assert fast.returncode == 0, fast.stderr
    uri = batches(fast, f"{db}-t")[0]["manifest"][0]
    schema = pq.read_schema(unquote(urlparse(uri).path))
    types = {name: str(schema.field(name).type) for name in schema.names}
    assert types["ubi"] == "decimal128(20, 0)"
    assert types["d"] == "decimal128(10, 2)"
    assert types["d65"] == "string"
    assert types["ts"] == "timestamp[us, tz=UTC]"
    assert types["dtm"] == "timestamp[us]"
    assert types["b"] == "bool"
    assert types["tm"] == "time64[us]"
    assert types["bin"] == types["bt"] == types["j"] == "string"
    assert not any(name.startswith("_dativo") for name in schema.names)


def test_zero_dates_are_null_with_a_warning_naming_the_row(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    db = fresh_database(mariadb, ZERO)
    fast, slow = both(tmp_path, mariadb, db, table="z")
    assert (fast.returncode, slow.returncode) == (0, 0), fast.stderr + slow.stderr
    got = sorted((as_record(r) for r in all_rows(fast, f"{db}-z")), key=lambda r: r["id"])
    assert got == sorted(slow.records(f"{db}-z"), key=lambda r: r["id"])
    assert got[0] == {"id": 1, "d": None, "t": None}
    for column, text in (("d", "0000-00-00"), ("t", "0000-00-00 00:00:00")):
        warning = (f"row {{'id': 1}}: column {column} is the zero date {text}; sent as null "
                   "(zero_dates: null)")
        assert warning in fast.stderr and warning in slow.stderr


def test_zero_date_fails_naming_the_row_with_zero_dates_fail(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    db = fresh_database(mariadb, ZERO)
    fast, slow = both(tmp_path, mariadb, db, table="z", zero_dates="fail")
    assert fast.returncode == slow.returncode == 2, fast.stderr
    assert FAST_PATH in fast.stderr
    message = (f"stream '{db}-z', row {{'id': 1}}: column d is the zero date 0000-00-00; "
               "set zero_dates: null to send it as null")
    assert message in fast.stderr and message in slow.stderr
    assert "Traceback" not in fast.stderr


def test_time_beyond_a_day_fails_naming_the_row(mariadb: MariaDBServer, tmp_path: Path) -> None:
    db = fresh_database(mariadb, """
        CREATE TABLE t (id int PRIMARY KEY, tm time(6));
        INSERT INTO t VALUES (1, '10:00:00'), (2, '838:59:59'), (3, '-00:00:01.5');""")
    fast, slow = both(tmp_path, mariadb, db)
    assert fast.returncode == slow.returncode == 2, fast.stderr
    message = (f"stream '{db}-t', row {{'id': 2}}: column tm: the time 838:59:59 is not a "
               "time of day (00:00:00 to 23:59:59)")
    assert message in fast.stderr and message in slow.stderr


EDGE_KEYS = [-(2**63), -1000, -999, -1, 0, 1, 2, 7, 1000, 10**6, 2**40, 2**40 + 1, 2**62,
             2**63 - 1]


@pytest.mark.parametrize("partitions", [2, 3, 16])
def test_partitions_read_every_row_exactly_once(
    mariadb: MariaDBServer, tmp_path: Path, partitions: int
) -> None:
    """Gap-heavy keys from -2^63 to 2^63-1: N ranges give the rows of one piece, no
    duplicate and no gap, with their values."""
    values = ", ".join(f"({k}, 'v{k}', '2024-01-0{1 + i % 9} 01:02:03.{i:06d}')"
                       for i, k in enumerate(EDGE_KEYS))
    db = fresh_database(mariadb, "CREATE TABLE t (id bigint PRIMARY KEY, v varchar(30), "
                                 f"at timestamp(6) NULL); INSERT INTO t VALUES {values};")
    one = sync(tmp_path, mariadb, db, None, 3)
    many = sync(tmp_path, mariadb, db, None, 3, partitions=partitions)
    assert (one.returncode, many.returncode) == (0, 0), one.stderr + many.stderr
    assert f"reading {partitions} ranges of id" in many.stderr
    rows = all_rows(many, f"{db}-t")
    assert sorted(r["id"] for r in rows) == EDGE_KEYS
    assert sorted(rows, key=lambda r: r["id"]) == sorted(all_rows(one, f"{db}-t"),
                                                         key=lambda r: r["id"])


def test_partitions_on_unsigned_keys_up_to_the_maximum(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    keys = [0, 1, 2**63, 2**64 - 2, 2**64 - 1]
    db = fresh_database(mariadb, "CREATE TABLE t (id bigint unsigned PRIMARY KEY); "
                                 f"INSERT INTO t VALUES {', '.join(f'({k})' for k in keys)};")
    run = sync(tmp_path, mariadb, db, None, 10, partitions=2)
    assert run.returncode == 0, run.stderr
    assert "reading 2 ranges of id" in run.stderr
    assert sorted(int(r["id"]) for r in all_rows(run, f"{db}-t")) == keys


@pytest.mark.parametrize(("sql", "reason"), [
    ("CREATE TABLE t (a int, b int, PRIMARY KEY (a, b)); INSERT INTO t VALUES (1, 1), (1, 2);",
     "the key has 2 columns; ranges need a single-column integer primary key"),
    ("CREATE TABLE t (id varchar(5) PRIMARY KEY); INSERT INTO t VALUES ('a'), ('b');",
     "key id is not an integer"),
    ("CREATE TABLE t (id int PRIMARY KEY);", "the table is empty"),
])
def test_partitions_read_in_one_piece_and_say_why(
    mariadb: MariaDBServer, tmp_path: Path, sql: str, reason: str
) -> None:
    db = fresh_database(mariadb, sql)
    fast, slow = both(tmp_path, mariadb, db, batch_size=10, partitions=2)
    assert (fast.returncode, slow.returncode) == (0, 0), fast.stderr
    assert f"partitions: 2, but reading in one piece: {reason}" in fast.stderr
    got = [as_record(r) for r in all_rows(fast, f"{db}-t")]
    assert sorted(got, key=str) == sorted(slow.records(f"{db}-t"), key=str)


EVENTS = """
CREATE TABLE t (id int PRIMARY KEY, updated_at datetime(6), n int);
INSERT INTO t SELECT seq, TIMESTAMPADD(MINUTE, seq DIV 3, '2024-01-01'), seq DIV 3
  FROM seq_1_to_25;
INSERT INTO t VALUES (100, NULL, NULL);
"""


@pytest.mark.parametrize("key", ["updated_at", "n"])
def test_incremental_bookmarks_match_the_record_path(
    mariadb: MariaDBServer, tmp_path: Path, key: str
) -> None:
    """Each STATE after a BATCH holds its file's last key; the final bookmark and the
    rows equal the RECORD path's, and so does a rerun after changes (partitions: 2 is
    refused with its reason: the bookmark needs key order)."""
    db = fresh_database(mariadb, EVENTS)
    config = tap_config(mariadb, db)
    catalog = incremental(discover(TAP, tmp_path, config), f"{db}-t", key)
    stream = f"{db}-t"

    def run(state: tuple[dict[str, Any] | None, dict[str, Any] | None]
            ) -> tuple[TapRun, TapRun]:
        fast = sync(tmp_path, mariadb, db, catalog, 10, state=state[0], partitions=2)
        slow = sync(tmp_path, mariadb, db, catalog, None, state=state[1])
        assert (fast.returncode, slow.returncode) == (0, 0), fast.stderr + slow.stderr
        assert "reading in one piece: INCREMENTAL reads the rows in bookmark order" \
            in fast.stderr
        return fast, slow

    fast, slow = run((None, None))
    marks = [s["bookmarks"][stream]["replication_key_value"] for s in states(fast)[:3]]
    assert marks == [as_record(file_rows(b)[-1])[key] for b in batches(fast, stream)]
    assert fast.state == slow.state
    assert sorted(r["id"] for r in all_rows(fast, stream)) == [*range(1, 26), 100]
    mariadb.sql("INSERT INTO t VALUES (26, '2024-01-01 00:08:00', 8), "
                "(27, '2024-01-01 00:30:00', 30); UPDATE t SET n = 20, "
                "updated_at = '2024-01-01 00:20:00' WHERE id = 1;", db)
    fast2, slow2 = run((fast.state, slow.state))
    got = sorted((as_record(r) for r in all_rows(fast2, stream)), key=lambda r: r["id"])
    assert got == sorted(slow2.records(stream), key=lambda r: r["id"])
    assert [r["id"] for r in got] == [1, 24, 25, 26, 27]
    assert fast2.state == slow2.state


@pytest.mark.parametrize(("batch_config", "extra", "reason"), [
    ({"encoding": {"format": "jsonl"}}, {}, "the fast path writes Parquet"),
    ({"encoding": {"format": "parquet"}},
     {"stream_maps": {"STREAM": {"twice": "id * 2"}}}, "a stream map changes the records"),
])
def test_fallbacks_log_their_reason_and_send_the_same_rows(
    mariadb: MariaDBServer, tmp_path: Path, batch_config: dict[str, Any],
    extra: dict[str, Any], reason: str
) -> None:
    db = fresh_database(mariadb, FLOATS)
    stream = f"{db}-t"
    extra = json.loads(json.dumps(extra).replace("STREAM", stream))
    config = tap_config(mariadb, db, **extra)
    catalog = select(discover(TAP, tmp_path, config), {stream})
    config["batch_config"] = {**batch_config, "storage": {"root": tmp_path.as_uri()}}
    run = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert f"stream '{stream}': BATCH files of records ({reason})" in run.stderr
    assert FAST_PATH not in run.stderr
    assert len(batches(run, stream)) == 1


def test_a_column_the_reader_does_not_know_falls_back_naming_it(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    """MariaDB's inet6 and uuid (SQLAlchemy reflects neither): files of the RECORD path's
    records, and the reason names the first such column."""
    db = fresh_database(mariadb, """
        CREATE TABLE t (id int PRIMARY KEY, iv inet6, u uuid);
        INSERT INTO t VALUES (1, '::1', 'd8b0e7c2-1c0a-4a8e-9b7a-0b8f2b2f9a11'),
                             (2, NULL, NULL);""")
    fast, slow = both(tmp_path, mariadb, db, batch_size=10)
    assert (fast.returncode, slow.returncode) == (0, 0), fast.stderr + slow.stderr
    assert (f"stream '{db}-t': BATCH files of records (column iv has a type SQLAlchemy does "
            "not know, which the columnar reader does not read)") in fast.stderr
    assert all_rows(fast, f"{db}-t") == slow.records(f"{db}-t")


@pytest.mark.parametrize("break_it", ["drop table", "revoke"])
def test_unreadable_table_in_batch_mode_is_one_read_error_line(
    mariadb: MariaDBServer, tmp_path: Path, break_it: str
) -> None:
    """A table dropped after discovery, or a user without SELECT on it: exit 2, one line
    naming the stream and table, no traceback, no BATCH."""
    db = fresh_database(mariadb, FLOATS)
    stream = f"{db}-t"
    config = tap_config(mariadb, db)
    catalog = select(discover(TAP, tmp_path, config), {stream})
    if break_it == "drop table":
        mariadb.sql("DROP TABLE t", db)
    else:
        user = f"u_{db}"[:32]
        mariadb.sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw'; "
                    f"GRANT SELECT (id) ON `{db}`.t TO '{user}'@'127.0.0.1';")
        config.update(user=user, password="pw")
    config["batch_config"] = batch_settings(tmp_path, 10)
    run = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if " | ERROR " in line]
    assert len(errors) == 1, run.stderr
    assert f"stream '{stream}': reading {db}.t failed: " in errors[0], errors[0]
    assert "Traceback" not in run.stderr
    assert batches(run, stream) == []


def test_bad_partitions_is_one_line(mariadb: MariaDBServer, tmp_path: Path) -> None:
    db = fresh_database(mariadb, FLOATS)
    run = sync(tmp_path, mariadb, db, {"streams": []}, 10, partitions=0)
    assert run.returncode == 2
    assert "partitions: must be a positive integer, got 0" in run.stderr
    assert "Traceback" not in run.stderr


def test_batch_files_land_in_iceberg_with_every_value(
    mariadb: MariaDBServer, tmp_path: Path, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog],
) -> None:
    """The fast path's files through target-dativo-iceberg: the table's types and rows
    are those of the RECORD path's e2e test (tests/e2e/test_tap_mysql_types.py)."""
    db = fresh_database(mariadb, TYPES)
    root = tmp_path / "batches"
    config = tap_config(mariadb, db, partitions=2, batch_config={
        "encoding": {"format": "parquet"}, "batch_size": 2, "storage": {"root": root.as_uri()}})
    catalog = select(discover(TAP, tmp_path, config), {f"{db}-t"})
    (tmp_path / "tap.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    tap = subprocess.run([str(BIN / TAP), "--config", str(tmp_path / "tap.json"),
                          "--catalog", str(tmp_path / "catalog.json")], capture_output=True,
                         timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert tap.returncode == 0, tap.stderr.decode()
    assert FAST_PATH in tap.stderr.decode()
    assert b'"type":"RECORD"' not in tap.stdout.replace(b" ", b"")
    target = run_target(target_config(validation_mode="strict", batch_roots=[str(root)]),
                        tap.stdout, cwd=tmp_path)
    assert target.returncode == 0, target.stderr.decode()

    table = ("acme", "default", f"{db}_t")
    landed = open_catalog().load_table(table)
    assert {f.name: str(f.field_type) for f in landed.schema().fields} == EXPECTED_TYPES
    rows = sorted(read_table(open_catalog(), table).to_pylist(), key=lambda r: r["id"])
    decoded = [{name: (base64.b64decode(value) if name in BINARY and value is not None
                       else value) for name, value in row.items()} for row in rows]
    assert decoded == EXPECTED_ROWS
    for got, want in zip(decoded, EXPECTED_ROWS, strict=True):
        for name in ("ubi", "d"):  # Decimal equality ignores the exponent; keep the scale
            if want[name] is not None:
                assert got[name].as_tuple().exponent == want[name].as_tuple().exponent


def test_a_password_with_url_characters_reaches_connectorx(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    """connectorx takes a URL: a password with ``@:/%#?`` must arrive as typed
    (percent-encoded), and never be printed. The account exists only at 127.0.0.1, the
    host PyMySQL's TCP login comes from (connectorx is told ``prefer_socket=false``)."""
    db = fresh_database(mariadb, FLOATS)
    password = "p@ss:w/rd%25#?"
    mariadb.sql(f"CREATE USER 'odd'@'127.0.0.1' IDENTIFIED BY '{password}'; "
                f"GRANT SELECT ON `{db}`.* TO 'odd'@'127.0.0.1';")
    config = {**tap_config(mariadb, db), "user": "odd", "password": password}
    catalog = select(discover(TAP, tmp_path, config), {f"{db}-t"})
    config["batch_config"] = batch_settings(tmp_path, 10)
    run = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert FAST_PATH in run.stderr
    assert sorted(r["id"] for r in all_rows(run, f"{db}-t")) == [1, 2, 3, 4]
    assert password not in run.stderr
