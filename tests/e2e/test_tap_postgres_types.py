"""Every PostgreSQL type the tap supports, piped into target-dativo-iceberg, read back.

No contract: the target types the table from the tap's SCHEMA, so this checks the
tap's JSON Schema (``x-sql-datatype`` for numeric(p,s) and timestamp) as much as its
values. Each value is compared with what PostgreSQL holds, in the Iceberg type a user
would expect (decimals exact, timestamps with or without zone, NULLs everywhere).
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

import pytest
from pyiceberg.catalog import Catalog

from tests.conftest import BIN, read_table
from tests.integration.test_tap_postgres import (
    discover,
    fresh_database,
    select,
    tap_config,
)
from tests.services.postgres import PostgresServer

UTC = dt.timezone.utc
TYPES_SQL = r"""
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE kinds (
  id int PRIMARY KEY, si smallint, i integer, bi bigint,
  num numeric(12,2), wide numeric(38,10), free numeric, r real, d double precision,
  b boolean, t text, vc varchar(20), c char(5), u uuid,
  dt date, tm time, ts timestamp, tstz timestamptz, iv interval,
  j json, jb jsonb, ia integer[], ta text[], by bytea, m mood);
INSERT INTO kinds VALUES
  (1, -32768, 2147483647, 9223372036854775807,
   -1234567890.12, 1234567890123456789012345678.0123456789,
   123456789012345678901234567890.123456789012, 1.5, -2.25e-10,
   true, 'héllo "quoted" \ back', 'v', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   '2024-02-29', '13:14:15.123456', '2024-01-02 03:04:05.678901',
   '2024-01-02 03:04:05.5+02', '1 year 2 mons 3 days 04:05:06.5',
   '{"a": [1, 2.5, "x"], "b": null}', '{"nested": {"k": true}}', '{1,NULL,3}',
   '{"a","b c",NULL,""}', decode('00ff10', 'hex'), 'happy'),
  (2, 0, 0, 0, 0.00, 0, 0, 0, 0, false, '', '', '', NULL, '0001-01-01', '00:00', NULL,
   '1970-01-01 00:00:00+00', '-1 days', '[]', '"just a string"', '{}', '{}', '', 'sad'),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""

# Iceberg column types the target must create from the tap's SCHEMA.
EXPECTED_TYPES = {
    "id": "long", "si": "long", "i": "long", "bi": "long",
    "num": "decimal(12, 2)", "wide": "decimal(38, 10)", "free": "string",
    "r": "double", "d": "double", "b": "boolean", "t": "string", "vc": "string",
    "c": "string", "u": "string", "dt": "date", "tm": "time", "ts": "timestamp",
    "tstz": "timestamptz", "iv": "string", "j": "string", "jb": "string",
    "ia": "list<long>", "ta": "list<string>", "by": "string", "m": "string",
}

EXPECTED_ROWS: list[dict[str, Any]] = [
    {"id": 1, "si": -32768, "i": 2147483647, "bi": 9223372036854775807,
     "num": Decimal("-1234567890.12"),
     "wide": Decimal("1234567890123456789012345678.0123456789"),
     "free": "123456789012345678901234567890.123456789012", "r": 1.5, "d": -2.25e-10,
     "b": True, "t": 'héllo "quoted" \\ back', "vc": "v", "c": "ab   ",
     "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "dt": dt.date(2024, 2, 29),
     "tm": dt.time(13, 14, 15, 123456), "ts": dt.datetime(2024, 1, 2, 3, 4, 5, 678901),
     "tstz": dt.datetime(2024, 1, 2, 1, 4, 5, 500000, tzinfo=UTC),
     "iv": "P1Y2M3DT4H5M6.5S", "j": {"a": [1, 2.5, "x"], "b": None},
     "jb": {"nested": {"k": True}}, "ia": [1, None, 3], "ta": ["a", "b c", None, ""],
     "by": b"\x00\xff\x10", "m": "happy"},
    {"id": 2, "si": 0, "i": 0, "bi": 0, "num": Decimal("0.00"),
     "wide": Decimal("0E-10"), "free": "0", "r": 0.0, "d": 0.0, "b": False, "t": "",
     "vc": "", "c": "     ", "u": None, "dt": dt.date(1, 1, 1), "tm": dt.time(0, 0),
     "ts": None, "tstz": dt.datetime(1970, 1, 1, tzinfo=UTC), "iv": "P-1D", "j": [],
     "jb": "just a string", "ia": [], "ta": [], "by": b"", "m": "sad"},
    {"id": 3, **{name: None for name in EXPECTED_TYPES if name != "id"}},
]

