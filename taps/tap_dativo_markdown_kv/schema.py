"""The stream's JSON Schema: fixed for ``row_per_kv``, declared in settings, or inferred
from every file's records (every key gets a column, so no value is dropped)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from singer_sdk import typing as th

from dativo.file_taps import source_properties
from tap_dativo_markdown_kv.documents import DOC_ID

_ORDER = ("string", "integer", "number", "boolean", "object", "array")


def kv_row_properties() -> list[th.Property]:
    """The ``row_per_kv`` columns: doc_id, section, key, value, value_json, ord."""
    return [
        th.Property("doc_id", th.StringType, required=True,
                    description="Record id, front-matter doc_id, else the file path."),
        th.Property("section", th.StringType, required=True,
                    description="Section title; empty for front matter and record blocks."),
        th.Property("key", th.StringType, required=True, description="The key."),
        th.Property("value", th.StringType,
                    description="A text value as is, any other value as compact JSON, "
                                "null for null."),
        th.Property("value_json", th.StringType, required=True,
                    description="The value as compact JSON (keeps its type)."),
        th.Property("ord", th.IntegerType, required=True,
                    description="Position of the key in its document, from 0."),
    ]


def records_schema(declared: dict[str, Any] | None,
                   records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The ``records`` schema: declared properties exactly as given, else inferred (see
    :func:`inferred_properties`), then the ``_sdc`` columns."""
    tail = th.PropertiesList(*metadata_properties(with_doc_id=True)).to_dict()
    if declared is None:
        return th.PropertiesList(*inferred_properties(records),
                                 *metadata_properties(with_doc_id=True)).to_dict()
    # th.Property would add "null" to a declared type; the user's schema wins as is.
    return {**tail, "properties": {**declared, **tail["properties"]}}


def inferred_properties(records: Iterable[dict[str, Any]]) -> list[th.Property]:
    """One nullable property per key seen, typed by the values seen (integer and number
    make number; a key that is only ever null is a string; mixed kinds list them all)."""
    kinds: dict[str, set[str]] = {}
    for record in records:
        for key, value in record.items():
            if key != DOC_ID:
                kinds.setdefault(key, set()).add(_kind(value))
    return [th.Property(name, th.CustomType(_type_of(seen))) for name, seen in kinds.items()]


def metadata_properties(*, with_doc_id: bool) -> list[th.Property]:
    props = []
    if with_doc_id:
        props.append(th.Property(DOC_ID, th.StringType, required=True,
                                 description="The `## Record` id, or the document's doc_id "
                                             "(front matter), else its file path."))
    return [*props, *source_properties(
        record="record", line="1-based line of the record's block or section.")]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, (float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_of(seen: set[str]) -> dict[str, Any]:
    kinds = seen - {"null"}
    if kinds == {"integer", "number"}:
        kinds = {"number"}
    if not kinds:
        kinds = {"string"}
    schema: dict[str, Any] = {"type": [k for k in _ORDER if k in kinds] + ["null"]}
    if "array" in kinds:
        schema["items"] = {}
    return schema
