"""Secret references against real components: a throwaway PostgreSQL with password
logins (rotation between two connects, the retry when the secret rotates during a
connect, the tap's CLI), the Vault fixture server through hvac (KV v2 and transit),
and the Stripe fixture API (a 401 makes the tap read its key again)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa

from dativo.crypto.providers import VaultTransitKeyProvider, resolve_key
from dativo.errors import ConfigError
from dativo.google_auth import GoogleSession
from dativo.iceberg.catalog import open_catalog
from dativo.logs import redact
from dativo.resilience import ResiliencePolicy
from dativo.resilience_settings import ResilienceSettings
from dativo.secrets import FreshSecret, resolve_secret
from tap_dativo_hubspot.client import HubSpotClient
from tap_dativo_mysql.client import MySQLConnector
from tap_dativo_postgres.client import PostgresConnector, psycopg2_dsn
from tap_dativo_stripe.client import StripeTransport
from tests.conftest import BIN
from tests.services.google_api import GoogleApi
from tests.services.hubspot_api import HubSpotApi
from tests.services.mariadb import MariaDBServer
from tests.services.postgres import PostgresServer
from tests.services.stripe_api import StripeApi
from tests.services.vault_api import ROOT_TOKEN, VaultApi

TAP = str(BIN / "tap-dativo-postgres")


# -- PostgreSQL with a password login ----------------------------------------------------


@pytest.fixture
def login(postgres: PostgresServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A role that must log in with a password (the session cluster trusts every other
    role: one pg_hba.conf line, first match, for this role only), its database, and the
    password in a secret file."""
    role, password = f"r_{uuid.uuid4().hex[:10]}", f"Pw-{uuid.uuid4().hex}"
    database = f"d_{uuid.uuid4().hex[:10]}"
    postgres.psql(f"CREATE ROLE {role} LOGIN REPLICATION PASSWORD '{password}'")
    postgres.psql(f'CREATE DATABASE "{database}" OWNER {role}')
    postgres.psql("CREATE TABLE items (id int PRIMARY KEY, name text); "
                  f"ALTER TABLE items OWNER TO {role}; INSERT INTO items VALUES (1, 'one')",
                  database)
    hba = Path(postgres.psql("SHOW hba_file").strip())
    original = hba.read_text()
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n"
                   f"host replication {role} 127.0.0.1/32 scram-sha-256\n{original}")
    postgres.psql("SELECT pg_reload_conf()")
    secret = tmp_path / "pg_password"
    secret.write_text(password + "\n")
    try:
        yield {"role": role, "password": password, "database": database, "file": secret,
               "config": {"host": postgres.host, "port": postgres.port, "user": role,
                          "database": database, "password": f"file:{secret}"}}
    finally:
        hba.write_text(original)
        postgres.psql("SELECT pg_reload_conf()")
        postgres.psql("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                      f"WHERE database = '{database}' AND active_pid IS NOT NULL")
        deadline = time.monotonic() + 60  # the killed walsender exits, then the drop
        while postgres.psql("SELECT count(*) FROM pg_replication_slots WHERE database = "
                            f"'{database}' AND active").strip() != "0" \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        postgres.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                      f"WHERE database = '{database}'")


def rotate(postgres: PostgresServer, login: dict[str, Any], *, file: bool = True) -> str:
    """A new password for the role (and in its file, unless ``file`` is False)."""
    new = f"Pw-{uuid.uuid4().hex}"
    postgres.psql(f"ALTER ROLE {login['role']} PASSWORD '{new}'")
    if file:
        login["file"].write_text(new + "\n")
    return new


