"""Data quality (issue 16): ODCS quality rules, anomaly bands and their results.

Modules import DuckDB and pyarrow lazily and never pyiceberg; the Iceberg side (the
``<table>__quality`` table) lives in :mod:`dativo.iceberg.quality_table`.
"""

from __future__ import annotations
