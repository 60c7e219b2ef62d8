"""tap-dativo-stripe as a process, through the `stripe` library, against the fixture API."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN
from tests.services.http_fixture import Fault
from tests.services.stripe_api import API_KEY, StripeApi
from tests.services.tap_process import TapRun, discover, run_tap, select

FAST = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05,
        "circuit_cooldown_seconds": 0.05, "requests_per_second": 0}


@pytest.fixture
def stripe_api() -> Iterator[StripeApi]:
    api = StripeApi().start()
    yield api
    api.stop()


def config(api: StripeApi, **extra: Any) -> dict[str, Any]:
    return {"api_key": API_KEY, "api_base": api.url, "lookback_seconds": 0, **FAST, **extra}


def stripe(tmp_path: Path, cfg: dict[str, Any], streams: set[str] | None = None,
           **kwargs: Any) -> TapRun:
    catalog = None
    if streams is not None:
        catalog = select(discover("tap-dativo-stripe", tmp_path, cfg), streams)
    run = run_tap("tap-dativo-stripe", tmp_path, cfg, catalog=catalog, **kwargs)
    assert API_KEY not in run.stderr and API_KEY not in str(run.messages)
    return run


def test_full_sync_pages_every_object_newest_first(stripe_api: StripeApi,
                                                   tmp_path: Path) -> None:
    customers = [stripe_api.create("customers") for _ in range(205)]
    charge = stripe_api.create("charges", amount=1999, currency="eur",
                               customer=customers[0]["id"])
    invoice = stripe_api.create("invoices", customer=customers[1]["id"])
    lines = [stripe_api.add_line(invoice["id"], amount=a) for a in (700, 1300)]
    run = stripe(tmp_path, config(stripe_api))
    assert run.returncode == 0, run.stderr
    assert run.ids("customers") == [c["id"] for c in reversed(customers)]
    pages = stripe_api.served("/v1/customers")
    assert [(r.one("limit"), r.one("starting_after")) for r in pages] == [
        ("100", None), ("100", customers[105]["id"]), ("100", customers[5]["id"])]
    [record] = run.records("charges")
    assert (record["amount"], record["currency"], record["customer"]) == (
        1999, "eur", customers[0]["id"])
    assert (charge["created"], record["created"]) == (1_700_000_411, "2023-11-14T22:20:11+00:00")
    assert [(r["id"], r["amount"], r["invoice"]) for r in run.records("invoice_line_items")] \
        == [(line["id"], line["amount"], invoice["id"]) for line in lines]
    assert run.ids("events")[:2] == [e for e in sorted(
        stripe_api.objects["events"], reverse=True)][:2]
    assert run.state["bookmarks"]["customers"]["replication_key_value"] == \
        "2023-11-14T22:20:09+00:00"  # the newest customer, 1_700_000_409
    assert run.records("customers")[0]["extra"] is None


def test_fields_outside_the_schema_are_kept_under_extra(stripe_api: StripeApi,
                                                        tmp_path: Path) -> None:
    txn = stripe_api.create("balance_transactions", amount=-300, fee=0, net=-300)
    run = stripe(tmp_path, config(stripe_api), {"balance_transactions"})
    [record] = run.records("balance_transactions")
    assert (record["id"], record["amount"], record["net"]) == (txn["id"], -300, -300)
    assert record["extra"] == {"exchange_rate": None, "fee_details": txn["fee_details"]}


def test_incremental_run_returns_new_objects_and_updates_through_events(
    stripe_api: StripeApi, tmp_path: Path
) -> None:
    old = [stripe_api.create("customers") for _ in range(3)]
    old_charge = stripe_api.create("charges", amount=100)
    first = stripe(tmp_path, config(stripe_api), {"customers", "charges"})
    assert first.ids("customers") == [c["id"] for c in reversed(old)]

    stripe_api.update("customers", old[0]["id"], email="new@example.com")
    new = stripe_api.create("customers", name="Late Comer")
    charge = stripe_api.create("charges", amount=500)
    second = stripe(tmp_path, config(stripe_api), {"customers", "charges"},
                    state=first.state)
    assert second.returncode == 0, second.stderr
    # new first (the list), the bookmark's own object again (created[gte] is inclusive),
    # then the older customer whose update came through customer.updated
    assert second.ids("customers") == [new["id"], old[2]["id"], old[0]["id"]]
    assert second.records("customers")[2]["email"] == "new@example.com"
    assert second.ids("charges") == [charge["id"], old_charge["id"]]  # old one: the bookmark
    created_filter = [r.one("created[gte]") for r in stripe_api.served("/v1/customers")]
    assert created_filter == [None, str(old[2]["created"])]
    assert sorted(r.one("type") for r in stripe_api.served("/v1/events")) == [
        "charge.*", "customer.*"]
    assert second.state["bookmarks"]["customers"]["replication_key_value"] == \
        second.records("customers")[0]["created"]


def test_deleted_objects_and_lookback(stripe_api: StripeApi, tmp_path: Path) -> None:
    a, b = stripe_api.create("products"), stripe_api.create("products")
    first = stripe(tmp_path, config(stripe_api), {"products"})
    stripe_api._event("products", "deleted", a)
    second = stripe(tmp_path, config(stripe_api, lookback_seconds=60), {"products"},
                    state=first.state)
    assert [(r["id"], r.get("deleted")) for r in second.records("products")] == [
        (b["id"], None), (a["id"], None)]  # the lookback re-reads both; a is current
    assert stripe_api.served("/v1/products")[-1].one("created[gte]") == str(b["created"] - 60)
    third = stripe(tmp_path, config(stripe_api), {"products"}, state=first.state)
    assert [(r["id"], r.get("deleted")) for r in third.records("products")] == [
        (b["id"], None), (a["id"], True)]


def test_expand_replaces_ids_with_objects(stripe_api: StripeApi, tmp_path: Path) -> None:
    customer = stripe_api.create("customers", email="x@example.com")
    stripe_api.create("charges", customer=customer["id"])
    run = stripe(tmp_path, config(stripe_api, expand={"charges": ["customer"]}), {"charges"})
    assert run.records("charges")[0]["customer"]["email"] == "x@example.com"
    assert stripe_api.served("/v1/charges")[0].query["expand[0]"] == ["data.customer"]


def test_a_field_that_cannot_be_expanded_fails_fast(stripe_api: StripeApi,
                                                    tmp_path: Path) -> None:
    run = stripe(tmp_path, config(stripe_api, expand={"charges": ["colour"]}), {"charges"})
    assert run.returncode == 2
    assert ("Stripe refused GET /v1/charges: check the expand, api_version and account_id "
            "settings (HTTP 400") in run.stderr
    assert "This property cannot be expanded (data.colour)." in run.stderr
    assert len(stripe_api.served("/v1/charges")) == 1 and "Traceback" not in run.stderr


def test_429_storm_recovers_with_every_object_exactly_once(stripe_api: StripeApi,
                                                           tmp_path: Path) -> None:
    customers = [stripe_api.create("customers") for _ in range(250)]
    stripe_api.inject(Fault("status", times=6, path="/v1/customers", status=429,
                            retry_after=0.01))
    stripe_api.inject(Fault("status", times=1, path="/v1/customers", status=500))
    stripe_api.inject(Fault("truncated", times=1, path="/v1/customers"))
    run = stripe(tmp_path, config(stripe_api), {"customers"})
    assert run.returncode == 0, run.stderr
    assert sorted(run.ids("customers")) == sorted(c["id"] for c in customers)
    assert len(run.ids("customers")) == 250
    served = stripe_api.served("/v1/customers")
    assert [r.fault for r in served] == ["status"] * 7 + ["truncated", None, None, None]
    assert "'retries': {'429': 6, '500': 1, 'connection': 1}" in run.stderr


def test_a_200_without_a_list_object_is_retried(stripe_api: StripeApi, tmp_path: Path) -> None:
    customer = stripe_api.create("customers")
    stripe_api.inject(Fault("status", path="/v1/customers", status=200,
                            body={"message": "upstream proxy says hello"}))
    run = stripe(tmp_path, config(stripe_api), {"customers"})
    assert run.returncode == 0, run.stderr
    assert run.ids("customers") == [customer["id"]]
    assert "'retries': {'bad-body': 1}" in run.stderr


def test_circuit_breaker_stops_the_run_cleanly(stripe_api: StripeApi, tmp_path: Path) -> None:
    charge = stripe_api.create("charges")
    stripe_api.inject(Fault("status", times=50, path="/v1/customers", status=503))
    run = stripe(tmp_path, config(stripe_api, circuit_failure_threshold=3,
                                  circuit_max_probes=2, max_retries=20),
                 {"customers", "charges"})  # streams run in name order: charges first
    assert run.returncode == 75  # the API is down for now: a rerun may succeed
    assert len(stripe_api.served("/v1/customers")) == 5  # 3 failures + 2 probes
    assert "half-open probe(s)" in run.stderr and "Traceback" not in run.stderr
    assert run.ids("charges") == [charge["id"]]  # what was read before is delivered
    assert run.state["bookmarks"]["charges"]["replication_key_value"]


def test_circuit_opens_then_a_good_probe_closes_it_and_the_run_completes(
    stripe_api: StripeApi, tmp_path: Path
) -> None:
    customers = [stripe_api.create("customers") for _ in range(3)]
    stripe_api.inject(Fault("status", times=3, path="/v1/customers", status=500))
    run = stripe(tmp_path, config(stripe_api, circuit_failure_threshold=3,
                                  circuit_cooldown_seconds=0.1), {"customers"})
    assert run.returncode == 0, run.stderr
    assert run.ids("customers") == [c["id"] for c in reversed(customers)]
    assert [r.fault for r in stripe_api.served("/v1/customers")] == ["status"] * 3 + [None]
    assert "'circuit_opened': 1, 'circuit_closed_after_open': 1" in run.stderr
    assert "circuit closed: the half-open probe succeeded" in run.stderr


def test_about_marks_the_api_key_secret() -> None:
    about = json.loads(subprocess.run([str(BIN / "tap-dativo-stripe"), "--about", "--format",
                                       "json"], capture_output=True, check=True).stdout)
    settings = about["settings"]
    assert settings["properties"]["api_key"]["secret"] is True
    assert settings["required"] == ["api_key"]
    assert settings["properties"]["requests_per_second"]["default"] == 25


def test_auth_failure_names_the_setting_and_exits_2(stripe_api: StripeApi,
                                                    tmp_path: Path) -> None:
    bad = "sk_test_wrong_key_123456"
    run = run_tap("tap-dativo-stripe", tmp_path, config(stripe_api, api_key=bad))
    assert run.returncode == 2
    assert "Stripe rejected the api_key" in run.stderr and "HTTP 401" in run.stderr
    assert bad not in run.stderr and "Traceback" not in run.stderr
    assert len(stripe_api.requests) == 1  # fatal: not retried
