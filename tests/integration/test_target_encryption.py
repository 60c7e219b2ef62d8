"""Column encryption from the contract (issue 19), through real target runs on a SQLite
catalog: the canary (no plaintext anywhere on disk or in any log), upserts on an
encrypted primary key across a key rotation, and the configurations refused up front."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
import yaml
from pyiceberg.catalog import Catalog

from dativo.crypto import ColumnCipher, EncryptionPlan, Keyring
from tests.conftest import BIN, REPO, emitted_states, read_table, singer_lines

CANARY = "canary.q7x2@example.org"
"""The known value: no byte sequence of it may be found after a load."""
PEOPLE = ("acme", "crm", "people")
SCHEMA = {"type": "SCHEMA", "stream": "people", "key_properties": ["id"],
          "schema": {"type": "object", "properties": {
              "id": {"type": "integer"}, "email": {"type": ["string", "null"]},
              "name": {"type": ["string", "null"]}, "age": {"type": ["integer", "null"]}}}}


def people_contract(root: Path, *email: dict[str, Any], **extra: Any) -> Path:
    """``contracts/acme/crm/people.odcs.yaml`` (id, email, name, age); ``email`` takes the
    given keys (classification, encryptedName, ...), ``extra`` the schema object."""
    email_prop: dict[str, Any] = {"name": "email", "logicalType": "string",
                                  "logicalTypeOptions": {"format": "email"}}
    for more in email:
        email_prop.update(more)
    doc = {"apiVersion": "v3.0.2", "kind": "DataContract", "id": "people",
           "version": "1.0.0", "status": "active", "domain": "crm",
           "schema": [{"name": "people", **extra, "properties": [
               {"name": "id", "logicalType": "integer", "primaryKey": True,
                "required": True},
               email_prop,
               {"name": "name", "logicalType": "string"},
               {"name": "age", "logicalType": "integer"}]}]}
    path = root / "contracts/acme/crm/people.odcs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return root / "contracts"


def new_key(tmp_path: Path, key_id: str) -> str:
    """A fresh key in a file, as the ``file:`` reference encryption_keys takes."""
    path = tmp_path / "keys" / key_id
    path.parent.mkdir(exist_ok=True)
    path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    return f"file:{path}"


def cipher(keys: dict[str, str], active: str | None = None) -> ColumnCipher:
    keyring = Keyring.from_settings(keys, active)
    assert keyring is not None
    return ColumnCipher(keyring)


def run(config: Path, stdin: bytes, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(BIN / "target-dativo-iceberg"), "--config", str(config)],
                          input=stdin, capture_output=True, timeout=180, cwd=REPO,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})


def record(i: int, email: str | None, **more: Any) -> dict[str, Any]:
    return {"type": "RECORD", "stream": "people",
            "record": {"id": i, "email": email, "name": f"person {i}", **more}}


STATE = {"type": "STATE", "value": {"bookmarks": {"people": {"id": 9}}}}


def test_canary_the_known_email_is_nowhere_in_plaintext(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    contracts = people_contract(tmp_path, {"classification": "restricted",
                                           "examples": [CANARY]})
    keys = {"k1": new_key(tmp_path, "k1")}
    audit, metrics_dir, reports = (tmp_path / "audit.jsonl", tmp_path / "metrics",
                                   tmp_path / "reports")
    metrics_dir.mkdir()
    reports.mkdir()
    common = {"contracts_dir": str(contracts), "encryption_keys": keys,
              "audit_log_path": str(audit), "metrics": {"textfile_dir": str(metrics_dir)},
              "max_record_bytes": 1024 * 1024}
    env = {"LOGLEVEL": "DEBUG", "DATIVO_RUN_REPORT_DIR": str(reports)}
    messages = [
        SCHEMA,
        record(1, CANARY, age=41),
        record(2, CANARY, age="forty"),  # rejected (age), carrying the email
        record(3, f"{CANARY} is not one address"),  # rejected by the email's own format
        record(4, CANARY, name="x" * (1024 * 1024 + 10)),  # over max_record_bytes
        record(5, None),
        STATE,
    ]
    parquet = run(target_config(**common), singer_lines(messages), env)
    assert parquet.returncode == 0, parquet.stderr.decode()[-3000:]
    assert emitted_states(parquet) == [STATE["value"]]
    markdown = run(target_config(**common, format="markdown_kv",
                                 markdown_kv={"storage": "raw_file"}),
                   singer_lines([*messages[:3], STATE]), env)
    assert markdown.returncode == 0, markdown.stderr.decode()[-3000:]

    # The byte search: every file the runs wrote (warehouse, catalog, raw Markdown-KV
    # files, dead letters, metadata, metrics, audit log, run reports) and every log line.
    needle = CANARY.encode()
    searched = [p for p in tmp_path.rglob("*") if p.is_file() and contracts not in p.parents
                and p.parent != tmp_path / "keys"]
    assert any(p.suffix == ".parquet" for p in searched)
    assert any(p.suffix == ".md" for p in searched)
    assert any(p.name.endswith(".metadata.json") for p in searched)
    assert any(p.suffix == ".avro" for p in searched)
    assert audit in searched and any(p.suffix == ".prom" for p in searched)
    assert len(list(reports.iterdir())) == 2
    found = [str(p) for p in searched if needle in p.read_bytes()]
    assert found == []
    for result in (parquet, markdown):
        assert needle not in result.stderr and needle not in result.stdout
        assert b"DEBUG" in result.stderr  # the most talkative logs were searched

    # Everything still reads back, with the keyring.
    catalog = open_catalog()
    table = catalog.load_table(PEOPLE)
    rows = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    assert [(r["id"], r["age"]) for r in rows] == [(1, 41), (5, None)]
    assert rows[0]["email"].startswith("dv1.k1.d.")
    plain = cipher(keys).decrypt(pa.array([r["email"] for r in rows]))
    assert plain.to_pylist() == [CANARY, None]
    plan = EncryptionPlan.from_table_properties(table.properties)
    assert plan is not None and [(c.name, c.stored_name, c.mode) for c in plan.columns] == [
        ("email", "email", "deterministic")]
    dead = read_table(catalog, ("acme", "crm", "people__dead_letter")).to_pylist()
    by_rule = {(d["line_number"], d["reasons"][0]["rule"]): d for d in dead}
    assert set(by_rule) >= {(3, "type"), (4, "format"), (5, "maxRecordBytes")}
    rejected = orjson.loads(by_rule[(3, "type")]["record_json"])
    assert rejected["age"] == "forty" and rejected["email"].startswith("dv1.k1.d.")
    assert cipher(keys).decrypt(pa.array([rejected["email"]])).to_pylist() == [CANARY]
    bad_format = orjson.loads(by_rule[(4, "format")]["record_json"])["email"]
    assert cipher(keys).decrypt(pa.array([bad_format])).to_pylist() == [
        f"{CANARY} is not one address"]
    oversized = orjson.loads(by_rule[(5, "maxRecordBytes")]["record_json"])
    assert oversized["_dativo_oversized"]["head"] is None
    assert oversized["_dativo_oversized"]["bytes"] > 1024 * 1024
    documents = [p.read_text() for p in searched if p.suffix == ".md"]
    assert len(documents) == 1 and rows[0]["email"] in documents[0]

    # No Iceberg statistics of the encrypted column: min/max would be plaintext order.
    email_id = table.schema().find_field("email").field_id
    files = [task.file for task in table.scan().plan_files()]
    assert files
    for data_file in files:
        assert email_id not in (data_file.lower_bounds or {})
        assert email_id not in (data_file.upper_bounds or {})
        assert table.schema().find_field("id").field_id in data_file.lower_bounds
    assert table.properties["write.metadata.metrics.column.email"] == "none"
    profile = read_table(catalog, ("acme", "crm", "people__quality")).to_pylist()
    measured = {r["rule"] for r in profile if r["kind"] == "profile"}
    assert {"min:id", "max:id", "min:age"} <= measured  # the profile ran ...
    assert not {"min:email", "max:email", "null_ratio:email"} & measured  # ... without them

    # An authorised reader gets the email back with `dativo decrypt`.
    decrypt = subprocess.run(
        [str(BIN / "dativo"), "decrypt", "--config", str(target_config(**common)),
         "acme.crm.people", "--format", "json"],
        capture_output=True, timeout=120, cwd=REPO)
    assert decrypt.returncode == 0, decrypt.stderr.decode()[-3000:]
    shown = sorted((orjson.loads(line) for line in decrypt.stdout.splitlines()),
                   key=lambda r: r["id"])
    assert [(r["id"], r["email"]) for r in shown] == [(1, CANARY), (5, None)]
    assert needle not in audit.read_bytes()  # its audit line names no value


PEOPLE_KEYED = [  # email is the primary key, stored encrypted as email_token
    {"name": "email", "logicalType": "string", "primaryKey": True, "required": True,
     "classification": "restricted", "encryptedName": "email_token"},
    {"name": "score", "logicalType": "integer"}]


def keyed_contract(root: Path, email: dict[str, Any] | None = None) -> Path:
    doc = {"apiVersion": "v3.0.2", "kind": "DataContract", "id": "members",
           "version": "1.0.0", "status": "active", "domain": "crm",
           "schema": [{"name": "members", "properties": [
               {**PEOPLE_KEYED[0], **(email or {})}, PEOPLE_KEYED[1]]}]}
    path = root / "contracts/acme/crm/members.odcs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return root / "contracts"


def members(*rows: tuple[str, int]) -> bytes:
    schema = {"type": "SCHEMA", "stream": "members", "key_properties": ["email"],
              "schema": {"type": "object", "properties": {
                  "email": {"type": "string"}, "score": {"type": ["integer", "null"]}}}}
    return singer_lines([schema, *({"type": "RECORD", "stream": "members",
                                    "record": {"email": e, "score": s}} for e, s in rows)])


def test_upsert_on_an_encrypted_primary_key_replaces_rows_also_after_a_rotation(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    contracts = keyed_contract(tmp_path)
    keys = {"k1": new_key(tmp_path, "k1")}
    config = target_config(contracts_dir=str(contracts), encryption_keys=keys,
                           load_method="upsert")
    emails = ["ann@example.org", "bob@example.org", "cy@example.org"]
    table_id = ("acme", "crm", "members")

    def stored(ring: dict[str, str], active: str | None = None) -> dict[str, int]:
        rows = read_table(open_catalog(), table_id)
        assert rows.column_names == ["email_token", "score"]
        plain = cipher(ring, active).decrypt(rows.column("email_token")).to_pylist()
        assert len(plain) == len(set(plain)), plain  # one row per key
        return dict(zip(plain, rows.column("score").to_pylist(), strict=True))

    for scores in ((1, 2, 3), (10, 20, 30), (10, 20, 30)):  # load, upsert, the same again
        result = run(config, members(*zip(emails, scores, strict=True)))
        assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert stored(keys) == dict(zip(emails, (10, 20, 30), strict=True))
    table = open_catalog().load_table(table_id)
    assert table.schema().identifier_field_names() == {"email_token"}
    assert "email" not in {f.name for f in table.schema().fields}

    # Key 2 becomes active: an upsert of ann replaces her row written under key 1.
    rotated = {**keys, "k2": new_key(tmp_path, "k2")}
    config2 = target_config(contracts_dir=str(contracts), encryption_keys=rotated,
                            encryption_active_key="k2", load_method="upsert")
    for _ in range(2):
        result = run(config2, members(("ann@example.org", 100), ("dee@example.org", 4)))
        assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert stored(rotated, "k2") == {"ann@example.org": 100, "bob@example.org": 20,
                                     "cy@example.org": 30, "dee@example.org": 4}
    tokens = read_table(open_catalog(), table_id).column("email_token")
    assert ColumnCipher.key_ids(tokens) == {"k1", "k2"}


def refused(result: subprocess.CompletedProcess[bytes], message: str) -> str:
    """The one error line of an exit-2 run, which must contain ``message``."""
    assert result.returncode == 2, result.stderr.decode()[-3000:]
    assert b"Traceback" not in result.stderr
    errors = [line for line in result.stderr.decode().splitlines()
              if "| ERROR " in line or "| CRITICAL" in line]
    assert len(errors) == 1, result.stderr.decode()[-3000:]
    assert message in errors[0], errors[0]
    assert CANARY not in result.stderr.decode()
    return errors[0]


def test_an_encrypting_contract_without_keys_stops_before_anything_is_written(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    contracts = people_contract(tmp_path, {"classification": "Restricted"})
    result = run(target_config(contracts_dir=str(contracts)),
                 singer_lines([SCHEMA, record(1, CANARY), STATE]))
    refused(result, f"stream 'people': contract {contracts}/acme/crm/people.odcs.yaml "
                    "encrypts property 'email' (classification Restricted) but "
                    "encryption_keys is not set; set encryption_keys")
    assert result.stdout == b""
    assert not open_catalog().table_exists(PEOPLE)


def test_a_key_that_cannot_be_resolved_stops_the_run_before_input_is_read(
    tmp_path: Path, target_config: Callable[..., Path]
) -> None:
    config = target_config(encryption_keys={"k1": f"file:{tmp_path / 'missing'}"})
    refused(run(config, b"not even JSON\n"), "encryption_keys.k1")


def test_a_randomized_upsert_key_is_refused(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    contracts = keyed_contract(tmp_path, {"customProperties": [
        {"property": "encryption", "value": "randomized"}]})
    config = target_config(contracts_dir=str(contracts), load_method="upsert",
                           encryption_keys={"k1": new_key(tmp_path, "k1")})
    refused(run(config, members(("ann@example.org", 1))),
            "stream 'members': load_method: upsert keys rows on property 'email', which the "
            "contract encrypts randomized (equal values never match); make its "
            "customProperties encryption deterministic")
    assert not open_catalog().table_exists(("acme", "crm", "members"))


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ({"partitioned": True},
         "stream 'people': contract {contract} partitions by property 'email' (identity), "
         "which is encrypted; partition values are stored as plaintext"),
        ({"quality": [{"type": "library", "rule": "nullValues", "mustBe": 0}]},
         "which is encrypted (the rule would read tokens, not values)"),
    ],
)
def test_what_encryption_cannot_give_is_refused_up_front(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    email: dict[str, Any], message: str
) -> None:
    contracts = people_contract(tmp_path, {"classification": "restricted", **email})
    config = target_config(contracts_dir=str(contracts),
                           encryption_keys={"k1": new_key(tmp_path, "k1")})
    refused(run(config, singer_lines([SCHEMA, record(1, CANARY), STATE])),
            message.format(contract=f"{contracts}/acme/crm/people.odcs.yaml"))
    assert not open_catalog().table_exists(PEOPLE)


def test_plaintext_and_encrypted_values_never_mix_in_one_column(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    contracts = people_contract(tmp_path)  # email in plaintext
    first = run(target_config(contracts_dir=str(contracts)),
                singer_lines([SCHEMA, record(1, "plain@example.org"), STATE]))
    assert first.returncode == 0, first.stderr.decode()[-3000:]
    people_contract(tmp_path, {"classification": "restricted"})
    keys = {"k1": new_key(tmp_path, "k1")}
    config = target_config(contracts_dir=str(contracts), encryption_keys=keys)
    refused(run(config, singer_lines([SCHEMA, record(2, CANARY), STATE])),
            "stream 'people': table acme.crm.people already holds column 'email' as "
            "plaintext, and the contract now encrypts property 'email'")
    # With an encryptedName the tokens go to a column of their own.
    people_contract(tmp_path, {"classification": "restricted",
                               "encryptedName": "email_token"})
    second = run(config, singer_lines([SCHEMA, record(2, CANARY), STATE]))
    assert second.returncode == 0, second.stderr.decode()[-3000:]
    rows = sorted(read_table(open_catalog(), PEOPLE).to_pylist(), key=lambda r: r["id"])
    assert [(r["email"], r["email_token"] is not None) for r in rows] == [
        ("plain@example.org", False), (None, True)]
    # ... and a contract that stops encrypting it cannot write plaintext there.
    people_contract(tmp_path)
    path = contracts / "acme/crm/people.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["schema"][0]["properties"].append({"name": "email_token", "logicalType": "string"})
    path.write_text(yaml.safe_dump(doc))
    refused(run(target_config(contracts_dir=str(contracts)),
                singer_lines([SCHEMA, record(3, "x@example.org"), STATE])),
            "stream 'people': table acme.crm.people stores column 'email_token' encrypted, "
            "but the contract no longer encrypts it")
    assert json.loads(open_catalog().load_table(PEOPLE).properties[
        "dativo.encryption.email_token"])["column"] == "email"


def test_markdown_kv_upsert_on_an_encrypted_key_replaces_documents_after_a_rotation(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    contracts = keyed_contract(tmp_path)
    keys = {"k1": new_key(tmp_path, "k1")}
    rotated = {**keys, "k2": new_key(tmp_path, "k2")}
    markdown = {"format": "markdown_kv", "load_method": "upsert",
                "contracts_dir": str(contracts)}
    for ring, active, score in ((keys, None, 1), (keys, None, 2), (rotated, "k2", 3)):
        config = target_config(**markdown, encryption_keys=ring,
                               **({"encryption_active_key": active} if active else {}))
        result = run(config, members(("ann@example.org", score), ("bob@example.org", 7)))
        assert result.returncode == 0, result.stderr.decode()[-3000:]
    documents = read_table(open_catalog(), ("acme", "crm", "members__markdown"))
    plain = cipher(rotated, "k2").decrypt(documents.column("doc_id")).to_pylist()
    assert sorted(plain) == ["ann@example.org", "bob@example.org"]
    assert ColumnCipher.key_ids(documents.column("doc_id")) == {"k2"}
    ann = documents.column("markdown").to_pylist()[plain.index("ann@example.org")]
    assert "score: 3" in ann and "ann@example.org" not in ann


def test_a_malformed_record_line_is_reported_without_its_values(
    tmp_path: Path, target_config: Callable[..., Path]
) -> None:
    contracts = people_contract(tmp_path, {"classification": "restricted"})
    config = target_config(contracts_dir=str(contracts),
                           encryption_keys={"k1": new_key(tmp_path, "k1")})
    broken = b'{"type": "RECORD", "stream": "people", "record": {"id": 1, "email": "' + (
        CANARY.encode() + b'", "name":\n')
    refused(run(config, singer_lines([SCHEMA]) + broken),
            """line 2: not valid JSON (unexpected end of data: line 2 column 1 (char 103)): """
            """'{"type": "RECORD", "stream": "people", "record" ...'""")
