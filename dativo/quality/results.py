"""What a check produced: one :class:`CheckResult` per rule (or anomaly metric), and the
compact summary that goes into the commit's snapshot summary (``dativo.quality``).

A result is plain data so the quality table, the log line, the metrics and the CLI all
read the same thing; the gate (:mod:`dativo.quality.gate`) makes them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from dativo.quality.rules import QualityRule

Kind = Literal["rule", "anomaly", "drift", "profile"]
Outcome = Literal["pass", "fail", "flag", "info"]
SUMMARY_PROPERTY = "dativo.quality"
"""Snapshot-summary key of a commit's quality summary (counts per outcome and severity)."""


@dataclass(frozen=True)
class CheckResult:
    """One rule's (or metric's) outcome on one commit; a row of ``<table>__quality``."""

    rule: str  # the rule's id/name, else "<column>.<rule>" or "<rule>"
    kind: Kind
    scope: Literal["run", "table"]
    column: str | None
    dimension: str | None
    severity: str | None  # ODCS severity (error|warning|info...), None for profile
    business_impact: str | None
    measured: float | None
    threshold: str | None  # e.g. "mustBeLessThan 5 percent"
    outcome: Outcome
    message: str


def rule_result(rule: QualityRule, measured: float | None, *, stream: str,
                table: str) -> CheckResult:
    """Compare ``measured`` with the rule's threshold; the message says what failed and
    what to do, so the WARNING line and the QualityError read the same."""
    passed = rule.threshold.passes(measured)
    shown = "no value" if measured is None else _number(measured)
    unit = "%" if rule.unit == "percent" else ""
    if passed:
        message = f"{rule.name}: {shown}{unit} meets {rule.threshold_text()}"
    else:
        message = (f"stream '{stream}', table {table}: quality rule {rule.name} "
                   f"({rule.written}, {rule.scope} scope) measured {shown}{unit}, which "
                   f"fails {rule.threshold_text()}; fix the data or the rule in the "
                   "contract and rerun")
    return CheckResult(rule=rule.name, kind="rule", scope=rule.scope, column=rule.column,
                       dimension=rule.dimension, severity=rule.severity,
                       business_impact=rule.business_impact, measured=measured,
                       threshold=rule.threshold_text(),
                       outcome="pass" if passed else "fail", message=message)


def quality_summary(results: Iterable[CheckResult]) -> str:
    """Compact JSON for the snapshot summary: ``{"pass": n, "fail": {"error": n, ...},
    ...}``, counts of outcomes, failures and flags split by severity."""
    counts: Counter[str] = Counter()
    by_severity: dict[str, Counter[str]] = {}
    for result in results:
        counts[result.outcome] += 1
        if result.outcome in ("fail", "flag"):
            by_severity.setdefault(result.outcome, Counter())[result.severity or "none"] += 1
    summary: dict[str, object] = {"pass": counts["pass"]}
    for outcome in ("fail", "flag"):
        summary[outcome] = dict(sorted(by_severity.get(outcome, Counter()).items()))
    if counts["info"]:
        summary["info"] = counts["info"]
    return json.dumps(summary, separators=(",", ":"))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"
