"""Issue 13, part 3: ``validation_mode: strict`` never moves the bookmark past bad data.

A batch with a rejected record goes to the dead-letter table only: none of its rows is
appended, and no STATE after it is emitted, so the rerun (from the last STATE emitted,
as Meltano would pass it) loads it once the data or the contract is fixed. Rows of
earlier batches stay committed only where an emitted STATE covers them, so the rerun
loads nothing twice. ``warn`` loads the valid rows and moves the bookmark on.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from tests.conftest import BIN, emitted_states, run_target, singer_lines

TENANT = "strict"
CONTRACT = """apiVersion: v3.0.2
kind: DataContract
id: strict-shop-{name}
name: {name}
version: 1.0.0
status: active
tenant: strict
domain: shop
schema:
  - name: {name}
    properties:
      - {{name: {key}, logicalType: integer, physicalType: bigint, primaryKey: true,
         required: true}}
      - {{name: amount, logicalType: number, physicalType: "decimal(10,2)"{rule}}}
"""
MINIMUM = ", logicalTypeOptions: {minimum: 0}"
CUSTOMERS = "customer_id,amount\n" + "".join(f"{i},{i}.00\n" for i in range(1, 6))
# With batch_size_rows 2: batches [1001, 1002], [1003, 1004], [1005, 1006], [1007].
# 1005 breaks the contract's minimum (CSV line 6); 1007 would too, but comes after it.
ORDERS = {1001: "1.00", 1002: "2.00", 1003: "3.00", 1004: "4.00", 1005: "-5.00",
          1006: "6.00", 1007: "-7.00"}


def orders_csv(amounts: dict[int, str]) -> str:
    return "order_id,amount\n" + "".join(f"{k},{v}\n" for k, v in amounts.items())


def write_contract(contracts: Path, name: str, key: str, rule: str) -> None:
    path = contracts / TENANT / "shop" / f"{name}.odcs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONTRACT.format(name=name, key=key, rule=rule))


def pipe(tap: Path, target: Path, state: dict | None, work: Path
         ) -> tuple[int, subprocess.CompletedProcess[bytes]]:
    """tap-dativo-csv | target-dativo-iceberg, the tap started from ``state``."""
    args = [str(BIN / "tap-dativo-csv"), "--config", str(tap)]
    if state is not None:
        (work / "state.json").write_text(json.dumps(state))
        args += ["--state", str(work / "state.json")]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          env=env, cwd=work) as tap_process:
        assert tap_process.stdout is not None
        target = subprocess.run([str(BIN / "target-dativo-iceberg"), "--config", str(target)],
                                stdin=tap_process.stdout, capture_output=True, env=env,
                                cwd=work, timeout=300)
    return tap_process.returncode, target


def ids(catalog: Catalog, table: str, column: str) -> list[int]:
    """Every row's ``column``, duplicates kept (a doubled row shows up twice)."""
    try:
        loaded = catalog.load_table((TENANT, "shop", table))
    except NoSuchTableError:
        return []
    return sorted(loaded.scan().to_arrow().column(column).to_pylist())


def bookmarked(state: dict) -> set[str]:
    return set(state.get("bookmarks", {}))


@pytest.fixture
def project(tmp_path: Path, catalog_props: dict[str, str]) -> Callable[..., tuple[Path, Path]]:
    """CSV files, contracts, and the tap and target configs (target settings as kwargs)."""

    def _make(**target: Any) -> tuple[Path, Path]:
        contracts = tmp_path / "contracts"
        write_contract(contracts, "customers", "customer_id", "")
        write_contract(contracts, "orders", "order_id", MINIMUM)
        (tmp_path / "customers.csv").write_text(CUSTOMERS)
        (tmp_path / "orders.csv").write_text(orders_csv(ORDERS))
        tap = tmp_path / "tap.json"
        tap.write_text(json.dumps({
            "tenant_id": TENANT, "contracts_dir": str(contracts),
            "files": [{"entity": "customers", "path": str(tmp_path / "customers.csv")},
                      {"entity": "orders", "path": str(tmp_path / "orders.csv")}]}))
        config = tmp_path / "target.json"
        config.write_text(json.dumps({
            "tenant_id": TENANT, "contracts_dir": str(contracts), "catalog": catalog_props,
            "validation_mode": "strict", "batch_size_rows": 2, **target}))
        return tap, config

    return _make


