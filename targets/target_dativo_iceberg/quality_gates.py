"""Each table's quality gate, and the record of its results in ``<table>__quality``.

Every Iceberg data table of a run gets one :class:`~dativo.quality.gate.QualityGate`,
handed to every commit of the table
(:meth:`dativo.iceberg.writer.IcebergWriter.commit_files`): the contract's quality rules
(:attr:`dativo.contracts.Contract.quality`, maybe none), plus, with no configuration,
the anomaly profile of the commit and its flags (:meth:`QualityGates.gather_anomaly_results`)
and the schema drift the run saw (:mod:`target_dativo_iceberg.quality_drift`).
Dead-letter and ``__quality`` tables are never gated, nor Markdown-KV tables (they
hold documents, not the contract's columns).

The anomaly history of a table (its ``kind = 'profile'`` rows in ``<table>__quality``)
is read once per run, on the table's first commit, and each landed commit's profile is
appended to it in memory. After the commit, the gate's results are appended to
``<table>__quality`` with the new snapshot id; after a blocked commit, with a null
snapshot id, so the failures that stopped the run can be read there. Every result is
also counted in ``dativo_quality_checks_total``.

Runs on the loader's single commit thread, so nothing is locked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dativo import metrics
from dativo.errors import DativoError
from dativo.iceberg.naming import QUALITY_SUFFIX, RUN_ID_PROPERTY
from dativo.quality.anomaly import REJECT_RATIO, ROW_COUNT, flags, profile_results
from dativo.quality.gate import CommitView, QualityGate
from dativo.quality.load_profile import connection, distinct_estimates, load_profile
from dativo.quality.results import CheckResult
from target_dativo_iceberg.destinations import Destination, IcebergDestination
from target_dativo_iceberg.quality_drift import drift_results
from target_dativo_iceberg.settings import TargetSettings
from target_dativo_iceberg.sinks import StreamSink, StreamStats
from target_dativo_iceberg.staged_tables import staged_name

if TYPE_CHECKING:
    import duckdb
    from pyiceberg.table import Table

    from dativo.contracts import Contract
    from dativo.iceberg.writer import IcebergWriter

LOGGER = logging.getLogger(__name__)
GAUGED_PROFILE = (ROW_COUNT, REJECT_RATIO)
"""Profile metrics exported as ``dativo_quality_measured_value``: per-column ones
would make the labels as many as the columns, so they stay in the quality table."""


@dataclass
class _Tracked:
    gate: QualityGate
    contract: Contract
    stream: str
    history: Table | None = None  # <table>__quality, once loaded or created
    profiles: list[dict[str, float]] | None = None  # earlier loads' profiles, oldest first
    rejects_seen: int = 0  # the stream's rejects when the table last committed
    pending: dict[str, float] | None = None  # the gated commit's profile, until it lands
    drift_seen: set[str] = field(default_factory=set)  # drift messages recorded this run
    pending_drift: list[str] = field(default_factory=list)


class QualityGates:
    """The gates of a run's tables, by table name, and their quality tables."""

    def __init__(self, settings: TargetSettings, run_id: str,
                 writer: Future[IcebergWriter], stats: Mapping[str, StreamStats] | None = None,
                 labels: Mapping[str, str] | None = None) -> None:
        """``stats``: the committer's per-stream counts (rejects for the reject ratio,
        schema drift); ``labels``: the run's metric labels (plugin, tenant)."""
        self.settings = settings
        self.run_id = run_id
        self._writer = writer
        self._stats = stats if stats is not None else {}
        self._labels = dict(labels or {"plugin": "target-dativo-iceberg",
                                       "tenant": settings.tenant_id})
        self._tables: dict[str, _Tracked] = {}
        self._skipped: set[str] = set()
        self._duckdb: duckdb.DuckDBPyConnection | None = None  # one per run, on first use
        self.blocked = False  # a commit was blocked: salvage commits nothing more

    def track(self, sink: StreamSink, stream: str, destination: Destination) -> None:
        """Gate the commits of ``sink.table`` (an Iceberg data table)."""
        if sink.table is None:
            return
        if not sink.contract.quality and not self.settings.anomaly_detection:
            return  # nothing to check: the table's commits stay plain appends
        name = staged_name(sink.table)
        if name in self._tables:
            tracked = self._tables[name]
            tracked.gate.columns = tuple(sink.table_schema.names)  # may evolve
            tracked.contract = sink.contract
            return
        if not isinstance(destination, IcebergDestination):
            if sink.contract.quality and stream not in self._skipped:
                self._skipped.add(stream)
                LOGGER.warning("Stream '%s': the contract's quality rules are not run with "
                               "format markdown_kv (its table holds documents, not the "
                               "contract's columns)", stream)
            return
        gate = QualityGate(stream, sink.contract.quality,
                           strict=self.settings.validation_mode == "strict",
                           timeout=self.settings.quality_sql_timeout_seconds,
                           extra=self.gather_anomaly_results,
                           columns=tuple(sink.table_schema.names),
                           anomaly_blocks=sink.contract.anomaly_blocks)
        self._tables[name] = _Tracked(gate, sink.contract, stream)

    def gather_anomaly_results(self, view: CommitView) -> Sequence[CheckResult]:
        """The commit's profile (``kind="profile"``), its flags against the table's
        earlier loads (``kind="anomaly"``, :func:`dativo.quality.anomaly.flags`) and the
        schema drift not yet recorded this run (``kind="drift"``). A commit that adds no
        rows (a version activation alone) is no load and gets no profile."""
        tracked = self._tables.get(view.table)
        if tracked is None:
            return ()
        drift = drift_results(view, tracked.stream, tracked.contract,
                              self._stats.get(tracked.stream), self.settings.schema_evolution,
                              tracked.drift_seen)
        tracked.pending_drift = [r.message for r in drift]
        tracked.pending = None
        if not self.settings.anomaly_detection:
            return drift
        try:
            stats = view.stats()
            if not stats.rows:
                return drift
            if self._duckdb is None:
                self._duckdb = connection()
            distinct = distinct_estimates(view.run_rows, stats.scalar, rows=stats.rows,
                                          con=self._duckdb)
        except Exception as exc:  # the profile comes with no configuration: whatever
            # stops it (a column type DuckDB cannot hash, say) must not stop a load that
            # has no rule of the user's against it
            LOGGER.warning("Table %s: this load's anomaly profile could not be measured "
                           "(%s: %s); it is loaded unprofiled, and no anomaly is flagged "
                           "for it", view.table, type(exc).__name__, exc)
            return drift
        current = load_profile(stats, distinct, max(0, self._rejected(tracked)
                                                    - tracked.rejects_seen))
        tracked.pending = current
        s = self.settings
        found = flags(current, self._profiles(tracked, view.table), k=s.anomaly_k,
                      window=s.anomaly_window, min_loads=s.anomaly_min_loads)
        return [*profile_results(current), *found, *drift]

    def _rejected(self, tracked: _Tracked) -> int:
        stats = self._stats.get(tracked.stream)
        return stats.rejected if stats is not None else 0

    def _profiles(self, tracked: _Tracked, table: str) -> list[dict[str, float]]:
        """The table's earlier loads' profiles: read from ``<table>__quality`` once per
        run. A history that cannot be read is a WARNING and an empty history (no flags
        this run), not a failed load."""
        if tracked.profiles is None:
            from dativo.iceberg.quality_record import existing_quality_table
            from dativo.iceberg.quality_table import profiles

            try:
                if tracked.history is None:  # not created here: record() creates it with rows
                    tracked.history = existing_quality_table(self._writer.result(),
                                                             tracked.contract)
                tracked.profiles = ([] if tracked.history is None else
                                    profiles(tracked.history, last=self.settings.anomaly_window))
            except (DativoError, OSError) as exc:
                LOGGER.warning("Table %s: the anomaly history in %s%s cannot be read (%s); "
                               "this run's loads are recorded but not compared with it",
                               table, table, QUALITY_SUFFIX, exc)
                tracked.profiles = []
        return tracked.profiles

    def gated(self, table: str) -> bool:
        return table in self._tables

    def gate(self, table: str) -> QualityGate | None:
        tracked = self._tables.get(table)
        return tracked.gate if tracked is not None else None

    def record(self, table: str, snapshot_id: int | None) -> None:
        """Append the last gated commit's results to ``<table>__quality`` (``snapshot_id``
        ``None``: the commit was blocked), count them in the metrics, and add a landed
        commit's profile to the table's history."""
        tracked = self._tables.get(table)
        if tracked is None or not tracked.gate.results:
            return
        if snapshot_id is None:
            self.blocked = True
        else:
            self._landed(tracked)
        from dativo.iceberg.quality_record import record_quality
        from dativo.iceberg.quality_table import quality_rows

        results, tracked.gate.results = tracked.gate.results, []
        self._export(table, results)
        try:
            # One catalog commit, no load: the table is the one _profiles() read or an
            # earlier record() returned; a fresh one is created with these rows.
            rows = quality_rows(results, run_id=self.run_id, snapshot_id=snapshot_id)
            tracked.history = record_quality(self._writer.result(), tracked.contract,
                                             tracked.history, rows,
                                             {RUN_ID_PROPERTY: self.run_id})
        except Exception as exc:  # whatever it is (a hand-made table of other columns
            # raises ValueError), the data commit has landed: failing the
            # run now would withhold its STATE and make the rerun load its rows twice.
            # The summary in the snapshot (dativo.quality) and the log lines still say
            # what was checked.
            LOGGER.warning("Table %s: the %d quality result(s) of snapshot %s could not be "
                           "recorded in %s%s (%s); the load itself is not affected",
                           table, len(results), snapshot_id, table, QUALITY_SUFFIX, exc)

    def _landed(self, tracked: _Tracked) -> None:
        """The gated commit landed: its profile joins the history, its rejects and
        drift are accounted for."""
        if tracked.pending is not None:
            history = tracked.profiles if tracked.profiles is not None else []
            history.append(tracked.pending)
            tracked.profiles = history[-self.settings.anomaly_window:]
            tracked.pending = None
        tracked.rejects_seen = self._rejected(tracked)
        tracked.drift_seen.update(tracked.pending_drift)
        tracked.pending_drift = []

    def _export(self, table: str, results: Sequence[CheckResult]) -> None:
        """``dativo_quality_checks_total`` per kind and outcome, and the measured value
        of each rule and of the table-level profile metrics."""
        for result in results:
            metrics.QUALITY_CHECKS.labels(**self._labels, table=table, kind=result.kind,
                                          outcome=result.outcome).inc()
            gauged = result.kind == "rule" or (result.kind == "profile"
                                               and result.rule in GAUGED_PROFILE)
            if gauged and result.measured is not None:
                metrics.QUALITY_MEASURED.labels(**self._labels, table=table,
                                                rule=result.rule).set(result.measured)
