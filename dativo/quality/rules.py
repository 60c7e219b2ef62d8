"""A contract's ODCS ``quality`` lists as :class:`QualityRule` values, and their lint.

Both forms of the standard are read: v3.0.2 (``type: library`` with ``rule:`` rowCount,
duplicateCount, nullCheck/nullValues, validValues, uniqueCheck; ``type: sql`` with
``query``) and v3.1 (``metric:`` nullValues, missingValues, invalidValues,
duplicateValues, rowCount, with ``arguments``). Each is reduced to one canonical
*metric* whose measured number is compared with one :class:`Threshold`, so the
measuring (:mod:`dativo.quality.measure`) knows five metrics plus SQL.

One reader serves the lint and the loader: :func:`read_quality` returns the rules and
the problems, so a rule the lint accepts is exactly a rule the target runs. A column's
``validValues`` rule without a numeric comparison stays a *row* rule (the validator
rejects each record outside the list, as before); with one (``mustBeLessThan: 5``) it
is measured like v3.1 ``invalidValues``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dativo.quality.thresholds import COMPARISONS, RANGES, Threshold
from dativo.schema_messages import clip

Metric = Literal["rowCount", "nullValues", "missingValues", "invalidValues",
                 "duplicateValues", "sql"]
Scope = Literal["run", "table"]
Unit = Literal["rows", "percent"]

V30_RULES: dict[str, Metric] = {
    "rowCount": "rowCount", "duplicateCount": "duplicateValues", "nullCheck": "nullValues",
    "nullValues": "nullValues", "validValues": "invalidValues",
    "uniqueCheck": "duplicateValues"}
"""ODCS v3.0.2 ``rule:`` names and the metric each measures."""
V31_METRICS: tuple[Metric, ...] = ("nullValues", "missingValues", "invalidValues",
                                   "duplicateValues", "rowCount")
"""ODCS v3.1 ``metric:`` names."""
IMPLIED_ZERO = ("nullCheck", "uniqueCheck")
"""Rules that are checks rather than counts: without a comparison they mean ``mustBe: 0``."""
COLUMN_METRICS: tuple[Metric, ...] = ("nullValues", "missingValues", "invalidValues")
DEFAULT_SCOPE: dict[Metric, Scope] = {
    "rowCount": "run", "nullValues": "run", "missingValues": "run", "invalidValues": "run",
    "duplicateValues": "table", "sql": "table"}
"""Where a rule looks by default: the rows a commit adds (``run``) or the whole table
as the commit would leave it (``table``); duplicates of a key need the table."""
SCOPE_PROPERTY = "dativo.scope"
SEVERITIES = ("info", "warning", "error")
"""ODCS's example severities; only ``error`` blocks. Other words are allowed (ODCS
leaves severity open), but a near miss of one of these is a lint problem."""
QUALITY_KEYS = frozenset({
    "rule", "metric", "arguments", "type", "name", "description", "dimension", "method",
    "severity", "businessImpact", "unit", "tags", "customProperties",
    "authoritativeDefinitions", "schedule", "scheduler", "validValues", *COMPARISONS,
    "query", "engine", "implementation"})
"""Every key an ODCS v3.0.2/v3.1 quality entry may have (all types)."""
ARGUMENTS: dict[Metric, tuple[str, ...]] = {
    "missingValues": ("missingValues",), "invalidValues": ("validValues", "pattern"),
    "duplicateValues": ("properties",)}
_WRITES = re.compile(
    r"\b(insert|update|delete|drop|create|alter|copy|attach|detach|install|load|pragma|"
    r"export|import|checkpoint|vacuum|truncate|merge|grant|revoke)\b", re.IGNORECASE)
STRINGS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


@dataclass(frozen=True, slots=True)
class QualityRule:
    """One measurable rule: a metric over a column (or columns, or the table) compared
    with a threshold, plus the ODCS context carried into every result."""

    name: str
    metric: Metric
    written: str  # the rule/metric as the contract names it (duplicateCount, ...)
    threshold: Threshold
    scope: Scope
    unit: Unit = "rows"
    column: str | None = None
    columns: tuple[str, ...] = ()  # duplicateValues over several columns (a key)
    valid_values: tuple[Any, ...] | None = None
    pattern: str | None = None
    missing_values: tuple[Any, ...] | None = None
    query: str | None = None
    dimension: str | None = None
    severity: str | None = None
    business_impact: str | None = None

    @property
    def blocking(self) -> bool:
        """Whether a failure blocks the commit in ``strict`` mode (``severity: error``)."""
        return (self.severity or "").strip().lower() == "error"

    def threshold_text(self) -> str:
        return self.threshold.text(self.unit)


def read_quality(entries: Any, where: str, *, column: str | None,
                 columns: Sequence[str] = (), primary_key: Sequence[str] = ()
                 ) -> tuple[list[QualityRule], list[str]]:
    """The rules of one ``quality`` list and its problems (each starting with ``where``).

    ``column`` is the property the list belongs to (``None``: the schema object's own
    list); ``columns`` and ``primary_key`` are the object's, for schema-level duplicates.
    """
    rules: list[QualityRule] = []
    problems: list[str] = []
    if not isinstance(entries, list):
        return rules, problems
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        at = f"{where}.quality[{k}]"
        unknown = [f"{at}: unknown quality key {clip(str(key))!r}"
                   f"{did_you_mean(str(key), QUALITY_KEYS)}"
                   for key in entry if key not in QUALITY_KEYS]
        if unknown:  # a misspelt key is reported once, as the unknown key
            problems.extend(unknown)
            continue
        reader = _Entry(entry, at, column, tuple(columns), tuple(primary_key), k)
        rule = reader.read()
        problems.extend(reader.problems)
        if rule is not None and not reader.problems:
            rules.append(rule)
    return rules, problems


def row_valid_values(entry: Any) -> tuple[Any, ...] | None:
    """The list of a column's ``validValues`` *row* rule (no numeric comparison): the
    validator rejects each record outside it; ``None`` for any other entry."""
    if not isinstance(entry, dict) or entry.get("type", "library") != "library":
        return None
    if entry.get("rule") != "validValues" or "metric" in entry:
        return None
    if any(key in entry for key in COMPARISONS if key != "mustBe"):
        return None
    values = entry.get("validValues", entry.get("mustBe"))
    if "validValues" in entry and "mustBe" in entry:
        return None  # validValues + mustBe: N is a measured rule
    return tuple(values) if isinstance(values, list) else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def sql_problem(query: Any, *, column: str | None) -> str | None:
    """Why ``query`` cannot run as a read-only rule, or ``None``: one SELECT (or WITH)
    statement over ``{object}``, writing nothing (the measuring re-checks it with
    DuckDB's own parser and runs it on a connection that holds nothing else)."""
    if not isinstance(query, str) or not query.strip():
        return "a sql rule needs query: SELECT ... FROM {object} ..."
    if "{object}" not in query:
        return ("the query must read the table as {object} (e.g. SELECT COUNT(*) FROM "
                "{object} WHERE ...); dativo substitutes the rows it checks")
    if "{property}" in query and column is None:
        return "{property} only applies to a property's quality list; name the column"
    bare = STRINGS.sub("''", COMMENTS.sub(" ", query)).strip().rstrip(";").strip()
    if ";" in bare:
        return "the query must be a single statement (no ';' between statements)"
    if not re.match(r"(select|with|from)\b", bare, re.IGNORECASE):
        return "the query must be a SELECT (or WITH ... SELECT) returning one number"
    word = _WRITES.search(bare)
    if word is not None:
        return (f"the query must only read, but it contains {word.group(0).upper()}; "
                "write it as one SELECT returning a number")
    return None


class _Entry:
    """Reads one quality entry, collecting its problems (each names ``at``)."""

    def __init__(self, entry: dict[str, Any], at: str, column: str | None,
                 columns: tuple[str, ...], primary_key: tuple[str, ...], index: int) -> None:
        self.entry, self.at, self.column = entry, at, column
        self.columns, self.primary_key, self.index = columns, primary_key, index
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.at}: {text}")

    def read(self) -> QualityRule | None:
        kind = self.entry.get("type", "library")
        if kind == "text":
            return None
        if kind == "sql":
            return self._sql()
        if kind != "library":
            self.problem(f"quality type {clip(repr(kind))} is not run by dativo (it runs "
                         "library and sql rules); remove it, or make it type: text to keep "
                         "it as documentation")
            return None
        return self._library()

    def _library(self) -> QualityRule | None:
        entry = self.entry
        if "metric" in entry and "rule" in entry:
            self.problem("set metric (ODCS v3.1) or rule (v3.0), not both")
            return None
        written = entry.get("metric", entry.get("rule"))
        known = V31_METRICS if "metric" in entry else tuple(V30_RULES)
        key = "metric" if "metric" in entry else "rule"
        if written is None:
            self.problem(f"a library rule needs metric: one of {', '.join(V31_METRICS)} "
                         f"(or the v3.0 rule: one of {', '.join(V30_RULES)})")
            return None
        if written not in known:
            self.problem(f"unknown {key} {clip(repr(written))}"
                         f"{did_you_mean(str(written), known)} (known: {', '.join(known)})")
            return None
        if key == "rule" and row_valid_values(entry) is not None:
            if not row_valid_values(entry):
                self.problem("rule validValues needs a non-empty list in validValues "
                             "(or mustBe)")
            return None  # a row rule: the validator applies it to each record
        metric: Metric = V30_RULES[written] if key == "rule" else written
        threshold = self._threshold(written)
        unit = self._unit(metric)
        scope = self._scope(metric)
        placed = self._placement(metric, written)
        args = self._arguments(metric, written)
        if threshold is None or unit is None or scope is None or not placed or args is None:
            return None
        return QualityRule(
            name=self._name(written), metric=metric, written=str(written),
            threshold=threshold, scope=scope, unit=unit, column=self.column,
            columns=args.get("columns", ()), valid_values=args.get("valid_values"),
            pattern=args.get("pattern"), missing_values=args.get("missing_values"),
            **self._context())

    def _sql(self) -> QualityRule | None:
        problem = sql_problem(self.entry.get("query"), column=self.column)
        if problem is not None:
            self.problem(problem)
        threshold = self._threshold("sql")
        unit = self._unit("sql")
        scope = self._scope("sql")
        if problem or threshold is None or unit is None or scope is None:
            return None
        return QualityRule(name=self._name("sql"), metric="sql", written="sql",
                           threshold=threshold, scope=scope, unit=unit, column=self.column,
                           query=str(self.entry["query"]), **self._context())

    def _name(self, written: str) -> str:
        name = self.entry.get("name")
        if isinstance(name, str) and name.strip():
            return name.strip()
        base = f"{self.column}.{written}" if self.column else str(written)
        return base if written != "sql" else f"{base}[{self.index}]"

    def _context(self) -> dict[str, str | None]:
        def text(key: str) -> str | None:
            value = self.entry.get(key)
            return None if value is None else str(value)
        severity = text("severity")
        if severity is not None and severity.strip().lower() not in SEVERITIES:
            close = difflib.get_close_matches(severity.strip().lower(), SEVERITIES, n=1,
                                              cutoff=0.7)
            if close:  # a misspelt "error" would silently never block
                self.problem(f"severity {clip(repr(severity))}: did you mean {close[0]!r}? "
                             "(only severity: error blocks a strict run)")
        return {"dimension": text("dimension"), "severity": severity,
                "business_impact": text("businessImpact")}

    def _threshold(self, written: str) -> Threshold | None:
        given = [key for key in COMPARISONS if key in self.entry]
        if len(given) > 1:
            self.problem(f"two comparisons ({', '.join(given)}); a rule is compared once: "
                         "keep one, or write two rules")
            return None
        if not given:
            if written in IMPLIED_ZERO:
                return Threshold("mustBe", 0.0)
            self.problem(f"{written} needs a comparison, e.g. mustBe: 0 or "
                         f"mustBeLessThan: 5 (one of {', '.join(COMPARISONS)})")
            return None
        key = given[0]
        value = self.entry[key]
        if key in RANGES:
            if (not isinstance(value, list) or len(value) != 2
                    or not all(_is_number(v) for v in value)):
                self.problem(f"{key} needs a list of two numbers, low first, e.g. "
                             f"{key}: [10, 100]")
                return None
            if value[0] > value[1]:
                self.problem(f"{key} [{value[0]}, {value[1]}]: the low bound comes first; "
                             f"write {key}: [{value[1]}, {value[0]}]")
                return None
            return Threshold(key, float(value[0]), float(value[1]))
        if not _is_number(value):
            self.problem(f"{key} needs a number, got {clip(repr(value))}; e.g. {key}: 0")
            return None
        return Threshold(key, float(value))

    def _unit(self, metric: Metric) -> Unit | None:
        unit = self.entry.get("unit", "rows")
        if unit not in ("rows", "percent"):
            self.problem(f"unit {clip(repr(unit))} is not rows or percent"
                         f"{did_you_mean(str(unit), ('rows', 'percent'))}")
            return None
        if unit == "percent" and metric in ("rowCount", "sql"):
            self.problem(f"unit percent does not apply to {metric} (a count of its own); "
                         "use unit: rows or remove unit")
            return None
        return unit  # type: ignore[no-any-return]

    def _scope(self, metric: Metric) -> Scope | None:
        scope: Scope = DEFAULT_SCOPE[metric]
        for custom in self.entry.get("customProperties") or []:
            if isinstance(custom, dict) and custom.get("property") == SCOPE_PROPERTY:
                value = custom.get("value")
                if value not in ("run", "table"):
                    self.problem(f"customProperties {SCOPE_PROPERTY} is "
                                 f"{clip(repr(value))}; write value: run (the rows each "
                                 "commit adds) or value: table (the whole table)")
                    return None
                scope = value
        return scope

    def _placement(self, metric: Metric, written: str) -> bool:
        if metric in COLUMN_METRICS and self.column is None:
            self.problem(f"{written} counts a column's values: put it in the quality list "
                         "of a property (schema[i].properties[j].quality)")
            return False
        if metric == "rowCount" and self.column is not None:
            self.problem("rowCount counts the table's rows: put it in the schema object's "
                         "own quality list (schema[i].quality)")
            return False
        return True

    def _arguments(self, metric: Metric, written: str) -> dict[str, Any] | None:
        """The metric's arguments (v3.1 ``arguments``; v3.0 ``validValues`` at the top)."""
        args = self.entry.get("arguments", {})
        if not isinstance(args, dict):
            self.problem("arguments must be a mapping, e.g. arguments: {validValues: [a, b]}")
            return None
        allowed = ARGUMENTS.get(metric, ())
        for key in args:
            if key not in allowed:
                self.problem(f"unknown argument {clip(repr(str(key)))} for {written}"
                             f"{did_you_mean(str(key), allowed)} (it takes: "
                             f"{', '.join(allowed) or 'no arguments'})")
                return None
        if metric == "missingValues":
            values = args.get("missingValues")
            if not isinstance(values, list) or not values:
                self.problem("missingValues needs arguments: {missingValues: [null, '', "
                             "'N/A']}, the values that count as missing")
                return None
            return {"missing_values": tuple(values)}
        if metric == "invalidValues":
            return self._valid_arguments(args, written)
        if metric == "duplicateValues":
            return self._key_columns(args)
        return {}

    def _valid_arguments(self, args: dict[str, Any], written: str) -> dict[str, Any] | None:
        values = args.get("validValues", self.entry.get("validValues"))
        pattern = args.get("pattern")
        if values is None and pattern is None:
            self.problem("rule validValues needs its list: validValues: [a, b]"
                         if written == "validValues" else
                         "invalidValues needs arguments: {validValues: [a, b]} or "
                         "arguments: {pattern: '^[A-Z]+$'}")
            return None
        if values is not None and (not isinstance(values, list) or not values):
            self.problem("validValues must be a non-empty list, e.g. validValues: [a, b]")
            return None
        if pattern is not None:
            try:
                re.compile(str(pattern))
            except re.error as exc:
                self.problem(f"pattern does not compile: {exc}")
                return None
        return {"valid_values": tuple(values) if values is not None else None,
                "pattern": None if pattern is None else str(pattern)}

    def _key_columns(self, args: dict[str, Any]) -> dict[str, Any] | None:
        names = args.get("properties")
        if names is None:
            if self.column is not None:
                return {"columns": (self.column,)}
            if not self.primary_key:
                self.problem("duplicates over the table need the columns that make a row "
                             "unique: arguments: {properties: [col_a, col_b]} (or a "
                             "primaryKey in the schema)")
                return None
            return {"columns": self.primary_key}
        if (not isinstance(names, list) or not names
                or not all(isinstance(n, str) for n in names)):
            self.problem("arguments.properties must be a list of column names, e.g. "
                         "properties: [tenant_id, order_id]")
            return None
        unknown = [n for n in names if self.columns and n not in self.columns]
        if unknown:
            self.problem(f"arguments.properties names {clip(repr(unknown[0]))}, which is no "
                         f"column of this object{did_you_mean(unknown[0], self.columns)}")
            return None
        return {"columns": tuple(names)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
