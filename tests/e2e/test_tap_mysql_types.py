"""Every MySQL type the tap supports, through target-dativo-iceberg, read back.

No contract: the target types the table from the tap's SCHEMA, so this checks the tap's
JSON Schema (``x-sql-datatype`` for decimal(p,s), unsigned bigint and timestamp) as much
as its values, against the rows of ``TYPES`` in tests/integration/test_tap_mysql.py.
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

from pyiceberg.catalog import Catalog

from tests.conftest import BIN, read_table, run_target
from tests.integration.test_tap_mysql import TYPES, fresh_database, tap_config
from tests.services.mariadb import MariaDBServer
from tests.services.tap_process import discover, select

UTC = dt.timezone.utc
BINARY = ("bin", "vb", "bl")
EXPECTED_TYPES = {
    "id": "long", "b": "boolean", "ti": "long", "si": "long", "mi": "long", "i": "long",
    "bi": "long", "ubi": "decimal(20, 0)", "d65": "string", "d": "decimal(10, 2)",
    "f": "double", "dbl": "double", "dt": "date", "dtm": "timestamp", "ts": "timestamptz",
    "tm": "time", "y": "long", "c": "string", "vc": "string", "tx": "string",
    "bin": "string", "vb": "string", "bl": "string", "e": "string", "st": "string",
    "j": "string", "bt": "string", "bt3": "string",
}
EXPECTED_ROWS: list[dict[str, Any]] = [
    {"id": 1, "b": True, "ti": -128, "si": 65535, "mi": -8388608, "i": 4294967295,
     "bi": -(2**63), "ubi": Decimal(2**64 - 1),
     "d65": "12345678901234567890123456789012345.678901234567890123456789012345",
     "d": Decimal("-12345678.91"), "f": 1.5, "dbl": 2.25, "dt": dt.date(9999, 12, 31),
     "dtm": dt.datetime(2024, 2, 29, 23, 59, 59, 123456),
     "ts": dt.datetime(2024, 6, 1, 0, 0, 0, 1, tzinfo=UTC), "tm": dt.time(23, 59, 59, 500000),
     "y": 2155, "c": "abc", "vc": "emoji \N{PARTY POPPER} ok", "tx": "κόσμε",
     "bin": b"\x00\xff\x10\xab", "vb": b"", "bl": b"\xca\xfe", "e": "green", "st": "a,c",
     "j": '{"k": [1, 2.5, null]}', "bt": "1" * 64, "bt3": "101"},
    {"id": 2, "b": False, "ti": 127, "si": 0, "mi": 8388607, "i": 0, "bi": 2**63 - 1,
     "ubi": Decimal(0), "d65": "0." + "0" * 30, "d": Decimal("0.00"), "f": -0.5,
     "dbl": -1e300,
     "dt": dt.date(1000, 1, 1), "dtm": dt.datetime(1000, 1, 1),
     "ts": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), "tm": dt.time(0, 0), "y": 1901,
     "c": "", "vc": "", "tx": "", "bin": b"\x00\x00\x00\x00", "vb": b"\x01", "bl": b"",
     "e": "red", "st": "", "j": "[]", "bt": "0" * 64, "bt3": "000"},
    {"id": 3, **{name: None for name in EXPECTED_TYPES if name != "id"}},
]


def test_every_type_round_trips_through_target_dativo_iceberg(
    mariadb: MariaDBServer, tmp_path: Path, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog],
) -> None:
    db = fresh_database(mariadb, TYPES)
    config = tap_config(mariadb, db)
    catalog = select(discover("tap-dativo-mysql", tmp_path, config), {f"{db}-t"})
    (tmp_path / "tap.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    tap = subprocess.run([str(BIN / "tap-dativo-mysql"), "--config", str(tmp_path / "tap.json"),
                          "--catalog", str(tmp_path / "catalog.json")], capture_output=True,
                         timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert tap.returncode == 0, tap.stderr.decode()
    target = run_target(target_config(validation_mode="strict"), tap.stdout, cwd=tmp_path)
    assert target.returncode == 0, target.stderr.decode()

    landed = open_catalog().load_table(("acme", "default", f"{db}_t"))
    assert {f.name: str(f.field_type) for f in landed.schema().fields} == EXPECTED_TYPES
    rows = sorted(read_table(open_catalog(), ("acme", "default", f"{db}_t")).to_pylist(),
                  key=lambda r: r["id"])
    decoded = [{name: (base64.b64decode(value) if name in BINARY and value is not None
                       else value) for name, value in row.items()} for row in rows]
    for got, want in zip(decoded, EXPECTED_ROWS, strict=True):
        assert got == want
        for name in ("ubi", "d"):  # Decimal equality ignores the exponent; keep the scale
            if want[name] is not None:
                assert got[name].as_tuple().exponent == want[name].as_tuple().exponent


def test_values_match_what_mariadb_itself_returns(mariadb: MariaDBServer) -> None:
    """The expected rows above are MariaDB's own output, read independently."""
    db = fresh_database(mariadb, TYPES)
    text = mariadb.sql("SET time_zone = '+00:00'; SELECT ubi, d65, ts, hex(bin), hex(bl), "
                       "bt + 0, bt3 + 0, st, dtm FROM t ORDER BY id", db)
    assert text.splitlines() == [
        "18446744073709551615\t12345678901234567890123456789012345.678901234567890123456789012345"
        "\t2024-06-01 00:00:00.000001\t00FF10AB\tCAFE\t18446744073709551615\t5\ta,c"
        "\t2024-02-29 23:59:59.123456",
        "0\t0.000000000000000000000000000000\t1970-01-01 00:00:01.000000\t00000000\t\t0"
        "\t0\t\t1000-01-01 00:00:00.000000",
        "NULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL",
    ]
