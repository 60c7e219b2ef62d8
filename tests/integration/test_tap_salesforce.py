"""tap-dativo-salesforce as a process against the Salesforce fixture server (REST and
Bulk API 2.0 on a real socket, tests/services/salesforce_api.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.services.http_fixture import Fault
from tests.services.salesforce_api import (
    CLIENT_SECRET,
    REFRESH_TOKEN,
    SalesforceApi,
    sf_field,
)
from tests.services.tap_process import TapRun, run_tap

TAP = "tap-dativo-salesforce"
FAST = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05,
        "circuit_cooldown_seconds": 0.05, "bulk_poll_seconds": 0.05}


@pytest.fixture
def api() -> Iterator[SalesforceApi]:
    server = SalesforceApi().start()
    yield server
    server.stop()


def config(api: SalesforceApi, **extra: Any) -> dict[str, Any]:
    return {**api.oauth_config(), **FAST, **extra}


def sync(tmp_path: Path, cfg: dict[str, Any], **kwargs: Any) -> TapRun:
    run = run_tap(TAP, tmp_path, cfg, **kwargs)
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, "00Dfixture!", cfg.get("private_key")):
        if secret:
            assert secret not in run.stderr and secret not in str(run.messages)
    return run


def schema(run: TapRun, stream: str) -> dict[str, Any]:
    return next(m["schema"] for m in run.messages
                if m["type"] == "SCHEMA" and m["stream"] == stream)


def ids(run: TapRun, stream: str) -> list[str]:
    return [r["Id"] for r in run.records(stream)]


def errors(run: TapRun) -> list[str]:
    return [line for line in run.stderr.splitlines() if "| ERROR" in line]


def soql(api: SalesforceApi, path: str) -> list[str]:
    return [r.one("q") or "" for r in api.served(path) if r.one("q")]


def account(api: SalesforceApi, n: int, **values: Any) -> dict[str, Any]:
    return api.insert("Account", Name=f"Acct {n}", AnnualRevenue=Decimal(f"{n}000.25"),
                      **values)


def test_discovery_maps_every_field_type_and_builds_compound_objects(
        api: SalesforceApi, tmp_path: Path) -> None:
    acme = api.insert(
        "Account", Name="Acme", Type="Customer", AnnualRevenue=Decimal("1234567.89"),
        NumberOfEmployees=42, Discount__c=Decimal("12.50"), Score__c=Decimal("1.2346"),
        Regions__c="EMEA;APAC", Active__c=True, Founded__c=dt.date(1999, 1, 2),
        BillingStreet="1 Main St\nFloor 2", BillingCity="Berlin",
        BillingPostalCode="10115", BillingLatitude=Decimal("52.520008"),
        HQ__Latitude__s=Decimal("52.52"), HQ__Longitude__s=Decimal("13.405"),
        Logo__c="aGVsbG8=")
    api.insert("Contact", LastName="Doe", AccountId=acme["Id"], Birthdate=dt.date(1980, 5, 17))
    run = sync(tmp_path, config(api))
    assert run.returncode == 0, run.stderr
    assert sorted({m["stream"] for m in run.messages if m["type"] == "SCHEMA"}) == [
        "Account", "Contact"]  # AccountFeed is not queryable
    props = schema(run, "Account")["properties"]
    assert props["Id"] == {"type": ["string"]}
    assert props["AnnualRevenue"] == {"type": ["number", "null"],
                                      "x-sql-datatype": "decimal(18,2)"}
    assert props["Discount__c"]["x-sql-datatype"] == "decimal(5,2)"
    assert props["Score__c"]["x-sql-datatype"] == "decimal(10,4)"  # formula: result type
    assert props["NumberOfEmployees"] == {"type": ["integer", "null"]}
    assert props["Regions__c"] == {"type": ["array", "null"], "items": {"type": "string"}}
    assert props["Founded__c"] == {"type": ["string", "null"], "format": "date"}
    assert props["SystemModstamp"] == {"type": ["string", "null"], "format": "date-time"}
    assert props["Active__c"] == {"type": ["boolean", "null"]}
    assert sorted(props["BillingAddress"]["properties"]) == [
        "city", "country", "latitude", "longitude", "postalCode", "state", "street"]
    assert props["HQ__c"]["properties"]["latitude"]["x-sql-datatype"] == "decimal(9,6)"
    assert "Logo__c" not in props  # base64 bodies are not read
    [record] = run.records("Account")
    assert {k: record[k] for k in ("Name", "Type", "AnnualRevenue", "NumberOfEmployees",
                                   "Discount__c", "Score__c", "Regions__c", "Active__c",
                                   "Founded__c", "SystemModstamp", "_sdc_deleted_at")} == {
        "Name": "Acme", "Type": "Customer", "AnnualRevenue": 1234567.89,
        "NumberOfEmployees": 42, "Discount__c": 12.5, "Score__c": 1.2346,
        "Regions__c": ["EMEA", "APAC"], "Active__c": True, "Founded__c": "1999-01-02",
        "SystemModstamp": "2024-01-15T10:00:01.250+00:00", "_sdc_deleted_at": None}
    assert record["BillingAddress"] == {
        "street": "1 Main St\nFloor 2", "city": "Berlin", "state": None,
        "postalCode": "10115", "country": None, "latitude": 52.520008, "longitude": None}
    assert record["HQ__c"] == {"latitude": 52.52, "longitude": 13.405}
    assert record["BillingCity"] == "Berlin"  # components stay columns too
    assert run.records("Contact")[0]["Birthdate"] == "1980-05-17"
    # compound fields are never selected: they are built from their components
    assert all("BillingAddress" not in q and "Logo__c" not in q
               for q in soql(api, "/services/data/v62.0/query"))


def test_rest_pages_by_next_records_url_in_a_stable_order(api: SalesforceApi,
                                                          tmp_path: Path) -> None:
    api.page_size = 200
    accounts = [account(api, n) for n in range(450)]
    run = sync(tmp_path, config(api, objects=["Account"]))
    assert run.returncode == 0, run.stderr
    assert ids(run, "Account") == [a["Id"] for a in accounts]
    [query] = [q for q in soql(api, "/services/data/v62.0/queryAll") if "COUNT" not in q]
    assert query.endswith("FROM Account ORDER BY SystemModstamp ASC, Id ASC")
    assert len(api.served("/services/data/v62.0/query/")) == 2  # pages 2 and 3
    assert run.state["bookmarks"]["Account"]["replication_key_value"] == (
        run.records("Account")[-1]["SystemModstamp"])


def test_bulk_job_pages_results_by_locator_and_equals_the_rest_read(
        api: SalesforceApi, tmp_path: Path) -> None:
    for n in range(250):
        account(api, n, Regions__c="EMEA" if n % 2 else None, Active__c=n % 3 == 0,
                Founded__c=dt.date(2000, 1, 1) + dt.timedelta(days=n),
                BillingCity=f"City {n}" if n % 5 else None,
                Discount__c=Decimal(n % 100) / 4)
    rest = sync(tmp_path, config(api, objects=["Account"], read_method={"Account": "rest"}))
    bulk = sync(tmp_path, config(api, objects=["Account"], read_method={"Account": "bulk"},
                                 bulk_page_records=100))
    assert rest.returncode == 0 and bulk.returncode == 0, bulk.stderr
    assert bulk.records("Account") == rest.records("Account")
    results = api.served("/services/data/v62.0/jobs/query/")
    pages = [r for r in results if r.path.endswith("/results")]
    assert [(r.one("maxRecords"), r.one("locator") is not None) for r in pages] == [
        ("100", False), ("100", True), ("100", True)]
    [job] = api.jobs.values()
    assert job.operation == "queryAll" and job.polled == 2  # InProgress, then JobComplete
    assert "ORDER BY" not in soql_of_job(api)
    assert bulk.state == rest.state


def soql_of_job(api: SalesforceApi) -> str:
    [create] = [r for r in api.served("/services/data/v62.0/jobs/query") if r.method == "POST"]
    return str(create.body["query"])


def test_bulk_threshold_chooses_the_read_method_per_object(api: SalesforceApi,
                                                           tmp_path: Path) -> None:
    for n in range(5):
        account(api, n)
    api.insert("Contact", LastName="Only")
    run = sync(tmp_path, config(api, bulk_threshold=5))
    assert run.returncode == 0, run.stderr
    assert len(run.records("Account")) == 5 and len(run.records("Contact")) == 1
    assert [job.sobject for job in api.jobs.values()] == ["Account"]
    assert "Account: 5 rows to read" in run.stderr and "Contact: 1 rows to read" in run.stderr


def test_incremental_run_reads_the_changed_and_the_deleted(api: SalesforceApi,
                                                          tmp_path: Path) -> None:
    accounts = [account(api, n) for n in range(4)]
    first = sync(tmp_path, config(api, objects=["Account"]))
    assert first.returncode == 0, first.stderr
    changed = api.update("Account", accounts[1]["Id"], Name="Renamed")
    deleted = api.delete("Account", accounts[2]["Id"])
    second = sync(tmp_path, config(api, objects=["Account"]), state=first.state)
    assert second.returncode == 0, second.stderr
    rows = {r["Id"]: r for r in second.records("Account")}
    # the bookmark's own second is read again (SOQL literals have whole seconds)
    assert list(rows) == [accounts[3]["Id"], changed["Id"], deleted["Id"]]
    assert rows[changed["Id"]]["Name"] == "Renamed"
    assert rows[changed["Id"]]["_sdc_deleted_at"] is None
    assert rows[deleted["Id"]]["IsDeleted"] is True
    assert rows[deleted["Id"]]["_sdc_deleted_at"] == rows[deleted["Id"]]["SystemModstamp"]
    query = [q for q in soql(api, "/services/data/v62.0/queryAll") if "COUNT" not in q][-1]
    assert "WHERE SystemModstamp >= 2024-01-15T10:00:05Z ORDER BY" in query
    bulk = sync(tmp_path, config(api, objects=["Account"], read_method={"Account": "bulk"}),
                state=first.state)
    assert sorted(bulk.records("Account"), key=lambda r: r["Id"]) == sorted(
        second.records("Account"), key=lambda r: r["Id"])  # Bulk results have no order


def test_without_include_deleted_the_plain_query_leaves_deleted_records_out(
        api: SalesforceApi, tmp_path: Path) -> None:
    keep, gone = account(api, 1), account(api, 2)
    api.delete("Account", gone["Id"])
    run = sync(tmp_path, config(api, objects=["Account"], include_deleted=False))
    assert ids(run, "Account") == [keep["Id"]]
    assert "_sdc_deleted_at" not in schema(run, "Account")["properties"]
    assert api.served("/services/data/v62.0/queryAll") == []


def test_an_object_without_system_modstamp_replicates_on_last_modified_date(
        api: SalesforceApi, tmp_path: Path) -> None:
    api.add_object("Ledger__c", "a01", [
        sf_field("Id", "id"), sf_field("Amount__c", "currency", precision=16, scale=2),
        sf_field("LastModifiedDate", "datetime")])
    api.objects["Ledger__c"].records["a01000000000001AAA"] = {
        "Id": "a01000000000001AAA", "Amount__c": Decimal("10.10"), "IsDeleted": False,
        "LastModifiedDate": dt.datetime(2024, 2, 1, 9, 30, tzinfo=dt.timezone.utc)}
    run = sync(tmp_path, config(api, objects=["Ledger__c"]))
    assert run.returncode == 0, run.stderr
    assert run.records("Ledger__c") == [{"Id": "a01000000000001AAA", "Amount__c": 10.1,
                                         "LastModifiedDate": "2024-02-01T09:30:00.000+00:00"}]
    assert run.state["bookmarks"]["Ledger__c"]["replication_key"] == "LastModifiedDate"
    # no IsDeleted field: the plain query endpoint, no _sdc_deleted_at
    assert soql(api, "/services/data/v62.0/query/")[-1].endswith(
        "ORDER BY LastModifiedDate ASC, Id ASC")


def test_jwt_bearer_flow_signs_an_assertion_the_server_verifies(api: SalesforceApi,
                                                               tmp_path: Path) -> None:
    account(api, 1)
    cfg = {**api.jwt_config(), **FAST, "objects": ["Account"]}
    run = sync(tmp_path, cfg)
    assert run.returncode == 0, run.stderr
    assert len(run.records("Account")) == 1
    [token] = api.served("/services/oauth2/token")
    assert b"jwt-bearer" in token.raw and b"client_secret" not in token.raw

    other = {**api.jwt_config(), **FAST}  # a new key the app does not know
    api.public_key = None
    refused = sync(tmp_path, {**other, "objects": ["Account"]})
    assert refused.returncode == 2
    [line] = errors(refused)
    assert "Salesforce refused the jwt grant" in line and "invalid_grant" in line


def test_a_revoked_refresh_token_is_one_line_exit_2(api: SalesforceApi,
                                                    tmp_path: Path) -> None:
    run = sync(tmp_path, {**config(api), "refresh_token": "5Aep861revoked.token.value"})
    assert run.returncode == 2
    [line] = errors(run)
    assert ("Salesforce refused the refresh_token grant" in line
            and "invalid_grant: expired access/refresh token" in line
            and "re-authorize" in line)
    assert "5Aep861revoked" not in run.stderr
    assert "Traceback" not in run.stderr


def test_missing_credentials_and_unknown_objects_name_the_setting(api: SalesforceApi,
                                                                  tmp_path: Path) -> None:
    cfg = config(api)
    del cfg["refresh_token"]
    [line] = errors(sync(tmp_path, cfg))
    assert "no credentials: set refresh_token and client_secret" in line
    run = sync(tmp_path, config(api, objects=["Acount"]))
    assert run.returncode == 2
    [line] = errors(run)
    assert "objects: the org has no queryable object 'Acount'; did you mean 'Account'?" in line
    [line] = errors(sync(tmp_path, config(api, read_method={"Account": "soap"})))
    assert "read_method.Account: 'soap' is not one of rest, bulk" in line


def test_an_expired_session_gets_one_new_token(api: SalesforceApi, tmp_path: Path) -> None:
    api.page_size = 200
    accounts = [account(api, n) for n in range(500)]
    api.sessions_expire_at = 5  # after discovery, between query pages
    run = sync(tmp_path, config(api, objects=["Account"]))
    assert run.returncode == 0, run.stderr
    assert ids(run, "Account") == [a["Id"] for a in accounts]
    assert len(api.served("/services/oauth2/token")) == 2
    assert "INVALID_SESSION_ID: getting a new access token" in run.stderr


def test_request_limit_exceeded_and_5xx_are_retried(api: SalesforceApi,
                                                   tmp_path: Path) -> None:
    api.page_size = 200
    accounts = [account(api, n) for n in range(300)]
    limit = [{"message": "ConcurrentPerOrgLongTxn Limit exceeded.",
              "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    api.inject(Fault("status", times=2, path="/services/data/v62.0/query/", status=403,
                     body=limit))  # type: ignore[arg-type]
    api.inject(Fault("status", times=1, path="/services/data/v62.0/jobs/query", status=503))
    run = sync(tmp_path, config(api, objects=["Account"]))
    assert run.returncode == 0, run.stderr
    assert ids(run, "Account") == [a["Id"] for a in accounts]
    assert "'retries': {'REQUEST_LIMIT_EXCEEDED': 2}" in run.stderr
    bulk = sync(tmp_path, config(api, objects=["Account"], read_method={"Account": "bulk"}))
    assert ids(bulk, "Account") == [a["Id"] for a in accounts]
    assert "'retries': {'SERVER_UNAVAILABLE': 1}" in bulk.stderr


def test_a_used_up_daily_limit_stops_with_exit_75(api: SalesforceApi,
                                                  tmp_path: Path) -> None:
    account(api, 1)
    api.daily_limit = 3  # describeGlobal, describe, count: then every request is refused
    run = sync(tmp_path, config(api, objects=["Account"], max_retries=2,
                                max_api_usage_share=1))
    assert run.returncode == 75
    [line] = errors(run)
    assert "REQUEST_LIMIT_EXCEEDED" in line and "TotalRequests Limit exceeded" in line
    assert "gave up after max_retries=2" in line


def test_usage_share_reached_stops_cleanly_with_the_state_of_what_was_read(
        api: SalesforceApi, tmp_path: Path) -> None:
    api.page_size = 200
    accounts = [account(api, n) for n in range(1000)]
    api.insert("Contact", LastName="Later")
    api.daily_limit = 10
    prom = tmp_path / "metrics"
    prom.mkdir()
    cfg = config(api, objects=["Account", "Contact"], max_api_usage_share=0.5,
                 metrics={"textfile_dir": str(prom)})
    run = sync(tmp_path, cfg)
    # describeGlobal, 2 describes, count, page 1: 5 of 10 >= 50%, stop between pages
    assert run.returncode == 0, run.stderr
    read = ids(run, "Account")
    assert read == [a["Id"] for a in accounts[:200]]
    assert run.records("Contact") == []
    assert run.state["bookmarks"]["Account"]["replication_key_value"] == (
        run.records("Account")[-1]["SystemModstamp"])
    assert "replication_key_value" not in run.state["bookmarks"].get("Contact", {})
    assert ("stopped at the API usage limit (5 of 10 daily API requests used (50%), "
            "max_api_usage_share=0.5): Account stopped between pages; Contact not read"
            ) in run.stderr
    text = (prom / "tap-dativo-salesforce.prom").read_text()
    labels = '{plugin="tap-dativo-salesforce",tenant="default"}'
    assert f"dativo_api_daily_requests_used{labels} 5.0" in text
    assert f"dativo_api_daily_requests_limit{labels} 10.0" in text

    api.daily_limit, api.usage = 15_000, 0  # the next day
    rest = sync(tmp_path, cfg, state=run.state)
    assert rest.returncode == 0, rest.stderr
    assert set(read) | set(ids(rest, "Account")) == {a["Id"] for a in accounts}
    assert ids(rest, "Account")[0] == read[-1]  # the bookmark's second, read again
    assert len(rest.records("Contact")) == 1


def test_a_failed_bulk_job_is_one_line_with_its_id_and_message(api: SalesforceApi,
                                                               tmp_path: Path) -> None:
    account(api, 1)
    api.fail_next_job("InvalidBatch : Failed to process query: INVALID_FIELD: No such "
                      "column 'Secret__c'")
    run = sync(tmp_path, config(api, objects=["Account"], read_method={"Account": "bulk"}))
    assert run.returncode == 2
    [job_id] = api.jobs
    [line] = errors(run)
    assert (f"Bulk API 2.0 query job {job_id} for Account failed: InvalidBatch : Failed to "
            "process query: INVALID_FIELD: No such column 'Secret__c'") in line
    assert 'read_method {"Account": "rest"}' in line
    assert "Traceback" not in run.stderr

    api.fail_next_job("Internal Server Error, please retry the job")
    again = sync(tmp_path, config(api, objects=["Account"], read_method={"Account": "bulk"}))
    assert again.returncode == 75
    [line] = errors(again)
    assert "Salesforce calls it temporary" in line


def test_an_object_the_bulk_api_refuses_names_the_rest_setting(api: SalesforceApi,
                                                               tmp_path: Path) -> None:
    account(api, 1)
    api.inject(Fault("status", path="/services/data/v62.0/jobs/query", status=400, body=[
        {"errorCode": "INVALIDJOB",
         "message": "Entity 'Account' is not supported by the Bulk API."}]))  # type: ignore[arg-type]
    run = sync(tmp_path, config(api, objects=["Account"], read_method={"Account": "bulk"}))
    assert run.returncode == 2
    [line] = errors(run)
    assert ("Salesforce refused POST /services/data/v62.0/jobs/query: INVALIDJOB: Entity "
            "'Account' is not supported by the Bulk API.; the Bulk API refuses some objects "
            "and queries: read this object through REST (read_method {\"<object>\": "
            "\"rest\"})") in line


def test_start_date_bounds_the_first_run(api: SalesforceApi, tmp_path: Path) -> None:
    old = [account(api, n) for n in range(3)]  # stamped 10:00:01.250 to 10:00:03.750
    new = account(api, 3)  # 10:00:05.000
    run = sync(tmp_path, config(api, objects=["Account"],
                                start_date="2024-01-15T10:00:04Z"))
    assert ids(run, "Account") == [new["Id"]]
    assert old[-1]["Id"] not in ids(run, "Account")


def test_a_session_refused_again_after_a_new_token_is_exit_2(api: SalesforceApi,
                                                            tmp_path: Path) -> None:
    account(api, 1)
    refused = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    api.inject(Fault("status", times=2, path="/services/data/v62.0/queryAll", status=401,
                     body=refused))  # type: ignore[arg-type]
    run = sync(tmp_path, config(api, objects=["Account"], read_method={"Account": "rest"}))
    assert run.returncode == 2
    [line] = errors(run)
    assert "Salesforce refused GET /services/data/v62.0/queryAll/: INVALID_SESSION_ID" in line
    assert "API Enabled permission" in line
    assert len(api.served("/services/oauth2/token")) == 2  # one new token, not a loop


def test_a_server_that_keeps_failing_stops_with_exit_75(api: SalesforceApi,
                                                        tmp_path: Path) -> None:
    account(api, 1)
    api.inject(Fault("status", times=50, path="/services/data/v62.0/queryAll", status=503))
    run = sync(tmp_path, config(api, objects=["Account"], read_method={"Account": "rest"},
                                max_retries=3))
    assert run.returncode == 75
    [line] = errors(run)
    assert "GET /services/data/v62.0/queryAll/: failed 4 times" in line


def test_a_bulk_job_that_never_completes_stops_with_exit_75(api: SalesforceApi,
                                                            tmp_path: Path) -> None:
    account(api, 1)
    api.bulk_polls = 1000
    run = sync(tmp_path, config(api, objects=["Account"], read_method={"Account": "bulk"},
                                bulk_timeout_seconds=0.3))
    assert run.returncode == 75
    [job_id] = api.jobs
    [line] = errors(run)
    assert (f"Bulk API 2.0 query job {job_id} for Account is still InProgress after 0.3 s; "
            "raise bulk_timeout_seconds") in line