def test_a_rotated_file_is_used_by_the_next_connection(postgres: PostgresServer,
                                                       login: dict[str, Any]) -> None:
    """Two connects of one connector (one engine, no restart), the role's password and
    the file rotated in between: the second connection logs in with the new one."""
    connector = PostgresConnector(config=login["config"])
    select = sa.text("SELECT name FROM items")
    with connector.connect() as first:  # held open: the next connect is a new login
        assert first.execute(select).scalar() == "one"
        rotate(postgres, login)
        with connector.connect() as second:
            assert second.execute(select).scalar() == "one"
            assert second.connection.dbapi_connection is not first.connection.dbapi_connection

    rotate(postgres, login, file=False)  # the file is stale: a clear refusal
    connector._engine.dispose()
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"), \
            connector.connect():
        pass


def test_a_secret_rotated_during_the_connect_is_read_again_once(
        postgres: PostgresServer, login: dict[str, Any]) -> None:
    """The file changes after it was read, before the server refused the old password:
    the connect reads it again and logs in, without failing the run."""
    connector = PostgresConnector(config=login["config"])
    new = rotate(postgres, login, file=False)  # the server has the new one already
    attempts: list[str] = []

    def connect(url: sa.engine.URL) -> Any:
        attempts.append(str(url.password))
        if len(attempts) == 1:
            login["file"].write_text(new + "\n")  # the secret store catches up
        return psycopg2.connect(**psycopg2_dsn(url))

    conn = connector.connect_fresh(connect)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == (login["role"],)
    finally:
        conn.close()
    assert attempts == [login["password"], new]


def run_tap(tmp_path: Path, config: dict[str, Any], *args: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(config))
    return subprocess.run([TAP, "--config", str(path), *args], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line or "Traceback" in line]


