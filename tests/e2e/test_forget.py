"""``dativo forget`` on what the real target loaded (embedded SQLite catalog, local
warehouse): the erasure acceptance test of issue 19.

A subject (``ann@example.com``) has several rows in a stream's table, a rejected record
in its dead letters and documents in Markdown-KV raw files (some files hers alone, one
shared with another subject). After ``forget`` her rows, dead letters and documents are
gone, no file anywhere under the warehouse holds her value or its tokens (a byte
search: data files, manifests, manifest lists, metadata JSON, Markdown-KV files), the
other rows are all still there, and the audit log has one line per changed table and no
value.
"""

from __future__ import annotations

import base64
import subprocess
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
import pyarrow.parquet as pq
import pytest
import zstandard
from pyiceberg.catalog import Catalog

from dativo.crypto import ColumnCipher, Keyring
from tests.conftest import BIN, REPO, run_target, singer_lines

TENANT = "acme"
ANN = "ann@example.com"
CONTRACT = """\
apiVersion: v3.0.2
kind: DataContract
id: acme-crm-{stream}
version: 1.0.0
status: active
domain: crm
schema:
  - name: {stream}
    properties:
      - {{name: id, logicalType: integer, required: true, primaryKey: true}}
      - {{name: email, logicalType: string{email}}}
      - {{name: text, logicalType: string}}
"""
RESTRICTED = ", classification: restricted"
KEY = bytes(range(32))


def schema(stream: str) -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "key_properties": ["id"],
            "schema": {"type": "object", "properties": {
                "id": {"type": "integer"}, "email": {"type": ["string", "null"]},
                "text": {"type": ["string", "null"]}}}}


def records(stream: str, rows: list[tuple[Any, str, str]]) -> list[dict[str, Any]]:
    return [{"type": "RECORD", "stream": stream,
             "record": {"id": i, "email": email, "text": text}} for i, email, text in rows]


CUSTOMERS_RUN_1 = [(1, ANN, "first"), (2, "bob@example.com", "b"), (3, ANN, "again"),
                   (4, "carl@example.com", "c"), ("five", ANN, "rejected: id not a number"),
                   ("six", "dora@example.com", "rejected too")]
CUSTOMERS_RUN_2 = [(5, "eve@example.com", "e"), (6, ANN, "third"),
                   (7, "fay@example.com", "f")]
TICKETS = [(1, ANN, "help"), (2, ANN, "more help"), (3, "bob@example.com", "bob's"),
           (4, ANN, "ann again"), (5, "carl@example.com", "carl's")]


def dativo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dativo"), *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def load(config: Path, stream: str, rows: list[tuple[Any, str, str]]) -> None:
    result = run_target(config, singer_lines(
        [schema(stream), *records(stream, rows),
         {"type": "STATE", "value": {"bookmarks": {stream: {"run": len(rows)}}}}]))
    assert result.returncode == 0, result.stderr.decode()


def setup(tmp_path: Path, target_config: Callable[..., Path], *, encrypted: bool
          ) -> tuple[Path, Path]:
    """Load customers (two runs, one rejected record of Ann's and one of another) and
    Markdown-KV tickets (raw files, two documents a file); return (config, audit log)."""
    contracts = tmp_path / "contracts" / TENANT / "crm"
    contracts.mkdir(parents=True)
    for stream in ("customers", "tickets"):
        (contracts / f"{stream}.odcs.yaml").write_text(
            CONTRACT.format(stream=stream, email=RESTRICTED if encrypted else ""))
    audit = tmp_path / "audit.jsonl"
    settings: dict[str, Any] = {"contracts_dir": str(tmp_path / "contracts"),
                                "audit_log_path": str(audit)}
    if encrypted:
        key_file = tmp_path / "k1.key"
        key_file.write_text(base64.b64encode(KEY).decode() + "\n")
        settings["encryption_keys"] = {"k1": f"file:{key_file}"}
    config = target_config(**settings)
    load(config, "customers", CUSTOMERS_RUN_1)
    load(config, "customers", CUSTOMERS_RUN_2)
    markdown = target_config(**settings, format="markdown_kv",
                             markdown_kv={"storage": "raw_file", "records_per_file": 2})
    load(markdown, "tickets", TICKETS)
    return config, audit


def warehouse(catalog_props: dict[str, str]) -> Path:
    return Path(urlparse(catalog_props["warehouse"]).path)


