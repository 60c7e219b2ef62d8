"""``dativo keys new | rewrap``, ``dativo decrypt`` (as processes) and
``dativo.crypto.decrypt_column``, on tables in a real SqlCatalog (SQLite) holding
columns encrypted as the target stores them (:meth:`EncryptionPlan.encrypt_table`,
with the plan's table properties), under keys given as ``file:`` references."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from dativo.crypto import ColumnCipher, EncryptedColumn, EncryptionPlan, Keyring
from dativo.crypto.reading import decrypt_column
from dativo.errors import ConfigError
from dativo.iceberg.row_rewrite import every_file, file_rows, rewrite_table
from tests.conftest import BIN, REPO

PEOPLE = ("acme", "crm", "people")
ORDERS = ("acme", "crm", "orders")
PLAN = EncryptionPlan((
    EncryptedColumn("email", "email_enc", "deterministic", pa.string()),
    EncryptedColumn("age", "age", "randomized", pa.int64()),
    EncryptedColumn("born", "born", "deterministic", pa.date32()),
    EncryptedColumn("balance", "balance", "deterministic", pa.decimal128(10, 2)),
))
KEYS = {key_id: bytes([n]) * 32 for n, key_id in enumerate(("k0", "k1", "k2"), start=1)}


def people(ids: range) -> pa.Table:
    """Plaintext rows of every encrypted type, with nulls."""
    return pa.table({
        "id": pa.array(list(ids), pa.int64()),
        "email": [None if i % 5 == 4 else f"user{i}@example.com" for i in ids],
        "age": pa.array([None if i % 3 == 2 else 20 + i for i in ids], pa.int64()),
        "born": pa.array([date(1990, 1, 1 + i % 28) for i in ids], pa.date32()),
        "balance": pa.array([Decimal(f"{i}.25") for i in ids], pa.decimal128(10, 2)),
        "city": [f"city{i % 3}" for i in ids],
    })


def ring(*key_ids: str, active: str) -> Keyring:
    return Keyring(active, {k: KEYS[k] for k in key_ids})


def write(catalog: Catalog, identifier: tuple[str, ...], rows: pa.Table,
          keyring: Keyring | None) -> Table:
    """Append ``rows`` (one data file), encrypted under ``keyring``'s active key as the
    target would; the table is created (with the plan's properties) on first use."""
    stored = rows if keyring is None else PLAN.encrypt_table(rows, ColumnCipher(keyring))
    if not catalog.table_exists(identifier):
        catalog.create_namespace_if_not_exists(identifier[:-1])
        catalog.create_table(identifier, schema=stored.schema,
                             properties=PLAN.table_properties() if keyring else {})
    table = catalog.load_table(identifier)
    table.append(stored)
    return table


@pytest.fixture
def config(tmp_path: Path, catalog_props: dict[str, str]) -> Callable[..., Path]:
    """A target config with ``key_ids`` as file: references; ``active`` is the
    encryption_active_key."""

    def _write(*key_ids: str, active: str | None = None, **extra: Any) -> Path:
        references = {}
        for key_id in key_ids:
            path = tmp_path / f"{key_id}.key"
            path.write_text(base64.b64encode(KEYS[key_id]).decode() + "\n")
            references[key_id] = f"file:{path}"
        body = {"tenant_id": "acme", "catalog": catalog_props, **extra}
        if references:
            body["encryption_keys"] = references
        if active:
            body["encryption_active_key"] = active
        path = tmp_path / f"target-{len(list(tmp_path.glob('target-*.json')))}.json"
        path.write_text(json.dumps(body))
        return path

    return _write


def dativo(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dativo"), *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def plaintext(table: Table, keyring: Keyring) -> list[dict[str, Any]]:
    """Every row decrypted with ``decrypt_column``, sorted by id."""
    ids = table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist()
    columns = {c.name: decrypt_column(table, c.name, keyring=keyring).to_pylist()
               for c in PLAN.columns}
    city = table.scan(selected_fields=("city",)).to_arrow().column("city").to_pylist()
    rows = [{"id": i, **{n: v[k] for n, v in columns.items()}, "city": city[k]}
            for k, i in enumerate(ids)]
    return sorted(rows, key=lambda r: r["id"])


def key_ids(table: Table) -> set[str]:
    return {key_id for rows in file_rows(table, [c.stored_name for c in PLAN.columns])
            for column in rows.columns for key_id in ColumnCipher.key_ids(column)}


def rotated_table(open_catalog: Callable[[], Catalog]) -> Table:
    """People 0-9 written under k1, then 10-14 under k2 (two data files)."""
    catalog = open_catalog()
    write(catalog, PEOPLE, people(range(10)), ring("k1", active="k1"))
    return write(catalog, PEOPLE, people(range(10, 15)), ring("k1", "k2", active="k2"))


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


# -- keys new ---------------------------------------------------------------------------
def test_keys_new_prints_a_fresh_32_byte_base64_key() -> None:
    first, second = dativo("keys", "new"), dativo("keys", "new")
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    keys = [first.stdout.strip(), second.stdout.strip()]
    assert [len(base64.b64decode(k, validate=True)) for k in keys] == [32, 32]
    assert keys[0] != keys[1]
    assert first.stdout.count("\n") == 1


def test_keys_new_with_an_id_prints_the_env_line_and_the_encryption_keys_entry(
        tmp_path: Path) -> None:
    result = dativo("keys", "new", "--id", "k-2")
    assert result.returncode == 0, result.stderr
    env_line, entry = result.stdout.splitlines()
    variable, key = env_line.split("=", 1)
    assert variable == "DATIVO_KEY_K_2"
    assert json.loads(entry) == {"k-2": "env:DATIVO_KEY_K_2"}
    os.environ[variable] = key  # the entry resolves to the printed key
    try:
        keyring = Keyring.from_settings(json.loads(entry), None)
    finally:
        del os.environ[variable]
    assert keyring is not None and keyring.keys["k-2"] == base64.b64decode(key)


def test_keys_new_refuses_a_bad_key_id() -> None:
    result = dativo("keys", "new", "--id", "k 2")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: --id 'k 2': a key id is 1-32 letters, digits, '_' or '-' (it is stored in "
        "every encrypted value)"]


# -- keys rewrap ------------------------------------------------------------------------
def test_rewrap_moves_old_values_to_the_active_key_in_one_commit(
        open_catalog: Callable[[], Catalog], config: Callable[..., Path],
        tmp_path: Path) -> None:
    table = rotated_table(open_catalog)
    before = plaintext(table, ring("k1", "k2", active="k2"))
    assert key_ids(table) == {"k1", "k2"}
    snapshots = len(table.snapshots())
    audit = tmp_path / "audit.jsonl"
    target = config("k1", "k2", active="k2", audit_log_path=str(audit))

    result = dativo("keys", "rewrap", "--config", target, "acme.crm.people")

    assert result.returncode == 0, result.stderr
    table = open_catalog().load_table(PEOPLE)
    snapshot = table.current_snapshot()
    assert snapshot is not None and len(table.snapshots()) == snapshots + 1
    assert snapshot.summary is not None
    assert snapshot.summary["dativo.maintenance"] == "rewrap"
    # 10 rows under k1: 8 emails, 7 ages, 10 dates, 10 balances
    assert result.stdout.splitlines() == [
        f"acme.crm.people: rewrapped 35 value(s) in 1 of 2 data file(s), written as 1 "
        f"(columns age, balance, born, email_enc); key ids before: k1 (35 value(s)), "
        f"k2 (17 value(s)); after: k2 (52 value(s)); snapshot {snapshot.snapshot_id}"]
    assert key_ids(table) == {"k2"}
    assert plaintext(table, ring("k2", active="k2")) == before  # k1 retired
    assert [(r["plugin"], r["tenant"], r["table"], r["operation"], r["snapshot_id"],
             r["values"], r["files"], r["files_written"], r["key_ids_before"],
             r["key_ids_after"]) for r in audit_lines(audit)] == [
        ("dativo keys rewrap", "acme", "acme.crm.people", "rewrap", snapshot.snapshot_id, 35,
         1, 1, ["k1", "k2"], ["k2"])]
    assert base64.b64encode(KEYS["k1"]).decode() not in audit.read_text()

    again = dativo("keys", "rewrap", "--config", config("k2"), "acme.crm.people")

    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "acme.crm.people: nothing to rewrap; all 52 value(s) in 2 data file(s) are under "
        "the active key k2"]
    assert open_catalog().load_table(PEOPLE).current_snapshot() == snapshot


def test_rewrap_keeps_deterministic_tokens_equal_to_fresh_ones(
        open_catalog: Callable[[], Catalog], config: Callable[..., Path]) -> None:
    """A rewrapped deterministic value is the token the active key gives the plaintext,
    so joins and upserts on it match values written after the rotation."""
    rotated_table(open_catalog)
    assert dativo("keys", "rewrap", "--config", config("k1", "k2", active="k2"),
                  "acme.crm.people").returncode == 0
    table = open_catalog().load_table(PEOPLE)
    rows = table.scan(selected_fields=("id", "email_enc")).to_arrow().to_pylist()
    cipher = ColumnCipher(ring("k2", active="k2"))
    for row in rows:
        if row["id"] % 5 != 4:
            assert row["email_enc"] == cipher.tokens_for(f"user{row['id']}@example.com")[0]


def test_rewrap_dry_run_reports_and_changes_nothing(
        open_catalog: Callable[[], Catalog], config: Callable[..., Path],
        tmp_path: Path) -> None:
    table = rotated_table(open_catalog)
    snapshot = table.current_snapshot()
    audit = tmp_path / "audit.jsonl"
    result = dativo("keys", "rewrap", "--dry-run", "--config",
                    config("k1", "k2", active="k2", audit_log_path=str(audit)),
                    "acme.crm.people")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "acme.crm.people: would rewrap 35 value(s) in 1 of 2 data file(s) (columns age, "
        "balance, born, email_enc); key ids now: k1 (35 value(s)), k2 (17 value(s))"]
    assert open_catalog().load_table(PEOPLE).current_snapshot() == snapshot
    assert not audit.exists()


