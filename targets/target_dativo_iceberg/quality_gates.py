"""Each stream's quality gate, and the record of its results in ``<table>__quality``.

A stream whose contract has quality rules (:attr:`dativo.contracts.Contract.quality`)
gets one :class:`~dativo.quality.gate.QualityGate`, handed to every commit of its table
(:meth:`dativo.iceberg.writer.IcebergWriter.commit_files`). A stream without rules gets
none: no DuckDB, no scan, no extra table. After the commit, the gate's results are
appended to ``<table>__quality`` with the new snapshot id; after a blocked commit, with
a null snapshot id, so the failures that stopped the run can be read there.

Runs on the loader's single commit thread, so nothing is locked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dativo.errors import DativoError
from dativo.iceberg.naming import QUALITY_SUFFIX, RUN_ID_PROPERTY
from dativo.iceberg.staging import FileBatch
from dativo.quality.gate import CommitView, QualityGate
from dativo.quality.results import CheckResult
from target_dativo_iceberg.destinations import Destination, IcebergDestination
from target_dativo_iceberg.settings import TargetSettings
from target_dativo_iceberg.sinks import StreamSink
from target_dativo_iceberg.staged_tables import staged_name

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from dativo.contracts import Contract
    from dativo.iceberg.writer import IcebergWriter

LOGGER = logging.getLogger(__name__)


@dataclass
class _Tracked:
    gate: QualityGate
    contract: Contract
    history: Table | None = None  # <table>__quality, once loaded or created


class QualityGates:
    """The gates of a run's tables, by table name, and their quality tables."""

    def __init__(self, settings: TargetSettings, run_id: str,
                 writer: Future[IcebergWriter]) -> None:
        self.settings = settings
        self.run_id = run_id
        self._writer = writer
        self._tables: dict[str, _Tracked] = {}
        self._skipped: set[str] = set()
        self.blocked = False  # a commit was blocked: salvage commits nothing more

    def track(self, sink: StreamSink, stream: str, destination: Destination) -> None:
        """Gate the commits of ``sink.table`` when the stream's contract has rules."""
        if not sink.contract.quality or sink.table is None:
            return
        name = staged_name(sink.table)
        if name in self._tables:
            self._tables[name].gate.columns = tuple(sink.table_schema.names)  # may evolve
            return
        if not isinstance(destination, IcebergDestination):
            if stream not in self._skipped:
                self._skipped.add(stream)
                LOGGER.warning("Stream '%s': the contract's quality rules are not run with "
                               "format markdown_kv (its table holds documents, not the "
                               "contract's columns)", stream)
            return
        gate = QualityGate(stream, sink.contract.quality,
                           strict=self.settings.validation_mode == "strict",
                           timeout=self.settings.quality_sql_timeout_seconds,
                           extra=self.gather_anomaly_results,
                           columns=tuple(sink.table_schema.names))
        self._tables[name] = _Tracked(gate, sink.contract)

    def gather_anomaly_results(self, view: CommitView) -> Sequence[CheckResult]:
        """Call site for :mod:`dativo.quality.anomaly`: the commit's profile metrics and
        robust-band flags, recorded and summarised with the rules' results. Not wired
        yet (the profile, the history read from ``<table>__quality`` and the opt-in
        blocking belong to the anomaly work); returns nothing."""
        return ()

    def gated(self, table: str) -> bool:
        return table in self._tables

    def gate(self, table: str) -> QualityGate | None:
        tracked = self._tables.get(table)
        return tracked.gate if tracked is not None else None

    def record(self, table: str, snapshot_id: int | None) -> None:
        """Append the last gated commit's results to ``<table>__quality`` (``snapshot_id``
        ``None``: the commit was blocked)."""
        tracked = self._tables.get(table)
        if tracked is None or not tracked.gate.results:
            return
        if snapshot_id is None:
            self.blocked = True
        from dativo.iceberg.quality_table import quality_rows

        results, tracked.gate.results = tracked.gate.results, []
        writer = self._writer.result()
        try:
            if tracked.history is None:
                tracked.history = writer.quality_table(tracked.contract)
            rows = quality_rows(results, run_id=self.run_id, snapshot_id=snapshot_id)
            files = writer.write_files(tracked.history, rows)
            writer.commit_files(tracked.history, [FileBatch(files)],
                                {RUN_ID_PROPERTY: self.run_id})
        except (DativoError, OSError) as exc:
            # The data commit has landed: failing the run now would withhold its STATE
            # and make the rerun load its rows twice. The summary in the snapshot
            # (dativo.quality) and the log lines still say what was checked.
            LOGGER.warning("Table %s: the %d quality result(s) of snapshot %s could not be "
                           "recorded in %s%s (%s); the load itself is not affected",
                           table, len(results), snapshot_id, table, QUALITY_SUFFIX, exc)
