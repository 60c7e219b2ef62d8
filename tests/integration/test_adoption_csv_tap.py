"""tap-dativo-csv with any target (issue 13, parts 4, 5 and 6): on_invalid_value, the
``<stream>__rejected`` stream and how target-dativo-iceberg lands it, the RECORD fast
path against singer-sdk's own path, and progress lines. Real processes throughout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog

from tests.conftest import BIN, REPO, read_table, run_target

DEMO = REPO / "samples" / "demo"
CONTRACTS = REPO / "odcs_contracts"
TAP = BIN / "tap-dativo-csv"


def run_tap(config: dict[str, Any], cwd: Path, *args: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cfg = cwd / f"tap-{len(list(cwd.glob('tap-*.json')))}.json"
    cfg.write_text(json.dumps(config))
    return subprocess.run([str(TAP), "--config", str(cfg), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, check=False)


def messages(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def records(out: list[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    return [m["record"] for m in out if m["type"] == "RECORD" and m["stream"] == stream]


def demo_config(tmp_path: Path, **settings: Any) -> dict[str, Any]:
    shutil.copy(DEMO / "customers.csv", tmp_path / "customers.csv")
    return {"files": [{"entity": "customers", "path": "customers.csv"}],
            "tenant_id": "demo", "contracts_dir": str(CONTRACTS), **settings}


def test_default_rejects_rows_that_contradict_the_schema(tmp_path: Path) -> None:
    result = run_tap(demo_config(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    out = messages(result.stdout)
    sent = records(out, "customers")
    assert [r["customer_id"] for r in sent] == [1, 2, 3, 4, 6, 8, 9, 10]
    assert {r["signup_date"] for r in sent} >= {"2024-01-15", "2024-06-21"}

    schemas = [m for m in out if m["type"] == "SCHEMA"]
    assert [s["stream"] for s in schemas] == ["customers", "customers__rejected"]
    rejected_schema = schemas[1]
    assert rejected_schema["key_properties"] == ["_sdc_source_file", "_sdc_source_lineno"]
    assert set(rejected_schema["schema"]["required"]) == {
        "_sdc_source_file", "_sdc_source_lineno", "_sdc_source_file_mtime", "fields",
        "reason"}  # raw_line is null when a column is deselected or a stream map applies
    first_rejected = next(i for i, m in enumerate(out)
                          if m.get("stream") == "customers__rejected")
    assert out[first_rejected]["type"] == "SCHEMA"

    rejected = records(out, "customers__rejected")
    assert [(r["_sdc_source_lineno"], r["fields"]) for r in rejected] == [
        (6, ["email"]), (8, ["signup_date"])]
    assert rejected[1]["raw_line"] == (
        "7,donald@example.com,Donald Knuth,US,2024-13-01,640.10,gold")
    assert rejected[1]["reason"] == ("signup_date: '2024-13-01' is not a valid date "
                                     "(month must be in 1..12)")
    assert rejected[0]["reason"] == "email: 'not-an-email' is not a valid email"
    assert all(r["_sdc_source_file"] == "customers.csv" for r in rejected)
    assert "2 row(s) of customers.csv contradict the SCHEMA and were sent to stream " \
           "'customers__rejected'" in result.stderr


def test_fail_stops_naming_stream_file_line_and_field(tmp_path: Path) -> None:
    result = run_tap(demo_config(tmp_path, on_invalid_value="fail"), tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert ("line 6: stream 'customers': customers.csv, column email: 'not-an-email' is "
            "not a valid email; fix the file, or set on_invalid_value to reject") in errors[0]
    assert "Traceback" not in result.stderr
    out = messages(result.stdout)
    # The file is checked before any of its rows is sent: none is, and no bookmark.
    assert records(out, "customers") == []
    assert not records(out, "customers__rejected")
    assert not any(m["type"] == "STATE" and m["value"].get("bookmarks", {}).get("customers",
                   {}).get("partitions", [{}])[0].get("replication_key_value")
                   for m in out)


def test_pass_sends_the_text_as_before(tmp_path: Path) -> None:
    result = run_tap(demo_config(tmp_path, on_invalid_value="pass"), tmp_path)
    assert result.returncode == 0, result.stderr
    out = messages(result.stdout)
    sent = records(out, "customers")
    assert len(sent) == 10
    assert sent[6]["signup_date"] == "2024-13-01"
    assert sent[4]["email"] == "not-an-email"
    assert not [m for m in out if m.get("stream") == "customers__rejected"]


def test_unknown_on_invalid_value_exits_2_naming_the_key(tmp_path: Path) -> None:
    result = run_tap(demo_config(tmp_path, on_invalid_value="drop"), tmp_path)
    assert result.returncode == 2
    assert "on_invalid_value" in result.stderr
    assert result.stdout == ""


MULTILINE = ('id,note,day\r\n'
             '1,"two\r\nlines",2024-01-01\r\n'
             '2,"bad ""quoted""\r\nrow",2024-02-30\r\n'
             '\r\n'
             '3,ok,\r\n'
             '4,,not-a-date\r\n')
NOTES_CONTRACT = """\
apiVersion: v3.0.2
kind: DataContract
id: notes
version: 1.0.0
status: active
domain: misc
schema:
  - name: notes
    properties:
      - {name: id, logicalType: integer, required: true}
      - {name: note, logicalType: string}
      - {name: day, logicalType: date}
