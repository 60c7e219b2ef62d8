"""The quality-rule row of ``make bench`` (issue 16): the 1M-record pipe with ten quality
rules on, against the same pipe without them, in one bench run.

Both runs feed the same events file to ``target-dativo-iceberg`` with the same settings;
only the contract differs. The ``target`` row uses ``events.odcs.yaml`` (no rules); this
row maps stream ``events`` to ``events_quality.odcs.yaml`` (the same columns plus ten
rules of every form) with ``stream_contracts``, so whatever else runs per table
(anomaly profiling, the dead-letter table) runs in both and the ratio is the rules'
cost alone. The goal: at most 15% more wall time.

A fast run whose rules never ran would pass that goal, so the row also checks
``events__quality``: every rule recorded on every commit, each a pass (the generated data
satisfies them all); anything else fails the row like a row-count mismatch.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from bench import TABLE_IDENTIFIER
from bench.measure import count_rows, measure
from bench.paired import slowdown_checks

if TYPE_CHECKING:
    from bench.report import Result

QUALITY_CONTRACT = "bench/perf/events_quality.odcs.yaml"  # under bench/contracts
RULES = 10
GOAL_QUALITY_SLOWDOWN = 1.15  # wall time with the rules / without, same run
LABEL = f"target-dativo-iceberg (pipe, {RULES} quality rules on)"
OFF_KEY, ON_KEY = "target", "target_quality"
# The gate's INFO line (dativo/quality/gate.py): its checks (rules and the anomaly
# profile every table gets) and their time, per commit.
GATE_LINE = re.compile(r"quality check\(s\) on bench\.perf\.events in ([0-9.]+)s")


class QualityRuns:
    """``Bench``'s quality row, a mixin as bench/mysql_tap.py's ``MySQLRuns``: it uses
    the runner's ``_dir``, ``_target``, ``events``, ``env`` and ``timeout``."""

    events: Path
    env: dict[str, str]
    timeout: float
    _gate_seconds: dict[str, list[float]] | None = None

    def _dir(self, key: str) -> Path:  # provided by Bench
        raise NotImplementedError

    def _target(self, run_dir: Path, **settings: object) -> list[str]:  # provided by Bench
        raise NotImplementedError

    def target_quality(self, result: Result) -> None:
        """The pipe of the ``target`` row with the ten-rule contract."""
        run_dir = self._dir("target-quality")
        cmd = self._target(run_dir, stream_contracts={"events": QUALITY_CONTRACT})
        result.seconds, result.peak_rss = measure(
            cmd, stdin=self.events, run_dir=run_dir, env=self.env, timeout=self.timeout)
        result.rows, result.dead_letter_rows = count_rows(run_dir)
        problem = quality_problem(run_dir)
        if problem is not None:
            result.error = problem
        if self._gate_seconds is None:  # the `target` rows ran before (RUN_NAMES order)
            off = [d for d in run_dir.parent.glob("target-*")
                   if not d.name.startswith(("target-quality-", "target-orders-"))]
            self._gate_seconds = {"on": [], "off": [s for d in off for s in gate_seconds(d)]}
        self._gate_seconds["on"] += gate_seconds(run_dir)
        # One dict for every sample, so the median one that is kept sees them all.
        result.gate_seconds = self._gate_seconds


def gate_seconds(run_dir: Path) -> list[float]:
    """The commit gate's seconds on ``events`` in one run, from its INFO lines."""
    text = (run_dir / "stderr.log").read_text(encoding="utf-8", errors="replace")
    return [float(s) for s in GATE_LINE.findall(text)]


def quality_problem(warehouse: Path) -> str | None:
    """Why ``events__quality`` does not show the ten rules passing on every commit of
    ``events``, or None when it does."""
    from pyiceberg.catalog import load_catalog
    from pyiceberg.exceptions import NoSuchTableError

    catalog = load_catalog("bench", type="sql", uri=f"sqlite:///{warehouse / 'catalog.db'}",
                           warehouse=warehouse.as_uri())
    name = (*TABLE_IDENTIFIER[:-1], TABLE_IDENTIFIER[-1] + "__quality")
    try:
        rows = catalog.load_table(name).scan(
            selected_fields=("snapshot_id", "rule", "outcome", "kind")).to_arrow().to_pylist()
    except NoSuchTableError:
        rows = []
    results = [r for r in rows if r["kind"] == "rule"]  # not profile, anomaly or drift rows
    if not results:
        return (f"no rule results in {'.'.join(name)}: the quality rules of "
                f"{QUALITY_CONTRACT} did not run (see the run's stderr.log)")
    snapshots = {r["snapshot_id"] for r in results if r["snapshot_id"] is not None}
    rules = {r["rule"] for r in results}
    failed = sorted({r["rule"] for r in results if r["outcome"] != "pass"})
    if len(rules) != RULES or not snapshots or len(results) != RULES * len(snapshots):
        return (f"{'.'.join(name)} holds {len(results)} rule results of {len(rules)} rules "
                f"over {len(snapshots)} commits; expected {RULES} per commit")
    if failed:
        return f"quality rules failed on the generated data: {', '.join(failed)}"
    return None


def quality_checks(done: dict[str, Result]) -> list[str]:
    """The rules-on run against the rules-off run of the same bench run: wall time (the
    goal) and peak RSS (info)."""
    on = done.get(ON_KEY)
    lines = slowdown_checks(done, OFF_KEY, ON_KEY, LABEL, GOAL_QUALITY_SLOWDOWN,
                            ("the same pipe without them", "the run without them"))
    return [*lines, *_gate_lines(on)] if lines and on is not None else lines


def _gate_lines(on: Result) -> list[str]:
    """The commit gate's median time with the rules and without (the anomaly profile,
    in both runs): what the rules cost, apart from the noise of the rest of the run."""
    gate = on.gate_seconds or {}
    if not gate.get("on") or not gate.get("off"):
        return []
    with_rules, without = statistics.median(gate["on"]), statistics.median(gate["off"])
    return [f"- info: {LABEL}: the commit gate took {with_rules:.2f} s with the rules, "
            f"{without:.2f} s without (the anomaly profile, in both; median per run), so the "
            f"rules cost {with_rules - without:.2f} s"]