def test_discovery_with_a_file_reference_never_logs_the_password(
        tmp_path: Path, login: dict[str, Any]) -> None:
    result = run_tap(tmp_path, login["config"], "--discover", env={"LOGLEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr
    assert [s["tap_stream_id"] for s in json.loads(result.stdout)["streams"]] \
        == ["public-items"]
    assert login["password"] not in result.stderr + result.stdout


def test_a_missing_env_variable_is_one_line_and_exit_2(tmp_path: Path,
                                                       login: dict[str, Any]) -> None:
    config = {**login["config"], "password": "env:DATIVO_TEST_NOPE"}
    result = run_tap(tmp_path, config, "--discover")
    assert result.returncode == 2
    assert [line.split(" | ")[-1] for line in errors(result.stderr)] == [
        "setting 'password': environment variable DATIVO_TEST_NOPE is not set; export it "
        "or give 'password' another value"]


# -- Vault ------------------------------------------------------------------------------


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[VaultApi]:
    api = VaultApi().start()
    assert isinstance(api, VaultApi)
    for key, value in api.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("VAULT_TOKEN_FILE", raising=False)
    monkeypatch.delenv("VAULT_NAMESPACE", raising=False)
    try:
        yield api
    finally:
        api.stop()


def test_vault_kv_reference(vault: VaultApi, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    vault.put("crm/postgres", {"password": "from-vault-3f9a", "user": "crm"})
    assert resolve_secret("vault:secret/crm/postgres#password", setting="password") \
        == "from-vault-3f9a"
    assert vault.served("/v1/secret/data/crm/postgres")[-1].headers["x-vault-token"] \
        == ROOT_TOKEN
    vault.put("crm/postgres", {"password": "rotated-in-vault-77"})  # read on each resolve
    assert resolve_secret("vault:secret/crm/postgres#password", setting="password") \
        == "rotated-in-vault-77"

    monkeypatch.delenv("VAULT_TOKEN")  # the token from a file (a Vault agent sink)
    (tmp_path / "token").write_text(ROOT_TOKEN + "\n")
    monkeypatch.setenv("VAULT_TOKEN_FILE", str(tmp_path / "token"))
    assert resolve_secret("vault:secret/crm/postgres#password", setting="password") \
        == "rotated-in-vault-77"


@pytest.mark.parametrize(("reference", "problem"), [
    ("vault:secret/crm/none#password",
     "the secret secret/crm/none does not exist in Vault (or is deleted); write it with "
     "`vault kv put`"),
    ("vault:secret/crm/postgres#api_key",
     "the secret secret/crm/postgres in Vault has no key 'api_key'; its keys: "
     "['password']"),
])
def test_vault_missing_secret_or_key(vault: VaultApi, reference: str, problem: str) -> None:
    vault.put("crm/postgres", {"password": "from-vault-3f9a"})
    with pytest.raises(ConfigError) as error:
        resolve_secret(reference, setting="password")
    assert str(error.value) == f"setting 'password': {problem}"
    assert redact(str(error.value)) == str(error.value)


def test_vault_wrong_token_is_one_clear_line(vault: VaultApi,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    vault.put("crm/postgres", {"password": "from-vault-3f9a"})
    monkeypatch.setenv("VAULT_TOKEN", "hvs.not-a-valid-token")
    with pytest.raises(ConfigError) as error:
        resolve_secret("vault:secret/crm/postgres#password", setting="password")
    assert str(error.value) == (
        "setting 'password': reading the secret secret/crm/postgres from Vault was refused: "
        "the token is invalid or its policy does not allow it; check VAULT_TOKEN (or "
        "VAULT_TOKEN_FILE)")
    monkeypatch.delenv("VAULT_ADDR")
    with pytest.raises(ConfigError, match="setting 'password': the variable VAULT_ADDR is "
                                          "not set"):
        resolve_secret("vault:secret/crm/postgres#password", setting="password")


def test_vault_namespace_is_sent(vault: VaultApi, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.namespace = "team-a"
    vault.put("crm", {"password": "namespaced-secret"})
    with pytest.raises(ConfigError, match="from Vault was refused"):
        resolve_secret("vault:secret/crm#password", setting="password")
    monkeypatch.setenv("VAULT_NAMESPACE", "team-a")
    assert resolve_secret("vault:secret/crm#password", setting="password") \
        == "namespaced-secret"


def test_the_tap_reads_its_password_from_vault(tmp_path: Path, vault: VaultApi,
                                               login: dict[str, Any]) -> None:
    vault.put("pg", {"password": login["password"]})
    config = {**login["config"], "password": "vault:secret/pg#password"}
    result = run_tap(tmp_path, config, "--discover", env={"LOGLEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr
    assert login["password"] not in result.stderr + result.stdout

    result = run_tap(tmp_path, config, "--discover", env={"VAULT_TOKEN": "hvs.wrong"})
    assert result.returncode == 2
    assert [line.split(" | ")[-1] for line in errors(result.stderr)] == [
        "setting 'password': reading the secret secret/pg from Vault was refused: the token "
        "is invalid or its policy does not allow it; check VAULT_TOKEN (or VAULT_TOKEN_FILE)"]


def test_vault_transit_wraps_and_unwraps_keys(vault: VaultApi,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    wrapped = VaultTransitKeyProvider("orders").wrap(key).decode()
    assert wrapped.startswith("vault:v1:")
    spec = f"kms:vault-transit:orders#{wrapped}"
    assert resolve_key(spec, setting="encryption_keys.k1") == key
    assert base64.b64encode(key).decode() not in json.dumps(
        [r.body for r in vault.served("/v1/transit/decrypt")])  # only the ciphertext went

    with pytest.raises(ConfigError) as error:
        resolve_key(f"kms:vault-transit:other#{wrapped}", setting="encryption_keys.k1")
    assert str(error.value).startswith(
        "setting 'encryption_keys.k1': decrypting with the transit key 'other' (mount "
        "transit) failed in Vault: encryption key not found")
    monkeypatch.setenv("VAULT_TOKEN", "hvs.wrong")
    with pytest.raises(ConfigError, match="decrypting with the transit key 'orders' "
                                          r"\(mount transit\) was refused by Vault"):
        resolve_key(spec, setting="encryption_keys.k1")


# -- an API tap -------------------------------------------------------------------------


def test_stripe_reads_its_key_again_after_a_401(tmp_path: Path) -> None:
    """The key file is rotated (and the old key revoked) while the transport holds the
    old key: the 401 makes it read the file again and the request succeeds."""
    api = StripeApi(api_key="sk_test_new000000000000000000").start()
    assert isinstance(api, StripeApi)
    try:
        api.create("customers", email="a@example.com")
        key_file = tmp_path / "stripe_key"
        key_file.write_text("sk_test_old000000000000000000\n")
        policy = ResiliencePolicy(ResilienceSettings.from_config(
            {"backoff_base_seconds": 0.01, "requests_per_second": 0}))
        transport = StripeTransport(FreshSecret(f"file:{key_file}", setting="api_key"),
                                    policy=policy, api_base=api.url)
        key_file.write_text("sk_test_new000000000000000000\n")
        pages = list(transport.pages("/v1/customers", {}))
        assert [c["email"] for page in pages for c in page] == ["a@example.com"]
        assert [r.headers["authorization"] for r in api.served("/v1/customers")] == [
            "Bearer sk_test_old000000000000000000", "Bearer sk_test_new000000000000000000"]
    finally:
        api.stop()


def test_google_reads_its_client_secret_again_after_a_refused_refresh(tmp_path: Path
                                                                      ) -> None:
    """The OAuth client secret was rotated in its file after the session was made: the
    token endpoint refuses the old one, the session reads the file again and succeeds."""
    api = GoogleApi(client_secret="GOCSPX-rotated-secret-2").start()
    assert isinstance(api, GoogleApi)
    try:
        api.add_file("Report", "text/plain", file_id="f1")
        secret = tmp_path / "client_secret"
        secret.write_text("GOCSPX-old-secret-1\n")
        policy = ResiliencePolicy(ResilienceSettings(
            backoff_base_seconds=0.0, backoff_max_seconds=0.0, requests_per_second=0))
        session = GoogleSession({**api.oauth_config(), "client_secret": f"file:{secret}"},
                                scopes=["https://www.googleapis.com/auth/drive.readonly"],
                                api_endpoint=api.url, policy=policy)
        secret.write_text("GOCSPX-rotated-secret-2\n")
        assert session.get_json("/drive/v3/files/f1", {"fields": "name"}) == {
            "name": "Report"}
        assert [r.fault for r in api.served("/token")] == [None, None]  # old, then new
        assert len(api.token_grants) == 1
    finally:
        api.stop()


def test_hubspot_reads_its_token_again_after_a_401(tmp_path: Path) -> None:
    api = HubSpotApi(token="pat-na1-22222222-3333-4444-5555-666666666666").start()
    assert isinstance(api, HubSpotApi)
    try:
        token = tmp_path / "hubspot_token"
        token.write_text("pat-na1-11111111-2222-3333-4444-555555555555\n")
        policy = ResiliencePolicy(ResilienceSettings(
            backoff_base_seconds=0.0, backoff_max_seconds=0.0, requests_per_second=0))
        client = HubSpotClient(FreshSecret(f"file:{token}", setting="access_token"),
                               api_base=api.url, policy=policy)
        token.write_text("pat-na1-22222222-3333-4444-5555-666666666666\n")
        names = [p["name"] for p in client.get_json("/crm/v3/properties/contacts")["results"]]
        assert "email" in names
        assert [r.headers["authorization"][-4:] for r in api.served("/crm/v3/properties")] \
            == ["5555", "6666"]
    finally:
        api.stop()


def test_a_sync_logs_in_with_the_file_reference(tmp_path: Path, login: dict[str, Any]) -> None:
    """Discovery and a FULL_TABLE sync as processes, the password only in the file."""
    catalog = json.loads(run_tap(tmp_path, login["config"], "--discover").stdout)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if not item["breadcrumb"]:
                item["metadata"]["selected"] = True
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    result = run_tap(tmp_path, login["config"], "--catalog", str(tmp_path / "catalog.json"),
                     env={"LOGLEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr
    records = [json.loads(line)["record"] for line in result.stdout.splitlines()
               if '"type":"RECORD"' in line.replace(" ", "")]
    assert records == [{"id": 1, "name": "one"}]
    assert login["password"] not in result.stderr


def test_mysql_rotated_password_file_between_two_connects(mariadb: MariaDBServer,
                                                          tmp_path: Path) -> None:
    user, password = f"u{uuid.uuid4().hex[:10]}", f"My-{uuid.uuid4().hex}"
    database = f"d_{uuid.uuid4().hex[:10]}"
    mariadb.sql(f"CREATE DATABASE `{database}`; "
                f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; "
                f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
    secret = tmp_path / "mysql_password"
    secret.write_text(password + "\n")
    connector = MySQLConnector(config={"host": mariadb.host, "port": mariadb.port,
                                       "user": user, "database": database,
                                       "password": f"file:{secret}"})
    with connector.connect() as first:
        assert first.execute(sa.text("SELECT CURRENT_USER()")).scalar().startswith(user)
        new = f"My-{uuid.uuid4().hex}"
        mariadb.sql(f"ALTER USER '{user}'@'%' IDENTIFIED BY '{new}'")
        secret.write_text(new + "\n")
        with connector.connect() as second:
            assert second.execute(sa.text("SELECT DATABASE()")).scalar() == database


def test_cdc_connections_resolve_the_reference(postgres: PostgresServer, tmp_path: Path,
                                               login: dict[str, Any]) -> None:
    """LOG_BASED opens its own SQL and replication connections (not the pool's): they
    log in with the file's password, before and after a rotation."""
    postgres.psql(f"SET ROLE {login['role']}; CREATE PUBLICATION dativo FOR TABLE items",
                  login["database"])
    catalog = json.loads(run_tap(tmp_path, login["config"], "--discover").stdout)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if not item["breadcrumb"]:
                item["metadata"].update(selected=True, **{"replication-method": "LOG_BASED"})
        entry["replication_method"] = "LOG_BASED"
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))

    def sync(state: dict[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
        args = ["--catalog", str(tmp_path / "catalog.json")]
        if state is not None:
            (tmp_path / "state.json").write_text(json.dumps(state))
            args += ["--state", str(tmp_path / "state.json")]
        result = run_tap(tmp_path, login["config"], *args)
        assert result.returncode == 0, result.stderr
        messages = [json.loads(line) for line in result.stdout.splitlines()
                    if line.startswith("{")]
        return ([(m["record"]["id"], m["record"]["name"]) for m in messages
                 if m["type"] == "RECORD"], [m for m in messages if m["type"] == "STATE"][-1])

    records, state = sync(None)
    assert records == [(1, "one")]
    rotate(postgres, login)
    postgres.psql("INSERT INTO items VALUES (2, 'two')", login["database"])
    records, _ = sync(state["value"])
    assert records == [(2, "two")]


def test_a_sql_catalog_uri_reference_is_read_at_each_open(
        postgres: PostgresServer, tmp_path: Path, login: dict[str, Any]) -> None:
    """The catalog's PostgreSQL URI (password included) in a file: each open reads it."""
    def write_uri(password: str) -> None:
        (tmp_path / "catalog_uri").write_text(
            f"postgresql+psycopg2://{login['role']}:{password}@{postgres.host}:"
            f"{postgres.port}/{login['database']}\n")

    config = {"type": "sql", "uri": f"file:{tmp_path / 'catalog_uri'}",
              "warehouse": (tmp_path / "warehouse").as_uri()}
    write_uri(login["password"])
    open_catalog(config, create=True).create_namespace("acme")
    write_uri(rotate(postgres, login, file=False))
    assert ("acme",) in open_catalog(config).list_namespaces()
    assert redact(f"uri {login['password']}") == "uri ***"