def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    """Every file under ``root`` that holds one of ``needles``: its bytes, and for the
    compressed formats their content too (Parquet cells, Avro manifest blocks)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and any(n in content for content in readable(p)
                                         for n in needles))


def readable(path: Path) -> list[bytes]:
    """The file's bytes, plus what a byte search cannot see in them: a Parquet file's
    values (pages are compressed) and an Avro file's decompressed blocks."""
    data = path.read_bytes()
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        return [data, orjson.dumps(table.to_pylist(), default=str)]
    if path.suffix == ".avro":
        return [data, *avro_blocks(data)]
    return [data]


def avro_blocks(data: bytes) -> list[bytes]:
    """The decompressed data blocks of an Avro object container file (the Avro spec)."""
    position = 4  # b"Obj\x01"

    def long() -> int:
        nonlocal position
        shift = result = 0
        while True:
            byte = data[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)

    def raw() -> bytes:
        nonlocal position
        size = long()
        position += size
        return data[position - size:position]

    meta: dict[bytes, bytes] = {}
    while (count := long()) != 0:
        if count < 0:
            long()  # the block's size in bytes
        for _ in range(abs(count)):
            name = raw()
            meta[name] = raw()
    position += 16  # sync marker
    codec = meta.get(b"avro.codec", b"null")
    blocks = []
    while position < len(data):
        long()  # objects in the block
        block = raw()
        position += 16
        if codec == b"deflate":
            block = zlib.decompress(block, -15)
        elif codec == b"zstandard":
            block = zstandard.ZstdDecompressor().decompressobj().decompress(block)
        else:
            assert codec == b"null", codec
        blocks.append(block)
    return blocks


def ids(catalog: Catalog, table: str) -> list[Any]:
    rows = catalog.load_table((TENANT, "crm", table)).scan().to_arrow().to_pylist()
    return sorted(r["id"] for r in rows)


def dead_letter_ids(catalog: Catalog) -> list[Any]:
    rows = catalog.load_table((TENANT, "crm", "customers__dead_letter")).scan().to_arrow()
    return sorted(orjson.loads(r)["id"] for r in rows.column("record_json").to_pylist())


def markdown_files(catalog_props: dict[str, str]) -> dict[str, str]:
    folder = warehouse(catalog_props) / "markdown_kv"
    return {p.name: p.read_text() for p in folder.rglob("*.md")}


def tickets(catalog: Catalog) -> list[tuple[str, str]]:
    rows = catalog.load_table((TENANT, "crm", "tickets__md_files")).scan().to_arrow()
    return sorted((r["doc_id"], Path(urlparse(r["path"]).path).name) for r in rows.to_pylist())


def audit_lines(audit: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in audit.read_bytes().splitlines()
            if b'"forget"' in line]


def assert_forgotten(catalog: Catalog, catalog_props: dict[str, str], audit: Path,
                     needles: list[bytes]) -> None:
    assert ids(catalog, "customers") == [2, 4, 5, 7]
    assert dead_letter_ids(catalog) == ["six"]
    assert tickets(catalog) == [("3", "3.md"), ("5", "5.md")]
    files = markdown_files(catalog_props)
    assert sorted(files) == ["3.md", "5.md"]  # 1.md held tickets 1 and 2: Ann's alone
    assert "## Record 3" in files["3.md"] and "## Record 4" not in files["3.md"]
    assert files_holding(warehouse(catalog_props), needles) == []
    lines = audit_lines(audit)
    assert sorted(line["table"] for line in lines) == [
        "acme.crm.customers", "acme.crm.customers__dead_letter", "acme.crm.tickets__md_files"]
    assert {line["tenant"] for line in lines} == {TENANT}
    assert all(line["keys"] == ["email=<redacted>"] for line in lines)
    assert {line["table"]: line["rows"] for line in lines} == {
        "acme.crm.customers": 3, "acme.crm.customers__dead_letter": 1,
        "acme.crm.tickets__md_files": 3}
    assert not [n for n in needles if n in audit.read_bytes()]
    table = catalog.load_table((TENANT, "crm", "customers"))
    [snapshot] = table.snapshots()  # history expired: no time travel back to her rows
    assert snapshot.summary is not None
    assert orjson.loads(snapshot.summary["dativo.state"]) == {  # the load resumes from it
        "bookmarks": {"customers": {"run": len(CUSTOMERS_RUN_2)}}}
    assert {line["table"]: line["snapshot_id"] for line in lines}["acme.crm.customers"] == \
        snapshot.snapshot_id