def test_rewrap_of_a_table_without_encrypted_columns_says_so(
        open_catalog: Callable[[], Catalog], config: Callable[..., Path]) -> None:
    write(open_catalog(), ORDERS, pa.table({"id": [1, 2]}), None)
    result = dativo("keys", "rewrap", "--config", config("k1"), "acme.crm.orders")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "acme.crm.orders: no encrypted columns, nothing to rewrap\n"


def test_rewrap_says_markdown_kv_tables_are_not_rewrapped(
        open_catalog: Callable[[], Catalog], config: Callable[..., Path]) -> None:
    write(open_catalog(), ("acme", "crm", "notes__markdown"), pa.table({"id": [1]}), None)
    result = dativo("keys", "rewrap", "--config", config("k1"), "acme.crm.notes__markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("acme.crm.notes__markdown: a Markdown-KV table, not rewrapped: "
                             "its documents keep the key they were written under "
                             "(docs/encryption.md)\n")


def test_rewrap_all_tables(open_catalog: Callable[[], Catalog],
                           config: Callable[..., Path]) -> None:
    rotated_table(open_catalog)
    write(open_catalog(), ORDERS, pa.table({"id": [1, 2]}), None)
    result = dativo("keys", "rewrap", "--all", "--config", config("k1", "k2", active="k2"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "acme.crm.orders: no encrypted columns, nothing to rewrap"
    assert lines[1].startswith("acme.crm.people: rewrapped 35 value(s)")


def test_rewrap_with_a_key_missing_from_the_ring_fails_before_any_table_changes(
        open_catalog: Callable[[], Catalog], config: Callable[..., Path]) -> None:
    """k0 wrote the second table's emails, and the config no longer holds it: one line
    naming table, column and key id, exit 2, and the first table is not rewrapped."""
    table = rotated_table(open_catalog)
    snapshot = table.current_snapshot()
    catalog = open_catalog()
    write(catalog, ("acme", "crm", "leads"), people(range(3)), ring("k0", active="k0"))
    result = dativo("keys", "rewrap", "--config", config("k1", "k2", active="k2"),
                    "acme.crm.people", "acme.crm.leads")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: table acme.crm.leads, column age: 2 value(s) are encrypted under key 'k0', "
        "which encryption_keys does not hold (it holds k1, k2); add key 'k0' back to rewrap "
        "them; nothing was changed"]
    assert open_catalog().load_table(PEOPLE).current_snapshot() == snapshot


def test_rewrap_needs_keys_and_existing_tables(open_catalog: Callable[[], Catalog],
                                               config: Callable[..., Path]) -> None:
    rotated_table(open_catalog)
    no_keys = dativo("keys", "rewrap", "--config", config(), "acme.crm.people")
    assert no_keys.returncode == 2
    assert no_keys.stderr.splitlines() == [
        "error: encryption_keys: not set in the config; decrypting needs the keys the "
        "target encrypted with (key id -> env:NAME, file:/path or vault:path#key)"]
    missing = dativo("keys", "rewrap", "--config", config("k2"), "acme.crm.nope")
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        "error: table acme.crm.nope does not exist in the catalog; `dativo table show "
        "--all` lists the tables"]
    nothing = dativo("keys", "rewrap", "--config", config("k2"))
    assert nothing.returncode == 2
    assert "name tables to rewrap" in nothing.stderr


