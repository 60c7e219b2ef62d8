"""Contract lint refuses every rule dativo would not enforce (issue 13, part 2), and
keeps accepting the ones it does; the settings check allows singer-sdk's own keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dativo.contracts import lint_document, load_yaml
from dativo.schema_messages import sdk_builtin_settings, unknown_settings

REPO = Path(__file__).resolve().parents[2]


def doc(**column: Any) -> dict[str, Any]:
    return {"apiVersion": "v3.0.2", "kind": "DataContract", "id": "t", "version": "1",
            "status": "active", "schema": [{"name": "t", "properties": [
                {"name": "id", "logicalType": "integer", "primaryKey": True,
                 "required": True},
                {"name": "c", **column}]}]}


ACCEPTED = {
    "string format": {"logicalType": "string", "logicalTypeOptions": {"format": "uuid"}},
    "string bounds": {"logicalType": "string",
                      "logicalTypeOptions": {"minLength": 1, "maxLength": 3, "pattern": "a"}},
    "integer format i64": {"logicalType": "integer", "logicalTypeOptions": {"format": "i64"}},
    "date ISO format": {"logicalType": "date",
                        "logicalTypeOptions": {"format": "yyyy-MM-dd", "minimum": "2000-01-01"}},
    "validValues via mustBe": {"logicalType": "string",
                               "quality": [{"rule": "validValues", "mustBe": ["a"]}]},
    "text quality entry": {"logicalType": "string",
                           "quality": [{"type": "text", "description": "looks right"}]},
}
REFUSED = {
    "format typo": ({"logicalType": "string", "logicalTypeOptions": {"format": "emial"}},
                    "did you mean 'email'?"),
    "format dativo cannot check": ({"logicalType": "string",
                                    "logicalTypeOptions": {"format": "ipv4"}},
                                   "logicalTypeOptions.format 'ipv4' is not one of"),
    "date format": ({"logicalType": "date", "logicalTypeOptions": {"format": "dd/MM/yyyy"}},
                    "date columns are read and stored as yyyy-MM-dd"),
    "option typo, no logicalType": ({"physicalType": "text",
                                     "logicalTypeOptions": {"patern": "a"}},
                                    "unknown logicalTypeOptions key 'patern'; did you mean "
                                    "'pattern'?"),
    "unenforced option": ({"logicalType": "integer", "logicalTypeOptions": {"multipleOf": 5}},
                          "logicalTypeOptions.multipleOf is not enforced by dativo"),
    "quality key typo": ({"logicalType": "string",
                          "quality": [{"rule": "validValues", "validValue": ["a"]}]},
                         "unknown quality key 'validValue'; did you mean 'validValues'?"),
    "unknown rule": ({"logicalType": "string", "quality": [{"rule": "validValue",
                                                            "mustBe": ["a"]}]},
                     "unknown rule 'validValue'; did you mean 'validValues'?"),
    "sql check without {object}": ({"logicalType": "string", "quality": [
        {"type": "sql", "query": "x", "mustBe": 0}]},
        "the query must read the table as {object}"),
    "custom check": ({"logicalType": "string", "quality": [
        {"type": "custom", "engine": "soda", "implementation": "x"}]},
        "quality type 'custom' is not run by dativo"),
    "empty validValues": ({"logicalType": "string",
                           "quality": [{"rule": "validValues", "validValues": []}]},
                          "rule validValues needs a non-empty list"),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_enforced_rules_lint_clean(case: str) -> None:
    assert lint_document(doc(**ACCEPTED[case])) == []


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_rules_dativo_would_drop_are_lint_problems(case: str) -> None:
    column, message = REFUSED[case]
    problems = lint_document(doc(**column))
    assert len(problems) == 1, problems
    assert problems[0].startswith("schema[0].properties[1] (c)")
    assert message in problems[0]


def test_a_table_level_rule_is_run_since_issue_16() -> None:
    contract = doc(logicalType="string")
    contract["schema"][0]["quality"] = [{"rule": "rowCount", "mustBeGreaterThan": 0}]
    assert lint_document(contract) == []


def test_the_repository_contracts_lint_clean() -> None:
    paths = sorted(REPO.glob("odcs_contracts/*/*/*.odcs.yaml"))
    assert paths
    assert {str(p): lint_document(load_yaml(p)) for p in paths} == {str(p): [] for p in paths}


def test_unknown_settings_allow_singer_sdk_keys_and_suggest_the_closest() -> None:
    assert {"stream_maps", "flattening_enabled", "batch_config", "load_method",
            "add_record_metadata", "validate_records", "default_target_schema",
            "hard_delete", "batch_size_rows", "faker_config"} <= sdk_builtin_settings()
    schema = {"properties": {"catalog": {}, "tenant_id": {}}}
    config = {"catalog": {}, "stream_maps": {}, "catlog": {}, "zzz": 1}
    assert unknown_settings("target-x", schema, config) == [
        "unknown setting 'catlog' in the config; did you mean 'catalog'?",
        "unknown setting 'zzz' in the config; remove it (`target-x --about` lists every "
        "setting)"]