def test_forget_erases_an_encrypted_key_everywhere(
        tmp_path: Path, target_config: Callable[..., Path], catalog_props: dict[str, str],
        open_catalog: Callable[[], Catalog]) -> None:
    config, audit = setup(tmp_path, target_config, encrypted=True)
    tokens = ColumnCipher(Keyring("k1", {"k1": KEY})).tokens_for(ANN)
    needles = [ANN.encode(), *(t.encode() for t in tokens)]
    root = warehouse(catalog_props)
    assert ANN.encode() not in b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())
    assert files_holding(root, needles[1:])  # the target stored her token: forget finds it

    result = dativo("forget", "--config", str(config), "--tenant", TENANT,
                    "--key", f"email={ANN}", "--all")

    assert result.returncode == 0, result.stderr
    assert ANN not in result.stdout + result.stderr
    assert "acme.crm.customers: removed 3 row(s)" in result.stdout
    assert "acme.crm.customers__dead_letter: removed 1 row(s)" in result.stdout
    assert "acme.crm.tickets__md_files: removed 3 row(s)" in result.stdout
    assert "deleted 1 and rewrote 1 Markdown-KV file(s)" in result.stdout
    assert "forget: removed 7 row(s) in 3 of" in result.stdout
    assert_forgotten(open_catalog(), catalog_props, audit, needles)


def test_forget_plaintext_column_of_named_tables(
        tmp_path: Path, target_config: Callable[..., Path], catalog_props: dict[str, str],
        open_catalog: Callable[[], Catalog]) -> None:
    config, audit = setup(tmp_path, target_config, encrypted=False)
    root = warehouse(catalog_props)
    holding = files_holding(root, [ANN.encode()])
    assert {Path(p).suffix for p in holding} >= {".parquet", ".avro", ".md"}  # bounds too

    result = dativo("forget", "--config", str(config), "--tenant", TENANT,
                    "--key", f"email={ANN}", "--tables", "acme.crm.customers")

    assert result.returncode == 0, result.stderr
    catalog = open_catalog()
    assert ids(catalog, "customers") == [2, 4, 5, 7]
    assert dead_letter_ids(catalog) == ["six"]  # the named table's dead letters too
    assert len(tickets(catalog)) == 5  # not named: untouched
    holding = files_holding(root, [ANN.encode()])
    assert holding and all(p.startswith("markdown_kv/") for p in holding)
    assert sorted(line["table"] for line in audit_lines(audit)) == [
        "acme.crm.customers", "acme.crm.customers__dead_letter"]

    again = dativo("forget", "--config", str(config), "--tenant", TENANT,
                   "--key", f"email={ANN}", "--all")
    assert again.returncode == 0, again.stderr
    assert "acme.crm.customers: no matching rows" in again.stdout
    assert_forgotten(open_catalog(), catalog_props, audit, [ANN.encode()])


def test_forget_by_an_integer_key_and_two_keys(
        tmp_path: Path, target_config: Callable[..., Path],
        open_catalog: Callable[[], Catalog]) -> None:
    config, _ = setup(tmp_path, target_config, encrypted=False)

    both = dativo("forget", "--config", str(config), "--tenant", TENANT, "--key", "id=3",
                  "--key", "email=bob@example.com", "--tables", "acme.crm.customers")
    assert both.returncode == 0, both.stderr
    assert "acme.crm.customers: no matching rows" in both.stdout  # id 3 is Ann's
    result = dativo("forget", "--config", str(config), "--tenant", TENANT, "--key", "id=3",
                    "--key", f"email={ANN}", "--tables", "acme.crm.customers")
    assert result.returncode == 0, result.stderr
    assert ids(open_catalog(), "customers") == [1, 2, 4, 5, 6, 7]