"""


def test_rejected_raw_line_spans_a_quoted_line_break_and_lines_stay_exact(
        tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_bytes(MULTILINE.encode())
    (tmp_path / "notes.odcs.yaml").write_text(NOTES_CONTRACT)
    config = {"files": [{"entity": "notes", "path": "notes.csv",
                         "contract": "notes.odcs.yaml"}]}
    result = run_tap(config, tmp_path)
    assert result.returncode == 0, result.stderr
    out = messages(result.stdout)
    assert [(r["id"], r["note"], r["day"], r["_sdc_source_lineno"])
            for r in records(out, "notes")] == [
        (1, "two\r\nlines", "2024-01-01", 2), (3, "ok", None, 7)]
    rejected = records(out, "notes__rejected")
    assert [(r["_sdc_source_lineno"], r["raw_line"]) for r in rejected] == [
        (4, '2,"bad ""quoted""\r\nrow",2024-02-30'), (8, "4,,not-a-date")]
    assert rejected[0]["reason"].startswith("day: '2024-02-30' is not a valid date")


# --- the fast path and singer-sdk's path -----------------------------------------------

KINDS = ('id,amount,flag,at,day,ratio,label,big\n'
         '1,12.50,true,2024-01-05T10:00:00Z,2024-01-05,0.5,plain,1\n'
         '2,-0.10,FALSE,2024-01-05T10:00:00.123456+05:30,2024-02-29,1e3,"quote "" and \\",'
         '123456789012345678901234567890\n'
         '3,,yes,2024-01-05 10:00:00,,, ,\n')
KINDS_CONTRACT = """\
apiVersion: v3.0.2
kind: DataContract
id: kinds
version: 1.0.0
status: active
domain: misc
schema:
  - name: kinds
    properties:
      - {name: id, logicalType: integer, required: true}
      - {name: amount, logicalType: number, physicalType: "decimal(10,2)"}
      - {name: flag, logicalType: boolean}
      - {name: at, logicalType: date, physicalType: timestamptz}
      - {name: day, logicalType: date}
      - {name: ratio, logicalType: number}
      - {name: label, logicalType: string}
      - {name: big, logicalType: integer}
"""


def _comparable(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RECORD and STATE messages without time_extracted (the clock differs between two
    runs; a stream map re-renders the SCHEMA)."""
    return [{k: v for k, v in m.items() if k != "time_extracted"} for m in out
            if m["type"] in ("RECORD", "STATE")]


@pytest.mark.parametrize("deselect", [False, True])
def test_fast_path_sends_what_singer_sdk_sends(tmp_path: Path, deselect: bool) -> None:
    """The same file through the fast path and, with a stream map that changes nothing,
    through singer-sdk's per-record path: the same RECORDs (values, key order) and STATE,
    also with a column deselected in the catalog."""
    (tmp_path / "kinds.csv").write_text(KINDS, encoding="utf-8")
    (tmp_path / "kinds.odcs.yaml").write_text(KINDS_CONTRACT)
    config = {"files": [{"entity": "kinds", "path": "kinds.csv",
                         "contract": "kinds.odcs.yaml"}], "on_invalid_value": "pass"}
    args: list[str] = []
    if deselect:
        catalog = json.loads(run_tap(config, tmp_path, "--discover").stdout)
        for entry in catalog["streams"][0]["metadata"]:
            if entry["breadcrumb"] == ["properties", "ratio"]:
                entry["metadata"]["selected"] = False
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        args = ["--catalog", str(tmp_path / "catalog.json")]
    debug = {"LOGLEVEL": "DEBUG"}
    fast = run_tap(config, tmp_path, *args, env=debug)
    mapped = {**config, "stream_maps": {"kinds": {"__key_properties__": ["id"]}}}
    slow = run_tap(mapped, tmp_path, *args, env=debug)
    assert fast.returncode == 0 and slow.returncode == 0, fast.stderr + slow.stderr
    assert "RECORDs through the fast path" in fast.stderr
    assert "RECORDs through the fast path" not in slow.stderr
    fast_out, slow_out = messages(fast.stdout), messages(slow.stdout)
    assert _comparable(fast_out) == _comparable(slow_out)
    sent = records(fast_out, "kinds")
    assert [list(r)[:3] for r in sent] == [["id", "amount", "flag"]] * 3
    assert ("ratio" in sent[0]) is not deselect
    assert sent[1]["big"] == 123456789012345678901234567890
    assert sent[1]["label"] == 'quote " and \\'
    assert sent[1]["at"] == "2024-01-05T10:00:00.123456+05:30"
    assert sent[2]["at"] == "2024-01-05T10:00:00+00:00"
    assert '"amount":-0.10,' in fast.stdout  # decimals digit for digit


