"""The result of one quality check, as the commit gate, the quality table and the CLI
share it (issue 16).

One :class:`CheckResult` is one row of ``<table>__quality`` (with the run id, snapshot
id and time the table adds): a rule's outcome, an anomaly flag, a drift record or a
profile metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class CheckResult:
    rule: str                 # the rule's id/name, else "<column>.<rule>" or "<rule>"
    kind: Literal["rule", "anomaly", "drift", "profile"]
    scope: Literal["run", "table"]
    column: str | None
    dimension: str | None
    severity: str | None      # ODCS severity (error|warning|info...), None for profile
    business_impact: str | None
    measured: float | None
    threshold: str | None     # e.g. "mustBeLessThan 5 percent", "median 1000 ± 3·MAD 12 over 20 loads"
    outcome: Literal["pass", "fail", "flag", "info"]
    message: str