def test_dry_run_counts_and_changes_nothing(
        tmp_path: Path, target_config: Callable[..., Path], catalog_props: dict[str, str],
        open_catalog: Callable[[], Catalog]) -> None:
    config, audit = setup(tmp_path, target_config, encrypted=False)
    before = {p: p.stat().st_mtime_ns for p in warehouse(catalog_props).rglob("*")
              if p.is_file()}

    result = dativo("forget", "--config", str(config), "--tenant", TENANT,
                    "--key", f"email={ANN}", "--all", "--dry-run")

    assert result.returncode == 0, result.stderr
    assert "acme.crm.customers: would remove 3 row(s) from 2 data file(s)" in result.stdout
    assert "acme.crm.customers__dead_letter: would remove 1 row(s)" in result.stdout
    assert ("acme.crm.tickets__md_files: would remove 3 row(s) from 1 data file(s); would "
            "delete 1 and would rewrite 1 Markdown-KV file(s)") in result.stdout
    assert "forget: would remove 7 row(s) in 3 of" in result.stdout
    after = {p: p.stat().st_mtime_ns for p in warehouse(catalog_props).rglob("*")
             if p.is_file()}
    assert after == before
    assert audit_lines(audit) == []
    assert ids(open_catalog(), "customers") == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(("args", "message"), [
    (["--key", f"email={ANN}"],
     "pass --tables with the tables to search, or --all for every table"),
    (["--key", f"email={ANN}", "--all", "--tables", "acme.crm.customers"], "(not both)"),
    (["--key", ANN, "--all"], "--key number 1 is not FIELD=VALUE"),
    (["--key", "email=", "--all"], "--key email= has an empty value"),
    (["--all"], "--key FIELD=VALUE is required"),
    (["--key", f"email={ANN}", "--tables", "acme.crm.customer"],
     "table acme.crm.customer does not exist in the catalog; did you mean acme.crm.customers?"),
    (["--key", f"email={ANN}", "--tables", "crm.customers"],
     "is not in tenant acme's namespace"),
    (["--key", f"mail={ANN}", "--tables", "acme.crm.customers"],
     "table acme.crm.customers: no column 'mail'"),
    (["--key", "id=three", "--tables", "acme.crm.customers"],
     "column 'id' is int64 and the value of --key id is not one"),
])
def test_errors_are_one_line_and_exit_2_without_the_value(
        tmp_path: Path, target_config: Callable[..., Path],
        open_catalog: Callable[[], Catalog], args: list[str], message: str) -> None:
    config, _ = setup(tmp_path, target_config, encrypted=False)

    result = dativo("forget", "--config", str(config), "--tenant", TENANT, *args)

    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert ANN not in result.stderr + result.stdout
    assert ids(open_catalog(), "customers") == [1, 2, 3, 4, 5, 6, 7]


def test_forget_matches_values_written_under_every_key_of_a_rotation(
        tmp_path: Path, target_config: Callable[..., Path], catalog_props: dict[str, str],
        open_catalog: Callable[[], Catalog]) -> None:
    contracts = tmp_path / "contracts" / TENANT / "crm"
    contracts.mkdir(parents=True)
    (contracts / "customers.odcs.yaml").write_text(
        CONTRACT.format(stream="customers", email=RESTRICTED))
    keys = {"k1": KEY, "k2": bytes(range(32, 64))}
    for key_id, key in keys.items():
        (tmp_path / f"{key_id}.key").write_text(base64.b64encode(key).decode())
    settings = {"contracts_dir": str(tmp_path / "contracts"),
                "audit_log_path": str(tmp_path / "audit.jsonl")}
    load(target_config(**settings, encryption_keys={"k1": f"file:{tmp_path / 'k1.key'}"}),
         "customers", CUSTOMERS_RUN_1)
    rotated = target_config(**settings, encryption_active_key="k2", encryption_keys={
        key_id: f"file:{tmp_path / key_id}.key" for key_id in keys})
    load(rotated, "customers", CUSTOMERS_RUN_2)
    tokens = [t.encode() for t in ColumnCipher(Keyring("k2", keys)).tokens_for(ANN)]
    root = warehouse(catalog_props)
    assert all(files_holding(root, [token]) for token in tokens)  # one run under each key

    result = dativo("forget", "--config", str(rotated), "--tenant", TENANT,
                    "--key", f"email={ANN}", "--all")

    assert result.returncode == 0, result.stderr
    catalog = open_catalog()
    assert ids(catalog, "customers") == [2, 4, 5, 7]
    assert dead_letter_ids(catalog) == ["six"]
    assert files_holding(root, [ANN.encode(), *tokens]) == []


