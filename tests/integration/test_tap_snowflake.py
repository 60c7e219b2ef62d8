"""tap-dativo-snowflake against a throwaway Snowflake (fakesnow's server, in its own
process, spoken to by the real connector over HTTP): discovery, every mapped type, FULL_TABLE
and INCREMENTAL, key-pair auth, the Arrow fast path against the RECORD path, and each
failure as one line with its exit code.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.services.batch_messages import all_rows, batch_settings, batches
from tests.services.ports import free_port
from tests.services.snowflake import KEY_PASSPHRASE, SnowflakeServer, running_snowflake
from tests.services.tap_process import TapRun, discover, run_tap, select

TAP = "tap-dativo-snowflake"
FAST_PATH = "reading columns through Arrow result batches (fetch_arrow_batches)"
TYPES = [
    """CREATE TABLE SALES.T (ID NUMBER(38,0) PRIMARY KEY, AMT NUMBER(12,2),
         BIG NUMBER(38,10), F FLOAT, S VARCHAR, B BOOLEAN, D DATE, TM TIME,
         NTZ TIMESTAMP_NTZ, LTZ TIMESTAMP_LTZ, TZ TIMESTAMP_TZ, V VARIANT, O OBJECT,
         A ARRAY, BIN BINARY)""",
    """INSERT INTO SALES.T SELECT 1, -12.34, 1234567890123456789012345678.0123456789, 1.5,
         'emoji \N{PARTY POPPER} κόσμε', TRUE, '2024-02-29', '23:59:59.5',
         '2024-02-29 23:59:59.123456', '2024-06-01 00:00:00.000001+00:00',
         '2024-06-01 02:00:00+02:00', PARSE_JSON('{"k": [1, 2.5, null]}'),
         PARSE_JSON('{"a": {"b": "c"}}'), PARSE_JSON('[1, "x", true]'),
         TO_BINARY('00FF10AB', 'HEX')""",
    """INSERT INTO SALES.T SELECT 2, 0, 0, -1e300, '', FALSE, '1000-01-01', '00:00:00',
         '1970-01-01 00:00:01', '1970-01-01 00:00:01+00:00', '1999-12-31 23:00:00-05:00',
         PARSE_JSON('"text"'), PARSE_JSON('{}'), PARSE_JSON('[]'), TO_BINARY('', 'HEX')""",
    # fakesnow's server sends a NULL timestamp as the epoch (docs/tap-snowflake.md), so
    # this row's timestamps are set
    """INSERT INTO SALES.T (ID, NTZ, LTZ, TZ) VALUES (9223372036854775807,
         '2000-01-01 00:00:00', '2000-01-01 00:00:00+00:00', '2000-01-01 00:00:00+00:00')""",
]
RECORDS = [
    {"id": 1, "amt": "-12.34", "big": "1234567890123456789012345678.0123456789", "f": 1.5,
     "s": "emoji \N{PARTY POPPER} κόσμε", "b": True, "d": "2024-02-29",
     "tm": "23:59:59.500000", "ntz": "2024-02-29T23:59:59.123456",
     "ltz": "2024-06-01T00:00:00.000001+00:00", "tz": "2024-06-01T00:00:00+00:00",
     "v": {"k": [1, 2.5, None]}, "o": {"a": {"b": "c"}}, "a": [1, "x", True],
     "bin": "AP8Qqw=="},
    {"id": 2, "amt": "0.00", "big": "0.0000000000", "f": -1e300, "s": "", "b": False,
     "d": "1000-01-01", "tm": "00:00:00", "ntz": "1970-01-01T00:00:01",
     "ltz": "1970-01-01T00:00:01+00:00", "tz": "2000-01-01T04:00:00+00:00", "v": "text",
     "o": {}, "a": [], "bin": ""},
    {"id": 2**63 - 1, "amt": None, "big": None, "f": None, "s": None, "b": None, "d": None,
     "tm": None, "ntz": "2000-01-01T00:00:00", "ltz": "2000-01-01T00:00:00+00:00",
     "tz": "2000-01-01T00:00:00+00:00", "v": None, "o": None, "a": None, "bin": None},
]
ORDERS = [
    """CREATE TABLE SALES.ORDERS (ID INT PRIMARY KEY, AMOUNT NUMBER(10,2) NOT NULL,
         UPDATED_AT TIMESTAMP_NTZ NOT NULL)""",
    """INSERT INTO SALES.ORDERS VALUES (1, 10.00, '2024-01-01 00:00:00'),
         (2, 20.00, '2024-01-02 00:00:00'), (3, 30.00, '2024-01-02 00:00:00'),
         (4, 40.00, '2024-01-03 00:00:00')""",
]
_databases = iter(range(1, 10_000))


@pytest.fixture(scope="module")
def snowflake() -> Iterator[SnowflakeServer]:
    with running_snowflake() as server:
        yield server


def fresh_database(server: SnowflakeServer, statements: list[str],
                   schemas: tuple[str, ...] = ("SALES",)) -> str:
    """A new database with ``schemas`` and ``statements`` run in it; its name."""
    name = f"DB{next(_databases)}"
    server.create_database(name, schemas)
    server.sql(statements, name)
    return name


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


def sync(server: SnowflakeServer, tmp_path: Path, database: str, stream: str,
         catalog: dict[str, Any] | None = None, batch_size: int | None = None,
         state: dict[str, Any] | None = None, **extra: Any) -> TapRun:
    """One run of ``stream``: Parquet BATCH files of ``batch_size`` rows, or RECORDs."""
    config = server.tap_config(database=database, **extra)
    if catalog is None:
        catalog = select(discover(TAP, tmp_path, config), {stream})
    if batch_size is not None:
        config["batch_config"] = batch_settings(tmp_path, batch_size)
    return run_tap(TAP, tmp_path, config, catalog=catalog, state=state)


def errors(run: TapRun) -> list[str]:
    return [line for line in run.stderr.splitlines() if "| ERROR" in line]


def states(run: TapRun) -> list[dict[str, Any]]:
    return [m["value"] for m in run.messages if m["type"] == "STATE"]


def test_discovery_names_types_and_keys(snowflake: SnowflakeServer, tmp_path: Path) -> None:
    """Upper-case (case-insensitive) names in lower case, the declared primary key, and
    each Snowflake type's JSON schema; INFORMATION_SCHEMA is not a stream."""
    db = fresh_database(snowflake, TYPES)
    catalog = discover(TAP, tmp_path, snowflake.tap_config(database=db))
    assert [s["tap_stream_id"] for s in catalog["streams"]] == ["sales-t"]
    entry = catalog["streams"][0]
    assert entry["key_properties"] == ["id"]
    props = entry["schema"]["properties"]
    assert props["id"] == {"type": ["integer"]}
    assert props["amt"] == {"type": ["string", "null"], "format": "x-singer.decimal",
                            "x-sql-datatype": "decimal(12,2)"}
    assert props["big"]["x-sql-datatype"] == "decimal(38,10)"
    assert props["f"] == {"type": ["number", "null"]}
    assert props["b"] == {"type": ["boolean", "null"]}
    assert props["d"]["format"] == "date" and props["tm"]["format"] == "time"
    assert props["ntz"]["x-sql-datatype"] == "timestamp without time zone"
    assert props["ltz"]["x-sql-datatype"] == props["tz"]["x-sql-datatype"] == \
        "timestamp with time zone"
    for json_column in ("v", "o", "a"):
        assert {"type": "object"} in props[json_column]["anyOf"]
    assert props["bin"]["contentEncoding"] == "base64"


