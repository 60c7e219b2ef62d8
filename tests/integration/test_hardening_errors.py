"""Issue 12, weak points: errors are one log line, never a traceback, never a secret.

Real processes throughout: the target, and the taps against a throwaway PostgreSQL and
the HubSpot and Stripe fixture APIs. A run "fails cleanly" when it exits 2, writes
exactly one ERROR line, every stderr line is a log line (no traceback or other
continuation lines), and no secret value appears anywhere in stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import psycopg2
import pytest

from dativo.exit_codes import KNOWN_FAILURES, RETRIABLE
from dativo.logs import SecretRedactor
from dativo.schema_messages import describe
from tests.conftest import BIN, REPO, run_target, singer_lines
from tests.integration.test_tap_postgres import discover, fresh_database, select, tap_config
from tests.services.hubspot_api import TOKEN, HubSpotApi
from tests.services.postgres import PostgresServer
from tests.services.stripe_api import StripeApi
from tests.services.tap_process import run_tap

SECRET_NUMBER = 73519264
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| (\w+) +\| ")
USERS = [{"type": "SCHEMA", "stream": "users", "key_properties": ["id"],
          "schema": {"properties": {"id": {"type": "integer"}}}},
         {"type": "RECORD", "stream": "users", "record": {"id": 1}},
         {"type": "STATE", "value": {"n": 1}}]
API_FAST = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05,
            "circuit_cooldown_seconds": 0.05, "requests_per_second": 0}


def the_error(returncode: int, stderr: str | bytes, *secrets: object,
              listed: bool = False, code: int = 2) -> str:
    """Assert a clean failure (module doc) and return its one ERROR message.

    ``listed``: a contract's lint problems may follow as ``  - <problem>`` lines.
    ``code``: the exit code, 75 for a failure a rerun may get past.
    """
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert returncode == code, text
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()
             and not (listed and line.startswith("  - "))]
    assert all(LOG_LINE.match(line) for line in lines), text
    errors = [line for line in lines if LOG_LINE.match(line)[1] == "ERROR"]  # type: ignore[index]
    assert len(errors) == 1, text
    for secret in secrets:
        assert str(secret) not in text, text
    return errors[0].split(" | ", 3)[-1]


# -- secrets in errors ----------------------------------------------------------------
SHADOW_HASH = "$6$Qw9rT2zX$kS3cR3tHaSh0fTheR00tUs3rXyZ"


@pytest.mark.parametrize(("content", "secret"), [
    # /etc/shadow's layout: every line parses as a YAML key, which jsonschema quoted
    ("\n".join([f"root:{SHADOW_HASH}:19000:0:99999:7:::", "daemon:*:19000:0:99999:7:::",
                "postgres:!:19500:::::"]) + "\n", SHADOW_HASH),
    # a JSON config (another plugin's, or the target's own) is valid YAML too
    (json.dumps({"catalog": {"uri": "sqlite:///x.db"}, "tenant_id": "acme",
                 "id": SECRET_NUMBER, "status": SECRET_NUMBER + 1}), SECRET_NUMBER),
    # a YAML error used to print the offending line with a caret under it
    ("apiVersion: v3.0.2\nkind: DataContract\npassword: [Hunter2-Sekrit-Value\n",
     "Hunter2-Sekrit-Value"),
])
def test_a_contract_path_at_a_secret_file_quotes_none_of_it(
    target_config: Callable[..., Path], tmp_path: Path, content: str, secret: object,
) -> None:
    secret_file = tmp_path / "not-a-contract"
    secret_file.write_text(content)
    result = run_target(target_config(stream_contracts={"users": str(secret_file)}),
                        singer_lines(USERS))
    message = the_error(result.returncode, result.stderr, secret, "daemon:", "postgres:!",
                        listed=True)
    assert str(secret_file) in message


@pytest.mark.skipif(not os.access("/etc/shadow", os.R_OK), reason="needs a readable shadow")
def test_etc_shadow_as_a_contract_quotes_none_of_it(
    target_config: Callable[..., Path],
) -> None:
    result = run_target(target_config(stream_contracts={"users": "/etc/shadow"}),
                        singer_lines(USERS))
    entries = [line.split(":")[0] + ":" for line in
               Path("/etc/shadow").read_text().splitlines() if line]
    the_error(result.returncode, result.stderr, *entries, listed=True)


def test_schema_messages_quote_no_secret_long_value_or_object() -> None:
    """The messages behind every config check (taps, target) and the contract lint."""
    schema = {"type": "object", "properties": {
        "catalog": {"type": "object", "properties": {"s3.secret-access-key": {
            "type": "string"}}},
        "token": {"type": "string", "secret": True, "minLength": 40},
        "mode": {"enum": ["strict", "warn"]}, "metrics": {"type": "string"}}}
    config = {"catalog": {"s3.secret-access-key": SECRET_NUMBER}, "token": "Tk-77-short",
              "mode": "m" * 100, "metrics": {"blob": "Obj-Secret-55"}}
    messages = sorted(describe(e) for e in
                      jsonschema.Draft7Validator(schema).iter_errors(config))
    text = "\n".join(messages)
    for leaked in (str(SECRET_NUMBER), "Tk-77-short", "m" * 41, "Obj-Secret-55"):
        assert leaked not in text, text
    assert set(messages) == {
        "a string of 100 characters (not shown) is not one of ['strict', 'warn'] in "
        "config['mode']",
        "a string (not shown: the setting is secret) fails the schema's minLength 40 rule "
        "in config['token']",
        "an integer (not shown: the setting is secret) is not of type 'string' in "
        "config['catalog']['s3.secret-access-key']",
        "an object (not shown) is not of type 'string' in config['metrics']"}


def test_every_known_third_party_failure_family_exists() -> None:
    """A typo in the table would silently turn that family back into exit 1."""
    for module, name in KNOWN_FAILURES:
        family = getattr(importlib.import_module(module), name)
        assert isinstance(family, type) and issubclass(family, Exception), (module, name)


SECRET_SETTINGS = [("tap-dativo-postgres", "password",
                    {"host": "127.0.0.1", "user": "u", "database": "d"}),
                   ("tap-dativo-hubspot", "access_token", {}),
                   ("tap-dativo-stripe", "api_key", {})]


@pytest.mark.parametrize(("tap", "key", "config", "args"), [
    *[(*setting, ()) for setting in SECRET_SETTINGS],
    # discovery needs a valid config where it asks the source (SQL, HubSpot properties)
    *[(*setting, ("--discover",)) for setting in SECRET_SETTINGS[:2]]])
def test_a_numeric_secret_is_never_echoed_by_config_validation(
    tmp_path: Path, tap: str, key: str, config: dict[str, Any], args: tuple[str, ...],
) -> None:
    run = run_tap(tap, tmp_path, {**config, key: SECRET_NUMBER}, *args, timeout=60)
    message = the_error(run.returncode, run.stderr, SECRET_NUMBER)
    assert key in message and "string" in message
    assert run.messages == []


def test_the_target_echoes_no_long_config_value(
    target_config: Callable[..., Path],
) -> None:
    """Short values of ordinary settings are quoted (they help); long ones are not: here
    a catalog given as one string (an object is expected), as long as a file."""
    long_value = "postgresql://" + "x" * 300
    result = run_target(target_config(catalog=long_value, validation_mode="lenient"),
                        singer_lines(USERS))
    message = the_error(result.returncode, result.stderr, "x" * 50)
    assert "'lenient' is not one of ['strict', 'warn'] in config['validation_mode']" \
        in message
    assert "config['catalog']" in message and "object" in message


# -- over-redaction -------------------------------------------------------------------
def test_prose_after_a_secret_key_name_is_kept_but_values_are_masked() -> None:
    redactor = SecretRedactor()
    assert redactor.redact("Stripe rejected the api_key: set a valid secret key") == (
        "Stripe rejected the api_key: set a valid secret key")
    assert redactor.redact("access_token: required (or set it in the env)") == (
        "access_token: required (or set it in the env)")
    for text, masked in [("api_key: sk_live_x1", "api_key: ***"),
                         ("password=hunter22 and more", "password=*** and more"),
                         ('{"token": "abc def"}', '{"token": "***"}'),
                         ("api_key: Xy9wQ8eR7tZ", "api_key: ***"),
                         ("password: hunter22 was refused", "password: *** was refused"),
                         ("'secret': 'plainwords'", "'secret': '***'"),
                         # a lone lower-case word is a value, not the start of prose
                         ("connect failed: password: letmein", "connect failed: password: ***"),
                         ("password: letmein.", "password: ***"),
                         # a quoted value holding the other quote character
                         ('{"token": "ab\'cd"}', '{"token": "***"}'),
                         ("postgresql://u:pw@h/db", "postgresql://u:***@h/db")]:
        assert redactor.redact(text) == masked, text


def test_a_stripe_auth_failure_reads_as_written(tmp_path: Path) -> None:
    api = StripeApi().start()
    try:
        bad = "sk_test_wrong_key_123456"
        run = run_tap("tap-dativo-stripe", tmp_path,
                      {"api_key": bad, "api_base": api.url, "lookback_seconds": 0, **API_FAST})
    finally:
        api.stop()
    message = the_error(run.returncode, run.stderr, bad)
    assert "Stripe rejected the api_key: set a valid secret" in message


def test_a_hubspot_auth_failure_reads_as_written(tmp_path: Path) -> None:
    api = HubSpotApi().start()
    try:
        bad = "pat-na1-99999999-2222-3333-4444-555555555555"
        run = run_tap("tap-dativo-hubspot", tmp_path,
                      {"access_token": bad, "api_base": api.url, **API_FAST})
    finally:
        api.stop()
    message = the_error(run.returncode, run.stderr, bad)
    assert "HubSpot rejected the access_token: create a private app" in message


# -- killed sources -------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_table(postgres: PostgresServer) -> str:
    """A database with 200,000 rows in public.big: minutes of reading at 100 a fetch."""
    return fresh_database(postgres, "CREATE TABLE big (id bigint PRIMARY KEY, pad text); "
                                    "INSERT INTO big SELECT g, repeat('x', 100) "
                                    "FROM generate_series(1, 200000) g")


def _terminate_readers(postgres: PostgresServer, database: str) -> int:
    return len(postgres.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()").split())


def test_a_source_killed_mid_read_is_one_line(
    postgres: PostgresServer, big_table: str, tmp_path: Path,
) -> None:
    """The tap blocks on a full stdout pipe after some records, mid-cursor; its backend
    is terminated there, then stdout drains and the next fetch finds the socket gone."""
    config = tap_config(postgres, big_table, fetch_rows=100, password="Pg-Secret-991")
    catalog = select(discover(tmp_path, config), {"public-big": {}})
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    tap = subprocess.Popen(
        [str(BIN / "tap-dativo-postgres"), "--config", str(tmp_path / "config.json"),
         "--catalog", str(tmp_path / "catalog.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert tap.stdout is not None
    records = 0
    while records < 1000:
        line = tap.stdout.readline()
        assert line, "the tap ended before the kill"
        records += b'"RECORD"' in line
    assert _terminate_readers(postgres, big_table) >= 1
    out, err = tap.communicate(timeout=120)
    message = the_error(tap.returncode, err, "Pg-Secret-991", code=RETRIABLE)
    assert "public-big" in message and "rerun" in message and "append-only" in message
    assert b'"type":"STATE"' not in out  # FULL_TABLE: no bookmark, a rerun reads it all


def test_a_source_killed_during_a_batch_read_is_one_line(
    postgres: PostgresServer, big_table: str, tmp_path: Path,
) -> None:
    """BATCH (the Arrow fast path): the read waits on a table lock held here, and its
    backend is terminated while it waits."""
    config = tap_config(postgres, big_table, password="Pg-Secret-992", batch_config={
        "encoding": {"format": "parquet"}, "batch_size": 50_000,
        "storage": {"root": (tmp_path / "batches").as_uri()}})
    (tmp_path / "batches").mkdir()
    catalog = select(discover(tmp_path, config), {"public-big": {}})
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    locker = psycopg2.connect(host=postgres.host, port=postgres.port, user=postgres.user,
                              dbname=big_table)
    try:
        locker.cursor().execute("LOCK TABLE big IN ACCESS EXCLUSIVE MODE")
        tap = subprocess.Popen(
            [str(BIN / "tap-dativo-postgres"), "--config", str(tmp_path / "config.json"),
             "--catalog", str(tmp_path / "catalog.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONWARNINGS": "ignore"})
        drained: dict[str, bytes] = {}

        def drain() -> None:
            drained["out"], drained["err"] = tap.communicate(timeout=120)

        reader = threading.Thread(target=drain)
        reader.start()
        deadline = time.monotonic() + 60
        while not postgres.psql(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                f"AND datname = '{big_table}'").strip():
            assert time.monotonic() < deadline and tap.poll() is None, "the read never began"
            time.sleep(0.05)
        postgres.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      f"wait_event_type = 'Lock' AND datname = '{big_table}'")
        reader.join(timeout=130)
    finally:
        locker.close()
    message = the_error(tap.returncode, drained["err"], "Pg-Secret-992", code=RETRIABLE)
    assert "public-big" in message


# -- more tracebacks ------------------------------------------------------------------
@pytest.mark.parametrize("where", ["/crm/v3/properties", "/crm/v3/objects"])
def test_a_hubspot_200_without_results_is_one_line(tmp_path: Path, where: str) -> None:
    """Discovery (properties) and a list page: neither may read as 'no records'."""
    api = HubSpotApi(results_missing_under=where).start()
    try:
        api.create("contacts", email="a@example.com")
        run = run_tap("tap-dativo-hubspot", tmp_path,
                      {"access_token": TOKEN, "api_base": api.url, **API_FAST})
    finally:
        api.stop()
    message = the_error(run.returncode, run.stderr, TOKEN)
    assert "'results'" in message and where in message and "api_base" in message
    assert not [m for m in run.messages if m["type"] == "RECORD"]


@pytest.mark.parametrize("args", [(), ("--discover",)])
def test_a_sqlalchemy_url_with_a_bad_port_is_one_line(
    tmp_path: Path, args: tuple[str, ...],
) -> None:
    url = f"postgresql://postgres:{SECRET_NUMBER}@127.0.0.1:abc/db"
    run = run_tap("tap-dativo-postgres", tmp_path, {"sqlalchemy_url": url}, *args,
                  timeout=60)
    message = the_error(run.returncode, run.stderr, SECRET_NUMBER)
    assert "sqlalchemy_url" in message and "port" in message


def test_debug_log_level_adds_the_traceback(tmp_path: Path) -> None:
    """The documented switch (docs/, README): LOGLEVEL=DEBUG; still no secret."""
    url = f"postgresql://postgres:{SECRET_NUMBER}@127.0.0.1:abc/db"
    config = tmp_path / f"config-{uuid.uuid4().hex[:6]}.json"
    config.write_text(json.dumps({"sqlalchemy_url": url}))
    result = subprocess.run([str(BIN / "tap-dativo-postgres"), "--config", str(config)],
                            capture_output=True, timeout=60,
                            env={**os.environ, "PYTHONWARNINGS": "ignore",
                                 "LOGLEVEL": "DEBUG"})
    assert result.returncode == 2
    assert b"Traceback" in result.stderr and str(SECRET_NUMBER).encode() not in result.stderr


def test_docs_name_only_switches_that_exist() -> None:
    """Every doc tells the same, runnable way to get a traceback; --log-level is no
    option of any plugin."""
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    text = {path.name: path.read_text() for path in docs}
    assert [name for name, body in text.items() if "--log-level" in body] == []
    for tap in ("tap-dativo-csv", "tap-dativo-postgres"):
        help_text = subprocess.run([str(BIN / tap), "--help"], capture_output=True,
                                   check=True, timeout=60).stdout.decode()
        assert "--log-level" not in help_text
    assert "LOGLEVEL=DEBUG" in text["README.md"]
