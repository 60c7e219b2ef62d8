"""Load and lint ODCS v3.0.2 contracts, and turn them into :class:`Contract` values.

Linting runs the official JSON Schema that ships in PyPI's
``open-data-contract-standard`` (so it works offline), then our semantic checks:
primary keys are required, types are known, ``decimal(p,s)`` parses, patterns compile,
and every option and quality rule is one dativo enforces (:mod:`.odcs_rules`).
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dativo.contracts.model import MAX_NESTING_DEPTH, Contract, FieldKind, FieldSpec
from dativo.contracts.odcs_encryption import (
    encryption_mode,
    encryption_problems,
    stored_name_problems,
)
from dativo.contracts.odcs_rules import option_problems, quality_problems
from dativo.contracts.odcs_shape import column_problem, identifier_problems, too_deep
from dativo.errors import ConfigError, ContractLintError
from dativo.quality.anomaly import anomaly_problems, blocks
from dativo.quality.rules import QualityRule, read_quality, row_valid_values
from dativo.quality.thresholds import COMPARISONS
from dativo.schema_messages import clip, describe

SUPPORTED_API_VERSIONS = ("v3.0.0", "v3.0.1", "v3.0.2")

_DECIMAL = re.compile(r"(?:decimal|numeric|number)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")
PARTITION_TRANSFORM = "partitionTransform"
"""customProperties key for a partition column's Iceberg transform, e.g. ``day``."""
_TRANSFORM = re.compile(r"identity|year|month|day|hour|bucket\[[1-9][0-9]*\]|"
                        r"truncate\[[1-9][0-9]*\]")  # fullmatch: "day\n" is no transform
_PHYSICAL_KINDS: dict[str, FieldKind] = {
    **dict.fromkeys(("bigint", "int8", "long", "int", "integer", "int4", "smallint",
                     "int2", "tinyint", "serial", "bigserial"), "integer"),
    **dict.fromkeys(("double", "double precision", "float", "float8", "float4", "real"),
                    "number"),
    **dict.fromkeys(("boolean", "bool"), "boolean"),
    **dict.fromkeys(("string", "text", "varchar", "char", "character varying", "uuid"),
                    "string"),
    "date": "date",
    "time": "time",
    **dict.fromkeys(("timestamp", "timestamp without time zone", "datetime", "timestamp_ntz"),
                    "timestamp"),
    **dict.fromkeys(("timestamptz", "timestamp with time zone", "timestamp_tz"), "timestamptz"),
    **dict.fromkeys(("json", "jsonb", "variant"), "json"),
    **dict.fromkeys(("object", "struct", "record"), "object"),
    **dict.fromkeys(("array", "list"), "array"),
}
_LOGICAL_KINDS: dict[str, FieldKind] = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "date": "date",
    "object": "object",
    "array": "array",
}


class _NoTimestampLoader(yaml.SafeLoader):
    """SafeLoader that keeps unquoted dates as strings, as ODCS expects."""


_NoTimestampLoader.yaml_implicit_resolvers = {
    key: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: Path) -> Any:
    """Parse a YAML file without the timestamp resolver.

    Raises:
        ConfigError: The file is missing or is not valid YAML.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read contract {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"contract {path} is not UTF-8 text (byte {exc.start}); check "
                          "the path") from None
    try:
        return yaml.load(text, Loader=_NoTimestampLoader)
    except yaml.YAMLError as exc:  # its text quotes the file: the position only (no chain)
        raise ConfigError(f"contract {path} is not valid YAML: {_yaml_problem(exc)}"
                          ) from None
    except RecursionError as exc:  # PyYAML composes nested nodes recursively
        raise ConfigError(f"contract {path} is nested too deeply to read; a contract "
                          f"column may be at most {MAX_NESTING_DEPTH} levels deep") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what, never the offending line: the file may be a secret one."""
    mark = getattr(exc, "problem_mark", None)
    problem = clip(str(getattr(exc, "problem", None) or type(exc).__name__), 80)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