@pytest.mark.parametrize(("load_method", "fix"), [
    ("append-only", "data"), ("append-only", "contract"), ("upsert", "data")])
def test_strict_refuses_the_bad_batch_and_the_rerun_loads_every_row_once(
    project: Callable[..., tuple[Path, Path]], open_catalog: Callable[[], Catalog],
    tmp_path: Path, load_method: str, fix: str,
) -> None:
    tap, target = project(load_method=load_method)
    tap_rc, first = pipe(tap, target, None, tmp_path)
    log = first.stderr.decode()
    assert first.returncode == 2, log
    errors = [line for line in log.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, log
    assert (f"stream 'orders': validation_mode=strict rejected 1 of 2 record(s) in a batch, "
            f"first at input line 13 (order_id=1005, {tmp_path / 'orders.csv'} line 6): "
            "amount failed minimum. Nothing of that batch was loaded and no STATE after it "
            "was emitted; the rejected records are in the dead-letter table "
            "strict.shop.orders__dead_letter. Fix the data or the contract and rerun") \
        in errors[0]
    assert "Traceback" not in log
    catalog = open_catalog()
    assert ids(catalog, "customers", "customer_id") == [1, 2, 3, 4, 5]
    assert ids(catalog, "orders", "order_id") == []  # nor the clean batches before 1005
    dead = catalog.load_table((TENANT, "shop", "orders__dead_letter")).scan().to_arrow()
    assert [json.loads(r)["order_id"] for r in dead.column("record_json").to_pylist()] == [1005]
    assert dead.column("reasons").to_pylist() == [[{"field": "amount", "rule": "minimum"}]]
    states = emitted_states(first)
    assert states, "the customers STATE, committed with its rows, is emitted"
    assert bookmarked(states[-1]) == {"customers"}
    assert tap_rc in (0, 1, -13)  # done, or stopped by the closed pipe

    if fix == "data":
        (tmp_path / "orders.csv").write_text(orders_csv(
            {k: v.lstrip("-") for k, v in ORDERS.items()}))
        os.utime(tmp_path / "orders.csv", (os.path.getmtime(tmp_path / "orders.csv") + 5,) * 2)
    else:
        write_contract(tmp_path / "contracts", "orders", "order_id", "")
    tap_rc, second = pipe(tap, target, states[-1], tmp_path)
    assert (tap_rc, second.returncode) == (0, 0), second.stderr.decode()
    catalog = open_catalog()
    assert ids(catalog, "customers", "customer_id") == [1, 2, 3, 4, 5]
    assert ids(catalog, "orders", "order_id") == sorted(ORDERS)
    assert catalog.load_table((TENANT, "shop", "orders__dead_letter")).scan().to_arrow() \
        .num_rows == 1
    assert bookmarked(emitted_states(second)[-1]) == {"customers", "orders"}


def test_warn_loads_the_valid_rows_and_moves_the_bookmark_on(
    project: Callable[..., tuple[Path, Path]], open_catalog: Callable[[], Catalog],
    tmp_path: Path,
) -> None:
    tap, target = project(validation_mode="warn")
    tap_rc, first = pipe(tap, target, None, tmp_path)
    assert (tap_rc, first.returncode) == (0, 0), first.stderr.decode()
    catalog = open_catalog()
    assert ids(catalog, "orders", "order_id") == [1001, 1002, 1003, 1004, 1006]
    dead = catalog.load_table((TENANT, "shop", "orders__dead_letter")).scan().to_arrow()
    assert sorted(json.loads(r)["order_id"] for r in dead.column("record_json").to_pylist()) \
        == [1005, 1007]
    state = emitted_states(first)[-1]
    assert bookmarked(state) == {"customers", "orders"}

    tap_rc, second = pipe(tap, target, state, tmp_path)  # the rejects are not sent again
    assert (tap_rc, second.returncode) == (0, 0), second.stderr.decode()
    catalog = open_catalog()
    assert ids(catalog, "orders", "order_id") == [1001, 1002, 1003, 1004, 1006]
    assert ids(catalog, "customers", "customer_id") == [1, 2, 3, 4, 5]


def rec(stream: str, i: int, v: object = 1) -> dict:
    return {"type": "RECORD", "stream": stream, "record": {"id": i, "v": v}}


def schema(stream: str) -> dict:
    return {"type": "SCHEMA", "stream": stream, "key_properties": ["id"],
            "schema": {"properties": {"id": {"type": "integer"}, "v": {"type": "integer"}}}}


def state(**bookmarks: int) -> dict:
    return {"type": "STATE", "value": {"bookmarks": bookmarks}}


def rows(catalog: Catalog, stream: str) -> list[int]:
    try:
        table = catalog.load_table(("acme", "default", stream))
    except NoSuchTableError:
        return []
    return sorted(table.scan().to_arrow().column("id").to_pylist())


@pytest.mark.parametrize("commit_interval_seconds", [0, 10])
def test_rows_after_the_last_state_are_not_committed_before_a_refusal(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    commit_interval_seconds: int,
) -> None:
    """Rows 3 and 4 of ``a`` come after the last STATE, in a batch of their own, before
    the batch of the bad row 5 (a string ``v``): committing them would load them twice,
    since the rerun starts after that STATE. With ``commit_interval_seconds: 0`` the
    rows before that STATE are committed with it at once; with 10 s the refusal comes
    before their commit is due, and since ``a``'s rows 1 to 4 share a data file,
    neither they nor the STATE are committed: the rerun starts from the beginning."""
    config = target_config(validation_mode="strict", batch_size_rows=2,
                           commit_interval_seconds=commit_interval_seconds)
    head = [schema("a"), schema("b"), rec("a", 1), rec("a", 2), rec("b", 10),
            state(a=2, b=10)]
    tail = [rec("a", 3), rec("a", 4), rec("b", 11), rec("a", 5, "five"), rec("a", 6),
            state(a=6, b=11)]
    result = run_target(config, singer_lines(head + tail))
    assert result.returncode == 2
    assert b"stream 'a': validation_mode=strict rejected 1 of 2 record(s) in a batch, " \
           b"first at input line 10 (id=5): v failed type" in result.stderr
    catalog = open_catalog()
    dead = catalog.load_table(("acme", "default", "a__dead_letter")).scan().to_arrow()
    assert [json.loads(r)["id"] for r in dead.column("record_json").to_pylist()] == [5]
    emitted = emitted_states(result)
    if commit_interval_seconds == 0:
        assert emitted == [{"bookmarks": {"a": 2, "b": 10}}]
        assert (rows(catalog, "a"), rows(catalog, "b")) == ([1, 2], [10])
    else:
        assert emitted == []
        assert (rows(catalog, "a"), rows(catalog, "b")) == ([], [])

    fixed = [schema("a"), schema("b")] + (head[2:] if not emitted else []) + [
        *tail[:3], rec("a", 5), *tail[4:]]
    rerun = run_target(config, singer_lines(fixed))
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert emitted_states(rerun)[-1] == {"bookmarks": {"a": 6, "b": 11}}
    catalog = open_catalog()
    assert (rows(catalog, "a"), rows(catalog, "b")) == ([1, 2, 3, 4, 5, 6], [10, 11])


def test_a_refused_overwrite_keeps_the_table_as_it_was(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """``overwrite`` commits once, at the end: a refusal must not replace the table with
    the batches that came before the bad one."""
    config = target_config(validation_mode="strict", batch_size_rows=2,
                           load_method="overwrite")
    assert run_target(config, singer_lines(
        [schema("a"), rec("a", 1), rec("a", 2), state(a=2)])).returncode == 0
    result = run_target(config, singer_lines(
        [schema("a"), rec("a", 3), rec("a", 4), state(a=4), rec("a", 5, "five"), state(a=5)]))
    assert result.returncode == 2
    assert emitted_states(result) == []
    assert rows(open_catalog(), "a") == [1, 2]
