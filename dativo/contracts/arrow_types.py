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


# Kinds pyarrow's JSON reader parses exactly as our type rules demand (it refuses 1.5
# for an integer, "yes" for a boolean, a lossy decimal). Dates and times are read as
# text and checked in SQL, because pyarrow would accept a date-time for a date.
_STRICT_NATIVE = frozenset({"string", "integer", "number", "boolean", "timestamptz",
                            "decimal", "object", "array"})
TEXT_CHECKED_KINDS = frozenset({"date", "time", "timestamp"})
# Kinds whose pretyped value DuckDB recomputes: text-checked ones, and JSON text,
# re-serialised compactly as the RECORD path stores it.
RECAST_KINDS = TEXT_CHECKED_KINDS | {"json"}


def _strict_type(spec: FieldSpec, *, top_level: bool,
                 json_text: bool = False) -> pa.DataType | None:
    if spec.kind in TEXT_CHECKED_KINDS and top_level:
        return pa.string()
    if spec.kind == "json" and top_level and json_text:
        return pa.string()
    if spec.kind not in _STRICT_NATIVE:
        return None
    if spec.kind == "object":
        children = [_strict_type(child, top_level=False) for child in spec.children]
        if any(t is None for t in children):
            return None
        return pa.struct([pa.field(c.name, t) for c, t in zip(spec.children, children,
                                                                 strict=True)])
    if spec.kind == "array":
        item = _strict_type(spec.item, top_level=False) if spec.item else None
        return None if item is None else pa.list_(item)
    return arrow_type(spec)


def strict_read_schema(contract: Contract) -> pa.Schema | None:
    """Schema for reading Singer RECORD lines with pyarrow's strict JSON reader.

    Returns ``None`` when a field (free-form JSON, or a date nested in an object)
    cannot be read strictly; such contracts always take the SQL path.
    """
    return _record_schema(contract, json_text=False)


def columnar_read_schema(contract: Contract) -> pa.Schema | None:
    """:func:`strict_read_schema` for typed columnar input (Parquet BATCH files): there
    a top-level free-form JSON field can arrive as JSON text (Arrow's ``arrow.json``
    type), which RECORD lines cannot carry, so it is a string of JSON text here."""
    return _record_schema(contract, json_text=True)


def _record_schema(contract: Contract, *, json_text: bool) -> pa.Schema | None:
    fields = []
    for spec in contract.fields:
        typ = _strict_type(spec, top_level=True, json_text=json_text)
        if typ is None:
            return None
        fields.append(pa.field(spec.name, typ))
    return pa.schema([pa.field("record", pa.struct(fields))])
