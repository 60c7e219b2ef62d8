"""Shape checks of an ODCS document that must pass before anything recurses into it:
nesting depth (:data:`MAX_NESTING_DEPTH`) and the identifiers it declares (tenant,
domain, table and column names; see :mod:`dativo.names`)."""

from __future__ import annotations

from typing import Any

from dativo.contracts.model import MAX_NESTING_DEPTH
from dativo.errors import ConfigError
from dativo.names import name_problem, table_name, tenant_problem


def too_deep(doc: dict[str, Any]) -> str | None:
    """The first column nested deeper than :data:`MAX_NESTING_DEPTH`, as a lint problem.

    Walks with an explicit stack, so a contract nested thousands deep is reported
    rather than exhausting the interpreter's recursion limit.
    """
    pending: list[tuple[Any, str, str, int]] = [
        (prop, f"schema[{i}].properties[{j}]", "", 1)
        for i, obj in enumerate(_list(doc.get("schema")))
        if isinstance(obj, dict)
        for j, prop in enumerate(_list(obj.get("properties")))
    ]
    while pending:
        prop, where, names, depth = pending.pop()
        if not isinstance(prop, dict):
            continue
        names = f"{names}.{prop.get('name', '?')}" if names else str(prop.get("name", "?"))
        if depth > MAX_NESTING_DEPTH:
            return (f"{where} ({names}): nested {depth} levels deep; at most "
                    f"{MAX_NESTING_DEPTH} are supported (deeper Iceberg metadata cannot be "
                    "read back). Flatten it, or make a level above logicalType: object "
                    "without properties so it is stored as JSON text")
        pending.extend((child, f"{where}.properties[{k}]", names, depth + 1)
                       for k, child in enumerate(_list(prop.get("properties"))))
        items = prop.get("items")
        if isinstance(items, dict):
            pending.append(({"name": "[]", **items}, f"{where}.items", names, depth + 1))
    return None


def identifier_problems(doc: dict[str, Any]) -> list[str]:
    """Tenant, domain, table and column names that break :mod:`dativo.names`' rules."""
    problems = []
    tenant = doc.get("tenant")  # null: no tenant (the ODCS schema checks its type)
    if tenant is not None and (problem := tenant_problem(tenant)) is not None:
        problems.append(f"tenant: {problem}")
    if doc.get("domain") is not None:
        problems.extend(_naming_problem("domain", doc["domain"]))
    for i, obj in enumerate(_list(doc.get("schema"))):
        if isinstance(obj, dict) and "name" in obj:
            problems.extend(_naming_problem(f"schema[{i}].name", obj["name"]))
    return problems


def column_problem(prop: dict[str, Any], where: str) -> str | None:
    """A lint problem when the column's name is not printable text."""
    if "name" not in prop:
        return None
    problem = name_problem(prop["name"])
    return None if problem is None else f"{where}.name: {problem}"


def _naming_problem(where: str, value: Any) -> list[str]:
    try:
        table_name(value)
    except ConfigError as exc:
        return [f"{where}: {exc}"]
    return []


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
