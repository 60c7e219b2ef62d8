"""Issue 16: ODCS quality rules read into QualityRule values, and the lint of every way
a rule can be wrong (each problem names its path and says what to write)."""

from __future__ import annotations

from typing import Any

import pytest

from dativo.contracts import lint_document
from dativo.quality.rules import QualityRule, read_quality, row_valid_values
from dativo.quality.thresholds import COMPARISONS, Threshold


def doc(table: list[dict[str, Any]] | None = None,
        column: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"name": "t", "properties": [
        {"name": "id", "logicalType": "integer", "primaryKey": True, "required": True},
        {"name": "c", "logicalType": "string", **({"quality": column} if column else {})}]}
    if table:
        obj["quality"] = table
    return {"apiVersion": "v3.0.2", "kind": "DataContract", "id": "t", "version": "1",
            "status": "active", "schema": [obj]}


COLUMN = "schema[0].properties[1] (c).quality[0]: "
TABLE = "schema[0].quality[0]: "
PROBLEMS = {
    "unknown metric": (COLUMN, {"metric": "nullValue", "mustBe": 0},
                       "unknown metric 'nullValue'; did you mean 'nullValues'?"),
    "unknown v3.0 rule": (COLUMN, {"rule": "duplicatCount", "mustBe": 0},
                          "unknown rule 'duplicatCount'; did you mean 'duplicateCount'?"),
    "unknown comparison key": (COLUMN, {"metric": "nullValues", "mustBeLesThan": 1},
                               "unknown quality key 'mustBeLesThan'; did you mean "
                               "'mustBeLessThan'?"),
    "no comparison": (COLUMN, {"metric": "nullValues"},
                      "nullValues needs a comparison, e.g. mustBe: 0"),
    "two comparisons": (COLUMN, {"metric": "nullValues", "mustBe": 0, "mustBeLessThan": 1},
                        "two comparisons (mustBe, mustBeLessThan)"),
    "unit": (COLUMN, {"metric": "nullValues", "mustBe": 0, "unit": "percents"},
             "unit 'percents' is not rows or percent; did you mean 'percent'?"),
    "percent rowCount": (TABLE, {"metric": "rowCount", "mustBe": 5, "unit": "percent"},
                         "unit percent does not apply to rowCount"),
    "scope": (COLUMN, {"metric": "nullValues", "mustBe": 0, "customProperties": [
        {"property": "dativo.scope", "value": "snapshot"}]},
        "customProperties dativo.scope is 'snapshot'; write value: run"),
    "non-numeric threshold": (COLUMN, {"metric": "nullValues", "mustBeLessThan": "5"},
                              "mustBeLessThan needs a number, got '5'"),
    "range not a pair": (TABLE, {"metric": "rowCount", "mustBeBetween": [1]},
                         "mustBeBetween needs a list of two numbers, low first"),
    "range reversed": (TABLE, {"metric": "rowCount", "mustBeBetween": [10, 1]},
                       "the low bound comes first; write mustBeBetween: [1, 10]"),
    "sql without {object}": (TABLE, {"type": "sql", "query": "SELECT 1", "mustBe": 1},
                             "the query must read the table as {object}"),
    "sql that writes": (TABLE, {"type": "sql", "mustBe": 0,
                                "query": "SELECT count(*) FROM {object}; DROP TABLE x"},
                        "the query must be a single statement"),
    "{property} at table level": (TABLE, {"type": "sql", "mustBe": 0, "query":
                                          "SELECT max({property}) FROM {object}"},
                                  "{property} only applies to a property's quality list"),
    "column metric on the table": (TABLE, {"metric": "nullValues", "mustBe": 0},
                                   "put it in the quality list of a property"),
    "rowCount on a column": (COLUMN, {"metric": "rowCount", "mustBe": 0},
                             "put it in the schema object's own quality list"),
    "missingValues without its list": (COLUMN, {"metric": "missingValues", "mustBe": 0},
                                       "missingValues needs arguments: {missingValues:"),
    "invalidValues without criteria": (COLUMN, {"metric": "invalidValues", "mustBe": 0},
                                       "invalidValues needs arguments: {validValues:"),
    "bad pattern": (COLUMN, {"metric": "invalidValues", "mustBe": 0,
                             "arguments": {"pattern": "("}}, "pattern does not compile"),
    "unknown argument": (COLUMN, {"metric": "invalidValues", "mustBe": 0,
                                  "arguments": {"validValue": ["a"]}},
                         "unknown argument 'validValue' for invalidValues; did you mean "
                         "'validValues'?"),
    "duplicates over a missing column": (TABLE, {"metric": "duplicateValues", "mustBe": 0,
                                                 "arguments": {"properties": ["id", "cc"]}},
                                         "names 'cc', which is no column of this object; "
                                         "did you mean 'c'?"),
    "metric and rule": (COLUMN, {"metric": "nullValues", "rule": "nullCheck", "mustBe": 0},
                        "set metric (ODCS v3.1) or rule (v3.0), not both"),
    "misspelt severity": (COLUMN, {"metric": "nullValues", "mustBe": 0, "severity": "eror"},
                          "severity 'eror': did you mean 'error'? (only severity: error "
                          "blocks a strict run)"),
    "custom engine": (COLUMN, {"type": "custom", "engine": "soda", "implementation": "x"},
                      "quality type 'custom' is not run by dativo"),
}


