"""tap-dativo-hubspot as a process, through requests, against the HubSpot fixture API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services.http_fixture import Fault
from tests.services.hubspot_api import SEARCH_WINDOW, TOKEN, HubSpotApi
from tests.services.tap_process import TapRun, discover, run_tap, select

FAST = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05,
        "circuit_cooldown_seconds": 0.05, "requests_per_second": 0,
        "search_requests_per_second": 0}


@pytest.fixture
def hubspot_api() -> Iterator[HubSpotApi]:
    api = HubSpotApi().start()
    yield api
    api.stop()


def config(api: HubSpotApi, **extra: Any) -> dict[str, Any]:
    return {"access_token": TOKEN, "api_base": api.url, **FAST, **extra}


def hubspot(tmp_path: Path, cfg: dict[str, Any], streams: set[str], **kwargs: Any) -> TapRun:
    catalog = select(discover("tap-dativo-hubspot", tmp_path, cfg), streams)
    run = run_tap("tap-dativo-hubspot", tmp_path, cfg, catalog=catalog, **kwargs)
    assert TOKEN not in run.stderr and TOKEN not in str(run.messages)
    return run


def schema(run: TapRun, stream: str) -> dict[str, Any]:
    return next(m["schema"] for m in run.messages
                if m["type"] == "SCHEMA" and m["stream"] == stream)


def test_full_sync_types_discovered_properties_and_pages_the_list(
    hubspot_api: HubSpotApi, tmp_path: Path
) -> None:
    contacts = [hubspot_api.create("contacts", email=f"c{n}@example.com", num_notes=str(n),
                                   hs_email_optout="true" if n == 1 else "false",
                                   date_of_birth="1990-05-17" if n == 0 else "")
                for n in range(205)]
    deal = hubspot_api.create("deals", dealname="Big one", amount="1500.25",
                              closedate="2024-03-01T12:00:00.000Z")
    company = hubspot_api.create("companies", name="Acme")
    hubspot_api.associate("contacts", contacts[0]["id"], "companies", company["id"])
    hubspot_api.associate("contacts", contacts[0]["id"], "deals", deal["id"])
    owner = hubspot_api.add_owner("owner@example.com")
    run = hubspot(tmp_path, config(hubspot_api),
                  {"contacts", "deals", "owners", "contact_associations"})
    assert run.returncode == 0, run.stderr

    props = schema(run, "deals")["properties"]
    assert props["amount"] == {"type": ["string", "null"], "format": "x-singer.decimal",
                               "description": "Amount"}
    assert props["closedate"]["format"] == "date-time"
    assert schema(run, "contacts")["properties"]["hs_email_optout"]["type"] == [
        "boolean", "null"]
    assert run.ids("contacts") == [c["id"] for c in contacts]
    first, second = run.records("contacts")[:2]
    assert (first["email"], first["num_notes"], first["hs_email_optout"],
            first["date_of_birth"]) == ("c0@example.com", "0", False, "1990-05-17")
    assert (second["hs_email_optout"], second["date_of_birth"]) == (True, None)
    [deal_row] = run.records("deals")
    assert (deal_row["amount"], deal_row["closedate"]) == ("1500.25", "2024-03-01T12:00:00+00:00")
    assert run.ids("owners") == [owner["id"]]
    assert [(r["contact_id"], r["to_object_type"], r["to_id"], r["association_type_id"])
            for r in run.records("contact_associations")] == [
        (contacts[0]["id"], "companies", company["id"], 1),
        (contacts[0]["id"], "deals", deal["id"], 4)]
    pages = hubspot_api.served("/crm/v3/objects/contacts")
    assert [(r.method, r.one("limit"), r.one("after")) for r in pages] == [
        ("GET", "100", None), ("GET", "100", contacts[100]["id"]),
        ("GET", "100", contacts[200]["id"])]
    assert run.state["bookmarks"]["contacts"]["replication_key_value"] == \
        contacts[-1]["updatedAt"]


def test_incremental_run_searches_for_modified_objects_only(hubspot_api: HubSpotApi,
                                                            tmp_path: Path) -> None:
    old = [hubspot_api.create("deals", dealname=f"d{n}", amount="10") for n in range(4)]
    first = hubspot(tmp_path, config(hubspot_api), {"deals"})
    hubspot_api.update("deals", old[1]["id"], amount="99.90")
    new = hubspot_api.create("deals", dealname="fresh", amount="5")
    second = hubspot(tmp_path, config(hubspot_api), {"deals"}, state=first.state)
    assert second.returncode == 0, second.stderr
    # the bookmark's own deal again (GTE), then the update and the new deal, by modified time
    assert second.ids("deals") == [old[3]["id"], old[1]["id"], new["id"]]
    assert second.records("deals")[1]["amount"] == "99.90"
    [search] = hubspot_api.served("/crm/v3/objects/deals/search")
    filters = search.body["filterGroups"][0]["filters"]
    assert filters[0] == {"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                          "value": "1700000000004"}
    assert search.body["sorts"] == [{"propertyName": "hs_lastmodifieddate",
                                     "direction": "ASCENDING"}]
    assert second.state["bookmarks"]["deals"]["replication_key_value"] == new["updatedAt"]


def test_search_past_the_10k_window_loses_nothing(hubspot_api: HubSpotApi,
                                                  tmp_path: Path) -> None:
    companies = [hubspot_api.create("companies", name=f"co{n}") for n in range(6_000)]
    hubspot_api.frozen = True  # 450 objects in one millisecond: pages of ties by offset
    companies += [hubspot_api.create("companies", name=f"tie{n}") for n in range(450)]
    hubspot_api.frozen = False
    companies += [hubspot_api.create("companies", name=f"co{n}") for n in range(4_100)]
    assert len(companies) > SEARCH_WINDOW
    run = hubspot(tmp_path, config(hubspot_api, start_date="2023-01-01T00:00:00Z",
                                   properties={"companies": ["name", "hs_lastmodifieddate"]}),
                  {"companies"})
    assert run.returncode == 0, run.stderr
    assert run.ids("companies") == [c["id"] for c in companies]  # all, once, in order
    searches = hubspot_api.served("/crm/v3/objects/companies/search")
    assert max(r.body["after"] for r in searches) == 400  # only the tie pages use offsets
    assert all(r.body["after"] + r.body["limit"] <= SEARCH_WINDOW for r in searches)
    assert len(searches) == 54  # 10,550 / 200 pages plus the restarts after ties


def test_429_storm_recovers_with_every_object_exactly_once(hubspot_api: HubSpotApi,
                                                           tmp_path: Path) -> None:
    deals = [hubspot_api.create("deals", dealname=f"d{n}") for n in range(250)]
    hubspot_api.inject(Fault("status", times=5, path="/crm/v3/objects/deals", status=429,
                             retry_after=0.01))
    hubspot_api.inject(Fault("status", path="/crm/v3/objects/deals", status=502))
    hubspot_api.inject(Fault("reset", path="/crm/v3/objects/deals"))
    hubspot_api.inject(Fault("truncated", path="/crm/v3/objects/deals"))
    run = hubspot(tmp_path, config(hubspot_api), {"deals"})
    assert run.returncode == 0, run.stderr
    assert run.ids("deals") == [d["id"] for d in deals]
    served = hubspot_api.served("/crm/v3/objects/deals")
    assert [r.fault for r in served] == ["status"] * 6 + ["reset", "truncated",
                                                          None, None, None]
    assert "'retries': {'429': 5, '502': 1, 'connection': 2}" in run.stderr


def test_circuit_breaker_opens_and_stops_the_run(hubspot_api: HubSpotApi,
                                                 tmp_path: Path) -> None:
    hubspot_api.create("deals")
    hubspot_api.inject(Fault("status", times=50, path="/crm/v3/objects/deals", status=500))
    run = hubspot(tmp_path, config(hubspot_api, circuit_failure_threshold=4,
                                   circuit_max_probes=1, max_retries=30), {"deals"})
    assert run.returncode == 75  # the API is down for now: a rerun may succeed
    assert len(hubspot_api.served("/crm/v3/objects/deals")) == 5  # 4 + the failed probe
    assert "1 half-open probe(s)" in run.stderr and "Traceback" not in run.stderr


def test_a_negative_search_rate_names_the_setting(hubspot_api: HubSpotApi,
                                                  tmp_path: Path) -> None:
    hubspot_api.create("deals")
    first = hubspot(tmp_path, config(hubspot_api), {"deals"})
    run = hubspot(tmp_path, config(hubspot_api, search_requests_per_second=-1), {"deals"},
                  state=first.state)
    assert run.returncode == 2
    assert "search_requests_per_second=-1: must be 0 (unlimited) or more" in run.stderr
    assert "Traceback" not in run.stderr


def test_bad_token_fails_fast_naming_the_setting(hubspot_api: HubSpotApi,
                                                 tmp_path: Path) -> None:
    bad = "pat-na1-00000000-dead-beef-0000-000000000000"
    run = run_tap("tap-dativo-hubspot", tmp_path, config(hubspot_api, access_token=bad))
    assert run.returncode == 2
    assert "HubSpot rejected the access_token" in run.stderr
    assert "INVALID_AUTHENTICATION" in run.stderr
    assert bad not in run.stderr and "Traceback" not in run.stderr
    assert len(hubspot_api.requests) == 1


def test_missing_scope_names_the_scope(hubspot_api: HubSpotApi, tmp_path: Path) -> None:
    hubspot_api.inject(Fault("status", path="/crm/v3/objects/tickets", status=403,
                             body={"status": "error", "category": "MISSING_SCOPES",
                                   "message": "This app hasn't been granted all required "
                                              "scopes to make this call."}))
    run = hubspot(tmp_path, config(hubspot_api), {"tickets"})
    assert run.returncode == 2
    assert "add the crm.objects.<object>.read scope" in run.stderr
    assert "/crm/v3/objects/tickets" in run.stderr and "MISSING_SCOPES" in run.stderr


def test_an_unknown_property_in_the_setting_names_it(hubspot_api: HubSpotApi,
                                                     tmp_path: Path) -> None:
    run = run_tap("tap-dativo-hubspot", tmp_path, config(
        hubspot_api, properties={"deals": ["dealname", "Deal Amount"]}), "--discover")
    assert run.returncode == 2
    assert ("properties.deals: the portal has no deals property 'Deal Amount'; use internal "
            "names (GET /crm/v3/properties/deals), e.g. amount, closedate") in run.stderr
    assert "Traceback" not in run.stderr


def test_a_value_that_does_not_match_its_property_type_names_record_and_property(
    hubspot_api: HubSpotApi, tmp_path: Path
) -> None:
    hubspot_api.create("deals", amount="12.5")
    bad = hubspot_api.create("deals", amount="twelve")
    run = hubspot(tmp_path, config(hubspot_api), {"deals"})
    assert run.returncode == 2
    assert (f"stream 'deals', record id {bad['id']}, property 'amount': 'twelve' is not a "
            "valid number") in run.stderr
    assert "Traceback" not in run.stderr
