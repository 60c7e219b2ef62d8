"""Which contract rules dativo enforces, and lint problems for the ones it would drop.

The ODCS JSON Schema accepts options and quality rules dativo does not check
(``multipleOf``, ``rule: rowCount``, ``type: sql``), and, on a column with no
``logicalType``, any ``logicalTypeOptions`` key at all. Loading such a contract used to
succeed and the rule was silently not applied; a contract is a promise about the data,
so every rule that would not be enforced is a lint problem here, with the closest
known name when it looks like a typo. ``type: text`` quality entries are documentation
and stay allowed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, get_args

from dativo.contracts.model import FieldKind, StringFormat
from dativo.schema_messages import clip

STRING_FORMATS: tuple[str, ...] = get_args(StringFormat)
"""``logicalTypeOptions.format`` values of string columns that the validator checks."""
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
ENFORCED_OPTIONS: dict[FieldKind, tuple[str, ...]] = {
    "string": ("minLength", "maxLength", "pattern", "format"),
    "integer": (*_BOUNDS, "format"),
    "number": (*_BOUNDS, "format"),
    "decimal": _BOUNDS,
    "date": (*_BOUNDS, "format"),
    "time": _BOUNDS,
    "timestamp": _BOUNDS,
    "timestamptz": _BOUNDS,
}
"""The ``logicalTypeOptions`` keys the validator applies, per column kind."""
NATIVE_FORMATS: dict[FieldKind, str] = {"integer": "i64", "number": "f64", "date": "yyyy-MM-dd"}
"""The one ``format`` a non-string column may declare: the one it is stored in."""
ODCS_OPTIONS = frozenset({
    "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minItems", "maxItems", "uniqueItems",
    "minProperties", "maxProperties", "required"})
"""Every ``logicalTypeOptions`` key ODCS v3.0.2 defines for some logical type."""
QUALITY_KEYS = frozenset({
    "rule", "type", "name", "description", "dimension", "method", "severity", "businessImpact",
    "unit", "tags", "customProperties", "authoritativeDefinitions", "schedule", "scheduler",
    "validValues", "mustBe", "mustNotBe", "mustBeGreaterThan", "mustBeGreaterOrEqualTo",
    "mustBeLessThan", "mustBeLessOrEqualTo", "mustBeBetween", "mustNotBeBetween", "query",
    "engine", "implementation"})
"""Every key an ODCS v3.0.2 quality entry may have (all types), plus ``validValues``."""
ENFORCED_QUALITY_RULES = ("validValues",)
"""Library rules the validator applies (a column's ``validValues`` list, or ``mustBe``)."""


def option_problems(options: Any, kind: FieldKind | None, where: str) -> list[str]:
    """Problems of one column's ``logicalTypeOptions`` (``where`` names the column)."""
    if not isinstance(options, dict):
        return []
    problems = []
    enforced = ENFORCED_OPTIONS.get(kind, ()) if kind else ()
    for key in options:
        if key not in ODCS_OPTIONS:
            problems.append(f"{where}: unknown logicalTypeOptions key {clip(str(key))!r}"
                            f"{_did_you_mean(str(key), ODCS_OPTIONS)}")
        elif kind is not None and key not in enforced:
            problems.append(f"{where}: logicalTypeOptions.{key} is not enforced by dativo "
                            f"on {kind} columns; remove it (enforced: "
                            f"{', '.join(enforced) or 'none'})")
    fmt = options.get("format")
    if "format" in options and kind is not None and "format" in enforced:
        problems.extend(_format_problem(fmt, kind, where))
    return problems


def _format_problem(fmt: Any, kind: FieldKind, where: str) -> list[str]:
    if kind == "string":
        if fmt in STRING_FORMATS:
            return []
        return [f"{where}: logicalTypeOptions.format {clip(repr(fmt))} is not one of "
                f"{', '.join(STRING_FORMATS)}{_did_you_mean(str(fmt), STRING_FORMATS)} "
                "(a format dativo cannot check would be dropped)"]
    native = NATIVE_FORMATS[kind]
    if fmt == native:
        return []
    return [f"{where}: logicalTypeOptions.format {clip(repr(fmt))} is not enforced; "
            f"{kind} columns are read and stored as {native}: use that or remove format"]


def quality_problems(rules: Any, where: str, *, column: bool) -> list[str]:
    """Problems of a ``quality`` list; ``column`` is False for a schema object's own
    list (dativo checks no table-level rule)."""
    if not isinstance(rules, list):
        return []
    problems = []
    for k, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        at = f"{where}.quality[{k}]"
        unknown = [f"{at}: unknown quality key {clip(str(key))!r}"
                   f"{_did_you_mean(str(key), QUALITY_KEYS)}"
                   for key in rule if key not in QUALITY_KEYS]
        # A misspelt validValues list is reported once, as the unknown key.
        problems.extend(unknown or _unenforced_rule(rule, at, column=column))
    return problems


def _unenforced_rule(rule: dict[str, Any], at: str, *, column: bool) -> list[str]:
    kind = rule.get("type", "library")
    keep = "remove it, or make it type: text to keep it as documentation"
    if kind == "text":
        return []
    if kind != "library":
        return [f"{at}: quality type {clip(repr(kind))} is not run by dativo; {keep}"]
    name = rule.get("rule")
    if not column or name not in ENFORCED_QUALITY_RULES:
        what = "table-level rules are" if not column else f"rule {clip(repr(name))} is"
        hint = _did_you_mean(str(name), ENFORCED_QUALITY_RULES) if column else ""
        return [f"{at}: {what} not enforced by dativo{hint} (it enforces "
                f"{', '.join(ENFORCED_QUALITY_RULES)} on columns; required, "
                f"logicalTypeOptions and primaryKey cover the rest); {keep}"]
    values = rule.get("validValues", rule.get("mustBe"))
    if not isinstance(values, list) or not values:
        return [f"{at}: rule validValues needs a non-empty list in validValues "
                "(or mustBe)"]
    return []


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
