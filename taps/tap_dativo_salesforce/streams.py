"""One stream per queryable Salesforce object, read through REST or a Bulk API 2.0 job.

Each run builds one SOQL query per object: its selectable fields (see
:mod:`tap_dativo_salesforce.types`), ``WHERE <key> >= <bookmark>`` on incremental runs
and, through REST, ``ORDER BY <key>, Id`` (a stable order: records sharing a stamp keep
their order across pages). The key is ``SystemModstamp``, else ``LastModifiedDate``;
an object with neither is read in full each run. The bound is inclusive because SOQL
dateTime literals have whole seconds: the bookmark's own second is read again, which
the target's upsert on ``Id`` absorbs, rather than records sharing it being lost.

The query goes to ``queryAll`` (REST) or a ``queryAll`` Bulk job when ``include_deleted``
is on, so records deleted since the bookmark (in the recycle bin, ``IsDeleted = true``)
come in the same ordered read; they get ``_sdc_deleted_at`` = their stamp. The read
method is per object: ``read_method`` names it, else a ``SELECT COUNT()`` of the rows to
read decides, Bulk from ``bulk_threshold`` rows on.

The read method is only known once the stream runs, after singer-sdk has made its state
manager, so every stream is unsorted for singer-sdk (Bulk results have no order anyway):
the bookmark is the greatest stamp read, written when the stream ends. REST reads stop
between pages when
the org's API usage reaches ``max_api_usage_share``, keeping the bookmark of what was
read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

from dativo.errors import ConfigError
from tap_dativo_salesforce.bulk import BulkQuery
from tap_dativo_salesforce.client import SalesforceClient
from tap_dativo_salesforce.types import (
    RecordShaper,
    is_compound,
    property_schema,
    selectable,
)

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

DELETED_AT = "_sdc_deleted_at"
REPLICATION_KEYS = ("SystemModstamp", "LastModifiedDate")
READ_METHODS = ("rest", "bulk")


def soql_datetime(value: str) -> str:
    """A bookmark (ISO 8601) as a SOQL dateTime literal: UTC, whole seconds."""
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SObjectStream(Stream):
    """A Salesforce object, typed by its describe."""

    primary_keys: ClassVar[list[str]] = ["Id"]
    # Records are typed by RecordShaper from the describe already; singer-sdk's second
    # pass over every value would cost a third of the run and change nothing.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Any, describe: Mapping[str, Any], *, include_deleted: bool
                 ) -> None:
        self.sobject = str(describe["name"])
        fields: list[dict[str, Any]] = list(describe["fields"])
        self.fields = fields
        names = {str(f["name"]) for f in fields}
        properties: dict[str, Any] = {}
        for field in fields:
            if is_compound(field):
                components = [c for c in fields
                              if c.get("compoundFieldName") == field["name"]]
                properties[str(field["name"])] = property_schema(field, components)
            elif selectable(field):
                properties[str(field["name"])] = property_schema(field)
        self.include_deleted = include_deleted and "IsDeleted" in names
        if self.include_deleted:
            properties[DELETED_AT] = {"type": ["string", "null"], "format": "date-time"}
        schema = {"type": "object", "properties": properties, "required": ["Id"]}
        super().__init__(tap, name=self.sobject, schema=schema)
        self.replication_key = next((k for k in REPLICATION_KEYS if k in names), None)
        self.read_with: str | None = None  # the last run's method, for logs and tests

    @property
    def client(self) -> SalesforceClient:
        return self._tap.client  # type: ignore[attr-defined, no-any-return]

    @property
    def selected_fields(self) -> list[str]:
        return [str(f["name"]) for f in self.fields if selectable(f)]

    def soql(self, start: str | None, *, ordered: bool, count: bool = False) -> str:
        what = "COUNT()" if count else ", ".join(self.selected_fields)
        query = f"SELECT {what} FROM {self.sobject}"
        key = self.replication_key
        if key and start:
            query += f" WHERE {key} >= {soql_datetime(start)}"
        if key and ordered and not count:
            query += f" ORDER BY {key} ASC, Id ASC"
        return query

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        tap = self._tap
        if self.client.exhausted:
            tap.skipped_for_limit.append(self.name)  # type: ignore[attr-defined]
            return
        start = self.get_starting_replication_key_value(context) if self.replication_key \
            else None
        start = str(start) if start else None
        self.read_with = method = self._read_method(start)
        self.logger.info("%s: reading through %s", self.name,
                         "Bulk API 2.0" if method == "bulk" else "REST")
        if method == "bulk":
            shaper = RecordShaper(self.fields, csv=True)
            rows: Iterator[Mapping[str, Any]] = self._bulk().rows(
                self.sobject, self.soql(start, ordered=False),
                include_deleted=self.include_deleted)
        else:
            shaper = RecordShaper(self.fields, csv=False)
            rows = self._rest_rows(self.soql(start, ordered=True))
        key = self.replication_key
        for row in rows:
            record = shaper(row)
            if self.include_deleted:
                deleted = bool(record.get("IsDeleted")) and key is not None
                record[DELETED_AT] = record.get(key) if deleted else None  # type: ignore[arg-type]
            yield record

    def _rest_rows(self, soql: str) -> Iterator[Mapping[str, Any]]:
        """query (or queryAll) then its nextRecordsUrl pages; stops between pages when
        the API usage limit is reached."""
        endpoint = "queryAll" if self.include_deleted else "query"
        page = self.client.get_json(f"{self.client.data_path}/{endpoint}/", {"q": soql})
        while True:
            yield from page.get("records") or []
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            if self.client.exhausted:
                self._tap.stopped_in.append(self.name)  # type: ignore[attr-defined]
                return
            page = self.client.get_json(str(next_url))

    def _bulk(self) -> BulkQuery:
        config = self.config
        return BulkQuery(self.client, page_records=int(config.get("bulk_page_records",
                                                                   50_000)),
                         poll_seconds=float(config.get("bulk_poll_seconds", 5.0)),
                         timeout_seconds=float(config.get("bulk_timeout_seconds", 3600)))

    def _read_method(self, start: str | None) -> str:
        chosen = (self.config.get("read_method") or {}).get(self.sobject)
        if chosen is not None:
            if chosen not in READ_METHODS:
                raise ConfigError(f"read_method.{self.sobject}: {chosen!r} is not one of "
                                  f"{', '.join(READ_METHODS)}")
            return str(chosen)
        threshold = int(self.config.get("bulk_threshold", 100_000))
        endpoint = "queryAll" if self.include_deleted else "query"
        counted = self.client.get_json(f"{self.client.data_path}/{endpoint}/",
                                       {"q": self.soql(start, ordered=False, count=True)})
        rows = int(counted.get("totalSize") or 0)
        self.logger.info("%s: %d rows to read (Bulk API 2.0 from bulk_threshold=%d)",
                         self.name, rows, threshold)
        return "bulk" if rows >= threshold else "rest"
