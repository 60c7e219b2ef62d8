"""tap-dativo-snowflake | target-dativo-iceberg (embedded SQLite catalog), the tap reading
a throwaway Snowflake (fakesnow's server): every mapped type landed and compared, through
RECORDs and through the Arrow fast path's Parquet BATCH files alike, and a full run then
an incremental run that picks up an update and a new row.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog

from tests.conftest import BIN, read_table, run_target
from tests.integration.test_tap_snowflake import (
    ORDERS,
    TAP,
    TYPES,
    fresh_database,
    incremental,
)
from tests.services.snowflake import SnowflakeServer, running_snowflake
from tests.services.tap_process import discover, select

UTC = dt.timezone.utc
EXPECTED_TYPES = {
    "id": "long", "amt": "decimal(12, 2)", "big": "decimal(38, 10)", "f": "double",
    "s": "string", "b": "boolean", "d": "date", "tm": "time", "ntz": "timestamp",
    "ltz": "timestamptz", "tz": "timestamptz", "v": "string", "o": "string", "a": "string",
    "bin": "string",
}
EXPECTED_ROWS: list[dict[str, Any]] = [
    {"id": 1, "amt": Decimal("-12.34"), "big": Decimal("1234567890123456789012345678.0123456789"),
     "f": 1.5, "s": "emoji \N{PARTY POPPER} κόσμε", "b": True, "d": dt.date(2024, 2, 29),
     "tm": dt.time(23, 59, 59, 500000), "ntz": dt.datetime(2024, 2, 29, 23, 59, 59, 123456),
     "ltz": dt.datetime(2024, 6, 1, 0, 0, 0, 1, tzinfo=UTC),
     "tz": dt.datetime(2024, 6, 1, tzinfo=UTC), "v": {"k": [1, 2.5, None]},
     "o": {"a": {"b": "c"}}, "a": [1, "x", True], "bin": b"\x00\xff\x10\xab"},
    {"id": 2, "amt": Decimal("0.00"), "big": Decimal("0E-10"), "f": -1e300, "s": "",
     "b": False, "d": dt.date(1000, 1, 1), "tm": dt.time(0, 0),
     "ntz": dt.datetime(1970, 1, 1, 0, 0, 1), "ltz": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
     "tz": dt.datetime(2000, 1, 1, 4, 0, tzinfo=UTC), "v": "text", "o": {}, "a": [],
     "bin": b""},
    {"id": 2**63 - 1, "amt": None, "big": None, "f": None, "s": None, "b": None, "d": None,
     "tm": None, "ntz": dt.datetime(2000, 1, 1), "ltz": dt.datetime(2000, 1, 1, tzinfo=UTC),
     "tz": dt.datetime(2000, 1, 1, tzinfo=UTC), "v": None, "o": None, "a": None, "bin": None},
]


@pytest.fixture(scope="module")
def snowflake() -> Iterator[SnowflakeServer]:
    with running_snowflake() as server:
        yield server


def pipe(tmp_path: Path, config: dict[str, Any], catalog: dict[str, Any], target: Path,
         state: dict[str, Any] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """``tap | target``; the tap's log and the STATE messages the target emitted."""
    files = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    files.mkdir()
    (files / "tap.json").write_text(json.dumps(config))
    (files / "catalog.json").write_text(json.dumps(catalog))
    argv = [str(BIN / TAP), "--config", str(files / "tap.json"),
            "--catalog", str(files / "catalog.json")]
    if state is not None:
        (files / "state.json").write_text(json.dumps(state))
        argv += ["--state", str(files / "state.json")]
    tap = subprocess.run(argv, capture_output=True, timeout=180,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert tap.returncode == 0, tap.stderr.decode()
    landed = run_target(target, tap.stdout, cwd=tmp_path)
    assert landed.returncode == 0, landed.stderr.decode()
    states = [json.loads(line)["value"] if "value" in json.loads(line) else json.loads(line)
              for line in landed.stdout.decode().splitlines() if line.strip()]
    return tap.stderr.decode(), states


def landed_rows(catalog: Catalog, table: tuple[str, ...]) -> list[dict[str, Any]]:
    """The table's rows by id, JSON text parsed and base64 decoded."""
    rows = sorted(read_table(catalog, table).to_pylist(), key=lambda r: r["id"])
    return [{name: (json.loads(value) if name in ("v", "o", "a") and value is not None
                    else base64.b64decode(value) if name == "bin" and value is not None
                    else value) for name, value in row.items()} for row in rows]


@pytest.mark.parametrize("fast_path", [False, True], ids=["records", "arrow-parquet"])
def test_every_type_lands_in_iceberg(
    snowflake: SnowflakeServer, tmp_path: Path, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog], fast_path: bool,
) -> None:
    """No contract: the target types the table from the tap's SCHEMA, so this checks the
    JSON schema (decimal(p,s), both timestamp kinds, JSON, base64) and every value; the
    Arrow fast path's Parquet files land the same table as the RECORDs."""
    db = fresh_database(snowflake, TYPES)
    config = snowflake.tap_config(database=db)
    catalog = select(discover(TAP, tmp_path, config), {"sales-t"})
    root = tmp_path / "batches"
    target_settings: dict[str, Any] = {"validation_mode": "strict"}
    if fast_path:
        config["batch_config"] = {"encoding": {"format": "parquet"}, "batch_size": 2,
                                  "storage": {"root": root.as_uri()}}
        target_settings["batch_roots"] = [str(root)]
    log, _ = pipe(tmp_path, config, catalog, target_config(**target_settings))
    assert ("fetch_arrow_batches" in log) is fast_path

    table = ("acme", "default", "sales_t")
    landed = open_catalog().load_table(table)
    assert {f.name: str(f.field_type) for f in landed.schema().fields} == EXPECTED_TYPES
    rows = landed_rows(open_catalog(), table)
    assert rows == EXPECTED_ROWS
    for got, want in zip(rows, EXPECTED_ROWS, strict=True):
        for name in ("amt", "big"):  # Decimal equality ignores the exponent; keep the scale
            if want[name] is not None:
                assert got[name].as_tuple().exponent == want[name].as_tuple().exponent


