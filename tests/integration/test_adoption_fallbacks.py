"""No silent fallbacks (issue 13, deliverable 2): each mistake that used to load wrong
data, or none, while exiting 0 now stops the run with one line naming the key, file or
rule and the fix (exit 2), and nothing is committed: no table, no STATE, no message.

Real processes throughout: the taps' and the target's console scripts with real config
files, `dativo contract lint`, and a throwaway PostgreSQL for the SQL tap.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog, load_catalog

from tests.conftest import BIN, REPO, emitted_states, read_table, run_target, singer_lines
from tests.services.postgres import PostgresServer
from tests.services.tap_process import TapRun, run_tap

SCHEMA = {"type": "SCHEMA", "stream": "orders", "key_properties": ["id"],
          "schema": {"properties": {"id": {"type": "integer"},
                                    "email": {"type": ["string", "null"]}}}}
RECORD = {"type": "RECORD", "stream": "orders", "record": {"id": 1, "email": "a@b.co"}}
STATE = {"type": "STATE", "value": {"bookmarks": {"orders": {"done": True}}}}
PIPE = singer_lines([SCHEMA, RECORD, STATE])

CONTRACT = """apiVersion: v3.0.2
kind: DataContract
id: orders
version: 1.0.0
status: active
domain: shop
schema:
  - name: orders
    properties:
      - {name: id, logicalType: integer, primaryKey: true, required: true}
      - name: email
        logicalType: string
"""

BAD_CONTRACTS = {  # what the email column declares -> the lint line that must name it
    "unknown format": ("        logicalTypeOptions: {format: emial}\n",
                       "logicalTypeOptions.format 'emial' is not one of email, uuid, date, "
                       "date-time, uri; did you mean 'email'?"),
    "unknown option key": ("        physicalType: varchar\n"
                           "        logicalTypeOptions: {maxLenght: 3}\n",
                           "unknown logicalTypeOptions key 'maxLenght'; did you mean "
                           "'maxLength'?"),
    "unknown quality key": ("        quality:\n          - {rule: validValues, validValue: [a]}\n",
                            "unknown quality key 'validValue'; did you mean 'validValues'?"),
    "unenforced quality rule": ("        quality:\n          - {type: custom, engine: soda, "
                                "implementation: x}\n",
                                "quality type 'custom' is not run by dativo"),
}


def error_line(stderr: bytes | str) -> str:
    """The run's one ERROR line (and no traceback)."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, text
    return errors[0]


def no_tables(catalog: Catalog) -> bool:
    return all(not catalog.list_tables(ns) for ns in catalog.list_namespaces())


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, cwd=cwd, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "landing" / "orders.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text("id,email\n1,a@b.co\n")
    return path


def contract_file(root: Path, extra: str = "") -> Path:
    path = root / "acme" / "shop" / "orders.odcs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONTRACT + extra)
    return path


# --- unknown settings --------------------------------------------------------------------


def test_a_misspelt_tap_setting_is_named_with_the_closest_one(tmp_path: Path) -> None:
    config = write_json(tmp_path / "config.json", {
        "files": [{"entity": "orders", "path": str(csv_file(tmp_path))}],
        "contract_dir": str(tmp_path)})
    result = run([str(BIN / "tap-dativo-csv"), "--config", str(config)], tmp_path)
    assert result.returncode == 2
    assert (f"unknown setting 'contract_dir' in {config}; did you mean 'contracts_dir'?"
            in error_line(result.stderr))
    assert result.stdout == b""  # no SCHEMA, no RECORD, no STATE


