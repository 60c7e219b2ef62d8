"""tap-dativo-csv's fast RECORD encoder (issue 13, part 6): whatever the values, each
line parses back to the record singer-sdk would send."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tap_dativo_csv.columns import Column, convert_column
from tap_dativo_csv.fast_records import RecordEncoder

NAMES = ["text", "num", "mixed"]
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), texts)


def encode(columns: list[list[Any]], names: list[str] = NAMES,
           decimals: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    encoder = RecordEncoder('s"%', names, lambda name: name != "dropped", 'a%"b.csv',
                            "2024-01-01T00:00:00+00:00", set(decimals))
    lines = list(range(2, 2 + len(columns[0])))
    data = encoder.encode(lines, columns)
    assert data.endswith(b"\n") and data.count(b"\n") == len(lines)
    out = [json.loads(line, parse_float=Decimal) for line in data.splitlines()]
    assert {m["stream"] for m in out} == {'s"%'}
    return [m["record"] for m in out]


@given(st.lists(st.tuples(texts, scalars, scalars), min_size=1, max_size=20))
@example([('",', 1, 2), ("b", 1, 2)])  # '","' inside a value, not between two
@example([("a\\", 1, 2), ("b", 1, 2)])
@example([("\\", 1, 2), ('"', 1, 2)])
@example([('x\\",', 1, 2), ('","', 1, 2), ("", 1, 2)])
@example([('",', '",', '",'), ('b"', '"', "c")])
def test_any_values_round_trip(rows: list[tuple[str, Any, Any]]) -> None:
    columns = [list(column) for column in zip(*rows, strict=True)]
    records = encode(columns)
    for line, (record, row) in enumerate(zip(records, rows, strict=True), start=2):
        expected = dict(zip(NAMES, row, strict=True))
        assert {k: record[k] for k in NAMES} == json.loads(json.dumps(expected),
                                                           parse_float=Decimal)
        assert record["_sdc_source_file"] == 'a%"b.csv'
        assert record["_sdc_source_lineno"] == line
        assert list(record)[-3:] == ["_sdc_source_file", "_sdc_source_lineno",
                                     "_sdc_source_file_mtime"]


def test_decimals_digit_for_digit_and_deselected_columns_left_out() -> None:
    records = encode([[Decimal("1.10"), None], ["x", "y"]], ["amount", "dropped"],
                     frozenset({"amount"}))
    assert [r["amount"] for r in records] == [Decimal("1.10"), None]
    assert all("dropped" not in r for r in records)


@given(st.lists(st.datetimes(timezones=st.just(dt.timezone.utc)), min_size=1, max_size=30))
def test_bulk_timestamps_equal_per_cell_conversion(values: list[dt.datetime]) -> None:
    cells = [v.isoformat().replace("+00:00", "Z") for v in values]
    column = Column("at", "timestamptz")
    bulk, failures = convert_column(column, cells, strict=True)
    assert not failures
    assert bulk == [column.strict(cell) for cell in cells]
