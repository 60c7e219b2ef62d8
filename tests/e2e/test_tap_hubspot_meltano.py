"""`meltano run hubspot-to-iceberg` (the job in meltano.yml) against the HubSpot fixture.

The token, the API base and the stream selection come from the environment; the job's
loader is target-dativo-acme, whose tenant holds the HubSpot contracts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import read_table
from tests.e2e.test_meltano_run import copy_project, meltano, warehouse
from tests.services.hubspot_api import TOKEN, HubSpotApi

DEALS = ("acme", "hubspot", "deals")
DEALS_DEAD = ("acme", "hubspot", "deals__dead_letter")
CONTACTS = ("acme", "hubspot", "contacts")


@pytest.fixture
def hubspot_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotApi]:
    api = HubSpotApi().start()
    for key, value in {"ACCESS_TOKEN": TOKEN, "API_BASE": api.url,
                       "_SELECT": json.dumps(["contacts.*", "deals.*"])}.items():
        monkeypatch.setenv(f"TAP_DATIVO_HUBSPOT_{key}", value)
    yield api
    api.stop()


def test_hubspot_to_iceberg_job_lands_contacts_and_deals(hubspot_api: HubSpotApi,
                                                         tmp_path: Path) -> None:
    contacts = [hubspot_api.create("contacts", email=f"c{n}@example.com",
                                   lifecyclestage="lead") for n in range(3)]
    good = hubspot_api.create("deals", dealname="Big", amount="1500.25")
    bad = hubspot_api.create("deals", dealname="Refund", amount="-10")  # contract: >= 0
    project = copy_project(tmp_path / "project")
    meltano(project, "--environment", "dev", "run", "hubspot-to-iceberg")
    catalog = warehouse(project)
    rows = read_table(catalog, CONTACTS).to_pylist()
    assert sorted((r["id"], r["email"]) for r in rows) == [
        (c["id"], c["properties"]["email"]) for c in contacts]
    deals = read_table(catalog, DEALS).to_pylist()
    assert [(r["id"], r["dealname"], Decimal(str(r["amount"]))) for r in deals] == [
        (good["id"], "Big", Decimal("1500.25"))]
    dead = read_table(catalog, DEALS_DEAD).to_pylist()
    assert len(dead) == 1 and bad["id"] in json.dumps(dead, default=str)
