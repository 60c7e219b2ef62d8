"""The columns a file tap (CSV, Markdown-KV) adds to every record.

Apart from :mod:`dativo.file_taps` because the target needs the names too (a
``__rejected`` stream's SCHEMA, :mod:`dativo.rejected_rows`) and must not import the
taps' singer-sdk stream machinery to get them.
"""

from __future__ import annotations

SOURCE_FILE = "_sdc_source_file"
SOURCE_LINENO = "_sdc_source_lineno"
SOURCE_MTIME = "_sdc_source_file_mtime"
SOURCE_COLUMNS = (SOURCE_FILE, SOURCE_LINENO, SOURCE_MTIME)
"""The columns a file tap adds to every record, in this order."""
