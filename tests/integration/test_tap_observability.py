"""Every dativo tap counts its records into Prometheus metrics and never logs a secret."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dativo.exit_codes import RETRIABLE
from tests.conftest import BIN, REPO
from tests.services.mariadb import MariaDBServer
from tests.services.postgres import PostgresServer

CANARY = "Tap-Canary-Secret-31d8"


def run(tap: str, config: dict, tmp_path: Path, *args: str
        ) -> subprocess.CompletedProcess[bytes]:
    path = tmp_path / f"{tap}.json"
    path.write_text(json.dumps(config))
    return subprocess.run([str(BIN / tap), "--config", str(path), *args], capture_output=True,
                          timeout=120, cwd=REPO,
                          env={**os.environ, "LOGLEVEL": "DEBUG", "PYTHONWARNINGS": "ignore"})


def records_received(text: str, plugin: str) -> dict[str, float]:
    return {s.labels["stream"]: s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == "dativo_records_received_total"
            and s.labels["plugin"] == plugin}


def batch_config(tmp_path: Path) -> dict:
    return {"batch_config": {"encoding": {"format": "parquet"}, "batch_size": 2,
                             "storage": {"root": (tmp_path / "batches").as_uri()}}}


@pytest.mark.parametrize("batched", [False, True])
def test_tap_dativo_csv_pushes_record_counts_and_logs_json(
    tmp_path: Path, pushgateway: str, batched: bool,
) -> None:
    """Records in BATCH files count as records too (no RECORD message carries them)."""
    (tmp_path / "a.csv").write_text("id,name\n1,a\n2,b\n3,c\n")
    result = run("tap-dativo-csv", {
        "files": [{"entity": "people", "path": str(tmp_path / "a.csv"), "keys": ["id"]}],
        "tenant_id": "acme", "log_format": "json",
        "metrics": {"pushgateway_url": pushgateway},
        **(batch_config(tmp_path) if batched else {})}, tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    kinds = [m["type"] for m in map(orjson.loads, result.stdout.splitlines())]
    assert kinds.count("RECORD" if not batched else "BATCH") == (3 if not batched else 2)
    text = urllib.request.urlopen(f"{pushgateway}/metrics", timeout=10).read().decode()
    assert records_received(text, "tap-dativo-csv") == {"people": 3.0}
    json_lines = [orjson.loads(x) for x in result.stderr.splitlines() if x.startswith(b"{")]
    assert any("Beginning sync of 'people'" in x["message"] for x in json_lines)


@pytest.mark.parametrize(("reachable", "batched"), [(True, False), (True, True),
                                                     (False, False)])
def test_tap_dativo_postgres_never_shows_its_password(
    tmp_path: Path, postgres: PostgresServer, reachable: bool, batched: bool,
) -> None:
    """Trust auth ignores the password, so the run succeeds while the secret is in the
    config (also in the ADBC connection of the BATCH fast path); an unreachable DSN
    makes libpq and SQLAlchemy quote it in their errors."""
    database = f"canary_{int(reachable)}_{int(batched)}"
    postgres.create_database(database)
    postgres.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)",
                  database)
    config = ({"host": "127.0.0.1", "port": postgres.port, "user": "postgres",
               "password": CANARY, "database": database, "metrics": {
                   "textfile_dir": str(tmp_path)}} if reachable else
              {"sqlalchemy_url": f"postgresql://postgres:{CANARY}@127.0.0.1:1/{database}"})
    if batched:
        config.update(batch_config(tmp_path))
    args: list[str] = []
    if reachable:  # SQL taps sync only what the catalog selects
        catalog = orjson.loads(run("tap-dativo-postgres", config, tmp_path, "--discover").stdout)
        for stream in catalog["streams"]:
            for item in stream["metadata"]:
                if not item["breadcrumb"]:
                    item["metadata"]["selected"] = True
        (tmp_path / "catalog.json").write_bytes(orjson.dumps(catalog))
        args = ["--catalog", str(tmp_path / "catalog.json")]
    result = run("tap-dativo-postgres", config, tmp_path, *args)
    output = result.stdout + result.stderr
    assert CANARY.encode() not in output
    if reachable:
        assert result.returncode == 0, result.stderr.decode()
        text = (tmp_path / "tap-dativo-postgres.prom").read_text()
        assert records_received(text, "tap-dativo-postgres") == {"public-t": 2.0}
    else:
        assert result.returncode != 0
        assert b"***" in result.stderr


@pytest.mark.parametrize("reachable", [True, False])
def test_tap_dativo_mysql_never_shows_its_password(
    tmp_path: Path, mariadb: MariaDBServer, reachable: bool,
) -> None:
    """A real login with the canary as password (and a debug log); an unreachable URL
    makes PyMySQL and SQLAlchemy quote it in their errors."""
    database = f"canary_{int(reachable)}"
    mariadb.create_database(database)
    mariadb.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);"
                f"CREATE USER IF NOT EXISTS 'canary'@'127.0.0.1' IDENTIFIED BY '{CANARY}';"
                "GRANT SELECT ON *.* TO 'canary'@'127.0.0.1'", database)
    config = ({"host": "127.0.0.1", "port": mariadb.port, "user": "canary",
               "password": CANARY, "database": database,
               "metrics": {"textfile_dir": str(tmp_path)}} if reachable else
              {"sqlalchemy_url": f"mysql://canary:{CANARY}@127.0.0.1:1/{database}"})
    args: list[str] = []
    if reachable:
        discovered = run("tap-dativo-mysql", config, tmp_path, "--discover")
        assert CANARY.encode() not in discovered.stdout + discovered.stderr
        catalog = orjson.loads(discovered.stdout)
        for stream in catalog["streams"]:
            for item in stream["metadata"]:
                if not item["breadcrumb"]:
                    item["metadata"]["selected"] = True
        (tmp_path / "catalog.json").write_bytes(orjson.dumps(catalog))
        args = ["--catalog", str(tmp_path / "catalog.json")]
    result = run("tap-dativo-mysql", config, tmp_path, *args)
    assert CANARY.encode() not in result.stdout + result.stderr
    if reachable:
        assert result.returncode == 0, result.stderr.decode()
        text = (tmp_path / "tap-dativo-mysql.prom").read_text()
        assert records_received(text, "tap-dativo-mysql") == {f"{database}-t": 2.0}
    else:  # connection refused: a rerun may pass once the server is up
        assert result.returncode == RETRIABLE
        assert b"***" in result.stderr


@pytest.mark.parametrize(("reachable", "batched"), [(True, False), (True, True),
                                                     (False, False)])
def test_tap_dativo_snowflake_never_shows_its_secrets(
    tmp_path: Path, reachable: bool, batched: bool,
) -> None:
    """A real login with the canary as password (and a debug log, the connector's own
    lines included), through RECORDs and the Arrow fast path; a refused login with the
    canary as password, and a key whose passphrase is the canary but wrong."""
    from tests.services.snowflake import running_snowflake

    with running_snowflake(password=CANARY if reachable else "other") as server:
        server.create_database("CANARY")
        server.sql(["CREATE TABLE SALES.T (ID INT PRIMARY KEY)",
                    "INSERT INTO SALES.T VALUES (1), (2)"], "CANARY")
        config = server.tap_config(database="CANARY", password=CANARY,
                                   metrics={"textfile_dir": str(tmp_path)})
        if batched:
            config.update(batch_config(tmp_path))
        args: list[str] = []
        if reachable:
            discovered = run("tap-dativo-snowflake", config, tmp_path, "--discover")
            assert CANARY.encode() not in discovered.stdout + discovered.stderr
            catalog = orjson.loads(discovered.stdout)
            for stream in catalog["streams"]:
                for item in stream["metadata"]:
                    if not item["breadcrumb"]:
                        item["metadata"]["selected"] = True
            (tmp_path / "catalog.json").write_bytes(orjson.dumps(catalog))
            args = ["--catalog", str(tmp_path / "catalog.json")]
        result = run("tap-dativo-snowflake", config, tmp_path, *args)
        assert CANARY.encode() not in result.stdout + result.stderr
        if reachable:
            assert result.returncode == 0, result.stderr.decode()
            text = (tmp_path / "tap-dativo-snowflake.prom").read_text()
            assert records_received(text, "tap-dativo-snowflake") == {"sales-t": 2.0}
        else:  # the login refused: a human must fix the password
            assert result.returncode == 2, result.stderr.decode()
            key = tmp_path / "key.p8"
            key.write_bytes(server.private_key_pem)
            keyed = {**config, "password": None, "private_key_path": str(key),
                     "private_key_passphrase": CANARY}
            result = run("tap-dativo-snowflake", keyed, tmp_path, "--discover")
            assert result.returncode == 2, result.stderr.decode()
            assert b"private_key_passphrase does not decrypt it" in result.stderr
            assert CANARY.encode() not in result.stdout + result.stderr


def test_taps_document_the_observability_settings(tmp_path: Path) -> None:
    for tap in ("tap-dativo-csv", "tap-dativo-postgres", "tap-dativo-markdown-kv",
                "tap-dativo-mysql", "tap-dativo-snowflake"):
        about = subprocess.run([str(BIN / tap), "--about", "--format", "json"],
                               capture_output=True, timeout=60, check=True)
        settings = orjson.loads(about.stdout)["settings"]["properties"]
        assert {"metrics", "log_format", "tenant_id"} <= set(settings), tap


def test_api_tap_metrics_count_requests_retries_and_the_breaker(
    tmp_path: Path, pushgateway: str,
) -> None:
    """tap-dativo-stripe through its fixture API with a 429 storm: the pushed series
    match what the server saw."""
    from tests.integration.test_tap_stripe import config as stripe_config
    from tests.services.http_fixture import Fault
    from tests.services.stripe_api import StripeApi

    api = StripeApi().start()
    try:
        for _ in range(150):
            api.create("customers")
        api.inject(Fault("status", times=3, path="/v1/customers", status=429,
                         retry_after=0.01))
        cfg = stripe_config(api, tenant_id="obs", metrics={"pushgateway_url": pushgateway})
        result = run("tap-dativo-stripe", cfg, tmp_path)
        assert result.returncode == 0, result.stderr.decode()
        served = len(api.served("/v1/customers"))
    finally:
        api.stop()
    text = urllib.request.urlopen(f"{pushgateway}/metrics", timeout=10).read().decode()
    got = {(s.name, tuple(sorted((k, v) for k, v in s.labels.items()
                                 if k in ("endpoint", "status", "stream")))): s.value
           for f in text_string_to_metric_families(text) for s in f.samples
           if s.labels.get("tenant") == "obs"}
    endpoint = ("endpoint", "GET /v1/customers")
    assert got[("dativo_api_requests_total", (endpoint, ("status", "429")))] == 3
    assert got[("dativo_api_requests_total", (endpoint, ("status", "ok")))] == served - 3 == 2
    assert got[("dativo_api_retries_total", (endpoint,))] == 3
    assert got[("dativo_api_circuit_open", ())] == 0
    assert got[("dativo_records_received_total", (("stream", "customers"),))] == 150


@pytest.mark.parametrize("args", [["--discover"], []])
def test_google_sheets_revoked_refresh_token_is_one_line_without_the_canary(
    tmp_path: Path, args: list[str],
) -> None:
    """The canary as client_secret and inside the refresh token (debug log on): the token
    endpoint answers invalid_grant, the tap exits 2 with one clear line."""
    from tests.services.google_sheets_api import GoogleSheetsApi

    api = GoogleSheetsApi(client_secret=CANARY, refresh_token=f"1//{CANARY}").start()
    try:
        sid = api.add_spreadsheet("Book", {"S": [["k"], ["v"]]})
        api.revoke()
        config = {**api.oauth_config(), "spreadsheet_ids": [sid], "api_endpoint": api.url,
                  "drive_api_endpoint": api.url, "metrics": {"textfile_dir": str(tmp_path)}}
        result = run("tap-dativo-google-sheets", config, tmp_path, *args)
    finally:
        api.stop()
    assert result.returncode == 2, result.stderr.decode()
    assert CANARY.encode() not in result.stdout + result.stderr
    errors = [line for line in result.stderr.decode().splitlines() if "| ERROR" in line]
    assert len(errors) == 1 and ("Google refused the credentials: invalid_grant (Token has "
                                 "been expired or revoked.)") in errors[0]
    for written in tmp_path.glob("*.prom"):
        assert CANARY not in written.read_text()


def test_google_drive_revoked_refresh_token_is_one_line_without_the_canary(
    tmp_path: Path,
) -> None:
    """As for Sheets: the Drive tap's sync with a revoked refresh token and the canary as
    client_secret and inside the refresh token."""
    from tests.services.google_drive_api import DriveApi

    api = DriveApi(client_secret=CANARY, refresh_token=f"1//{CANARY}").start()
    try:
        folder = api.folder("F")
        api.add("a.txt", "text/plain", "x", parent=folder["id"])
        api.revoke()
        config = {**api.oauth_config(), "folder_ids": [folder["id"]], "api_endpoint": api.url,
                  "metrics": {"textfile_dir": str(tmp_path)}}
        result = run("tap-dativo-google-drive", config, tmp_path)
    finally:
        api.stop()
    assert result.returncode == 2, result.stderr.decode()
    assert CANARY.encode() not in result.stdout + result.stderr
    errors = [line for line in result.stderr.decode().splitlines() if "| ERROR" in line]
    assert len(errors) == 1 and ("Google refused the credentials: invalid_grant (Token has "
                                 "been expired or revoked.)") in errors[0]
    for written in tmp_path.glob("*.prom"):
        assert CANARY not in written.read_text()


@pytest.mark.parametrize("revoked", [False, True])
def test_salesforce_never_shows_its_secrets(tmp_path: Path, revoked: bool) -> None:
    """The canary as client_secret and inside the refresh token, debug log on: a sync
    (access tokens and the Sforce-Limit-Info usage in the metrics) and, with the token
    revoked, one line, exit 2; neither shows a secret. The JWT flow's PEM key neither."""
    from tests.services.salesforce_api import SalesforceApi

    api = SalesforceApi(client_secret=CANARY, refresh_token=f"5Aep861{CANARY}").start()
    try:
        api.insert("Account", Name="Acme")
        config = {**api.oauth_config(), "objects": ["Account"],
                  "metrics": {"textfile_dir": str(tmp_path)}}
        if revoked:
            api.revoke()
        result = run("tap-dativo-salesforce", config, tmp_path)
        jwt = api.jwt_config()
        signed = run("tap-dativo-salesforce", {**jwt, "objects": ["Account"]}, tmp_path)
        tokens = set(api.tokens)
    finally:
        api.stop()
    output = result.stdout + result.stderr
    assert CANARY.encode() not in output
    assert not [t for t in tokens if t.encode() in output + signed.stdout + signed.stderr]
    key_line = jwt["private_key"].splitlines()[1].encode()
    assert signed.returncode == 0 and key_line not in signed.stdout + signed.stderr
    errors = [line for line in result.stderr.decode().splitlines() if "| ERROR" in line]
    if revoked:
        assert result.returncode == 2 and len(errors) == 1
        assert "Salesforce refused the refresh_token grant" in errors[0]
    else:
        assert result.returncode == 0 and errors == [], result.stderr.decode()
        assert b'"Name": "Acme"' in result.stdout or b'"Name":"Acme"' in result.stdout
    for written in tmp_path.glob("*.prom"):
        assert CANARY not in written.read_text()