def test_filters_choose_schemas_and_tables(snowflake: SnowflakeServer, tmp_path: Path) -> None:
    db = fresh_database(snowflake, [*ORDERS, "CREATE TABLE STAGING.RAW (ID INT)",
                                    "CREATE TABLE SALES.ORDERS_LOG (ID INT)"],
                        schemas=("SALES", "STAGING"))
    config = snowflake.tap_config(database=db)

    def streams(**filters: Any) -> list[str]:
        found = discover(TAP, tmp_path, {**config, **filters})
        return sorted(s["tap_stream_id"] for s in found["streams"])

    assert streams() == ["sales-orders", "sales-orders_log", "staging-raw"]
    assert streams(filter_schemas=["sales"]) == ["sales-orders", "sales-orders_log"]
    assert streams(filter_tables=["*_log", "staging.*"]) == ["sales-orders_log",
                                                             "staging-raw"]
    run = run_tap(TAP, tmp_path, {**config, "filter_schemas": ["nope*"]}, "--discover")
    assert run.returncode == 2
    assert errors(run) and "filter_schemas: ['nope*'] match no schema of database" in \
        errors(run)[0]


def test_full_table_sends_every_type(snowflake: SnowflakeServer, tmp_path: Path) -> None:
    """``database`` named in lower case, as SQL would name it unquoted."""
    db = fresh_database(snowflake, TYPES)
    run = sync(snowflake, tmp_path, db.lower(), "sales-t")
    assert run.returncode == 0, run.stderr
    assert sorted(run.records("sales-t"), key=lambda r: r["id"]) == RECORDS


