"""Issue 16: library rules measured in one DuckDB query over an Arrow reader, sql rules
read-only and under a time limit."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pytest

from dativo.errors import ConfigError
from dativo.quality.measure import measure
from dativo.quality.rules import QualityRule, read_quality

ROWS = pa.table({"id": [1, 2, 3, 3], "tag": ["a", None, "", "zz"], "n": [1.5, None, 3.0, -1.0]})


def rows(columns: Sequence[str] | None) -> pa.RecordBatchReader:
    data = ROWS if columns is None else ROWS.select(list(columns) or ["id"])
    return pa.RecordBatchReader.from_batches(data.schema, data.to_batches())


def rules(entries: list[dict], column: str | None = None) -> list[QualityRule]:
    found, problems = read_quality(entries, "x", column=column, columns=ROWS.column_names,
                                   primary_key=("id",))
    assert problems == []
    return found


def test_library_rules_in_one_query() -> None:
    column = rules([
        {"metric": "nullValues", "mustBe": 0},
        {"metric": "nullValues", "mustBe": 0, "unit": "percent"},
        {"metric": "missingValues", "mustBe": 0, "arguments": {"missingValues": [None, ""]}},
        {"metric": "invalidValues", "mustBe": 0, "arguments": {"validValues": ["a", ""]}},
        {"metric": "invalidValues", "mustBe": 0, "arguments": {"pattern": "^[a-z]$"}},
    ], column="tag")
    table = rules([{"metric": "rowCount", "mustBe": 4}, {"rule": "duplicateCount", "mustBe": 0}])
    values = [m.value for m in measure(column + table, rows, timeout=10)]
    assert values == [1, 25, 2, 1, 2, 4, 1]


def test_numbers_in_a_missing_list_compare_as_numbers() -> None:
    (rule,) = rules([{"metric": "missingValues", "mustBe": 0,
                      "arguments": {"missingValues": [-1, None]}}], column="n")
    assert measure([rule], rows, timeout=10)[0].value == 2


def test_sql_rules_get_object_and_property_and_return_numbers() -> None:
    found = rules([{"type": "sql", "mustBe": 0, "query": "SELECT min({property}) FROM {object}"},
                   {"type": "sql", "mustBe": 1, "query": "SELECT count(*) > 3 FROM {object}"}],
                  column="n")
    assert [m.value for m in measure(found, rows, timeout=10)] == [-1.0, 1.0]


def test_a_sql_rule_cannot_read_files() -> None:
    (rule,) = rules([{"type": "sql", "mustBe": 0, "query":
                      "SELECT count(*) FROM {object}, read_csv('/etc/passwd')"}])
    measured = measure([rule], rows, timeout=10)[0]
    assert measured.value is None and "Permission" in (measured.error or "")


def test_a_slow_query_is_interrupted() -> None:
    (rule,) = rules([{"type": "sql", "mustBe": 0, "query": "SELECT count(*) FROM {object}, "
                      "range(100000000) a, range(100000000) b WHERE a.range + b.range < 0"}])
    measured = measure([rule], rows, timeout=0.2)[0]
    assert measured.value is None
    assert measured.error == ("stopped after quality_sql_timeout_seconds=0.2; make the "
                              "query cheaper or raise that setting")


def test_a_sql_rule_returning_text_is_an_error() -> None:
    (rule,) = rules([{"type": "sql", "mustBe": 0, "name": "txt",
                      "query": "SELECT 'x' FROM {object} LIMIT 1"}])
    with pytest.raises(ConfigError, match="quality rule txt: the query returned 'x', not a"):
        measure([rule], rows, timeout=10)


@pytest.mark.parametrize(("query", "read"), [
    ("SELECT count(*) FROM {object} WHERE n < 0", ["n"]),
    ('SELECT count("tag") FROM {object}', ["tag"]),
    ("SELECT max({property}) FROM {object}", ["id"]),
    ("SELECT count(*) FROM {object} WHERE tag = 'n'", ["tag"]),  # 'n' is text, not n
    ("SELECT count(*) FROM (SELECT * FROM {object}) WHERE n < 0", None),
    ("SELECT count(*) FROM {object} WHERE COLUMNS('t.*') IS NULL", None),
])
def test_a_sql_rule_reads_only_the_columns_it_names(query: str, read: list[str] | None
                                                    ) -> None:
    asked: list[Sequence[str] | None] = []

    def tracking(columns: Sequence[str] | None) -> pa.RecordBatchReader:
        asked.append(columns)
        return rows(columns)

    (rule,) = rules([{"type": "sql", "mustBe": 0, "query": query}], column="id")
    measure([rule], tracking, timeout=10, columns=ROWS.column_names)
    assert asked == [read]
