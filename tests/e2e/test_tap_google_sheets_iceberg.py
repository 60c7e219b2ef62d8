"""tap-dativo-google-sheets | target-dativo-iceberg: sheet values land in Iceberg exactly,
and a contract-typed sheet's bad row lands in the dead-letter table.

The tap reads the Sheets fixture server (OAuth refresh token through google-auth); its
messages go to the target as a process, into a SQLite-backed Iceberg catalog.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog

from tests.conftest import emitted_states, read_table, run_target
from tests.services.google_sheets_api import GoogleSheetsApi
from tests.services.tap_process import TapRun, run_tap

TAP = "tap-dativo-google-sheets"
FAST = {"backoff_base_seconds": 0.01, "requests_per_second": 0}
UTC = dt.timezone.utc
CONTRACT = """\
apiVersion: v3.0.2
kind: DataContract
id: acme-sales-orders
name: Orders
version: 1.0.0
status: active
tenant: acme
domain: sales
schema:
  - name: orders
    physicalName: orders
    properties:
      - name: order_id
        logicalType: integer
        required: true
      - name: customer
        logicalType: string
      - name: amount
        logicalType: number
        physicalType: decimal(10,2)
      - name: ordered_on
        logicalType: date
      - name: shipped
        logicalType: boolean
"""


@pytest.fixture
def api() -> Iterator[GoogleSheetsApi]:
    server = GoogleSheetsApi().start()
    yield server
    server.stop()


def land(tmp_path: Path, target: Path, cfg: dict[str, Any],
         state: dict[str, Any] | None = None) -> tuple[TapRun, dict[str, Any]]:
    """One tap run piped into the target: the tap run and the target's last state."""
    run = run_tap(TAP, tmp_path, cfg, state=state)
    assert run.returncode == 0, run.stderr
    lines = "".join(json.dumps(m) + "\n" for m in run.messages).encode()
    result = run_target(target, lines)
    assert result.returncode == 0, result.stderr.decode()
    return run, dict(emitted_states(result)[-1])


def test_dates_numbers_booleans_blanks_and_a_ragged_row_land_exactly(
    api: GoogleSheetsApi, tmp_path: Path, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog]
) -> None:
    sid = api.add_spreadsheet("Ledger", {"Entries": [
        ["item", "qty", "price", "due", "at", "paid", "note"],
        ["bolt", 3, 0.25, dt.date(2024, 2, 29), dt.datetime(2024, 3, 1, 8, 15, 30), True,
         "first"],
        [],
        ["nut", 10, 1.5, dt.date(1900, 3, 1), dt.datetime(1999, 12, 31, 23, 59, 59), False],
        ["washer", None, None, None, None, None, "no values"],
        [None, None, None, None, None, None, None],
        ["gear", -2, 1e6, dt.date(2030, 1, 1), dt.datetime(2030, 1, 1), True, ""],
    ]})
    cfg = {**api.oauth_config(), "spreadsheet_ids": [sid], "api_endpoint": api.url,
           "drive_api_endpoint": api.url, **FAST}
    target = target_config(load_method="upsert")
    run, state = land(tmp_path, target, cfg)
    assert len(run.records("entries")) == 4

    table = open_catalog().load_table(("acme", "default", "entries"))
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert {k: types[k] for k in ("item", "qty", "price", "due", "at", "paid")} == {
        "item": "string", "qty": "double", "price": "double", "due": "date",
        "at": "timestamptz", "paid": "boolean"}
    landed = sorted(read_table(open_catalog(), ("acme", "default", "entries")).to_pylist(),
                    key=lambda r: r["_sdc_row"])
    columns = ("_sdc_row", "item", "qty", "price", "due", "at", "paid", "note")
    assert [tuple(r[c] for c in columns) for r in landed] == [
        (2, "bolt", 3, 0.25, dt.date(2024, 2, 29), dt.datetime(2024, 3, 1, 8, 15, 30,
                                                                tzinfo=UTC), True, "first"),
        (4, "nut", 10, 1.5, dt.date(1900, 3, 1), dt.datetime(1999, 12, 31, 23, 59, 59,
                                                              tzinfo=UTC), False, None),
        (5, "washer", None, None, None, None, None, "no values"),
        (7, "gear", -2, 1e6, dt.date(2030, 1, 1), dt.datetime(2030, 1, 1, tzinfo=UTC), True,
         None)]

    # Unchanged spreadsheet: the next run sends no record, and the table stays as it is.
    snapshot = table.current_snapshot()
    again, _ = land(tmp_path, target, cfg, state)
    assert again.records("entries") == []
    assert open_catalog().load_table(("acme", "default", "entries")).current_snapshot() \
        .snapshot_id == snapshot.snapshot_id


def test_contract_typed_sheet_sends_its_bad_row_to_the_dead_letter_table(
    api: GoogleSheetsApi, tmp_path: Path, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog]
) -> None:
    contracts = tmp_path / "contracts"
    (contracts / "acme" / "sales").mkdir(parents=True)
    (contracts / "acme" / "sales" / "orders.odcs.yaml").write_text(CONTRACT)
    sid = api.add_spreadsheet("Sales", {"Orders": [
        # 'Order ID' and 'Ordered on' match the contract's order_id and ordered_on.
        ["Order ID", "customer", "amount", "Ordered on", "shipped", "comment"],
        [1, "Ada", 19.99, dt.date(2024, 5, 1), True, "gift"],
        [2, "Bob", "n/a", dt.date(2024, 5, 2), False],  # amount is not a number
        [3, 4711, 5, "2024-05-03", "TRUE"],  # number as text, ISO date text, bool text
    ]})
    cfg = {**api.oauth_config(), "spreadsheet_ids": [sid], "api_endpoint": api.url,
           "drive_api_endpoint": api.url, "contracts_dir": str(contracts),
           "tenant_id": "acme", **FAST}
    run, _ = land(tmp_path, target_config(contracts_dir=str(contracts)), cfg)
    schema = next(m["schema"] for m in run.messages if m["type"] == "SCHEMA")
    assert schema["properties"]["amount"]["type"] == ["number", "null"]
    assert schema["properties"]["order_id"]["type"] == ["integer"]
    assert schema["properties"]["comment"]["type"] == ["string", "null"]
    assert "Order ID" not in schema["properties"]

    catalog = open_catalog()
    landed = sorted(read_table(catalog, ("acme", "sales", "orders")).to_pylist(),
                    key=lambda r: r["order_id"])
    assert landed == [
        {"order_id": 1, "customer": "Ada", "amount": Decimal("19.99"),
         "ordered_on": dt.date(2024, 5, 1), "shipped": True},
        {"order_id": 3, "customer": "4711", "amount": Decimal("5.00"),
         "ordered_on": dt.date(2024, 5, 3), "shipped": True}]
    [dead] = read_table(catalog, ("acme", "sales", "orders__dead_letter")).to_pylist()
    assert (dead["stream"], dead["reasons"]) == (
        "orders", [{"field": "amount", "rule": "type"}])
    sent = json.loads(dead["record_json"])
    assert (sent["order_id"], sent["amount"], sent["_sdc_row"]) == (2, "n/a", 3)
