"""The Markdown-KV stream: one ``files`` entry, one state partition per matching file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream
from singer_sdk import typing as th
from singer_sdk.helpers.conform import TypeConformanceLevel

from dativo.errors import ConfigError
from dativo.markdown_kv import MarkdownKVError
from tap_dativo_markdown_kv import files
from tap_dativo_markdown_kv.documents import (
    SOURCE_FILE,
    SOURCE_LINENO,
    SOURCE_MTIME,
    read_items,
)
from tap_dativo_markdown_kv.schema import (
    kv_row_properties,
    metadata_properties,
    records_schema,
)

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_dativo_markdown_kv.settings import FileSettings

ROW_PER_KV_KEYS = ["doc_id", "section", "key"]


class MarkdownKVStream(Stream):
    """Records from every Markdown-KV file matching one configured path or glob.

    State is kept per file (partition ``{"_sdc_source_file": path}``) with the file's
    modification time as the replication key: a file whose mtime is not newer than its
    bookmark is skipped, so a rerun reads only new or changed files. ``is_sorted``
    stays False so singer-sdk promotes a file's bookmark only after the whole file was
    emitted; a run that dies inside a file reads that file again.
    """

    replication_key = SOURCE_MTIME
    # Values are already the JSON values the file holds (Decimal for fractions); the
    # SDK's conformance would rewrite them to match the (possibly declared) schema.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap, settings: FileSettings) -> None:
        """Discover the stream: list its files, and read them when the schema is inferred.

        Raises:
            MarkdownKVError: A file is malformed (inference reads every file).
        """
        self.settings = settings
        self.paths = files.expand(settings.path)
        if not self.paths:
            tap.logger.warning("%s.path: no file matches %r; stream '%s' will emit no "
                               "records", settings.where, settings.path, settings.entity)
        super().__init__(tap, schema=self._discover_schema(), name=settings.entity)
        self.primary_keys = self._key_columns()
        self._known = set(self.schema["properties"])

    @property
    def partitions(self) -> list[dict] | None:
        """One partition per file, so each file has its own mtime bookmark."""
        return [{SOURCE_FILE: path} for path in self.paths]

    def get_replication_key_signpost(self, context: Context | None = None) -> None:
        """No signpost: a bookmark is the file's own mtime, even when it lies in the
        future (a file copied from a host with a fast clock is not re-read every run)."""
        return None

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield the records of the partition's file unless it is unchanged.

        Raises:
            MarkdownKVError: The file is malformed, or holds a key the schema lacks.
        """
        if not context:
            return
        path = context[SOURCE_FILE]
        try:
            # Taken before reading, so a file changed while we read it is read again.
            modified = files.mtime(path)
        except FileNotFoundError:
            self.logger.warning("skipping %s: it was removed after discovery", path)
            return
        if self._unchanged(context, modified):
            self.logger.info("skipping unchanged file %s (modified %s)", path,
                             files.iso(modified))
            return
        yield from self._read(path, files.iso(modified))

    def _read(self, path: str, modified: str) -> Iterator[dict[str, Any]]:
        for line, record in read_items(path, self.settings):
            unknown = [key for key in record if key not in self._known]
            if unknown:
                raise MarkdownKVError(
                    f"keys {unknown} are not in stream '{self.name}''s schema; declare them "
                    f"in {self.settings.where}.schema, or run --discover again to infer "
                    "the schema from the current files", line=line, source=path)
            record[SOURCE_FILE] = path
            record[SOURCE_LINENO] = line
            record[SOURCE_MTIME] = modified
            yield record

    def _unchanged(self, context: Context, modified: dt.datetime) -> bool:
        """True when the file is not newer than its bookmark.

        The bookmark only moves forward (records are emitted only for files newer than
        it); a file replaced by an *older* copy counts as unchanged: ``touch`` it.
        """
        bookmark = self.get_starting_replication_key_value(context)
        if not bookmark:
            return False
        try:
            seen = dt.datetime.fromisoformat(str(bookmark))
        except ValueError:
            raise ConfigError(
                f"state: bookmark {bookmark!r} for {context[SOURCE_FILE]} is not an ISO "
                "timestamp; remove that partition from the state to re-read the file"
            ) from None
        return modified <= (seen if seen.tzinfo else seen.replace(tzinfo=dt.timezone.utc))

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