def test_rewrap_refuses_a_column_holding_plaintext(open_catalog: Callable[[], Catalog],
                                                   config: Callable[..., Path]) -> None:
    """A value that is no token (a writer that skipped encryption) is named, not
    silently skipped or encrypted."""
    catalog = open_catalog()
    table = write(catalog, PEOPLE, people(range(3)), ring("k1", active="k1"))
    raw = PLAN.encrypt_table(people(range(3, 4)), ColumnCipher(ring("k1", active="k1")))
    raw = raw.set_column(raw.schema.get_field_index("email_enc"), "email_enc",
                         pa.array(["plain@example.com"]))
    table.append(raw)
    result = dativo("keys", "rewrap", "--config", config("k1", "k2", active="k2"),
                    "acme.crm.people")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: table acme.crm.people, column email_enc: 1 value(s) are not dativo "
        "encrypted values (dv1.<key>.<mode>.<data>): the column holds plaintext or was "
        "altered; nothing was changed"]


# -- row_rewrite under a concurrent commit ----------------------------------------------
def test_a_rewrite_is_planned_again_when_a_concurrent_commit_replaced_its_files(
        open_catalog: Callable[[], Catalog]) -> None:
    """While the rewrite runs, another writer deletes the rows of one of the files being
    rewritten: the commit must not bring them back."""
    table = rotated_table(open_catalog)
    cipher = ColumnCipher(ring("k1", "k2", active="k2"))
    columns = [c.stored_name for c in PLAN.columns]
    concurrent = {"done": False}

    def count(rows: pa.Table) -> int:
        return sum(len(ColumnCipher.key_ids(rows.column(c)) - {"k2"}) for c in columns)

    def apply(rows: pa.Table) -> pa.Table:
        if not concurrent["done"]:
            concurrent["done"] = True
            other = open_catalog().load_table(PEOPLE)
            other.delete("id < 5")  # rewrites the k1 file without ids 0-4
        for stored in columns:
            index = rows.schema.get_field_index(stored)
            rows = rows.set_column(index, rows.schema.field(index),
                                   cipher.rewrap(rows.column(index)))
        return rows

    done = rewrite_table(table, every_file(columns, count, apply), job="rewrap")

    assert done.files_removed == 1
    table = open_catalog().load_table(PEOPLE)
    assert sorted(table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist()
                  ) == list(range(5, 15))
    assert key_ids(table) == {"k2"}


