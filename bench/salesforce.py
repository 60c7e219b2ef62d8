"""Salesforce rows of ``make bench`` (``--runs salesforce``): 200,000 Account records read
through a Bulk API 2.0 query job of the Salesforce fixture server
(tests/services/salesforce_api.py, a real local HTTP server speaking REST, Bulk 2.0 and
the OAuth token endpoint), by tap-dativo-salesforce to stdout and piped into
target-dativo-iceberg, against a floor that runs the same job (create, poll, download
the CSV pages by locator) with requests and csv.reader.

The peer, singer-io ``tap-salesforce`` 2.8.1, is not run: ``Salesforce.login``
(``tap_salesforce/salesforce/__init__.py``) posts to the hard-coded
``https://login.salesforce.com/services/oauth2/token`` (or ``test.salesforce.com`` with
``is_sandbox``) and takes the instance URL only from that answer, so it cannot be pointed
at a local server; and its bulk reads use Bulk API 1.0 (``/services/async/``), not the
2.0 query jobs this bench measures (bench/README.md).

The server runs in the bench's own process (threads); the org is filled once per bench
run and not timed.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import TENANT
from bench.measure import count_table_rows, measure
from bench.postgres_tap import count_records
from tests.services.salesforce_api import API_VERSION, SalesforceApi

if TYPE_CHECKING:
    from bench.report import Result

ACCOUNT_ROWS = 200_000
PAGE_RECORDS = 50_000  # the tap's default bulk_page_records; the floor asks for the same
STREAM = "account"  # the table the target makes of the Account stream
# The floor: one token, describe, the job (created, polled, its CSV pages downloaded by
# locator) parsed by csv.reader; no types, no Singer messages. Prints the rows it saw.
FLOOR_CODE = """\
import csv, io, sys, time, requests
url, client_id, secret, refresh, version, page = sys.argv[1:7]
session = requests.Session()
grant = {"grant_type": "refresh_token", "client_id": client_id, "client_secret": secret,
         "refresh_token": refresh}
token = session.post(f"{url}/services/oauth2/token", data=grant).json()["access_token"]
session.headers["Authorization"] = f"Bearer {token}"
base = f"{url}/services/data/v{version}"
fields = [f["name"] for f in session.get(f"{base}/sobjects/Account/describe").json()["fields"]
          if f["type"] not in ("address", "location", "base64")]
job = session.post(f"{base}/jobs/query", json={
    "operation": "queryAll", "query": f"SELECT {', '.join(fields)} FROM Account",
    "contentType": "CSV"}).json()["id"]
while session.get(f"{base}/jobs/query/{job}").json()["state"] != "JobComplete":
    time.sleep(0.5)
seen, locator = 0, None
while True:
    params = {"maxRecords": page, **({"locator": locator} if locator else {})}
    answer = session.get(f"{base}/jobs/query/{job}/results", params=params)
    answer.raise_for_status()
    seen += sum(1 for _ in csv.reader(io.StringIO(answer.text))) - 1
    locator = answer.headers.get("Sforce-Locator")
    if not locator or locator == "null":
        break
