"""docs/tap-mysql.md's LOG_BASED blocks, run literally against the throwaway MariaDB: the
SQL that creates the CDC user, then the Meltano block (as that user) twice, with changes
in between; the deletes land in Iceberg with their ``_sdc_deleted_at``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import BIN, REPO, read_table
from tests.e2e.test_meltano_run import copy_project, warehouse
from tests.services.mariadb import MariaDBServer

SECTION = "### LOG_BASED (binlog CDC)"


def guide_blocks() -> tuple[str, str, str]:
    """The LOG_BASED section's bash block, and Setting up CDC's ini and sql blocks."""
    guide = (REPO / "docs" / "tap-mysql.md").read_text()
    found = re.search(re.escape(SECTION) + r"\n.*?```bash\n(.*?)```.*?### Setting up CDC\n"
                      r".*?```ini\n(.*?)```.*?```sql\n(.*?)```", guide, re.DOTALL)
    assert found is not None
    return found.group(1), found.group(2), found.group(3)


def password_of(sql: str) -> str:
    found = re.search(r"IDENTIFIED BY '([^']*)'", sql)
    assert found is not None
    return found.group(1)


def run_block(block: str, project: Path, mariadb: MariaDBServer,
              password: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_"))}
    env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_DISABLE_TRACKING": "true", "PYTHONWARNINGS": "ignore",
                "TAP_DATIVO_MYSQL_HOST": mariadb.host, "TAP_DATIVO_MYSQL_PORT": str(mariadb.port),
                "TAP_DATIVO_MYSQL_USER": "dativo_cdc", "TAP_DATIVO_MYSQL_PASSWORD": password,
                "TAP_DATIVO_MYSQL_DATABASE": "shop"})
    run = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=project, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_the_log_based_blocks_of_docs_tap_mysql_run_as_written(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    block, ini, sql = guide_blocks()
    settings = dict(re.findall(r"^(\w+) = (\S+)$", ini, re.MULTILINE))
    mariadb.sql("SET GLOBAL binlog_row_metadata = 'FULL'")  # the guide's my.cnf, at run time
    for name in ("binlog_format", "binlog_row_image", "binlog_row_metadata"):
        assert mariadb.sql(f"SELECT @@GLOBAL.{name}").strip() == settings[name]
    mariadb.sql("DROP USER IF EXISTS 'dativo_cdc'@'%'; DROP DATABASE IF EXISTS shop")
    mariadb.create_database("shop")
    mariadb.sql("CREATE TABLE orders (id int PRIMARY KEY, amount decimal(10,2) NOT NULL, "
                "updated_at datetime(6) NOT NULL); INSERT INTO orders VALUES "
                "(1, 10.50, '2024-01-01 10:00:00'), (2, 3.00, '2024-01-02 00:00:00.5')", "shop")
    mariadb.sql(sql)
    project = copy_project(tmp_path / "project")

    first = run_block(block, project, mariadb, password_of(sql))
    mariadb.sql("INSERT INTO orders VALUES (3, 7.25, '2024-01-03 00:00:00');"
                "UPDATE orders SET amount = 11.00 WHERE id = 1; DELETE FROM orders WHERE id = 2",
                "shop")
    second = run_block(block, project, mariadb, password_of(sql))

    rows = read_table(warehouse(project), ("demo", "default", "shop_orders")).to_pylist()
    landed = sorted((r["id"], str(r["amount"]), r["_sdc_deleted_at"] is not None) for r in rows)
    assert landed == [(1, "10.50", False), (1, "11.00", False), (2, "3.00", False),
                      (2, "3.00", True), (3, "7.25", False)]
    bookmarks = [state(run)["bookmarks"]["shop-orders"] for run in (first, second)]
    assert all(b["log_file"].startswith("binlog.") for b in bookmarks)
    assert (bookmarks[1]["log_file"], bookmarks[1]["log_pos"]) > (
        bookmarks[0]["log_file"], bookmarks[0]["log_pos"])


def state(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The singer state ``meltano state get`` printed at the end of the block."""
    return dict(json.loads(run.stdout[run.stdout.index("{"):])["singer_state"])
