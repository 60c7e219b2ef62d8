"""`meltano run` on a copy of the repo's own project: the path `make demo` takes.

Meltano resolves the plugins from meltano.yml + plugins/, runs them with the project as
cwd, and keeps the state between runs in its system database. Each `meltano` call costs
seconds, so the runs are few and every one is checked for several things.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from pyiceberg.catalog import Catalog, load_catalog

from dativo.iceberg.catalog import default_catalog_properties
from tests.conftest import BIN, REPO, read_table

STATE_ID = "dev:tap-dativo-csv-to-target-dativo-iceberg"
CUSTOMERS = ("demo", "crm", "customers")
DEAD_LETTER = ("demo", "crm", "customers__dead_letter")
ORDERS = ("demo", "default", "orders")
VALID_CUSTOMER_IDS = [1, 2, 3, 4, 9, 10]


def copy_project(root: Path) -> Path:
    """The files a Meltano project needs, and nothing from a previous run (.meltano, output)."""
    root.mkdir()
    shutil.copy(REPO / "meltano.yml", root)
    for folder in ("plugins", "samples", "odcs_contracts"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def meltano(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run meltano in ``project`` with the plugin executables first on PATH.

    Inherited MELTANO_* variables (read-only project, another environment) are dropped
    so the run depends only on the copied files.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
    env.update({
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DISABLE_TRACKING": "true",
        "PYTHONWARNINGS": "ignore",
    })
    result = subprocess.run([str(BIN / "meltano"), *args], cwd=project, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"meltano {' '.join(args)}:\n{result.stderr}"
    return result


def warehouse(project: Path) -> Catalog:
    """The target's default catalog, which it creates under ./output relative to its cwd."""
    props = default_catalog_properties(project / "output" / "warehouse")
    return load_catalog(props.pop("name"), **props)


def assert_demo_loaded(catalog: Catalog) -> None:
    customers = read_table(catalog, CUSTOMERS)
    assert sorted(customers.column("customer_id").to_pylist()) == VALID_CUSTOMER_IDS
    dead = read_table(catalog, DEAD_LETTER)
    assert sorted(dead.column("line_number").to_pylist()) == [6, 7, 8, 9]
    orders = read_table(catalog, ORDERS)
    assert sorted(orders.column("order_id").to_pylist()) == [str(i) for i in range(1001, 1007)]


def test_meltano_run_loads_the_demo_once_and_keeps_state(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    meltano(project, "--environment", "dev", "run", "tap-dativo-csv", "target-dativo-iceberg")
    catalog = warehouse(project)
    assert_demo_loaded(catalog)
    snapshots = {t: catalog.load_table(t).current_snapshot().snapshot_id
                 for t in (CUSTOMERS, DEAD_LETTER, ORDERS)}

    listed = meltano(project, "state", "list").stdout.split()
    assert listed == [STATE_ID]
    state = json.loads(meltano(project, "state", "get", STATE_ID).stdout)
    bookmarks = state["singer_state"]["bookmarks"]
    assert {stream: [p["context"]["_sdc_source_file"] for p in entry["partitions"]]
            for stream, entry in bookmarks.items()} == {
        "customers": ["samples/demo/customers.csv"], "orders": ["samples/demo/orders.csv"]}
    # The bookmark Meltano stored is the one committed with the rows.
    summary = catalog.load_table(ORDERS).current_snapshot().summary
    assert json.loads(summary["dativo.state"])["bookmarks"]["orders"] == bookmarks["orders"]

    meltano(project, "--environment", "dev", "run", "tap-dativo-csv", "target-dativo-iceberg")
    catalog = warehouse(project)
    assert_demo_loaded(catalog)  # exact id lists: a duplicate row would show up here
    assert {t: catalog.load_table(t).current_snapshot().snapshot_id
            for t in snapshots} == snapshots


def test_inheriting_loader_runs_like_its_parent(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    meltano(project, "run", "tap-dativo-csv", "target-dativo")
    assert_demo_loaded(warehouse(project))
