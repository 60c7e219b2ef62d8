"""`meltano run` with tap-dativo-stripe against the Stripe fixture API, into Iceberg.

The key, the API base and the stream selection come from the environment, as in a
deployment; Meltano keeps the bookmark between the two runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import read_table
from tests.e2e.test_meltano_run import copy_project, meltano, warehouse
from tests.services.stripe_api import API_KEY, StripeApi

CUSTOMERS = ("acme", "stripe", "customers")
CHARGES = ("acme", "stripe", "charges")
CHARGES_DEAD = ("acme", "stripe", "charges__dead_letter")


@pytest.fixture
def stripe_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeApi]:
    api = StripeApi().start()
    # No decimal setting here: Meltano 4.4 turns a `kind: decimal` environment value into
    # a Decimal that it then cannot write to the tap's config JSON.
    for key, value in {"API_KEY": API_KEY, "API_BASE": api.url, "LOOKBACK_SECONDS": "0",
                       "_SELECT": json.dumps(["customers.*", "charges.*"])}.items():
        monkeypatch.setenv(f"TAP_DATIVO_STRIPE_{key}", value)
    monkeypatch.setenv("TARGET_DATIVO_TENANT_ID", "acme")
    yield api
    api.stop()


def test_meltano_run_lands_stripe_customers_and_charges(stripe_api: StripeApi,
                                                        tmp_path: Path) -> None:
    customers = [stripe_api.create("customers", email=f"c{n}@example.com") for n in range(3)]
    good = stripe_api.create("charges", amount=2500, customer=customers[0]["id"])
    bad = stripe_api.create("charges", amount=100, currency="USD")  # contract: ^[a-z]{3}$
    project = copy_project(tmp_path / "project")
    meltano(project, "--environment", "dev", "run", "tap-dativo-stripe", "target-dativo")
    catalog = warehouse(project)
    rows = read_table(catalog, CUSTOMERS).to_pylist()
    assert sorted((r["id"], r["email"]) for r in rows) == sorted(
        (c["id"], c["email"]) for c in customers)
    charges = read_table(catalog, CHARGES).to_pylist()
    assert [(r["id"], r["amount"], r["currency"]) for r in charges] == [
        (good["id"], 2500, "usd")]
    assert len(read_table(catalog, CHARGES_DEAD)) == 1
    assert stripe_api.served("/v1/charges")[0].headers["authorization"] == f"Bearer {API_KEY}"

    stripe_api.update("customers", customers[1]["id"], email="moved@example.com")
    late = stripe_api.create("customers", email="late@example.com")
    meltano(project, "--environment", "dev", "run", "tap-dativo-stripe", "target-dativo")
    rows = read_table(warehouse(project), CUSTOMERS).to_pylist()
    emails = sorted(r["email"] for r in rows)
    # appended: the first three, then the new one, the bookmark's own row and the update
    assert emails == ["c0@example.com", "c1@example.com", "c2@example.com", "c2@example.com",
                      "late@example.com", "moved@example.com"]
    assert late["email"] == "late@example.com"
    assert bad["id"] not in {r["id"] for r in charges}


def test_stripe_to_markdown_kv_job_writes_a_document_per_object(stripe_api: StripeApi,
                                                                tmp_path: Path) -> None:
    customer = stripe_api.create("customers", email="jenny@example.com", name="Jenny Rosen")
    stripe_api.create("charges", amount=2500, customer=customer["id"])
    project = copy_project(tmp_path / "project")
    meltano(project, "--environment", "dev", "run", "stripe-to-markdown-kv")
    root = project / "output" / "warehouse" / "markdown_kv" / "acme"
    [charge_id] = stripe_api.objects["charges"]
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.md")) == [
        f"charges/{charge_id}.md", f"customers/{customer['id']}.md"]
    # the contract's columns (acme/stripe/customers), in its order, timestamps in UTC
    assert (root / "customers" / f"{customer['id']}.md").read_text() == (
        f"# customers\n\n## Record {customer['id']}\n\n```\nid: {customer['id']}\n"
        "object: customer\ncreated: 2023-11-14T22:13:21Z\nemail: jenny@example.com\n"
        "name: Jenny Rosen\ncurrency: usd\nbalance: 0\ndelinquent: false\n"
        "livemode: false\ndeleted: null\n```\n")
    charge_doc = (root / "charges" / f"{charge_id}.md").read_text()
    assert "amount: 2500\n" in charge_doc and "currency: usd\n" in charge_doc
    assert f"customer: {customer['id']}\n" in charge_doc
