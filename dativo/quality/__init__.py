"""Data quality (issue 16): ODCS quality rules read from contracts, measured in DuckDB
over Arrow, enforced at commit time and recorded beside the table.

``rules`` and ``thresholds`` are pure Python (the contract lint imports them, also in
taps without pyarrow); ``measure`` imports DuckDB and pyarrow when first used. No module
here imports pyiceberg: the Iceberg side (the gate's read view, ``<table>__quality``)
lives in :mod:`dativo.iceberg`.
"""

from __future__ import annotations

from dativo.quality.results import CheckResult, quality_summary
from dativo.quality.rules import QualityRule, read_quality
from dativo.quality.thresholds import Threshold

__all__ = ["CheckResult", "QualityRule", "Threshold", "quality_summary", "read_quality"]
