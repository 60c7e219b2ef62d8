"""The Markdown-KV stream: one ``files`` entry, one state partition per matching file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th

from dativo.errors import ConfigError
from dativo.file_taps import FileStream, LineRecord, matching_files
from dativo.markdown_kv import MarkdownKVError
from tap_dativo_markdown_kv.documents import read_items
from tap_dativo_markdown_kv.schema import (
    kv_row_properties,
    metadata_properties,
    records_schema,
)

if TYPE_CHECKING:
    from singer_sdk import Tap

    from tap_dativo_markdown_kv.settings import FileSettings

ROW_PER_KV_KEYS = ["doc_id", "section", "key"]


class MarkdownKVStream(FileStream):
    """Records from every Markdown-KV file matching one configured path or glob
    (incremental per file: see :class:`~dativo.file_taps.FileStream`).

    Values are the JSON values the file holds (Decimal for fractions), kept as they are
    even where a declared schema says otherwise.
    """

    def __init__(self, tap: Tap, settings: FileSettings) -> None:
        """Discover the stream: list its files, and read them when the schema is inferred.

        Raises:
            MarkdownKVError: A file is malformed (inference reads every file).
        """
        self.settings = settings
        self.paths = matching_files(tap.logger, settings)
        super().__init__(tap, schema=self._discover_schema(), name=settings.entity)
        self.primary_keys = self._key_columns()
        self._known = set(self.schema["properties"])

    def records_from_file(self, path: str) -> Iterator[LineRecord]:
        """Yield ``(line, record)`` per record of the file, in the stream's emit shape.

        Raises:
            MarkdownKVError: The file is malformed, or holds a key the schema lacks.
        """
        for line, record in read_items(path, self.settings):
            unknown = [key for key in record if key not in self._known]
            if unknown:
                raise MarkdownKVError(
                    f"keys {unknown} are not in stream '{self.name}''s schema; declare them "
                    f"in {self.settings.where}.schema, or run --discover again to infer "
                    "the schema from the current files", line=line, source=path)
            yield line, record

    def _discover_schema(self) -> dict[str, Any]:
        if self.settings.emit == "row_per_kv":
            props = kv_row_properties() + metadata_properties(with_doc_id=False)
            return th.PropertiesList(*props).to_dict()
        inferred = self._all_records() if self.settings.schema is None else iter(())
        return records_schema(self.settings.schema, inferred)

    def _all_records(self) -> Iterator[dict[str, Any]]:
        for path in self.paths:
            for _line, record in read_items(path, self.settings):
                yield record

    def _key_columns(self) -> list[str]:
        if self.settings.emit == "row_per_kv":
            return list(ROW_PER_KV_KEYS)
        keys = list(self.settings.keys)
        missing = [key for key in keys if key not in self.schema["properties"]]
        if missing and self.paths:
            raise ConfigError(f"{self.settings.where}.keys: {missing} are not keys of the "
                              "files' records (nor _sdc_doc_id)")
        return keys