@functools.cache
def _odcs_validator() -> jsonschema.Draft201909Validator:
    schema_text = resources.files("open_data_contract_standard").joinpath("schema.json")
    schema = json.loads(schema_text.read_text(encoding="utf-8"))
    return jsonschema.Draft201909Validator(schema)


def _json_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def lint_document(doc: Any) -> list[str]:
    """Return every problem in a parsed contract; an empty list means it is valid."""
    if not isinstance(doc, dict):
        return ["(root): a contract must be a YAML mapping"]
    if "apiVersion" not in doc and "kind" not in doc:  # e.g. a config, /etc/shadow
        return ["(root): neither apiVersion nor kind is set, so this is no ODCS contract "
                "(nothing of it is quoted); check the path"]
    deep = too_deep(doc)  # first: the checks below recurse into the document
    if deep is not None:
        return [deep]
    try:
        problems = [  # describe(): no secret, long value or whole object quoted back
            describe(err, where=_json_path(err.absolute_path))
            for err in sorted(_odcs_validator().iter_errors(doc), key=lambda e: list(e.path))
            if not _option_key_error(err)  # option_problems names them, with a hint
            and not _quality_error(err)  # dativo.quality.rules names them, with a hint
        ]
    except RecursionError:
        return ["(root): the document is nested too deeply to check"]
    problems.extend(identifier_problems(doc))
    if doc.get("apiVersion") not in SUPPORTED_API_VERSIONS:
        problems.append(f"apiVersion: {clip(repr(doc.get('apiVersion')))} is not one of "
                        f"{', '.join(SUPPORTED_API_VERSIONS)}")
    for i, obj in enumerate(doc.get("schema") or []):
        if isinstance(obj, dict):
            problems.extend(_lint_properties(obj.get("properties") or [], f"schema[{i}]"))
            problems.extend(stored_name_problems(obj.get("properties") or [], f"schema[{i}]"))
            problems.extend(quality_problems(obj.get("quality"), f"schema[{i}]",
                                             column=None, columns=_column_names(obj),
                                             primary_key=_primary_key(obj)))
            problems.extend(anomaly_problems(obj.get("customProperties"),
                                             f"schema[{i}] ({obj.get('name')})"))
    return list(dict.fromkeys(problems))  # each ODCS if/then branch repeats its errors


def _option_key_error(err: jsonschema.ValidationError) -> bool:
    """An unexpected ``logicalTypeOptions`` key, which :func:`option_problems` reports
    once, with the closest known name."""
    return (err.validator == "additionalProperties" and bool(err.absolute_path)
            and err.absolute_path[-1] == "logicalTypeOptions")


def _quality_error(err: jsonschema.ValidationError) -> bool:
    """A quality entry's missing ``rule`` (v3.1 entries say ``metric``) or a malformed
    comparison, which :func:`dativo.quality.rules.read_quality` reports with what to
    write instead."""
    path = list(err.absolute_path)
    if "quality" not in path:
        return False
    rest = path[path.index("quality") + 1:]
    if err.validator == "required" and len(rest) == 1:
        return "'rule'" in err.message
    return len(rest) >= 2 and rest[1] in COMPARISONS


