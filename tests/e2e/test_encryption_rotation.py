"""Key rotation end to end (issue 19's rotation acceptance test), with the real target
and the real ``dativo`` commands on a SQLite catalog and a local warehouse.

Key 1 (made by ``dativo keys new``, kept in a file) encrypts the first load; key 2
(``dativo keys new --id k2``, given through an environment variable) becomes active and
encrypts the second. Both loads read back (``dativo decrypt`` and ``decrypt_column``).
``dativo keys rewrap`` moves every value onto key 2, in the stream's table and in its
dead letters; key 1 is then removed from the config and everything still reads back,
and a second rewrap rewrites nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog

from dativo.crypto import ColumnCipher, Keyring, decrypt_column
from tests.conftest import BIN, REPO, singer_lines

TABLE = "acme.crm.people"
DEAD = "acme.crm.people__dead_letter"
CONTRACT = """\
apiVersion: v3.0.2
kind: DataContract
id: acme-crm-people
version: 1.0.0
status: active
domain: crm
schema:
  - name: people
    properties:
      - {name: id, logicalType: integer, required: true, primaryKey: true}
      - {name: email, logicalType: string, classification: restricted,
         encryptedName: email_token}
      - name: age
        logicalType: integer
        classification: restricted
        customProperties: [{property: encryption, value: randomized}]
      - {name: city, logicalType: string}
"""
SCHEMA = {"type": "SCHEMA", "stream": "people", "key_properties": ["id"],
          "schema": {"type": "object", "properties": {
              "id": {"type": "integer"}, "email": {"type": ["string", "null"]},
              "age": {"type": ["integer", "null"]}, "city": {"type": ["string", "null"]}}}}


def person(i: int) -> dict[str, Any]:
    return {"id": i, "email": f"person{i}@example.com", "age": None if i == 4 else 30 + i,
            "city": f"city {i % 2}"}


def load(config: Path, ids: range, rejected: int, env: dict[str, str]) -> None:
    """One target run: ``ids`` as valid records, and ``rejected`` (age not a number)."""
    messages = [SCHEMA, *({"type": "RECORD", "stream": "people", "record": person(i)}
                          for i in ids),
                {"type": "RECORD", "stream": "people",
                 "record": {**person(rejected), "age": "unknown"}},
                {"type": "STATE", "value": {"bookmarks": {"people": {"id": ids[-1]}}}}]
    result = subprocess.run([str(BIN / "target-dativo-iceberg"), "--config", str(config)],
                            input=singer_lines(messages), capture_output=True, timeout=300,
                            cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore", **env})
    assert result.returncode == 0, result.stderr.decode()[-3000:]


def dativo(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dativo"), *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **env})


def decrypted(config: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """The table's rows as ``dativo decrypt`` prints them (JSON lines), by id."""
    result = dativo("decrypt", "--config", config, TABLE, "--format", "json", "--limit", "0",
                    env=env)
    assert result.returncode == 0, result.stderr
    return sorted((orjson.loads(line) for line in result.stdout.splitlines()),
                  key=lambda row: row["id"])


def rejected_emails(config: Path, env: dict[str, str]) -> list[str]:
    """The email of each dead letter, from ``dativo decrypt`` of the dead-letter table."""
    result = dativo("decrypt", "--config", config, DEAD, "--column", "record_json",
                    "--format", "json", "--limit", "0", env=env)
    assert result.returncode == 0, result.stderr
    return sorted(orjson.loads(orjson.loads(line)["record_json"])["email"]
                  for line in result.stdout.splitlines())


def stored_key_ids(catalog: Catalog) -> set[str]:
    """Key ids of every token in the table's encrypted columns and its dead letters."""
    table = catalog.load_table(tuple(TABLE.split(".")))
    rows = table.scan(selected_fields=("email_token", "age")).to_arrow()
    found = {k for column in rows.columns for k in ColumnCipher.key_ids(column)}
    dead = catalog.load_table(tuple(DEAD.split(".")))
    for record_json in dead.scan().to_arrow().column("record_json").to_pylist():
        values = [v for v in orjson.loads(record_json).values()
                  if isinstance(v, str) and v.startswith("dv1.")]
        found |= ColumnCipher.key_ids(pa.array(values, pa.string()))
    return found


