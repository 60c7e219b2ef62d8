"""tap-dativo-mysql on hostile source shapes: table and column names with backticks,
spaces and dashes, non-Latin names, and an 8 MiB value, read whole and unchanged."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_tap_mysql import TAP, fresh_database, tap_config
from tests.services.mariadb import MariaDBServer
from tests.services.tap_process import discover, run_tap, select

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


def test_an_8_mib_value_arrives_whole(mariadb: MariaDBServer, tmp_path: Path) -> None:
    size = 8 * 1024 * 1024  # under the server's default max_allowed_packet (16 MiB)
    db = fresh_database(mariadb, "CREATE TABLE docs (id int PRIMARY KEY, body longtext);"
                                 f"INSERT INTO docs VALUES (1, repeat('x', {size}));")
    config = tap_config(mariadb, db, fetch_rows=1)
    run = run_tap(TAP, tmp_path, config,
                  catalog=select(discover(TAP, tmp_path, config), {f"{db}-docs"}))
    assert run.returncode == 0, run.stderr
    [record] = run.records(f"{db}-docs")
    assert record["id"] == 1 and len(record["body"]) == size and set(record["body"]) == {"x"}