def test_a_randomized_key_column_cannot_be_matched(
        tmp_path: Path, target_config: Callable[..., Path],
        open_catalog: Callable[[], Catalog]) -> None:
    contracts = tmp_path / "contracts" / TENANT / "crm"
    contracts.mkdir(parents=True)
    (contracts / "customers.odcs.yaml").write_text(CONTRACT.format(
        stream="customers", email=RESTRICTED + ", customProperties: [{property: encryption, "
        "value: randomized}]"))
    (tmp_path / "k1.key").write_text(base64.b64encode(KEY).decode())
    config = target_config(contracts_dir=str(tmp_path / "contracts"),
                           audit_log_path=str(tmp_path / "audit.jsonl"),
                           encryption_keys={"k1": f"file:{tmp_path / 'k1.key'}"})
    load(config, "customers", CUSTOMERS_RUN_1)

    result = dativo("forget", "--config", str(config), "--tenant", TENANT,
                    "--key", f"email={ANN}", "--all")

    assert result.returncode == 2, result.stdout + result.stderr
    assert ("table acme.crm.customers: column 'email' is encrypted randomized, so equal "
            "values have different tokens and forget cannot find the subject's rows by it"
            in result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1
    assert ids(open_catalog(), "customers") == [1, 2, 3, 4]
    by_id = dativo("forget", "--config", str(config), "--tenant", TENANT, "--key", "id=3",
                   "--all")
    assert by_id.returncode == 0, by_id.stderr
    assert ids(open_catalog(), "customers") == [1, 2, 4]


@pytest.mark.parametrize(("markdown_kv", "table"), [
    ({"storage": "string"}, "tickets__markdown"),
    ({"storage": "string", "dialect": "sectioned"}, "tickets__markdown"),
    ({"storage": "structured", "layout": "row_per_kv"}, "tickets__kv"),
    ({"storage": "structured", "layout": "document_level"}, "tickets__documents"),
], ids=["string", "string-sectioned", "row_per_kv", "document_level"])
def test_forget_from_every_markdown_kv_table(
        tmp_path: Path, target_config: Callable[..., Path], catalog_props: dict[str, str],
        open_catalog: Callable[[], Catalog], markdown_kv: dict[str, str], table: str) -> None:
    contracts = tmp_path / "contracts" / TENANT / "crm"
    contracts.mkdir(parents=True)
    (contracts / "tickets.odcs.yaml").write_text(CONTRACT.format(stream="tickets", email=""))
    config = target_config(contracts_dir=str(tmp_path / "contracts"), format="markdown_kv",
                           audit_log_path=str(tmp_path / "audit.jsonl"),
                           markdown_kv=markdown_kv)
    load(config, "tickets", TICKETS)
    assert files_holding(warehouse(catalog_props), [ANN.encode()])

    result = dativo("forget", "--config", str(config), "--tenant", TENANT,
                    "--key", f"email={ANN}", "--all")

    assert result.returncode == 0, result.stderr
    assert f"acme.crm.{table}: removed" in result.stdout
    rows = open_catalog().load_table((TENANT, "crm", table)).scan().to_arrow()
    assert sorted(set(rows.column("doc_id").to_pylist())) == ["3", "5"]
    assert files_holding(warehouse(catalog_props), [ANN.encode()]) == []


def test_forget_an_oversized_record_kept_as_a_reference(
        tmp_path: Path, target_config: Callable[..., Path], catalog_props: dict[str, str],
        open_catalog: Callable[[], Catalog]) -> None:
    contracts = tmp_path / "contracts" / TENANT / "crm"
    contracts.mkdir(parents=True)
    (contracts / "customers.odcs.yaml").write_text(
        CONTRACT.format(stream="customers", email=""))
    config = target_config(contracts_dir=str(tmp_path / "contracts"),
                           audit_log_path=str(tmp_path / "audit.jsonl"),
                           max_record_bytes=2**20)
    huge = [(8, ANN, "x" * 2**20), (9, "bob@example.com", "y" * 2**20)]
    load(config, "customers", CUSTOMERS_RUN_1[:2] + huge)
    dead = open_catalog().load_table((TENANT, "crm", "customers__dead_letter")).scan()
    assert len(dead.to_arrow()) == 2
    assert files_holding(warehouse(catalog_props), [ANN.encode()])

    result = dativo("forget", "--config", str(config), "--tenant", TENANT,
                    "--key", f"email={ANN}", "--all")

    assert result.returncode == 0, result.stderr
    rows = open_catalog().load_table((TENANT, "crm", "customers__dead_letter")).scan()
    [kept] = rows.to_arrow().column("record_json").to_pylist()
    assert "bob@example.com" in kept
    assert ids(open_catalog(), "customers") == [2]
    assert files_holding(warehouse(catalog_props), [ANN.encode()]) == []


def test_forget_while_loads_commit_keeps_every_other_row(
        tmp_path: Path, target_config: Callable[..., Path], catalog_props: dict[str, str],
        open_catalog: Callable[[], Catalog]) -> None:
    config, _ = setup(tmp_path, target_config, encrypted=False)
    batches = [[(100 + 10 * run + i, f"other{run}-{i}@example.com", "concurrent")
                for i in range(10)] for run in range(6)]

    def loads() -> None:
        for rows in batches:
            load(config, "customers", rows)

    with ThreadPoolExecutor(1) as pool:
        loading = pool.submit(loads)
        result = dativo("forget", "--config", str(config), "--tenant", TENANT,
                        "--key", f"email={ANN}", "--all")  # the default grace: loads are on
        loading.result()

    assert result.returncode == 0, result.stderr
    assert ids(open_catalog(), "customers") == [2, 4, 5, 7, *(i for rows in batches
                                                              for i, _, _ in rows)]
    assert files_holding(warehouse(catalog_props), [ANN.encode()]) == []