def test_incremental_resumes_from_the_bookmark_in_a_stable_order(
    snowflake: SnowflakeServer, tmp_path: Path
) -> None:
    """``>=`` the bookmark re-reads rows sharing it; ties ordered by the primary key."""
    db = fresh_database(snowflake, ORDERS)
    config = snowflake.tap_config(database=db)
    catalog = incremental(discover(TAP, tmp_path, config), "sales-orders", "updated_at")
    first = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    assert [r["id"] for r in first.records("sales-orders")] == [1, 2, 3, 4]
    bookmark = first.state["bookmarks"]["sales-orders"]
    assert bookmark["replication_key_value"] == "2024-01-03T00:00:00"

    snowflake.sql(["UPDATE SALES.ORDERS SET AMOUNT = 21, UPDATED_AT = '2024-01-04' "
                   "WHERE ID = 2",
                   "INSERT INTO SALES.ORDERS VALUES (5, 50, '2024-01-04 00:00:00')"], db)
    second = run_tap(TAP, tmp_path, config, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    assert [(r["id"], r["amount"]) for r in second.records("sales-orders")] == [
        (4, "40.00"), (2, "21.00"), (5, "50.00")]
    assert second.state["bookmarks"]["sales-orders"]["replication_key_value"] == \
        "2024-01-04T00:00:00"


def test_key_pair_auth_reads_rows(snowflake: SnowflakeServer, tmp_path: Path) -> None:
    """The encrypted PKCS#8 key from a file, or as PEM text given by a ``file:`` secret
    reference; a wrong passphrase is one line, exit 2."""
    db = fresh_database(snowflake, ORDERS)
    key_file = tmp_path / "key.p8"
    key_file.write_bytes(snowflake.private_key_pem)
    base = snowflake.tap_config(database=db, user=snowflake.key_user)
    del base["password"]
    by_path = {**base, "private_key_path": str(key_file),
               "private_key_passphrase": KEY_PASSPHRASE}
    by_reference = {**base, "private_key": f"file:{key_file}",
                    "private_key_passphrase": KEY_PASSPHRASE}
    for config in (by_path, by_reference):
        catalog = select(discover(TAP, tmp_path, config), {"sales-orders"})
        run = run_tap(TAP, tmp_path, config, catalog=catalog)
        assert run.returncode == 0, run.stderr
        assert len(run.records("sales-orders")) == 4
    wrong = run_tap(TAP, tmp_path, {**by_path, "private_key_passphrase": "wrong"},
                    "--discover")
    assert wrong.returncode == 2
    assert len(errors(wrong)) == 1
    assert "private_key_path: not a PEM private key, or private_key_passphrase does not " \
        "decrypt it" in errors(wrong)[0]


@pytest.mark.parametrize(("change", "exit_code", "said"), [
    ({"password": "wrong-password"}, 2,
     "login as user dativo on Snowflake account 127.0.0.1:{port} refused: Incorrect "
     "username or password was specified. (390100); check user and the password"),
    ({"database": "NOPE"}, 2, "database: NOPE does not exist on Snowflake account"),
    ({"port": "down"}, 75, "cannot reach Snowflake account 127.0.0.1:"),
    ({"database": None}, 2, "database: required"),
], ids=["bad-password", "unknown-database", "server-down", "no-database"])
def test_failures_are_one_line_with_their_exit_code(
    snowflake: SnowflakeServer, tmp_path: Path, change: dict[str, Any], exit_code: int,
    said: str,
) -> None:
    db = fresh_database(snowflake, ORDERS)
    config = snowflake.tap_config(database=db, login_timeout=5)
    config.update({k: free_port() if v == "down" else v for k, v in change.items()})
    config = {k: v for k, v in config.items() if v is not None}
    for args in (["--discover"], []):
        run = run_tap(TAP, tmp_path, config, *args)
        assert run.returncode == exit_code, run.stderr
        assert len(errors(run)) == 1, run.stderr
        assert said.format(port=snowflake.port) in errors(run)[0]
        assert "Traceback" not in run.stderr
        assert snowflake.password not in run.stderr


def test_a_dropped_table_is_one_read_error_line(
    snowflake: SnowflakeServer, tmp_path: Path
) -> None:
    db = fresh_database(snowflake, ORDERS)
    config = snowflake.tap_config(database=db)
    catalog = select(discover(TAP, tmp_path, config), {"sales-orders"})
    snowflake.sql("DROP TABLE SALES.ORDERS", db)
    run = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert run.returncode == 2
    assert len(errors(run)) == 1
    assert f'stream \'sales-orders\': table "{db}"."SALES"."ORDERS" no longer exists; run ' \
        "--discover again" in errors(run)[0]


@pytest.mark.parametrize("batch_size", [1, 2, 10])
def test_arrow_fast_path_rows_equal_the_record_paths_rows(
    snowflake: SnowflakeServer, tmp_path: Path, batch_size: int
) -> None:
    """Every mapped type: the Parquet rows, in JSON form, are the RECORDs."""
    db = fresh_database(snowflake, TYPES)
    fast = sync(snowflake, tmp_path, db, "sales-t", batch_size=batch_size)
    slow = sync(snowflake, tmp_path, db, "sales-t")
    assert (fast.returncode, slow.returncode) == (0, 0), fast.stderr + slow.stderr
    assert FAST_PATH in fast.stderr
    assert not fast.records("sales-t")
    assert len(batches(fast, "sales-t")) == -(-3 // batch_size)
    got = sorted((as_record(r) for r in all_rows(fast, "sales-t")), key=lambda r: r["id"])
    assert got == sorted(slow.records("sales-t"), key=lambda r: r["id"]) == RECORDS


def test_arrow_fast_path_types_follow_the_schema(
    snowflake: SnowflakeServer, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    db = fresh_database(snowflake, TYPES)
    fast = sync(snowflake, tmp_path, db, "sales-t", batch_size=10)
    assert fast.returncode == 0, fast.stderr
    uri = batches(fast, "sales-t")[0]["manifest"][0]
    schema = pq.read_schema(uri.removeprefix("file://"))
    assert {f.name: f.type for f in schema} == {
        "id": pa.int64(), "amt": pa.decimal128(12, 2), "big": pa.decimal128(38, 10),
        "f": pa.float64(), "s": pa.string(), "b": pa.bool_(), "d": pa.date32(),
        "tm": pa.time64("us"), "ntz": pa.timestamp("us"),
        "ltz": pa.timestamp("us", tz="UTC"), "tz": pa.timestamp("us", tz="UTC"),
        "v": pa.json_(), "o": pa.json_(), "a": pa.json_(), "bin": pa.string()}


def test_arrow_fast_path_bookmarks_match_the_record_path(
    snowflake: SnowflakeServer, tmp_path: Path
) -> None:
    """Each file's last row is its bookmark; the final STATE equals the RECORD path's,
    and a second run from it reads the same rows on both paths."""
    db = fresh_database(snowflake, ORDERS)
    config = snowflake.tap_config(database=db)
    catalog = incremental(discover(TAP, tmp_path, config), "sales-orders", "updated_at")
    fast = sync(snowflake, tmp_path, db, "sales-orders", catalog, batch_size=2)
    slow = sync(snowflake, tmp_path, db, "sales-orders", catalog)
    assert (fast.returncode, slow.returncode) == (0, 0), fast.stderr + slow.stderr
    marks = [s["bookmarks"]["sales-orders"].get("replication_key_value")
             for s in states(fast)]
    assert "2024-01-02T00:00:00" in marks
    assert fast.state == slow.state
    snowflake.sql("INSERT INTO SALES.ORDERS VALUES (6, 60, '2024-01-05 00:00:00')", db)
    again_fast = sync(snowflake, tmp_path, db, "sales-orders", catalog, batch_size=2,
                      state=fast.state)
    again_slow = sync(snowflake, tmp_path, db, "sales-orders", catalog, state=slow.state)
    assert [as_record(r) for r in all_rows(again_fast, "sales-orders")] == \
        again_slow.records("sales-orders")
    assert [r["id"] for r in again_slow.records("sales-orders")] == [4, 6]


def test_jsonl_batches_fall_back_to_records_and_say_why(
    snowflake: SnowflakeServer, tmp_path: Path
) -> None:
    db = fresh_database(snowflake, ORDERS)
    config = snowflake.tap_config(database=db)
    catalog = select(discover(TAP, tmp_path, config), {"sales-orders"})
    config["batch_config"] = batch_settings(tmp_path, 10, fmt="jsonl")
    run = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert "BATCH files of records (the fast path writes Parquet)" in run.stderr
    assert len(batches(run, "sales-orders")) == 1


def as_record(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row in the JSON form of a RECORD: decimals as their digits, dates and
    times as ISO 8601 (UTC instants with their offset), JSON text parsed."""
    def json_form(value: Any) -> Any:
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.timezone.utc).isoformat()
        if isinstance(value, dt.date | dt.time):
            return value.isoformat()
        return value
    return {name: (json.loads(value) if name in ("v", "o", "a") and value is not None
                   else json_form(value)) for name, value in row.items()}


def test_log_based_is_refused_in_one_line(snowflake: SnowflakeServer, tmp_path: Path) -> None:
    """Snowflake streams are not built (docs/tap-snowflake.md): no silent FULL_TABLE."""
    db = fresh_database(snowflake, ORDERS)
    config = snowflake.tap_config(database=db)
    catalog = select(discover(TAP, tmp_path, config), {"sales-orders"})
    catalog["streams"][0]["replication_method"] = "LOG_BASED"
    run = run_tap(TAP, tmp_path, config, catalog=catalog)
    assert run.returncode == 2
    assert len(errors(run)) == 1
    assert "stream 'sales-orders': LOG_BASED is not built for Snowflake" in errors(run)[0]
    assert not run.records("sales-orders")
