"""Derive a :class:`Contract` from a Singer SCHEMA message (the no-contract fallback)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from dativo.contracts.model import MAX_NESTING_DEPTH, Contract, FieldKind, FieldSpec
from dativo.errors import CodecError
from dativo.names import name_problem

_STRING_FORMATS: dict[str, FieldKind] = {
    "date-time": "timestamptz",
    "date": "date",
    "time": "time",
}

# Taps that know the SQL type say so in ``x-sql-datatype`` (singer-sdk's keyword): a
# JSON number that is a numeric(p,s) must stay an exact decimal, and a date-time that
# is a timestamp without time zone must not become an instant.
_SQL_DECIMAL = re.compile(r"\s*(?:numeric|decimal)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*", re.I)
_MAX_DECIMAL_PRECISION = 38
_SQL_LOCAL_TIMESTAMPS = frozenset({"timestamp", "timestamp without time zone"})


def _sql_decimal(types: list[str], schema: dict[str, Any]) -> tuple[int, int] | None:
    """(precision, scale) of a JSON number or ``x-singer.decimal`` string that is a
    SQL numeric(p,s); None for anything else (unconstrained numerics stay strings)."""
    decimal_string = types == ["string"] and schema.get("format") == "x-singer.decimal"
    if types != ["number"] and not decimal_string:
        return None
    match = _SQL_DECIMAL.fullmatch(str(schema.get("x-sql-datatype", "")))
    if match is None:
        return None
    precision, scale = int(match[1]), int(match[2])
    return (precision, scale) if scale <= precision <= _MAX_DECIMAL_PRECISION else None


def _non_null_types(schema: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Return the JSON types of a property, unwrapping ``anyOf`` with a null branch."""
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if b.get("type") not in ("null", ["null"])]
        if len(branches) == 1:
            return _non_null_types(branches[0])
        return ["json"], schema
    declared = schema.get("type", [])
    types = [declared] if isinstance(declared, str) else list(declared)
    return [t for t in types if t != "null"], schema


def _field(stream: str, path: str, name: str, schema: dict[str, Any], required: bool,
           depth: int) -> FieldSpec:
    """The column ``name`` at ``path`` (``a.b[].c``), ``depth`` levels deep (1: top level).

    Raises:
        CodecError: The column is nested deeper than :data:`MAX_NESTING_DEPTH` (checked
            before going any deeper), or its name is not printable text.
    """
    if depth > MAX_NESTING_DEPTH:
        raise CodecError(
            f"SCHEMA for stream '{stream}': property {path} is nested {depth} levels deep; "
            f"at most {MAX_NESTING_DEPTH} are supported (deeper Iceberg metadata cannot be "
            "read back). Flatten it, or declare a level above as {\"type\": \"object\"} "
            "without properties so it is stored as JSON text")
    problem = name_problem(name)
    if problem is not None:
        raise CodecError(f"SCHEMA for stream '{stream}': column {path!r}: {problem}; "
                         "rename the property (a stream map can alias it)")
    types, schema = _non_null_types(schema)
    kind: FieldKind
    children: tuple[FieldSpec, ...] = ()
    item: FieldSpec | None = None
    decimal = _sql_decimal(types, schema)
    if decimal is not None:
        kind = "decimal"
    elif len(types) != 1:
        # No type at all is JSON Schema's "any value" ({}), e.g. a json/jsonb column.
        kind = "json" if types or "type" not in schema else "string"
    elif types[0] == "string":
        kind = _STRING_FORMATS.get(schema.get("format", ""), "string")
        if kind == "timestamptz" and str(schema.get("x-sql-datatype", "")).lower() in (
                _SQL_LOCAL_TIMESTAMPS):
            kind = "timestamp"
    elif types[0] in ("integer", "number", "boolean"):
        kind = types[0]  # type: ignore[assignment]
    elif types[0] == "object" and schema.get("properties"):
        kind = "object"
        nested_required = set(schema.get("required") or [])
        children = tuple(
            _field(stream, f"{path}.{k}", k, _as_schema(v), k in nested_required, depth + 1)
            for k, v in schema["properties"].items()
        )
    elif types[0] == "array" and isinstance(schema.get("items"), dict):
        kind = "array"
        item = _field(stream, f"{path}[]", "element", schema["items"], False, depth + 1)
    else:
        kind = "json"
    return FieldSpec(
        name=name,
        kind=kind,
        required=required,
        precision=decimal[0] if decimal else None,
        scale=decimal[1] if decimal else None,
        children=children,
        item=item,
        min_length=schema.get("minLength"),
        max_length=schema.get("maxLength"),
        pattern=schema.get("pattern"),
        minimum=schema.get("minimum"),
        maximum=schema.get("maximum"),
        valid_values=tuple(schema["enum"]) if isinstance(schema.get("enum"), list) else None,
        format=schema.get("format") if kind == "string" else None,
    )


def _as_schema(prop: Any) -> dict[str, Any]:
    return prop if isinstance(prop, dict) else {}


def contract_from_singer_schema(
    stream: str, schema: dict[str, Any], key_properties: list[str] | None
) -> Contract:
    """Build a contract from a SCHEMA message; key properties become required keys.

    Raises:
        CodecError: A column is nested too deep or has an unusable name.
    """
    keys = list(key_properties or [])
    required = set(schema.get("required") or []) | set(keys)
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        spec = _field(stream, name, name, _as_schema(prop), name in required, 1)
        if name in keys:
            spec = replace(spec, primary_key_position=keys.index(name) + 1)
        fields.append(spec)
    return Contract(name=stream, fields=tuple(fields))