def test_rotate_rewrap_and_retire_the_old_key(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    contracts = tmp_path / "contracts" / "acme" / "crm"
    contracts.mkdir(parents=True)
    (contracts / "people.odcs.yaml").write_text(CONTRACT)
    catalog_props = {"type": "sql", "uri": f"sqlite:///{warehouse / 'catalog.db'}",
                     "warehouse": warehouse.as_uri()}
    no_env: dict[str, str] = {}

    def config(name: str, **settings: Any) -> Path:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"tenant_id": "acme", "catalog": catalog_props,
                                    "validation_mode": "warn",
                                    "contracts_dir": str(tmp_path / "contracts"),
                                    "audit_log_path": str(tmp_path / "audit.jsonl"),
                                    **settings}))
        return path

    # Key 1, in a file.
    made = dativo("keys", "new", env=no_env)
    assert made.returncode == 0, made.stderr
    (tmp_path / "k1.key").write_text(made.stdout)
    k1 = {"k1": f"file:{tmp_path / 'k1.key'}"}
    load(config("key1", encryption_keys=k1), range(1, 6), 91, no_env)

    # Key 2, through an environment variable, becomes the active key.
    made = dativo("keys", "new", "--id", "k2", env=no_env)
    assert made.returncode == 0, made.stderr
    env_line, entry = made.stdout.splitlines()
    variable, key = env_line.split("=", 1)
    env = {variable: key}
    both = config("both", encryption_keys={**k1, **json.loads(entry)},
                  encryption_active_key="k2")
    load(both, range(6, 11), 92, env)

    catalog = load_catalog("dativo", **catalog_props)
    assert stored_key_ids(catalog) == {"k1", "k2"}
    expected = [person(i) for i in range(1, 11)]
    assert decrypted(both, env) == expected
    table = catalog.load_table(("acme", "crm", "people"))
    os.environ[variable] = key
    try:
        keyring = Keyring.from_settings({**k1, "k2": f"env:{variable}"}, "k2")
    finally:
        del os.environ[variable]
    assert keyring is not None
    assert sorted(decrypt_column(table, "email", keyring=keyring).to_pylist()) == sorted(
        p["email"] for p in expected)
    assert rejected_emails(both, env) == ["person91@example.com", "person92@example.com"]

    # Rewrap: every value under key 2, in one commit per table.
    rewrapped = dativo("keys", "rewrap", "--config", both, TABLE, DEAD, env=env)
    assert rewrapped.returncode == 0, rewrapped.stderr
    lines = rewrapped.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{TABLE}: rewrapped 9 value(s) in 1 of 2 data file(s)")
    assert "after: k2 (19 value(s))" in lines[0]
    assert lines[1].startswith(f"{DEAD}: rewrapped 2 value(s) in 1 of 2 data file(s)")
    assert stored_key_ids(catalog) == {"k2"}

    # Key 1 retired: everything still reads back.
    only_k2 = config("k2-only", encryption_keys=json.loads(entry))
    assert decrypted(only_k2, env) == expected
    assert rejected_emails(only_k2, env) == ["person91@example.com", "person92@example.com"]
    table = catalog.load_table(("acme", "crm", "people"))
    assert sorted(decrypt_column(table, "age", keyring=keyring.without("k1")).to_pylist(),
                  key=str) == sorted((p["age"] for p in expected), key=str)
    load(only_k2, range(11, 13), 93, env)  # and the target keeps loading
    assert decrypted(only_k2, env) == [person(i) for i in range(1, 13)]

    # A second rewrap rewrites nothing.
    snapshots = {name: catalog.load_table(tuple(name.split("."))).current_snapshot()
                 for name in (TABLE, DEAD)}
    again = dativo("keys", "rewrap", "--config", only_k2, TABLE, DEAD, env=env)
    assert again.returncode == 0, again.stderr
    assert [line.split(";")[0] for line in again.stdout.splitlines()] == [
        f"{TABLE}: nothing to rewrap", f"{DEAD}: nothing to rewrap"]
    assert {name: catalog.load_table(tuple(name.split("."))).current_snapshot()
            for name in (TABLE, DEAD)} == snapshots

    audit = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    rewraps = [a for a in audit if a.get("operation") == "rewrap"]
    assert [(a["table"], a["key_ids_before"], a["key_ids_after"]) for a in rewraps] == [
        (TABLE, ["k1", "k2"], ["k2"]), (DEAD, ["k1", "k2"], ["k2"]),
        (TABLE, ["k2"], ["k2"]), (DEAD, ["k2"], ["k2"])]
    assert key not in (tmp_path / "audit.jsonl").read_text()
