"""The bench's encryption row (bench/encryption.py) on a small events file: the contract
with two restricted columns loads, and the row's check refuses a table that holds
plaintext, so a bench run that did not encrypt cannot report a ratio."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench.encryption import ENCRYPTED_CONTRACT, KEY_ID, encryption_problem, write_key
from bench.generate import generate
from bench.run import target_config
from tests.conftest import BIN


def load(warehouse: Path, events: Path, **settings: object) -> None:
    config = {**target_config(warehouse), **settings}
    (warehouse / "cfg.json").write_text(json.dumps(config), encoding="utf-8")
    with events.open("rb") as stdin:
        run = subprocess.run([str(BIN / "target-dativo-iceberg"), "--config",
                              str(warehouse / "cfg.json")], stdin=stdin, capture_output=True,
                             text=True, timeout=300)
    assert run.returncode == 0, run.stderr


def test_the_encrypted_pipe_stores_tokens_that_decrypt(tmp_path: Path) -> None:
    events = generate(tmp_path / "events.singer.jsonl", 2_000)
    key = write_key(tmp_path)
    load(tmp_path, events, stream_contracts={"events": ENCRYPTED_CONTRACT},
         encryption_keys={KEY_ID: f"file:{key}"})
    assert encryption_problem(tmp_path, key) is None
    emails = [json.loads(line)["record"]["email"] for line in events.read_text().splitlines()
              if '"RECORD"' in line[:30]]
    warehouse_bytes = b"".join(p.read_bytes() for p in tmp_path.rglob("*")
                               if p.is_file() and p.suffix in (".parquet", ".avro", ".json"))
    assert emails and not any(e.encode() in warehouse_bytes for e in emails[:50])


def test_a_plaintext_table_fails_the_row(tmp_path: Path) -> None:
    events = generate(tmp_path / "events.singer.jsonl", 200)
    load(tmp_path, events)
    assert encryption_problem(tmp_path, write_key(tmp_path)) == (
        "bench.perf.events.name is not stored encrypted")