def _lint_properties(props: list[Any], where: str, *, nested: bool = False) -> list[str]:
    problems: list[str] = []
    for j, prop in enumerate(props):
        if not isinstance(prop, dict):
            continue
        path = f"{where}.properties[{j}]"
        name = prop.get("name", "?")
        if (problem := column_problem(prop, path)) is not None:
            problems.append(problem)
        if prop.get("primaryKey") and not prop.get("required"):
            problems.append(f"{path} ({name}): primaryKey columns must set required: true")
        kind: FieldKind | None = None
        try:
            kind = _resolve_kind(prop)[0]
        except ValueError as exc:
            problems.append(f"{path} ({name}): {exc}")
        options = prop.get("logicalTypeOptions")
        problems.extend(option_problems(options, kind, f"{path} ({name})"))
        problems.extend(encryption_problems(prop, f"{path} ({name})", kind, nested=nested))
        if nested and _measured(prop.get("quality")):
            problems.append(f"{path} ({name}): quality rules run on top-level columns only; "
                            "move the rule to the schema object's quality list as a "
                            "type: sql rule over the nested field")
        else:
            problems.extend(quality_problems(prop.get("quality"), f"{path} ({name})",
                                             column=str(name)))
        pattern = (options if isinstance(options, dict) else {}).get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(f"{path} ({name}): pattern does not compile: {exc}")
        if prop.get("partitioned") and not _TRANSFORM.fullmatch(_partition_transform(prop)):
            problems.append(
                f"{path} ({name}): partition transform {_partition_transform(prop)!r} is not "
                "one of identity, year, month, day, hour, bucket[N], truncate[W]")
        problems.extend(_lint_properties(prop.get("properties") or [], path, nested=True))
        items = prop.get("items")
        if isinstance(items, dict):
            problems.extend(_lint_properties([items], f"{path}.items", nested=True))
    return problems


def _resolve_kind(prop: dict[str, Any]) -> tuple[FieldKind, int | None, int | None]:
    """Map logicalType + physicalType to our kind; physicalType is more precise."""
    logical = prop.get("logicalType")
    physical = str(prop.get("physicalType") or "").strip().lower()
    if physical:
        match = _DECIMAL.fullmatch(physical)
        if match:
            precision, scale = int(match.group(1)), int(match.group(2) or 0)
            if not 1 <= precision <= 38 or scale > precision:
                raise ValueError(f"physicalType {physical!r}: need 1 <= p <= 38 and s <= p")
            return "decimal", precision, scale
        if physical.startswith(("decimal", "numeric")):
            raise ValueError(f"physicalType {physical!r} does not parse as decimal(p,s)")
        base = re.sub(r"\s*\(.*\)\Z", "", physical)
        if base in _PHYSICAL_KINDS:
            kind = _PHYSICAL_KINDS[base]
            if kind == "object" and not prop.get("properties"):
                kind = "json"
            return kind, None, None
        if logical is None:
            raise ValueError(f"unknown physicalType {physical!r} and no logicalType")
    if logical is None:
        raise ValueError("set logicalType or physicalType")
    if logical not in _LOGICAL_KINDS:
        raise ValueError(f"unknown logicalType {logical!r}")
    kind = _LOGICAL_KINDS[logical]
    if kind == "object" and not prop.get("properties"):
        kind = "json"
    return kind, None, None


def _partition_transform(prop: dict[str, Any]) -> str:
    """The Iceberg transform of a partition column, from customProperties (ODCS has no
    field for it); identity when absent."""
    for custom in prop.get("customProperties") or []:
        if isinstance(custom, dict) and custom.get("property") == PARTITION_TRANSFORM:
            return str(custom.get("value")).strip().lower()
    return "identity"


def _partitioning(props: list[Any]) -> tuple[tuple[str, str], ...]:
    """Partition columns in ``partitionKeyPosition`` order, each with its transform."""
    keyed = [p for p in props if isinstance(p, dict) and p.get("partitioned")]
    keyed.sort(key=lambda p: p.get("partitionKeyPosition") or 0)
    return tuple((str(p["name"]), _partition_transform(p)) for p in keyed)


def _valid_values(prop: dict[str, Any]) -> tuple[object, ...] | None:
    """A ``validValues`` row rule's list (one without a numeric comparison; with one it
    is a measured quality rule, :mod:`dativo.quality.rules`)."""
    for rule in prop.get("quality") or []:
        values = row_valid_values(rule)
        if values is not None:
            return values
    return None


def _measured(entries: Any) -> bool:
    """Whether a quality list holds anything but text entries and row rules."""
    return any(isinstance(e, dict) and e.get("type", "library") != "text"
               and row_valid_values(e) is None for e in entries or [])


