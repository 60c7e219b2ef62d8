"""Vectorised contract checks: every rule rejects what it should and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dativo.contracts import Contract, FieldSpec, arrow_schema, compile_contract
from target_dativo_iceberg.batch_spooled import SpooledBatch


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


_EQUIVALENCE_FIELDS = (
    FieldSpec("id", "integer", required=True, minimum=0, maximum=100),
    FieldSpec("f", "number"),
    FieldSpec("b", "boolean"),
    FieldSpec("s", "string", max_length=3, valid_values=("a", "bb", "ccc", "dddd")),
    FieldSpec("at", "timestamptz"),
    FieldSpec("d", "date"),
    FieldSpec("m", "decimal", precision=6, scale=2),
    FieldSpec("o", "object", children=(FieldSpec("n", "integer"), FieldSpec("t", "string"))),
    FieldSpec("a", "array", item=FieldSpec("element", "string")),
)
_ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**65), 2**65),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(
        ["", "a", "bb", "dddd", "12", "1.5", "2024-02-29", "2024-13-01",
         "2024-03-01T12:00:00Z", "2024-03-01T12:00:00+02:00", "2024-03-01 12:00:00"]),
    st.lists(st.sampled_from(["x", 1]), max_size=2),
    st.fixed_dictionaries({"n": st.sampled_from([1, 1.5, "2"]), "t": st.sampled_from(["t", 3])}),
)


_WELL_TYPED = {
    "id": st.integers(-5, 200),
    "f": st.floats(allow_nan=False, allow_infinity=False),
    "b": st.booleans(),
    "s": st.sampled_from(["", "a", "bb", "ccc", "dddd"]),
    "at": st.sampled_from(["2024-03-01T12:00:00Z", "2024-03-01T12:00:00.5+02:00",
                           "2024-03-01 12:00:00", "2024-03-01"]),
    "d": st.sampled_from(["2024-02-29", "2023-02-29", "2024-03-01T00:00:00"]),
    "m": st.sampled_from([1.25, "3.5", 12, 9999.99, -0.5, 1.255]),
    "o": st.fixed_dictionaries({"n": st.integers(-3, 3), "t": st.text(max_size=3)}),
    "a": st.lists(st.text(max_size=3), max_size=3),
}
"""Mostly the right JSON type per field, so the fast path gets exercised, not declined."""


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.fixed_dictionaries({f.name: st.one_of(*[_WELL_TYPED[f.name]] * 12, _ANY_VALUE)
                                       for f in _EQUIVALENCE_FIELDS}),
                min_size=1, max_size=5))
def test_strict_fast_path_agrees_with_per_record_checks(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    """Whenever pyarrow's strict reader accepts a batch, its rows and reasons must be
    exactly those of the per-record SQL path (the fast path may only decline)."""
    contract = Contract(name="s", fields=_EQUIVALENCE_FIELDS)
    compiled = compile_contract(contract)
    spool = tmp_path / "eq.ndjson"
    spool.write_text("".join(json.dumps({"type": "RECORD", "stream": "s", "record": r})
                             + "\n" for r in records))
    batch = SpooledBatch("s", str(spool), rows=len(records))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    fast = batch._run_strict(con, compiled)
    slow = batch._run_per_record(con, compiled)
    if fast is not None:
        assert fast.to_pylist() == slow.to_pylist()


def test_strict_fast_path_serves_clean_batches(tmp_path: Path) -> None:
    """The fast path must actually run for typical, well-typed data."""
    contract = Contract(name="s", fields=_EQUIVALENCE_FIELDS)
    record = {"id": 5, "f": 1.5, "b": True, "s": "bb", "at": "2024-03-01T12:00:00Z",
              "d": "2024-02-29", "m": 12.5, "o": {"n": 1, "t": "x"}, "a": ["x"]}
    spool = tmp_path / "clean.ndjson"
    spool.write_bytes(orjson.dumps({"type": "RECORD", "stream": "s", "record": record}) + b"\n")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    fast = SpooledBatch("s", str(spool), rows=1)._run_strict(con, compile_contract(contract))
    assert fast is not None
    row = fast.to_pylist()[0]
    assert row.pop("__dativo_reasons") == []
    assert str(row.pop("m")) == "12.50"
    assert row.pop("d").isoformat() == "2024-02-29"
    assert row.pop("at").isoformat() == "2024-03-01T12:00:00+00:00"
    assert row == {"id": 5, "f": 1.5, "b": True, "s": "bb", "o": {"n": 1, "t": "x"}, "a": ["x"]}


@pytest.mark.parametrize("fmt", ["email", "uuid", "date", "date-time", "uri"])
def test_a_null_passes_every_format_check_and_a_bad_value_does_not(
    tmp_path: Path, fmt: str
) -> None:
    assert rejected_rules(tmp_path, FieldSpec("v", "string", format=fmt),
                          [None, "not valid at all"]) == [[], ["format"]]


def test_a_decimal_json_number_too_precise_for_a_double_is_refused_not_rounded(
    tmp_path: Path,
) -> None:
    """DuckDB parses JSON numbers into doubles; a free-form json column forces that
    path. Strings keep every digit; numbers with <= 15 significant digits are exact."""
    fields = [FieldSpec("id", "integer", required=True),
              FieldSpec("amount", "decimal", precision=38, scale=5),
              FieldSpec("extra", "json")]
    result = check(tmp_path, fields, [
        {"id": 1, "amount": "12345678901234567890.12345", "extra": {"a": 1}},
        {"id": 2, "amount": 123456789012.345, "extra": None},
        {"id": 3, "amount": None},
    ])
    spool = (tmp_path / "spool.ndjson").read_text().splitlines()
    spool.insert(1, '{"type":"RECORD","stream":"s","record":{"id":4,'
                    '"amount":12345678901234567890.12345}}')
    assert [str(v) for v in result.valid.column("amount").to_pylist()] == [
        "12345678901234567890.12345", "123456789012.34500", "None"]
    (tmp_path / "spool.ndjson").write_text("\n".join(spool) + "\n")
    batch = SpooledBatch("s", str(tmp_path / "spool.ndjson"), rows=4)
    batch.run_rows.append(0)
    batch.run_lines.append(1)
    contract = Contract(name="s", fields=tuple(fields))
    checked = batch.check(duckdb.connect(), compile_contract(contract), arrow_schema(contract))
    assert [(r.line_number, r.reasons) for r in checked.rejected] == [
        (2, [{"field": "amount", "rule": "precision"}])]
    assert '12345678901234567890.12345' in checked.rejected[0].record_json
