"""tap-dativo-mysql as a process against a throwaway MariaDB server.

Discovery (keys, stream names, filters), FULL_TABLE and INCREMENTAL syncs with their
exact records, every type with its extremes, and the one-line errors.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN
from tests.services.mariadb import MariaDBServer
from tests.services.tap_process import TapRun, discover, run_tap, select

TAP = "tap-dativo-mysql"
MAX_UNSIGNED_BIGINT = 2**64 - 1


def fresh_database(mariadb: MariaDBServer, sql: str) -> str:
    """A new database with ``sql`` applied; returns its name."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    mariadb.create_database(name)
    mariadb.sql(sql, name)
    return name


def tap_config(mariadb: MariaDBServer, database: str, **extra: Any) -> dict[str, Any]:
    return {"host": mariadb.host, "port": mariadb.port, "user": mariadb.user,
            "password": mariadb.password, "database": database, **extra}


def incremental(catalog: dict[str, Any], stream: str, key: str) -> dict[str, Any]:
    """Select only ``stream``, INCREMENTAL on ``key`` (as Meltano's metadata writes it)."""
    catalog = select(catalog, {stream})
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == stream:
            for item in entry["metadata"]:
                if not item["breadcrumb"]:
                    item["metadata"].update({"replication-method": "INCREMENTAL",
                                             "replication-key": key})
            entry.update({"replication_method": "INCREMENTAL", "replication_key": key})
    return catalog


SHOP = """
CREATE TABLE orders (id int PRIMARY KEY, amount decimal(10,2) NOT NULL, note text,
                     updated_at datetime(6) NOT NULL);
CREATE TABLE order_lines (order_id int, line int, sku text, PRIMARY KEY (order_id, line));
CREATE TABLE events (code varchar(20) NOT NULL, at date, UNIQUE KEY by_code (code));
CREATE TABLE audit_log (msg text);
INSERT INTO orders VALUES (1, 10.50, 'first', '2024-01-01 10:00:00'),
                          (2, 250.00, NULL, '2024-01-02 10:00:00'),
                          (3, 7.00, 'third', '2024-01-02 10:00:00');
"""


@pytest.fixture(scope="module")
def shop(mariadb: MariaDBServer) -> str:
    return fresh_database(mariadb, SHOP)


def test_discovery_names_streams_db_table_with_primary_or_unique_keys(
    mariadb: MariaDBServer, shop: str, tmp_path: Path
) -> None:
    catalog = discover(TAP, tmp_path, tap_config(mariadb, shop))
    keys = {e["tap_stream_id"]: e["key_properties"] for e in catalog["streams"]}
    assert keys == {f"{shop}-orders": ["id"], f"{shop}-order_lines": ["order_id", "line"],
                    f"{shop}-events": ["code"], f"{shop}-audit_log": []}


def test_filters_pick_databases_and_tables_by_glob(
    mariadb: MariaDBServer, shop: str, tmp_path: Path
) -> None:
    other = fresh_database(mariadb, "CREATE TABLE orders (id int PRIMARY KEY);")
    config = tap_config(mariadb, shop, filter_dbs=[shop, other], filter_tables=["order*"])
    names = {e["tap_stream_id"] for e in discover(TAP, tmp_path, config)["streams"]}
    assert names == {f"{shop}-orders", f"{shop}-order_lines", f"{other}-orders"}
    config = tap_config(mariadb, shop, filter_tables=[f"{shop}.*_log"])
    names = {e["tap_stream_id"] for e in discover(TAP, tmp_path, config)["streams"]}
    assert names == {f"{shop}-audit_log"}


def test_full_table_emits_every_row(mariadb: MariaDBServer, shop: str, tmp_path: Path) -> None:
    config = tap_config(mariadb, shop, fetch_rows=2)
    catalog = select(discover(TAP, tmp_path, config), {f"{shop}-orders"})
    run = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert sorted(run.records(f"{shop}-orders"), key=lambda r: r["id"]) == [
        {"id": 1, "amount": "10.50", "note": "first", "updated_at": "2024-01-01T10:00:00"},
        {"id": 2, "amount": "250.00", "note": None, "updated_at": "2024-01-02T10:00:00"},
        {"id": 3, "amount": "7.00", "note": "third", "updated_at": "2024-01-02T10:00:00"},
    ]


def test_decimals_are_json_numbers_with_every_digit_without_singer_decimal(
    mariadb: MariaDBServer, shop: str, tmp_path: Path
) -> None:
    config = tap_config(mariadb, shop, use_singer_decimal=False)
    catalog = select(discover(TAP, tmp_path, config), {f"{shop}-orders"})
    run = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert [r["amount"] for r in run.records(f"{shop}-orders")] == [10.5, 250, 7]
    schema = next(m for m in run.messages if m["type"] == "SCHEMA")["schema"]
    assert schema["properties"]["amount"] == {"type": ["number", "null"],
                                              "x-sql-datatype": "decimal(10,2)"}


