"""Vectorised contract checks: every rule rejects what it should and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from dativo.contracts import Contract, FieldSpec, arrow_schema, compile_contract
from target_dativo_iceberg.batches import SpooledBatch


def check(tmp_path: Path, fields: list[FieldSpec], records: list[dict[str, Any]]):
    contract = Contract(name="s", fields=tuple(fields))
    spool = tmp_path / "spool.ndjson"
    spool.write_text("".join(
        json.dumps({"type": "RECORD", "stream": "s", "record": r}) + "\n" for r in records
    ))
    batch = SpooledBatch("s", str(spool), rows=len(records))
    batch.run_rows.append(0)
    batch.run_lines.append(10)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return batch.check(con, compile_contract(contract), arrow_schema(contract))


def rejected_rules(tmp_path: Path, spec: FieldSpec, values: list[Any]) -> list[list[str]]:
    result = check(tmp_path, [spec], [{spec.name: v} for v in values])
    by_line = {r.line_number - 10: [x["rule"] for x in r.reasons] for r in result.rejected}
    return [by_line.get(i, []) for i in range(len(values))]


@pytest.mark.parametrize(
    ("spec", "values", "expected"),
    [
        (FieldSpec("n", "integer"), [1, "12", 1.5, True, "x", 2**70, None],
         [[], [], ["type"], ["type"], ["type"], ["type"], []]),
        (FieldSpec("f", "number"), [1, 1.5, "2.5", "abc", False],
         [[], [], [], ["type"], ["type"]]),
        (FieldSpec("b", "boolean"), [True, False, "yes", 1],
         [[], [], ["type"], ["type"]]),
        (FieldSpec("d", "date"), ["2024-01-31", "2024-13-01", "2024-01-01T10:00:00", 5],
         [[], ["type"], ["type"], ["type"]]),
        (FieldSpec("t", "timestamptz"), ["2024-01-01T10:00:00Z", "2024-01-01T10:00:00+02:00",
                                         "not a time"],
         [[], [], ["type"]]),
        (FieldSpec("m", "decimal", precision=6, scale=2), [1.25, "1.25", 1.255, 123456.0],
         [[], [], ["scale"], ["type"]]),
        (FieldSpec("r", "string", required=True), ["a", None, ""], [[], ["required"], []]),
        (FieldSpec("p", "string", pattern="^[A-Z]{2}$"), ["GB", "gbr"], [[], ["pattern"]]),
        (FieldSpec("l", "string", min_length=2, max_length=3), ["ab", "a", "abcd"],
         [[], ["minLength"], ["maxLength"]]),
        (FieldSpec("v", "integer", minimum=0, maximum=10), [0, 10, -1, 11],
         [[], [], ["minimum"], ["maximum"]]),
        (FieldSpec("x", "integer", minimum=0, exclusive_minimum=True), [0, 1],
         [["minimum"], []]),
        (FieldSpec("e", "string", format="email"), ["a@b.io", "nope"], [[], ["format"]]),
        (FieldSpec("u", "string", format="uuid"),
         ["6f1c1f2e-9a55-4d0e-8d43-2c2b0c1f7d1a", "123"], [[], ["format"]]),
        (FieldSpec("c", "string", valid_values=("a", "b")), ["a", "c"], [[], ["validValues"]]),
        (FieldSpec("d2", "date", minimum="2024-01-01"), ["2024-01-01", "2023-12-31"],
         [[], ["minimum"]]),
    ],
)
def test_rules(tmp_path: Path, spec: FieldSpec, values: list[Any],
               expected: list[list[str]]) -> None:
    assert rejected_rules(tmp_path, spec, values) == expected


def test_valid_rows_are_typed(tmp_path: Path) -> None:
    fields = [
        FieldSpec("id", "integer", required=True, primary_key_position=1),
        FieldSpec("amount", "decimal", precision=10, scale=2),
        FieldSpec("at", "timestamptz"),
        FieldSpec("meta", "object", children=(FieldSpec("source", "string"),)),
        FieldSpec("tags", "array", item=FieldSpec("element", "string")),
        FieldSpec("raw", "json"),
    ]
    record = {"id": 7, "amount": "10.50", "at": "2024-05-01T12:00:00+02:00",
              "meta": {"source": "web"}, "tags": ["a", "b"], "raw": {"k": [1, 2]}}
    result = check(tmp_path, fields, [record])
    assert result.rejected == []
    row = result.valid.to_pylist()[0]
    assert row["id"] == 7
    assert str(row["amount"]) == "10.50"
    assert row["at"].isoformat() == "2024-05-01T10:00:00+00:00"
    assert row["meta"] == {"source": "web"}
    assert row["tags"] == ["a", "b"]
    assert orjson.loads(row["raw"]) == {"k": [1, 2]}


def test_nested_shape_mismatch_rejects_only_that_record(tmp_path: Path) -> None:
    fields = [FieldSpec("id", "integer"),
              FieldSpec("meta", "object", children=(FieldSpec("source", "string"),))]
    result = check(tmp_path, fields, [{"id": 1, "meta": {"source": "a"}},
                                      {"id": 2, "meta": "not an object"}])
    assert result.valid.column("id").to_pylist() == [1]
    assert len(result.rejected) == 1
    bad = result.rejected[0]
    assert bad.line_number == 11
    assert orjson.loads(bad.record_json) == {"id": 2, "meta": "not an object"}
    assert bad.reasons == [{"field": "meta", "rule": "type"}]