def test_a_concurrent_append_keeps_the_rewrite_and_its_rows(
        open_catalog: Callable[[], Catalog]) -> None:
    """Another writer appends while the files are rewritten: the commit is retried with
    the same rewritten files (nothing replaced them), and the appended rows stay."""
    table = rotated_table(open_catalog)
    cipher = ColumnCipher(ring("k1", "k2", active="k2"))
    columns = [c.stored_name for c in PLAN.columns]
    rewrites = []

    def count(rows: pa.Table) -> int:
        return sum(len(ColumnCipher.key_ids(rows.column(c)) - {"k2"}) for c in columns)

    def apply(rows: pa.Table) -> pa.Table:
        if not rewrites:
            write(open_catalog(), PEOPLE, people(range(20, 23)), ring("k2", active="k2"))
        rewrites.append(rows.num_rows)
        for stored in columns:
            index = rows.schema.get_field_index(stored)
            rows = rows.set_column(index, rows.schema.field(index),
                                   cipher.rewrap(rows.column(index)))
        return rows

    done = rewrite_table(table, every_file(columns, count, apply), job="rewrap")

    assert (done.files_removed, rewrites) == (1, [10])  # rewritten once
    table = open_catalog().load_table(PEOPLE)
    assert sorted(table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist()
                  ) == [*range(15), 20, 21, 22]
    assert key_ids(table) == {"k2"}