def test_progress_lines_while_rows_flow_and_at_the_end(tmp_path: Path) -> None:
    rows = 300_000
    with (tmp_path / "big.csv").open("w", encoding="utf-8") as handle:
        handle.write("id,name\n")
        handle.writelines(f"{i},name {i}\n" for i in range(rows))
    config = {"files": [{"entity": "big", "path": "big.csv"}],
              "progress_interval_seconds": 0.1}
    result = run_tap(config, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "progress" in line]
    periodic = [line for line in lines if "progress: stream=big rows=" in line]
    final = [line for line in lines if "progress (final): stream=big" in line]
    assert len(periodic) >= 2, result.stderr
    assert all("rows/s=" in line for line in periodic)
    assert len(final) == 1 and f"rows={rows} " in final[0]
    assert result.stdout.count('"type":"RECORD"') == rows


# --- target-dativo-iceberg and the rejected stream -------------------------------------

VALID_BUT_ONE = ("customer_id,email,full_name,country,signup_date,lifetime_value,tier\n"
                 "1,ada@example.com,Ada Lovelace,GB,2024-01-15,1250.50,gold\n"
                 "2,grace@example.com,Grace Hopper,US,2024-13-01,980.00,silver\n"
                 "3,alan@example.com,Alan Turing,GB,2024-02-28,310.25,bronze\n")


def test_iceberg_target_lands_the_rejected_stream_beside_the_table_in_strict_mode(
        tmp_path: Path, target_config: Any, open_catalog: Any) -> None:
    """Strict mode with contracts_dir needs a contract for every stream, except a tap's
    ``<stream>__rejected``: its SCHEMA is its contract, and it lands in the parent
    stream's domain."""
    (tmp_path / "customers.csv").write_text(VALID_BUT_ONE)
    tap = run_tap({"files": [{"entity": "customers", "path": "customers.csv"}],
                   "tenant_id": "demo", "contracts_dir": str(CONTRACTS)}, tmp_path)
    assert tap.returncode == 0, tap.stderr
    cfg = target_config(tenant_id="demo", contracts_dir=str(CONTRACTS),
                        validation_mode="strict")
    target = run_target(cfg, tap.stdout.encode(), cwd=tmp_path)
    assert target.returncode == 0, target.stderr.decode()
    assert b"holds the rows a tap rejected from stream 'customers'" in target.stderr
    catalog: Catalog = open_catalog()
    loaded = read_table(catalog, ("demo", "crm", "customers"))
    assert sorted(loaded.column("customer_id").to_pylist()) == [1, 3]
    rejected = read_table(catalog, ("demo", "crm", "customers_rejected"))
    assert rejected.column("_sdc_source_lineno").to_pylist() == [3]
    assert rejected.column("raw_line").to_pylist() == [VALID_BUT_ONE.splitlines()[2]]


@pytest.mark.parametrize("good_rows", [0, 1500])
def test_ragged_row_in_any_chunk_names_its_line(tmp_path: Path, good_rows: int) -> None:
    """The rows are read a chunk at a time; the ragged one is still named by its line,
    and the rows before it are sent."""
    body = "".join(f"{i},x\n" for i in range(good_rows))
    (tmp_path / "r.csv").write_text("a,b\n" + body + "1,2,3\n4,5\n")
    result = run_tap({"files": [{"entity": "r", "path": "r.csv"}]}, tmp_path)
    assert result.returncode == 2
    assert f"line {good_rows + 2}: r.csv: expected 2 columns, got 3" in result.stderr
    assert result.stdout.count('"type":"RECORD"') == good_rows