# How a landed value is turned back into the PostgreSQL value it stands for.
DECODE: dict[str, Callable[[Any], Any]] = {
    "j": json.loads,
    "jb": json.loads,
    "by": base64.b64decode,
}


def pipe(tap_config_path: Path, catalog_path: Path, target_config_path: Path,
         cwd: Path) -> tuple[int, int, str, str]:
    """``tap | target`` over a real OS pipe; both exit codes and both logs."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with open(cwd / "tap.err", "wb") as tap_err, open(cwd / "target.err", "wb") as target_err:
        tap = subprocess.Popen([str(BIN / "tap-dativo-postgres"), "--config",
                                str(tap_config_path), "--catalog", str(catalog_path)],
                               stdout=subprocess.PIPE, stderr=tap_err, env=env, cwd=cwd)
        target = subprocess.run([str(BIN / "target-dativo-iceberg"), "--config",
                                 str(target_config_path)], stdin=tap.stdout,
                                stdout=subprocess.DEVNULL, stderr=target_err, env=env,
                                cwd=cwd, timeout=300, check=False)
        assert tap.stdout is not None
        tap.stdout.close()
        tap_rc = tap.wait(timeout=60)
    return (tap_rc, target.returncode, (cwd / "tap.err").read_text(),
            (cwd / "target.err").read_text())


# RECORD messages; Parquet BATCH files read column-wise through ADBC (the fast path);
# jsonl BATCH files of the RECORD path's records. Each must land the same table.
TRANSPORTS = {
    "records": {},
    "batch-parquet": {"batch_config": {"encoding": {"format": "parquet"}, "batch_size": 2}},
    "batch-jsonl": {"batch_config": {"encoding": {"format": "jsonl", "compression": "gzip"}}},
}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_type_round_trips_through_target_dativo_iceberg(
    postgres: PostgresServer, tmp_path: Path, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog], transport: str,
) -> None:
    database = fresh_database(postgres, TYPES_SQL)
    batch_config = TRANSPORTS[transport].get("batch_config")
    if batch_config:
        batch_config["storage"] = {"root": (tmp_path / "batches").as_uri()}
    config = tap_config(postgres, database, **TRANSPORTS[transport])
    catalog = select(discover(tmp_path, config), {"public-kinds": {}})
    (tmp_path / "tap.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))

    tap_rc, target_rc, tap_err, target_err = pipe(
        tmp_path / "tap.json", tmp_path / "catalog.json",
        target_config(validation_mode="strict", batch_roots=[str(tmp_path / "batches")]),
        tmp_path)
    assert (tap_rc, target_rc) == (0, 0), tap_err + target_err

    landed = open_catalog().load_table(("acme", "default", "public_kinds"))
    assert {f.name: str(f.field_type) for f in landed.schema().fields} == EXPECTED_TYPES
    rows = sorted(read_table(open_catalog(), ("acme", "default", "public_kinds")).to_pylist(),
                  key=lambda r: r["id"])
    decoded = [{name: (DECODE[name](value) if name in DECODE and value is not None
                       else value) for name, value in row.items()} for row in rows]
    for got, want in zip(decoded, EXPECTED_ROWS, strict=True):
        assert got == want
        # Decimal equality ignores the exponent; the scale must survive too.
        for name in ("num", "wide"):
            if want[name] is not None:
                assert got[name].as_tuple().exponent == want[name].as_tuple().exponent
    assert "Traceback" not in tap_err + target_err
    if batch_config:  # the files really were BATCH files (two rows per Parquet file)
        written = sorted(p.name for p in (tmp_path / "batches").iterdir())
        assert len(written) == (2 if transport == "batch-parquet" else 1), written
        assert ("reading columns through ADBC" in tap_err) == (transport == "batch-parquet")


def test_values_match_what_postgresql_itself_returns(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """The expected rows above are PostgreSQL's own text output, read independently."""
    database = fresh_database(postgres, TYPES_SQL)
    text = postgres.psql("SET TimeZone = 'UTC'; SET IntervalStyle = 'iso_8601'; "
                         "SELECT num, wide, free, tstz, iv, encode(by, 'hex') FROM kinds "
                         "ORDER BY id", database)
    assert text.splitlines()[2:] == [
        "-1234567890.12|1234567890123456789012345678.0123456789|"
        "123456789012345678901234567890.123456789012|2024-01-02 01:04:05.5+00|"
        "P1Y2M3DT4H5M6.5S|00ff10",
        "0.00|0.0000000000|0|1970-01-01 00:00:00+00|P-1D|",
        "|||||",
    ]