# -- decrypt ----------------------------------------------------------------------------
def test_decrypt_prints_rows_with_plaintext_types(open_catalog: Callable[[], Catalog],
                                                  config: Callable[..., Path],
                                                  tmp_path: Path) -> None:
    rotated_table(open_catalog)
    audit = tmp_path / "audit.jsonl"
    target = config("k1", "k2", active="k2", audit_log_path=str(audit))
    result = dativo("decrypt", "--config", target, "acme.crm.people", "--format", "json",
                    "--limit", "0")
    assert result.returncode == 0, result.stderr
    rows = sorted((orjson.loads(line) for line in result.stdout.splitlines()),
                  key=lambda r: r["id"])
    expected = people(range(15)).to_pylist()
    assert [list(r) for r in rows] == [["id", "email", "age", "born", "balance", "city"]] * 15
    assert rows == [{**r, "born": r["born"].isoformat(), "balance": str(r["balance"])}
                    for r in expected]
    assert [(r["plugin"], r["table"], r["operation"], r["columns"], r["rows"], r["filtered"])
            for r in audit_lines(audit)] == [
        ("dativo decrypt", "acme.crm.people", "decrypt",
         ["id", "email", "age", "born", "balance", "city"], 15, False)]
    assert "example.com" not in audit.read_text()


def test_decrypt_columns_where_and_limit(open_catalog: Callable[[], Catalog],
                                         config: Callable[..., Path]) -> None:
    rotated_table(open_catalog)
    target = config("k1", "k2", active="k2")
    result = dativo("decrypt", "--config", target, "acme.crm.people", "--column", "id",
                    "--column", "email_enc", "--column", "age", "--where",
                    "email in ('user3@example.com', 'user12@example.com') or age > 33",
                    "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["id", "email", "age"]
    wanted = [r for r in people(range(15)).to_pylist()
              if r["email"] in ("user3@example.com", "user12@example.com")
              or (r["age"] is not None and r["age"] > 33)]
    assert sorted(rows[1:], key=lambda r: int(r[0])) == [
        [str(r["id"]), r["email"] or "", "" if r["age"] is None else str(r["age"])]
        for r in wanted]

    limited = dativo("decrypt", "--config", target, "acme.crm.people", "--column", "email",
                     "--where", "city = 'city1'", "--limit", "2", "--format", "json")
    assert limited.returncode == 0, limited.stderr
    emails = [orjson.loads(line) for line in limited.stdout.splitlines()]
    assert len(emails) == 2 and all(list(e) == ["email"] for e in emails)


def test_decrypt_table_format(open_catalog: Callable[[], Catalog],
                              config: Callable[..., Path]) -> None:
    write(open_catalog(), PEOPLE, people(range(3)), ring("k1", active="k1"))
    result = dativo("decrypt", "--config", config("k1"), "acme.crm.people", "--column",
                    "id", "--column", "email", "--column", "balance")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "id  email              balance",
        "--  -----------------  -------",
        "0   user0@example.com  0.25",
        "1   user1@example.com  1.25",
        "2   user2@example.com  2.25"]
    assert result.stderr == "(3 row(s))\n"