def test_incremental_rerun_from_state_loads_only_new_and_changed_rows(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    db = fresh_database(mariadb, SHOP)
    config = tap_config(mariadb, db)
    stream = f"{db}-orders"
    catalog = incremental(discover(TAP, tmp_path, config), stream, "updated_at")
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    assert [r["id"] for r in first.records(stream)] == [1, 2, 3]
    mariadb.sql("INSERT INTO orders VALUES (4, 1.00, 'new', '2024-01-03 00:00:00.5');"
                "UPDATE orders SET note = 'changed', updated_at = '2024-01-04 00:00:00' "
                "WHERE id = 1", db)
    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    # >= re-reads the rows of the last bookmark (ids 2 and 3), in primary key order.
    assert [(r["id"], r["note"]) for r in second.records(stream)] == [
        (2, None), (3, "third"), (4, "new"), (1, "changed")]
    bookmark = second.state["bookmarks"][stream]["replication_key_value"]
    assert bookmark == "2024-01-04T00:00:00"


TYPES = """
CREATE TABLE t (
  id int PRIMARY KEY, b tinyint(1), ti tinyint, si smallint unsigned, mi mediumint,
  i int unsigned, bi bigint, ubi bigint unsigned, d65 decimal(65,30), d decimal(10,2),
  f float, dbl double, dt date, dtm datetime(6), ts timestamp(6) NULL, tm time(6), y year,
  c char(3), vc varchar(50), tx text, bin binary(4), vb varbinary(10), bl blob,
  e enum('red','green'), st set('a','b','c'), j json, bt bit(64), bt3 bit(3));
SET time_zone = '+02:00';
INSERT INTO t VALUES
 (1, 1, -128, 65535, -8388608, 4294967295, -9223372036854775808, 18446744073709551615,
  '12345678901234567890123456789012345.678901234567890123456789012345', -12345678.91,
  1.5, 2.25, '9999-12-31', '2024-02-29 23:59:59.123456', '2024-06-01 02:00:00.000001',
  '23:59:59.5', 2155, 'abc', 'emoji 🎉 ok', 'κόσμε', x'00ff10ab', x'', x'cafe',
  'green', 'a,c', '{"k": [1, 2.5, null]}', 18446744073709551615, b'101'),
 (2, 0, 127, 0, 8388607, 0, 9223372036854775807, 0, '0', '0.00', -0.5, -1e300,
  '1000-01-01', '1000-01-01 00:00:00', '1970-01-01 02:00:01', '00:00:00', 1901, '',
  '', '', x'00000000', x'01', x'', 'red', '', '[]', b'0', b'0'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""


def test_every_type_and_its_extremes(mariadb: MariaDBServer, tmp_path: Path) -> None:
    db = fresh_database(mariadb, TYPES)
    config = tap_config(mariadb, db)
    run = run_tap(TAP, tmp_path, config,
                  catalog=select(discover(TAP, tmp_path, config), {f"{db}-t"}))
    assert run.returncode == 0, run.stderr
    rows = {r["id"]: r for r in run.records(f"{db}-t")}
    assert rows[1] == {
        "id": 1, "b": True, "ti": -128, "si": 65535, "mi": -8388608, "i": 4294967295,
        "bi": -9223372036854775808, "ubi": str(MAX_UNSIGNED_BIGINT),
        "d65": "12345678901234567890123456789012345.678901234567890123456789012345",
        "d": "-12345678.91", "f": 1.5, "dbl": 2.25, "dt": "9999-12-31",
        "dtm": "2024-02-29T23:59:59.123456", "ts": "2024-06-01T00:00:00.000001+00:00",
        "tm": "23:59:59.500000", "y": 2155, "c": "abc", "vc": "emoji 🎉 ok", "tx": "κόσμε",
        "bin": "AP8Qqw==", "vb": "", "bl": "yv4=", "e": "green", "st": "a,c",
        "j": '{"k": [1, 2.5, null]}', "bt": "1" * 64, "bt3": "101"}
    assert rows[2] == {
        "id": 2, "b": False, "ti": 127, "si": 0, "mi": 8388607, "i": 0,
        "bi": 9223372036854775807, "ubi": "0", "d65": "0." + "0" * 30, "d": "0.00",
        "f": -0.5,
        "dbl": -1e300, "dt": "1000-01-01", "dtm": "1000-01-01T00:00:00",
        "ts": "1970-01-01T00:00:01+00:00", "tm": "00:00:00", "y": 1901, "c": "", "vc": "",
        "tx": "", "bin": "AAAAAA==", "vb": "AQ==", "bl": "", "e": "red", "st": "",
        "j": "[]", "bt": "0" * 64, "bt3": "000"}
    assert rows[3] == {"id": 3, **{k: None for k in rows[1] if k != "id"}}
    props = run.messages[0]["schema"]["properties"] if run.messages[0]["type"] == "SCHEMA" \
        else {}
    assert props["ubi"]["x-sql-datatype"] == "decimal(20,0)"
    assert props["d"]["x-sql-datatype"] == "decimal(10,2)"
    assert props["ts"]["x-sql-datatype"] == "timestamp with time zone"


ZERO = """
SET SESSION sql_mode = '';
CREATE TABLE z (id int PRIMARY KEY, d date, t datetime);
INSERT INTO z VALUES (1, '0000-00-00', '0000-00-00 00:00:00'), (2, '2024-01-01', NULL);
"""


@pytest.mark.parametrize("mode", ["null", "fail"])
def test_zero_dates_are_null_with_a_warning_or_fail(
    mariadb: MariaDBServer, tmp_path: Path, mode: str
) -> None:
    db = fresh_database(mariadb, ZERO)
    config = tap_config(mariadb, db, zero_dates=mode)
    run = run_tap(TAP, tmp_path, config,
                  catalog=select(discover(TAP, tmp_path, config), {f"{db}-z"}))
    if mode == "null":
        assert run.returncode == 0, run.stderr
        assert run.records(f"{db}-z") == [{"id": 1, "d": None, "t": None},
                                           {"id": 2, "d": "2024-01-01", "t": None}]
        assert "row {'id': 1}: column d is the zero date 0000-00-00; sent as null" in run.stderr
    else:
        assert_one_line_error(run, f"stream '{db}-z', row {{'id': 1}}: column d is the zero "
                                   "date 0000-00-00; set zero_dates: null")


def assert_one_line_error(run: TapRun, text: str, secret: str | None = None) -> None:
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line or "rror:" in line]
    assert len(errors) == 1, run.stderr
    assert text in errors[0]
    assert "Traceback" not in run.stderr
    if secret:
        assert secret not in run.stderr
        assert secret not in "".join(str(m) for m in run.messages)


def test_wrong_password_is_one_line_without_the_password(
    mariadb: MariaDBServer, shop: str, tmp_path: Path
) -> None:
    config = tap_config(mariadb, shop, password="wrong-s3cret-pw")
    run = run_tap(TAP, tmp_path, config, "--discover")
    assert_one_line_error(run, f"cannot connect to mysql+pymysql://{mariadb.user}:***@"
                               f"127.0.0.1:{mariadb.port}/{shop}", secret="wrong-s3cret-pw")
    assert "Access denied" in run.stderr


def test_unknown_database_is_one_line_without_the_password(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    run = run_tap(TAP, tmp_path, tap_config(mariadb, "no_such_db"), "--discover")
    assert_one_line_error(run, "Unknown database 'no_such_db'", secret=mariadb.password)


def test_full_table_streams_the_result_instead_of_buffering_it(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    """With stdout unread the tap blocks mid-table: an unbuffered cursor leaves the
    SELECT running on the server (a buffered one would have read every row first)."""
    db = fresh_database(mariadb, "CREATE TABLE big (id int PRIMARY KEY, pad char(100)) "
                                 "SELECT seq AS id, repeat('x', 100) AS pad "
                                 "FROM seq_1_to_300000;")
    config = tap_config(mariadb, db, fetch_rows=100)
    catalog = select(discover(TAP, tmp_path, config), {f"{db}-big"})
    (tmp_path / "tap.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    tap = subprocess.Popen([str(BIN / TAP), "--config", str(tmp_path / "tap.json"),
                            "--catalog", str(tmp_path / "catalog.json")],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        query = (f"SELECT count(*) FROM information_schema.PROCESSLIST WHERE db = '{db}' "
                 "AND info LIKE 'SELECT%big%'")
        deadline = time.monotonic() + 60
        running = "0"
        while running == "0" and time.monotonic() < deadline:
            time.sleep(0.5)
            running = mariadb.sql(query).strip()
        time.sleep(2)  # well past the time the whole result takes to arrive
        assert mariadb.sql(query).strip() == "1"
        assert tap.poll() is None
    finally:
        tap.kill()
        tap.wait()
        assert tap.stdout is not None
        tap.stdout.close()