@pytest.mark.parametrize("case", sorted(PROBLEMS))
def test_each_rule_problem_names_its_path_and_what_to_write(case: str) -> None:
    where, entry, message = PROBLEMS[case]
    contract = doc(table=[entry]) if where == TABLE else doc(column=[entry])
    problems = lint_document(contract)
    assert len(problems) == 1, problems
    assert problems[0].startswith(where), problems[0]
    assert message in problems[0]


ACCEPTED = {
    "v3.1 metric without type": {"metric": "nullValues", "mustBe": 0},
    "v3.1 percent": {"metric": "nullValues", "mustBeLessThan": 1, "unit": "percent"},
    "v3.0 library rule": {"type": "library", "rule": "nullCheck"},
    "row rule validValues": {"rule": "validValues", "validValues": ["a"]},
    "measured validValues": {"rule": "validValues", "validValues": ["a"],
                             "mustBeLessThan": 3},
    "missingValues": {"metric": "missingValues", "mustBe": 0,
                      "arguments": {"missingValues": [None, "", "N/A"]}},
    "invalidValues pattern": {"metric": "invalidValues", "mustBe": 0,
                              "arguments": {"pattern": "^[a-z]+$"}},
    "sql with {property}": {"type": "sql", "query": "SELECT max(length({property})) "
                            "FROM {object}", "mustBeLessThan": 10, "severity": "error",
                            "dimension": "conformity", "businessImpact": "operational"},
    "scope override": {"metric": "duplicateValues", "mustBe": 0, "customProperties": [
        {"property": "dativo.scope", "value": "run"}]},
    "text": {"type": "text", "description": "looks right"},
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_valid_rules_lint_clean(case: str) -> None:
    assert lint_document(doc(column=[ACCEPTED[case]])) == []


def test_rules_read_with_defaults_scope_and_context() -> None:
    rules, problems = read_quality([
        {"rule": "duplicateCount", "mustBeLessThan": 1, "unit": "percent"},
        {"metric": "rowCount", "mustBeBetween": [1, 5], "name": "volume",
         "severity": "error", "dimension": "completeness", "businessImpact": "operational"},
        {"metric": "duplicateValues", "mustBe": 0, "arguments": {"properties": ["a", "b"]}},
    ], "schema[0]", column=None, columns=("a", "b", "id"), primary_key=("id",))
    assert problems == []
    dup, count, pair = rules
    assert (dup.name, dup.metric, dup.columns, dup.scope, dup.unit) == (
        "duplicateCount", "duplicateValues", ("id",), "table", "percent")
    assert count == QualityRule(name="volume", metric="rowCount", written="rowCount",
                                threshold=Threshold("mustBeBetween", 1.0, 5.0), scope="run",
                                dimension="completeness", severity="error",
                                business_impact="operational")
    assert count.blocking and not dup.blocking
    assert pair.columns == ("a", "b")


def test_a_validvalues_row_rule_stays_a_row_rule() -> None:
    assert row_valid_values({"rule": "validValues", "validValues": ["a", "b"]}) == ("a", "b")
    assert row_valid_values({"rule": "validValues", "mustBe": ["a"]}) == ("a",)
    assert row_valid_values({"rule": "validValues", "validValues": ["a"], "mustBe": 0}) is None
    assert row_valid_values({"metric": "invalidValues", "mustBe": 0}) is None


@pytest.mark.parametrize(("key", "bound", "passing", "failing"), [
    ("mustBe", 3, 3, 4), ("mustNotBe", 3, 4, 3), ("mustBeGreaterThan", 3, 4, 3),
    ("mustBeGreaterOrEqualTo", 3, 3, 2), ("mustBeLessThan", 3, 2, 3),
    ("mustBeLessOrEqualTo", 3, 3, 4), ("mustBeBetween", (1, 3), 3, 4),
    ("mustNotBeBetween", (1, 3), 4, 1)])
def test_thresholds(key: str, bound: Any, passing: float, failing: float) -> None:
    assert key in COMPARISONS
    low, high = bound if isinstance(bound, tuple) else (bound, None)
    threshold = Threshold(key, low, high)  # type: ignore[arg-type]
    assert threshold.passes(passing) and not threshold.passes(failing)
    assert not threshold.passes(None)
    assert threshold.text("percent").startswith(key) and threshold.text("percent").endswith(
        " percent")