def _column_names(obj: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(p["name"]) for p in obj.get("properties") or []
                 if isinstance(p, dict) and "name" in p)


def _primary_key(obj: dict[str, Any]) -> tuple[str, ...]:
    keyed = [p for p in obj.get("properties") or []
             if isinstance(p, dict) and p.get("primaryKey") and "name" in p]
    keyed.sort(key=lambda p: p.get("primaryKeyPosition") or 0)
    return tuple(str(p["name"]) for p in keyed)


def quality_rules(obj: dict[str, Any]) -> tuple[QualityRule, ...]:
    """Every measured quality rule of a linted schema object: its own list, then each
    top-level property's, in contract order."""
    found, _ = read_quality(obj.get("quality"), "schema", column=None,
                            columns=_column_names(obj), primary_key=_primary_key(obj))
    for prop in obj.get("properties") or []:
        if isinstance(prop, dict) and "name" in prop:
            more, _ = read_quality(prop.get("quality"), "property", column=str(prop["name"]))
            found.extend(more)
    return tuple(found)


def _field_from_property(prop: dict[str, Any]) -> FieldSpec:
    kind, precision, scale = _resolve_kind(prop)
    options = prop.get("logicalTypeOptions") or {}
    position = prop.get("primaryKeyPosition")
    children = tuple(_field_from_property(p) for p in prop.get("properties") or [])
    items = prop.get("items")
    return FieldSpec(
        name=str(prop["name"]),
        kind=kind,
        required=bool(prop.get("required") or prop.get("primaryKey")),
        primary_key_position=(position if position and position > 0 else 1)
        if prop.get("primaryKey")
        else None,
        precision=precision,
        scale=scale,
        min_length=options.get("minLength"),
        max_length=options.get("maxLength"),
        pattern=options.get("pattern"),
        minimum=options.get("minimum"),
        maximum=options.get("maximum"),
        exclusive_minimum=bool(options.get("exclusiveMinimum")),
        exclusive_maximum=bool(options.get("exclusiveMaximum")),
        format=options.get("format") if kind == "string" else None,
        valid_values=_valid_values(prop),
        children=children,
        item=_field_from_property({"name": "element", **items}) if isinstance(items, dict)
        else None,
        description=prop.get("description"),
        classification=_text(prop.get("classification")),
        encrypted_name=_text(prop.get("encryptedName")),
        encryption=encryption_mode(prop),
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def load_contract(path: Path, object_name: str | None = None) -> Contract:
    """Lint a contract file and return the schema object for ``object_name``.

    The object is chosen by name; a contract with a single schema object matches any
    stream, which is the usual one-table-per-file layout.

    Raises:
        ContractLintError: The contract fails linting.
        ConfigError: The file cannot be read, or has no object for the stream.
    """
    doc = load_yaml(path)
    problems = lint_document(doc)
    if problems:
        raise ContractLintError(str(path), problems)
    objects = [o for o in doc.get("schema") or [] if isinstance(o, dict)]
    chosen = [o for o in objects if o.get("name") == object_name] if object_name else []
    if not chosen and len(objects) == 1:
        chosen = objects
    if not chosen:
        names = ", ".join(str(o.get("name")) for o in objects) or "none"
        raise ConfigError(
            f"contract {path} has no schema object named {object_name!r} (it has: {names}); "
            "name the object after the stream or map the stream with stream_contracts"
        )
    obj = chosen[0]
    return Contract(
        name=str(obj["name"]),
        fields=tuple(_field_from_property(p) for p in obj.get("properties") or []),
        partitioning=_partitioning(obj.get("properties") or []),
        domain=str(doc.get("domain") or "default"),
        tenant=doc.get("tenant"),
        version=str(doc.get("version")),
        source=str(path),
        quality=quality_rules(obj),
        anomaly_blocks=blocks(obj.get("customProperties")),
    )
