"""Google Sheets rows of ``make bench`` (``--runs sheets``): a 100,000-row sheet served in
pages by the Sheets fixture server (tests/services/google_sheets_api.py, a real local
HTTP server speaking Sheets v4 and the OAuth token endpoint), read by
tap-dativo-google-sheets to stdout and piped into target-dativo-iceberg, against a floor
that fetches and parses the same pages with requests + orjson.

The peer, singer-io ``tap-google-sheets`` 3.1.2, is not run: its client
(``tap_google_sheets/client.py``) hard-codes ``https://sheets.googleapis.com/v4``,
``https://www.googleapis.com/drive/v3`` and the token URI
``https://oauth2.googleapis.com/token`` and has no setting to change them, so it cannot
be pointed at the fixture server (bench/README.md).

The server runs in the bench's own process (threads); the sheet is built once per bench
run and not timed. Every run gets ``requests_per_second: 0``: the tap's default (1
request/s, Sheets' 60 read requests per minute) would measure the rate limit, not the tap.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import TENANT
from bench.measure import count_table_rows, measure
from bench.postgres_tap import count_records
from tests.services.google_sheets_api import GoogleSheetsApi, column_letter

if TYPE_CHECKING:
    from bench.report import Result

SHEET_ROWS = 100_000
TITLE = "Bench Rows"
STREAM = "bench_rows"  # the title made a table name, as the tap names its stream
PAGE_ROWS = 10_000  # the tap's default page_rows; the floor asks for the same ranges
HEADER = ["id", "name", "amount", "qty", "active", "signup_date", "updated_at", "note"]
# The floor: one token, the sheet's row count, then the pages the tap asks for, each
# parsed by orjson; no types, no Singer messages. Prints the rows it saw.
FLOOR_CODE = """\
import sys, orjson, requests
url, client_id, secret, refresh, sheet_id, title, page, last = sys.argv[1:9]
page = int(page)
session = requests.Session()
grant = {"grant_type": "refresh_token", "client_id": client_id, "client_secret": secret,
         "refresh_token": refresh}
token = orjson.loads(session.post(f"{url}/token", data=grant).content)["access_token"]
session.headers["Authorization"] = f"Bearer {token}"
book = orjson.loads(session.get(f"{url}/v4/spreadsheets/{sheet_id}",
                                params={"includeGridData": "false"}).content)
rows = next(s["properties"]["gridProperties"]["rowCount"] for s in book["sheets"]
            if s["properties"]["title"] == title)
quoted = "'" + title.replace("'", "''") + "'"
seen = 0
for start in range(2, rows + 1, page):
    end = min(rows, start + page - 1)
    answer = session.get(f"{url}/v4/spreadsheets/{sheet_id}/values:batchGet", params={
        "ranges": f"{quoted}!A{start}:{last}{end}", "valueRenderOption": "UNFORMATTED_VALUE",
        "dateTimeRenderOption": "SERIAL_NUMBER", "majorDimension": "ROWS"})
    answer.raise_for_status()
    seen += len(orjson.loads(answer.content)["valueRanges"][0].get("values") or [])
print(seen)
"""


def sheet_rows(count: int) -> list[list[Any]]:
    """The header and ``count`` rows: an int key, text (every 10th with accents and an
    emoji), a 2-decimal amount, an int, a boolean, a date, a datetime, and a note that
    is blank on every 7th row (an empty cell inside the row, as Sheets sends it)."""
    day, moment = dt.date(2020, 1, 1), dt.datetime(2024, 1, 1)
    rows: list[list[Any]] = [list(HEADER)]
    for i in range(1, count + 1):
        name = f"Zoë Ünal {i} 😀" if i % 10 == 1 else f"user-{i}"
        rows.append([i, name, (i % 100_000) / 100, i % 1000 - 500, i % 2 == 0,
                     day + dt.timedelta(days=i % 3000), moment + dt.timedelta(seconds=i),
                     None if i % 7 == 0 else f"note {i % 97}"])
    return rows


class SheetsServer:
    """The fixture server with the bench sheet, started on first use."""

    def __init__(self) -> None:
        self.api: GoogleSheetsApi | None = None
        self.spreadsheet_id = ""

    def start(self) -> GoogleSheetsApi:
        if self.api is None:
            api = GoogleSheetsApi()
            api.start()
            self.spreadsheet_id = api.add_spreadsheet("bench", {TITLE: sheet_rows(SHEET_ROWS)})
            self.api = api
        return self.api

    def tap_config(self, run_dir: Path) -> Path:
        api = self.start()
        config = {**api.oauth_config(), "api_endpoint": api.url, "drive_api_endpoint": api.url,
                  "spreadsheet_ids": [self.spreadsheet_id], "page_rows": PAGE_ROWS,
                  "requests_per_second": 0, "tenant_id": TENANT}
        path = run_dir / "tap.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return path

    def floor_command(self) -> list[str]:
        api = self.start()
        oauth = api.oauth_config()
        return [sys.executable, "-c", FLOOR_CODE, api.url, oauth["client_id"],
                oauth["client_secret"], oauth["refresh_token"], self.spreadsheet_id, TITLE,
                str(PAGE_ROWS), column_letter(len(HEADER) - 1)]

    def close(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None


class SheetsRuns:
    """The Google Sheets rows of :class:`bench.run.Bench` (mixed in, so ``--runs`` finds
    them by name); each run gets a fresh directory and writes its output there."""

    bin: Path
    env: dict[str, str]
    timeout: float
    sheets: SheetsServer

    def _dir(self, key: str) -> Path:  # provided by Bench
        raise NotImplementedError

    def _target(self, run_dir: Path, **settings: object) -> list[str]:  # provided by Bench
        raise NotImplementedError

    def _sheets_measure(self, result: Result, cmd: list[str], run_dir: Path) -> None:
        result.expected_rows = SHEET_ROWS
        result.seconds, result.peak_rss = measure(
            cmd, stdin=None, run_dir=run_dir, env=self.env, timeout=self.timeout)

    def sheets_floor(self, result: Result) -> None:
        """requests + orjson over the pages the tap reads; rows counted by the floor."""
        run_dir = self._dir("sheets-floor")
        self._sheets_measure(result, self.sheets.floor_command(), run_dir)
        result.rows = int((run_dir / "stdout.log").read_text(encoding="utf-8").strip())

    def sheets_tap(self, result: Result) -> None:
        """tap-dativo-google-sheets, discovery included, RECORDs to a file."""
        run_dir = self._dir("sheets-tap")
        cmd = [str(self.bin / "tap-dativo-google-sheets"), "--config",
               str(self.sheets.tap_config(run_dir))]
        self._sheets_measure(result, cmd, run_dir)
        result.rows = count_records(run_dir / "stdout.log")

    def sheets_iceberg(self, result: Result) -> None:
        """``tap-dativo-google-sheets | target-dativo-iceberg`` over an OS pipe, RECORDs
        in between: from the served pages to committed Iceberg rows."""
        run_dir = self._dir("sheets-iceberg")
        tap = [str(self.bin / "tap-dativo-google-sheets"), "--config",
               str(self.sheets.tap_config(run_dir))]
        pipeline = f"set -o pipefail; {shlex.join(tap)} | {shlex.join(self._target(run_dir))}"
        self._sheets_measure(result, ["bash", "-c", pipeline], run_dir)
        result.rows = count_table_rows(run_dir, (TENANT, "default", STREAM))

