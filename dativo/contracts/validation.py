"""Compile a contract into DuckDB queries that type and check a whole batch at once.

A batch of raw Singer RECORD lines is read by DuckDB's JSON reader. Scalar fields are
read as text and converted with explicit, strict rules, so that in one vectorised
pass we get (a) the typed value of every column and (b) a ``__dativo_reasons`` list
of ``{field, rule}`` structs; a row is valid when that list is empty.

Type rules: a value must convert without loss. ``1.5`` or ``true`` for an integer,
``"yes"`` for a boolean, or a date-time for a date are rejected. Two lossless
coercions are accepted, as most loaders do: numeric strings for numeric columns
(``"12"`` -> 12) and scalars for string columns (``12`` -> ``"12"``).

Nested objects and arrays are first read directly into their typed STRUCT/LIST (the
fast path). If any record has the wrong shape DuckDB refuses the whole batch, and the
batch is re-read with nested fields as raw JSON (the safe path), which yields the
same rows and a per-record ``type`` reason instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pyarrow as pa

from dativo.contracts.arrow_types import (
    RECAST_KINDS,
    TEXT_CHECKED_KINDS,
    columnar_read_schema,
    strict_read_schema,
)
from dativo.contracts.model import Contract, FieldSpec

REASONS_COLUMN = "__dativo_reasons"
ARROW_VIEW = "__dativo_batch"
"""Name under which a strictly-read Arrow batch is registered for ``pretyped_query``:
one column per field (the ``record`` struct's children)."""
_PATH_MARKER = "__dativo_ndjson_path__"

_TEXT_CASTS = {"integer": "BIGINT", "number": "DOUBLE", "date": "DATE", "time": "TIME",
               "timestamp": "TIMESTAMP", "timestamptz": "TIMESTAMPTZ"}
_TEMPORAL_RANGE = {
    "date": ("DATE '0001-01-01'", "DATE '9999-12-31'"),
    "timestamp": ("TIMESTAMP '0001-01-01'", "TIMESTAMP '9999-12-31 23:59:59.999999'"),
    "timestamptz": ("TIMESTAMPTZ '0001-01-01 00:00:00+00'",
                    "TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'"),
}
_FORMATS = {
    "email": r"NOT regexp_full_match({v}, '[^@\s]+@[^@\s]+\.[^@\s]+')",
    "uuid": "TRY_CAST({v} AS UUID) IS NULL",
    "date": "TRY_CAST({v} AS DATE) IS NULL OR NOT regexp_full_match({v}, "
            "'[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')",
    "date-time": "TRY_CAST({v} AS TIMESTAMPTZ) IS NULL",
    "uri": "NOT regexp_matches({v}, '^[A-Za-z][A-Za-z0-9+.-]*:')",
}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def duckdb_type(spec: FieldSpec) -> str:
    """DuckDB type of a field's typed value."""
    if spec.kind in _TEXT_CASTS:
        return _TEXT_CASTS[spec.kind]
    if spec.kind == "boolean":
        return "BOOLEAN"
    if spec.kind == "decimal":
        return f"DECIMAL({spec.precision or 38},{spec.scale or 0})"
    if spec.kind == "object":
        inner = ", ".join(f"{quote_ident(c.name)} {duckdb_type(c)}" for c in spec.children)
        return f"STRUCT({inner})"
    if spec.kind == "array":
        return f"{duckdb_type(spec.item or FieldSpec(name='element', kind='json'))}[]"
    return "VARCHAR"


def _is_nested(spec: FieldSpec) -> bool:
    return spec.kind in ("object", "array")


def _read_type(spec: FieldSpec, *, safe: bool) -> str:
    """How DuckDB's JSON reader should read a field before our checks run.

    Decimals are read as JSON, not text: DuckDB parses a JSON number into a double
    even for a VARCHAR column, so only the JSON type tells whether digits were lost.
    """
    if spec.kind in ("json", "decimal") or (safe and _is_nested(spec)):
        return "JSON"
    return duckdb_type(spec) if _is_nested(spec) else "VARCHAR"


def _value_and_type_check(
    spec: FieldSpec, col: str, typed: str, *, safe: bool
) -> tuple[str, str | None]:
    """The typed value expression (over ``col``), and the condition, over the raw column
    ``col`` and the already-typed column ``typed``, under which the value is a type error."""
    if spec.kind == "string":
        return col, None
    if spec.kind == "json":
        return f"CAST({col} AS VARCHAR)", None
    if spec.kind == "boolean":
        return f"({col} = 'true')", f"{col} NOT IN ('true', 'false')"
    value = f"TRY_CAST({col} AS {duckdb_type(spec)})"
    if _is_nested(spec):
        if not safe:
            return col, None
        json_type = "OBJECT" if spec.kind == "object" else "ARRAY"
        return value, f"json_type({col}) <> '{json_type}' OR {typed} IS NULL"
    # DuckDB's casts round ("1.5" -> 2) and truncate dates; these cheap checks refuse that.
    extra = {
        "integer": f"CAST({typed} AS VARCHAR) <> {col}",
        "number": f"NOT isfinite({typed})",
        "decimal": f"NOT isfinite(TRY_CAST({col} AS DOUBLE))",
        "date": f"length({col}) <> 10",
    }.get(spec.kind)
    return value, f"{typed} IS NULL" + (f" OR {extra}" if extra else "")


class _Reason(NamedTuple):
    condition: str
    sql: str  # the reason struct when ``condition`` holds, else NULL


def _reason(spec: FieldSpec, rule: str, condition: str) -> _Reason:
    return _Reason(condition, f"CASE WHEN {condition} THEN {{'field': "
                              f"{sql_literal(spec.name)}, 'rule': {sql_literal(rule)}}} END")


def _bound(spec: FieldSpec, bound: object) -> str:
    if spec.kind in ("date", "time", "timestamp", "timestamptz"):
        return f"CAST({sql_literal(str(bound))} AS {_TEXT_CASTS[spec.kind]})"
    return sql_literal(bound)


def _rule_reasons(spec: FieldSpec, col: str, value: str) -> list[_Reason]:
    """Reasons for the contract's value rules; NULL values pass (``required`` is separate)."""
    reasons = []
    if spec.kind == "decimal":
        # Re-cast with more fractional digits: a difference means rounding, i.e. loss.
        precision, scale = spec.precision or 38, spec.scale or 0
        probe = min(38, max(scale + 1, 38 - (precision - scale)))
        # Both sides TRY_CAST: a valid decimal(38,s) value with 38 digits overflows the
        # probe type, and a plain (implicit) cast of it would abort the whole batch.
        reasons.append(_reason(spec, "scale", f"TRY_CAST({col} AS DECIMAL(38,{probe})) <> "
                                              f"TRY_CAST({value} AS DECIMAL(38,{probe}))"))
    if spec.min_length is not None:
        reasons.append(_reason(spec, "minLength", f"length({value}) < {spec.min_length}"))
    if spec.max_length is not None:
        reasons.append(_reason(spec, "maxLength", f"length({value}) > {spec.max_length}"))
    if spec.pattern is not None:
        reasons.append(_reason(spec, "pattern",
                               f"NOT regexp_matches({value}, {sql_literal(spec.pattern)})"))
    if spec.minimum is not None:
        op = "<=" if spec.exclusive_minimum else "<"
        reasons.append(_reason(spec, "minimum", f"{value} {op} {_bound(spec, spec.minimum)}"))
    if spec.maximum is not None:
        op = ">=" if spec.exclusive_maximum else ">"
        reasons.append(_reason(spec, "maximum", f"{value} {op} {_bound(spec, spec.maximum)}"))
    if spec.kind in _TEMPORAL_RANGE:
        # Years outside 1-9999 parse in DuckDB but break Python, Java and Spark readers.
        low, high = _TEMPORAL_RANGE[spec.kind]
        reasons.append(_reason(spec, "range", f"{value} NOT BETWEEN {low} AND {high}"))
    if spec.format in _FORMATS:  # a NULL has no format to fail (``required`` is separate)
        condition = _FORMATS[spec.format].format(v=value)
        reasons.append(_reason(spec, "format", f"{value} IS NOT NULL AND ({condition})"))
    if spec.valid_values:
        listed = ", ".join(sql_literal(v) for v in spec.valid_values)
        reasons.append(_reason(spec, "validValues", f"{value} NOT IN ({listed})"))
    return reasons


def _query(contract: Contract, *, safe: bool = False, pretyped: bool = False) -> str:
    """Inner query: raw ``r<i>`` and typed ``v<i>`` per field, so each cast runs once.
    Outer query: the typed columns under their names plus the reasons list.

    ``pretyped``: the source is an Arrow table already typed as
    :func:`~dativo.contracts.arrow_types.columnar_read_schema` says, so only the
    fields it kept as text (dates and times) still need a cast and a type check, JSON
    text is made compact, and only those and the reasons are selected; the caller
    keeps the other columns as read.
    """
    inner: list[str] = []
    outer: list[str] = []
    reasons: list[_Reason] = []
    for i, spec in enumerate(contract.fields):
        col = quote_ident(spec.name)
        raw, typed = f"r{i}", f"v{i}"
        source = col
        if pretyped and spec.kind == "json":
            # Compact, as RECORDs store it; a JSON null is SQL NULL there too.
            source = f"NULLIF(CAST(json({col}) AS VARCHAR), 'null')"
            value, type_error = source, None
        elif pretyped and spec.kind not in TEXT_CHECKED_KINDS:
            # pyarrow's reader takes NaN and Infinity for a number; our rule does not.
            value, type_error = col, (f"NOT isfinite({raw})" if spec.kind == "number"
                                      else None)
        else:
            if spec.kind == "decimal":
                source = _json_scalar_text(col)
                inner.append(f"json_type({col}) = 'DOUBLE' AS n{i}")
                reasons.append(_reason(spec, "precision",
                                       f"n{i} AND {_significant_digits(raw)} > 15"))
            value, _ = _value_and_type_check(spec, source, typed, safe=safe)
            _, type_error = _value_and_type_check(spec, raw, typed, safe=safe)
        inner.append(f"{source} AS {raw}, {value} AS {typed}")
        if not pretyped or spec.kind in RECAST_KINDS:
            outer.append(f"{typed} AS {col}")
        if spec.required:
            reasons.append(_reason(spec, "required", f"{raw} IS NULL"))
        if type_error:
            reasons.append(_reason(spec, "type", f"{raw} IS NOT NULL AND ({type_error})"))
        reasons.extend(_rule_reasons(spec, raw, typed))
    # Most rows break no rule: one OR of the conditions skips building (and filtering)
    # a list of every reason for them; only failing rows build it (half the query's CPU).
    no_reasons = "[]::STRUCT(field VARCHAR, rule VARCHAR)[]"
    reasons_sql = (f"CASE WHEN {' OR '.join(f'({r.condition})' for r in reasons)} THEN "
                   f"list_filter([{', '.join(r.sql for r in reasons)}], x -> x IS NOT NULL) "
                   f"ELSE {no_reasons} END" if reasons else no_reasons)
    # The Arrow view's columns are the fields, so DuckDB converts only those the query
    # reads (a ``record`` struct would be converted whole, nested lists included).
    rows = (f"SELECT * FROM {ARROW_VIEW}" if pretyped else
            # records=true: without it DuckDB samples the file at bind time to
            # detect it, seconds for a wide schema (per batch, and before any row).
            f"SELECT record.* FROM read_json({_PATH_MARKER}, format='newline_delimited', "
            f"records=true, maximum_object_size=268435456, "
            f"columns={{'record': {sql_literal(_read_columns(contract, safe=safe))}}})")
    return (f"SELECT {''.join(c + ', ' for c in outer)}{reasons_sql} AS {REASONS_COLUMN} FROM ("
            f"SELECT {', '.join(inner)} FROM ({rows}))")


def _json_scalar_text(col: str) -> str:
    """A JSON scalar as text: strings unquoted, JSON null as SQL NULL."""
    return (f"CASE json_type({col}) WHEN 'NULL' THEN NULL WHEN 'VARCHAR' THEN {col} ->> '$' "
            f"ELSE CAST({col} AS VARCHAR) END")


def _significant_digits(text: str) -> str:
    """Significant digits of a number's text. A JSON number with more than 15 was
    rounded by the double it was parsed into, so it is refused (rule ``precision``),
    never stored rounded; the tap should send such decimals as strings."""
    return (f"length(trim(regexp_replace(split_part(lower({text}), 'e', 1), '[^0-9]', '', "
            "'g'), '0'))")


def _read_columns(contract: Contract, *, safe: bool) -> str:
    inner = ", ".join(f"{quote_ident(f.name)} {_read_type(f, safe=safe)}" for f in contract.fields)
    return f"STRUCT({inner})"


@dataclass(frozen=True, slots=True)
class CompiledContract:
    """The batch queries for one contract; built once per SCHEMA, run per flush.

    Three ways to check a batch, fastest first: ``strict_schema`` + ``pretyped_query``
    (pyarrow reads and types the JSON, refusing the whole batch on any mismatch;
    typed columnar input, typed as ``columnar_schema``, takes the same query),
    ``fast_query`` (DuckDB reads scalars as text and checks them per record), and
    ``safe_query`` (nested fields as raw JSON, when their shape is wrong somewhere).
    All three give the same rows and reasons for the batches they accept.
    """

    contract: Contract
    fast_query: str
    safe_query: str | None
    strict_schema: pa.Schema | None = None
    pretyped_query: str | None = None
    unknown_columns_query: str | None = None
    columnar_schema: pa.Schema | None = None

    def query(self, ndjson_path: str, *, safe: bool = False) -> str:
        """SQL that reads RECORD lines from ``ndjson_path`` and types/checks them."""
        template = self.safe_query if safe and self.safe_query else self.fast_query
        return template.replace(_PATH_MARKER, sql_literal(ndjson_path), 1)

    def unknown_columns(self, ndjson_path: str) -> str | None:
        """SQL listing, per RECORD line, the non-null keys outside the contract (the
        ``freeze`` check); ``None`` when unknown columns are simply not loaded."""
        if self.unknown_columns_query is None:
            return None
        return self.unknown_columns_query.replace(_PATH_MARKER, sql_literal(ndjson_path), 1)


def _unknown_columns_query(contract: Contract) -> str:
    known = ", ".join(sql_literal(f.name) for f in contract.fields)
    return (f"SELECT list_filter(json_keys(record), k -> NOT list_contains([{known}], k) "
            "AND json_type(record, '$.' || json_quote(k)) <> 'NULL') AS unknown "
            f"FROM read_json({_PATH_MARKER}, format='newline_delimited', "
            "maximum_object_size=268435456, columns={'record': 'JSON'})")


def compile_contract(contract: Contract, *,
                     reject_unknown_columns: bool = False) -> CompiledContract:
    """Compile ``contract`` into its fast and (if it has nested fields) safe queries.

    ``reject_unknown_columns``: a record with a value in a column the contract lacks
    fails rule ``unknownColumn`` (``schema_evolution: freeze``) instead of losing it.

    Raises:
        ValueError: The contract has no fields.
    """
    if not contract.fields:
        raise ValueError(f"contract for {contract.name!r} has no columns")
    has_nested = any(_is_nested(f) for f in contract.fields)
    columnar_schema = columnar_read_schema(contract)
    return CompiledContract(
        contract,
        _query(contract),
        _query(contract, safe=True) if has_nested else None,
        strict_read_schema(contract),
        _query(contract, pretyped=True) if columnar_schema is not None else None,
        _unknown_columns_query(contract) if reject_unknown_columns else None,
        columnar_schema,
    )
