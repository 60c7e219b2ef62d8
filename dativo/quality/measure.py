"""Measure quality rules in DuckDB over Arrow: one query for all library rules of a
relation, one per ``type: sql`` rule, with no per-row Python.

A relation is an Arrow ``RecordBatchReader`` made on demand (:data:`Rows`): the rows a
commit adds, or the table as the commit would leave it. Each query gets a fresh reader
(a reader is read once) on its own DuckDB connection that holds that one relation and
nothing else, with file access and extension loading off: a contract's SQL can read
the rows it is given and nothing more. Every query runs under a time limit
(``quality_sql_timeout_seconds``): a :class:`threading.Timer` interrupts DuckDB.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dativo.errors import ConfigError
from dativo.quality.rules import QualityRule, sql_problem

if TYPE_CHECKING:
    import pyarrow as pa

RELATION = "dativo_rows"
"""The name ``{object}`` becomes in a sql rule."""
Rows = Callable[[Sequence[str] | None], "pa.RecordBatchReader"]
"""Makes a fresh reader of a relation's rows, projected to the columns named (``None``:
every column)."""
_CONFIG = {"enable_external_access": False, "autoinstall_known_extensions": False,
           "autoload_known_extensions": False, "threads": 2}


@dataclass(frozen=True)
class Measured:
    """A rule's measured value, or why there is none (``error``: the query was stopped
    or failed), so the result can say what happened instead of a bare failure."""

    value: float | None
    error: str | None = None


def measure(rules: Sequence[QualityRule], rows: Rows, *, timeout: float
            ) -> list[Measured]:
    """Each rule's measured value over ``rows``, in the order of ``rules``.

    Raises:
        ConfigError: A sql rule is not one read-only SELECT, or returns no number.
    """
    out: dict[int, Measured] = {}
    library = [(i, r) for i, r in enumerate(rules) if r.metric != "sql"]
    if library:
        needed = sorted({c for _, r in library for c in _columns(r)})
        reader = rows(needed or None)
        values = _run(reader, _library_query([r for _, r in library]), timeout)
        for (i, _), value in zip(library, values.row if values.row else (), strict=False):
            out[i] = Measured(_number(value, rules[i]))
        if values.error:
            out.update({i: Measured(None, values.error) for i, _ in library})
    for i, rule in enumerate(rules):
        if rule.metric == "sql":
            result = _run(rows(None), _sql_query(rule), timeout)
            first = result.row[0] if result.row else None
            out[i] = Measured(None, result.error) if result.error else Measured(
                _number(first, rule))
    return [out[i] for i in range(len(rules))]


@dataclass(frozen=True)
class _Outcome:
    row: tuple[Any, ...] | None
    error: str | None = None


def _run(reader: pa.RecordBatchReader, query: str, timeout: float) -> _Outcome:
    """``query`` over ``reader`` (as :data:`RELATION`), stopped after ``timeout`` s."""
    import duckdb

    con = duckdb.connect(config=_CONFIG)
    try:
        con.register(RELATION, reader)
        con.execute("SET lock_configuration = true")
        timer = threading.Timer(timeout, con.interrupt)
        timer.start()
        try:
            return _Outcome(con.execute(query).fetchone())
        except duckdb.InterruptException:
            return _Outcome(None, f"stopped after quality_sql_timeout_seconds={timeout:g}; "
                                  "make the query cheaper or raise that setting")
        except duckdb.Error as exc:
            return _Outcome(None, f"the query failed in DuckDB: {str(exc).splitlines()[0]}")
        finally:
            timer.cancel()
    finally:
        con.close()
        reader.close()


def _library_query(rules: Sequence[QualityRule]) -> str:
    return f"SELECT {', '.join(_expression(r) for r in rules)} FROM {RELATION}"


def _expression(rule: QualityRule) -> str:
    """The aggregate measuring one library rule (a count, or a percent of the rows)."""
    if rule.metric == "rowCount":
        return "count(*)"
    column = quote(rule.column) if rule.column else None
    if rule.metric == "nullValues":
        count = f"count(*) FILTER (WHERE {column} IS NULL)"
    elif rule.metric == "missingValues":
        count = f"count(*) FILTER (WHERE {_in_list(column, rule.missing_values or ())})"
    elif rule.metric == "invalidValues":
        valid = []
        if rule.valid_values is not None:
            valid.append(_in_list(column, rule.valid_values))
        if rule.pattern is not None:
            valid.append(f"regexp_full_match(CAST({column} AS VARCHAR), "
                         f"{literal(rule.pattern)})")
        count = (f"count(*) FILTER (WHERE {column} IS NOT NULL AND NOT "
                 f"coalesce({' AND '.join(valid)}, false))")
    else:  # duplicateValues: rows beyond the first of each value (nulls aside)
        keys = [quote(c) for c in rule.columns]
        count = (f"count({keys[0]}) - count(DISTINCT {keys[0]})" if len(keys) == 1 else
                 f"count(*) - count(DISTINCT ({', '.join(keys)}))")
    if rule.unit == "percent":
        return f"CASE WHEN count(*) = 0 THEN 0 ELSE 100.0 * ({count}) / count(*) END"
    return count


def _in_list(column: str | None, values: Sequence[Any]) -> str:
    """Whether ``column`` is one of ``values``; a YAML list mixes types (``[null, '',
    0]``), so strings compare as text, numbers as numbers and null as IS NULL."""
    tests = []
    if any(v is None for v in values):
        tests.append(f"{column} IS NULL")
    texts = [literal(str(v).lower() if isinstance(v, bool) else str(v))
             for v in values if isinstance(v, (str, bool))]
    if texts:
        tests.append(f"CAST({column} AS VARCHAR) IN ({', '.join(texts)})")
    numbers = [repr(float(v)) for v in values
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if numbers:
        tests.append(f"TRY_CAST({column} AS DOUBLE) IN ({', '.join(numbers)})")
    return f"({' OR '.join(tests) or 'false'})"


def _sql_query(rule: QualityRule) -> str:
    """The rule's query with ``{object}`` and ``{property}`` substituted, checked to be
    one SELECT by DuckDB's own parser.

    Raises:
        ConfigError: It is not (the lint refuses such a contract first).
    """
    import duckdb

    problem = sql_problem(rule.query, column=rule.column)
    query = str(rule.query).replace("{object}", RELATION)
    if rule.column is not None:
        query = query.replace("{property}", quote(rule.column))
    if problem is None:
        try:
            statements = duckdb.extract_statements(query)
        except duckdb.Error as exc:
            problem = f"it does not parse: {str(exc).splitlines()[0]}"
        else:
            if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
                problem = "it must be a single SELECT statement"
    if problem is not None:
        raise ConfigError(f"quality rule {rule.name}: {problem}")
    return query


def _columns(rule: QualityRule) -> tuple[str, ...]:
    return rule.columns or ((rule.column,) if rule.column else ())


def _number(value: Any, rule: QualityRule) -> float | None:
    """A query's value as a float (a boolean is 1 or 0).

    Raises:
        ConfigError: The value is not a number (a sql rule must return one).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"quality rule {rule.name}: the query returned {str(value)[:40]!r}, "
                          "not a number; make it return one count or ratio") from None
    return None if math.isnan(number) else number


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
