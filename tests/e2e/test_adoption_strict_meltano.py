"""Issue 13, part 3 under `meltano run`: a strict run that fails leaves Meltano no
bookmark past the bad batch, so the retry fails again until the data is fixed, and the
run after the fix loads every row once.

Meltano stores each STATE line the moment the target prints it, whatever the target's
exit code (``BookmarkWriter`` in meltano/core/plugin/singer/target.py); the target
must therefore never print a STATE past a refused batch. The project is written here,
with the plugins' executables taken from this checkout's venv, so the test depends on
nothing but the plugins themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from pyiceberg.catalog import Catalog, load_catalog

from tests.conftest import BIN
from tests.integration.test_adoption_strict import (
    CUSTOMERS,
    MINIMUM,
    ORDERS,
    TENANT,
    ids,
    orders_csv,
    write_contract,
)

STATE_ID = "dev:tap-dativo-csv-to-target-dativo-iceberg"


def write_project(root: Path) -> dict[str, str]:
    """meltano.yml (JSON is YAML), the CSV files and contracts; returns the catalog."""
    root.mkdir()
    (root / "warehouse").mkdir()
    catalog = {"name": "strict", "type": "sql",
               "uri": f"sqlite:///{root / 'warehouse' / 'catalog.db'}",
               "warehouse": (root / "warehouse").as_uri()}
    write_contract(root / "contracts", "customers", "customer_id", "")
    write_contract(root / "contracts", "orders", "order_id", MINIMUM)
    (root / "customers.csv").write_text(CUSTOMERS)
    (root / "orders.csv").write_text(orders_csv(ORDERS))

    def plugin(name: str, settings: dict[str, str], config: dict) -> dict:
        return {"name": name, "namespace": name.replace("-", "_"),
                "executable": str(BIN / name),
                "settings": [{"name": key, "kind": kind} for key, kind in settings.items()],
                "config": config}

    tap = plugin("tap-dativo-csv", {"tenant_id": "string", "contracts_dir": "string",
                                    "files": "array"}, {
        "tenant_id": TENANT, "contracts_dir": "contracts",
        "files": [{"entity": "customers", "path": "customers.csv"},
                  {"entity": "orders", "path": "orders.csv"}]})
    tap["capabilities"] = ["about", "discover", "catalog", "state"]
    target = plugin("target-dativo-iceberg", {
        "tenant_id": "string", "contracts_dir": "string", "catalog": "object",
        "validation_mode": "string", "batch_size_rows": "integer"}, {
        "tenant_id": TENANT, "contracts_dir": "contracts", "catalog": catalog,
        "validation_mode": "strict", "batch_size_rows": 2})
    target["capabilities"] = ["about"]
    (root / "meltano.yml").write_text(json.dumps({
        "version": 1, "project_id": "strict-rerun", "default_environment": "dev",
        "send_anonymous_usage_stats": False, "environments": [{"name": "dev"}],
        "plugins": {"extractors": [tap], "loaders": [target]}}, indent=2))
    return catalog


def meltano(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run this checkout's meltano in ``project``; inherited MELTANO_* variables are
    dropped so the run depends only on the files written here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
    env.update({"MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_DISABLE_TRACKING": "true", "PYTHONWARNINGS": "ignore"})
    return subprocess.run([str(BIN / "meltano"), *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)


def run(project: Path) -> subprocess.CompletedProcess[str]:
    return meltano(project, "run", "tap-dativo-csv", "target-dativo-iceberg")


def stored_bookmarks(project: Path) -> set[str]:
    got = meltano(project, "state", "get", STATE_ID)
    assert got.returncode == 0, got.stderr
    return set(json.loads(got.stdout)["singer_state"]["bookmarks"])


def open_catalog(props: dict[str, str]) -> Catalog:
    props = dict(props)
    return load_catalog(props.pop("name"), **props)


def dead_letters(catalog: Catalog) -> list[int]:
    table = catalog.load_table((TENANT, "shop", "orders__dead_letter")).scan().to_arrow()
    return sorted(json.loads(r)["order_id"] for r in table.column("record_json").to_pylist())


def assert_failed_on_the_strict_error(result: subprocess.CompletedProcess[str],
                                      input_line: int) -> None:
    """Meltano failed because of the target's one-line strict error, which it relays
    on its stderr as a line of target-dativo-iceberg's (not some other failure)."""
    error = (f"stream 'orders': validation_mode=strict rejected 1 of 2 record(s) in a "
             f"batch, first at input line {input_line} (order_id=1005, orders.csv line 6): "
             "amount failed minimum. Nothing of that batch was loaded")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if error in line]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "target-dativo-iceberg " + error in lines[0], lines[0]


def test_strict_meltano_run_fails_keeps_the_bookmark_and_loads_after_the_fix(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    props = write_project(project)

    first = run(project)
    assert_failed_on_the_strict_error(first, 13)
    catalog = open_catalog(props)
    assert ids(catalog, "customers", "customer_id") == [1, 2, 3, 4, 5]
    assert ids(catalog, "orders", "order_id") == []
    assert dead_letters(catalog) == [1005]
    assert stored_bookmarks(project) == {"customers"}  # what the target emitted

    retry = run(project)  # unfixed: it fails again instead of exiting 0 having loaded nothing
    assert_failed_on_the_strict_error(retry, 8)  # customers.csv is skipped
    assert "skipping unchanged file customers.csv" in retry.stderr  # its bookmark held
    catalog = open_catalog(props)
    assert ids(catalog, "orders", "order_id") == []
    assert dead_letters(catalog) == [1005, 1005]  # one per run
    assert stored_bookmarks(project) == {"customers"}

    orders = project / "orders.csv"
    orders.write_text(orders_csv({k: v.lstrip("-") for k, v in ORDERS.items()}))
    os.utime(orders, (orders.stat().st_mtime + 5,) * 2)
    fixed = run(project)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    catalog = open_catalog(props)
    assert ids(catalog, "customers", "customer_id") == [1, 2, 3, 4, 5]  # not loaded twice
    assert ids(catalog, "orders", "order_id") == sorted(ORDERS)  # nothing lost or doubled
    assert dead_letters(catalog) == [1005, 1005]
    assert stored_bookmarks(project) == {"customers", "orders"}
