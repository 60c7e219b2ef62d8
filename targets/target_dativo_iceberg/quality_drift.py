"""Schema drift as quality results (issue 16, point 5), so ``<table>__quality`` lists a
table's drift over time.

Two kinds of drift are recorded, each once per run, with the table's next commit:

- the tap's SCHEMA against the ODCS contract (columns only in one of them, and what
  ``schema_evolution`` does with them), as the loader logs it
  (:func:`target_dativo_iceberg.stream_contracts.schema_drift`, kept in the stream's
  :class:`~target_dativo_iceberg.sinks.StreamStats`);
- the table's own evolution: columns the commit's schema added or widened since the
  table's last snapshot (:meth:`dativo.iceberg.quality_gate.CommitRows.schema_changes`).

Each is a ``kind="drift"`` result named ``drift:<column>``, outcome ``info``, whose
message is the log text.
"""

from __future__ import annotations

from collections.abc import Collection

from dativo.contracts import Contract
from dativo.quality.gate import CommitView
from dativo.quality.results import CheckResult
from target_dativo_iceberg.config_schema import SchemaEvolution
from target_dativo_iceberg.sinks import StreamStats
from target_dativo_iceberg.stream_contracts import SCHEMA_ONLY_FATE


def drift_results(view: CommitView, stream: str, contract: Contract,
                  stats: StreamStats | None, evolution: SchemaEvolution,
                  seen: Collection[str]) -> list[CheckResult]:
    """The drift of ``stream``'s table not yet recorded this run (``seen``: the
    messages already recorded)."""
    drift = stats.schema_drift if stats is not None else {}
    found = [(column, f"stream '{stream}': column {column} is in the SCHEMA but not in "
                      f"contract {contract.source}, {SCHEMA_ONLY_FATE[evolution]}")
             for column in drift.get("schema_only", ())]
    found += [(column, f"stream '{stream}': contract column {column} is missing from the "
                       "SCHEMA; records without it get nulls, or are rejected where the "
                       "contract requires it")
              for column in drift.get("contract_only", ())]
    found += [(column, f"table {view.table} evolved: {change}")
              for column, change in view.schema_changes()]
    return [CheckResult(rule=f"drift:{column}", kind="drift", scope="run", column=column,
                        dimension="conformity", severity=None, business_impact=None,
                        measured=None, threshold=f"schema_evolution={evolution}",
                        outcome="info", message=message)
            for column, message in found if message not in seen]