def test_a_misspelt_target_setting_is_named_and_nothing_lands(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    config = target_config(catlog={"type": "sql"})
    result = run_target(config, PIPE)
    assert result.returncode == 2
    assert (f"unknown setting 'catlog' in {config}; did you mean 'catalog'?"
            in error_line(result.stderr))
    assert emitted_states(result) == []
    assert no_tables(open_catalog())


def test_singer_sdk_settings_stay_allowed(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """Built-in keys of any SDK plugin (stream maps, flattening, load_method, ...) are
    not typos, even where this plugin does not use them."""
    run_ = run_tap("tap-dativo-csv", tmp_path, {
        "files": [{"entity": "orders", "path": str(csv_file(tmp_path))}],
        "stream_maps": {}, "flattening_enabled": False, "faker_config": {"locale": "en_US"}})
    assert run_.returncode == 0, run_.stderr
    assert [r["id"] for r in run_.records("orders")] == ["1"]
    result = run_target(target_config(default_target_schema="x", validate_records=False,
                                      load_method="append-only"), PIPE)
    assert result.returncode == 0, result.stderr.decode()
    assert read_table(open_catalog(), ("acme", "default", "orders")).num_rows == 1


# --- contracts ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(BAD_CONTRACTS))
def test_contract_lint_refuses_a_rule_it_would_drop(case: str, tmp_path: Path) -> None:
    declared, message = BAD_CONTRACTS[case]
    path = contract_file(tmp_path / "contracts", declared)
    result = run([str(BIN / "dativo"), "contract", "lint", str(path)], tmp_path)
    out = result.stdout.decode()
    assert result.returncode == 2, out
    assert f"{path}: " in out and "ok" not in out.split(": ", 1)[1].split()
    assert any(message in line for line in out.splitlines()), out


@pytest.mark.parametrize("case", sorted(BAD_CONTRACTS))
def test_the_target_refuses_a_contract_with_a_rule_it_would_drop(
    case: str, tmp_path: Path, target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog],
) -> None:
    declared, message = BAD_CONTRACTS[case]
    path = contract_file(tmp_path / "contracts", declared)
    result = run_target(target_config(contracts_dir=str(tmp_path / "contracts")), PIPE)
    assert result.returncode == 2
    line = error_line(result.stderr)
    assert f"contract {path} is invalid: " in line and message in line
    assert emitted_states(result) == []
    assert no_tables(open_catalog())


def test_a_missing_contract_stops_a_strict_run(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    contracts = tmp_path / "contracts"
    (contracts / "acme" / "shop").mkdir(parents=True)  # a contracts tree without orders
    config = target_config(contracts_dir=str(contracts), validation_mode="strict")
    result = run_target(config, PIPE)
    assert result.returncode == 2
    assert (f"stream 'orders': no ODCS contract (looked for orders.odcs.yaml under "
            f"{contracts / 'acme'}/*/) and validation_mode is strict and contracts_dir is "
            "set; add the contract, map the stream to its file in stream_contracts, or set "
            "validation_mode: warn") in error_line(result.stderr)
    assert emitted_states(result) == []
    assert no_tables(open_catalog())


def test_a_missing_contract_is_a_warning_in_warn_mode(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    contracts = tmp_path / "contracts"
    (contracts / "acme").mkdir(parents=True)
    result = run_target(target_config(contracts_dir=str(contracts)), PIPE)  # warn
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "No ODCS contract for stream 'orders'" in stderr
    assert emitted_states(result) == [STATE["value"]]
    assert read_table(open_catalog(), ("acme", "default", "orders")).num_rows == 1


def test_require_contract_stops_a_warn_run_without_one(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    result = run_target(target_config(require_contract=True), PIPE)  # warn, no contracts_dir
    assert result.returncode == 2
    assert ("stream 'orders': no ODCS contract (contracts_dir is not set) and "
            "require_contract is set" in error_line(result.stderr))
    assert emitted_states(result) == []
    assert no_tables(open_catalog())


def test_the_csv_tap_names_a_stream_without_its_contract(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    (contracts / "acme" / "shop").mkdir(parents=True)
    config = {"files": [{"entity": "orders", "path": str(csv_file(tmp_path))}],
              "contracts_dir": str(contracts), "tenant_id": "acme"}
    untyped = run_tap("tap-dativo-csv", tmp_path, config)
    assert untyped.returncode == 0, untyped.stderr
    assert (f"stream 'orders': no contract orders.odcs.yaml under {contracts}/acme/*/, so "
            "every column is a string") in untyped.stderr
    required = run_tap("tap-dativo-csv", tmp_path, {**config, "require_contract": True})
    assert required.returncode == 2
    assert (f"files[0]: stream 'orders' has no ODCS contract (none found under "
            f"{contracts / 'acme'}/*/) and require_contract is set"
            in error_line(required.stderr))
    assert required.messages == []


# --- files -------------------------------------------------------------------------------


@pytest.mark.parametrize("tap", ["tap-dativo-csv", "tap-dativo-markdown-kv"])
def test_a_path_that_matches_no_file_is_an_error(tap: str, tmp_path: Path) -> None:
    config = {"files": [{"entity": "orders", "path": "landing/*.nothing"}]}
    result = run_tap(tap, tmp_path, config)
    assert result.returncode == 2
    assert ("files[0].path: no file matches 'landing/*.nothing' under "
            f"{Path.cwd()} (stream 'orders'); fix the path, or set files[0].allow_empty: "
            "true if this landing zone may be empty") in error_line(result.stderr)
    assert result.messages == []


@pytest.mark.parametrize("tap", ["tap-dativo-csv", "tap-dativo-markdown-kv"])
def test_allow_empty_accepts_an_empty_landing_zone(tap: str, tmp_path: Path) -> None:
    config = {"files": [{"entity": "orders", "path": str(tmp_path / "landing" / "*.csv"),
                         "allow_empty": True}]}
    result = run_tap(tap, tmp_path, config)
    assert result.returncode == 0, result.stderr
    assert "allow_empty is set" in result.stderr
    assert result.records("orders") == []
    assert result.state == {"bookmarks": {"orders": {}}}


# --- config errors in every tap ----------------------------------------------------------

MINIMAL = {  # each tap's smallest valid config (no source is reached in these tests)
    "tap-dativo-csv": {"files": [{"entity": "orders", "path": "x.csv", "allow_empty": True}]},
    "tap-dativo-markdown-kv": {"files": [{"entity": "docs", "path": "x.md",
                                          "allow_empty": True}]},
    "tap-dativo-postgres": {"host": "127.0.0.1", "user": "nobody", "database": "none"},
    "tap-dativo-stripe": {"api_key": "sk_test_not_a_key"},
    "tap-dativo-hubspot": {"access_token": "not-a-token"},
}
REQUIRED = {"tap-dativo-csv": "'files'", "tap-dativo-markdown-kv": "'files'",
            "tap-dativo-stripe": "'api_key'", "tap-dativo-hubspot": "'access_token'"}


@pytest.mark.parametrize("tap", sorted(REQUIRED))
def test_every_tap_names_a_missing_setting(tap: str, tmp_path: Path) -> None:
    result = run_tap(tap, tmp_path, {})
    assert result.returncode == 2
    assert (f"required setting {REQUIRED[tap]} is missing; add it to the config "
            f"(`{tap} --about` describes it)") in error_line(result.stderr)
    assert result.messages == []


def test_tap_postgres_names_its_missing_connection_settings(tmp_path: Path) -> None:
    result = run_tap("tap-dativo-postgres", tmp_path, {})
    assert result.returncode == 2
    assert "host, user, database: required (or set sqlalchemy_url)" in error_line(
        result.stderr)
    assert result.messages == []


BAD_VALUES = {  # a config error that used to surface mid-run (exit 1) or as endless retries
    "stripe start_date": ("tap-dativo-stripe", {"start_date": "notadate"},
                          "start_date: 'notadate' is not an ISO 8601 date-time"),
    "hubspot start_date": ("tap-dativo-hubspot", {"start_date": "2024-13-01"},
                           "start_date: '2024-13-01' is not an ISO 8601 date-time"),
    "stripe api_base": ("tap-dativo-stripe", {"api_base": "localhost:8080"},
                        "api_base: must be an http:// or https:// URL"),
    "hubspot api_base": ("tap-dativo-hubspot", {"api_base": "api.hubapi.com"},
                         "api_base: must be an http:// or https:// URL"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_api_taps_refuse_bad_values_up_front(case: str, tmp_path: Path) -> None:
    tap, extra, message = BAD_VALUES[case]
    result = run_tap(tap, tmp_path, {**MINIMAL[tap], **extra}, timeout=60)
    assert result.returncode == 2
    assert message in error_line(result.stderr)
    assert result.messages == []


@pytest.mark.parametrize("tap", sorted(MINIMAL))
def test_every_tap_refuses_a_tenant_id_the_target_would_refuse(tap: str,
                                                                tmp_path: Path) -> None:
    result = run_tap(tap, tmp_path, {**MINIMAL[tap], "tenant_id": "acme-corp"})
    assert result.returncode == 2
    assert ("tenant_id: 'acme-corp' is invalid; use lower-case letters, digits and "
            "underscores, starting with a letter") in error_line(result.stderr)
    assert result.messages == []


# --- selection ---------------------------------------------------------------------------


@pytest.fixture
def shop(postgres: PostgresServer, request: pytest.FixtureRequest) -> dict[str, Any]:
    """A database with one table of two rows; the tap's config for it."""
    database = "fallbacks_" + re.sub(r"\W", "_", request.node.name)[:40].lower()
    postgres.create_database(database)
    postgres.psql("CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL);"
                  "INSERT INTO accounts VALUES (1, 'a@b.co'), (2, 'c@d.co');", database)
    return {"host": postgres.host, "port": postgres.port, "user": postgres.user,
            "database": database}


def test_an_sql_tap_without_a_catalog_says_nothing_is_selected(
    shop: dict[str, Any], tmp_path: Path
) -> None:
    result: TapRun = run_tap("tap-dativo-postgres", tmp_path, shop)
    assert result.returncode == 0, result.stderr
    assert [m for m in result.messages if m["type"] in ("RECORD", "SCHEMA")] == []
    lines = [line for line in result.stderr.splitlines() if "no stream is selected" in line]
    assert len(lines) == 1, result.stderr
    assert "select streams with --catalog" in lines[0] and "Meltano's `select`" in lines[0]


def test_the_first_block_of_docs_tap_postgres_runs_as_written(
    shop: dict[str, Any], tmp_path: Path
) -> None:
    """The guide's first command block, run literally by bash on a first run (no state
    yet), lands the rows and leaves the state for the next run."""
    guide = (REPO / "docs" / "tap-postgres.md").read_text()
    block = re.search(r"```bash\n(.*?)```", guide, re.DOTALL)
    assert block is not None
    write_json(tmp_path / "tap.json", shop)
    write_json(tmp_path / "target.json", {"tenant_id": "demo"})
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.group(1)], cwd=tmp_path,
        capture_output=True, timeout=300,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
             "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr.decode()
    warehouse = tmp_path / "output" / "warehouse"
    catalog = load_catalog("dativo", type="sql", uri=f"sqlite:///{warehouse / 'catalog.db'}",
                           warehouse=warehouse.as_uri())
    rows = read_table(catalog, ("demo", "default", "public_accounts")).sort_by("id")
    assert rows.select(["id", "email"]).to_pylist() == [
        {"id": 1, "email": "a@b.co"}, {"id": 2, "email": "c@d.co"}]
    state = json.loads((tmp_path / "state.json").read_text())
    assert "public-accounts" in state["bookmarks"]
