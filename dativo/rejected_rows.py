"""The SCHEMA of a tap's ``<stream>__rejected`` stream (rows whose cell contradicted
the stream's SCHEMA, as raw text and reason), shared by tap-dativo-csv, which sends it,
and target-dativo-iceberg, which lands such a stream without an ODCS contract only when
its SCHEMA is exactly this one (any other ``__rejected`` stream is governed as usual).
"""

from __future__ import annotations

from typing import Any

from singer_sdk import typing as th

from dativo.file_columns import SOURCE_FILE, SOURCE_LINENO, SOURCE_MTIME

REJECTED_SCHEMA: dict[str, Any] = th.PropertiesList(
    th.Property(SOURCE_FILE, th.StringType, required=True,
                description="Path of the file the row was read from."),
    th.Property(SOURCE_LINENO, th.IntegerType, required=True,
                description="1-based physical line where the row starts."),
    th.Property(SOURCE_MTIME, th.DateTimeType, required=True,
                description="Modification time of the file (UTC) when it was read."),
    th.Property("raw_line", th.StringType,
                description="The row's text as in the file (all its lines when a quoted "
                            "cell spans several), without the final line break; null "
                            "when a column is deselected or a stream map applies, so "
                            "the text cannot carry what the stream does not."),
    th.Property("fields", th.ArrayType(th.StringType), required=True,
                description="The columns whose cell contradicts the SCHEMA."),
    th.Property("reason", th.StringType, required=True,
                description="Why, per column: `<column>: <what is wrong>`, joined by '; '."),
).to_dict()
"""SCHEMA of ``<stream>__rejected``; keyed by file and line, so a rerun of a changed
file replaces its rows in an upserting target."""

REJECTED_KEYS = [SOURCE_FILE, SOURCE_LINENO]


def is_rejected_rows_schema(schema: dict[str, Any]) -> bool:
    """Whether ``schema``'s properties are exactly :data:`REJECTED_SCHEMA`'s (names,
    types, formats; descriptions may differ between versions)."""
    return _shape(schema.get("properties")) == _shape(REJECTED_SCHEMA["properties"])


def _shape(properties: object) -> dict[str, Any] | None:
    if not isinstance(properties, dict):
        return None
    return {name: {k: v for k, v in prop.items() if k != "description"}
            if isinstance(prop, dict) else prop for name, prop in properties.items()}
