"""The commit gate: a stream's quality rules measured on a commit before it lands.

:class:`QualityGate` is what the target hands to
:meth:`dativo.iceberg.writer.IcebergWriter.commit_files` as ``gate``. The writer calls it
inside the commit's transaction with a :class:`CommitView` (the rows the commit adds,
and the table as the commit would leave it); the gate measures the rules of each scope
(:mod:`dativo.quality.measure`), compares them, logs one WARNING line per failure that
does not block, and either returns the snapshot-summary property ``dativo.quality`` or
raises :class:`~dativo.errors.QualityError`, which aborts the transaction. A commit that
lost a race is gated again on the new would-be snapshot, so :attr:`QualityGate.results`
always describes the commit that landed (or was blocked).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from dativo.errors import QualityError
from dativo.quality.load_profile import CommitStats
from dativo.quality.measure import Measured, Rows, measure_all
from dativo.quality.results import SUMMARY_PROPERTY, CheckResult, quality_summary, rule_result
from dativo.quality.rules import QualityRule

LOGGER = logging.getLogger(__name__)


class CommitView(Protocol):
    """What a gate may read of a commit in flight (implemented in :mod:`dativo.iceberg`)."""

    table: str
    """The table's dotted name."""
    run_rows: Rows
    """The rows this commit adds (``run`` scope)."""
    table_rows: Rows
    """Every row of the snapshot the commit would make (``table`` scope)."""
    same_rows: bool
    """Whether both are the same rows (the table's first commit of plain appends), so
    every rule is measured on one read."""
    hold: bool
    """Whether ``run_rows`` may keep a small commit's rows in memory for later reads
    (its first read then holds the columns every query needs); the gate clears it when
    it has no rules, as the anomaly profile alone reads each column once."""

    def stats(self) -> CommitStats:
        """The added files' row count, null counts and bounds (no row read)."""
        ...

    def schema_changes(self) -> list[tuple[str, str]]:
        """``(column, change)`` for the columns added or widened since the last snapshot."""
        ...


ExtraResults = Callable[[CommitView], Sequence[CheckResult]]
"""More results for the same commit (the anomaly profile and flags), gathered with the
rules' and recorded and summarised with them; see :meth:`QualityGate.gather`."""


@dataclass
class QualityGate:
    """Gates one stream's commits on its contract's rules; ``strict`` blocks a failed
    ``severity: error`` rule, and an anomaly flag when ``anomaly_blocks`` (the contract
    opts in); anything else is logged and recorded."""

    stream: str
    rules: tuple[QualityRule, ...]
    strict: bool
    timeout: float
    extra: ExtraResults | None = None
    columns: tuple[str, ...] | None = None
    """The table's columns, so a sql rule reads only those its query names."""
    anomaly_blocks: bool = False
    """The contract says ``anomaly: block``: in ``strict`` mode a flag blocks the commit."""
    results: list[CheckResult] = field(default_factory=list)
    """The results of the last gated commit (landed or blocked), for ``<table>__quality``."""

    def __call__(self, view: CommitView) -> dict[str, str]:
        """Check the commit in ``view``; return the summary property to commit with it.

        Raises:
            QualityError: ``strict`` and a ``severity: error`` rule failed.
            ConfigError: A sql rule cannot run (not one SELECT, or returns no number).
        """
        self.results = []
        started = time.monotonic()
        results = self.gather(view)
        self.results = results
        LOGGER.info("Stream '%s': %d quality check(s) on %s in %.2fs: %s", self.stream,
                    len(results), view.table, time.monotonic() - started,
                    quality_summary(results))
        blocking = [r for r, rule in zip(results, self.rules, strict=False)
                    if r.outcome == "fail" and self.strict and rule.blocking]
        if self.strict and self.anomaly_blocks:
            blocking += [r for r in results if r.kind == "anomaly" and r.outcome == "flag"]
        for result in results:
            if result.outcome in ("fail", "flag") and result not in blocking:
                self._warn(result, view.table)
        if blocking:
            more = (f" (and {len(blocking) - 1} more blocking failure(s))"
                    if len(blocking) > 1 else "")
            first = blocking[0]
            why = "a failed severity: error rule"
            message = first.message  # a rule's names its stream and table
            if first.kind == "anomaly":
                why = "an anomaly flag (the contract says anomaly: block)"
                message = f"stream '{self.stream}', table {view.table}: {message}"
            raise QualityError(
                f"{message}{more}. "
                f"validation_mode=strict blocks {why}: nothing of this commit was loaded "
                f"and no STATE after it was emitted; the results are in "
                f"{view.table}__quality",
                stream=self.stream, table=view.table, failures=tuple(blocking))
        return {SUMMARY_PROPERTY: quality_summary(results)}

    def _warn(self, result: CheckResult, table: str) -> None:
        """One WARNING per failure or flag that does not block."""
        if result.kind != "anomaly":
            LOGGER.warning("Quality %s (severity %s): %s", result.outcome,
                           result.severity or "none", result.message)
            return
        LOGGER.warning("Stream '%s', table %s: %s; an expected change needs nothing (the "
                       "band follows the new loads), and the results are in %s__quality",
                       self.stream, table, result.message, table)

    def gather(self, view: CommitView) -> list[CheckResult]:
        """Every result of one commit: the rules' (in contract order, measured once per
        scope), then :attr:`extra`'s (the anomaly profile and flags, when wired)."""
        measured: dict[int, Measured] = {}
        if not self.rules:
            view.hold = False  # one read: holding would only cost memory
            scopes = []
        elif view.same_rows:
            scopes = [(list(range(len(self.rules))), view.run_rows)]
        else:
            scopes = [(chosen, rows) for scope, rows in (("run", view.run_rows),
                                                         ("table", view.table_rows))
                      if (chosen := [i for i, r in enumerate(self.rules)
                                     if r.scope == scope])]
        values = measure_all([([self.rules[i] for i in chosen], rows) for chosen, rows in scopes],
                             timeout=self.timeout, columns=self.columns) if scopes else []
        for (chosen, _), found in zip(scopes, values, strict=True):
            measured.update(zip(chosen, found, strict=True))
        results = []
        for i, rule in enumerate(self.rules):
            result = rule_result(rule, measured[i].value, stream=self.stream, table=view.table)
            if measured[i].error:
                result = _with_error(result, measured[i].error or "")
            results.append(result)
        if self.extra is not None:
            results.extend(self.extra(view))
        return results


def _with_error(result: CheckResult, error: str) -> CheckResult:
    """A rule whose query was stopped or failed: it fails, saying why."""
    return replace(result, outcome="fail", measured=None,
                   message=result.message.replace("measured no value",
                                                  f"was not measured ({error})"))
