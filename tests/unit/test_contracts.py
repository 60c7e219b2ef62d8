"""ODCS loading, linting and mapping to Arrow types."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from dativo.contracts import (
    arrow_schema,
    contract_from_singer_schema,
    lint_document,
    load_contract,
    load_yaml,
)
from dativo.errors import ContractLintError

REPO = Path(__file__).resolve().parents[2]
DEMO_CONTRACT = REPO / "odcs_contracts/demo/crm/customers.odcs.yaml"


def contract_doc(*properties: dict) -> dict:
    return {
        "apiVersion": "v3.0.2", "kind": "DataContract", "id": "c1", "version": "1.0.0",
        "status": "active", "domain": "sales",
        "schema": [{"name": "orders", "properties": list(properties)}],
    }


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "orders.odcs.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_every_shipped_contract_lints_clean() -> None:
    shipped = sorted(REPO.glob("odcs_contracts/**/*.odcs.yaml"))
    assert shipped
    for path in shipped:
        assert lint_document(load_yaml(path)) == [], path


def test_unquoted_dates_stay_strings(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("contractCreatedTs: 2024-01-01\nversion: 1.0.0\n")
    assert load_yaml(path)["contractCreatedTs"] == "2024-01-01"


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ({"name": "id", "logicalType": "integer", "primaryKey": True},
         "primaryKey columns must set required: true"),
        ({"name": "amount", "logicalType": "number", "physicalType": "decimal(40,2)"},
         "need 1 <= p <= 38"),
        ({"name": "amount", "logicalType": "number", "physicalType": "decimal(x)"},
         "does not parse as decimal(p,s)"),
        ({"name": "blob", "physicalType": "hyperloglog"}, "unknown physicalType"),
        ({"name": "code", "logicalType": "string",
          "logicalTypeOptions": {"pattern": "([a-z"}}, "pattern does not compile"),
        ({"name": "x", "logicalType": "strin"}, "schema[0].properties[0].logicalType"),
        ({"name": "at", "logicalType": "date", "partitioned": True,
          "customProperties": [{"property": "partitionTransform", "value": "bucket[0]"}]},
         "partition transform 'bucket[0]' is not one of"),
    ],
)
def test_lint_names_the_bad_key(prop: dict, expected: str) -> None:
    problems = lint_document(contract_doc(prop))
    assert any(expected in p for p in problems), problems


def test_lint_rejects_unknown_api_version() -> None:
    doc = contract_doc({"name": "id", "logicalType": "integer"})
    doc["apiVersion"] = "v9"
    assert any(p.startswith("apiVersion") for p in lint_document(doc))


def test_load_contract_refuses_invalid_file_with_lint_message(tmp_path: Path) -> None:
    path = write(tmp_path, contract_doc({"name": "id", "logicalType": "integer",
                                         "primaryKey": True}))
    with pytest.raises(ContractLintError) as info:
        load_contract(path, "orders")
    assert info.value.path == str(path)
    assert "primaryKey" in info.value.problems[0]


def test_contract_maps_to_arrow_and_keys(tmp_path: Path) -> None:
    path = write(tmp_path, contract_doc(
        {"name": "id", "logicalType": "integer", "primaryKey": True, "primaryKeyPosition": 1,
         "required": True},
        {"name": "amount", "logicalType": "number", "physicalType": "numeric(10,2)"},
        {"name": "at_utc", "logicalType": "date", "physicalType": "timestamptz"},
        {"name": "at_local", "logicalType": "date", "physicalType": "timestamp"},
        {"name": "day", "logicalType": "date"},
        {"name": "flag", "logicalType": "boolean"},
        {"name": "meta", "logicalType": "object",
         "properties": [{"name": "source", "logicalType": "string"}]},
        {"name": "tags", "logicalType": "array", "items": {"logicalType": "string"}},
        {"name": "blob", "logicalType": "object"},
    ))
    contract = load_contract(path, "orders")
    assert contract.primary_key == ("id",)
    assert contract.domain == "sales"
    schema = arrow_schema(contract)
    assert schema.field("id").type == pa.int64() and not schema.field("id").nullable
    assert schema.field("amount").type == pa.decimal128(10, 2)
    assert schema.field("at_utc").type == pa.timestamp("us", tz="UTC")
    assert schema.field("at_local").type == pa.timestamp("us")
    assert schema.field("day").type == pa.date32()
    assert schema.field("flag").type == pa.bool_()
    assert schema.field("meta").type == pa.struct([pa.field("source", pa.string())])
    assert schema.field("tags").type == pa.list_(pa.field("element", pa.string()))
    assert schema.field("blob").type == pa.string()


def test_singer_schema_fallback() -> None:
    contract = contract_from_singer_schema(
        "users",
        {"properties": {
            "id": {"type": "integer"},
            "born": {"type": ["string", "null"], "format": "date"},
            "seen": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
            "prefs": {"type": "object"},
            "scores": {"type": "array", "items": {"type": "number"}},
        }},
        ["id"],
    )
    kinds = {f.name: f.kind for f in contract.fields}
    assert kinds == {"id": "integer", "born": "date", "seen": "timestamptz", "prefs": "json",
                     "scores": "array"}
    assert contract.primary_key == ("id",)
    assert contract.fields[0].required