def test_decrypt_errors_are_one_line(open_catalog: Callable[[], Catalog],
                                     config: Callable[..., Path]) -> None:
    rotated_table(open_catalog)
    cases = {
        ("--column", "emial"): "error: --column 'emial': table acme.crm.people has no such "
                               "column; did you mean 'email'?",
        ("--where", "emial = 'x'"): None,
    }
    target = config("k1", "k2", active="k2")
    for args, expected in cases.items():
        result = dativo("decrypt", "--config", target, "acme.crm.people", *args)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1
        if expected is not None:
            assert lines == [expected]
        else:
            assert lines[0].startswith("error: --where: DuckDB cannot run it (")
    retired = dativo("decrypt", "--config", config("k2"), "acme.crm.people")
    assert retired.returncode == 2
    assert retired.stdout == ""
    assert retired.stderr.splitlines() == [
        "error: table acme.crm.people, column age: a value is encrypted under key 'k1', "
        "which encryption_keys does not hold (it holds k2); add key 'k1' back, and retire "
        "a key only after `dativo keys rewrap` has moved every value off it"]


def test_decrypt_of_a_plain_table_shows_it_as_stored(
        open_catalog: Callable[[], Catalog], config: Callable[..., Path]) -> None:
    write(open_catalog(), ORDERS, pa.table({"id": [1, 2]}), None)
    result = dativo("decrypt", "--config", config(), "acme.crm.orders", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['{"id":1}', '{"id":2}']
    assert result.stderr.splitlines()[0] == ("acme.crm.orders: no encrypted columns; rows "
                                             "are shown as stored")


# -- decrypt_column ---------------------------------------------------------------------
def test_decrypt_column_takes_a_keyring_a_config_or_its_file(
        open_catalog: Callable[[], Catalog], config: Callable[..., Path]) -> None:
    table = rotated_table(open_catalog)
    target = config("k1", "k2", active="k2")
    expected = sorted(people(range(15)).column("age").to_pylist(), key=str)
    by_path = decrypt_column(table, "age", config=target)
    by_mapping = decrypt_column(table, "age", config=json.loads(target.read_text()))
    by_ring = decrypt_column(table, "age", keyring=ring("k1", "k2", active="k2"))
    assert by_path.type == pa.int64()
    for column in (by_path, by_mapping, by_ring):
        assert sorted(column.to_pylist(), key=str) == expected
    emails = decrypt_column(table, "email_enc", config=str(target))
    assert emails.type == pa.string() and "user13@example.com" in emails.to_pylist()


def test_decrypt_column_errors(open_catalog: Callable[[], Catalog]) -> None:
    table = rotated_table(open_catalog)
    with pytest.raises(ConfigError, match=r"^decrypt_column: pass keyring="):
        decrypt_column(table, "email")
    with pytest.raises(ConfigError) as error:
        decrypt_column(table, "city", keyring=ring("k1", "k2", active="k2"))
    assert str(error.value) == ("table acme.crm.people: column 'city' is not encrypted "
                                "(encrypted: age, balance, born, email, email_enc)")
    with pytest.raises(ConfigError, match="did you mean 'email'"):
        decrypt_column(table, "emails", keyring=ring("k1", "k2", active="k2"))
    with pytest.raises(ConfigError, match=r"column email_enc: a value is encrypted under "
                                          r"key 'k1'"):
        decrypt_column(table, "email", keyring=ring("k2", active="k2"))
    plain = write(open_catalog(), ORDERS, pa.table({"id": [1]}), None)
    with pytest.raises(ConfigError, match=r"^table acme.crm.orders has no encrypted columns"):
        decrypt_column(plain, "id", keyring=ring("k2", active="k2"))
