"""tap-dativo-csv: run the tap for real on files in tmp_path and check what it emits."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.testing import get_tap_test_class

from dativo.errors import CodecError, ConfigError
from tap_dativo_csv.convert import converter
from tap_dativo_csv.tap import TapDativoCSV

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "csv"
TAP_BIN = Path(sys.executable).with_name("tap-dativo-csv")

ORDERS_CONTRACT = """\
apiVersion: v3.0.2
kind: DataContract
id: orders
version: 1.0.0
status: active
domain: sales
tenant: acme
schema:
  - name: orders
    properties:
      - {name: order_id, logicalType: integer, physicalType: bigint, primaryKey: true,
         primaryKeyPosition: 1, required: true}
      - {name: amount, logicalType: number, physicalType: "decimal(10,2)"}
      - {name: email, logicalType: string, logicalTypeOptions: {format: email}}
      - {name: ordered_at, logicalType: date, physicalType: timestamptz}
"""

# 2023-11-14T22:13:20.123456789Z and one minute later: fixed mtimes make bookmarks exact.
T1_NS = 1_700_000_000_123_456_789
T1_ISO = "2023-11-14T22:13:20.123456+00:00"
T2_NS = T1_NS + 60 * 1_000_000_000
T2_ISO = "2023-11-14T22:14:20.123456+00:00"


def write(path: Path, text: str, *, encoding: str = "utf-8", mtime_ns: int = T1_NS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def run_raw(config: dict[str, Any], state: dict[str, Any] | None = None) -> str:
    """Sync in-process; return what the tap wrote to stdout."""
    out = io.StringIO()
    tap = TapDativoCSV(config=config, state=state, parse_env_config=False)
    with contextlib.redirect_stdout(out):
        tap.sync_all()
    return out.getvalue()


def run_tap(config: dict[str, Any], state: dict[str, Any] | None = None) -> list[dict]:
    """Every Singer message of a sync, with JSON numbers parsed exactly (as Decimal)."""
    lines = run_raw(config, state).splitlines()
    return [json.loads(line, parse_float=Decimal) for line in lines]


def of_type(messages: list[dict], kind: str) -> list[dict]:
    return [m for m in messages if m["type"] == kind]


def records(messages: list[dict]) -> list[dict]:
    return [m["record"] for m in of_type(messages, "RECORD")]


def final_state(messages: list[dict]) -> dict:
    return of_type(messages, "STATE")[-1]["value"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TAP_BIN), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from tmp_path, so relative paths in configs resolve there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- types --------------------------------------------------------------------------


def test_contract_types_values_and_raw_passthrough(in_tmp: Path) -> None:
    write(in_tmp / "orders.odcs.yaml", ORDERS_CONTRACT)
    write(in_tmp / "data" / "orders.csv",
          "order_id,amount,email,ordered_at,status\n"
          "1,12.50,ann@example.com,2024-01-05,new\n"
          "\n"
          "x2,abc,bob@example.com,not-a-date,\n")
    config = {"files": [{"entity": "orders", "path": "data/orders.csv",
                         "contract": "orders.odcs.yaml"}], "on_invalid_value": "pass"}
    raw = run_raw(config)
    assert '"amount":12.50,' in raw  # decimals are written digit for digit
    messages = [json.loads(line, parse_float=Decimal) for line in raw.splitlines()]

    (schema,) = of_type(messages, "SCHEMA")
    props = schema["schema"]["properties"]
    assert schema["key_properties"] == ["order_id"]
    assert props["order_id"]["type"] == ["integer"]
    assert props["amount"]["type"] == ["number", "null"]
    assert props["email"] == {"type": ["string", "null"], "format": "email"}
    assert props["ordered_at"] == {"type": ["string", "null"], "format": "date-time"}
    assert props["status"]["type"] == ["string", "null"]
    assert props["_sdc_source_lineno"]["type"] == ["integer"]
    assert props["_sdc_source_file_mtime"]["format"] == "date-time"

    sdc = {"_sdc_source_file": "data/orders.csv", "_sdc_source_file_mtime": T1_ISO}
    assert records(messages) == [
        {"order_id": 1, "amount": Decimal("12.50"), "email": "ann@example.com",
         "ordered_at": "2024-01-05T00:00:00+00:00", "status": "new",
         "_sdc_source_lineno": 2, **sdc},
        # Cells that do not convert are passed through as text, not dropped, so the
        # target's contract check sends the row to its dead-letter table.
        {"order_id": "x2", "amount": "abc", "email": "bob@example.com",
         "ordered_at": "not-a-date", "status": None, "_sdc_source_lineno": 4, **sdc},
    ]
    first = records(messages)[0]
    assert type(first["order_id"]) is int
    assert type(first["_sdc_source_lineno"]) is int


def test_every_kind_and_bad_cells_reach_stdout_unchanged(in_tmp: Path) -> None:
    write(in_tmp / "kinds.csv",
          "id,flag,ratio,day,at,seen,payload,tags\n"
          '1,Yes,0.5,2024-02-29,10:30:00,2024-01-01 08:00:00,"{""a"": 1.10}","[""x""]"\n'
          "2,maybe,NaN,2024-02-30,25:00,yesterday,{oops,notalist\n"
          "3,,,,,,,\n")
    config = {"files": [{"entity": "kinds", "path": "kinds.csv",
                         "contract": str(FIXTURES / "kinds.odcs.yaml")}],
              "on_invalid_value": "pass"}
    messages = run_tap(config)
    props = of_type(messages, "SCHEMA")[0]["schema"]["properties"]
    assert props["flag"]["type"] == ["boolean", "null"]
    assert props["at"] == {"type": ["string", "null"], "format": "time"}
    assert props["tags"]["type"] == ["array", "null"]

    got = [{k: v for k, v in r.items() if not k.startswith("_sdc")} for r in records(messages)]
    assert got == [
        {"id": 1, "flag": True, "ratio": Decimal("0.5"), "day": "2024-02-29",
         "at": "10:30:00", "seen": "2024-01-01T08:00:00", "payload": {"a": Decimal("1.10")},
         "tags": ["x"]},
        # singer-sdk's default type conformance would turn "maybe" into True; the
        # stream turns conformance off so every bad cell arrives as written.
        {"id": 2, "flag": "maybe", "ratio": "NaN", "day": "2024-02-30", "at": "25:00",
         "seen": "yesterday", "payload": "{oops", "tags": "notalist"},
        {"id": 3, "flag": None, "ratio": None, "day": None, "at": None, "seen": None,
         "payload": None, "tags": None},
    ]


@pytest.mark.parametrize(
    ("kind", "cell", "expected"),
    [
        ("integer", " 42 ", 42), ("integer", "-7", -7), ("integer", "1.0", "1.0"),
        ("integer", "1_000", "1_000"), ("integer", "", None),
        ("number", "1e3", 1000.0), ("number", "1e999", "1e999"), ("number", "inf", "inf"),
        ("decimal", "0.10", Decimal("0.10")), ("decimal", "1,5", "1,5"),
        ("boolean", "TRUE", True), ("boolean", "0", False), ("boolean", "No", False),
        ("boolean", "2", "2"),
        ("timestamptz", "2024-01-05T10:00:00", "2024-01-05T10:00:00+00:00"),
        ("timestamptz", "2024-01-05T10:00:00+02:00", "2024-01-05T10:00:00+02:00"),
        ("timestamp", "2024-01-05T10:00:00Z", "2024-01-05T10:00:00+00:00"),
        ("object", '{"a": [1]}', {"a": [1]}), ("object", "[1]", "[1]"), ("json", "NaN", "NaN"),
        ("string", "  keep spaces ", "  keep spaces "), ("string", "", None),
    ],
)
def test_cell_conversion(kind: str, cell: str, expected: object) -> None:
    value = converter(kind)(cell)
    assert value == expected
    assert type(value) is type(expected)


def test_without_contract_every_column_is_a_string(in_tmp: Path) -> None:
    write(in_tmp / "people.csv", "id,name,age\n1,Ann,33\n2,,\n")
    messages = run_tap({"files": [{"entity": "people", "path": "people.csv",
                                   "keys": ["id"]}]})
    (schema,) = of_type(messages, "SCHEMA")
    assert schema["key_properties"] == ["id"]
    assert schema["bookmark_properties"] == ["_sdc_source_file_mtime"]
    for name in ("id", "name", "age"):
        assert schema["schema"]["properties"][name] == {"type": ["string", "null"]}
    assert [(r["id"], r["name"], r["age"], r["_sdc_source_lineno"])
            for r in records(messages)] == [("1", "Ann", "33", 2), ("2", None, None, 3)]


# --- dialect ------------------------------------------------------------------------


def test_delimiter_quotechar_and_latin1(in_tmp: Path) -> None:
    write(in_tmp / "euro.csv", "id;name;city\n1;'Müller; Hans';Köln\n2;'it''s';Zürich\n",
          encoding="latin-1")
    messages = run_tap({"files": [{"entity": "euro", "path": "euro.csv", "delimiter": ";",
                                   "quotechar": "'", "encoding": "latin-1"}]})
    assert [(r["id"], r["name"], r["city"]) for r in records(messages)] == [
        ("1", "Müller; Hans", "Köln"),
        ("2", "it's", "Zürich"),
    ]


def test_configured_columns_name_headerless_files_or_replace_the_header(in_tmp: Path) -> None:
    write(in_tmp / "raw.tsv", "1\tAnn\n2\tBob\n")
    write(in_tmp / "renamed.csv", "ID,Full Name\n3,Cy\n")
    messages = run_tap({"files": [
        {"entity": "raw", "path": "raw.tsv", "delimiter": "\t", "header": False,
         "columns": ["id", "name"]},
        {"entity": "renamed", "path": "renamed.csv", "columns": ["id", "name"]}]})
    assert [(r["id"], r["name"], r["_sdc_source_lineno"]) for r in records(messages)] == [
        ("1", "Ann", 1), ("2", "Bob", 2), ("3", "Cy", 2)]


def test_utf8_byte_order_mark_is_not_part_of_the_first_column(in_tmp: Path) -> None:
    write(in_tmp / "bom.csv", "\ufeffid,name\n1,Ann\n")
    messages = run_tap({"files": [{"entity": "bom", "path": "bom.csv"}]})
    assert records(messages)[0]["id"] == "1"


def test_file_not_valid_in_its_encoding_names_file_and_line(in_tmp: Path) -> None:
    write(in_tmp / "data" / "euro.csv", "id,name\n1,Ann\n2,Café\n", encoding="latin-1")
    with pytest.raises(CodecError) as caught:
        run_tap({"files": [{"entity": "euro", "path": "data/euro.csv"}]})
    assert caught.value.line == 3
    assert "data/euro.csv" in str(caught.value)
    assert "encoding" in str(caught.value)


# --- errors and the CLI -------------------------------------------------------------


def test_ragged_row_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    write(tmp_path / "data" / "orders.csv", "id,name\n1,Ann\n2,Bob,extra\n")
    (tmp_path / "config.json").write_text(json.dumps(
        {"files": [{"entity": "orders", "path": "data/orders.csv"}]}))
    result = run_cli("--config", "config.json", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "data/orders.csv" in line
              and "ERROR" in line]
    assert len(errors) == 1
    assert "line 3: data/orders.csv: expected 2 columns, got 3" in errors[0]
    assert "quote cells" in errors[0]
    assert "Traceback" not in result.stderr
    # Rows before the bad one were emitted, but no STATE: the file is re-read next run.
    assert [json.loads(line)["type"] for line in result.stdout.splitlines()] == [
        "SCHEMA", "RECORD"]


def test_config_error_exits_2_on_discover(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(
        {"files": [{"entity": "raw", "path": "raw.csv", "header": False}]}))
    result = run_cli("--config", "config.json", "--discover", cwd=tmp_path)
    assert result.returncode == 2
    assert "files[0].columns: header is false" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("entries", "extra", "key"),
    [
        ([{"entity": "a", "path": "a.csv", "header": False}], {}, "files[0].columns"),
        ([{"entity": "a", "path": "a.csv", "delimiter": ";;"}], {}, "files[0].delimiter"),
        ([{"entity": "a", "path": "a.csv", "quotechar": ","}], {}, "files[0].quotechar"),
        ([{"entity": "a", "path": "a.csv", "encoding": "klingon"}], {}, "files[0].encoding"),
        ([{"entity": "a", "path": "a.csv", "contract": "nope.yaml"}], {}, "files[0].contract"),
        ([{"entity": "a", "path": "a.csv", "keys": ["nope"]}], {}, "files[0].keys"),
        ([{"entity": "a", "path": "a.csv"}, {"entity": "a", "path": "b.csv"}], {},
         "files[1].entity"),
        ([{"entity": "a", "path": "a.csv"}], {"contracts_dir": "."}, "tenant_id"),
    ],
)
def test_bad_config_names_the_key(in_tmp: Path, entries: list[dict], extra: dict,
                                  key: str) -> None:
    write(in_tmp / "a.csv", "id\n1\n")
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        TapDativoCSV(config={"files": entries, **extra}, parse_env_config=False)


def test_empty_glob_is_a_config_error(in_tmp: Path) -> None:
    with pytest.raises(ConfigError, match=r"files\[0\]\.path: no file matches 'missing/\*\.csv'"
                       r".*set files\[0\]\.allow_empty: true"):
        run_tap({"files": [{"entity": "none", "path": "missing/*.csv"}]})


def test_empty_glob_with_allow_empty_emits_nothing(in_tmp: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        messages = run_tap({"files": [{"entity": "none", "path": "missing/*.csv",
                                       "allow_empty": True}]})
    assert records(messages) == []
    assert "no file matches 'missing/*.csv' (allow_empty is set)" in caplog.text


def test_discover_lists_stream_with_key_properties(tmp_path: Path) -> None:
    write(tmp_path / "contracts" / "acme" / "sales" / "orders.odcs.yaml", ORDERS_CONTRACT)
    write(tmp_path / "in" / "orders.csv", "order_id,amount,note\n1,2.00,x\n")
    (tmp_path / "config.json").write_text(json.dumps({
        "contracts_dir": "contracts", "tenant_id": "acme",
        "files": [{"entity": "orders", "path": "in/*.csv", "keys": ["amount"]}]}))
    result = run_cli("--config", "config.json", "--discover", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (stream,) = json.loads(result.stdout)["streams"]
    assert stream["tap_stream_id"] == "orders"
    assert stream["key_properties"] == ["order_id"]  # the contract's key wins over keys
    assert stream["schema"]["properties"]["order_id"]["type"] == ["integer"]
    assert stream["replication_key"] == "_sdc_source_file_mtime"
    assert stream["replication_method"] == "INCREMENTAL"
    assert stream["schema"]["properties"]["note"]["type"] == ["string", "null"]
    root = next(m for m in stream["metadata"] if m["breadcrumb"] == [])
    assert root["metadata"]["table-key-properties"] == ["order_id"]


def test_about_json_lists_settings(tmp_path: Path) -> None:
    result = run_cli("--about", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    about = json.loads(result.stdout)
    assert about["name"] == "tap-dativo-csv"
    entry = about["settings"]["properties"]["files"]["items"]
    assert entry["required"] == ["entity", "path"]
    assert all(prop.get("description") for prop in entry["properties"].values())


# --- incremental state --------------------------------------------------------------


def test_rerun_with_state_emits_nothing_and_touched_file_is_reread(
    in_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(in_tmp / "data" / "a.csv", "id\n1\n2\n")
    write(in_tmp / "data" / "b.csv", "id\n3\n")
    config = {"files": [{"entity": "items", "path": "data/*.csv", "keys": ["id"]}]}

    first = run_tap(config)
    assert [r["id"] for r in records(first)] == ["1", "2", "3"]
    state = final_state(first)
    partitions = state["bookmarks"]["items"]["partitions"]
    assert [(p["context"], p["replication_key_value"]) for p in partitions] == [
        ({"_sdc_source_file": "data/a.csv"}, T1_ISO),
        ({"_sdc_source_file": "data/b.csv"}, T1_ISO),
    ]
    assert "progress_markers" not in json.dumps(state)

    with caplog.at_level(logging.INFO):
        second = run_tap(config, state)
    assert records(second) == []
    assert "skipping unchanged file data/a.csv" in caplog.text
    assert final_state(second) == state

    write(in_tmp / "data" / "b.csv", "id\n3\n4\n", mtime_ns=T2_NS)
    write(in_tmp / "data" / "c.csv", "id\n5\n", mtime_ns=T1_NS)
    third = run_tap(config, final_state(second))
    assert [(r["id"], r["_sdc_source_file"]) for r in records(third)] == [
        ("3", "data/b.csv"), ("4", "data/b.csv"), ("5", "data/c.csv")]
    bookmarks = {p["context"]["_sdc_source_file"]: p["replication_key_value"]
                 for p in final_state(third)["bookmarks"]["items"]["partitions"]}
    assert bookmarks == {"data/a.csv": T1_ISO, "data/b.csv": T2_ISO, "data/c.csv": T1_ISO}


def test_future_mtime_is_bookmarked_as_is(in_tmp: Path) -> None:
    """A bookmark capped at the run's start would make this file load on every run."""
    future_ns = (int(time.time()) + 86_400) * 1_000_000_000
    write(in_tmp / "a.csv", "id\n1\n", mtime_ns=future_ns)
    config = {"files": [{"entity": "a", "path": "a.csv"}]}
    first = run_tap(config)
    assert len(records(first)) == 1
    assert records(run_tap(config, final_state(first))) == []


def test_cli_state_round_trip(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "id\n1\n")
    (tmp_path / "config.json").write_text(json.dumps(
        {"files": [{"entity": "a", "path": "a.csv"}]}))
    first = run_cli("--config", "config.json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    state = [json.loads(line) for line in first.stdout.splitlines()][-1]["value"]
    (tmp_path / "state.json").write_text(json.dumps(state))
    second = run_cli("--config", "config.json", "--state", "state.json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert '"type":"RECORD"' not in second.stdout


# --- singer-sdk's standard tap tests --------------------------------------------------

SAMPLE_CONFIG = {
    "files": [{
        "entity": "orders",
        "path": str(FIXTURES / "orders.csv"),
        "contract": str(FIXTURES / "orders.odcs.yaml"),
    }],
}

TestTapDativoCSVStandard = get_tap_test_class(TapDativoCSV, config=SAMPLE_CONFIG)