print(seen)
"""


def account_rows(count: int) -> list[dict[str, Any]]:
    """``count`` Accounts: text (every 10th with accents and an emoji), a currency, an
    int, a percent, a multipicklist, a boolean, a date, and a billing address with
    coordinates; the website is blank on every 7th row."""
    day = dt.date(1990, 1, 1)
    rows = []
    for i in range(1, count + 1):
        name = f"Zoë Ünal GmbH {i} 😀" if i % 10 == 1 else f"Account {i}"
        rows.append({
            "Name": name, "Type": ("Customer", "Partner", "Prospect")[i % 3],
            "AnnualRevenue": Decimal(i % 1_000_000) / 100 + 1000,
            "NumberOfEmployees": i % 5000, "Discount__c": Decimal(i % 10_000) / 100,
            "Regions__c": "EMEA;APAC" if i % 2 else "AMER", "Active__c": i % 2 == 0,
            "Founded__c": day + dt.timedelta(days=i % 10_000),
            "BillingStreet": f"{i} Main Street", "BillingCity": "Berlin",
            "BillingPostalCode": f"{10000 + i % 90000}", "BillingCountry": "DE",
            "BillingLatitude": Decimal("52.520008"), "BillingLongitude": Decimal("13.404954"),
            "Phone": f"+49 30 {i:07d}",
            "Website": None if i % 7 == 0 else f"https://example.com/{i}"})
    return rows


class SalesforceServer:
    """The fixture server with the bench Accounts, started on first use."""

    def __init__(self) -> None:
        self.api: SalesforceApi | None = None

    def start(self) -> SalesforceApi:
        if self.api is None:
            api = SalesforceApi(bulk_polls=1)
            api.start()
            api.bulk_load("Account", account_rows(ACCOUNT_ROWS))
            self.api = api
        return self.api

    def tap_config(self, run_dir: Path) -> Path:
        api = self.start()
        api.usage = 0  # every run starts the day fresh
        config = {**api.oauth_config(), "objects": ["Account"], "bulk_threshold": 100_000,
                  "bulk_page_records": PAGE_RECORDS, "bulk_poll_seconds": 0.5,
                  "tenant_id": TENANT}
        path = run_dir / "tap.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return path

    def floor_command(self) -> list[str]:
        api = self.start()
        oauth = api.oauth_config()
        return [sys.executable, "-c", FLOOR_CODE, api.url, oauth["client_id"],
                oauth["client_secret"], oauth["refresh_token"], API_VERSION,
                str(PAGE_RECORDS)]

    def close(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None


class SalesforceRuns:
    """The Salesforce rows of :class:`bench.run.Bench` (mixed in, so ``--runs`` finds
    them by name); each run gets a fresh directory and writes its output there."""

    bin: Path
    env: dict[str, str]
    timeout: float
    salesforce: SalesforceServer

    def _dir(self, key: str) -> Path:  # provided by Bench
        raise NotImplementedError

    def _target(self, run_dir: Path, **settings: object) -> list[str]:  # provided by Bench
        raise NotImplementedError

    def _sf_measure(self, result: Result, cmd: list[str], run_dir: Path) -> None:
        result.expected_rows = ACCOUNT_ROWS
        result.seconds, result.peak_rss = measure(
            cmd, stdin=None, run_dir=run_dir, env=self.env, timeout=self.timeout)

    def salesforce_floor(self, result: Result) -> None:
        """requests + csv.reader over the same Bulk job; rows counted by the floor."""
        run_dir = self._dir("salesforce-floor")
        self._sf_measure(result, self.salesforce.floor_command(), run_dir)
        result.rows = int((run_dir / "stdout.log").read_text(encoding="utf-8").strip())

    def salesforce_tap(self, result: Result) -> None:
        """tap-dativo-salesforce, discovery and the row count included, RECORDs to a
        file (200,000 rows >= bulk_threshold: a Bulk API 2.0 job)."""
        run_dir = self._dir("salesforce-tap")
        cmd = [str(self.bin / "tap-dativo-salesforce"), "--config",
               str(self.salesforce.tap_config(run_dir))]
        self._sf_measure(result, cmd, run_dir)
        result.rows = count_records(run_dir / "stdout.log")

    def salesforce_iceberg(self, result: Result) -> None:
        """``tap-dativo-salesforce | target-dativo-iceberg`` over an OS pipe, RECORDs in
        between: from the Bulk job to committed Iceberg rows."""
        run_dir = self._dir("salesforce-iceberg")
        tap = [str(self.bin / "tap-dativo-salesforce"), "--config",
               str(self.salesforce.tap_config(run_dir))]
        pipeline = f"set -o pipefail; {shlex.join(tap)} | {shlex.join(self._target(run_dir))}"
        self._sf_measure(result, ["bash", "-c", pipeline], run_dir)
        result.rows = count_table_rows(run_dir, (TENANT, "default", STREAM))
