"""The size and compression of the data files the target writes, when no setting pins
them: declared once for the target's settings, the writer's new tables and compaction.

No pyiceberg import: the target's config schema reads these at start-up.
"""

from __future__ import annotations

TARGET_FILE_SIZE_MB = 160
"""Parquet data files close at this size on storage (pyiceberg's own default, 512 MiB,
makes files few but slow to rewrite and to read selectively)."""
TARGET_FILE_SIZE_BYTES = TARGET_FILE_SIZE_MB * 1024 * 1024
COMPRESSION = "zstd"
"""Parquet compression codec (``write.parquet.compression-codec``)."""
