"""LOG_BASED CDC from the binlog, against the throwaway MariaDB (ROW binlog, FULL images).

First run: a snapshot consistent with a binlog position. Later runs: exactly the
inserts, updates and deletes committed while the tap was stopped, with the position in
state. A run killed mid-stream resumes from its last STATE without losing a change.
Wrong server settings and missing grants are one-line errors naming what to change.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog

from tests.conftest import BIN, emitted_states, read_table, run_target, singer_lines
from tests.integration.test_tap_mysql import TAP, TYPES, fresh_database, tap_config
from tests.services.batch_messages import all_rows, batch_settings, batches, file_rows
from tests.services.mariadb import MariaDBServer, running_mariadb
from tests.services.tap_process import TapRun, discover, run_tap, select

CDC = ("_sdc_binlog_pos", "_sdc_deleted_at")
SETUP = """
CREATE TABLE accounts (id int PRIMARY KEY, name varchar(20) NOT NULL, balance decimal(10,2),
                       opened datetime(6));
CREATE TABLE other (id int PRIMARY KEY, v text);
INSERT INTO accounts VALUES (1, 'ada', 10.00, '2024-01-01 00:00:00'),
                            (2, 'bob', 20.50, NULL), (3, 'cy', 0.01, '2024-03-01 12:30:00.5');
"""


@pytest.fixture(autouse=True)
def row_metadata(mariadb: MariaDBServer) -> None:
    """LOG_BASED needs binlog_row_metadata=FULL (column names in row events); the
    session's server starts with MariaDB's default, NO_LOG."""
    mariadb.sql("SET GLOBAL binlog_row_metadata = 'FULL'")


@pytest.fixture
def restore_settings(mariadb: MariaDBServer) -> Iterator[None]:
    yield
    mariadb.sql("SET GLOBAL binlog_format = 'ROW'; SET GLOBAL binlog_row_image = 'FULL'; "
                "SET GLOBAL binlog_row_metadata = 'FULL'")


def log_based(catalog: dict[str, Any], *streams: str) -> dict[str, Any]:
    """Select only ``streams``, LOG_BASED (in the metadata and on the entry, as Meltano
    writes it)."""
    catalog = select(catalog, set(streams))
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] in streams:
            for item in entry["metadata"]:
                if not item["breadcrumb"]:
                    item["metadata"]["replication-method"] = "LOG_BASED"
            entry["replication_method"] = "LOG_BASED"
    return catalog


def without_cdc(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in CDC} for r in records]


def states(run: TapRun) -> list[dict[str, Any]]:
    return [m["value"] for m in run.messages if m["type"] == "STATE"]


def setup(mariadb: MariaDBServer, tmp_path: Path, sql: str = SETUP,
          table: str = "accounts", **extra: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A fresh database, the tap's config, and a catalog with ``<db>-<table>`` LOG_BASED."""
    db = fresh_database(mariadb, sql)
    config = tap_config(mariadb, db, **extra)
    return db, config, log_based(discover(TAP, tmp_path, config), f"{db}-{table}")


