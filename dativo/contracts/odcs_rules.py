"""Which contract rules dativo enforces, and lint problems for the ones it would drop.

The ODCS JSON Schema accepts options dativo does not check (``multipleOf``), and, on a
column with no ``logicalType``, any ``logicalTypeOptions`` key at all. Loading such a
contract used to succeed and the rule was silently not applied; a contract is a promise
about the data, so every option that would not be enforced is a lint problem here, with
the closest known name when it looks like a typo. Quality rules are read and linted by
:mod:`dativo.quality.rules` (the same reader the target runs them from); ``type: text``
entries are documentation and stay allowed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any, get_args

from dativo.contracts.model import FieldKind, StringFormat
from dativo.quality import rules
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
QUALITY_KEYS = rules.QUALITY_KEYS
"""Every key an ODCS v3.0.2/v3.1 quality entry may have (all types)."""


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


def quality_problems(entries: Any, where: str, *, column: str | None,
                     columns: Sequence[str] = (), primary_key: Sequence[str] = ()
                     ) -> list[str]:
    """Problems of a ``quality`` list (:func:`dativo.quality.rules.read_quality`):
    ``column`` is the property it belongs to, ``None`` for a schema object's own list."""
    return rules.read_quality(entries, where, column=column, columns=columns,
                              primary_key=primary_key)[1]


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
