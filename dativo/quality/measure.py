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
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dativo.errors import ConfigError
from dativo.quality.rules import COMMENTS, STRINGS, QualityRule, sql_problem

if TYPE_CHECKING:
    import pyarrow as pa

RELATION = "dativo_rows"
"""The name ``{object}`` becomes in a sql rule."""
Rows = Callable[[Sequence[str] | None], "pa.RecordBatchReader"]
"""Makes a fresh reader of a relation's rows, projected to the columns named (``None``:
every column; an empty list: any one column, for a bare row count)."""
WORKERS = 2
"""Quality queries run at once: the gate runs on the commit thread while the other
threads are mostly idle, and DuckDB's own threads are capped at 2 per query."""
_CONFIG = {"enable_external_access": False, "autoinstall_known_extensions": False,
           "autoload_known_extensions": False, "threads": 2}


@dataclass(frozen=True)
class Measured:
    """A rule's measured value, or why there is none (``error``: the query was stopped
    or failed), so the result can say what happened instead of a bare failure."""

    value: float | None
    error: str | None = None


def measure(rules: Sequence[QualityRule], rows: Rows, *, timeout: float,
            columns: Sequence[str] | None = None) -> list[Measured]:
    """Each rule's measured value over ``rows``, in the order of ``rules``
    (:func:`measure_all` with one relation)."""
    return measure_all([(rules, rows)], timeout=timeout, columns=columns)[0]


def measure_all(relations: Sequence[tuple[Sequence[QualityRule], Rows]], *, timeout: float,
                columns: Sequence[str] | None = None) -> list[list[Measured]]:
    """Each relation's rules measured: one query for its library rules, one per sql
    rule, all queries run :data:`WORKERS` at a time (DuckDB and the Parquet reads
    release the GIL). ``columns`` (the table's) lets a sql rule read only the columns
    its query names; without them it reads every column.

    Raises:
        ConfigError: A sql rule is not one read-only SELECT, or returns no number.
    """
    jobs: list[tuple[int, list[int], Callable[[], _Outcome]]] = []
    for k, (rules, rows) in enumerate(relations):
        library = [i for i, r in enumerate(rules) if r.metric != "sql"]
        if library:
            needed = sorted({c for i in library for c in _columns(rules[i])})
            query = _library_query([rules[i] for i in library])
            jobs.append((k, library, _job(rows, needed, query, timeout)))
        for i, rule in enumerate(rules):
            if rule.metric == "sql":
                query = _sql_query(rule)
                jobs.append((k, [i], _job(rows, _sql_columns(rule, columns), query, timeout)))
    out: list[dict[int, Measured]] = [{} for _ in relations]
    if len(jobs) == 1:
        outcomes = [jobs[0][2]()]
    else:
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="dativo-quality") as pool:
            outcomes = list(pool.map(lambda job: job[2](), jobs))
    for (k, indexes, _), outcome in zip(jobs, outcomes, strict=True):
        rules = relations[k][0]
        for n, i in enumerate(indexes):
            value = outcome.row[n] if outcome.row else None
            out[k][i] = (Measured(None, outcome.error) if outcome.error
                         else Measured(_number(value, rules[i])))
    return [[found[i] for i in range(len(rules))]
            for found, (rules, _) in zip(out, relations, strict=True)]


def _job(rows: Rows, columns: Sequence[str] | None, query: str, timeout: float
         ) -> Callable[[], _Outcome]:
    return lambda: _run(rows(columns), query, timeout)


def _sql_columns(rule: QualityRule, columns: Sequence[str] | None) -> list[str] | None:
    """The table columns a sql rule's query names (any word equal to a column name,
    quoted or not); ``None`` (every column) when it selects ``*`` or ``COLUMNS(...)``,
    or the table's columns are not known."""
    if columns is None:
        return None
    text = COMMENTS.sub(" ", str(rule.query)).replace("{property}", quote(rule.column or ""))
    text = re.sub(r"count\s*\(\s*\*\s*\)", " ", text, flags=re.IGNORECASE)
    quoted = {q.replace('""', '"').lower() for q in re.findall(r'"((?:[^"]|"")+)"', text)}
    text = STRINGS.sub("''", text)  # literals and quoted names out: 'n' names no column
    if "*" in text or re.search(r"\bcolumns\s*\(", text, re.IGNORECASE):
        return None
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", text)} | quoted
    return [c for c in columns if c.lower() in words]


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