@pytest.mark.parametrize("fast_path", [False, True], ids=["records", "arrow-parquet"])
def test_full_then_incremental_run_picks_up_an_update_and_a_new_row(
    snowflake: SnowflakeServer, tmp_path: Path, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog], fast_path: bool,
) -> None:
    """A FULL_TABLE run lands every row; INCREMENTAL runs on updated_at then upsert the
    changed row and add the new one, from the STATE the target emitted."""
    db = fresh_database(snowflake, ORDERS)
    config = snowflake.tap_config(database=db)
    root = tmp_path / "batches"
    target_settings: dict[str, Any] = {"validation_mode": "strict", "load_method": "upsert"}
    if fast_path:
        config["batch_config"] = {"encoding": {"format": "parquet"}, "batch_size": 2,
                                  "storage": {"root": root.as_uri()}}
        target_settings["batch_roots"] = [str(root)]
    target = target_config(**target_settings)
    discovered = discover(TAP, tmp_path, config)
    table = ("acme", "default", "sales_orders")

    pipe(tmp_path, config, select(discovered, {"sales-orders"}), target)
    assert [(r["id"], r["amount"]) for r in landed_rows(open_catalog(), table)] == [
        (1, Decimal("10.00")), (2, Decimal("20.00")), (3, Decimal("30.00")),
        (4, Decimal("40.00"))]

    catalog = incremental(discovered, "sales-orders", "updated_at")
    _, states = pipe(tmp_path, config, catalog, target)
    state = states[-1]
    assert state["bookmarks"]["sales-orders"]["replication_key_value"] == \
        "2024-01-03T00:00:00"
    snowflake.sql(["UPDATE SALES.ORDERS SET AMOUNT = 21.5, UPDATED_AT = '2024-01-04' "
                   "WHERE ID = 2",
                   "INSERT INTO SALES.ORDERS VALUES (5, 50, '2024-01-04 12:00:00')"], db)
    _, states = pipe(tmp_path, config, catalog, target, state=state)
    assert states[-1]["bookmarks"]["sales-orders"]["replication_key_value"] == \
        "2024-01-04T12:00:00"
    assert [(r["id"], r["amount"], r["updated_at"])
            for r in landed_rows(open_catalog(), table)] == [
        (1, Decimal("10.00"), dt.datetime(2024, 1, 1)),
        (2, Decimal("21.50"), dt.datetime(2024, 1, 4)),
        (3, Decimal("30.00"), dt.datetime(2024, 1, 2)),
        (4, Decimal("40.00"), dt.datetime(2024, 1, 3)),
        (5, Decimal("50.00"), dt.datetime(2024, 1, 4, 12))]
