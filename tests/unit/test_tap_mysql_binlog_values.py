"""Binlog positions and row values of tap-dativo-mysql's LOG_BASED, without a server
(the integration tests compare real binlog rows with FULL_TABLE rows)."""

from __future__ import annotations

import datetime as dt

import pytest

from dativo.cdc_catalog import prepare_entry
from dativo.errors import ConfigError
from tap_dativo_mysql.binlog import CDC_COLUMNS, _Gtid
from tap_dativo_mysql.binlog_server import Position
from tap_dativo_mysql.binlog_values import RowNormalizer, SourceColumn


def test_positions_order_by_file_number_then_offset() -> None:
    assert Position.of("binlog.000009", 900) < Position.of("binlog.000010", 4)
    assert Position.of("binlog.000010", 4) < Position.of("binlog.000010", 5)
    assert Position.of("binlog.1000000", 4) > Position.of("binlog.999999", 9)
    assert Position.of("binlog.000002", 7).number == (2 << 32) | 7
    with pytest.raises(ConfigError, match=r"binlog file name .binlog. has no \.<number>"):
        Position.of("binlog", 4)


COLUMNS = [SourceColumn("f", "float", "float"), SourceColumn("b", "binary", "binary(4)"),
           SourceColumn("vb", "varbinary", "varbinary(4)"), SourceColumn("bt", "bit", "bit(10)"),
           SourceColumn("s", "set", "set('x','it''s','a')"), SourceColumn("y", "year", "year(4)"),
           SourceColumn("ts", "timestamp", "timestamp(6)"), SourceColumn("d", "date", "date"),
           SourceColumn("j", "json", "json"), SourceColumn("gone", "int", "int(11)")]


def test_binlog_values_become_what_pymysql_returns() -> None:
    rows = RowNormalizer(COLUMNS, [c.name for c in COLUMNS if c.name != "gone"])
    assert rows.names == ["f", "b", "vb", "bt", "s", "y", "ts", "d", "j"]
    values = {"f": 0.10000000149011612, "b": b"\x00\xff", "vb": "", "bt": "1000000001",
              "s": {"a", "it's"}, "y": 1900, "ts": dt.datetime(1970, 1, 1), "d": None,
              "j": {b"k": [1, 2.5, None, "é"]}}
    assert rows.row(values, {"d": "out of date range"}) == [
        0.1, b"\x00\xff\x00\x00", b"", b"\x02\x01", "it's,a", 0, "0000-00-00 00:00:00",
        "0000-00-00", '{"k": [1, 2.5, null, "é"]}']
    empty = dict.fromkeys(rows.names)
    assert rows.row(empty, {"s": "empty set", "d": "null"}) == [
        None, None, None, None, "", None, None, None, None]


def test_mariadb_gtid_position_keeps_the_last_transaction_per_domain() -> None:
    gtid = _Gtid("0-1-5,2-1-9")
    gtid.commit_pending("0-1-6")
    assert gtid.text == "0-1-6,2-1-9"
    gtid.commit_pending("1-3-1")
    assert gtid.text == "0-1-6,1-3-1,2-1-9"
    assert _Gtid(None).text is None  # MySQL: positions are file and offset only


def test_log_based_entries_get_the_cdc_columns_and_nullable_non_keys() -> None:
    entry = {"tap_stream_id": "shop-t", "key_properties": ["id"],
             "schema": {"properties": {"id": {"type": ["integer"]},
                                       "v": {"type": ["string"]}}},
             "metadata": [{"breadcrumb": [], "metadata": {"replication-method": "LOG_BASED"}}]}
    prepared = prepare_entry(entry, CDC_COLUMNS)
    props = prepared["schema"]["properties"]
    assert prepared["replication_method"] == "LOG_BASED"
    assert (props["id"]["type"], props["v"]["type"]) == (["integer"], ["string", "null"])
    assert set(props) == {"id", "v", "_sdc_binlog_pos", "_sdc_deleted_at"}
    assert entry["schema"]["properties"]["v"]["type"] == ["string"]  # a copy