def test_snapshot_then_exactly_the_changes_made_while_stopped(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    db, config, catalog = setup(mariadb, tmp_path)
    stream = f"{db}-accounts"
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    snapshot = first.records(stream)
    assert without_cdc(snapshot) == [
        {"id": 1, "name": "ada", "balance": "10.00", "opened": "2024-01-01T00:00:00"},
        {"id": 2, "name": "bob", "balance": "20.50", "opened": None},
        {"id": 3, "name": "cy", "balance": "0.01", "opened": "2024-03-01T12:30:00.500000"},
    ]
    assert {r["_sdc_deleted_at"] for r in snapshot} == {None}
    bookmark = first.state["bookmarks"][stream]
    file, pos = mariadb.sql("SHOW MASTER STATUS").split("\t")[:2]
    assert (bookmark["log_file"], bookmark["log_pos"]) == (file, int(pos))
    assert bookmark["gtid"] == mariadb.sql("SELECT @@GLOBAL.gtid_binlog_pos").strip()
    (point,) = {r["_sdc_binlog_pos"] for r in snapshot}
    assert point == (int(file.rsplit(".", 1)[1]) << 32) | int(pos)
    schema = next(m for m in first.messages if m["type"] == "SCHEMA")["schema"]
    assert schema["properties"]["_sdc_deleted_at"]["format"] == "date-time"
    assert schema["properties"]["_sdc_binlog_pos"]["type"] == ["integer", "null"]

    mariadb.sql("INSERT INTO accounts VALUES (4, 'dee', 5.25, '2024-05-05 05:05:05.5');"
                "UPDATE accounts SET balance = 11.00 WHERE id = 1;"
                "DELETE FROM accounts WHERE id = 2;"
                "START TRANSACTION; INSERT INTO accounts VALUES (5, 'eve', NULL, NULL);"
                "UPDATE accounts SET name = 'cyd' WHERE id = 3;"
                "DELETE FROM accounts WHERE id = 4; COMMIT;"
                # ignored: another table of the database, the same table name elsewhere
                "INSERT INTO other VALUES (1, 'x');", db)
    elsewhere = fresh_database(mariadb, SETUP)
    mariadb.sql("UPDATE accounts SET name = 'zed'", elsewhere)
    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    changes = second.records(stream)
    deleted = [r.pop("_sdc_deleted_at") for r in changes]
    positions = [r.pop("_sdc_binlog_pos") for r in changes]
    assert changes == [
        {"id": 4, "name": "dee", "balance": "5.25", "opened": "2024-05-05T05:05:05.500000"},
        {"id": 1, "name": "ada", "balance": "11.00", "opened": "2024-01-01T00:00:00"},
        {"id": 2, "name": "bob", "balance": "20.50", "opened": None},  # the row before
        {"id": 5, "name": "eve", "balance": None, "opened": None},
        {"id": 3, "name": "cyd", "balance": "0.01", "opened": "2024-03-01T12:30:00.500000"},
        {"id": 4, "name": "dee", "balance": "5.25", "opened": "2024-05-05T05:05:05.500000"},
    ]
    assert [d is not None for d in deleted] == [False, False, True, False, False, True]
    assert all(d.endswith("+00:00") for d in deleted if d)
    assert positions == sorted(positions) and positions[0] > point
    assert {m["stream"] for m in second.messages if m["type"] == "RECORD"} == {stream}
    new = second.state["bookmarks"][stream]
    file, pos = mariadb.sql("SHOW MASTER STATUS").split("\t")[:2]
    assert (new["log_file"], new["log_pos"]) == (file, int(pos))
    # MariaDB's GTID position, moved by every transaction read (of any table)
    assert new["gtid"] == mariadb.sql("SELECT @@GLOBAL.gtid_binlog_pos").strip() != (
        bookmark["gtid"])

    third = run_tap(TAP, tmp_path, config, catalog=catalog, state=second.state)
    assert third.returncode == 0, third.stderr
    assert third.records(stream) == []
    assert third.state["bookmarks"][stream]["log_pos"] == new["log_pos"]


def test_two_log_based_streams_each_get_their_own_changes_and_position(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    db = fresh_database(mariadb, SETUP)
    config = tap_config(mariadb, db)
    streams = (f"{db}-accounts", f"{db}-other")
    catalog = log_based(discover(TAP, tmp_path, config), *streams)
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    assert (len(first.records(streams[0])), len(first.records(streams[1]))) == (3, 0)
    mariadb.sql("INSERT INTO other VALUES (1, 'a'), (2, 'b'); DELETE FROM accounts WHERE id = 1;"
                "UPDATE other SET v = 'c' WHERE id = 2", db)
    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    assert [(r["id"], r["_sdc_deleted_at"] is not None) for r in second.records(streams[0])
            ] == [(1, True)]
    assert without_cdc(second.records(streams[1])) == [
        {"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 2, "v": "c"}]
    bookmarks = second.state["bookmarks"]
    assert bookmarks[streams[0]]["log_pos"] == bookmarks[streams[1]]["log_pos"]


def test_parquet_batch_config_sends_files_of_change_records(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    """LOG_BASED refuses the connectorx fast path (it reads a table, not changes) and
    sends Parquet BATCH files of the records the RECORD path sends."""
    db, config, catalog = setup(mariadb, tmp_path)
    stream = f"{db}-accounts"
    config["batch_config"] = batch_settings(tmp_path, 2)
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    assert "BATCH files of records (LOG_BASED reads changes, not a table)" in first.stderr
    assert first.records(stream) == []
    assert [len(file_rows(b)) for b in batches(first, stream)] == [2, 1]
    assert [(r["id"], r["_sdc_deleted_at"]) for r in all_rows(first, stream)] == [
        (1, None), (2, None), (3, None)]
    mariadb.sql("DELETE FROM accounts WHERE id = 2", db)
    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    assert [(r["id"], r["name"], r["_sdc_deleted_at"] is not None)
            for r in all_rows(second, stream)] == [(2, "bob", True)]
    assert second.state["bookmarks"][stream]["log_pos"] > first.state["bookmarks"][stream][
        "log_pos"]


def test_changes_across_binlog_files_arrive_and_move_the_state_to_the_new_file(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    db, config, catalog = setup(mariadb, tmp_path)
    stream = f"{db}-accounts"
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    mariadb.sql("INSERT INTO accounts VALUES (4, 'dee', NULL, NULL); FLUSH BINARY LOGS; "
                "UPDATE accounts SET name = 'dot' WHERE id = 4; FLUSH BINARY LOGS; "
                "FLUSH BINARY LOGS; DELETE FROM accounts WHERE id = 4", db)
    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    changes = second.records(stream)
    assert [(r["id"], r["name"], r["_sdc_deleted_at"] is not None) for r in changes] == [
        (4, "dee", False), (4, "dot", False), (4, "dot", True)]
    positions = [r["_sdc_binlog_pos"] for r in changes]
    assert positions == sorted(positions) and len({p >> 32 for p in positions}) == 3
    file = mariadb.sql("SHOW MASTER STATUS").split("\t")[0]
    assert second.state["bookmarks"][stream]["log_file"] == file != (
        first.state["bookmarks"][stream]["log_file"])


def test_truncate_is_a_warning_not_deletes(mariadb: MariaDBServer, tmp_path: Path) -> None:
    db, config, catalog = setup(mariadb, tmp_path)
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    mariadb.sql("TRUNCATE TABLE other; TRUNCATE TABLE accounts; "
                "INSERT INTO accounts VALUES (9, 'new', NULL, NULL)", db)
    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    assert [r["id"] for r in second.records(f"{db}-accounts")] == [9]
    warnings = [line for line in second.stderr.splitlines() if "TRUNCATE" in line]
    assert len(warnings) == 1
    assert (f"stream '{db}-accounts': TRUNCATE of {db}.accounts at binlog.") in warnings[0]
    assert "is not sent as deletes; sync the table once with FULL_TABLE" in warnings[0]


EXTRA = """
INSERT INTO t (id, f, dbl, bin, y, st, c) VALUES
  (4, 0.1, 0.30000000000000004, x'00ff0000', 0, '', 'ab '),
  (5, 1.23456789, 1.1, x'00000000', 2000, 'c,a', NULL);
SET SESSION sql_mode = '';
CREATE TABLE z (id int PRIMARY KEY, d date, dtm datetime(6), ts timestamp NULL,
                ts6 timestamp(6) NULL);
INSERT INTO z VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00',
                      '0000-00-00 00:00:00'),
                     (2, '2024-01-01', NULL, '1970-01-01 00:00:01', '2038-01-19 03:14:07.999999');
CREATE TABLE fl (id int PRIMARY KEY, f float, f2 float(10,3), d double, d2 double(12,4),
                 fu float unsigned);
INSERT INTO fl VALUES (1, 0.1, 1234567.125, 0.1, 12345678.1234, 1.2345678),
  (2, 3.4e38, 1.2345, 1e-300, -0.00005, 0), (3, -1.17549e-38, -0.001, 5e-324, 1, 3.4e38),
  (4, 16777217, 0, -1.7976931348623157e308, 99999999.9999, 1e-45);
"""


@pytest.mark.parametrize("table", ["t", "z", "fl"])
def test_change_values_equal_full_table_values(
    mariadb: MariaDBServer, tmp_path: Path, table: str
) -> None:
    """Rows of every type, inserted and then deleted: the binlog's after and before
    images give the same records as a FULL_TABLE read of the rows they copy."""
    db = fresh_database(mariadb, TYPES + EXTRA)
    config = tap_config(mariadb, db)
    stream = f"{db}-{table}"
    full = run_tap(TAP, tmp_path, config, catalog=select(discover(TAP, tmp_path, config),
                                                          {stream}))
    assert full.returncode == 0, full.stderr
    catalog = log_based(discover(TAP, tmp_path, config), stream)
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    assert without_cdc(first.records(stream)) == full.records(stream)  # the snapshot
    columns = mariadb.sql(f"SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM "
                          f"information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' AND "
                          f"TABLE_NAME = '{table}' AND COLUMN_NAME != 'id'").strip()
    mariadb.sql(f"SET SESSION sql_mode = ''; INSERT INTO {table} SELECT id + 100, {columns} "
                f"FROM {table}; DELETE FROM {table} WHERE id > 100", db)
    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    changes = second.records(stream)
    expected = full.records(stream)
    assert len(changes) == 2 * len(expected) >= 4
    inserted, deleted = changes[:len(expected)], changes[len(expected):]
    assert {r["_sdc_deleted_at"] is None for r in inserted} == {True}
    assert {r["_sdc_deleted_at"] is None for r in deleted} == {False}
    for images in (inserted, deleted):
        assert [{**r, "id": r["id"] - 100} for r in without_cdc(images)] == expected
    if table == "z":
        assert "column d is the zero date 0000-00-00; sent as null" in second.stderr


def test_zero_date_change_fails_naming_the_row_with_zero_dates_fail(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    db, config, catalog = setup(mariadb, tmp_path, "CREATE TABLE z (id int PRIMARY KEY, d date);",
                                table="z", zero_dates="fail")
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    mariadb.sql("SET SESSION sql_mode = ''; INSERT INTO z VALUES (7, '0000-00-00')", db)
    failed = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert_one_line_error(failed, f"stream '{db}-z', row {{'id': 7}}: column d is the zero "
                                  "date 0000-00-00; set zero_dates: null")


def assert_one_line_error(run: TapRun, text: str) -> None:
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line or "rror:" in line]
    assert len(errors) == 1, run.stderr
    assert text in errors[0], run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(("setting", "value", "wanted"), [
    ("binlog_format", "STATEMENT", "ROW"),
    ("binlog_format", "MIXED", "ROW"),
    ("binlog_row_image", "MINIMAL", "FULL"),
    ("binlog_row_metadata", "MINIMAL", "FULL"),
])
def test_wrong_binlog_setting_is_one_line_naming_the_setting(
    mariadb: MariaDBServer, tmp_path: Path, restore_settings: None,
    setting: str, value: str, wanted: str,
) -> None:
    db, config, catalog = setup(mariadb, tmp_path)
    mariadb.sql(f"SET GLOBAL {setting} = '{value}'")
    run = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert_one_line_error(run, f"stream '{db}-accounts': the server's {setting} is {value}, "
                               f"LOG_BASED needs {wanted}")
    assert (f"set {setting}={wanted} in the server's my.cnf [mysqld] and restart it (or run "
            f"SET GLOBAL {setting}='{wanted}' until then)") in run.stderr
    assert run.records(f"{db}-accounts") == []


def test_binlog_off_is_one_line_naming_log_bin(tmp_path: Path) -> None:
    """A server started without --log-bin (log_bin is not a run-time setting)."""
    with running_mariadb(log_bin=False) as server:
        db, config, catalog = setup(server, tmp_path)
        run = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert_one_line_error(run, f"stream '{db}-accounts': the server's binary log is off "
                               "(log_bin); LOG_BASED reads it: set log_bin=binlog, "
                               "server_id=1 and binlog_format=ROW in the server's my.cnf "
                               "[mysqld] and restart it")
    assert run.records(f"{db}-accounts") == []


def limited_user(mariadb: MariaDBServer, grants: str) -> tuple[str, str]:
    """A login with only ``grants`` (at both hosts the tests connect from)."""
    user, password = f"u{uuid.uuid4().hex[:8]}", "limited-pw"
    mariadb.sql("".join(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'; "
                        f"GRANT {grants} ON *.* TO '{user}'@'{host}'; "
                        for host in ("localhost", "127.0.0.1")))
    return user, password


@pytest.mark.parametrize(("grants", "missing"), [
    ("SELECT", "REPLICATION CLIENT"),
    ("SELECT, REPLICATION CLIENT", "REPLICATION SLAVE"),
])
def test_missing_replication_grant_is_one_line_naming_it(
    mariadb: MariaDBServer, tmp_path: Path, grants: str, missing: str
) -> None:
    db, config, catalog = setup(mariadb, tmp_path)
    user, password = limited_user(mariadb, grants)
    limited = {**config, "user": user, "password": password}
    run = run_tap(TAP, tmp_path, limited, catalog=catalog)
    assert_one_line_error(run, f"GRANT {missing} ON *.* TO '{user}'@'")
    assert run.records(f"{db}-accounts") == []  # before the snapshot, not after
    assert password not in run.stderr


def test_state_of_another_server_is_refused(mariadb: MariaDBServer, tmp_path: Path) -> None:
    """A failover (or a changed host) leaves a file and offset of another server."""
    db, config, catalog = setup(mariadb, tmp_path)
    stream = f"{db}-accounts"
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    assert first.state["bookmarks"][stream]["server_id"] == 1
    moved = json.loads(json.dumps(first.state))
    moved["bookmarks"][stream]["server_id"] = 7
    run = run_tap(TAP, tmp_path, config, catalog=catalog, state=moved)
    assert_one_line_error(run, f"stream '{stream}': the state's binlog position binlog.")
    assert ("is of the server with server_id 7, this is server_id 1 (a failover, or another "
            "server): clear the stream's state") in run.stderr


def test_server_id_of_the_source_itself_is_refused(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    db, config, catalog = setup(mariadb, tmp_path, server_id=1)
    run = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert_one_line_error(run, "server_id: 1 is the source server's own server_id; set "
                               "another (or leave it unset)")
    config["server_id"] = 4242
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    mariadb.sql("INSERT INTO accounts VALUES (4, 'dee', NULL, NULL)", db)
    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    assert "as replica server_id 4242" in second.stderr
    assert [r["id"] for r in second.records(f"{db}-accounts")] == [4]


def test_dropped_table_is_one_line_saying_to_rediscover(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    db, config, catalog = setup(mariadb, tmp_path)
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    mariadb.sql("DROP TABLE accounts", db)
    run = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert_one_line_error(run, f"stream '{db}-accounts': table {db}.accounts no longer "
                               "exists; run --discover again")


def test_state_in_a_purged_binlog_file_says_to_clear_the_state(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    db, config, catalog = setup(mariadb, tmp_path)
    stream = f"{db}-accounts"
    state = {"bookmarks": {stream: {"log_file": "binlog.000000", "log_pos": 4, "gtid": None}}}
    run = run_tap(TAP, tmp_path, config, catalog=catalog, state=state)
    assert_one_line_error(run, f"stream '{stream}': binlog file binlog.000000 of the stream's "
                               "state is no longer on the server")
    assert "clear the stream's state" in run.stderr


@pytest.mark.parametrize("shape", ["small transactions", "one big transaction"])
def test_killed_run_resumes_from_its_last_state_without_losing_a_change(
    mariadb: MariaDBServer, tmp_path: Path, shape: str
) -> None:
    db, config, catalog = setup(mariadb, tmp_path)
    stream = f"{db}-accounts"
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    # Each statement of one `mariadb -e` commits on its own; singer-sdk writes a STATE
    # every 10,000 records.
    inserts = [f"INSERT INTO accounts (id, name) SELECT seq, 'n' FROM "
               f"seq_{100 + t * 1000}_to_{99 + (t + 1) * 1000};" for t in range(25)]
    if shape == "one big transaction":
        inserts = ["START TRANSACTION;", *inserts, "COMMIT;"]
    mariadb.sql("".join(inserts), db)
    expected = set(range(100, 25_100))

    files = tmp_path / "killed"
    files.mkdir()
    for name, value in (("config", config), ("catalog", catalog), ("state", first.state)):
        (files / f"{name}.json").write_text(json.dumps(value))
    tap = subprocess.Popen(
        [str(BIN / TAP), *(f"--{name}={files / name}.json"
                           for name in ("config", "catalog", "state"))],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert tap.stdout is not None
    delivered: list[int] = []  # records a target would have committed with that STATE
    pending: list[int] = []
    resume = first.state
    for count, line in enumerate(tap.stdout):
        message = json.loads(line)
        if message["type"] == "RECORD":
            pending.append(message["record"]["id"])
        elif message["type"] == "STATE":
            delivered += pending
            pending = []
            resume = message["value"]
        if count >= 15_000:
            break
    tap.kill()  # SIGKILL: no cleanup, no final STATE
    tap.wait()
    tap.stdout.close()
    moved = resume["bookmarks"][stream]["log_pos"] != first.state["bookmarks"][stream]["log_pos"]
    # A STATE inside the big transaction keeps the position before it.
    assert moved == (shape == "small transactions")
    assert len(pending) > 0

    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=resume)
    assert second.returncode == 0, second.stderr
    again = [r["id"] for r in second.records(stream)]
    assert set(delivered) | set(again) == expected
    assert len(again) == len(set(again))
    # Resuming re-sends at most the transaction that was open at the STATE.
    overlap = set(delivered) & set(again)
    assert len(overlap) <= (1000 if moved else len(expected))


def test_deletes_land_in_iceberg_with_their_deleted_at(
    mariadb: MariaDBServer, tmp_path: Path, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog],
) -> None:
    db, config, catalog = setup(mariadb, tmp_path)
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    mariadb.sql("UPDATE accounts SET balance = 0.50 WHERE id = 3; "
                "DELETE FROM accounts WHERE id = 2", db)
    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    loaded = run_target(target_config(validation_mode="strict"),
                        singer_lines(first.messages + second.messages[1:]))
    assert loaded.returncode == 0, loaded.stderr.decode()
    assert emitted_states(loaded)[-1] == second.state
    rows = read_table(open_catalog(), ("acme", "default", f"{db}_accounts")).to_pylist()
    deletes = [(r["id"], r["name"]) for r in rows if r["_sdc_deleted_at"] is not None]
    assert deletes == [(2, "bob")]
    assert sorted((r["id"], str(r["balance"])) for r in rows) == [
        (1, "10.00"), (2, "20.50"), (2, "20.50"), (3, "0.01"), (3, "0.50")]
