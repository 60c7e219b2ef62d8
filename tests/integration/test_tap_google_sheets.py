"""tap-dativo-google-sheets as a process against the Sheets fixture server (real HTTP,
real google-auth token exchange), from discovery to STATE."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN
from tests.services.google_api import google_error
from tests.services.google_sheets_api import GoogleSheetsApi
from tests.services.http_fixture import Fault
from tests.services.tap_process import TapRun, discover, run_tap

TAP = "tap-dativo-google-sheets"
FAST = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05,
        "circuit_cooldown_seconds": 0.05, "requests_per_second": 0}
CANARY_SECRET = "Sheets-Canary-Secret-7f3a"
CANARY_REFRESH = "1//Sheets-Canary-Refresh-91c2"
HEADER = ["Name", "Amount", "When", "Paid", "", "Name", "Stamp"]
ROWS: list[list[Any]] = [
    HEADER,
    ["alpha", 1, dt.date(2024, 3, 1), True, "x", "n1", dt.datetime(2024, 3, 1, 12, 30)],
    [],  # a blank row: skipped
    ["beta", 2.5, dt.date(1999, 12, 31), False],  # ragged: padded with nulls
    ["gamma", None, None, None, None, "n3"],
    [None, None, None, None],  # blank too
    ["delta", -7, dt.date(2024, 2, 29), True, 42, "n5", dt.datetime(2000, 1, 1, 0, 0, 1)],
]


@pytest.fixture
def api() -> Iterator[GoogleSheetsApi]:
    server = GoogleSheetsApi().start()
    yield server
    server.stop()


def config(api: GoogleSheetsApi, **extra: Any) -> dict[str, Any]:
    return {**api.oauth_config(), "api_endpoint": api.url, "drive_api_endpoint": api.url,
            **FAST, **extra}


def sync(tmp_path: Path, cfg: dict[str, Any], **kwargs: Any) -> TapRun:
    """Discover (every stream is selected by default), then sync."""
    catalog = discover(TAP, tmp_path, cfg)
    return run_tap(TAP, tmp_path, cfg, catalog=catalog, **kwargs)


def data(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_sdc_")}


def test_types_values_blank_and_ragged_rows_and_unique_headers(
    api: GoogleSheetsApi, tmp_path: Path
) -> None:
    sid = api.add_spreadsheet("Finance", {"Q1 Sales": ROWS})
    run = sync(tmp_path, config(api, spreadsheet_ids=[sid]))
    assert run.returncode == 0, run.stderr
    schema = next(m for m in run.messages if m["type"] == "SCHEMA")
    assert schema["stream"] == "q1_sales" and schema["key_properties"] == ["_sdc_row"]
    props = schema["schema"]["properties"]
    assert {name: (p["type"][0], p.get("format")) for name, p in props.items()} == {
        "Name": ("string", None), "Amount": ("number", None), "When": ("string", "date"),
        "Paid": ("boolean", None), "column_E": ("string", None), "Name_2": ("string", None),
        "Stamp": ("string", "date-time"), "_sdc_row": ("integer", None),
        "_sdc_modified_time": ("string", "date-time"), "_sdc_spreadsheet_id": ("string", None)}
    records = run.records("q1_sales")
    assert [r["_sdc_row"] for r in records] == [2, 4, 5, 7]
    assert [data(r) for r in records] == [
        {"Name": "alpha", "Amount": 1, "When": "2024-03-01", "Paid": True, "column_E": "x",
         "Name_2": "n1", "Stamp": "2024-03-01T12:30:00+00:00"},
        {"Name": "beta", "Amount": 2.5, "When": "1999-12-31", "Paid": False, "column_E": None,
         "Name_2": None, "Stamp": None},
        {"Name": "gamma", "Amount": None, "When": None, "Paid": None, "column_E": None,
         "Name_2": "n3", "Stamp": None},
        {"Name": "delta", "Amount": -7, "When": "2024-02-29", "Paid": True, "column_E": "42",
         "Name_2": "n5", "Stamp": "2000-01-01T00:00:01+00:00"}]
    assert "column E has an empty header: named 'column_E'" in run.stderr
    assert "header 'Name' repeats an earlier one: named 'Name_2'" in run.stderr
    batch = api.served(f"/v4/spreadsheets/{sid}/values:batchGet")
    assert [(r.one("ranges"), r.one("valueRenderOption"), r.one("dateTimeRenderOption"))
            for r in batch] == [("'Q1 Sales'!A2:G1000", "UNFORMATTED_VALUE", "SERIAL_NUMBER")]


def test_pages_of_bounded_rows_folder_listing_and_stream_override(
    api: GoogleSheetsApi, tmp_path: Path
) -> None:
    rows = [["id", "label"], *[[n, f"row {n}"] for n in range(1, 26)]]
    first = api.add_spreadsheet("Book A", {"Data": rows}, parents=["folderX"])
    second = api.add_spreadsheet("Book B", {"Data": [["id"], [1]], "It's": [["k"], ["v"]]},
                                 parents=["folderX"])
    api.add_spreadsheet("Elsewhere", {"Other": [["a"], [1]]}, parents=["folderY"])
    api.add_file("notes.txt", "text/plain", parents=["folderX"])
    # Both spreadsheets have a sheet 'Data': without an override the names clash.
    clash = run_tap(TAP, tmp_path, config(api, folder_id="folderX"))
    assert clash.returncode == 2
    assert "would both be stream 'data'; name one in the streams setting" in clash.stderr
    typo = run_tap(TAP, tmp_path, config(api, folder_id="folderX", streams={
        f"{second}/Data": "book_b", f"{second}/Dta": "x"}))
    assert typo.returncode == 2
    assert f"streams: no sheet '{second}/Dta' (did you mean '{second}/Data'?)" in typo.stderr

    cfg = config(api, folder_id="folderX", page_rows=10,
                 streams={f"{second}/Data": "book_b"})
    run = sync(tmp_path, cfg)
    assert run.returncode == 0, run.stderr
    assert [r["id"] for r in run.records("data")] == list(range(1, 26))
    assert run.records("data")[24]["label"] == "row 25"
    assert [data(r) for r in run.records("book_b")] == [{"id": 1}]
    assert [data(r) for r in run.records("it_s")] == [{"k": "v"}]
    listing = api.served("/drive/v3/files")
    assert listing[0].one("q") == ("'folderX' in parents and mimeType = "
                                   "'application/vnd.google-apps.spreadsheet' and trashed = "
                                   "false")
    ranges = [r.one("ranges") for r in api.served(f"/v4/spreadsheets/{first}/values")]
    # 1000 grid rows: pages of 10 from row 2 to the grid's last row
    assert ranges[:3] == ["'Data'!A2:B11", "'Data'!A12:B21", "'Data'!A22:B31"]
    assert ranges[-1] == "'Data'!A992:B1000" and len(ranges) == 100


def test_unchanged_modified_time_emits_nothing_then_an_edit_rereads(
    api: GoogleSheetsApi, tmp_path: Path
) -> None:
    sid = api.add_spreadsheet("Book", {"S": [["k", "v"], ["a", 1], ["b", 2]]})
    cfg = config(api, spreadsheet_ids=[sid])
    catalog = discover(TAP, tmp_path, cfg)
    first = run_tap(TAP, tmp_path, cfg, catalog=catalog)
    assert first.returncode == 0, first.stderr
    assert [r["v"] for r in first.records("s")] == [1, 2]
    modified = api.files[sid]["modifiedTime"]
    assert first.state["bookmarks"]["s"]["replication_key_value"] == modified

    reads = len(api.served(f"/v4/spreadsheets/{sid}/values"))
    second = run_tap(TAP, tmp_path, cfg, catalog=catalog, state=first.state)
    assert second.returncode == 0, second.stderr
    assert [m for m in second.messages if m["type"] == "RECORD"] == []
    assert f"spreadsheet {sid} unchanged since {modified}" in second.stderr
    assert len(api.served(f"/v4/spreadsheets/{sid}/values")) == reads  # not read at all

    api.set_rows(sid, "S", [["k", "v"], ["a", 1], ["b", 20], ["c", 3]])
    third = run_tap(TAP, tmp_path, cfg, catalog=catalog, state=second.state)
    assert third.returncode == 0, third.stderr
    assert [(r["k"], r["v"]) for r in third.records("s")] == [("a", 1), ("b", 20), ("c", 3)]
    assert third.state["bookmarks"]["s"]["replication_key_value"] == \
        api.files[sid]["modifiedTime"] != modified


def test_quota_storm_of_429s_and_rate_limit_403_recovers(
    api: GoogleSheetsApi, tmp_path: Path
) -> None:
    sid = api.add_spreadsheet("Book", {"S": [["k"], *[[f"r{n}"] for n in range(30)]]})
    cfg = config(api, spreadsheet_ids=[sid], page_rows=100)
    catalog = discover(TAP, tmp_path, cfg)
    path = f"/v4/spreadsheets/{sid}/values:batchGet"
    api.inject(Fault("status", times=4, path=path, status=429, retry_after=0.05))
    api.inject(Fault("status", times=1, path=path, status=403, body=google_error(
        403, "Quota exceeded for quota metric 'Read requests'", "RATE_LIMIT_EXCEEDED")))
    api.inject(Fault("status", times=1, path=path, status=503))
    run = run_tap(TAP, tmp_path, cfg, catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert [r["k"] for r in run.records("s")] == [f"r{n}" for n in range(30)]
    statuses = [r.fault for r in api.served(path)]
    assert statuses.count("status") == 6 and statuses[-1] is None
    assert "'retries': {'429': 5, '503': 1}" in run.stderr


def test_quota_storm_that_never_ends_exits_75_naming_the_request(
    api: GoogleSheetsApi, tmp_path: Path
) -> None:
    sid = api.add_spreadsheet("Book", {"S": [["k"], ["v"]]})
    cfg = config(api, spreadsheet_ids=[sid], max_retries=2, circuit_failure_threshold=50)
    catalog = discover(TAP, tmp_path, cfg)
    api.inject(Fault("status", times=10, path=f"/v4/spreadsheets/{sid}/values", status=429))
    run = run_tap(TAP, tmp_path, cfg, catalog=catalog)
    assert run.returncode == 75, run.stderr
    assert f"/v4/spreadsheets/{sid}/values:batchGet" in run.stderr
    assert len(api.served(f"/v4/spreadsheets/{sid}/values")) == 3


def test_expired_token_refreshes_once_and_the_run_continues(
    api: GoogleSheetsApi, tmp_path: Path
) -> None:
    rows = [["n"], *[[n] for n in range(1, 21)]]
    sid = api.add_spreadsheet("Book", {"S": rows})
    cfg = config(api, spreadsheet_ids=[sid], page_rows=5)
    catalog = discover(TAP, tmp_path, cfg)
    grants_before = len(api.token_grants)

    # Expire every token right after the second page has been served.
    original = api.route

    def route(request: Any) -> Any:
        response = original(request)
        if request.path.endswith("values:batchGet") and request.one("ranges") == "'S'!A7:A11":
            api.expire_tokens()
        return response

    api.route = route  # type: ignore[method-assign]
    run = run_tap(TAP, tmp_path, cfg, catalog=catalog)
    assert run.returncode == 0, run.stderr
    assert [r["n"] for r in run.records("s")] == list(range(1, 21))
    assert len(api.token_grants) - grants_before == 2  # the first token, then one refresh
    pages = [(r.one("ranges"), r.headers["authorization"])
             for r in api.served(f"/v4/spreadsheets/{sid}/values")]
    assert [p[0] for p in pages][:5] == ["'S'!A2:A6", "'S'!A7:A11", "'S'!A12:A16",
                                         "'S'!A12:A16", "'S'!A17:A21"]
    # The same page twice: answered 401 with the expired token, then with the new one.
    assert pages[3][1] != pages[2][1] and pages[4][1] == pages[3][1]


def test_revoked_refresh_token_is_one_line_exit_2_without_the_secrets(
    api: GoogleSheetsApi, tmp_path: Path
) -> None:
    api.client_secret, api.refresh_token = CANARY_SECRET, CANARY_REFRESH
    sid = api.add_spreadsheet("Book", {"S": [["k"], ["v"]]})
    api.revoke()
    cfg = config(api, spreadsheet_ids=[sid])
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps({**cfg, "metrics": {"textfile_dir": str(tmp_path)}}))
    env_dir = tmp_path / "reports"
    env_dir.mkdir()
    for args, level in ((["--discover"], "INFO"), ([], "INFO"), ([], "DEBUG")):
        result = subprocess.run([str(BIN / TAP), "--config", str(cfg_path), *args],
                                capture_output=True, timeout=120, cwd=tmp_path,
                                env={"PATH": str(BIN), "DATIVO_RUN_REPORT_DIR": str(env_dir),
                                     "LOGLEVEL": level})
        assert result.returncode == 2, result.stderr
        if level == "INFO":
            errors = [line for line in result.stderr.decode().splitlines() if "ERROR" in line]
            assert len(errors) == 1, result.stderr
            assert ("Google refused the credentials: invalid_grant (Token has been expired "
                    "or revoked.); check") in errors[0]
        for secret in (CANARY_SECRET, CANARY_REFRESH):
            assert secret.encode() not in result.stdout + result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != cfg_path]
    assert len(list(env_dir.glob("*.json"))) == 3, "one run report per process"
    for path in written:
        for secret in (CANARY_SECRET, CANARY_REFRESH):
            assert secret.encode() not in path.read_bytes(), path


def test_service_account_key_signs_a_jwt_the_token_endpoint_verifies(
    api: GoogleSheetsApi, tmp_path: Path
) -> None:
    sid = api.add_spreadsheet("Book", {"S": [["k"], ["v"]]})
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(api.service_account_info()))
    cfg = {"service_account_key_file": str(key_file), "spreadsheet_ids": [sid],
           "api_endpoint": api.url, "drive_api_endpoint": api.url, **FAST}
    run = sync(tmp_path, cfg)
    assert run.returncode == 0, run.stderr
    assert [r["k"] for r in run.records("s")] == ["v"]
    assert set(api.token_grants) == {"urn:ietf:params:oauth:grant-type:jwt-bearer"}
    # A key whose private key is not the one the server knows is refused, one line.
    other = GoogleSheetsApi()
    key_file.write_text(json.dumps({**api.service_account_info(),
                                    "private_key": other.service_account_info()["private_key"]}))
    bad = run_tap(TAP, tmp_path, cfg)
    assert bad.returncode == 2
    assert "Google refused the credentials: invalid_grant (Invalid JWT Signature." in bad.stderr


def test_about_and_config_errors(api: GoogleSheetsApi, tmp_path: Path) -> None:
    about = subprocess.run([str(BIN / TAP), "--about", "--format", "json"],
                           capture_output=True, timeout=60, check=True)
    settings = json.loads(about.stdout)["settings"]["properties"]
    for key in ("service_account_key", "client_secret", "refresh_token"):
        assert settings[key].get("secret") is True
    assert settings["page_rows"]["default"] == 10_000
    none = run_tap(TAP, tmp_path, {**api.oauth_config(), "api_endpoint": api.url})
    assert none.returncode == 2
    assert ("set spreadsheet_ids (ids from the spreadsheets' URLs), folder_id (a Drive "
            "folder of spreadsheets) or ranges") in none.stderr
    missing = run_tap(TAP, tmp_path, {"client_id": "x", "spreadsheet_ids": ["s"]})
    assert missing.returncode == 2
    assert "no Google credentials: set service_account_key" in missing.stderr
    assert "(missing: client_secret, refresh_token)" in missing.stderr
    gone = run_tap(TAP, tmp_path, config(api, spreadsheet_ids=["nope"]))
    assert gone.returncode == 2
    assert "Google has no /v4/spreadsheets/nope" in gone.stderr


def test_configured_ranges_are_streams_with_the_range_header(
    api: GoogleSheetsApi, tmp_path: Path
) -> None:
    sid = api.add_spreadsheet("Report", {"Summary": [
        ["Quarterly report"],
        [],
        [None, "region", "", "total", "outside"],
        [None, "north", "x", 10, "no"],
        [None, "south", None, 20],
        [None, "east", "y", 30, "no"],
    ]})
    ranges = [{"spreadsheet_id": sid, "range": "Summary!B3:D", "stream": "regions"},
              {"spreadsheet_id": sid, "range": "'Summary'!B3:D4", "stream": "first_region"}]
    run = sync(tmp_path, config(api, ranges=ranges))
    assert run.returncode == 0, run.stderr
    assert [(r["_sdc_row"], data(r)) for r in run.records("regions")] == [
        (4, {"region": "north", "column_C": "x", "total": 10}),
        (5, {"region": "south", "column_C": None, "total": 20}),
        (6, {"region": "east", "column_C": "y", "total": 30})]
    assert [data(r) for r in run.records("first_region")] == [
        {"region": "north", "column_C": "x", "total": 10}]
    assert "column C has an empty header: named 'column_C'" in run.stderr
    batch = [r.one("ranges") for r in api.served(f"/v4/spreadsheets/{sid}/values")]
    assert sorted(batch) == ["'Summary'!B4:D1000", "'Summary'!B4:D4"]

    for bad, message in (
        ({"range": "B3:D"}, "ranges[0].range='B3:D': expected '<sheet title>!<first "
                            "cell>:<last cell>'"),
        ({"range": "Summary!B3:B3"}, "ranges[0].range='Summary!B3:B3': 'B3:B3' leaves no "
                                     "row below the header row 3"),
        ({"range": "Sumary!B3:D"}, f"ranges[0].range: spreadsheet {sid} has no sheet "
                                   "'Sumary' (did you mean 'Summary'?)"),
    ):
        failed = run_tap(TAP, tmp_path, config(api, ranges=[{**ranges[0], **bad}]))
        assert failed.returncode == 2
        assert message in failed.stderr


def test_contract_types_columns_matched_by_name_and_warns_of_absent_ones(
    api: GoogleSheetsApi, tmp_path: Path
) -> None:
    contract = tmp_path / "contracts" / "acme" / "ops" / "stock.odcs.yaml"
    contract.parent.mkdir(parents=True)
    contract.write_text(
        "apiVersion: v3.0.2\nkind: DataContract\nid: stock\nname: Stock\nversion: 1.0.0\n"
        "status: active\ntenant: acme\ndomain: ops\nschema:\n  - name: stock\n"
        "    properties:\n      - name: item_id\n        logicalType: integer\n"
        "      - name: counted_on\n        logicalType: date\n"
        "      - name: active\n        logicalType: boolean\n"
        "      - name: warehouse\n        logicalType: string\n")
    sid = api.add_spreadsheet("Ops", {"Stock": [
        ["Item ID", "Counted on", "note", "active"],
        ["7", "2024-06-01", 3, "TRUE"],
        [8.0, dt.date(2024, 6, 2), "ok", False],
        ["x9", 45000, None, "maybe"],
    ]})
    run = sync(tmp_path, config(api, spreadsheet_ids=[sid], tenant_id="acme",
                                contracts_dir=str(tmp_path / "contracts")))
    assert run.returncode == 0, run.stderr
    assert (f"stream stock: contract {contract} has column(s) warehouse that sheet 'Stock' "
            "has no header for; they are sent empty") in run.stderr
    props = next(m for m in run.messages if m["type"] == "SCHEMA")["schema"]["properties"]
    assert (props["item_id"]["type"], props["counted_on"]["format"], props["note"]["type"]) \
        == (["integer", "null"], "date", ["string", "null"])
    # Text and numbers are converted to the contract's types; what does not convert stays
    # as it is, for the target's dead-letter table.
    assert [data(r) for r in run.records("stock")] == [
        {"item_id": 7, "counted_on": "2024-06-01", "note": "3", "active": True},
        {"item_id": 8, "counted_on": "2024-06-02", "note": "ok", "active": False},
        {"item_id": "x9", "counted_on": "2023-03-15", "note": None, "active": "maybe"}]


def test_date_times_are_in_the_spreadsheets_time_zone(api: GoogleSheetsApi, tmp_path: Path
                                                      ) -> None:
    sid = api.add_spreadsheet("NY", {"Log": [
        ["at"], [dt.datetime(2024, 3, 1, 12, 30)], [dt.datetime(2024, 7, 1, 0, 0, 0, 250000)],
    ]}, time_zone="America/New_York")
    run = sync(tmp_path, config(api, spreadsheet_ids=[sid]))
    assert run.returncode == 0, run.stderr
    assert [r["at"] for r in run.records("log")] == [
        "2024-03-01T12:30:00-05:00", "2024-07-01T00:00:00.250000-04:00"]
    odd = api.add_spreadsheet("Odd", {"S": [["k"], ["v"]]}, time_zone="Mars/Olympus_Mons")
    failed = run_tap(TAP, tmp_path, config(api, spreadsheet_ids=[odd]))
    assert failed.returncode == 2
    assert f"spreadsheet {odd}: its time zone 'Mars/Olympus_Mons' is not in" in failed.stderr
