"""tap-dativo-markdown-kv run as a process on files in tmp_path: exact records, state,
incremental reruns and error text; plus singer-sdk's standard tap tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.testing import get_tap_test_class

from tap_dativo_markdown_kv.tap import TapDativoMarkdownKV

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "markdown_kv"
TAP_BIN = Path(sys.executable).with_name("tap-dativo-markdown-kv")

# 2023-11-14T22:13:20.123456789Z and one minute later: fixed mtimes make bookmarks exact.
T1_NS = 1_700_000_000_123_456_789
T1_ISO = "2023-11-14T22:13:20.123456+00:00"
T2_NS = T1_NS + 60 * 1_000_000_000
T2_ISO = "2023-11-14T22:14:20.123456+00:00"

NOTES_1 = "## Record n1\n\n```\nid: 1\ntext: first\n```\n"
NOTES_2 = "## Record n2\n\n```\nid: 2\ntext: second\n  line\n```\n"


def write(path: Path, text: str, *, mtime_ns: int = T1_NS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def fixture(tmp: Path, name: str, *, mtime_ns: int = T1_NS) -> Path:
    target = tmp / name
    shutil.copyfile(FIXTURES / name, target)
    os.utime(target, ns=(mtime_ns, mtime_ns))
    return target


def run(tmp: Path, config: dict[str, Any], *args: str,
        state: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    (tmp / "config.json").write_text(json.dumps(config))
    extra = list(args)
    if state is not None:
        (tmp / "state.json").write_text(json.dumps(state))
        extra += ["--state", "state.json"]
    return subprocess.run([str(TAP_BIN), "--config", "config.json", *extra], cwd=tmp,
                          capture_output=True, text=True, timeout=120, check=False)


def messages(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line, parse_float=Decimal) for line in result.stdout.splitlines()]


def records(msgs: list[dict[str, Any]], stream: str | None = None) -> list[dict[str, Any]]:
    return [m["record"] for m in msgs
            if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)]


def final_state(msgs: list[dict[str, Any]]) -> dict[str, Any]:
    return [m for m in msgs if m["type"] == "STATE"][-1]["value"]


def partition(path: str, iso: str) -> dict[str, Any]:
    return {"context": {"_sdc_source_file": path}, "replication_key": "_sdc_source_file_mtime",
            "replication_key_value": iso}


def test_record_blocks_exact_records_schema_and_state(tmp_path: Path) -> None:
    fixture(tmp_path, "orders.record_blocks.md")
    result = run(tmp_path, {"files": [{"entity": "orders", "path": "orders.record_blocks.md",
                                       "keys": ["order_id"]}]})
    msgs = messages(result)
    assert '"amount":12.50,' in result.stdout  # decimals digit for digit
    (schema,) = [m for m in msgs if m["type"] == "SCHEMA"]
    assert schema["key_properties"] == ["order_id"]
    assert schema["bookmark_properties"] == ["_sdc_source_file_mtime"]
    props = schema["schema"]["properties"]
    assert list(props) == [
        "order_id", "customer", "amount", "paid", "note", "code", "empty", "padded", "url",
        "ratio", "tags", "address", "snippet", "quoted", "blank_lines", "emoji",
        "_sdc_doc_id", "_sdc_source_file", "_sdc_source_lineno", "_sdc_source_file_mtime"]
    assert props["order_id"] == {"type": ["integer", "null"]}
    assert props["amount"] == {"type": ["number", "null"]}  # 12.50 and 7
    assert props["paid"] == {"type": ["boolean", "null"]}
    assert props["customer"] == {"type": ["string", "null"]}  # "true" stays a string
    assert props["tags"] == {"type": ["array", "null"], "items": {}}
    assert props["address"] == {"type": ["object", "null"]}
    sdc = {"_sdc_source_file": "orders.record_blocks.md", "_sdc_source_file_mtime": T1_ISO}
    assert records(msgs) == [
        {"order_id": 1, "customer": "Ann Example", "amount": Decimal("12.50"), "paid": True,
         "note": None, "code": "0042", "empty": "", "padded": "  indented",
         "url": "https://example.com/a?b=c", "ratio": "a:b :: c", "tags": ["rush", "gift"],
         "address": {"city": "Zürich", "zip": "8001"}, "_sdc_doc_id": "1",
         "_sdc_source_lineno": 3, **sdc},
        {"order_id": 2, "customer": "true", "amount": 7, "paid": False,
         "note": "Call first.\nThen ship:\n  - by noon", "snippet": "```sql\nselect 1\n```",
         "quoted": '"hello" she said', "blank_lines": "para one\n\npara two",
         "emoji": "😀 café", "_sdc_doc_id": "2", "_sdc_source_lineno": 20, **sdc},
    ]
    assert final_state(msgs) == {"bookmarks": {"orders": {"partitions": [
        partition("orders.record_blocks.md", T1_ISO)]}}}


def test_sectioned_document_is_one_record(tmp_path: Path) -> None:
    fixture(tmp_path, "customer.sectioned.md")
    msgs = messages(run(tmp_path, {"files": [
        {"entity": "customers", "path": "*.md", "dialect": "sectioned"}]}))
    assert records(msgs) == [{
        "source": "crm", "tags": ["vip", "eu"], "name": "Ann Example", "tier": "gold",
        "since": "2019", "score": Decimal("9.5"), "active": True,
        "summary": "Prefers email.\nSpeaks German:: and French.", "last_call": None,
        "raw": {"calls": [1, 2, 3]}, "_sdc_doc_id": "cust-42",
        "_sdc_source_file": "customer.sectioned.md", "_sdc_source_lineno": 1,
        "_sdc_source_file_mtime": T1_ISO,
    }]
    props = next(m for m in msgs if m["type"] == "SCHEMA")["schema"]["properties"]
    assert props["last_call"] == {"type": ["string", "null"]}  # only nulls seen


def test_row_per_kv_rows_exact(tmp_path: Path) -> None:
    write(tmp_path / "docs" / "a.md",
          "---\ndoc_id: a\nlang: en\n---\n\n# body\n\ntitle:: Hello\nviews:: 3\n")
    write(tmp_path / "docs" / "b.md", "## Record b1\n\n```\nx: null\n```\n")
    msgs = messages(run(tmp_path, {"files": [
        {"entity": "kv", "path": "docs/*.md", "emit": "row_per_kv"}]}))
    (schema,) = [m for m in msgs if m["type"] == "SCHEMA"]
    assert schema["key_properties"] == ["doc_id", "section", "key"]
    got = [{k: v for k, v in r.items() if k != "_sdc_source_file_mtime"}
           for r in records(msgs)]
    a, b = {"_sdc_source_file": "docs/a.md"}, {"_sdc_source_file": "docs/b.md"}
    assert got == [
        {"doc_id": "a", "section": "", "key": "lang", "value": "en", "value_json": '"en"',
         "ord": 0, "_sdc_source_lineno": 1, **a},
        {"doc_id": "a", "section": "body", "key": "title", "value": "Hello",
         "value_json": '"Hello"', "ord": 1, "_sdc_source_lineno": 6, **a},
        {"doc_id": "a", "section": "body", "key": "views", "value": "3", "value_json": "3",
         "ord": 2, "_sdc_source_lineno": 6, **a},
        {"doc_id": "b1", "section": "", "key": "x", "value": None, "value_json": "null",
         "ord": 0, "_sdc_source_lineno": 1, **b},
    ]


def test_second_run_reads_only_changed_and_new_files(tmp_path: Path) -> None:
    write(tmp_path / "notes" / "1.md", NOTES_1)
    write(tmp_path / "notes" / "2.md", NOTES_2)
    config = {"files": [{"entity": "notes", "path": "notes/*.md",
                         "schema": {"id": {"type": ["integer"]}, "text": {"type": ["string"]}}}]}
    first = messages(run(tmp_path, config))
    assert [r["_sdc_doc_id"] for r in records(first)] == ["n1", "n2"]
    state = final_state(first)
    assert state == {"bookmarks": {"notes": {"partitions": [
        partition("notes/1.md", T1_ISO), partition("notes/2.md", T1_ISO)]}}}

    unchanged = messages(run(tmp_path, config, state=state))
    assert records(unchanged) == []
    assert final_state(unchanged) == state

    write(tmp_path / "notes" / "2.md", NOTES_2.replace("second", "changed"), mtime_ns=T2_NS)
    write(tmp_path / "notes" / "3.md", "## Record n3\n\n```\nid: 3\ntext: new\n```\n",
          mtime_ns=T2_NS)
    second = messages(run(tmp_path, config, state=state))
    assert [(r["_sdc_doc_id"], r["text"], r["_sdc_source_file_mtime"])
            for r in records(second)] == [("n2", "changed\nline", T2_ISO), ("n3", "new", T2_ISO)]
    assert final_state(second) == {"bookmarks": {"notes": {"partitions": [
        partition("notes/1.md", T1_ISO), partition("notes/2.md", T2_ISO),
        partition("notes/3.md", T2_ISO)]}}}


def test_discover_infers_or_declares_the_schema(tmp_path: Path) -> None:
    write(tmp_path / "n.md", NOTES_1 + "\n" + NOTES_2 + "\n## Record n3\n```\nid: [3]\n"
          "text: null\nscore: 1\n```\n## Record n4\n```\nscore: 1.5\n```\n")
    declared = {"id": {"type": ["string"]}, "text": {"type": ["string", "null"]}}
    result = run(tmp_path, {"files": [{"entity": "inferred", "path": "n.md"},
                                      {"entity": "declared", "path": "n.md",
                                       "schema": declared}]}, "--discover")
    assert result.returncode == 0, result.stderr
    streams = {s["stream"]: s for s in json.loads(result.stdout)["streams"]}
    inferred = streams["inferred"]["schema"]["properties"]
    assert inferred["id"] == {"type": ["integer", "array", "null"], "items": {}}
    assert inferred["text"] == {"type": ["string", "null"]}
    assert inferred["score"] == {"type": ["number", "null"]}
    assert streams["declared"]["schema"]["properties"]["id"] == {"type": ["string"]}
    assert list(streams["declared"]["schema"]["properties"])[:2] == ["id", "text"]


@pytest.mark.parametrize(("text", "dialect", "message"), [
    ("## Record 1\n\n```\nid: 1\nname Ann\n```\n", "auto",
     "bad.md: line 5: expected a `key: value` line, got 'name Ann'"),
    ("## Record 1\n\n```\nid: 1\n", "record_blocks",
     "bad.md: line 1: record '1' ends without its block: the fence opened on line 3"),
    ("---\ndoc_id: x\n---\n# a\nk:: 1\n# b\nk:: 2\n", "auto",
     "bad.md: line 6: key 'k': the key is used twice in this document"),
    ("# a\nk:: [1,\n", "sectioned",
     "bad.md: line 2: key 'k': value '[1,' starts like JSON but is not valid JSON"),
    ("## Record 1\n```\n_sdc_doc_id: 1\n```\n", "auto",
     "bad.md: line 1: key '_sdc_doc_id': this name is reserved for the tap's own metadata"),
])
def test_malformed_file_fails_naming_file_and_line(tmp_path: Path, text: str, dialect: str,
                                                   message: str) -> None:
    write(tmp_path / "bad.md", text)
    config = {"files": [{"entity": "x", "path": "bad.md", "dialect": dialect,
                         "schema": {"id": {}, "k": {}, "_sdc_doc_id": {}}}]}
    result = run(tmp_path, config)
    assert result.returncode == 2
    assert result.stdout.count('"type":"RECORD"') == 0  # nothing half-read
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_file_fails_discovery_too(tmp_path: Path) -> None:
    write(tmp_path / "bad.md", "## Recrod 1\n")
    result = run(tmp_path, {"files": [{"entity": "x", "path": "bad.md"}]}, "--discover")
    assert result.returncode == 2
    assert ("bad.md: line 1: expected `## Record <id>`, a `# title` or a blank line outside "
            "record blocks, got '## Recrod 1'") in result.stderr
    assert "Traceback" not in result.stderr


def test_key_outside_the_declared_schema_fails(tmp_path: Path) -> None:
    write(tmp_path / "n.md", NOTES_1)
    result = run(tmp_path, {"files": [{"entity": "n", "path": "n.md",
                                       "schema": {"id": {"type": ["integer"]}}}]})
    assert result.returncode == 2
    assert ("n.md: line 1: keys ['text'] are not in stream 'n''s schema; declare them in "
            "files[0].schema") in result.stderr


def test_undecodable_bytes_name_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "l1.md", "")
    path.write_bytes(b"## Record 1\n\n```\nname: Jos\xe9\n```\n")
    result = run(tmp_path, {"files": [{"entity": "x", "path": "l1.md",
                                       "schema": {"name": {}}}]})
    assert result.returncode == 2
    assert "l1.md: line 4: byte offset 26 is not valid utf-8" in result.stderr
    latin = run(tmp_path, {"files": [{"entity": "x", "path": "l1.md", "encoding": "latin-1",
                                      "schema": {"name": {}}}]})
    assert [r["name"] for r in records(messages(latin))] == ["José"]


@pytest.mark.parametrize(("entry", "message"), [
    ({"entity": "x", "path": "a.md", "emit": "row_per_kv", "keys": ["id"]},
     "files[0].keys: row_per_kv rows are keyed by (doc_id, section, key)"),
    ({"entity": "x", "path": "a.md", "keys": ["nope"], "schema": {"id": {}}},
     "files[0].keys: ['nope'] not declared in files[0].schema"),
])
def test_config_errors_name_the_key(tmp_path: Path, entry: dict, message: str) -> None:
    write(tmp_path / "a.md", NOTES_1)
    result = run(tmp_path, {"files": [entry]})
    assert result.returncode == 2
    assert message in result.stderr


# --- singer-sdk's standard tap tests --------------------------------------------------

SAMPLE_CONFIG = {"files": [
    {"entity": "orders", "path": str(FIXTURES / "orders.record_blocks.md"),
     "keys": ["order_id"]},
    {"entity": "customers", "path": str(FIXTURES / "customer.sectioned.md"),
     "keys": ["_sdc_doc_id"]},
    {"entity": "kv", "path": str(FIXTURES / "*.md"), "emit": "row_per_kv"},
]}

TestTapDativoMarkdownKVStandard = get_tap_test_class(TapDativoMarkdownKV, config=SAMPLE_CONFIG)
