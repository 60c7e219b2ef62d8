"""Map contract fields to Arrow types (Iceberg types follow from Arrow via pyiceberg)."""

from __future__ import annotations

import pyarrow as pa

from dativo.contracts.model import Contract, FieldSpec

_SIMPLE: dict[str, pa.DataType] = {
    "string": pa.string(),
    "json": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}


def arrow_type(spec: FieldSpec) -> pa.DataType:
    """Arrow type of one field; nested objects become structs, arrays lists."""
    if spec.kind == "decimal":
        return pa.decimal128(spec.precision or 38, spec.scale or 0)
    if spec.kind == "object":
        return pa.struct([arrow_field(child) for child in spec.children])
    if spec.kind == "array":
        element = spec.item or FieldSpec(name="element", kind="json")
        return pa.list_(arrow_field(element))
    return _SIMPLE[spec.kind]


def arrow_field(spec: FieldSpec) -> pa.Field:
    return pa.field(spec.name, arrow_type(spec), nullable=not spec.required)


def arrow_schema(contract: Contract) -> pa.Schema:
    """Arrow schema of the stream's table, in contract column order."""
    return pa.schema([arrow_field(spec) for spec in contract.fields])
