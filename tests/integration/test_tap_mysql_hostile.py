"""tap-dativo-mysql on hostile source shapes and timing: table and column names with
backticks, spaces and dashes, non-Latin names, a value over max_allowed_packet, a TIME
that is a duration, and rows written while an INCREMENTAL read is under way."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN
from tests.integration.test_tap_mysql import (
    TAP,
    assert_one_line_error,
    fresh_database,
    incremental,
    tap_config,
)
from tests.integration.test_tap_mysql_cdc import log_based
from tests.services.batch_messages import all_rows, batch_settings
from tests.services.mariadb import MariaDBServer
from tests.services.tap_process import TapRun, discover, run_tap, select

ODD = """
CREATE TABLE `we``ird ta-ble` (`id` int PRIMARY KEY, `col tick` text, `x y` int,
  `back``tick` int, `two````ticks` text);
CREATE TABLE `keyed` (`k``ey` int PRIMARY KEY, `v` text);
INSERT INTO `keyed` VALUES (2, 'b'), (1, 'a');
CREATE TABLE `注文` (`番号` int PRIMARY KEY, `名前` varchar(20));
INSERT INTO `we``ird ta-ble` VALUES (1, 'a`b', 2, 3, 'c');
INSERT INTO `注文` VALUES (7, '寿司🍣');
"""


def test_quoted_and_non_latin_names_are_read_exactly(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    db = fresh_database(mariadb, ODD)
    config = tap_config(mariadb, db)
    catalog = discover(TAP, tmp_path, config)
    streams = {e["tap_stream_id"] for e in catalog["streams"]}
    assert streams == {f"{db}-we`ird ta-ble", f"{db}-注文", f"{db}-keyed"}
    keyed = next(e for e in catalog["streams"] if e["tap_stream_id"] == f"{db}-keyed")
    assert keyed["key_properties"] == ["k`ey"]
    run = run_tap(TAP, tmp_path, config, catalog=select(catalog, streams))
    assert run.returncode == 0, run.stderr
    assert run.records(f"{db}-we`ird ta-ble") == [
        {"id": 1, "col tick": "a`b", "x y": 2, "back`tick": 3, "two``ticks": "c"}]
    assert sorted(run.records(f"{db}-keyed"), key=lambda r: r["k`ey"]) == [
        {"k`ey": 1, "v": "a"}, {"k`ey": 2, "v": "b"}]
    assert run.records(f"{db}-注文") == [{"番号": 7, "名前": "寿司🍣"}]


def test_a_value_over_max_allowed_packet_arrives_whole(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    """20 MiB in one cell, over the server's and PyMySQL's 16 MiB max_allowed_packet: it
    can only be written with a larger limit, and is read back under the default one."""
    size = 20 * 1024 * 1024
    default = mariadb.sql("SELECT @@global.max_allowed_packet").strip()
    assert int(default) == 16 * 1024 * 1024
    db = fresh_database(mariadb, "CREATE TABLE docs (id int PRIMARY KEY, body longtext);")
    mariadb.sql("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
    try:
        mariadb.sql(f"INSERT INTO docs VALUES (1, concat(repeat('x', {size - 1}), '🎉'))", db)
    finally:  # and a new binlog file: BINLOG_GTID_POS cannot read past a 20 MiB event
        mariadb.sql(f"SET GLOBAL max_allowed_packet = {default}; FLUSH BINARY LOGS")
    config = tap_config(mariadb, db, fetch_rows=1)
    run = run_tap(TAP, tmp_path, config,
                  catalog=select(discover(TAP, tmp_path, config), {f"{db}-docs"}))
    assert run.returncode == 0, run.stderr
    [record] = run.records(f"{db}-docs")
    body = record["body"]
    assert record["id"] == 1 and len(body) == size and body.endswith("x🎉")
    assert set(body[:-1]) == {"x"}


@pytest.mark.parametrize(("value", "shown"), [
    ("838:59:59", "838:59:59"), ("-00:00:01", "-00:00:01"), ("24:00:00.5", "24:00:00.5")])
def test_a_time_that_is_a_duration_fails_naming_row_and_column(
    mariadb: MariaDBServer, tmp_path: Path, value: str, shown: str
) -> None:
    """MySQL's TIME holds ±838 hours; JSON Schema's time is a time of day, so such a
    value is an error with advice, never wrapped into a day."""
    db = fresh_database(mariadb, "CREATE TABLE shifts (id int PRIMARY KEY, t time(6));"
                                 f"INSERT INTO shifts VALUES (1, '12:00:00'), (2, '{value}');")
    config = tap_config(mariadb, db)
    run = run_tap(TAP, tmp_path, config,
                  catalog=select(discover(TAP, tmp_path, config), {f"{db}-shifts"}))
    assert_one_line_error(run, f"stream '{db}-shifts', row {{'id': 2}}: column t: the time "
                               f"{shown} is not a time of day")
    assert "TIME_TO_SEC(column)" in run.stderr
    assert not any(m["type"] == "STATE" for m in run.messages)


def test_incremental_rows_written_during_a_read_arrive_in_this_run_or_the_next(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    """A trickle: rows inserted and updated while the tap is mid-table (its stdout
    unread) are in this run or in the next one from its STATE; none is lost."""
    db = fresh_database(mariadb, "CREATE TABLE ev (id int PRIMARY KEY, v int, "
                                 "at datetime(6) NOT NULL) "
                                 "SELECT seq AS id, 0 AS v, "
                                 "'2024-01-01' + INTERVAL seq SECOND AS at "
                                 "FROM seq_1_to_20000;")
    config = tap_config(mariadb, db, fetch_rows=50)
    stream = f"{db}-ev"
    catalog = incremental(discover(TAP, tmp_path, config), stream, "at")
    (tmp_path / "tap.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    log = tmp_path / "tap.log"
    with log.open("wb") as stderr:
        tap = subprocess.Popen([str(BIN / TAP), "--config", str(tmp_path / "tap.json"),
                                "--catalog", str(tmp_path / "catalog.json")],
                               stdout=subprocess.PIPE, stderr=stderr)
    assert tap.stdout is not None
    first: list[dict[str, Any]] = []
    for line in tap.stdout:
        first.append(json.loads(line))
        if sum(m["type"] == "RECORD" for m in first) == 100:
            break
    # Mid-read: new rows after every bookmark, and an early row moved to the end.
    mariadb.sql("INSERT INTO ev SELECT 20000 + seq, 1, '2025-01-01' + INTERVAL seq SECOND "
                "FROM seq_1_to_500; UPDATE ev SET v = 2, at = '2025-06-01' WHERE id = 5",
                db)
    # Through the file object: communicate() would skip the lines it has buffered.
    with tap.stdout:
        first += [json.loads(line) for line in tap.stdout.read().splitlines()]
    assert tap.wait(timeout=120) == 0, log.read_text()
    first_run = TapRun(0, first, "")
    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=first_run.state)
    assert second.returncode == 0, second.stderr
    seen = {r["id"]: r["v"] for r in first_run.records(stream) + second.records(stream)}
    assert set(seen) == set(range(1, 20501))
    assert seen[5] == 2  # its update arrived after the first read of it
    assert all(seen[i] == 1 for i in range(20001, 20501))


def test_a_password_beyond_latin_1_logs_in_for_reads_and_the_binlog(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    """PyMySQL would send a str password as Latin-1: 'ä' as a byte no UTF-8 hash matches,
    '…' and emoji not at all (UnicodeEncodeError, exit 1)."""
    user, password = f"u{uuid.uuid4().hex[:8]}", "pä…ss🎉"
    db = fresh_database(mariadb, "CREATE TABLE t (id int PRIMARY KEY, v text);"
                                 "INSERT INTO t VALUES (1, 'a');")
    mariadb.sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'; "
                f"GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* "
                f"TO '{user}'@'127.0.0.1'; SET GLOBAL binlog_row_metadata = 'FULL'")
    config = {**tap_config(mariadb, db), "user": user, "password": password}
    catalog = log_based(discover(TAP, tmp_path, config), f"{db}-t")
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    mariadb.sql("INSERT INTO t VALUES (2, 'b')", db)
    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    assert [r["id"] for r in first.records(f"{db}-t")] == [1]
    assert [r["id"] for r in second.records(f"{db}-t")] == [2]
    fast = run_tap(TAP, tmp_path, {**config, "batch_config": batch_settings(tmp_path, 10)},
                   catalog=select(discover(TAP, tmp_path, config), {f"{db}-t"}))
    assert fast.returncode == 0, fast.stderr
    assert "connectorx" in fast.stderr  # the Parquet fast path, not files of records
    assert [r["id"] for r in all_rows(fast, f"{db}-t")] == [1, 2]
    assert password not in first.stderr + second.stderr + fast.stderr
