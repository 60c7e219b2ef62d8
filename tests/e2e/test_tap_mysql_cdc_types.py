"""Every MySQL type through LOG_BASED and target-dativo-iceberg: the binlog's row images
(inserts and the before images of deletes) land with the values of the FULL_TABLE
round trip in tests/e2e/test_tap_mysql_types.py.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from pyiceberg.catalog import Catalog

from tests.conftest import read_table, run_target, singer_lines
from tests.e2e.test_tap_mysql_types import BINARY, EXPECTED_ROWS, EXPECTED_TYPES
from tests.integration.test_tap_mysql import TYPES, fresh_database, tap_config
from tests.integration.test_tap_mysql_cdc import log_based
from tests.services.mariadb import MariaDBServer
from tests.services.tap_process import discover, run_tap

COLUMNS = ", ".join(name for name in EXPECTED_TYPES if name != "id")


def test_every_type_of_a_change_round_trips_through_target_dativo_iceberg(
    mariadb: MariaDBServer, tmp_path: Path, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog],
) -> None:
    mariadb.sql("SET GLOBAL binlog_row_metadata = 'FULL'")
    db = fresh_database(mariadb, TYPES)
    config = tap_config(mariadb, db)
    catalog = log_based(discover("tap-dativo-mysql", tmp_path, config), f"{db}-t")
    first = run_tap("tap-dativo-mysql", tmp_path, config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    mariadb.sql(f"INSERT INTO t SELECT id + 100, {COLUMNS} FROM t; "
                "DELETE FROM t WHERE id > 100", db)
    second = run_tap("tap-dativo-mysql", tmp_path, config, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    target = run_target(target_config(validation_mode="strict"),
                        singer_lines(first.messages + second.messages[1:]), cwd=tmp_path)
    assert target.returncode == 0, target.stderr.decode()

    landed = open_catalog().load_table(("acme", "default", f"{db}_t"))
    assert {f.name: str(f.field_type) for f in landed.schema().fields} == {
        **EXPECTED_TYPES, "_sdc_binlog_pos": "long", "_sdc_deleted_at": "timestamptz"}
    rows = read_table(open_catalog(), ("acme", "default", f"{db}_t")).to_pylist()
    changes = [r for r in rows if r["id"] > 100]
    assert len(changes) == 2 * len(EXPECTED_ROWS)
    for deleted in (False, True):
        images = sorted((r for r in changes if (r["_sdc_deleted_at"] is not None) == deleted),
                        key=lambda r: r["id"])
        decoded = [{name: (base64.b64decode(value) if name in BINARY and value is not None
                           else value - 100 if name == "id" else value)
                    for name, value in row.items() if not name.startswith("_sdc_")}
                   for row in images]
        assert decoded == EXPECTED_ROWS
